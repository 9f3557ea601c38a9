package durable

import (
	"context"
	"log/slog"
	"time"

	"github.com/netherite-go/netherite/core"
)

// OrchestrationContext is what an orchestrator sees of the world. Every
// method is deterministic: on replay it gives the same answers and issues
// the same calls as in the original execution, which is what lets the
// engine rebuild the orchestration from its history.
//
// An orchestrator must only use this context for time, randomness, I/O and
// waiting: no time.Now, no math/rand, no goroutines, no network calls.
type OrchestrationContext interface {
	// InstanceID is the id of this orchestration instance.
	InstanceID() string
	// ExecutionID changes at each ContinueAsNew.
	ExecutionID() string
	// Name is the orchestrator name.
	Name() string
	// GetInput decodes the orchestration input into v.
	GetInput(v any) error
	// CurrentTime is the time of the episode being (re)played, in UTC.
	CurrentTime() time.Time
	// NewUUID returns a UUID that is the same on every replay (name-based,
	// from the instance id, the execution id and a counter).
	NewUUID() string
	// IsReplaying reports whether the code is re-running recorded history.
	IsReplaying() bool
	// Logger writes only when not replaying, so each line appears once.
	Logger() *slog.Logger

	// CallActivity schedules an activity. Options: WithRetry.
	CallActivity(name string, input any, opts ...CallOption) Task
	// CallSubOrchestrator starts an orchestration and completes with its
	// output. Options: WithInstanceID, WithRetry, WithVersion, WithTags.
	CallSubOrchestrator(name string, input any, opts ...CallOption) Task
	// CreateTimer completes after d (measured from CurrentTime).
	CreateTimer(d time.Duration) Task
	// CreateTimerAt completes at t.
	CreateTimerAt(t time.Time) Task
	// WaitForExternalEvent completes with the payload of the next event of
	// that name (case-insensitive). Events that arrive before anyone waits
	// are buffered. Options: WithTimeout.
	WaitForExternalEvent(name string, opts ...CallOption) Task
	// SendEvent raises an event on another instance (fire and forget).
	SendEvent(instanceID, name string, payload any) error
	// ContinueAsNew ends this execution when the orchestrator returns and
	// starts a fresh one with input. Unprocessed events are carried over
	// unless DropUnprocessedEvents is given. The orchestrator's return
	// value is ignored.
	ContinueAsNew(input any, opts ...ContinueAsNewOption)
	// SetCustomStatus publishes a value that clients see in the status.
	SetCustomStatus(v any) error

	// CallEntity runs an operation on an entity and completes with its
	// result. Inside a critical section only locked entities may be called.
	CallEntity(id core.EntityID, operation string, input any) Task
	// SignalEntity sends a one-way operation. Options: WithSignalTime.
	// Inside a critical section only unlocked entities may be signaled.
	SignalEntity(id core.EntityID, operation string, input any, opts ...CallOption) error
	// LockEntities acquires exclusive locks on the entities (one at a time,
	// in sorted order, so no two orchestrations deadlock) and returns when
	// all are held. Release the critical section when done; an
	// orchestration that ends releases its locks.
	LockEntities(ids ...core.EntityID) (*CriticalSection, error)
	// InCriticalSection reports whether locks are held, and which.
	InCriticalSection() (bool, []core.EntityID)
}

// ActivityContext is what an activity sees.
type ActivityContext interface {
	// Context is cancelled when the host shuts down.
	Context() context.Context
	// InstanceID is the orchestration that scheduled the activity.
	InstanceID() string
	// Name is the activity name.
	Name() string
	// TaskID is the sequence number of the call in the orchestration.
	TaskID() int32
	// GetInput decodes the activity input into v.
	GetInput(v any) error
}

// EntityContext is what an entity operation sees.
type EntityContext interface {
	// ID is the entity's id; ID().Name and ID().Key give name and key.
	ID() core.EntityID
	// Operation is the name of the operation being run.
	Operation() string
	// GetInput decodes the operation input into v.
	GetInput(v any) error
	// HasState reports whether the entity has state.
	HasState() bool
	// GetState decodes the state into v; it leaves v alone if there is
	// none, so initialize v with the default first.
	GetState(v any) error
	// SetState replaces the state.
	SetState(v any) error
	// DeleteState deletes the state, and the entity with it.
	DeleteState()
	// Return sets the operation's result, seen by a caller.
	Return(v any) error
	// SignalEntity sends a one-way operation to an entity (perhaps itself),
	// optionally delivered at a later time.
	SignalEntity(id core.EntityID, operation string, input any, opts ...CallOption) error
	// StartOrchestration starts an orchestration and returns its instance
	// id; an empty instanceID picks a new unique one.
	StartOrchestration(name, instanceID string, input any) (string, error)
	// Logger writes log lines tagged with the entity id and operation.
	Logger() *slog.Logger
}

// CriticalSection is a set of entity locks held by an orchestration.
type CriticalSection struct {
	o        *orchestration
	ids      []core.EntityID
	released bool
}

// Entities lists the locked entities in lock order.
func (c *CriticalSection) Entities() []core.EntityID { return append([]core.EntityID(nil), c.ids...) }

// Release unlocks the entities. Calling it again does nothing.
func (c *CriticalSection) Release() {
	if c == nil || c.released || c.o.abandoned {
		return
	}
	c.released = true
	c.o.releaseLocks()
}
