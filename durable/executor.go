package durable

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
)

// Executor runs orchestrations, activities and entities of a registry. It
// keeps no state of its own between calls: an orchestration's execution
// lives in the Cursor it returns, which the engine may cache. One executor
// may run many instances concurrently, but each instance (and its cursor)
// must be driven by one goroutine at a time.
type Executor struct {
	registry *Registry
	logger   *slog.Logger
	newID    func() string
}

// ExecutorOptions configures an executor.
type ExecutorOptions struct {
	// Logger receives user log lines (replay-safe) and executor
	// diagnostics; slog.Default() if nil.
	Logger *slog.Logger
	// NewID makes the ids that entities need for new orchestrations and
	// requests; random UUIDs if nil. Tests set it for reproducible runs.
	NewID func() string
}

// NewExecutor returns an executor for the functions in r.
func NewExecutor(r *Registry, opts ExecutorOptions) *Executor {
	l := opts.Logger
	if l == nil {
		l = slog.Default()
	}
	newID := opts.NewID
	if newID == nil {
		newID = randomUUID
	}
	return &Executor{registry: r, logger: l, newID: newID}
}

// Registry returns the registry the executor runs.
func (x *Executor) Registry() *Registry { return x.registry }

// Episode is the input of one orchestration step: the recorded history and
// the events that arrived since.
type Episode struct {
	InstanceID string
	// History is the recorded history of the current execution, starting
	// with its ExecutionStarted event (possibly preceded by an
	// OrchestratorStarted).
	History []*core.HistoryEvent
	// NewEvents are the messages that arrived since, in arrival order. A
	// new execution's first episode has its ExecutionStarted here.
	NewEvents []*core.HistoryEvent
	// Now stamps the episode's OrchestratorStarted event, which becomes
	// the orchestration's CurrentTime. Zero means time.Now(). It never
	// moves the orchestration's clock backwards.
	Now time.Time
	// Cursor is the suspended execution returned by the previous episode
	// of this instance, if the engine kept it. If it does not fit the
	// history (wrong length or instance) it is released and the executor
	// replays from scratch.
	Cursor *Cursor
	// KeepCursor asks the executor to return the suspended execution
	// instead of ending it, so the next episode continues without replay.
	KeepCursor bool
}

// EpisodeResult is the output of one orchestration step.
type EpisodeResult struct {
	// NewEvents are to be appended to the history: the episode's
	// OrchestratorStarted, the new events, the scheduling events of the
	// calls made, the completion if any, and OrchestratorCompleted.
	NewEvents []*core.HistoryEvent
	// Activities are TaskScheduled events to run as activities.
	Activities []*core.TaskMessage
	// Timers are TimerFired events to deliver back at their FireAt.
	Timers []*core.TaskMessage
	// Messages go to other instances: sub-orchestration starts, raised
	// events, entity requests and releases, the response to a parent.
	// Messages with a FireAt in the future (scheduled signals) are due
	// then.
	Messages []*core.TaskMessage
	// Status after the episode: Running, Suspended, or a final status.
	Status       core.RuntimeStatus
	Output       []byte
	Failure      *core.FailureDetails
	CustomStatus []byte
	// ContinueAsNew is set when the execution continued as new: the engine
	// replaces the history with nothing and delivers Start followed by
	// CarryOver as the new execution's events.
	ContinueAsNew *ContinueAsNew
	// Cursor is the suspended execution, if KeepCursor was set and the
	// orchestration is still running.
	Cursor *Cursor
	// Replayed counts the history events replayed (0 with a fitting cursor).
	Replayed int
}

// Done reports whether the execution ended (including continue-as-new).
func (r *EpisodeResult) Done() bool {
	return r.Status.IsTerminal() || r.Status == core.StatusContinuedAsNew
}

// ContinueAsNew describes the next execution after a continue-as-new.
type ContinueAsNew struct {
	Start     *core.HistoryEvent
	CarryOver []*core.HistoryEvent
}

// Cursor is an orchestration execution suspended in memory between
// episodes. Release it when evicting it from a cache: that ends its
// goroutine.
type Cursor struct {
	o *orchestration
}

// Release ends the suspended execution. It is safe to call more than once
// and on a nil cursor.
func (c *Cursor) Release() {
	if c == nil || c.o == nil {
		return
	}
	c.o.release()
	c.o = nil
}

// HistoryLength is the number of history events the cursor has applied;
// it fits an episode whose History has this length.
func (c *Cursor) HistoryLength() int {
	if c == nil || c.o == nil {
		return -1
	}
	return c.o.processed
}

func (c *Cursor) fits(ep *Episode) bool {
	if c == nil || c.o == nil || c.o.instanceID != ep.InstanceID || c.o.processed != len(ep.History) ||
		c.o.completed || !c.o.running {
		return false
	}
	for _, e := range ep.History {
		if e.Kind == core.EventExecutionStarted {
			return e.ExecutionID == c.o.executionID
		}
	}
	return false
}

// Execute runs one episode of an orchestration.
func (x *Executor) Execute(ep *Episode) *EpisodeResult {
	res := &EpisodeResult{}
	if st, done := completedIn(ep.History); done {
		// Nothing runs after the end of an execution.
		ep.Cursor.Release()
		res.Status = st
		return res
	}

	var o *orchestration
	if ep.Cursor.fits(ep) {
		o = ep.Cursor.o
		ep.Cursor.o = nil
	} else {
		ep.Cursor.Release()
		o = newOrchestration(x, ep.InstanceID)
		o.replaying = true
		for _, e := range ep.History {
			o.apply(e)
		}
		res.Replayed = len(ep.History)
	}
	o.replaying = false

	now := ep.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	if now.Before(o.currentTime) {
		now = o.currentTime
	}
	start := core.NewEvent(core.EventOrchestratorStarted, now)
	res.NewEvents = make([]*core.HistoryEvent, 0, len(ep.NewEvents)+4)
	res.NewEvents = append(res.NewEvents, start)
	res.NewEvents = append(res.NewEvents, ep.NewEvents...)
	o.apply(start)
	for _, e := range ep.NewEvents {
		o.apply(e)
	}
	o.endEpisode(res)
	// The events the episode recorded (its calls, its completion) are
	// part of the history the cursor now stands at.
	o.processed = len(ep.History) + len(res.NewEvents)

	if !o.completed && o.running && ep.KeepCursor {
		res.Cursor = &Cursor{o: o}
	} else {
		o.release()
	}
	return res
}

// completedIn reports whether a history already ends its execution.
func completedIn(history []*core.HistoryEvent) (core.RuntimeStatus, bool) {
	for i := len(history) - 1; i >= 0; i-- {
		switch e := history[i]; e.Kind {
		case core.EventExecutionCompleted:
			return e.Status, true
		case core.EventContinuedAsNew:
			return core.StatusContinuedAsNew, true
		}
	}
	return 0, false
}

// apply feeds one history event to the orchestration.
func (o *orchestration) apply(e *core.HistoryEvent) {
	o.processed++
	o.step(e)
}

// step processes one event: it may complete tasks, resume the function,
// and end the execution.
func (o *orchestration) step(e *core.HistoryEvent) {
	if o.completed {
		switch {
		case o.nondetFailure != nil || o.status == core.StatusTerminated:
		case e.Kind.IsScheduling():
			// Calls recorded after the function returned: it returned
			// earlier than it did originally.
			o.match(e)
		case e.Kind == core.EventEventRaised && o.continueAsNew != nil:
			// Events that arrive after ContinueAsNew are carried over.
			o.buffered = append(o.buffered, e)
		}
		return
	}
	if o.suspended && deferredWhileSuspended(e.Kind) {
		o.deferred = append(o.deferred, e)
		return
	}
	o.handle(e)
	o.resumeIfReady()
	if o.returned && !o.completed {
		o.completed = true
		switch {
		case o.failure != nil:
			o.status = core.StatusFailed
		case o.continueAsNew != nil:
			o.status = core.StatusContinuedAsNew
		default:
			o.status = core.StatusCompleted
		}
	}
}

func deferredWhileSuspended(k core.EventKind) bool {
	switch k {
	case core.EventTaskCompleted, core.EventTaskFailed, core.EventTimerFired,
		core.EventSubOrchestrationCompleted, core.EventSubOrchestrationFailed,
		core.EventEventRaised, core.EventEntityOperationCompleted, core.EventEntityOperationFailed,
		core.EventEntityLockGranted:
		return true
	}
	return false
}

func (o *orchestration) handle(e *core.HistoryEvent) {
	switch e.Kind {
	case core.EventOrchestratorStarted:
		if t := e.Timestamp.UTC(); t.After(o.currentTime) {
			o.currentTime = t
		}
	case core.EventExecutionStarted:
		o.startExecution(e)
	case core.EventTaskCompleted, core.EventSubOrchestrationCompleted,
		core.EventEntityOperationCompleted, core.EventEntityLockGranted, core.EventTimerFired:
		if t := o.open[e.TaskScheduledID]; t != nil {
			delete(o.open, e.TaskScheduledID)
			t.complete(e.Result, nil)
		}
	case core.EventTaskFailed, core.EventSubOrchestrationFailed, core.EventEntityOperationFailed:
		if t := o.open[e.TaskScheduledID]; t != nil {
			delete(o.open, e.TaskScheduledID)
			f := e.Failure
			if f == nil {
				f = &core.FailureDetails{Type: "UnknownError", Message: e.Kind.String() + " without failure details"}
			}
			t.complete(nil, f)
		}
	case core.EventEventRaised:
		for i, w := range o.waiters {
			if strings.EqualFold(w.name, e.Name) {
				o.waiters = slices.Delete(o.waiters, i, i+1)
				w.t.complete(e.Input, nil)
				return
			}
		}
		o.buffered = append(o.buffered, e)
	case core.EventExecutionTerminated:
		o.release()
		o.completed, o.status = true, core.StatusTerminated
		o.output, o.failure, o.continueAsNew = e.Input, nil, nil
		o.terminatedReason = e.Reason
	case core.EventExecutionSuspended:
		if o.status == core.StatusRunning {
			o.suspended, o.status = true, core.StatusSuspended
		}
	case core.EventExecutionResumed:
		if o.suspended {
			o.suspended, o.status = false, core.StatusRunning
			held := o.deferred
			o.deferred = nil
			for _, d := range held {
				o.step(d)
			}
		}
	default:
		if e.Kind.IsScheduling() {
			o.match(e)
		}
	}
}

func (o *orchestration) startExecution(e *core.HistoryEvent) {
	if o.started != nil {
		return // a duplicate start is ignored; the engine filters them
	}
	o.started = e
	o.executionID, o.name, o.input = e.ExecutionID, e.Name, e.Input
	if o.instanceID == "" {
		o.instanceID = e.InstanceID
	}
	fn, ok := o.x.registry.orchestrator(e.Name)
	if !ok {
		o.returned = true
		o.failure = &core.FailureDetails{Type: core.FailureNotRegistered,
			Message: notRegistered(o.x.registry, "orchestrator", e.Name), NonRetriable: true}
		return
	}
	o.fn = fn
	o.startFunc()
}

// match checks a recorded scheduling event against the call the code made
// at the same sequence number.
func (o *orchestration) match(e *core.HistoryEvent) {
	a := o.unmatched[e.EventID]
	switch {
	case a == nil:
		o.nondeterminism(fmt.Sprintf(
			"the history records %s at sequence %d, but the orchestrator made no call at that position on replay (it made %d scheduling calls)",
			describeRecorded(e), e.EventID, o.seq))
	case a.event.Kind != e.Kind || a.event.Name != e.Name || a.event.InstanceID != e.InstanceID ||
		!slices.Equal(a.event.LockSet, e.LockSet):
		o.nondeterminism(fmt.Sprintf(
			"at sequence %d the history records %s, but the orchestrator called %s",
			e.EventID, describeRecorded(e), describeCall(a.event)))
	default:
		delete(o.unmatched, e.EventID)
	}
}

func (o *orchestration) nondeterminism(msg string) {
	o.release()
	o.completed, o.status = true, core.StatusFailed
	o.output, o.continueAsNew = nil, nil
	o.failure = &core.FailureDetails{Type: core.FailureNonDeterminism,
		Message:      fmt.Sprintf("orchestrator %q (instance %s) is not deterministic: %s", o.name, o.instanceID, msg),
		NonRetriable: true}
	o.nondetFailure = o.failure
}

var callNames = map[core.EventKind]string{
	core.EventTaskScheduled:           "CallActivity",
	core.EventSubOrchestrationCreated: "CallSubOrchestrator",
	core.EventTimerCreated:            "CreateTimer",
	core.EventEventSent:               "SendEvent",
	core.EventEntityOperationCalled:   "CallEntity",
	core.EventEntityOperationSignaled: "SignalEntity",
	core.EventEntityLockRequested:     "LockEntities",
	core.EventEntityLockReleased:      "CriticalSection.Release",
}

func describeRecorded(e *core.HistoryEvent) string {
	return fmt.Sprintf("%s (%s)", e.Kind, describeCall(e))
}

func describeCall(e *core.HistoryEvent) string {
	name := callNames[e.Kind]
	switch e.Kind {
	case core.EventTimerCreated:
		return fmt.Sprintf("%s(fire at %s)", name, e.FireAt.Format(time.RFC3339Nano))
	case core.EventEntityLockRequested, core.EventEntityLockReleased:
		return fmt.Sprintf("%s(%v)", name, e.LockSet)
	case core.EventEntityOperationCalled, core.EventEntityOperationSignaled, core.EventEventSent:
		return fmt.Sprintf("%s(%s, %q)", name, e.InstanceID, e.Name)
	}
	return fmt.Sprintf("%s(%q)", name, e.Name)
}

// endEpisode collects the episode's new scheduling events, messages and
// completion into res.
func (o *orchestration) endEpisode(res *EpisodeResult) {
	if o.nondetFailure != nil {
		// The calls of a diverged replay are not to be trusted.
		clear(o.unmatched)
	}
	if o.completed && o.lock != nil {
		// An orchestration that ends inside a critical section releases
		// its locks.
		o.releaseLocks()
	}
	seqs := make([]int32, 0, len(o.unmatched))
	for s := range o.unmatched {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		a := o.unmatched[s]
		res.NewEvents = append(res.NewEvents, a.event)
		if a.activity != nil {
			res.Activities = append(res.Activities, a.activity)
		}
		if a.timer != nil {
			res.Timers = append(res.Timers, a.timer)
		}
		res.Messages = append(res.Messages, a.messages...)
	}
	clear(o.unmatched)

	res.Status, res.CustomStatus = o.status, o.customStatus
	if o.completed {
		res.Output, res.Failure = o.output, o.failure
		if o.status == core.StatusContinuedAsNew {
			o.emitContinueAsNew(res)
		} else {
			o.emitCompletion(res)
		}
	}
	res.NewEvents = append(res.NewEvents, core.NewEvent(core.EventOrchestratorCompleted, o.currentTime))
}

func (o *orchestration) emitCompletion(res *EpisodeResult) {
	done := core.NewEvent(core.EventExecutionCompleted, o.currentTime)
	done.Status, done.Result, done.Failure = o.status, o.output, o.failure
	res.NewEvents = append(res.NewEvents, done)
	if o.started == nil || o.started.Parent == nil {
		return
	}
	p := o.started.Parent
	reply := core.NewEvent(core.EventSubOrchestrationCompleted, o.currentTime)
	reply.TaskScheduledID, reply.InstanceID = p.TaskScheduledID, o.instanceID
	switch o.status {
	case core.StatusCompleted:
		reply.Result = o.output
	case core.StatusTerminated:
		reply.Kind = core.EventSubOrchestrationFailed
		reply.Failure = &core.FailureDetails{Type: core.FailureTerminated,
			Message: fmt.Sprintf("sub-orchestration %s was terminated: %s", o.instanceID, terminationText(o))}
	default:
		reply.Kind = core.EventSubOrchestrationFailed
		reply.Failure = o.failure
	}
	res.Messages = append(res.Messages, &core.TaskMessage{
		Target: core.Instance{InstanceID: p.InstanceID, ExecutionID: p.ExecutionID}, Event: reply})
}

func terminationText(o *orchestration) string {
	if o.terminatedReason != "" {
		return o.terminatedReason
	}
	return string(o.output)
}

func (o *orchestration) emitContinueAsNew(res *EpisodeResult) {
	c := o.continueAsNew
	ev := core.NewEvent(core.EventContinuedAsNew, o.currentTime)
	ev.Input = c.input
	res.NewEvents = append(res.NewEvents, ev)

	start := core.NewEvent(core.EventExecutionStarted, o.currentTime)
	start.Name, start.Input, start.InstanceID = o.name, c.input, o.instanceID
	start.ExecutionID = nameUUID(fmt.Sprintf("%s\x00%s\x00continue-as-new", o.instanceID, o.executionID))
	if o.started != nil {
		start.Version, start.Tags, start.Parent = o.started.Version, o.started.Tags, o.started.Parent
	}
	next := &ContinueAsNew{Start: start}
	if c.keepEvent {
		for _, e := range o.buffered {
			next.CarryOver = append(next.CarryOver, e)
		}
		for _, e := range o.deferred {
			if e.Kind == core.EventEventRaised {
				next.CarryOver = append(next.CarryOver, e)
			}
		}
	}
	res.ContinueAsNew = next
}
