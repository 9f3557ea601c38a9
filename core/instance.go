package core

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxInstanceIDLength is the longest instance id accepted, in bytes.
const MaxInstanceIDLength = 256

// Instance names one execution of an instance. An empty ExecutionID means
// "whatever execution is current".
type Instance struct {
	InstanceID  string
	ExecutionID string
}

// ValidateInstanceID reports a clear error for an id that cannot name an
// instance: empty, longer than MaxInstanceIDLength bytes, not UTF-8, or
// holding control characters.
func ValidateInstanceID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("invalid instance id: empty")
	case len(id) > MaxInstanceIDLength:
		return fmt.Errorf("invalid instance id %.40q...: %d bytes, at most %d allowed", id, len(id), MaxInstanceIDLength)
	case !utf8.ValidString(id):
		return fmt.Errorf("invalid instance id %q: not valid UTF-8", id)
	}
	for i, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("invalid instance id %q: control character %U at byte %d", id, r, i)
		}
	}
	return nil
}

// TaskMessage is an event on its way to an instance: a new execution, a
// task result, a timer, an external event, an entity request or response.
type TaskMessage struct {
	Target Instance
	Event  *HistoryEvent
}

// String gives a short description for logs.
func (m *TaskMessage) String() string {
	return fmt.Sprintf("%v -> %s", m.Event, m.Target.InstanceID)
}
