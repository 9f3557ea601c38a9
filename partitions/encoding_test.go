package partitions

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/partitions/partitionspb"
	"github.com/netherite-go/netherite/transport"
)

// encT0 is a UTC time without a monotonic reading, as the engine stamps
// events, so decoded times compare equal with reflect.DeepEqual.
var encT0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func encEvent(kind core.EventKind, f func(e *core.HistoryEvent)) *core.HistoryEvent {
	e := core.NewEvent(kind, encT0.Add(time.Duration(kind)*time.Second))
	if f != nil {
		f(e)
	}
	return e
}

func encFailure() *core.FailureDetails {
	return &core.FailureDetails{Type: "TaskFailed", Message: "boom", StackTrace: "main.go:1",
		Inner: &core.FailureDetails{Message: "inner \xff"}, NonRetriable: true}
}

func encMsg(target string, e *core.HistoryEvent) *core.TaskMessage {
	return &core.TaskMessage{Target: core.Instance{InstanceID: target, ExecutionID: "exec-" + target}, Event: e}
}

func encStart(id string) *core.HistoryEvent {
	return encEvent(core.EventExecutionStarted, func(e *core.HistoryEvent) {
		e.Name, e.Version, e.InstanceID, e.ExecutionID = "Checkout", "v2", id, "exec-"+id
		e.Input = []byte(`{"order":42}`)
		e.Parent = &core.ParentInstance{Name: "P", InstanceID: "parent", ExecutionID: "exec-p", TaskScheduledID: 3}
		e.Tags = map[string]string{"tenant": "contoso", "b": "2"}
		e.FireAt = encT0.Add(time.Hour)
	})
}

// fullEvents returns one of each update event with every field set.
func fullEvents() []Event {
	return []Event{
		&ClientRequestReceived{InputPos: 17, Request: &transport.ClientRequest{
			Kind: transport.RequestPurgeWhere, ClientID: "client-1", RequestID: 99, Timestamp: encT0,
			InstanceID: "order!3", Event: encStart("order!3"), Reuse: ReuseTerminate,
			Filter: &transport.Filter{InstanceIDPrefix: "ord", CreatedFrom: encT0.Add(-time.Hour),
				CreatedTo: encT0.Add(time.Hour), Statuses: []core.RuntimeStatus{core.StatusCompleted, core.StatusFailed},
				After: "order!1", PageSize: 50, EntityName: "counter"},
			IncludePayloads: true, IncludeHistory: true, Deadline: encT0.Add(time.Minute)}},
		&MessagesReceived{InputPos: 18, Batch: &transport.MessageBatch{Origin: 5, OriginPos: 1234, FirstSub: 2, Prev: 1100,
			Messages: []*core.TaskMessage{
				encMsg("a", encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name, e.Input = "Approval", []byte("true") })),
				encMsg("@counter@c", encEvent(core.EventEntityOperationSignaled, func(e *core.HistoryEvent) {
					e.Name, e.RequestID = "add", "req-1"
					e.LockSet = []core.EntityID{{Name: "counter", Key: "c"}}
				})),
			}}},
		&AckReceived{InputPos: 19, Ack: &transport.Ack{From: 7, UpTo: 4567}},
		&BatchProcessed{InstanceID: "order!3", Generation: 12, Consumed: 3,
			NewEvents: []*core.HistoryEvent{
				encEvent(core.EventOrchestratorStarted, nil),
				encEvent(core.EventTaskScheduled, func(e *core.HistoryEvent) { e.EventID, e.Name = 0, "Charge" }),
			},
			Activities: []*core.TaskMessage{encMsg("order!3", encEvent(core.EventTaskScheduled, func(e *core.HistoryEvent) { e.Name = "Charge" }))},
			Timers: []*core.TaskMessage{encMsg("order!3", encEvent(core.EventTimerFired, func(e *core.HistoryEvent) {
				e.TaskScheduledID, e.FireAt = 1, encT0.Add(time.Minute)
			}))},
			Messages: []*core.TaskMessage{encMsg("other!1", encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name = "Ping" }))},
			Status:   core.StatusFailed, Output: []byte(`"out"`), Failure: encFailure(), Custom: []byte(`{"step":2}`),
			ContinueStart: encStart("order!3"),
			ContinueCarryOver: []*core.HistoryEvent{encEvent(core.EventEventRaised, func(e *core.HistoryEvent) {
				e.Name, e.Input = "Carried", []byte{}
			})}},
		&EntityBatchProcessed{InstanceID: "@counter@c", Generation: 4, Consumed: 2,
			State: &core.EntityState{Exists: true, Value: []byte("5"), LockedBy: "order!3",
				Queue: []*core.HistoryEvent{encEvent(core.EventEntityOperationCalled, func(e *core.HistoryEvent) { e.Name = "get" })}},
			Messages: []*core.TaskMessage{encMsg("order!3", encEvent(core.EventEntityOperationCompleted, func(e *core.HistoryEvent) {
				e.RequestID, e.Result = "req-1", []byte("5")
			}))}},
		&ActivityCompleted{ActivityID: 42, Reply: encMsg("order!3", encEvent(core.EventTaskCompleted, func(e *core.HistoryEvent) {
			e.TaskScheduledID, e.Result = 0, []byte(`"ok"`)
		}))},
		&TimerFired{TimerIDs: []uint64{3, 1, 2}},
		&RecoveryCompleted{},
	}
}

// assertPopulated fails for every exported field, down through the
// partitions and transport types, that holds its zero value everywhere in
// v (in every element of a slice or map), so that a field added later and
// not yet encoded makes the round-trip tests fail instead of passing
// vacuously. Values of other packages' types (core's have their own tests)
// only need to be non-zero.
func assertPopulated(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	all, set := map[string]bool{}, map[string]bool{}
	walkFields(path, v, all, set)
	for p := range all {
		if !set[p] {
			t.Errorf("%s is zero or empty in every sample", p)
		}
	}
}

func walkFields(path string, v reflect.Value, all, set map[string]bool) {
	all[path] = true
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkFields(path, v.Elem(), all, set)
		}
		return
	case reflect.Struct:
		pkg := v.Type().PkgPath()
		if strings.HasSuffix(pkg, "/partitions") || strings.HasSuffix(pkg, "/transport") {
			set[path] = true
			for i := range v.NumField() {
				if f := v.Type().Field(i); f.IsExported() {
					walkFields(path+"."+f.Name, v.Field(i), all, set)
				}
			}
			return
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkFields(path+"[]", v.Index(i), all, set)
		}
		set[path] = set[path] || v.Len() > 0
		return
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkFields(path+"[]", v.MapIndex(k), all, set)
		}
		set[path] = set[path] || v.Len() > 0
		return
	}
	set[path] = set[path] || !v.IsZero()
}

func roundTripEntry(t *testing.T, e LogEntry) LogEntry {
	t.Helper()
	b, err := EncodeLogEntry(e)
	if err != nil {
		t.Fatalf("encode %T: %v", e.Event, err)
	}
	got, err := DecodeLogEntry(b)
	if err != nil {
		t.Fatalf("decode %T: %v", e.Event, err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("%T round trip:\n got %#v\nwant %#v", e.Event, got.Event, e.Event)
	}
	b2, err := EncodeLogEntry(got)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("%T: re-encoding the decoded entry gives other bytes (%v)", e.Event, err)
	}
	return got
}

func TestEncodeLogEntryRoundTripEveryEvent(t *testing.T) {
	events := fullEvents()
	seen := map[string]bool{}
	for i, ev := range events {
		name := ev.eventName()
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			assertPopulated(t, name, reflect.ValueOf(ev))
			roundTripEntry(t, LogEntry{Pos: uint64(1000 + i), At: encT0.Add(time.Duration(i) * time.Millisecond), Event: ev})
		})
	}
	if len(seen) != 8 {
		t.Fatalf("sample events cover %d event types", len(seen))
	}
}

func TestEncodeLogEntryNilsAndEmpties(t *testing.T) {
	events := []Event{
		&ClientRequestReceived{},
		&ClientRequestReceived{Request: &transport.ClientRequest{}},
		&ClientRequestReceived{Request: &transport.ClientRequest{Filter: &transport.Filter{}}},
		&ClientRequestReceived{Request: &transport.ClientRequest{Filter: &transport.Filter{Statuses: []core.RuntimeStatus{}}}},
		&ClientRequestReceived{Request: &transport.ClientRequest{Event: encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Input = []byte{} })}},
		&MessagesReceived{},
		&MessagesReceived{Batch: &transport.MessageBatch{}},
		&MessagesReceived{Batch: &transport.MessageBatch{Messages: []*core.TaskMessage{}}},
		&MessagesReceived{Batch: &transport.MessageBatch{Messages: []*core.TaskMessage{{}}}}, // a message with no event
		&AckReceived{},
		&AckReceived{Ack: &transport.Ack{}},
		&BatchProcessed{},
		&BatchProcessed{NewEvents: []*core.HistoryEvent{}, Activities: []*core.TaskMessage{}, Timers: []*core.TaskMessage{},
			Messages: []*core.TaskMessage{}, Output: []byte{}, Custom: []byte{}, ContinueCarryOver: []*core.HistoryEvent{}},
		&EntityBatchProcessed{},
		&EntityBatchProcessed{State: &core.EntityState{}, Messages: []*core.TaskMessage{}},
		&EntityBatchProcessed{State: &core.EntityState{Value: []byte{}, Queue: []*core.HistoryEvent{}}},
		&ActivityCompleted{},
		&TimerFired{},
		&TimerFired{TimerIDs: []uint64{}},
		&TimerFired{TimerIDs: []uint64{0, ^uint64(0)}},
	}
	for _, ev := range events {
		roundTripEntry(t, LogEntry{Event: ev})
		roundTripEntry(t, LogEntry{Pos: ^uint64(0), At: encT0, Event: ev})
	}
}

func TestEncodeTimes(t *testing.T) {
	exact := []time.Time{
		{},
		time.Unix(0, 0).UTC(), // the epoch is not the zero time
		time.Unix(-1, 999999999).UTC(),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(1500, 6, 1, 0, 0, 0, 0, time.UTC), // outside core's unix-nano range
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(292277026596, 12, 4, 15, 30, 7, 999999999, time.UTC),
		time.Date(-292277022399, 1, 1, 0, 0, 0, 0, time.UTC),
		encT0,
	}
	for _, at := range exact {
		roundTripEntry(t, LogEntry{At: at, Event: &ClientRequestReceived{Request: &transport.ClientRequest{Timestamp: at,
			Filter: &transport.Filter{CreatedFrom: at, CreatedTo: at}}}})
	}
	// Other locations and monotonic readings come back as the same instant
	// in UTC.
	for _, at := range []time.Time{time.Now(), encT0.In(time.FixedZone("X", 5*3600+1800))} {
		b, err := EncodeLogEntry(LogEntry{At: at, Event: &RecoveryCompleted{}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeLogEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		if !got.At.Equal(at) || got.At.Location() != time.UTC || got.At != at.UTC().Round(-1) {
			t.Fatalf("time %v came back as %v", at, got.At)
		}
	}
}

// fullState builds a state with instances of every shape and every field
// of State, Instance and InstanceRecord set somewhere.
func fullState() *State {
	s := NewState(2, 12)
	s.NextInputPos, s.LastPos = 77, 1234
	s.NextActivityID, s.NextTimerID, s.NextGeneration = 9, 5, 20
	failed := "order!2"
	s.Instances[failed] = &Instance{ID: failed, Generation: 3,
		Record: InstanceRecord{Name: "Checkout", Version: "v1", ExecutionID: "exec-1", Status: core.StatusFailed,
			CreatedAt: encT0, LastUpdatedAt: encT0.Add(time.Second), ScheduledStartAt: encT0.Add(-time.Hour),
			Input: []byte("in"), Output: []byte("out"), CustomStatus: []byte(`"c"`), Failure: encFailure(),
			Parent: &core.ParentInstance{Name: "Parent", InstanceID: "p!2", ExecutionID: "exec-p", TaskScheduledID: 4},
			Tags:   map[string]string{"z": "1", "a": "2", "": "empty"}},
		History: []*core.HistoryEvent{encStart(failed), encEvent(core.EventOrchestratorStarted, nil)},
		Pending: []*core.HistoryEvent{encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name = "E" })},
	}
	running := "running!2"
	s.Instances[running] = &Instance{ID: running, Generation: 4,
		Record:  InstanceRecord{Name: "Loop", Status: core.StatusRunning, CreatedAt: encT0, LastUpdatedAt: encT0, Tags: map[string]string{}},
		History: []*core.HistoryEvent{encStart(running)},
		Pending: []*core.HistoryEvent{}, // everything consumed
	}
	entity := "@counter@c!2"
	s.Instances[entity] = &Instance{ID: entity, IsEntity: true, Generation: 5,
		Record: InstanceRecord{Name: "counter", CreatedAt: encT0, LastUpdatedAt: encT0},
		Entity: &core.EntityState{Exists: true, Value: []byte("7"), LockedBy: failed,
			Queue: []*core.HistoryEvent{encEvent(core.EventEntityLockRequested, func(e *core.HistoryEvent) {
				e.RequestID, e.LockPosition = "r1", 1
				e.LockSet = []core.EntityID{{Name: "counter", Key: "c!2"}, {Name: "counter", Key: "d"}}
				e.Parent = &core.ParentInstance{InstanceID: "x", TaskScheduledID: 1}
			})}},
		Pending: []*core.HistoryEvent{encEvent(core.EventEntityOperationSignaled, func(e *core.HistoryEvent) { e.Name = "add" })},
	}
	drained := "@counter@drained!2"
	s.Instances[drained] = &Instance{ID: drained, IsEntity: true, Generation: 6,
		Record:  InstanceRecord{Output: []byte{}, CustomStatus: []byte{}},
		Entity:  &core.EntityState{Exists: true, Value: []byte{}, Queue: []*core.HistoryEvent{}},
		Pending: []*core.HistoryEvent{}}
	later := "later!2"
	s.Instances[later] = &Instance{ID: later, Generation: 7, WaitingForStart: true,
		Record:  InstanceRecord{Name: "Later", ExecutionID: "exec-later", CreatedAt: encT0, LastUpdatedAt: encT0, ScheduledStartAt: encT0.Add(time.Hour)},
		Pending: []*core.HistoryEvent{encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name = "Early" })},
	}
	s.Activities[3] = encMsg(failed, encEvent(core.EventTaskScheduled, func(e *core.HistoryEvent) { e.EventID, e.Name = 0, "Charge" }))
	s.Activities[1] = encMsg(running, encEvent(core.EventTaskScheduled, func(e *core.HistoryEvent) { e.EventID, e.Name = 1, "Ship" }))
	s.Activities[2] = nil
	s.Timers[4] = encMsg(later, encStart(later))
	s.Timers[2] = encMsg(running, encEvent(core.EventTimerFired, func(e *core.HistoryEvent) { e.FireAt = encT0.Add(time.Hour) }))
	s.Outbox = []*OutboxBatch{
		{Pos: 1200, Dest: 0, Messages: []*core.TaskMessage{encMsg("x!0", encEvent(core.EventEventRaised, nil))}},
		{Pos: 1200, Dest: 5, Prev: 1100, Messages: []*core.TaskMessage{encMsg("x!5", encEvent(core.EventEventRaised, nil)), encMsg("y!5", nil)}},
	}
	s.OutboxLast[0], s.OutboxLast[5], s.OutboxLast[9] = 1200, 1200, 40
	s.Dedup[7] = DedupMark{Pos: 100, Sub: 2}
	s.Dedup[0] = DedupMark{Pos: 50}
	s.Dedup[11] = DedupMark{Pos: 1, Sub: 1}
	s.Requests = &RequestLog{SweptAt: encT0, Clients: map[string]*ClientRequests{
		"client-b": {Order: []uint64{9, 3}, Answers: map[uint64]*RequestAnswer{
			9: {At: encT0, Error: "no instance x", ErrorCode: transport.CodeNotFound},
			3: {At: encT0.Add(time.Second), Count: 2}}},
		"client-a": {Order: []uint64{1}, Answers: map[uint64]*RequestAnswer{1: {At: encT0}}},
	}}
	return s
}

func roundTripState(t *testing.T, s *State) *State {
	t.Helper()
	b, err := EncodeState(s)
	if err != nil {
		t.Fatalf("encode state: %v", err)
	}
	got, err := DecodeState(b)
	if err != nil {
		t.Fatalf("decode state: %v", err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("state round trip:\n got %s\nwant %s", dumpState(got), dumpState(s))
	}
	b2, err := EncodeState(got)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding the decoded state gives other bytes (%v)", err)
	}
	return got
}

// dumpState shows a state in full (JSON shows nil slices and maps as
// null, empty ones as [] and {}).
func dumpState(s *State) string {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestEncodeStateRoundTrip(t *testing.T) {
	s := fullState()
	assertPopulated(t, "State", reflect.ValueOf(s))
	roundTripState(t, s)
}

func TestEncodeStateNilsAndEmpties(t *testing.T) {
	roundTripState(t, &State{})
	roundTripState(t, NewState(0, 1))
	s := NewState(3, 4)
	s.Outbox = []*OutboxBatch{} // after an ack removed every batch
	s.Instances["a"] = &Instance{ID: "a"}
	s.Instances["b"] = &Instance{ID: "b", History: []*core.HistoryEvent{}, Pending: []*core.HistoryEvent{},
		Entity: &core.EntityState{}, Record: InstanceRecord{Input: []byte{}, Output: []byte{}, CustomStatus: []byte{}, Tags: map[string]string{}}}
	s.Instances[""] = &Instance{}
	s.Activities[0] = nil
	s.Timers[0] = &core.TaskMessage{}
	roundTripState(t, s)
	s.Outbox = []*OutboxBatch{{}, {Messages: []*core.TaskMessage{}}}
	roundTripState(t, s)
	s.Requests = &RequestLog{Clients: map[string]*ClientRequests{}} // every answer expired
	roundTripState(t, s)
}

// TestEncodeStateRealistic builds a state by applying events, checks that
// it survives encoding after every step, and that replaying the encoded
// log entries on a fresh state gives the same state.
func TestEncodeStateRealistic(t *testing.T) {
	const count = 4
	live := NewState(0, count)
	var log [][]byte
	pos := uint64(0)
	apply := func(ev Event) *Effects {
		t.Helper()
		pos++
		at := encT0.Add(time.Duration(pos) * time.Second)
		b, err := EncodeLogEntry(LogEntry{Pos: pos, At: at, Event: ev})
		if err != nil {
			t.Fatalf("step %d: encode %T: %v", pos, ev, err)
		}
		log = append(log, b)
		var fx Effects
		live.Apply(pos, at, ev, &fx)
		roundTripState(t, live)
		return &fx
	}
	now := func() time.Time { return encT0.Add(time.Duration(pos) * time.Second) }

	// A creation request.
	start := encStart("order!0")
	start.FireAt, start.Parent = time.Time{}, nil
	apply(&ClientRequestReceived{InputPos: 1, Request: &transport.ClientRequest{Kind: transport.RequestCreate,
		ClientID: "c", RequestID: 1, Timestamp: encT0, InstanceID: "order!0", Event: start}})
	inst := live.Instances["order!0"]
	if inst == nil || len(inst.Pending) != 1 {
		t.Fatalf("create: %+v", inst)
	}

	// A scheduled start, and an event that waits behind it.
	later := encStart("later!0")
	later.Parent, later.Tags = nil, nil
	apply(&ClientRequestReceived{InputPos: 2, Request: &transport.ClientRequest{Kind: transport.RequestCreate,
		ClientID: "c", RequestID: 2, InstanceID: "later!0", Event: later}})
	apply(&ClientRequestReceived{InputPos: 3, Request: &transport.ClientRequest{Kind: transport.RequestRaiseEvent,
		ClientID: "c", RequestID: 3, InstanceID: "later!0", Event: encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name = "Early" })}})
	if !live.Instances["later!0"].WaitingForStart {
		t.Fatal("scheduled start is not waiting")
	}

	// The first episode: an activity, a timer, a message to another
	// partition, and an entity signal on this one.
	fx := apply(&BatchProcessed{InstanceID: "order!0", Generation: inst.Generation, Consumed: 1,
		NewEvents: []*core.HistoryEvent{
			encEvent(core.EventOrchestratorStarted, nil), start,
			encEvent(core.EventTaskScheduled, func(e *core.HistoryEvent) { e.EventID, e.Name = 0, "Charge" }),
			encEvent(core.EventTimerCreated, func(e *core.HistoryEvent) { e.EventID, e.FireAt = 1, now().Add(time.Hour) }),
		},
		Activities: []*core.TaskMessage{encMsg("order!0", encEvent(core.EventTaskScheduled, func(e *core.HistoryEvent) { e.EventID, e.Name = 0, "Charge" }))},
		Timers: []*core.TaskMessage{{Target: core.Instance{InstanceID: "order!0", ExecutionID: "exec-order!0"},
			Event: encEvent(core.EventTimerFired, func(e *core.HistoryEvent) { e.TaskScheduledID, e.FireAt = 1, now().Add(3*time.Second) })}},
		Messages: []*core.TaskMessage{
			encMsg("other!1", encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name, e.Input = "Ping", []byte("1") })),
			{Target: core.Instance{InstanceID: "@counter@c!0"}, Event: encEvent(core.EventEntityOperationSignaled, func(e *core.HistoryEvent) {
				e.Name, e.RequestID, e.Input = "add", "req-1", []byte("5")
			})},
		},
		Status: core.StatusRunning, Custom: []byte(`"charging"`)})
	if len(fx.Activities) != 1 || len(fx.Timers) != 1 || len(fx.Outbox) != 1 || live.Instances["@counter@c!0"] == nil {
		t.Fatalf("episode effects: %+v", fx)
	}
	if p := live.Instances["order!0"].Pending; p == nil || len(p) != 0 {
		t.Fatalf("pending after the episode: %#v (want empty, not nil)", p)
	}

	// Messages from another partition, and an entity signal from a client.
	apply(&MessagesReceived{InputPos: 4, Batch: &transport.MessageBatch{Origin: 2, OriginPos: 900, FirstSub: 0,
		Messages: []*core.TaskMessage{encMsg("order!0", encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.Name = "Approval" }))}}})
	apply(&ClientRequestReceived{InputPos: 5, Request: &transport.ClientRequest{Kind: transport.RequestSignalEntity,
		ClientID: "c", RequestID: 5, InstanceID: "@counter@c!0", Event: encEvent(core.EventEntityOperationSignaled, func(e *core.HistoryEvent) { e.Name = "get" })}})

	// The entity runs: it holds a lock and queues a request.
	ent := live.Instances["@counter@c!0"]
	apply(&EntityBatchProcessed{InstanceID: ent.ID, Generation: ent.Generation, Consumed: 2,
		State: &core.EntityState{Exists: true, Value: []byte("5"), LockedBy: "order!0",
			Queue: []*core.HistoryEvent{encEvent(core.EventEntityOperationCalled, func(e *core.HistoryEvent) {
				e.Name, e.RequestID = "add", "req-9"
				e.Parent = &core.ParentInstance{InstanceID: "other!1", TaskScheduledID: 2}
			})}},
		Messages: []*core.TaskMessage{encMsg("other!1", encEvent(core.EventEntityOperationCompleted, func(e *core.HistoryEvent) {
			e.RequestID, e.Result = "req-1", []byte("5")
		}))}})
	// ... and later drains its queue.
	apply(&EntityBatchProcessed{InstanceID: ent.ID, Generation: ent.Generation, Consumed: 0,
		State: &core.EntityState{Exists: true, Value: []byte("6"), Queue: []*core.HistoryEvent{}}})

	// The receiver acks everything: the outbox becomes empty (not nil).
	apply(&AckReceived{InputPos: 6, Ack: &transport.Ack{From: 1, UpTo: pos}})
	if live.Outbox == nil || len(live.Outbox) != 0 {
		t.Fatalf("outbox after the ack: %#v", live.Outbox)
	}

	// The activity completes and the timer fires.
	apply(&ActivityCompleted{ActivityID: fx.Activities[0], Reply: encMsg("order!0", encEvent(core.EventTaskCompleted, func(e *core.HistoryEvent) {
		e.TaskScheduledID, e.Result = 0, []byte(`"ok"`)
	}))})
	apply(&TimerFired{TimerIDs: fx.Timers})
	apply(&RecoveryCompleted{})
	if n := len(live.Instances["order!0"].Pending); n != 3 {
		t.Fatalf("order!0 has %d pending messages, want 3", n)
	}

	// Replaying the encoded log gives the live state.
	replayed := NewState(0, count)
	for _, b := range log {
		e, err := DecodeLogEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		var fx Effects
		replayed.Apply(e.Pos, e.At, e.Event, &fx)
	}
	if !reflect.DeepEqual(replayed, live) {
		t.Fatalf("replayed state differs:\n got %s\nwant %s", dumpState(replayed), dumpState(live))
	}

	// So does replaying the tail of the log on a checkpoint.
	for k := range log {
		replayed = NewState(0, count)
		for i, b := range log {
			if i == k {
				ck, err := EncodeState(replayed)
				if err != nil {
					t.Fatal(err)
				}
				if replayed, err = DecodeState(ck); err != nil {
					t.Fatal(err)
				}
			}
			e, err := DecodeLogEntry(b)
			if err != nil {
				t.Fatal(err)
			}
			replayed.Apply(e.Pos, e.At, e.Event, &Effects{})
		}
		if !reflect.DeepEqual(replayed, live) {
			t.Fatalf("state replayed from a checkpoint after %d entries differs:\n got %s\nwant %s", k, dumpState(replayed), dumpState(live))
		}
	}
}

func TestEncodingDeterministic(t *testing.T) {
	a, b := fullState(), fullState()
	// Rebuild b's maps in another insertion order.
	for _, m := range []any{&b.Instances, &b.Activities, &b.Timers, &b.Dedup} {
		v := reflect.ValueOf(m).Elem()
		keys := v.MapKeys()
		fresh := reflect.MakeMap(v.Type())
		for i := len(keys) - 1; i >= 0; i-- {
			fresh.SetMapIndex(keys[i], v.MapIndex(keys[i]))
		}
		v.Set(fresh)
	}
	ba, err := EncodeState(a)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		bb, err := EncodeState(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) {
			t.Fatal("equal states encode differently")
		}
	}
	d, err := DecodeState(ba)
	if err != nil {
		t.Fatal(err)
	}
	if bd, err := EncodeState(d); err != nil || !bytes.Equal(ba, bd) {
		t.Fatalf("the decoded state encodes differently (%v)", err)
	}
	for _, ev := range fullEvents() {
		e := LogEntry{Pos: 5, At: encT0, Event: ev}
		b1, err1 := EncodeLogEntry(e)
		b2, err2 := EncodeLogEntry(e)
		if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("%T encodes differently (%v, %v)", ev, err1, err2)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := EncodeLogEntry(LogEntry{Pos: 1, Event: &TimerFired{TimerIDs: []uint64{1}}})
	if err != nil {
		t.Fatal(err)
	}
	goodState, err := EncodeState(fullState())
	if err != nil {
		t.Fatal(err)
	}
	// A log entry with a field number this build does not know and no
	// event it knows (as a newer build's event would look).
	future := protowire.AppendTag([]byte{EncodingVersion}, 1, protowire.VarintType)
	future = protowire.AppendVarint(future, 7)
	future = protowire.AppendTag(future, 99, protowire.BytesType)
	future = protowire.AppendBytes(future, []byte{8, 1})
	badNanos, _ := proto.Marshal(&partitionspb.LogEntry{At: &partitionspb.Time{Nanos: 1e9},
		Event: &partitionspb.LogEntry_RecoveryCompleted{RecoveryCompleted: &partitionspb.RecoveryCompleted{}}})
	dupInstance, _ := proto.Marshal(&partitionspb.State{Instances: &partitionspb.InstanceMap{
		Instances: []*partitionspb.Instance{{Id: []byte("a")}, {Id: []byte("a")}}}})
	dupTimer, _ := proto.Marshal(&partitionspb.State{Timers: &partitionspb.TaskMessageMap{
		Entries: []*partitionspb.TaskMessageEntry{{Id: 1}, {Id: 1}}}})

	cases := []struct {
		name  string
		state bool
		b     []byte
		want  string
	}{
		{"empty", false, nil, "partitions: decode log entry: empty input"},
		{"empty state", true, []byte{}, "partitions: decode state: empty input"},
		{"bad version", false, append([]byte{9}, good[1:]...), "partitions: decode log entry: unknown format version 9 (this build reads 1)"},
		{"bad version state", true, append([]byte{0}, goodState[1:]...), "partitions: decode state: unknown format version 0"},
		{"garbage", false, []byte{EncodingVersion, 0xff, 0xff, 0xff}, "partitions: decode log entry: invalid protobuf data"},
		{"garbage state", true, []byte{EncodingVersion, 0x0a, 0x7f, 1}, "partitions: decode state: invalid protobuf data"},
		{"truncated", false, good[:len(good)-1], "partitions: decode log entry: invalid protobuf data"},
		{"truncated state", true, goodState[:len(goodState)/2], "partitions: decode state: invalid protobuf data"},
		{"only version", false, []byte{EncodingVersion}, "partitions: decode log entry: no event"},
		{"unknown event", false, future, "partitions: decode log entry: no event"},
		{"bad nanos", false, append([]byte{EncodingVersion}, badNanos...), "partitions: decode log entry: at: nanoseconds 1000000000 out of range"},
		{"duplicate instance", true, append([]byte{EncodingVersion}, dupInstance...), `partitions: decode state: instance "a" appears twice`},
		{"duplicate timer", true, append([]byte{EncodingVersion}, dupTimer...), "partitions: decode state: timer 1 appears twice"},
	}
	for _, c := range cases {
		var err error
		if c.state {
			_, err = DecodeState(c.b)
		} else {
			_, err = DecodeLogEntry(c.b)
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want %q...", c.name, err, c.want)
		}
	}
	var ve *EncodingVersionError
	if _, err := DecodeState(append([]byte{2}, goodState[1:]...)); !errors.As(err, &ve) || ve.Version != 2 {
		t.Errorf("version error: %v", err)
	}
	// The only-version blob is a valid empty state.
	if s, err := DecodeState([]byte{EncodingVersion}); err != nil || !reflect.DeepEqual(s, &State{}) {
		t.Errorf("empty state: %+v, %v", s, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	withInst := func(key string, inst *Instance) *State {
		s := NewState(0, 1)
		s.Instances[key] = inst
		return s
	}
	entries := []struct {
		e    LogEntry
		want string
	}{
		{LogEntry{}, "partitions: encode log entry: no event"},
		{LogEntry{Event: (*BatchProcessed)(nil)}, "partitions: encode log entry: nil *BatchProcessed"},
		{LogEntry{Event: &BatchProcessed{Activities: []*core.TaskMessage{nil}}}, "partitions: encode log entry: BatchProcessed: activity 0 is nil"},
		{LogEntry{Event: &BatchProcessed{NewEvents: []*core.HistoryEvent{nil}}}, "partitions: encode log entry: BatchProcessed: new events: event 0 is nil"},
		{LogEntry{Event: &MessagesReceived{Batch: &transport.MessageBatch{Messages: []*core.TaskMessage{{}, nil}}}},
			"partitions: encode log entry: MessagesReceived: message 1 is nil"},
		{LogEntry{Event: &ClientRequestReceived{Request: &transport.ClientRequest{
			Event: encEvent(core.EventEventRaised, func(e *core.HistoryEvent) { e.FireAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) })}}},
			"partitions: encode log entry: ClientRequestReceived: request event:"},
	}
	for _, c := range entries {
		if _, err := EncodeLogEntry(c.e); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%#v: got error %v, want %q...", c.e.Event, err, c.want)
		}
	}
	states := []struct {
		s    *State
		want string
	}{
		{nil, "partitions: encode state: nil state"},
		{withInst("a", nil), `partitions: encode state: instance "a" is nil`},
		{withInst("a", &Instance{ID: "b"}), `partitions: encode state: instance "b" is stored under the key "a"`},
		{withInst("a", &Instance{ID: "a", Pending: []*core.HistoryEvent{nil}}), `partitions: encode state: instance "a": pending: event 0 is nil`},
		{&State{Outbox: []*OutboxBatch{nil}}, "partitions: encode state: outbox batch 0 is nil"},
	}
	for _, c := range states {
		if _, err := EncodeState(c.s); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("got error %v, want %q...", err, c.want)
		}
	}
}

func FuzzDecodeLogEntry(f *testing.F) {
	for i, ev := range fullEvents() {
		b, err := EncodeLogEntry(LogEntry{Pos: uint64(i), At: encT0, Event: ev})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{EncodingVersion})
	f.Add([]byte{EncodingVersion, 0x1a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeLogEntry(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "partitions: decode log entry: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		// Whatever decodes re-encodes, and decodes to the same entry.
		b2, err := EncodeLogEntry(e)
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		e2, err := DecodeLogEntry(b2)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoding changes the entry:\n%#v\n%#v", e.Event, e2.Event)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	for _, s := range []*State{fullState(), NewState(0, 1), {}} {
		b, err := EncodeState(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			return
		}
		b2, err := EncodeState(s)
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		s2, err := DecodeState(b2)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoding changes the state (%v)", err)
		}
	})
}
