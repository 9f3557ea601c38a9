package durable

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
)

// orchestration is one execution of an orchestrator, driven by the
// executor. The user function runs on its own goroutine, but never at the
// same time as the executor: they pass a baton over two unbuffered
// channels. The executor feeds history events one at a time; when an event
// completes the task the function waits for, the executor hands it the
// baton and waits until the function blocks again or returns. This keeps
// replay deterministic and lets an execution stay suspended in memory
// between episodes (a cached cursor).
type orchestration struct {
	x           *Executor
	converter   Converter
	instanceID  string
	executionID string
	name        string
	fn          OrchestratorFunc
	started     *core.HistoryEvent // the ExecutionStarted event
	input       []byte

	// Coroutine state.
	toFunc     chan struct{} // executor -> function: continue
	toExecutor chan struct{} // function -> executor: blocked or returned
	running    bool          // the function goroutine exists
	inFunc     bool          // the function holds the baton
	returned   bool          // the function returned (or panicked)
	abandoned  bool          // the executor is releasing the goroutine
	awaiting   *task

	// Replay state.
	currentTime time.Time
	replaying   bool
	processed   int // history events processed, for cursor validation
	seq         int32
	uuidCounter uint64
	// actions created by the function and not yet matched to a recorded
	// scheduling event; at the end of an episode they are the new actions.
	unmatched map[int32]*action
	open      map[int32]*task // scheduled tasks awaiting a completion
	buffered  []*core.HistoryEvent
	waiters   []*eventWaiter
	suspended bool
	deferred  []*core.HistoryEvent // events held while suspended
	lock      *lockState

	// Outcome.
	customStatus     []byte
	completed        bool
	status           core.RuntimeStatus
	output           []byte
	failure          *core.FailureDetails
	continueAsNew    *continueAsNew
	nondetFailure    *core.FailureDetails
	terminatedReason string

	logger *slog.Logger
}

type action struct {
	event *core.HistoryEvent // the scheduling event to record
	// exactly one of the following is set, or none (lock release sends
	// several messages).
	activity *core.TaskMessage
	timer    *core.TaskMessage
	messages []*core.TaskMessage
}

type eventWaiter struct {
	name string
	t    *task
}

type lockState struct {
	ids       []core.EntityID
	requestID string
	granted   bool
	section   *CriticalSection
}

type continueAsNew struct {
	input     []byte
	keepEvent bool
}

func newOrchestration(x *Executor, instanceID string) *orchestration {
	o := &orchestration{
		x:          x,
		converter:  x.registry.converter,
		instanceID: instanceID,
		toFunc:     make(chan struct{}),
		toExecutor: make(chan struct{}),
		unmatched:  map[int32]*action{},
		open:       map[int32]*task{},
		status:     core.StatusPending,
	}
	o.logger = slog.New(&replaySafeHandler{inner: x.logger.Handler(), o: o}).With(
		slog.String("instanceId", instanceID))
	return o
}

// --- the coroutine ---

// startFunc starts the function goroutine and waits until it blocks or
// returns.
func (o *orchestration) startFunc() {
	o.running = true
	o.inFunc = true
	o.status = core.StatusRunning
	go o.runFunc()
	<-o.toExecutor
}

func (o *orchestration) runFunc() {
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				o.finish(nil, panicDetails(r, "orchestrator panicked"))
			} else if !o.abandoned {
				o.finish(nil, &core.FailureDetails{Type: core.FailurePanic, Message: "orchestrator called runtime.Goexit"})
			}
		}
		o.running = false
		o.inFunc = false
		o.toExecutor <- struct{}{}
	}()
	out, err := o.fn(o)
	returned = true
	if err != nil {
		o.finish(nil, errorDetails(err))
		return
	}
	if o.continueAsNew != nil {
		o.finish(nil, nil)
		return
	}
	b, merr := o.converter.Marshal(out)
	if merr != nil {
		o.finish(nil, &core.FailureDetails{Type: core.FailureSerialization,
			Message: fmt.Sprintf("encode output of orchestrator %q: %v", o.name, merr)})
		return
	}
	o.finish(b, nil)
}

// finish records the function's outcome, once.
func (o *orchestration) finish(output []byte, failure *core.FailureDetails) {
	if o.returned {
		return
	}
	o.returned = true
	o.output, o.failure = output, failure
}

// suspend is called on the function goroutine by Await: it passes the
// baton to the executor and waits to be resumed.
func (o *orchestration) suspend(t *task) {
	if o.abandoned {
		runtime.Goexit()
	}
	if !o.inFunc {
		panic(fmt.Sprintf("durable: %s %q awaited outside its orchestration: tasks must be awaited by the orchestrator function that created them, on its own goroutine", t.kind, t.name))
	}
	o.awaiting = t
	o.inFunc = false
	o.toExecutor <- struct{}{}
	<-o.toFunc
	if o.abandoned {
		runtime.Goexit()
	}
}

// resumeIfReady hands the baton to the function if the task it waits for
// is done, and waits until it blocks again or returns.
func (o *orchestration) resumeIfReady() {
	if !o.running || o.awaiting == nil || !o.awaiting.done {
		return
	}
	o.awaiting = nil
	o.inFunc = true
	o.toFunc <- struct{}{}
	<-o.toExecutor
}

// release ends the function goroutine if it is still blocked. Deferred
// calls in the function run; Await calls in them return at once.
func (o *orchestration) release() {
	if !o.running {
		return
	}
	o.abandoned = true
	o.inFunc = true
	o.toFunc <- struct{}{}
	<-o.toExecutor
}

// --- scheduling calls (on the function goroutine) ---

func (o *orchestration) nextSeq() int32 {
	s := o.seq
	o.seq++
	return s
}

func (o *orchestration) newTask(kind, name string, id int32) *task {
	return &task{o: o, kind: kind, name: name, id: id}
}

// schedule records a new action and opens its task.
func (o *orchestration) schedule(kind string, a *action) *task {
	t := o.newTask(kind, a.event.Name, a.event.EventID)
	o.record(a)
	o.open[a.event.EventID] = t
	return t
}

// record keeps a call as an action of the episode, unless the execution is
// being abandoned: calls made by deferred code while its goroutine is
// released are not part of the orchestration.
func (o *orchestration) record(a *action) {
	if o.abandoned {
		return
	}
	o.unmatched[a.event.EventID] = a
}

func (o *orchestration) event(kind core.EventKind, seq int32) *core.HistoryEvent {
	e := core.NewEvent(kind, o.currentTime)
	e.EventID = seq
	return e
}

func (o *orchestration) self() core.Instance {
	return core.Instance{InstanceID: o.instanceID, ExecutionID: o.executionID}
}

func (o *orchestration) InstanceID() string     { return o.instanceID }
func (o *orchestration) ExecutionID() string    { return o.executionID }
func (o *orchestration) Name() string           { return o.name }
func (o *orchestration) CurrentTime() time.Time { return o.currentTime }
func (o *orchestration) IsReplaying() bool      { return o.replaying || o.abandoned }
func (o *orchestration) Logger() *slog.Logger   { return o.logger }

func (o *orchestration) GetInput(v any) error {
	if err := o.converter.Unmarshal(o.input, v); err != nil {
		return fmt.Errorf("decode input of orchestrator %q into %T: %w", o.name, v, err)
	}
	return nil
}

// uuidNamespace is the namespace of the name-based UUIDs of NewUUID.
var uuidNamespace = [16]byte{0x9e, 0x95, 0x2b, 0x8e, 0x6d, 0x42, 0x4f, 0x1c, 0x8a, 0x4c, 0x6e, 0x3f, 0x1b, 0x77, 0x20, 0x5d}

func (o *orchestration) NewUUID() string {
	o.uuidCounter++
	return nameUUID(fmt.Sprintf("%s\x00%s\x00%d", o.instanceID, o.executionID, o.uuidCounter))
}

// nameUUID returns a version-5 (SHA-1, name-based) UUID.
func nameUUID(name string) string {
	h := sha1.New()
	h.Write(uuidNamespace[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func (o *orchestration) CallActivity(name string, input any, opts ...CallOption) Task {
	c, err := collectOptions("CallActivity", activityOptions, opts)
	if err != nil {
		return failedTask(o, "activity", name, core.FailureInvalidInput, err.Error())
	}
	if name == "" {
		return failedTask(o, "activity", name, core.FailureInvalidInput, "CallActivity: empty activity name")
	}
	in, err := marshalPayload(o.converter, fmt.Sprintf("input of activity %q", name), input)
	if err != nil {
		return failedTask(o, "activity", name, core.FailureSerialization, err.Error())
	}
	attempt := func() *task {
		seq := o.nextSeq()
		e := o.event(core.EventTaskScheduled, seq)
		e.Name, e.Input = name, in
		return o.schedule("activity", &action{event: e,
			activity: &core.TaskMessage{Target: o.self(), Event: e.Clone()}})
	}
	if c.retry != nil {
		return o.withRetry("activity", name, *c.retry, attempt)
	}
	return attempt()
}

func (o *orchestration) CallSubOrchestrator(name string, input any, opts ...CallOption) Task {
	const kind = "sub-orchestration"
	c, err := collectOptions("CallSubOrchestrator", subOrchOptions, opts)
	if err != nil {
		return failedTask(o, kind, name, core.FailureInvalidInput, err.Error())
	}
	if name == "" {
		return failedTask(o, kind, name, core.FailureInvalidInput, "CallSubOrchestrator: empty orchestrator name")
	}
	if o.lock != nil {
		return failedTask(o, kind, name, core.FailureLockingRules,
			fmt.Sprintf("cannot call sub-orchestrator %q inside a critical section", name))
	}
	if c.instanceID != "" {
		if err := core.ValidateInstanceID(c.instanceID); err != nil {
			return failedTask(o, kind, name, core.FailureInvalidInput, err.Error())
		}
	}
	in, err := marshalPayload(o.converter, fmt.Sprintf("input of sub-orchestrator %q", name), input)
	if err != nil {
		return failedTask(o, kind, name, core.FailureSerialization, err.Error())
	}
	attempt := func() *task {
		seq := o.nextSeq()
		child := c.instanceID
		if child == "" {
			child = fmt.Sprintf("%s:%s:%d", o.instanceID, shortID(o.executionID), seq)
		}
		e := o.event(core.EventSubOrchestrationCreated, seq)
		e.Name, e.Input, e.InstanceID, e.Version = name, in, child, c.version
		e.ExecutionID = nameUUID(fmt.Sprintf("%s\x00%s\x00child\x00%d", o.instanceID, o.executionID, seq))
		start := core.NewEvent(core.EventExecutionStarted, o.currentTime)
		start.Name, start.Input, start.Version, start.Tags = name, in, c.version, c.tags
		start.InstanceID, start.ExecutionID = child, e.ExecutionID
		start.Parent = &core.ParentInstance{Name: o.name, InstanceID: o.instanceID,
			ExecutionID: o.executionID, TaskScheduledID: seq}
		return o.schedule(kind, &action{event: e, messages: []*core.TaskMessage{{
			Target: core.Instance{InstanceID: child, ExecutionID: e.ExecutionID}, Event: start}}})
	}
	if c.retry != nil {
		return o.withRetry(kind, name, *c.retry, attempt)
	}
	return attempt()
}

func shortID(id string) string {
	id = strings.ReplaceAll(id, "-", "")
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func (o *orchestration) CreateTimer(d time.Duration) Task {
	return o.CreateTimerAt(o.currentTime.Add(d))
}

func (o *orchestration) CreateTimerAt(at time.Time) Task {
	return o.createTimer("timer", at)
}

func (o *orchestration) createTimer(kind string, at time.Time) *task {
	seq := o.nextSeq()
	e := o.event(core.EventTimerCreated, seq)
	e.FireAt = at.UTC()
	fired := core.NewEvent(core.EventTimerFired, o.currentTime)
	fired.TaskScheduledID, fired.FireAt = seq, e.FireAt
	return o.schedule(kind, &action{event: e, timer: &core.TaskMessage{Target: o.self(), Event: fired}})
}

// withRetry drives attempts and the timers between them from completion
// callbacks, which run on the executor while it applies events, so a
// retried task progresses even when nobody awaits it.
func (o *orchestration) withRetry(kind, name string, p RetryPolicy, attempt func() *task) Task {
	outer := o.newTask(kind, name, core.NoEventID)
	if err := p.validate(); err != nil {
		outer.complete(nil, &core.FailureDetails{Type: core.FailureInvalidInput, Message: err.Error(), NonRetriable: true})
		return outer
	}
	firstAt := o.currentTime
	n := 1
	var try func()
	try = func() {
		t := attempt()
		outer.id = t.id
		t.onDone(func() {
			if t.failure == nil {
				outer.complete(t.result, nil)
				return
			}
			retry, pf := p.shouldRetry(t.failure)
			if pf != nil {
				outer.complete(nil, pf)
				return
			}
			delay := p.Delay(n)
			if !retry || n >= p.MaxAttempts ||
				(p.RetryTimeout > 0 && o.currentTime.Sub(firstAt) >= p.RetryTimeout) {
				outer.complete(nil, t.failure)
				return
			}
			n++
			o.createTimer("retry timer", o.currentTime.Add(delay)).onDone(try)
		})
	}
	try()
	return outer
}

func (o *orchestration) WaitForExternalEvent(name string, opts ...CallOption) Task {
	const kind = "external event"
	c, err := collectOptions("WaitForExternalEvent", eventOptions, opts)
	if err != nil {
		return failedTask(o, kind, name, core.FailureInvalidInput, err.Error())
	}
	if c.hasTimeout && c.timeout < 0 {
		return failedTask(o, kind, name, core.FailureInvalidInput,
			fmt.Sprintf("WaitForExternalEvent %q: negative timeout %v", name, c.timeout))
	}
	t := o.newTask(kind, name, core.NoEventID)
	for i, e := range o.buffered {
		if strings.EqualFold(e.Name, name) {
			o.buffered = slices.Delete(o.buffered, i, i+1)
			t.complete(e.Input, nil)
			return t
		}
	}
	timeoutFailure := &core.FailureDetails{Type: core.FailureTimeout,
		Message: fmt.Sprintf("external event %q did not arrive within %v", name, c.timeout)}
	if c.hasTimeout && c.timeout == 0 {
		t.complete(nil, timeoutFailure)
		return t
	}
	w := &eventWaiter{name: name, t: t}
	o.waiters = append(o.waiters, w)
	if c.hasTimeout {
		o.createTimer("timeout timer", o.currentTime.Add(c.timeout)).onDone(func() {
			if !t.done {
				o.removeWaiter(w)
				t.complete(nil, timeoutFailure)
			}
		})
	}
	return t
}

func (o *orchestration) removeWaiter(w *eventWaiter) {
	if i := slices.Index(o.waiters, w); i >= 0 {
		o.waiters = slices.Delete(o.waiters, i, i+1)
	}
}

func (o *orchestration) SendEvent(instanceID, name string, payload any) error {
	if err := core.ValidateInstanceID(instanceID); err != nil {
		return fmt.Errorf("SendEvent %q: %w", name, err)
	}
	in, err := marshalPayload(o.converter, fmt.Sprintf("payload of event %q", name), payload)
	if err != nil {
		return err
	}
	seq := o.nextSeq()
	e := o.event(core.EventEventSent, seq)
	e.Name, e.InstanceID, e.Input = name, instanceID, in
	raised := core.NewEvent(core.EventEventRaised, o.currentTime)
	raised.Name, raised.Input = name, in
	raised.Parent = &core.ParentInstance{Name: o.name, InstanceID: o.instanceID, ExecutionID: o.executionID}
	o.record(&action{event: e, messages: []*core.TaskMessage{{
		Target: core.Instance{InstanceID: instanceID}, Event: raised}}})
	return nil
}

func (o *orchestration) ContinueAsNew(input any, opts ...ContinueAsNewOption) {
	c := &callOptions{keepUnproces: true}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	in, err := o.converter.Marshal(input)
	if err != nil {
		// Surface the error as the orchestration's failure: the function
		// is expected to return right after this call.
		o.finish(nil, &core.FailureDetails{Type: core.FailureSerialization,
			Message: fmt.Sprintf("ContinueAsNew: encode input: %v", err)})
		return
	}
	o.continueAsNew = &continueAsNew{input: in, keepEvent: c.keepUnproces}
}

func (o *orchestration) SetCustomStatus(v any) error {
	b, err := marshalPayload(o.converter, "custom status", v)
	if err != nil {
		return err
	}
	o.customStatus = b
	return nil
}

// --- entities ---

func (o *orchestration) lockedSet() []core.EntityID {
	if o.lock == nil {
		return nil
	}
	return o.lock.ids
}

func containsEntity(ids []core.EntityID, id core.EntityID) bool {
	return slices.Contains(ids, id)
}

func (o *orchestration) CallEntity(id core.EntityID, operation string, input any) Task {
	const kind = "entity operation"
	if err := id.Validate(); err != nil {
		return failedTask(o, kind, operation, core.FailureInvalidInput, err.Error())
	}
	if o.lock != nil && !containsEntity(o.lock.ids, id) {
		return failedTask(o, kind, operation, core.FailureLockingRules,
			fmt.Sprintf("cannot call entity %s inside a critical section that does not lock it (locked: %v)", id, o.lock.ids))
	}
	in, err := marshalPayload(o.converter, fmt.Sprintf("input of operation %q on %s", operation, id), input)
	if err != nil {
		return failedTask(o, kind, operation, core.FailureSerialization, err.Error())
	}
	seq := o.nextSeq()
	e := o.event(core.EventEntityOperationCalled, seq)
	e.Name, e.InstanceID, e.Input, e.RequestID = operation, id.String(), in, o.NewUUID()
	e.Parent = &core.ParentInstance{Name: o.name, InstanceID: o.instanceID, ExecutionID: o.executionID, TaskScheduledID: seq}
	return o.schedule(kind, &action{event: e, messages: []*core.TaskMessage{{
		Target: core.Instance{InstanceID: id.String()}, Event: e.Clone()}}})
}

func (o *orchestration) SignalEntity(id core.EntityID, operation string, input any, opts ...CallOption) error {
	c, err := collectOptions("SignalEntity", signalOptions, opts)
	if err != nil {
		return err
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("SignalEntity: %w", err)
	}
	if o.lock != nil && containsEntity(o.lock.ids, id) {
		return &core.FailureDetails{Type: core.FailureLockingRules,
			Message: fmt.Sprintf("cannot signal entity %s inside a critical section that locks it; call it instead", id)}
	}
	in, err := marshalPayload(o.converter, fmt.Sprintf("input of operation %q on %s", operation, id), input)
	if err != nil {
		return err
	}
	seq := o.nextSeq()
	e := o.event(core.EventEntityOperationSignaled, seq)
	e.Name, e.InstanceID, e.Input, e.RequestID = operation, id.String(), in, o.NewUUID()
	if !c.signalTime.IsZero() {
		e.FireAt = c.signalTime.UTC()
	}
	e.Parent = &core.ParentInstance{Name: o.name, InstanceID: o.instanceID, ExecutionID: o.executionID, TaskScheduledID: core.NoEventID}
	o.record(&action{event: e, messages: []*core.TaskMessage{{
		Target: core.Instance{InstanceID: id.String()}, Event: e.Clone()}}})
	return nil
}

func (o *orchestration) LockEntities(ids ...core.EntityID) (*CriticalSection, error) {
	rule := func(msg string) error {
		return &core.FailureDetails{Type: core.FailureLockingRules, Message: msg}
	}
	if o.lock != nil {
		return nil, rule(fmt.Sprintf("cannot lock %v: already inside a critical section (locked: %v); nested critical sections are not allowed", ids, o.lock.ids))
	}
	if len(ids) == 0 {
		return nil, rule("LockEntities: no entities given")
	}
	set := slices.Clone(ids)
	for _, id := range set {
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("LockEntities: %w", err)
		}
	}
	slices.SortFunc(set, core.CompareEntityIDs)
	set = slices.Compact(set)

	seq := o.nextSeq()
	e := o.event(core.EventEntityLockRequested, seq)
	e.InstanceID, e.LockSet, e.RequestID, e.LockPosition = set[0].String(), set, o.NewUUID(), 0
	e.Parent = &core.ParentInstance{Name: o.name, InstanceID: o.instanceID, ExecutionID: o.executionID, TaskScheduledID: seq}
	t := o.schedule("lock", &action{event: e, messages: []*core.TaskMessage{{
		Target: core.Instance{InstanceID: set[0].String()}, Event: e.Clone()}}})
	cs := &CriticalSection{o: o, ids: set}
	o.lock = &lockState{ids: set, section: cs, requestID: e.RequestID}
	if err := t.Await(nil); err != nil {
		return nil, err
	}
	o.lock.granted = true
	return cs, nil
}

func (o *orchestration) InCriticalSection() (bool, []core.EntityID) {
	if o.lock == nil {
		return false, nil
	}
	return true, slices.Clone(o.lock.ids)
}

// releaseLocks sends a release to every locked entity.
func (o *orchestration) releaseLocks() {
	if o.lock == nil {
		return
	}
	ids, requestID := o.lock.ids, o.lock.requestID
	o.lock.section.released = true
	o.lock = nil
	seq := o.nextSeq()
	e := o.event(core.EventEntityLockReleased, seq)
	e.LockSet = ids
	a := &action{event: e}
	for _, id := range ids {
		m := core.NewEvent(core.EventEntityLockReleased, o.currentTime)
		m.InstanceID, m.RequestID = id.String(), requestID
		m.Parent = &core.ParentInstance{Name: o.name, InstanceID: o.instanceID, ExecutionID: o.executionID, TaskScheduledID: core.NoEventID}
		a.messages = append(a.messages, &core.TaskMessage{Target: core.Instance{InstanceID: id.String()}, Event: m})
	}
	o.unmatched[seq] = a
}

// --- replay-safe logging ---

type replaySafeHandler struct {
	inner slog.Handler
	o     *orchestration
}

func (h *replaySafeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.o.IsReplaying() && h.inner.Enabled(ctx, l)
}

func (h *replaySafeHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.o.IsReplaying() {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *replaySafeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &replaySafeHandler{inner: h.inner.WithAttrs(as), o: h.o}
}

func (h *replaySafeHandler) WithGroup(name string) slog.Handler {
	return &replaySafeHandler{inner: h.inner.WithGroup(name), o: h.o}
}

// --- failures ---

func panicDetails(r any, what string) *core.FailureDetails {
	buf := make([]byte, 16<<10)
	buf = buf[:runtime.Stack(buf, false)]
	f := &core.FailureDetails{Type: core.FailurePanic, Message: fmt.Sprintf("%s: %v", what, r), StackTrace: string(buf)}
	if err, ok := r.(error); ok {
		f.Inner = errorDetails(err)
	}
	return f
}

// errorDetails turns an error returned by user code into failure details.
// A task failure inside it becomes the inner failure.
func errorDetails(err error) *core.FailureDetails {
	if f, ok := err.(*core.FailureDetails); ok {
		return f.Clone()
	}
	f := &core.FailureDetails{Type: errorTypeName(err), Message: err.Error()}
	var tf *TaskFailedError
	if errors.As(err, &tf) {
		f.Inner = tf.Failure.Clone()
	}
	var ii *InvalidInputError
	if errors.As(err, &ii) {
		f.Type, f.NonRetriable = core.FailureInvalidInput, true
	}
	return f
}

func errorTypeName(err error) string {
	if tf, ok := err.(*TaskFailedError); ok && tf.Failure != nil {
		return core.FailureTaskFailed
	}
	return fmt.Sprintf("%T", err)
}
