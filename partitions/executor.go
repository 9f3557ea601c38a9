package partitions

import (
	"context"
	"time"

	"github.com/netherite-go/netherite/core"
)

// Executor runs the user code of work items. The partition knows nothing
// of workflows: it hands over histories and messages and takes back new
// events and messages. The host adapts the SDK's executor to this.
type Executor interface {
	// ExecuteOrchestration runs one episode of an orchestration.
	ExecuteOrchestration(w *OrchestrationWork) *OrchestrationOutcome
	// ExecuteEntity runs a batch of requests on an entity.
	ExecuteEntity(id core.EntityID, state *core.EntityState, msgs []*core.HistoryEvent, now time.Time) (*core.EntityState, []*core.TaskMessage)
	// ExecuteActivity runs an activity and returns its reply.
	ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage
}

// Cursor is an orchestration execution kept in memory between episodes.
type Cursor interface{ Release() }

// OrchestrationWork is the input of one episode.
type OrchestrationWork struct {
	InstanceID string
	History    []*core.HistoryEvent
	NewEvents  []*core.HistoryEvent
	Now        time.Time
	Cursor     Cursor
	KeepCursor bool
}

// OrchestrationOutcome is the output of one episode: what the partition
// logs as BatchProcessed, and the cursor to keep.
type OrchestrationOutcome struct {
	NewEvents         []*core.HistoryEvent
	Activities        []*core.TaskMessage
	Timers            []*core.TaskMessage
	Messages          []*core.TaskMessage
	Status            core.RuntimeStatus
	Output            []byte
	Failure           *core.FailureDetails
	Custom            []byte
	ContinueStart     *core.HistoryEvent
	ContinueCarryOver []*core.HistoryEvent
	// Cursor is nil when the execution ended or is not kept.
	Cursor Cursor
}
