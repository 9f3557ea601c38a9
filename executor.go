package netherite

import (
	"context"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/partitions"
)

// WorkExecutor adapts the SDK's executor to what partitions run.
func WorkExecutor(x *durable.Executor) partitions.Executor { return workExecutor{x} }

type workExecutor struct{ x *durable.Executor }

func (w workExecutor) ExecuteOrchestration(in *partitions.OrchestrationWork) *partitions.OrchestrationOutcome {
	cur, _ := in.Cursor.(*durable.Cursor)
	res := w.x.Execute(&durable.Episode{InstanceID: in.InstanceID, History: in.History, NewEvents: in.NewEvents,
		Now: in.Now, Cursor: cur, KeepCursor: in.KeepCursor})
	out := &partitions.OrchestrationOutcome{NewEvents: res.NewEvents, Activities: res.Activities, Timers: res.Timers,
		Messages: res.Messages, Status: res.Status, Output: res.Output, Failure: res.Failure, Custom: res.CustomStatus}
	if c := res.ContinueAsNew; c != nil {
		out.ContinueStart, out.ContinueCarryOver = c.Start, c.CarryOver
	}
	if res.Cursor != nil {
		out.Cursor = res.Cursor
	}
	return out
}

func (w workExecutor) ExecuteEntity(id core.EntityID, st *core.EntityState, msgs []*core.HistoryEvent, now time.Time) (*core.EntityState, []*core.TaskMessage) {
	res := w.x.ExecuteEntity(&durable.EntityBatch{ID: id, State: st, Messages: msgs, Now: now})
	return res.State, res.Messages
}

func (w workExecutor) ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage {
	return w.x.ExecuteActivity(ctx, m)
}
