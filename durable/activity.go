package durable

import (
	"context"
	"fmt"

	"github.com/netherite-go/netherite/core"
)

type activityContext struct {
	ctx       context.Context
	instance  string
	name      string
	taskID    int32
	input     []byte
	converter Converter
}

func (a *activityContext) Context() context.Context { return a.ctx }
func (a *activityContext) InstanceID() string       { return a.instance }
func (a *activityContext) Name() string             { return a.name }
func (a *activityContext) TaskID() int32            { return a.taskID }

func (a *activityContext) GetInput(v any) error {
	if err := a.converter.Unmarshal(a.input, v); err != nil {
		return fmt.Errorf("decode input of activity %q into %T: %w", a.name, v, err)
	}
	return nil
}

// ExecuteActivity runs the activity that a TaskScheduled message asks for
// and returns the TaskCompleted or TaskFailed message for the
// orchestration. Errors and panics in the activity become failures; an
// unknown name is a non-retriable failure.
func (x *Executor) ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage {
	e := m.Event
	reply := &core.TaskMessage{Target: m.Target}
	result, failure := x.runActivity(ctx, m.Target.InstanceID, e)
	if failure != nil {
		reply.Event = core.NewEvent(core.EventTaskFailed, e.Timestamp)
		reply.Event.Failure = failure
	} else {
		reply.Event = core.NewEvent(core.EventTaskCompleted, e.Timestamp)
		reply.Event.Result = result
	}
	reply.Event.TaskScheduledID = e.EventID
	return reply
}

func (x *Executor) runActivity(ctx context.Context, instance string, e *core.HistoryEvent) (result []byte, failure *core.FailureDetails) {
	fn, ok := x.registry.activity(e.Name)
	if !ok {
		return nil, &core.FailureDetails{Type: core.FailureNotRegistered,
			Message: notRegistered(x.registry, "activity", e.Name), NonRetriable: true}
	}
	ac := &activityContext{ctx: ctx, instance: instance, name: e.Name, taskID: e.EventID,
		input: e.Input, converter: x.registry.converter}
	defer func() {
		if r := recover(); r != nil {
			result, failure = nil, panicDetails(r, fmt.Sprintf("activity %q panicked", e.Name))
		}
	}()
	out, err := fn(ac)
	if err != nil {
		return nil, errorDetails(err)
	}
	b, err := x.registry.converter.Marshal(out)
	if err != nil {
		return nil, &core.FailureDetails{Type: core.FailureSerialization,
			Message: fmt.Sprintf("encode output of activity %q: %v", e.Name, err)}
	}
	return b, nil
}
