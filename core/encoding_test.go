package core

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/core/corepb"
)

// t0 is a UTC time without a monotonic reading, so decoded times compare
// equal with reflect.DeepEqual.
var t0 = time.Date(2024, 5, 17, 9, 30, 15, 123456789, time.UTC)

func sampleFailure() *FailureDetails {
	return &FailureDetails{
		Type:       FailureTaskFailed,
		Message:    "activity \"Charge\" failed",
		StackTrace: "main.orchestrate()\n\tmain.go:12",
		Inner: &FailureDetails{
			Type:         "*errors.errorString",
			Message:      "card declined",
			StackTrace:   "main.charge()\n\tmain.go:40",
			NonRetriable: true,
			Inner:        &FailureDetails{Message: "upstream 402"},
		},
		NonRetriable: true,
	}
}

func sampleParent() *ParentInstance {
	return &ParentInstance{Name: "Parent", InstanceID: "parent-1", ExecutionID: "exec-p", TaskScheduledID: 4}
}

// sampleEvents returns one event of every valid kind, with the fields that
// kind uses populated.
func sampleEvents() []*HistoryEvent {
	ev := func(kind EventKind, id int32, f func(e *HistoryEvent)) *HistoryEvent {
		e := NewEvent(kind, t0.Add(time.Duration(kind)*time.Millisecond))
		e.EventID = id
		f(e)
		return e
	}
	lockSet := []EntityID{{Name: "account", Key: "a"}, {Name: "account", Key: "b"}, {Name: "ledger", Key: ""}}
	events := []*HistoryEvent{
		ev(EventExecutionStarted, NoEventID, func(e *HistoryEvent) {
			e.Name, e.Version, e.InstanceID, e.ExecutionID = "Checkout", "v2", "order-42", "exec-1"
			e.Input = []byte(`{"order":42}`)
			e.Parent = sampleParent()
			e.FireAt = t0.Add(time.Hour) // scheduled start
			e.Tags = map[string]string{"tenant": "contoso", "priority": "high", "": "empty key"}
		}),
		ev(EventExecutionCompleted, NoEventID, func(e *HistoryEvent) {
			e.Status = StatusFailed
			e.Result = []byte(`null`)
			e.Failure = sampleFailure()
		}),
		ev(EventExecutionTerminated, NoEventID, func(e *HistoryEvent) {
			e.Reason = "operator request"
			e.Input = []byte(`"bye"`)
		}),
		ev(EventExecutionSuspended, NoEventID, func(e *HistoryEvent) { e.Reason = "maintenance" }),
		ev(EventExecutionResumed, NoEventID, func(e *HistoryEvent) { e.Reason = "maintenance over" }),
		ev(EventContinuedAsNew, NoEventID, func(e *HistoryEvent) {
			e.Input = []byte(`{"iteration":2}`)
			e.Version = "v3"
		}),
		ev(EventTaskScheduled, 0, func(e *HistoryEvent) {
			e.Name, e.Version = "Charge", "v1"
			e.Input = []byte{}
		}),
		ev(EventTaskCompleted, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID = 0
			e.Result = []byte(`{"ok":true}`)
		}),
		ev(EventTaskFailed, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID = 1
			e.Failure = sampleFailure()
		}),
		ev(EventSubOrchestrationCreated, 2, func(e *HistoryEvent) {
			e.Name, e.Version, e.InstanceID, e.ExecutionID = "Ship", "v1", "order-42:2", "exec-child"
			e.Input = []byte(`"box"`)
			e.Tags = map[string]string{"k": "v"}
		}),
		ev(EventSubOrchestrationCompleted, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID = 2
			e.Result = []byte(`"shipped"`)
		}),
		ev(EventSubOrchestrationFailed, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID = 2
			e.Failure = sampleFailure()
		}),
		ev(EventTimerCreated, 3, func(e *HistoryEvent) { e.FireAt = t0.Add(24 * time.Hour) }),
		ev(EventTimerFired, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID = 3
			e.FireAt = t0.Add(24 * time.Hour)
		}),
		ev(EventEventRaised, NoEventID, func(e *HistoryEvent) {
			e.Name = "Approval"
			e.Input = []byte(`true`)
		}),
		ev(EventEventSent, 4, func(e *HistoryEvent) {
			e.Name, e.InstanceID = "Approval", "other-instance"
			e.Input = []byte(`false`)
		}),
		ev(EventOrchestratorStarted, NoEventID, func(e *HistoryEvent) {}),
		ev(EventOrchestratorCompleted, NoEventID, func(e *HistoryEvent) {}),
		ev(EventEntityOperationCalled, 5, func(e *HistoryEvent) {
			e.Name, e.InstanceID, e.RequestID = "add", "@counter@c1", "req-5"
			e.Input = []byte(`5`)
			e.Parent = &ParentInstance{InstanceID: "order-42", ExecutionID: "exec-1", TaskScheduledID: 5}
			e.LockSet = lockSet
		}),
		ev(EventEntityOperationSignaled, 6, func(e *HistoryEvent) {
			e.Name, e.InstanceID, e.RequestID = "reset", "@counter@c2", "req-6"
			e.FireAt = t0.Add(time.Minute) // scheduled signal
			e.Parent = &ParentInstance{InstanceID: "order-42", TaskScheduledID: NoEventID}
		}),
		ev(EventEntityOperationCompleted, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID, e.RequestID = 5, "req-5"
			e.Result = []byte(`10`)
		}),
		ev(EventEntityOperationFailed, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID, e.RequestID = 5, "req-5"
			e.Failure = &FailureDetails{Type: FailurePanic, Message: "runtime error: index out of range"}
		}),
		ev(EventEntityLockRequested, 7, func(e *HistoryEvent) {
			e.RequestID, e.InstanceID = "req-7", "@account@a"
			e.LockSet = lockSet
			e.LockPosition = 1
			e.Parent = &ParentInstance{InstanceID: "order-42", ExecutionID: "exec-1", TaskScheduledID: 7}
		}),
		ev(EventEntityLockGranted, NoEventID, func(e *HistoryEvent) {
			e.TaskScheduledID, e.RequestID, e.InstanceID = 7, "req-7", "@ledger@"
		}),
		ev(EventEntityLockReleased, 8, func(e *HistoryEvent) {
			e.RequestID, e.InstanceID = "req-7", "@account@a"
			e.LockSet = lockSet
		}),
	}
	return events
}

// fullEvent returns an event with every field set to a non-zero value
// (checked by TestFullEventSetsEveryField, so that a field added to
// HistoryEvent but not to the encoding fails the round-trip test).
func fullEvent() *HistoryEvent {
	return &HistoryEvent{
		EventID:         -7,
		Kind:            EventEntityLockRequested,
		Timestamp:       t0,
		Name:            "name",
		Version:         "version",
		InstanceID:      "instance",
		ExecutionID:     "execution",
		Input:           []byte("input"),
		Result:          []byte("result"),
		Failure:         sampleFailure(),
		TaskScheduledID: 1 << 30,
		FireAt:          t0.Add(-1000 * time.Hour),
		Parent:          &ParentInstance{Name: "p", InstanceID: "pi", ExecutionID: "pe", TaskScheduledID: -1},
		Status:          StatusSuspended,
		Reason:          "reason",
		RequestID:       "request",
		LockSet:         []EntityID{{Name: "n", Key: "k"}},
		LockPosition:    -3,
		Tags:            map[string]string{"a": "1", "b": "2"},
	}
}

func sampleEntityState() *EntityState {
	return &EntityState{
		Exists:   true,
		Value:    []byte(`{"balance":100}`),
		LockedBy: "order-42",
		Queue:    sampleEvents()[18:21],
	}
}

func sampleTaskMessage() *TaskMessage {
	return &TaskMessage{Target: Instance{InstanceID: "order-42", ExecutionID: "exec-1"}, Event: fullEvent()}
}

// assertAllFieldsSet fails if any field of the struct v, recursively
// through pointers to structs, has its zero value. A pointer to a type
// already on the path (FailureDetails.Inner) must be non-nil but is not
// followed.
func assertAllFieldsSet(t *testing.T, path string, v reflect.Value, seen ...reflect.Type) {
	t.Helper()
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			t.Errorf("%s is nil", path)
			return
		}
		if slices.Contains(seen, v.Type()) {
			return
		}
		seen = append(seen, v.Type())
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct || v.Type() == reflect.TypeOf(time.Time{}) {
		if v.IsZero() {
			t.Errorf("%s is zero", path)
		}
		return
	}
	for i := 0; i < v.NumField(); i++ {
		assertAllFieldsSet(t, path+"."+v.Type().Field(i).Name, v.Field(i), seen...)
	}
}

func TestSamplesSetEveryField(t *testing.T) {
	assertAllFieldsSet(t, "HistoryEvent", reflect.ValueOf(fullEvent()))
	assertAllFieldsSet(t, "EntityState", reflect.ValueOf(sampleEntityState()))
	assertAllFieldsSet(t, "TaskMessage", reflect.ValueOf(sampleTaskMessage()))
	assertAllFieldsSet(t, "FailureDetails", reflect.ValueOf(sampleFailure()))
	kinds := map[EventKind]bool{}
	for _, e := range sampleEvents() {
		kinds[e.Kind] = true
	}
	for k := EventUnknown + 1; k < eventKindCount; k++ {
		if !kinds[k] {
			t.Errorf("sampleEvents has no %v event", k)
		}
	}
}

// normalize returns a copy of e as decoding gives it back: times in UTC
// without a monotonic reading, empty collections nil.
func normalize(e *HistoryEvent) *HistoryEvent {
	if e == nil {
		return nil
	}
	c := e.Clone()
	if !c.Timestamp.IsZero() {
		c.Timestamp = c.Timestamp.Round(0).UTC()
	}
	if !c.FireAt.IsZero() {
		c.FireAt = c.FireAt.Round(0).UTC()
	}
	if len(c.LockSet) == 0 {
		c.LockSet = nil
	}
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	return c
}

func roundTripEvent(t *testing.T, e *HistoryEvent) *HistoryEvent {
	t.Helper()
	b, err := MarshalHistoryEvent(e)
	if err != nil {
		t.Fatalf("MarshalHistoryEvent(%v): %v", e, err)
	}
	if b[0] != FormatVersion {
		t.Fatalf("first byte %d, want FormatVersion %d", b[0], FormatVersion)
	}
	got, err := UnmarshalHistoryEvent(b)
	if err != nil {
		t.Fatalf("UnmarshalHistoryEvent(%v): %v", e, err)
	}
	if want := normalize(e); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %v:\n got %#v\nwant %#v", e, got, want)
	}
	return got
}

func TestHistoryEventRoundTripEveryKind(t *testing.T) {
	for _, e := range sampleEvents() {
		t.Run(e.Kind.String(), func(t *testing.T) { roundTripEvent(t, e) })
	}
}

func TestHistoryEventRoundTripAllFields(t *testing.T) {
	got := roundTripEvent(t, fullEvent())
	// The failure chain survives to its end.
	if got.Failure.Inner.Inner.Message != "upstream 402" || got.Failure.Inner.Inner.Inner != nil {
		t.Fatalf("failure chain: %v", got.Failure)
	}
}

func TestHistoryEventRoundTripEdgeValues(t *testing.T) {
	cases := map[string]*HistoryEvent{
		"zero event":        {},
		"new event":         NewEvent(EventOrchestratorStarted, time.Time{}),
		"unknown kind":      {Kind: 999, Status: 42, EventID: -2147483648, TaskScheduledID: 2147483647},
		"negative kind":     {Kind: -5, Status: -1},
		"invalid utf8":      {Name: "\xff\xfe", Reason: "bad \x80 byte", Tags: map[string]string{"\xc3": "\xa9"}, LockSet: []EntityID{{Name: "\xff", Key: "\x00"}}},
		"nul bytes":         {Name: "a\x00b", Input: []byte{0, 0, 0}},
		"empty payloads":    {Input: []byte{}, Result: []byte{}},
		"empty collections": {LockSet: []EntityID{}, Tags: map[string]string{}},
		"empty parent":      {Parent: &ParentInstance{}},
		"empty failure":     {Failure: &FailureDetails{}},
		"empty lock entity": {LockSet: []EntityID{{}}},
		"min time":          {Timestamp: time.Unix(0, -1<<63), FireAt: time.Unix(0, 1<<63-1)},
		"before epoch":      {Timestamp: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC)},
		"one ns after zero": {Timestamp: time.Unix(0, 1).UTC()},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			got := roundTripEvent(t, e)
			if (e.Input == nil) != (got.Input == nil) || (e.Result == nil) != (got.Result == nil) {
				t.Fatalf("nil/empty payloads not kept: in %#v %#v, out %#v %#v", e.Input, e.Result, got.Input, got.Result)
			}
		})
	}
}

func TestTimesRoundTrip(t *testing.T) {
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	now := time.Now() // has a monotonic reading and the local zone
	for _, ts := range []time.Time{
		{},
		now,
		now.In(loc),
		time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC),
		time.Date(1677, 9, 21, 0, 12, 43, 145224192, time.UTC),
		time.Date(2024, 1, 1, 0, 0, 0, 1, loc),
	} {
		e := &HistoryEvent{Timestamp: ts, FireAt: ts}
		b, err := MarshalHistoryEvent(e)
		if err != nil {
			t.Fatalf("%v: %v", ts, err)
		}
		got, err := UnmarshalHistoryEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Timestamp.Equal(ts) || !got.FireAt.Equal(ts) {
			t.Errorf("time %v came back as %v / %v", ts, got.Timestamp, got.FireAt)
		}
		if ts.IsZero() {
			if got.Timestamp != (time.Time{}) || got.FireAt != (time.Time{}) {
				t.Errorf("zero time came back as %#v", got.Timestamp)
			}
		} else if got.Timestamp.Location() != time.UTC {
			t.Errorf("decoded time is in %v, want UTC", got.Timestamp.Location())
		}
	}
}

// Documented limitation: the unix epoch is stored as 0, which means the
// zero time.
func TestUnixEpochReadsAsZeroTime(t *testing.T) {
	got := roundTripEvent(t, &HistoryEvent{Timestamp: time.Unix(0, 1).UTC()})
	if !got.Timestamp.Equal(time.Unix(0, 1)) {
		t.Fatalf("got %v", got.Timestamp)
	}
	b, err := MarshalHistoryEvent(&HistoryEvent{Timestamp: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := UnmarshalHistoryEvent(b)
	if err != nil || !e.Timestamp.IsZero() {
		t.Fatalf("epoch came back as %v, %v; want the zero time", e.Timestamp, err)
	}
}

func TestTimeOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		e     *HistoryEvent
		field string
	}{
		{&HistoryEvent{Kind: EventTimerCreated, FireAt: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, "FireAt 2300-01-01"},
		{&HistoryEvent{Timestamp: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}, "Timestamp 1600-01-01"},
		{&HistoryEvent{Timestamp: time.Time{}.Add(1)}, "Timestamp 0001-01-01"},
	} {
		_, err := MarshalHistoryEvent(tc.e)
		if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "outside the encodable range") {
			t.Errorf("MarshalHistoryEvent(%v): err = %v, want an error about %s", tc.e, err, tc.field)
		}
		if _, err := HistoryEventToProto(tc.e); err == nil {
			t.Errorf("HistoryEventToProto(%v) did not fail", tc.e)
		}
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	events := append(sampleEvents(), fullEvent())
	b, err := MarshalHistory(events)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalHistory(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(events) {
		t.Fatalf("got %d events, want %d", len(got), len(events))
	}
	for i := range events {
		if want := normalize(events[i]); !reflect.DeepEqual(got[i], want) {
			t.Errorf("event %d:\n got %#v\nwant %#v", i, got[i], want)
		}
	}

	for _, empty := range [][]*HistoryEvent{nil, {}} {
		b, err := MarshalHistory(empty)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, []byte{FormatVersion}) {
			t.Errorf("empty history encodes as %x", b)
		}
		got, err := UnmarshalHistory(b)
		if err != nil || got != nil {
			t.Errorf("empty history decodes as %v, %v", got, err)
		}
	}
}

func TestTaskMessageRoundTrip(t *testing.T) {
	for name, m := range map[string]*TaskMessage{
		"full":      sampleTaskMessage(),
		"nil event": {Target: Instance{InstanceID: "x"}},
		"no target": {Event: NewEvent(EventEventRaised, t0)},
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := MarshalTaskMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalTaskMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			want := &TaskMessage{Target: m.Target, Event: normalize(m.Event)}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v\nwant %#v", got, want)
			}
		})
	}
}

func TestEntityStateRoundTrip(t *testing.T) {
	for name, s := range map[string]*EntityState{
		"with queue":  sampleEntityState(),
		"empty":       {},
		"empty value": {Exists: true, Value: []byte{}},
		"locked only": {LockedBy: "orch"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := MarshalEntityState(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalEntityState(b)
			if err != nil {
				t.Fatal(err)
			}
			want := s.Clone()
			for i, e := range want.Queue {
				want.Queue[i] = normalize(e)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v\nwant %#v", got, want)
			}
			if got.IsEmpty() != s.IsEmpty() {
				t.Fatalf("IsEmpty changed")
			}
		})
	}
}

func TestFailureDetailsRoundTrip(t *testing.T) {
	deep := &FailureDetails{Message: "root"}
	for i := 1; i < MaxFailureDepth; i++ {
		deep = &FailureDetails{Type: "level", Message: fmt.Sprint(i), Inner: deep}
	}
	for name, f := range map[string]*FailureDetails{
		"chain": sampleFailure(),
		"empty": {},
		"deep":  deep,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := MarshalFailureDetails(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalFailureDetails(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("got %v\nwant %v", got, f)
			}
			if got.Error() != f.Error() {
				t.Fatalf("Error() = %q, want %q", got.Error(), f.Error())
			}
		})
	}
}

func TestFailureDetailsTooDeep(t *testing.T) {
	deep := &FailureDetails{Message: "root"}
	for i := 0; i < MaxFailureDepth; i++ {
		deep = &FailureDetails{Inner: deep}
	}
	cyclic := &FailureDetails{Message: "loop"}
	cyclic.Inner = cyclic
	for name, f := range map[string]*FailureDetails{"deep": deep, "cyclic": cyclic} {
		if _, err := MarshalFailureDetails(f); err == nil || !strings.Contains(err.Error(), "nested more than") {
			t.Errorf("%s: MarshalFailureDetails err = %v", name, err)
		}
		if _, err := MarshalHistoryEvent(&HistoryEvent{Kind: EventTaskFailed, Failure: f}); err == nil {
			t.Errorf("%s: MarshalHistoryEvent did not fail", name)
		}
	}

	// A too deep chain written by someone else is refused on decoding too.
	p := &corepb.FailureDetails{Message: []byte("root")}
	for i := 0; i < MaxFailureDepth; i++ {
		p = &corepb.FailureDetails{Inner: p}
	}
	raw, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = UnmarshalFailureDetails(append([]byte{FormatVersion}, raw...))
	if err == nil || !strings.Contains(err.Error(), "core: decode failure details: failure details nested more than 1000") {
		t.Errorf("decoding a too deep chain: err = %v", err)
	}
}

func TestEncodeNil(t *testing.T) {
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), "core: encode "+what+":") {
			t.Errorf("encoding nil %s: err = %v", what, err)
		}
	}
	_, err := MarshalHistoryEvent(nil)
	check("history event", err)
	_, err = MarshalTaskMessage(nil)
	check("task message", err)
	_, err = MarshalEntityState(nil)
	check("entity state", err)
	_, err = MarshalFailureDetails(nil)
	check("failure details", err)
	_, err = MarshalHistory([]*HistoryEvent{NewEvent(EventOrchestratorStarted, t0), nil})
	check("history", err)
	if err == nil || !strings.Contains(err.Error(), "event 1 is nil") {
		t.Errorf("nil event in history: err = %v", err)
	}
	_, err = MarshalEntityState(&EntityState{Queue: []*HistoryEvent{nil}})
	check("entity state", err)

	// The conversions map nil to nil.
	if p, err := HistoryEventToProto(nil); p != nil || err != nil {
		t.Errorf("HistoryEventToProto(nil) = %v, %v", p, err)
	}
	if e, err := HistoryEventFromProto(nil); e != nil || err != nil {
		t.Errorf("HistoryEventFromProto(nil) = %v, %v", e, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid, err := MarshalHistoryEvent(fullEvent())
	if err != nil {
		t.Fatal(err)
	}
	decoders := map[string]func([]byte) error{
		"history event":   func(b []byte) error { _, err := UnmarshalHistoryEvent(b); return err },
		"history":         func(b []byte) error { _, err := UnmarshalHistory(b); return err },
		"task message":    func(b []byte) error { _, err := UnmarshalTaskMessage(b); return err },
		"entity state":    func(b []byte) error { _, err := UnmarshalEntityState(b); return err },
		"failure details": func(b []byte) error { _, err := UnmarshalFailureDetails(b); return err },
	}
	for what, dec := range decoders {
		for _, tc := range []struct {
			name string
			in   []byte
			want string
		}{
			{"nil", nil, "core: decode " + what + ": empty input"},
			{"empty", []byte{}, "core: decode " + what + ": empty input"},
			{"version 7", append([]byte{7}, valid[1:]...), "core: decode " + what + ": unknown format version 7 (this build reads 1)"},
			{"version 0", []byte{0}, "core: decode " + what + ": unknown format version 0 (this build reads 1)"},
			{"garbage", []byte{FormatVersion, 0xff, 0xff, 0xff}, "core: decode " + what + ": invalid protobuf data: "},
			{"truncated", valid[:len(valid)-3], "core: decode " + what + ": invalid protobuf data: "},
		} {
			err := dec(tc.in)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%s, %s: err = %v, want prefix %q", what, tc.name, err, tc.want)
			}
			var verr *FormatVersionError
			if isVersion := errors.As(err, &verr); isVersion != strings.HasPrefix(tc.name, "version") {
				t.Errorf("%s, %s: errors.As(err, *FormatVersionError) = %v", what, tc.name, isVersion)
			}
		}
	}
	_, err = UnmarshalHistoryEvent([]byte{7})
	if got, want := err.Error(), "core: decode history event: unknown format version 7 (this build reads 1)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDeterministic(t *testing.T) {
	e := fullEvent()
	for i := 0; i < 50; i++ {
		e.Tags[fmt.Sprintf("tag-%d", i)] = fmt.Sprint(i * i)
	}
	first, err := MarshalHistoryEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		b, err := MarshalHistoryEvent(e.Clone())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, first) {
			t.Fatalf("encoding %d differs", i)
		}
	}
}

// The exported conversions agree with the binary encoding and share no
// memory with their arguments.
func TestProtoConversions(t *testing.T) {
	e := fullEvent()
	p, err := HistoryEventToProto(e)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := MarshalHistoryEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blob[1:], raw) {
		t.Fatal("HistoryEventToProto disagrees with MarshalHistoryEvent")
	}
	p.Name[0] = 'X'
	p.Input[0] = 'X'
	p.Failure.Message[0] = 'X'
	if e.Name != "name" || string(e.Input) != "input" || e.Failure.Message != sampleFailure().Message {
		t.Fatal("HistoryEventToProto shares memory with its argument")
	}

	p, _ = HistoryEventToProto(e)
	back, err := HistoryEventFromProto(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, normalize(e)) {
		t.Fatalf("got %#v\nwant %#v", back, e)
	}
	p.Name[0], p.Input[0], p.Tags[0].Value[0] = 'Y', 'Y', 'Y'
	if back.Name != "name" || string(back.Input) != "input" || back.Tags["a"] != "1" {
		t.Fatal("HistoryEventFromProto shares memory with its argument")
	}

	events := sampleEvents()
	hl, err := HistoryToProto(events)
	if err != nil {
		t.Fatal(err)
	}
	hback, err := HistoryFromProto(hl)
	if err != nil || len(hback) != len(events) {
		t.Fatalf("HistoryFromProto: %d events, %v", len(hback), err)
	}
	s := sampleEntityState()
	sp, err := EntityStateToProto(s)
	if err != nil {
		t.Fatal(err)
	}
	if sback, err := EntityStateFromProto(sp); err != nil || len(sback.Queue) != len(s.Queue) || string(sback.Value) != string(s.Value) {
		t.Fatalf("EntityStateFromProto: %v, %v", sback, err)
	}
	m := sampleTaskMessage()
	mp, err := TaskMessageToProto(m)
	if err != nil {
		t.Fatal(err)
	}
	if mback, err := TaskMessageFromProto(mp); err != nil || mback.Target != m.Target || !reflect.DeepEqual(mback.Event, normalize(m.Event)) {
		t.Fatalf("TaskMessageFromProto: %v, %v", mback, err)
	}
	fp, err := FailureDetailsToProto(sampleFailure())
	if err != nil {
		t.Fatal(err)
	}
	if fback, err := FailureDetailsFromProto(fp); err != nil || !reflect.DeepEqual(fback, sampleFailure()) {
		t.Fatalf("FailureDetailsFromProto: %v, %v", fback, err)
	}

	// Messages built by hand may hold nils where decoding never puts them.
	if _, err := HistoryFromProto(&corepb.HistoryEventList{Events: []*corepb.HistoryEvent{nil}}); err == nil {
		t.Error("HistoryFromProto accepted a nil event")
	}
	if _, err := HistoryEventFromProto(&corepb.HistoryEvent{LockSet: []*corepb.EntityId{nil}}); err == nil {
		t.Error("HistoryEventFromProto accepted a nil lock set entry")
	}
}

// Decoded values do not share memory with the input blob.
func TestDecodeDoesNotAliasInput(t *testing.T) {
	blob, err := MarshalHistoryEvent(fullEvent())
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalHistoryEvent(blob)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blob {
		blob[i] = 0
	}
	if !reflect.DeepEqual(got, normalize(fullEvent())) {
		t.Fatal("decoded event changed when the blob was overwritten")
	}
}

// The protobuf enums have the numbers and names of the Go constants.
func TestProtoEnumsMatchGo(t *testing.T) {
	upperSnake := func(s string) string {
		var b strings.Builder
		for i, r := range s {
			if i > 0 && unicode.IsUpper(r) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
		return b.String()
	}
	for k := EventKind(0); k < eventKindCount; k++ {
		if got, want := corepb.EventKind(k).String(), "EVENT_KIND_"+upperSnake(k.String()); got != want {
			t.Errorf("EventKind %d: proto name %s, want %s", k, got, want)
		}
	}
	if n := corepb.EventKind(0).Descriptor().Values().Len(); n != int(eventKindCount) {
		t.Errorf("proto EventKind has %d values, Go has %d", n, eventKindCount)
	}
	for s := RuntimeStatus(0); s < statusCount; s++ {
		if got, want := corepb.RuntimeStatus(s).String(), "RUNTIME_STATUS_"+upperSnake(s.String()); got != want {
			t.Errorf("RuntimeStatus %d: proto name %s, want %s", s, got, want)
		}
	}
	if n := corepb.RuntimeStatus(0).Descriptor().Values().Len(); n != int(statusCount) {
		t.Errorf("proto RuntimeStatus has %d values, Go has %d", n, statusCount)
	}
}

func FuzzUnmarshalHistoryEvent(f *testing.F) {
	for _, e := range append(sampleEvents(), fullEvent(), &HistoryEvent{}) {
		b, err := MarshalHistoryEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, seed := range [][]byte{nil, {FormatVersion}, {7}, {FormatVersion, 0xff}, {FormatVersion, 0x52, 0x02, 0x22, 0x00}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// The other decoders must not panic either.
		_, _ = UnmarshalHistory(b)
		_, _ = UnmarshalTaskMessage(b)
		_, _ = UnmarshalEntityState(b)
		_, _ = UnmarshalFailureDetails(b)

		e, err := UnmarshalHistoryEvent(b)
		if err != nil {
			if e != nil {
				t.Fatal("non-nil event with an error")
			}
			return
		}
		// Whatever decodes encodes again, and the encoding is stable.
		b2, err := MarshalHistoryEvent(e)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", e, err)
		}
		e2, err := UnmarshalHistoryEvent(b2)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("second round trip changed the event:\n%#v\n%#v", e, e2)
		}
		b3, err := MarshalHistoryEvent(e2)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}

func benchHistory() []*HistoryEvent {
	var h []*HistoryEvent
	for len(h) < 100 {
		h = append(h, sampleEvents()...)
	}
	return h[:100]
}

func BenchmarkMarshalHistory(b *testing.B) {
	h := benchHistory()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalHistory(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalHistory(b *testing.B) {
	blob, err := MarshalHistory(benchHistory())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(blob)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnmarshalHistory(blob); err != nil {
			b.Fatal(err)
		}
	}
}
