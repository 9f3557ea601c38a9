// Package core holds the vocabulary shared by the SDK and the engine:
// history events, task messages between instances, instance ids and
// statuses, entity ids, failure details, and their binary encoding.
package core

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

// EventKind says what a history event records.
type EventKind int32

// The history event kinds. The numeric values are part of the persisted
// format: append new kinds, never renumber.
const (
	EventUnknown EventKind = iota
	EventExecutionStarted
	EventExecutionCompleted
	EventExecutionTerminated
	EventExecutionSuspended
	EventExecutionResumed
	EventContinuedAsNew
	EventTaskScheduled
	EventTaskCompleted
	EventTaskFailed
	EventSubOrchestrationCreated
	EventSubOrchestrationCompleted
	EventSubOrchestrationFailed
	EventTimerCreated
	EventTimerFired
	EventEventRaised
	EventEventSent
	EventOrchestratorStarted
	EventOrchestratorCompleted
	EventEntityOperationCalled
	EventEntityOperationSignaled
	EventEntityOperationCompleted
	EventEntityOperationFailed
	EventEntityLockRequested
	EventEntityLockGranted
	EventEntityLockReleased
	eventKindCount
)

var eventKindNames = [...]string{
	EventUnknown:                   "Unknown",
	EventExecutionStarted:          "ExecutionStarted",
	EventExecutionCompleted:        "ExecutionCompleted",
	EventExecutionTerminated:       "ExecutionTerminated",
	EventExecutionSuspended:        "ExecutionSuspended",
	EventExecutionResumed:          "ExecutionResumed",
	EventContinuedAsNew:            "ContinuedAsNew",
	EventTaskScheduled:             "TaskScheduled",
	EventTaskCompleted:             "TaskCompleted",
	EventTaskFailed:                "TaskFailed",
	EventSubOrchestrationCreated:   "SubOrchestrationInstanceCreated",
	EventSubOrchestrationCompleted: "SubOrchestrationInstanceCompleted",
	EventSubOrchestrationFailed:    "SubOrchestrationInstanceFailed",
	EventTimerCreated:              "TimerCreated",
	EventTimerFired:                "TimerFired",
	EventEventRaised:               "EventRaised",
	EventEventSent:                 "EventSent",
	EventOrchestratorStarted:       "OrchestratorStarted",
	EventOrchestratorCompleted:     "OrchestratorCompleted",
	EventEntityOperationCalled:     "EntityOperationCalled",
	EventEntityOperationSignaled:   "EntityOperationSignaled",
	EventEntityOperationCompleted:  "EntityOperationCompleted",
	EventEntityOperationFailed:     "EntityOperationFailed",
	EventEntityLockRequested:       "EntityLockRequested",
	EventEntityLockGranted:         "EntityLockGranted",
	EventEntityLockReleased:        "EntityLockReleased",
}

// String returns the Durable Functions name of the kind.
func (k EventKind) String() string {
	if k >= 0 && k < eventKindCount {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", int32(k))
}

// Valid reports whether k is a known kind.
func (k EventKind) Valid() bool { return k > EventUnknown && k < eventKindCount }

// IsScheduling reports whether events of this kind record a scheduling call
// of an orchestration: they carry a sequence number in EventID and must be
// matched by the same call on replay.
func (k EventKind) IsScheduling() bool {
	switch k {
	case EventTaskScheduled, EventSubOrchestrationCreated, EventTimerCreated, EventEventSent,
		EventEntityOperationCalled, EventEntityOperationSignaled, EventEntityLockRequested,
		EventEntityLockReleased:
		return true
	}
	return false
}

// NoEventID marks an event that carries no sequence number.
const NoEventID int32 = -1

// HistoryEvent is one step in the history of an orchestration, or one
// message delivered to an instance. It is a flat record: which fields are
// meaningful depends on Kind (see the comments on each field).
type HistoryEvent struct {
	// EventID is the sequence number of a scheduling event (the n-th
	// scheduling call of the execution), or NoEventID.
	EventID   int32
	Kind      EventKind
	Timestamp time.Time

	// Name is the orchestrator, activity, event or entity operation name.
	Name    string
	Version string
	// InstanceID is the other party of the event: the sub-orchestration
	// created, the target of a sent event or entity message, or (on
	// ExecutionStarted) the instance itself.
	InstanceID  string
	ExecutionID string

	// Input is the payload carried to the receiver: orchestration input,
	// activity input, event payload, operation input.
	Input []byte
	// Result is the payload carried back: task result, orchestration
	// output, operation result.
	Result  []byte
	Failure *FailureDetails

	// TaskScheduledID refers a completion (task, timer, sub-orchestration,
	// entity response, lock grant) to the EventID of its scheduling event.
	TaskScheduledID int32
	// FireAt is when a timer fires, or when a scheduled start or a
	// scheduled entity signal is due.
	FireAt time.Time

	// Parent identifies the orchestration that created this one
	// (ExecutionStarted), or the orchestration that sent an entity message
	// and waits for its response or holds a lock.
	Parent *ParentInstance

	// Status is the final status on ExecutionCompleted.
	Status RuntimeStatus
	// Reason explains a termination, suspension or resumption.
	Reason string

	// RequestID identifies an entity request (operation or lock).
	RequestID string
	// LockSet is the sorted set of entities of a lock request, and
	// LockPosition the index of the entity that is to grant it next.
	LockSet      []EntityID
	LockPosition int32

	// Tags are user key/value pairs on ExecutionStarted.
	Tags map[string]string
}

// ParentInstance identifies a parent orchestration and the sequence number
// of the call that waits for a response.
type ParentInstance struct {
	Name            string
	InstanceID      string
	ExecutionID     string
	TaskScheduledID int32
}

// String gives a short description for logs and error messages.
func (e *HistoryEvent) String() string {
	if e == nil {
		return "<nil event>"
	}
	s := e.Kind.String()
	if e.Name != "" {
		s += fmt.Sprintf(" %q", e.Name)
	}
	if e.EventID >= 0 && e.Kind.IsScheduling() {
		s += fmt.Sprintf(" #%d", e.EventID)
	}
	switch e.Kind {
	case EventTaskCompleted, EventTaskFailed, EventTimerFired, EventSubOrchestrationCompleted,
		EventSubOrchestrationFailed, EventEntityOperationCompleted, EventEntityOperationFailed,
		EventEntityLockGranted:
		s += fmt.Sprintf(" for #%d", e.TaskScheduledID)
	}
	return s
}

// Clone returns a deep copy of e.
func (e *HistoryEvent) Clone() *HistoryEvent {
	if e == nil {
		return nil
	}
	c := *e
	c.Input = cloneBytes(e.Input)
	c.Result = cloneBytes(e.Result)
	c.Failure = e.Failure.Clone()
	if e.Parent != nil {
		p := *e.Parent
		c.Parent = &p
	}
	c.LockSet = slices.Clone(e.LockSet)
	if e.Tags != nil {
		c.Tags = make(map[string]string, len(e.Tags))
		for k, v := range e.Tags {
			c.Tags[k] = v
		}
	}
	return &c
}

// cloneBytes copies b, keeping nil apart from empty.
func cloneBytes(b []byte) []byte { return bytes.Clone(b) }

// NewEvent returns an event of the given kind with no sequence number.
func NewEvent(kind EventKind, ts time.Time) *HistoryEvent {
	return &HistoryEvent{EventID: NoEventID, TaskScheduledID: NoEventID, Kind: kind, Timestamp: ts}
}
