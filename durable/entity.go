package durable

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/netherite-go/netherite/core"
)

// EntityBatch is the input of one entity step: the entity's record and the
// requests that arrived for it, in arrival order (operation calls and
// signals, lock requests and releases).
type EntityBatch struct {
	ID       core.EntityID
	State    *core.EntityState
	Messages []*core.HistoryEvent
	// Now stamps outgoing messages; zero means time.Now().
	Now time.Time
}

// EntityBatchResult is the output of one entity step.
type EntityBatchResult struct {
	// State is the new record, or nil if the entity no longer exists and
	// holds no lock or queued request.
	State *core.EntityState
	// Messages go to other instances: responses to callers, lock grants
	// and forwards, signals, orchestration starts.
	Messages []*core.TaskMessage
	// Operations lists the operations run, in order.
	Operations []OperationResult
}

// OperationResult is the outcome of one entity operation.
type OperationResult struct {
	Operation string
	RequestID string
	Result    []byte
	Failure   *core.FailureDetails
}

// ExecuteEntity runs a batch of requests on one entity. Operations run one
// at a time in arrival order, except that while an orchestration holds the
// entity's lock, requests from anyone else wait in the entity's queue until
// the lock is released. A failing operation rolls back its own state
// change and messages, reports its own failure, and the batch goes on.
func (x *Executor) ExecuteEntity(b *EntityBatch) *EntityBatchResult {
	st := b.State.Clone()
	if st == nil {
		st = &core.EntityState{}
	}
	now := b.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &entityRun{x: x, id: b.ID, st: st, now: now.UTC(), res: &EntityBatchResult{}}
	for _, m := range b.Messages {
		r.deliver(m)
	}
	if !st.IsEmpty() {
		r.res.State = st
	}
	return r.res
}

type entityRun struct {
	x   *Executor
	id  core.EntityID
	st  *core.EntityState
	now time.Time
	res *EntityBatchResult
}

func (r *entityRun) send(target core.Instance, e *core.HistoryEvent) {
	r.res.Messages = append(r.res.Messages, &core.TaskMessage{Target: target, Event: e})
}

func requester(m *core.HistoryEvent) string {
	if m.Parent == nil {
		return ""
	}
	return m.Parent.InstanceID
}

// deliver applies the lock discipline to one request.
func (r *entityRun) deliver(m *core.HistoryEvent) {
	if m.Kind == core.EventEntityLockReleased {
		if r.st.LockedBy == "" || r.st.LockedBy != requester(m) {
			// A release from an orchestration that does not hold the lock
			// (it ended while waiting): its queued requests go too.
			r.dropQueued(m.RequestID)
			return
		}
		r.st.LockedBy = ""
		queued := r.st.Queue
		r.st.Queue = nil
		for _, q := range queued {
			r.deliver(q)
		}
		return
	}
	if r.st.LockedBy != "" && r.st.LockedBy != requester(m) {
		r.st.Queue = append(r.st.Queue, m)
		return
	}
	switch m.Kind {
	case core.EventEntityLockRequested:
		r.grant(m)
	case core.EventEntityOperationCalled, core.EventEntityOperationSignaled:
		r.operate(m)
	}
}

// dropQueued removes a queued lock request (by request id).
func (r *entityRun) dropQueued(requestID string) {
	if requestID == "" {
		return
	}
	keep := r.st.Queue[:0]
	for _, q := range r.st.Queue {
		if q.Kind == core.EventEntityLockRequested && q.RequestID == requestID {
			continue
		}
		keep = append(keep, q)
	}
	r.st.Queue = keep
}

// grant locks the entity for the requesting orchestration and passes the
// request on to the next entity of the set, or tells the orchestration
// that it holds every lock.
func (r *entityRun) grant(m *core.HistoryEvent) {
	p := m.Parent
	if p == nil {
		return
	}
	r.st.LockedBy = p.InstanceID
	next := int(m.LockPosition) + 1
	if next < len(m.LockSet) {
		fwd := m.Clone()
		fwd.LockPosition = int32(next)
		fwd.InstanceID = m.LockSet[next].String()
		r.send(core.Instance{InstanceID: fwd.InstanceID}, fwd)
		return
	}
	g := core.NewEvent(core.EventEntityLockGranted, r.now)
	g.TaskScheduledID, g.RequestID, g.InstanceID = p.TaskScheduledID, m.RequestID, r.id.String()
	// The lock set travels with the grant so that a grant that finds its
	// orchestration gone can be turned into releases by the engine.
	g.LockSet = m.LockSet
	r.send(core.Instance{InstanceID: p.InstanceID, ExecutionID: p.ExecutionID}, g)
}

// operate runs one operation.
func (r *entityRun) operate(m *core.HistoryEvent) {
	before := *r.st
	c := &entityContext{run: r, op: m.Name, input: m.Input}
	failure := r.invoke(c)
	if failure != nil {
		r.st.Exists, r.st.Value = before.Exists, before.Value
		c.outgoing = nil
	}
	r.res.Messages = append(r.res.Messages, c.outgoing...)
	r.res.Operations = append(r.res.Operations, OperationResult{Operation: m.Name, RequestID: m.RequestID,
		Result: c.result, Failure: failure})
	if m.Kind != core.EventEntityOperationCalled || m.Parent == nil {
		return
	}
	reply := core.NewEvent(core.EventEntityOperationCompleted, r.now)
	reply.TaskScheduledID, reply.RequestID, reply.InstanceID = m.Parent.TaskScheduledID, m.RequestID, r.id.String()
	if failure != nil {
		reply.Kind, reply.Failure = core.EventEntityOperationFailed, failure
	} else {
		reply.Result = c.result
	}
	r.send(core.Instance{InstanceID: m.Parent.InstanceID, ExecutionID: m.Parent.ExecutionID}, reply)
}

func (r *entityRun) invoke(c *entityContext) (failure *core.FailureDetails) {
	fn, ok := r.x.registry.entity(r.id.Name)
	if !ok {
		return &core.FailureDetails{Type: core.FailureNotRegistered,
			Message: notRegistered(r.x.registry, "entity", r.id.Name), NonRetriable: true}
	}
	defer func() {
		if p := recover(); p != nil {
			failure = panicDetails(p, fmt.Sprintf("entity %s operation %q panicked", r.id, c.op))
		}
	}()
	if err := fn(c); err != nil {
		return errorDetails(err)
	}
	return nil
}

type entityContext struct {
	run      *entityRun
	op       string
	input    []byte
	result   []byte
	outgoing []*core.TaskMessage
}

func (c *entityContext) conv() Converter   { return c.run.x.registry.converter }
func (c *entityContext) ID() core.EntityID { return c.run.id }
func (c *entityContext) Operation() string { return c.op }
func (c *entityContext) HasState() bool    { return c.run.st.Exists }
func (c *entityContext) DeleteState()      { c.run.st.Exists, c.run.st.Value = false, nil }
func (c *entityContext) Logger() *slog.Logger {
	return c.run.x.logger.With(slog.String("entity", c.run.id.String()), slog.String("operation", c.op))
}

func (c *entityContext) GetInput(v any) error {
	if err := c.conv().Unmarshal(c.input, v); err != nil {
		return &InvalidInputError{Kind: "entity operation", Name: c.run.id.String() + "/" + c.op, Err: err}
	}
	return nil
}

func (c *entityContext) GetState(v any) error {
	if !c.run.st.Exists {
		return nil
	}
	if err := c.conv().Unmarshal(c.run.st.Value, v); err != nil {
		return fmt.Errorf("decode state of entity %s into %T: %w", c.run.id, v, err)
	}
	return nil
}

func (c *entityContext) SetState(v any) error {
	b, err := marshalPayload(c.conv(), fmt.Sprintf("state of entity %s", c.run.id), v)
	if err != nil {
		return err
	}
	c.run.st.Exists, c.run.st.Value = true, b
	return nil
}

func (c *entityContext) Return(v any) error {
	b, err := marshalPayload(c.conv(), fmt.Sprintf("result of operation %q on %s", c.op, c.run.id), v)
	if err != nil {
		return err
	}
	c.result = b
	return nil
}

func (c *entityContext) SignalEntity(id core.EntityID, operation string, input any, opts ...CallOption) error {
	o, err := collectOptions("SignalEntity", signalOptions, opts)
	if err != nil {
		return err
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("SignalEntity: %w", err)
	}
	in, err := marshalPayload(c.conv(), fmt.Sprintf("input of operation %q on %s", operation, id), input)
	if err != nil {
		return err
	}
	e := core.NewEvent(core.EventEntityOperationSignaled, c.run.now)
	e.Name, e.InstanceID, e.Input, e.RequestID = operation, id.String(), in, c.run.x.newID()
	if !o.signalTime.IsZero() {
		e.FireAt = o.signalTime.UTC()
	}
	e.Parent = &core.ParentInstance{InstanceID: c.run.id.String(), TaskScheduledID: core.NoEventID}
	c.outgoing = append(c.outgoing, &core.TaskMessage{Target: core.Instance{InstanceID: id.String()}, Event: e})
	return nil
}

func (c *entityContext) StartOrchestration(name, instanceID string, input any) (string, error) {
	if name == "" {
		return "", fmt.Errorf("StartOrchestration: empty orchestrator name")
	}
	if instanceID == "" {
		instanceID = c.run.x.newID()
	}
	if err := core.ValidateInstanceID(instanceID); err != nil {
		return "", fmt.Errorf("StartOrchestration %q: %w", name, err)
	}
	in, err := marshalPayload(c.conv(), fmt.Sprintf("input of orchestrator %q", name), input)
	if err != nil {
		return "", err
	}
	e := core.NewEvent(core.EventExecutionStarted, c.run.now)
	e.Name, e.Input, e.InstanceID, e.ExecutionID = name, in, instanceID, c.run.x.newID()
	c.outgoing = append(c.outgoing, &core.TaskMessage{
		Target: core.Instance{InstanceID: instanceID, ExecutionID: e.ExecutionID}, Event: e})
	return instanceID, nil
}

// randomUUID returns a random (version 4) UUID.
func randomUUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// NewUUID returns a random UUID, for instance and execution ids.
func NewUUID() string { return randomUUID() }
