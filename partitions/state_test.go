package partitions

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func createReq(id, name string, input string, reqID uint64) *ClientRequestReceived {
	start := core.NewEvent(core.EventExecutionStarted, t0)
	start.Name, start.InstanceID, start.ExecutionID, start.Input = name, id, "exec-"+id, []byte(input)
	return &ClientRequestReceived{InputPos: reqID, Request: &transport.ClientRequest{
		Kind: transport.RequestCreate, ClientID: "c", RequestID: reqID, InstanceID: id, Event: start}}
}

func TestPlacement(t *testing.T) {
	if PartitionOf("order!7", 12) != 7 || PartitionOf("x!19", 12) != 7 || PartitionOf("a!b", 12) != PartitionOf("a!b", 12) {
		t.Fatal("!N placement")
	}
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		p := PartitionOf(fmt.Sprintf("inst-%d", i), 12)
		if p < 0 || p >= 12 {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) != 12 {
		t.Fatalf("hash uses only %d of 12 partitions", len(seen))
	}
}

func TestCreateAndReusePolicies(t *testing.T) {
	s := NewState(0, 1)
	var fx Effects
	s.Apply(1, t0, createReq("a", "O", "1", 1), &fx)
	inst := s.Instances["a"]
	if inst == nil || inst.Record.Status != core.StatusPending || len(inst.Pending) != 1 || len(fx.Ready) != 1 || len(fx.Responses) != 1 {
		t.Fatalf("after create: %+v fx %+v", inst, fx)
	}
	// A second create of a pending instance is rejected by default.
	fx = Effects{}
	s.Apply(2, t0, createReq("a", "O", "2", 2), &fx)
	if r := fx.Responses[0].Response; r.ErrorCode != transport.CodeExists {
		t.Fatalf("duplicate create: %+v", r)
	}
	// ... and replaces it under ReuseTerminate.
	fx = Effects{}
	req := createReq("a", "O", "3", 3)
	req.Request.Reuse = ReuseTerminate
	req.Request.Event.ExecutionID = "exec-2"
	s.Apply(3, t0, req, &fx)
	if s.Instances["a"].Record.ExecutionID != "exec-2" || fx.Responses[0].Response.Error != "" || len(fx.Dropped) != 1 {
		t.Fatalf("terminate-and-replace: %+v %+v", s.Instances["a"].Record, fx)
	}
}

func TestBatchProcessedRoutesWork(t *testing.T) {
	s := NewState(0, 4)
	var fx Effects
	s.Apply(1, t0, createReq("o!0", "O", "", 1), &fx)
	inst := s.Instances["o!0"]
	act := core.NewEvent(core.EventTaskScheduled, t0)
	act.Name, act.EventID = "A", 0
	timer := core.NewEvent(core.EventTimerFired, t0)
	timer.TaskScheduledID, timer.FireAt = 1, t0.Add(time.Hour)
	local := core.NewEvent(core.EventEventRaised, t0)
	remote := core.NewEvent(core.EventEventRaised, t0)
	fx = Effects{}
	s.Apply(2, t0, &BatchProcessed{InstanceID: "o!0", Generation: inst.Generation, Consumed: 1, Status: core.StatusRunning,
		NewEvents:  []*core.HistoryEvent{core.NewEvent(core.EventOrchestratorStarted, t0)},
		Activities: []*core.TaskMessage{{Target: core.Instance{InstanceID: "o!0"}, Event: act}},
		Timers:     []*core.TaskMessage{{Target: core.Instance{InstanceID: "o!0"}, Event: timer}},
		Messages: []*core.TaskMessage{
			{Target: core.Instance{InstanceID: "o!0"}, Event: local},
			{Target: core.Instance{InstanceID: "x!2"}, Event: remote},
		}}, &fx)
	if len(s.Activities) != 1 || len(s.Timers) != 1 || len(fx.Activities) != 1 || len(fx.Timers) != 1 {
		t.Fatalf("activities %v timers %v", s.Activities, s.Timers)
	}
	if len(inst.Pending) != 1 || inst.Pending[0] != local {
		t.Fatalf("local message not delivered: %v", inst.Pending)
	}
	if len(s.Outbox) != 1 || s.Outbox[0].Dest != 2 || s.Outbox[0].Pos != 2 {
		t.Fatalf("outbox %+v", s.Outbox)
	}
	// A stale result (older generation) is ignored.
	fx = Effects{}
	s.Apply(3, t0, &BatchProcessed{InstanceID: "o!0", Generation: inst.Generation + 7, Consumed: 1, Status: core.StatusCompleted}, &fx)
	if inst.Record.Status != core.StatusRunning || len(inst.Pending) != 1 {
		t.Fatalf("stale batch applied: %+v", inst.Record)
	}
	// The receiver's ack empties the outbox.
	s.Apply(4, t0, &AckReceived{InputPos: 4, Ack: &transport.Ack{From: 2, UpTo: 2}}, &fx)
	if len(s.Outbox) != 0 {
		t.Fatalf("outbox after ack: %+v", s.Outbox)
	}
}

func TestDedupDropsDuplicates(t *testing.T) {
	s := NewState(1, 2)
	ev := func() *core.HistoryEvent {
		e := core.NewEvent(core.EventEntityOperationSignaled, t0)
		e.Name, e.Input = "add", []byte("1")
		return e
	}
	batch := &transport.MessageBatch{Origin: 0, OriginPos: 5, Messages: []*core.TaskMessage{
		{Target: core.Instance{InstanceID: "@c@k!1"}, Event: ev()}, {Target: core.Instance{InstanceID: "@c@k!1"}, Event: ev()}}}
	var fx Effects
	s.Apply(1, t0, &MessagesReceived{InputPos: 1, Batch: batch}, &fx)
	s.Apply(2, t0, &MessagesReceived{InputPos: 2, Batch: batch}, &fx) // re-sent after a crash
	older := &transport.MessageBatch{Origin: 0, OriginPos: 3, Messages: batch.Messages[:1]}
	s.Apply(3, t0, &MessagesReceived{InputPos: 3, Batch: older}, &fx)
	if n := len(s.Instances["@c@k!1"].Pending); n != 2 {
		t.Fatalf("%d messages delivered, want 2", n)
	}
	if s.Dedup[0] != (DedupMark{Pos: 5, Sub: 1}) {
		t.Fatalf("dedup mark %+v", s.Dedup[0])
	}
}

// A batch is applied only if it follows the last one applied from its
// origin (Prev): a skipped one is a gap, reported and not applied.
func TestDedupDetectsGaps(t *testing.T) {
	s := NewState(1, 2)
	msg := func(v string) *core.TaskMessage {
		e := core.NewEvent(core.EventEntityOperationSignaled, t0)
		e.Name, e.Input = "add", []byte(v)
		return &core.TaskMessage{Target: core.Instance{InstanceID: "@c@k!1"}, Event: e}
	}
	b := func(pos, prev uint64, first uint32, vs ...string) *MessagesReceived {
		mb := &transport.MessageBatch{Origin: 0, OriginPos: pos, Prev: prev, FirstSub: first}
		for _, v := range vs {
			mb.Messages = append(mb.Messages, msg(v))
		}
		return &MessagesReceived{Batch: mb}
	}
	pending := func() string {
		var out []string
		if inst := s.Instances["@c@k!1"]; inst != nil {
			for _, e := range inst.Pending {
				out = append(out, string(e.Input))
			}
		}
		return strings.Join(out, ",")
	}
	steps := []struct {
		ev        *MessagesReceived
		want      string
		gap, dup  bool
		wantMark  DedupMark
		wantNotes string
	}{
		{b(10, 5, 0, "b"), "", true, false, DedupMark{}, "first batch seen skips the one at 5"},
		{b(5, 0, 0, "a"), "a", false, false, DedupMark{Pos: 5}, "the first batch"},
		{b(20, 10, 0, "c"), "a", true, false, DedupMark{Pos: 5}, "skips 10"},
		{b(10, 5, 0, "b"), "a,b", false, false, DedupMark{Pos: 10}, "resent 10"},
		{b(5, 0, 0, "a"), "a,b", false, true, DedupMark{Pos: 10}, "a duplicate"},
		{b(20, 10, 0, "c", "d"), "a,b,c,d", false, false, DedupMark{Pos: 20, Sub: 1}, "resent 20"},
		{b(30, 20, 1, "f"), "a,b,c,d", true, false, DedupMark{Pos: 20, Sub: 1}, "the first part of 30 is missing"},
		{b(30, 20, 0, "e"), "a,b,c,d,e", false, false, DedupMark{Pos: 30}, "the first part of 30"},
		{b(30, 20, 1, "f"), "a,b,c,d,e,f", false, false, DedupMark{Pos: 30, Sub: 1}, "its second part"},
	}
	for i, st := range steps {
		var fx Effects
		st.ev.InputPos = uint64(i + 1)
		s.Apply(uint64(i+1), t0, st.ev, &fx)
		if got := pending(); got != st.want {
			t.Fatalf("step %d (%s): pending %q, want %q", i, st.wantNotes, got, st.want)
		}
		if (len(fx.Gaps) > 0) != st.gap || (len(fx.Duplicates) > 0) != st.dup {
			t.Fatalf("step %d (%s): gaps %v duplicates %v", i, st.wantNotes, fx.Gaps, fx.Duplicates)
		}
		if s.Dedup[0] != st.wantMark {
			t.Fatalf("step %d (%s): mark %+v, want %+v", i, st.wantNotes, s.Dedup[0], st.wantMark)
		}
	}
}

// Batches to one destination chain through Prev; acks report to the
// runtime.
func TestOutboxBatchesChainPrev(t *testing.T) {
	s := NewState(0, 3)
	send := func(pos uint64, dests ...string) {
		var msgs []*core.TaskMessage
		for _, d := range dests {
			e := core.NewEvent(core.EventEntityOperationSignaled, t0)
			e.Name = "op"
			msgs = append(msgs, &core.TaskMessage{Target: core.Instance{InstanceID: d}, Event: e})
		}
		s.Apply(pos, t0, &EntityBatchProcessed{InstanceID: "none"}, &Effects{})
		a := &applier{s: s, pos: pos, at: t0, fx: &Effects{}}
		for _, m := range msgs {
			a.deliver(m)
		}
		a.flushOutbox()
	}
	send(4, "@c@x!1")
	send(6, "@c@x!2")
	send(9, "@c@x!1", "@c@y!2")
	var got []string
	for _, b := range s.Outbox {
		got = append(got, fmt.Sprintf("%d->%d prev %d", b.Pos, b.Dest, b.Prev))
	}
	want := "4->1 prev 0,6->2 prev 0,9->1 prev 4,9->2 prev 6"
	if strings.Join(got, ",") != want {
		t.Fatalf("outbox %q, want %q", strings.Join(got, ","), want)
	}
	var fx Effects
	s.Apply(10, t0, &AckReceived{InputPos: 1, Ack: &transport.Ack{From: 1, UpTo: 9}}, &fx)
	if len(s.Outbox) != 2 || len(fx.Acks) != 1 || fx.Acks[0] != (DedupOrigin{Origin: 1, Pos: 9}) {
		t.Fatalf("after an ack from 1: outbox %d batches, acks %v", len(s.Outbox), fx.Acks)
	}
}
