package partitions

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// reqFrom makes a client update request.
func reqFrom(client string, reqID uint64, kind transport.RequestKind, id string) *ClientRequestReceived {
	r := &transport.ClientRequest{Kind: kind, ClientID: client, RequestID: reqID, InstanceID: id}
	switch kind {
	case transport.RequestCreate:
		r.Event = core.NewEvent(core.EventExecutionStarted, t0)
		r.Event.Name, r.Event.InstanceID, r.Event.ExecutionID = "O", id, fmt.Sprintf("exec-%s-%d", client, reqID)
	case transport.RequestRaiseEvent:
		r.Event = core.NewEvent(core.EventEventRaised, t0)
		r.Event.Name = "E"
	case transport.RequestTerminate:
		r.Event = core.NewEvent(core.EventExecutionTerminated, t0)
	case transport.RequestSignalEntity:
		r.Event = core.NewEvent(core.EventEntityOperationSignaled, t0)
		r.Event.Name, r.Event.InstanceID, r.Event.RequestID = "add", id, fmt.Sprintf("sig-%s-%d", client, reqID)
	}
	return &ClientRequestReceived{InputPos: reqID, Request: r}
}

// dedupStep is one request applied in a dedup test, and what must follow.
type dedupStep struct {
	ev *ClientRequestReceived
	at time.Duration // after t0
	// want is the answer (error code and count); a request that is not
	// applied (a duplicate) must leave the state as it was.
	want    transport.ClientResponse
	applied bool
}

func TestClientRequestDedup(t *testing.T) {
	create := func(c string, r uint64, id string) *ClientRequestReceived {
		return reqFrom(c, r, transport.RequestCreate, id)
	}
	ok := transport.ClientResponse{}
	exists := transport.ClientResponse{ErrorCode: transport.CodeExists}
	notFound := transport.ClientResponse{ErrorCode: transport.CodeNotFound}
	cases := []struct {
		name  string
		setup func(s *State) // before the steps (not deduplicated)
		steps []dedupStep
		check func(t *testing.T, s *State)
	}{{
		name: "retried create starts one instance and gets the first answer",
		steps: []dedupStep{
			{ev: create("c", 1, "a"), want: ok, applied: true},
			{ev: create("c", 1, "a"), want: ok},
			{ev: create("c", 1, "a"), at: time.Minute, want: ok},
		},
		check: func(t *testing.T, s *State) {
			if inst := s.Instances["a"]; inst == nil || len(inst.Pending) != 1 || inst.Record.ExecutionID != "exec-c-1" {
				t.Fatalf("instance: %+v", inst)
			}
		},
	}, {
		name: "a new request id is a new request",
		steps: []dedupStep{
			{ev: create("c", 1, "a"), want: ok, applied: true},
			{ev: create("c", 2, "a"), want: exists, applied: true},
			{ev: create("c", 2, "a"), want: exists},
		},
	}, {
		name: "request ids are per client",
		steps: []dedupStep{
			{ev: create("c", 1, "a"), want: ok, applied: true},
			{ev: create("d", 1, "a"), want: exists, applied: true},
		},
	}, {
		name: "a failed request's retry gets the same failure, even once it would succeed",
		steps: []dedupStep{
			{ev: reqFrom("c", 5, transport.RequestRaiseEvent, "a"), want: notFound, applied: true},
			{ev: create("c", 6, "a"), want: ok, applied: true},
			{ev: reqFrom("c", 5, transport.RequestRaiseEvent, "a"), want: notFound},
		},
		check: func(t *testing.T, s *State) {
			if n := len(s.Instances["a"].Pending); n != 1 {
				t.Fatalf("the retried event was delivered: %d pending", n)
			}
		},
	}, {
		name: "a retried purge reports what the first one purged",
		setup: func(s *State) {
			s.Instances["done"] = &Instance{ID: "done", Record: InstanceRecord{Status: core.StatusCompleted}}
		},
		steps: []dedupStep{
			{ev: reqFrom("c", 1, transport.RequestPurge, "done"), want: transport.ClientResponse{Count: 1}, applied: true},
			{ev: reqFrom("c", 1, transport.RequestPurge, "done"), want: transport.ClientResponse{Count: 1}},
			{ev: reqFrom("c", 2, transport.RequestPurge, "done"), want: transport.ClientResponse{Count: 0}, applied: true},
		},
	}, {
		name: "a retried signal is applied once",
		steps: []dedupStep{
			{ev: reqFrom("c", 1, transport.RequestSignalEntity, "@counter@x"), want: ok, applied: true},
			{ev: reqFrom("c", 1, transport.RequestSignalEntity, "@counter@x"), want: ok},
		},
		check: func(t *testing.T, s *State) {
			if n := len(s.Instances["@counter@x"].Pending); n != 1 {
				t.Fatalf("entity has %d operations pending, want 1", n)
			}
		},
	}, {
		name: "a retry after the memory expired is applied again",
		steps: []dedupStep{
			{ev: create("c", 1, "a"), want: ok, applied: true},
			{ev: create("c", 1, "a"), at: RequestMemory - time.Second, want: ok},
			{ev: create("c", 1, "a"), at: RequestMemory + time.Second, want: exists, applied: true},
		},
	}, {
		name: "answers of a silent client are swept out",
		steps: []dedupStep{
			{ev: create("c", 1, "a"), want: ok, applied: true},
			{ev: create("d", 1, "b"), at: RequestMemory + requestSweepEvery, want: ok, applied: true},
		},
		check: func(t *testing.T, s *State) {
			if s.Requests.Clients["c"] != nil || s.RequestLogSize() != 1 {
				t.Fatalf("client c's answers were kept: %d answers", s.RequestLogSize())
			}
		},
	}, {
		name: "requests without ids are not deduplicated",
		steps: []dedupStep{
			{ev: create("", 0, "a"), want: ok, applied: true},
			{ev: create("", 0, "a"), want: exists, applied: true},
		},
		check: func(t *testing.T, s *State) {
			if s.RequestLogSize() != 0 {
				t.Fatalf("%d answers remembered", s.RequestLogSize())
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState(0, 1)
			if c.setup != nil {
				c.setup(s)
			}
			var log []LogEntry
			for i, st := range c.steps {
				pos := uint64(i + 1)
				e := LogEntry{Pos: pos, At: t0.Add(st.at), Event: st.ev}
				log = append(log, e)
				before, err := EncodeState(withoutRequests(s))
				if err != nil {
					t.Fatal(err)
				}
				var fx Effects
				s.Apply(e.Pos, e.At, e.Event, &fx)
				if len(fx.Responses) != 1 {
					t.Fatalf("step %d: %d responses", i, len(fx.Responses))
				}
				r := fx.Responses[0]
				if r.ClientID != st.ev.Request.ClientID || r.Response.RequestID != st.ev.Request.RequestID ||
					r.Response.ErrorCode != st.want.ErrorCode || r.Response.Count != st.want.Count ||
					(r.Response.Error == "") != (st.want.ErrorCode == transport.CodeNone) {
					t.Fatalf("step %d: answer %+v to %s, want %+v", i, r.Response, r.ClientID, st.want)
				}
				after, err := EncodeState(withoutRequests(s))
				if err != nil {
					t.Fatal(err)
				}
				changed := string(before) != string(after) || len(fx.Ready) > 0 || len(fx.Changed) > 0
				if changed && !st.applied {
					t.Fatalf("step %d: a duplicate changed the state (fx %+v)", i, fx)
				}
			}
			if c.check != nil {
				c.check(t, s)
			}
			// Replaying the log from a checkpoint taken at any point gives
			// the same state: the memory of answers is state.
			for k := range log {
				r := NewState(0, 1)
				if c.setup != nil {
					c.setup(r)
				}
				for i, e := range log {
					if i == k {
						b, err := EncodeState(r)
						if err != nil {
							t.Fatal(err)
						}
						if r, err = DecodeState(b); err != nil {
							t.Fatal(err)
						}
					}
					r.Apply(e.Pos, e.At, e.Event, &Effects{})
				}
				if !reflect.DeepEqual(normalizeTimes(r), normalizeTimes(s)) {
					t.Fatalf("replay from a checkpoint after %d entries differs:\n got %s\nwant %s", k, dumpState(r), dumpState(s))
				}
			}
		})
	}
}

// withoutRequests is a shallow copy of s without the request log, to tell
// whether a request changed anything else.
func withoutRequests(s *State) *State {
	c := *s
	c.Requests, c.NextInputPos, c.LastPos = nil, 0, 0
	return &c
}

// normalizeTimes round-trips a state through its encoding, so that states
// built live and decoded compare equal.
func normalizeTimes(s *State) *State {
	b, err := EncodeState(s)
	if err != nil {
		panic(err)
	}
	d, err := DecodeState(b)
	if err != nil {
		panic(err)
	}
	return d
}

// TestClientRequestWindow checks the per-client bound: a client's oldest
// answers go once it has RequestWindow newer ones.
func TestClientRequestWindow(t *testing.T) {
	s := NewState(0, 1)
	for i := uint64(1); i <= RequestWindow+1; i++ {
		s.Apply(i, t0, reqFrom("c", i, transport.RequestSignalEntity, "@counter@x"), &Effects{})
	}
	s.Apply(RequestWindow+2, t0, reqFrom("d", 1, transport.RequestSignalEntity, "@counter@x"), &Effects{})
	if n := s.RequestLogSize(); n != RequestWindow+1 {
		t.Fatalf("%d answers remembered, want %d", n, RequestWindow+1)
	}
	if c := s.Requests.Clients["c"]; c.Answers[1] != nil || c.Answers[2] == nil || c.Order[0] != 2 {
		t.Fatalf("the oldest answer was not the one dropped (first kept %d)", c.Order[0])
	}
	pending := len(s.Instances["@counter@x"].Pending)
	// Request 2 is remembered: not applied again. Request 1 is forgotten:
	// applied again.
	s.Apply(RequestWindow+3, t0, reqFrom("c", 2, transport.RequestSignalEntity, "@counter@x"), &Effects{})
	s.Apply(RequestWindow+4, t0, reqFrom("c", 1, transport.RequestSignalEntity, "@counter@x"), &Effects{})
	if got := len(s.Instances["@counter@x"].Pending); got != pending+1 {
		t.Fatalf("pending operations %d -> %d, want one more", pending, got)
	}
}

func TestRequestLogDecodeRejectsInconsistency(t *testing.T) {
	s := NewState(0, 1)
	s.Requests = &RequestLog{Clients: map[string]*ClientRequests{"c": {Order: []uint64{1, 2}, Answers: map[uint64]*RequestAnswer{1: {}}}}}
	if _, err := EncodeState(s); err == nil {
		t.Fatal("an inconsistent request log encoded")
	}
}
