package partitions

import (
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// Event is an update event: it changes partition state, is written to the
// commit log, and is replayed on recovery. Applying the same events in the
// same order to the same state always gives the same state.
type Event interface {
	eventName() string
}

// ClientRequestReceived is an update request from a client, read from the
// input queue at position InputPos.
type ClientRequestReceived struct {
	InputPos uint64
	Request  *transport.ClientRequest
}

// MessagesReceived is a batch of task messages from another partition.
type MessagesReceived struct {
	InputPos uint64
	Batch    *transport.MessageBatch
}

// AckReceived tells that another partition has durably applied our
// messages up to a position.
type AckReceived struct {
	InputPos uint64
	Ack      *transport.Ack
}

// BatchProcessed is the completion of an orchestration work item: the
// executor's result for the first Consumed pending messages of the
// instance's session.
type BatchProcessed struct {
	InstanceID string
	Generation uint64
	Consumed   int
	NewEvents  []*core.HistoryEvent
	Activities []*core.TaskMessage
	Timers     []*core.TaskMessage
	Messages   []*core.TaskMessage
	Status     core.RuntimeStatus
	Output     []byte
	Failure    *core.FailureDetails
	Custom     []byte
	// ContinueAsNew, if set, starts the next execution with Start and
	// CarryOver ahead of the messages still pending.
	ContinueStart     *core.HistoryEvent
	ContinueCarryOver []*core.HistoryEvent
}

// EntityBatchProcessed is the completion of an entity work item.
type EntityBatchProcessed struct {
	InstanceID string
	Generation uint64
	Consumed   int
	State      *core.EntityState
	Messages   []*core.TaskMessage
}

// ActivityCompleted is the result of an activity.
type ActivityCompleted struct {
	ActivityID uint64
	Reply      *core.TaskMessage
}

// TimerFired says timers are due.
type TimerFired struct {
	TimerIDs []uint64
}

// RecoveryCompleted is logged when a partition starts on a recovered (or
// new) state. Its effects restart everything volatile: work items,
// activities, timers, and the re-sending of the outbox. Its position
// names the new incarnation (State.Epochs). Learnt carries what the
// partition learnt of other partitions' incarnations before it rolled
// back (global speculation), so that it drops, from now on and after any
// crash, the speculative batches of steps it knows lost.
type RecoveryCompleted struct {
	Learnt map[int][]uint64
}

func (*RecoveryCompleted) eventName() string     { return "RecoveryCompleted" }
func (*ClientRequestReceived) eventName() string { return "ClientRequestReceived" }
func (*MessagesReceived) eventName() string      { return "MessagesReceived" }
func (*AckReceived) eventName() string           { return "AckReceived" }
func (*BatchProcessed) eventName() string        { return "BatchProcessed" }
func (*EntityBatchProcessed) eventName() string  { return "EntityBatchProcessed" }
func (*ActivityCompleted) eventName() string     { return "ActivityCompleted" }
func (*TimerFired) eventName() string            { return "TimerFired" }
