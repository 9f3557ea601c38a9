// Package durabletest runs orchestrations, activities and entities in
// memory, on a virtual clock, the way the engine would: messages are
// delivered in batches, each instance is stepped through the replay
// executor, timers fire in due order. Use it to unit-test workflows without
// a host, and to check that they replay deterministically.
package durabletest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// Env is an in-memory, single-threaded, deterministic engine.
type Env struct {
	x       *durable.Executor
	conv    durable.Converter
	now     time.Time
	cache   bool
	maxStep int

	instances map[string]*instance
	entities  map[string]*core.EntityState
	queue     []*core.TaskMessage
	later     []*core.TaskMessage // messages due at Event.FireAt
	laterSeq  int

	episodes []Episode

	activityDelay func(name string) time.Duration
	ops           []durable.OperationResult
	ids           int
}

type instance struct {
	id       string
	history  []*core.HistoryEvent
	pending  []*core.HistoryEvent
	cursor   *durable.Cursor
	last     *durable.EpisodeResult
	created  time.Time
	updated  time.Time
	started  *core.HistoryEvent
	status   core.RuntimeStatus
	finished bool
}

// Episode is one recorded orchestration step: its input and its result.
type Episode struct {
	InstanceID string
	History    []*core.HistoryEvent
	NewEvents  []*core.HistoryEvent
	Now        time.Time
	Result     *durable.EpisodeResult
}

// Option configures an Env.
type Option func(*Env)

// WithCursorCache keeps executions suspended in memory between episodes
// (the engine's default); without it every episode replays from scratch.
func WithCursorCache(on bool) Option { return func(e *Env) { e.cache = on } }

// WithStartTime sets the virtual clock's start.
func WithStartTime(t time.Time) Option { return func(e *Env) { e.now = t.UTC() } }

// WithActivityDelay makes each activity take virtual time.
func WithActivityDelay(f func(name string) time.Duration) Option {
	return func(e *Env) { e.activityDelay = f }
}

// WithMaxSteps bounds Run (default 100000 delivery rounds).
func WithMaxSteps(n int) Option { return func(e *Env) { e.maxStep = n } }

// New returns an environment for the functions of r.
func New(r *durable.Registry, opts ...Option) *Env {
	e := &Env{
		x:         nil,
		conv:      r.Converter(),
		now:       time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		cache:     true,
		maxStep:   100000,
		instances: map[string]*instance{},
		entities:  map[string]*core.EntityState{},
	}
	for _, o := range opts {
		o(e)
	}
	e.x = durable.NewExecutor(r, durable.ExecutorOptions{NewID: e.newID})
	return e
}

// newID gives reproducible ids, so that two runs of a scenario match.
func (e *Env) newID() string {
	e.ids++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", e.ids)
}

// Now is the virtual time.
func (e *Env) Now() time.Time { return e.now }

// Start schedules a new orchestration with the given id and returns it.
func (e *Env) Start(instanceID, orchestrator string, input any) (string, error) {
	return e.StartAt(0, instanceID, orchestrator, input)
}

// StartAt is Start delayed by d of virtual time.
func (e *Env) StartAt(d time.Duration, instanceID, orchestrator string, input any) (string, error) {
	if instanceID == "" {
		instanceID = e.newID()
	}
	if err := core.ValidateInstanceID(instanceID); err != nil {
		return "", err
	}
	in, err := e.conv.Marshal(input)
	if err != nil {
		return "", fmt.Errorf("encode input: %w", err)
	}
	ev := core.NewEvent(core.EventExecutionStarted, e.now)
	ev.Name, ev.Input, ev.InstanceID, ev.ExecutionID = orchestrator, in, instanceID, e.newID()
	e.sendAt(d, core.Instance{InstanceID: instanceID, ExecutionID: ev.ExecutionID}, ev)
	return instanceID, nil
}

// RaiseEventAt delivers an external event after d of virtual time.
func (e *Env) RaiseEventAt(d time.Duration, instanceID, name string, payload any) error {
	b, err := e.conv.Marshal(payload)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventEventRaised, e.now)
	ev.Name, ev.Input = name, b
	e.sendAt(d, core.Instance{InstanceID: instanceID}, ev)
	return nil
}

// TerminateAt terminates an instance after d.
func (e *Env) TerminateAt(d time.Duration, instanceID string, reason any) error {
	b, err := e.conv.Marshal(reason)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventExecutionTerminated, e.now)
	ev.Input = b
	ev.Reason = fmt.Sprint(reason)
	e.sendAt(d, core.Instance{InstanceID: instanceID}, ev)
	return nil
}

// SuspendAt suspends an instance after d.
func (e *Env) SuspendAt(d time.Duration, instanceID, reason string) {
	ev := core.NewEvent(core.EventExecutionSuspended, e.now)
	ev.Reason = reason
	e.sendAt(d, core.Instance{InstanceID: instanceID}, ev)
}

// ResumeAt resumes an instance after d.
func (e *Env) ResumeAt(d time.Duration, instanceID, reason string) {
	ev := core.NewEvent(core.EventExecutionResumed, e.now)
	ev.Reason = reason
	e.sendAt(d, core.Instance{InstanceID: instanceID}, ev)
}

// SignalEntityAt sends a signal to an entity after d.
func (e *Env) SignalEntityAt(d time.Duration, id core.EntityID, op string, input any) error {
	b, err := e.conv.Marshal(input)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventEntityOperationSignaled, e.now)
	ev.Name, ev.Input, ev.InstanceID, ev.RequestID = op, b, id.String(), e.newID()
	e.sendAt(d, core.Instance{InstanceID: id.String()}, ev)
	return nil
}

func (e *Env) sendAt(d time.Duration, to core.Instance, ev *core.HistoryEvent) {
	if d <= 0 {
		e.queue = append(e.queue, &core.TaskMessage{Target: to, Event: ev})
		return
	}
	ev.FireAt = e.now.Add(d)
	e.later = append(e.later, &core.TaskMessage{Target: to, Event: ev})
}

// Run delivers messages and fires timers until nothing is left to do, or
// the step bound is reached (an error).
func (e *Env) Run() error {
	for step := 0; ; step++ {
		if step >= e.maxStep {
			return fmt.Errorf("durabletest: still busy after %d steps (virtual time %s)", step, e.now)
		}
		if len(e.queue) == 0 {
			if len(e.later) == 0 {
				return nil
			}
			e.fireNextTimers()
			continue
		}
		e.deliver()
	}
}

// fireNextTimers advances the clock to the earliest due message and
// queues every message due then.
func (e *Env) fireNextTimers() {
	sort.SliceStable(e.later, func(i, j int) bool { return e.later[i].Event.FireAt.Before(e.later[j].Event.FireAt) })
	due := e.later[0].Event.FireAt
	if due.After(e.now) {
		e.now = due
	}
	n := 0
	for n < len(e.later) && !e.later[n].Event.FireAt.After(e.now) {
		n++
	}
	for _, m := range e.later[:n] {
		if m.Event.Kind == core.EventTimerFired {
			ev := m.Event.Clone()
			ev.Timestamp = e.now
			m = &core.TaskMessage{Target: m.Target, Event: ev}
		}
		e.queue = append(e.queue, m)
	}
	e.later = slices.Delete(e.later, 0, n)
}

// deliver runs one round: every queued message reaches its instance, then
// each instance with new messages takes one step.
func (e *Env) deliver() {
	msgs := e.queue
	e.queue = nil
	entityBatches := map[string][]*core.HistoryEvent{}
	var entityOrder []string
	var touched []string
	for _, m := range msgs {
		target := m.Target.InstanceID
		switch {
		case m.Event.Kind == core.EventTaskScheduled:
			e.runActivity(m)
		case !m.Event.FireAt.IsZero() && m.Event.FireAt.After(e.now) && m.Event.Kind != core.EventTimerFired:
			e.later = append(e.later, m)
		case core.IsEntityInstanceID(target):
			if _, ok := entityBatches[target]; !ok {
				entityOrder = append(entityOrder, target)
			}
			entityBatches[target] = append(entityBatches[target], m.Event)
		default:
			if e.accept(m) && !slices.Contains(touched, target) {
				touched = append(touched, target)
			}
		}
	}
	for _, id := range entityOrder {
		e.runEntity(id, entityBatches[id])
	}
	sort.Strings(touched)
	for _, id := range touched {
		e.step(e.instances[id])
	}
}

// accept adds a message to its instance's pending events, starting a new
// execution on ExecutionStarted and dropping messages for other
// executions.
func (e *Env) accept(m *core.TaskMessage) bool {
	id := m.Target.InstanceID
	inst := e.instances[id]
	if m.Event.Kind == core.EventExecutionStarted {
		if inst != nil {
			inst.cursor.Release()
		}
		inst = &instance{id: id, created: e.now, status: core.StatusPending}
		e.instances[id] = inst
		inst.started = m.Event
		inst.pending = []*core.HistoryEvent{m.Event}
		return true
	}
	if inst == nil || inst.finished ||
		(m.Target.ExecutionID != "" && inst.started != nil && m.Target.ExecutionID != inst.started.ExecutionID) {
		e.queue = append(e.queue, core.UndeliverableReply(m)...)
		return false
	}
	inst.pending = append(inst.pending, m.Event)
	return true
}

func (e *Env) step(inst *instance) {
	if inst == nil || len(inst.pending) == 0 {
		return
	}
	ep := &durable.Episode{
		InstanceID: inst.id,
		History:    slices.Clone(inst.history),
		NewEvents:  inst.pending,
		Now:        e.now,
		Cursor:     inst.cursor,
		KeepCursor: e.cache,
	}
	inst.pending = nil
	res := e.x.Execute(ep)
	e.episodes = append(e.episodes, Episode{InstanceID: inst.id, History: ep.History, NewEvents: ep.NewEvents, Now: ep.Now, Result: res})
	inst.cursor = res.Cursor
	inst.last = res
	inst.updated = e.now
	inst.status = res.Status
	inst.history = append(inst.history, res.NewEvents...)
	for _, m := range res.Activities {
		e.queue = append(e.queue, m)
	}
	for _, m := range res.Timers {
		e.later = append(e.later, m)
	}
	e.queue = append(e.queue, res.Messages...)
	if res.ContinueAsNew != nil {
		inst.history = nil
		inst.started = res.ContinueAsNew.Start
		inst.pending = append([]*core.HistoryEvent{res.ContinueAsNew.Start}, res.ContinueAsNew.CarryOver...)
		e.step(inst)
		return
	}
	if res.Status.IsTerminal() {
		inst.finished = true
	}
}

func (e *Env) runActivity(m *core.TaskMessage) {
	reply := e.x.ExecuteActivity(context.Background(), m)
	if e.activityDelay != nil {
		if d := e.activityDelay(m.Event.Name); d > 0 {
			reply.Event.FireAt = e.now.Add(d)
			e.later = append(e.later, reply)
			return
		}
	}
	e.queue = append(e.queue, reply)
}

func (e *Env) runEntity(id string, msgs []*core.HistoryEvent) {
	eid, err := core.ParseEntityID(id)
	if err != nil {
		return
	}
	res := e.x.ExecuteEntity(&durable.EntityBatch{ID: eid, State: e.entities[id], Messages: msgs, Now: e.now})
	if res.State == nil {
		delete(e.entities, id)
	} else {
		e.entities[id] = res.State
	}
	e.ops = append(e.ops, res.Operations...)
	e.queue = append(e.queue, res.Messages...)
}

// Status returns the status of an instance, with payloads and history.
func (e *Env) Status(instanceID string) (*durable.OrchestrationStatus, error) {
	inst := e.instances[instanceID]
	if inst == nil {
		return nil, fmt.Errorf("%w: %s", durable.ErrInstanceNotFound, instanceID)
	}
	s := &durable.OrchestrationStatus{
		InstanceID:    inst.id,
		RuntimeStatus: inst.status,
		CreatedAt:     inst.created,
		LastUpdatedAt: inst.updated,
		History:       slices.Clone(inst.history),
		Converter:     e.conv,
	}
	if inst.started != nil {
		s.Name, s.ExecutionID, s.Input = inst.started.Name, inst.started.ExecutionID, inst.started.Input
		if inst.started.Parent != nil {
			s.ParentInstanceID = inst.started.Parent.InstanceID
		}
	}
	if r := inst.last; r != nil {
		s.Output, s.Failure, s.CustomStatus = r.Output, r.Failure, r.CustomStatus
	}
	return s, nil
}

// Instances lists the ids of every instance, sorted.
func (e *Env) Instances() []string {
	ids := make([]string, 0, len(e.instances))
	for id := range e.instances {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// EntityState returns an entity's record, or nil.
func (e *Env) EntityState(id core.EntityID) *core.EntityState { return e.entities[id.String()] }

// ReadEntityState decodes an entity's state into v; false if none.
func (e *Env) ReadEntityState(id core.EntityID, v any) (bool, error) {
	st := e.entities[id.String()]
	if st == nil || !st.Exists {
		return false, nil
	}
	return true, e.conv.Unmarshal(st.Value, v)
}

// Operations lists every entity operation run so far.
func (e *Env) Operations() []durable.OperationResult { return e.ops }

// Episodes lists every orchestration step taken so far.
func (e *Env) Episodes() []Episode { return e.episodes }

// Close releases every cached cursor.
func (e *Env) Close() {
	for _, inst := range e.instances {
		inst.cursor.Release()
		inst.cursor = nil
	}
}

// CheckReplay re-executes every recorded episode from scratch, with no
// cursor, and reports the first whose result differs from the recorded
// one. Each episode is a prefix of its instance's history plus the events
// that followed it, so this replays the history at every step.
func (e *Env) CheckReplay() error {
	for i, ep := range e.episodes {
		res := e.x.Execute(&durable.Episode{InstanceID: ep.InstanceID, History: ep.History,
			NewEvents: ep.NewEvents, Now: ep.Now})
		want, got := Summarize(ep.Result), Summarize(res)
		if want != got {
			return fmt.Errorf("episode %d of %s (history of %d events) replays differently:\n--- recorded\n%s\n--- replayed\n%s",
				i, ep.InstanceID, len(ep.History), want, got)
		}
	}
	return nil
}

// Summarize renders an episode result as text, leaving out what may
// legitimately differ between runs (stack traces, random ids of new
// client-started executions are not in results).
func Summarize(r *durable.EpisodeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status=%s output=%s custom=%s failure=%s\n", r.Status, r.Output, r.CustomStatus, failureText(r.Failure))
	for _, ev := range r.NewEvents {
		fmt.Fprintf(&b, "event %s\n", EventText(ev))
	}
	for _, m := range r.Activities {
		fmt.Fprintf(&b, "activity -> %s %s\n", m.Target.InstanceID, EventText(m.Event))
	}
	for _, m := range r.Timers {
		fmt.Fprintf(&b, "timer -> %s %s\n", m.Target.InstanceID, EventText(m.Event))
	}
	for _, m := range r.Messages {
		fmt.Fprintf(&b, "message -> %s/%s %s\n", m.Target.InstanceID, m.Target.ExecutionID, EventText(m.Event))
	}
	if c := r.ContinueAsNew; c != nil {
		fmt.Fprintf(&b, "continue-as-new %s\n", EventText(c.Start))
		for _, ev := range c.CarryOver {
			fmt.Fprintf(&b, "  carry %s\n", EventText(ev))
		}
	}
	return b.String()
}

// EventText renders the deterministic fields of an event.
func EventText(ev *core.HistoryEvent) string {
	s := fmt.Sprintf("%s id=%d name=%q inst=%q exec=%q in=%s res=%s ref=%d fire=%s ts=%s status=%s req=%q locks=%v pos=%d fail=%s",
		ev.Kind, ev.EventID, ev.Name, ev.InstanceID, ev.ExecutionID, ev.Input, ev.Result, ev.TaskScheduledID,
		fmtTime(ev.FireAt), fmtTime(ev.Timestamp), ev.Status, ev.RequestID, ev.LockSet, ev.LockPosition, failureText(ev.Failure))
	if p := ev.Parent; p != nil {
		s += fmt.Sprintf(" parent=%s/%s#%d", p.InstanceID, p.ExecutionID, p.TaskScheduledID)
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func failureText(f *core.FailureDetails) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%s:%q(inner %s)", f.Type, f.Message, failureText(f.Inner))
}
