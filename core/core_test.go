package core

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEntityIDStringAndParse(t *testing.T) {
	id := NewEntityID("Counter", "Key@With@Ats")
	if id.Name != "counter" || id.Key != "Key@With@Ats" {
		t.Fatalf("NewEntityID = %#v", id)
	}
	if got, want := id.String(), "@counter@Key@With@Ats"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	back, err := ParseEntityID(id.String())
	if err != nil || back != id {
		t.Fatalf("ParseEntityID(%q) = %#v, %v", id.String(), back, err)
	}
	if got, err := ParseEntityID("@c@"); err != nil || got != (EntityID{Name: "c"}) {
		t.Fatalf("empty key: %#v, %v", got, err)
	}

	for _, bad := range []struct{ in, want string }{
		{"counter@k", "must have the form @name@key"},
		{"@counter", "must have the form @name@key"},
		{"", "must have the form @name@key"},
		{"@@k", "empty entity name"},
		{"@Counter@k", "must be lower case"},
	} {
		_, err := ParseEntityID(bad.in)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseEntityID(%q): err = %v, want %q", bad.in, err, bad.want)
		}
	}

	for in, want := range map[string]bool{"@a@b": true, "@a@": true, "@a": false, "a@b@c": false, "": false, "order-1": false} {
		if got := IsEntityInstanceID(in); got != want {
			t.Errorf("IsEntityInstanceID(%q) = %v", in, got)
		}
	}
}

func TestEntityIDValidate(t *testing.T) {
	for _, tc := range []struct {
		id   EntityID
		want string // "" for valid
	}{
		{EntityID{Name: "counter", Key: "k"}, ""},
		{EntityID{Name: "counter"}, ""},
		{EntityID{Name: "c", Key: "@@"}, ""},
		{EntityID{Key: "k"}, "empty entity name"},
		{EntityID{Name: "a@b", Key: "k"}, "must not contain '@'"},
		{EntityID{Name: "Counter", Key: "k"}, "must be lower case"},
	} {
		err := tc.id.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%#v: unexpected error %v", tc.id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%#v: err = %v, want %q", tc.id, err, tc.want)
		}
	}
}

func TestCompareEntityIDs(t *testing.T) {
	ordered := []EntityID{{"a", ""}, {"a", "a"}, {"a", "b"}, {"ab", ""}, {"b", "a"}}
	for i, a := range ordered {
		for j, b := range ordered {
			got := CompareEntityIDs(a, b)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("CompareEntityIDs(%v, %v) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestValidateInstanceID(t *testing.T) {
	for _, tc := range []struct {
		name, id, want string // want "" for valid
	}{
		{"ok", "order-42", ""},
		{"ok unicode", "заказ-42 ✓", ""},
		{"ok entity", "@counter@k", ""},
		{"ok max length", strings.Repeat("x", MaxInstanceIDLength), ""},
		{"empty", "", "empty"},
		{"too long", strings.Repeat("x", MaxInstanceIDLength+1), "257 bytes, at most 256 allowed"},
		{"too long in bytes", strings.Repeat("é", 129), "258 bytes"},
		{"control char", "a\nb", "control character U+000A at byte 1"},
		{"nul", "a\x00", "control character U+0000 at byte 1"},
		{"c1 control", "ab\u0085", "control character U+0085 at byte 2"},
		{"invalid utf8", "a\xffb", "not valid UTF-8"},
	} {
		err := ValidateInstanceID(tc.id)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestRuntimeStatus(t *testing.T) {
	terminal := map[RuntimeStatus]bool{StatusCompleted: true, StatusFailed: true, StatusCanceled: true, StatusTerminated: true}
	for s := RuntimeStatus(0); s < statusCount; s++ {
		for _, name := range []string{s.String(), strings.ToLower(s.String()), strings.ToUpper(s.String())} {
			got, err := ParseRuntimeStatus(name)
			if err != nil || got != s {
				t.Errorf("ParseRuntimeStatus(%q) = %v, %v; want %v", name, got, err, s)
			}
		}
		if s.IsTerminal() != terminal[s] {
			t.Errorf("%v.IsTerminal() = %v", s, s.IsTerminal())
		}
	}
	if got := StatusContinuedAsNew.String(); got != "ContinuedAsNew" {
		t.Errorf("String() = %q", got)
	}
	for _, s := range []RuntimeStatus{-1, statusCount, 100} {
		if s.IsTerminal() {
			t.Errorf("%v.IsTerminal() = true", s)
		}
		if !strings.HasPrefix(s.String(), "RuntimeStatus(") {
			t.Errorf("String() of unknown status = %q", s.String())
		}
	}
	for _, bad := range []string{"", "Done", "Running "} {
		_, err := ParseRuntimeStatus(bad)
		if err == nil || !strings.Contains(err.Error(), "unknown runtime status") || !strings.Contains(err.Error(), "Pending, Running") {
			t.Errorf("ParseRuntimeStatus(%q): err = %v", bad, err)
		}
	}
}

func TestFailureDetailsError(t *testing.T) {
	f := sampleFailure()
	want := `TaskFailedError: activity "Charge" failed <- *errors.errorString: card declined <- upstream 402`
	if got := f.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := (&FailureDetails{Type: "T", Message: "m"}).Error(); got != "T: m" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&FailureDetails{Message: "just a message"}).Error(); got != "just a message" {
		t.Errorf("Error() = %q", got)
	}
	var nilf *FailureDetails
	if got := nilf.Error(); got != "<nil failure>" {
		t.Errorf("nil Error() = %q", got)
	}
	var err error = f
	if err.Error() != want {
		t.Error("FailureDetails does not work as an error")
	}
}

func TestFailureDetailsClone(t *testing.T) {
	f := sampleFailure()
	c := f.Clone()
	if !reflect.DeepEqual(c, f) {
		t.Fatalf("Clone = %v", c)
	}
	c.Inner.Message = "changed"
	c.Inner.Inner = nil
	if f.Inner.Message != "card declined" || f.Inner.Inner == nil {
		t.Fatal("Clone shares the inner chain")
	}
	if (*FailureDetails)(nil).Clone() != nil {
		t.Fatal("nil Clone is not nil")
	}
}

func TestHistoryEventClone(t *testing.T) {
	orig := fullEvent()
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("Clone differs:\n%#v\n%#v", c, orig)
	}
	c.Input[0] = 'X'
	c.Result[0] = 'X'
	c.Failure.Message = "X"
	c.Failure.Inner.Message = "X"
	c.Parent.Name = "X"
	c.LockSet[0].Name = "X"
	c.Tags["a"] = "X"
	c.Tags["new"] = "X"
	c.Name = "X"
	if !reflect.DeepEqual(orig, fullEvent()) {
		t.Fatalf("mutating the clone changed the original: %#v", orig)
	}

	// nil and empty stay apart.
	e := &HistoryEvent{Input: []byte{}, LockSet: []EntityID{}, Tags: map[string]string{}}
	if c := e.Clone(); !reflect.DeepEqual(c, e) || c.Input == nil || c.LockSet == nil || c.Tags == nil {
		t.Fatalf("Clone of empty collections = %#v", c)
	}
	e = &HistoryEvent{}
	if c := e.Clone(); !reflect.DeepEqual(c, e) {
		t.Fatalf("Clone of zero event = %#v", c)
	}
	if (*HistoryEvent)(nil).Clone() != nil {
		t.Fatal("nil Clone is not nil")
	}
}

func TestEntityStateCloneAndIsEmpty(t *testing.T) {
	s := sampleEntityState()
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("Clone differs")
	}
	c.Value[0] = 'X'
	c.Queue[0].Name = "X"
	if !reflect.DeepEqual(s, sampleEntityState()) {
		t.Fatal("mutating the clone changed the original")
	}
	for _, tc := range []struct {
		s     *EntityState
		empty bool
	}{
		{nil, true},
		{&EntityState{}, true},
		{&EntityState{Value: []byte("stale")}, true},
		{&EntityState{Exists: true}, false},
		{&EntityState{LockedBy: "o"}, false},
		{&EntityState{Queue: []*HistoryEvent{{}}}, false},
	} {
		if got := tc.s.IsEmpty(); got != tc.empty {
			t.Errorf("%#v.IsEmpty() = %v", tc.s, got)
		}
	}
}

func TestEventKindString(t *testing.T) {
	want := []string{
		"Unknown", "ExecutionStarted", "ExecutionCompleted", "ExecutionTerminated", "ExecutionSuspended",
		"ExecutionResumed", "ContinuedAsNew", "TaskScheduled", "TaskCompleted", "TaskFailed",
		"SubOrchestrationInstanceCreated", "SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed",
		"TimerCreated", "TimerFired", "EventRaised", "EventSent", "OrchestratorStarted", "OrchestratorCompleted",
		"EntityOperationCalled", "EntityOperationSignaled", "EntityOperationCompleted", "EntityOperationFailed",
		"EntityLockRequested", "EntityLockGranted", "EntityLockReleased",
	}
	if len(want) != int(eventKindCount) {
		t.Fatalf("test knows %d kinds, there are %d", len(want), eventKindCount)
	}
	for i, w := range want {
		k := EventKind(i)
		if got := k.String(); got != w {
			t.Errorf("EventKind(%d).String() = %q, want %q", i, got, w)
		}
		if k.Valid() != (k != EventUnknown) {
			t.Errorf("%v.Valid() = %v", k, k.Valid())
		}
	}
	for _, k := range []EventKind{-1, eventKindCount, 1000} {
		if got, want := k.String(), "EventKind("; !strings.HasPrefix(got, want) {
			t.Errorf("String() of unknown kind = %q", got)
		}
		if k.Valid() {
			t.Errorf("%v.Valid() = true", k)
		}
	}
	if got := EventKind(99).String(); got != "EventKind(99)" {
		t.Errorf("String() = %q", got)
	}
}

func TestHistoryEventString(t *testing.T) {
	for _, tc := range []struct {
		e    *HistoryEvent
		want string
	}{
		{nil, "<nil event>"},
		{&HistoryEvent{Kind: EventTaskScheduled, Name: "Charge", EventID: 3}, `TaskScheduled "Charge" #3`},
		{&HistoryEvent{Kind: EventTaskCompleted, EventID: NoEventID, TaskScheduledID: 3}, "TaskCompleted for #3"},
		{NewEvent(EventOrchestratorStarted, time.Time{}), "OrchestratorStarted"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	m := &TaskMessage{Target: Instance{InstanceID: "i"}, Event: NewEvent(EventTimerFired, time.Time{})}
	if got := m.String(); got != "TimerFired for #-1 -> i" {
		t.Errorf("TaskMessage.String() = %q", got)
	}
}
