package partitions

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// State is everything a partition knows. It is changed only by Apply,
// which is deterministic and does no I/O: the runtime reads the Effects
// that Apply reports and performs them.
type State struct {
	Partition int
	Count     int

	// Instances holds orchestrations and entities by instance id.
	Instances map[string]*Instance

	// NextInputPos is the input-queue position to read next.
	NextInputPos uint64
	// LastPos is the commit position of the last applied event.
	LastPos uint64

	// Activities are queued and running activity work items.
	Activities     map[uint64]*core.TaskMessage
	NextActivityID uint64

	// Timers are messages due later.
	Timers      map[uint64]*core.TaskMessage
	NextTimerID uint64

	// Outbox holds batches for other partitions until they are acked, in
	// commit-position order.
	Outbox []*OutboxBatch
	// OutboxLast holds, per destination, the position of the last batch
	// produced for it (the next batch's Prev).
	OutboxLast map[int]uint64

	// Dedup holds, per origin partition, the highest (position,
	// sub-position) applied.
	Dedup map[int]DedupMark

	// Requests remembers the answers to recent client update requests, so
	// that a retried request is not applied twice (requests.go; nil until
	// the first one).
	Requests *RequestLog

	// NextGeneration numbers sessions, so that a work item's result is not
	// applied to an instance that was replaced meanwhile.
	NextGeneration uint64

	// backing, if set, holds the instances that are not resident.
	backing *backing
}

// Instance is one orchestration or entity: its record, its history or
// entity state, and its session (messages not yet processed).
type Instance struct {
	ID       string
	IsEntity bool
	Record   InstanceRecord
	History  []*core.HistoryEvent
	Entity   *core.EntityState
	// Pending are messages delivered but not yet processed, in arrival
	// order.
	Pending    []*core.HistoryEvent
	Generation uint64
	// WaitingForStart is set while a scheduled start is not yet due:
	// messages wait in Pending behind the start that has yet to come.
	WaitingForStart bool
}

// InstanceRecord is what a status query reports.
type InstanceRecord struct {
	Name             string
	Version          string
	ExecutionID      string
	Status           core.RuntimeStatus
	CreatedAt        time.Time
	LastUpdatedAt    time.Time
	ScheduledStartAt time.Time
	Input            []byte
	Output           []byte
	CustomStatus     []byte
	Failure          *core.FailureDetails
	Parent           *core.ParentInstance
	Tags             map[string]string
}

// OutboxBatch is a batch of messages to one partition, produced by the
// event at commit position Pos.
type OutboxBatch struct {
	Pos  uint64
	Dest int
	// Prev is the position of the previous batch to Dest (0: none).
	Prev     uint64
	Messages []*core.TaskMessage
}

// DedupMark is a high-water mark of messages applied from one origin.
type DedupMark struct {
	Pos uint64
	Sub uint32
}

// Response is a reply to a client, released when the event at Pos is
// durable.
type Response struct {
	ClientID string
	Response *transport.ClientResponse
}

// Effects is what applying events asks the runtime to do.
type Effects struct {
	// Ready lists instances that got pending messages.
	Ready []string
	// Activities and Timers list the ids of new work.
	Activities []uint64
	Timers     []uint64
	// Outbox lists new batches for other partitions.
	Outbox []*OutboxBatch
	// Responses go to clients once the event is durable.
	Responses []Response
	// Changed lists instances whose status changed (for waiting clients).
	Changed []string
	// Dropped lists instances whose session was replaced or deleted (their
	// cached executions must go).
	Dropped []string
	// Received lists origins whose messages were applied, for acks.
	Received []DedupOrigin
	// Duplicates lists origins that sent a batch already applied: they
	// are acknowledged again (their ack may have been lost).
	Duplicates []int
	// Gaps lists origins whose batch skipped one not yet applied, with
	// the position applied from them: they are asked to resend after it.
	Gaps []DedupOrigin
	// Acks lists acknowledgements received: destination and position.
	Acks []DedupOrigin
}

// DedupOrigin names an origin and the position applied from it.
type DedupOrigin struct {
	Origin int
	Pos    uint64
}

// NewState returns the empty state of a partition.
func NewState(partition, count int) *State {
	return &State{
		Partition:  partition,
		Count:      count,
		Instances:  map[string]*Instance{},
		Activities: map[uint64]*core.TaskMessage{},
		Timers:     map[uint64]*core.TaskMessage{},
		Dedup:      map[int]DedupMark{},
		OutboxLast: map[int]uint64{},
	}
}

// Apply applies one update event at commit position pos, stamped at time
// at, and adds what the runtime must do to fx.
func (s *State) Apply(pos uint64, at time.Time, ev Event, fx *Effects) {
	s.LastPos = pos
	a := &applier{s: s, pos: pos, at: at.UTC(), fx: fx}
	defer func() { s.changed(a.touched) }()
	switch e := ev.(type) {
	case *ClientRequestReceived:
		s.NextInputPos = e.InputPos
		a.clientRequestOnce(e.Request)
	case *MessagesReceived:
		s.NextInputPos = e.InputPos
		a.messagesReceived(e.Batch)
	case *AckReceived:
		s.NextInputPos = e.InputPos
		a.ackReceived(e.Ack)
	case *BatchProcessed:
		a.batchProcessed(e)
	case *EntityBatchProcessed:
		a.entityBatchProcessed(e)
	case *ActivityCompleted:
		if _, ok := s.Activities[e.ActivityID]; ok {
			delete(s.Activities, e.ActivityID)
			a.deliver(e.Reply)
		}
	case *RecoveryCompleted:
		a.recoveryCompleted()
	case *TimerFired:
		for _, id := range e.TimerIDs {
			if m, ok := s.Timers[id]; ok {
				delete(s.Timers, id)
				a.deliverNow(m)
			}
		}
	}
	a.flushOutbox()
}

type applier struct {
	s   *State
	pos uint64
	at  time.Time
	fx  *Effects
	// out collects messages for other partitions, by destination.
	out map[int][]*core.TaskMessage
	// touched lists the instances this event read or changed.
	touched []string
}

// get returns an instance (reading it back if needed) and notes it as
// touched by the event.
func (a *applier) get(id string) *Instance {
	inst := a.s.Lookup(id)
	if inst != nil {
		a.touched = append(a.touched, id)
	}
	return inst
}

func (a *applier) set(inst *Instance) {
	a.s.setInstance(inst)
	a.touched = append(a.touched, inst.ID)
}

func (a *applier) respond(req *transport.ClientRequest, r *transport.ClientResponse) {
	r.RequestID = req.RequestID
	a.fx.Responses = append(a.fx.Responses, Response{ClientID: req.ClientID, Response: r})
}

func (a *applier) fail(req *transport.ClientRequest, code transport.ErrorCode, msg string) {
	a.respond(req, &transport.ClientResponse{Error: msg, ErrorCode: code})
}

func (a *applier) clientRequest(req *transport.ClientRequest) {
	inst := a.get(req.InstanceID)
	switch req.Kind {
	case transport.RequestCreate:
		a.create(req, inst)
	case transport.RequestSignalEntity:
		a.deliverNow(&core.TaskMessage{Target: core.Instance{InstanceID: req.InstanceID}, Event: req.Event})
		a.respond(req, &transport.ClientResponse{})
	case transport.RequestRaiseEvent, transport.RequestTerminate, transport.RequestSuspend, transport.RequestResume:
		if inst == nil || inst.IsEntity {
			a.fail(req, transport.CodeNotFound, "no instance "+req.InstanceID)
			return
		}
		st := inst.Record.Status
		if st.IsTerminal() {
			if req.Kind == transport.RequestTerminate {
				a.respond(req, &transport.ClientResponse{}) // terminating an ended instance does nothing
				return
			}
			a.fail(req, transport.CodeNotRunning, "instance "+req.InstanceID+" is "+st.String())
			return
		}
		if req.Kind == transport.RequestTerminate && inst.WaitingForStart {
			// Never started: it ends now, and its start is dropped when due.
			inst.WaitingForStart, inst.Pending = false, nil
			r := &inst.Record
			r.Status, r.Output, r.LastUpdatedAt = core.StatusTerminated, req.Event.Input, a.at
			a.fx.Changed = append(a.fx.Changed, inst.ID)
			a.respond(req, &transport.ClientResponse{})
			return
		}
		a.enqueue(inst, req.Event)
		a.respond(req, &transport.ClientResponse{})
	case transport.RequestDeleteEntity:
		if inst == nil || !inst.IsEntity || inst.Entity == nil || !inst.Entity.Exists {
			a.fail(req, transport.CodeNotFound, "no entity "+req.InstanceID)
			return
		}
		// The state goes; a lock holder and queued requests stay, so that
		// an orchestration in a critical section is not cut off.
		inst.Entity.Exists, inst.Entity.Value = false, nil
		inst.Record.LastUpdatedAt = a.at
		if inst.Entity.IsEmpty() && len(inst.Pending) == 0 {
			a.remove(inst)
		}
		a.respond(req, &transport.ClientResponse{Count: 1})
	case transport.RequestPurge:
		if inst == nil || inst.IsEntity {
			a.respond(req, &transport.ClientResponse{Count: 0})
			return
		}
		if !inst.Record.Status.IsTerminal() {
			a.fail(req, transport.CodeRunning, "instance "+req.InstanceID+" is "+inst.Record.Status.String()+"; only ended instances can be purged")
			return
		}
		a.remove(inst)
		a.respond(req, &transport.ClientResponse{Count: 1})
	case transport.RequestPurgeWhere:
		n := 0
		for _, id := range a.s.purgeIDs() {
			inst := a.get(id)
			if inst != nil && !inst.IsEntity && inst.Record.Status.IsTerminal() && matches(inst, req.Filter) {
				a.remove(inst)
				n++
			}
		}
		a.respond(req, &transport.ClientResponse{Count: n})
	}
}

// create handles a creation request under the id-reuse policy.
func (a *applier) create(req *transport.ClientRequest, inst *Instance) {
	if inst != nil && !inst.IsEntity {
		running := !inst.Record.Status.IsTerminal()
		switch ReusePolicy(req.Reuse) {
		case ReuseError:
			a.fail(req, transport.CodeExists, "instance "+req.InstanceID+" already exists ("+inst.Record.Status.String()+")")
			return
		case ReuseIfEnded:
			if running {
				a.fail(req, transport.CodeExists, "instance "+req.InstanceID+" already exists and is "+inst.Record.Status.String())
				return
			}
		case ReuseIgnore:
			if running {
				a.respond(req, &transport.ClientResponse{})
				return
			}
		case ReuseTerminate:
		}
	}
	a.startExecution(req.InstanceID, req.Event)
	a.respond(req, &transport.ClientResponse{})
}

// Reuse policies on the wire, matching durable.IDReusePolicy.
const (
	ReuseIfEnded ReusePolicy = iota
	ReuseError
	ReuseIgnore
	ReuseTerminate
)

// ReusePolicy is transport.ReusePolicy.
type ReusePolicy = transport.ReusePolicy

// startExecution creates (or replaces) an orchestration instance whose
// first message is start.
func (a *applier) startExecution(id string, start *core.HistoryEvent) *Instance {
	if old := a.get(id); old != nil {
		a.remove(old)
	}
	a.s.NextGeneration++
	inst := &Instance{ID: id, Generation: a.s.NextGeneration}
	inst.Record = InstanceRecord{
		Name: start.Name, Version: start.Version, ExecutionID: start.ExecutionID,
		Status: core.StatusPending, CreatedAt: a.at, LastUpdatedAt: a.at,
		Input: start.Input, Parent: start.Parent, Tags: start.Tags,
	}
	a.set(inst)
	a.fx.Changed = append(a.fx.Changed, id)
	if !start.FireAt.IsZero() && start.FireAt.After(a.at) {
		inst.Record.ScheduledStartAt = start.FireAt
		inst.WaitingForStart = true
		a.addTimer(&core.TaskMessage{Target: core.Instance{InstanceID: id, ExecutionID: start.ExecutionID}, Event: start})
		return inst
	}
	a.enqueue(inst, start)
	return inst
}

func (a *applier) remove(inst *Instance) {
	a.s.deleteInstance(inst.ID)
	a.fx.Dropped = append(a.fx.Dropped, inst.ID)
	a.fx.Changed = append(a.fx.Changed, inst.ID)
}

func (a *applier) enqueue(inst *Instance, e *core.HistoryEvent) {
	if len(inst.Pending) == 0 && !inst.WaitingForStart {
		a.fx.Ready = append(a.fx.Ready, inst.ID)
	}
	inst.Pending = append(inst.Pending, e)
}

func (a *applier) addTimer(m *core.TaskMessage) {
	a.s.NextTimerID++
	a.s.Timers[a.s.NextTimerID] = m
	a.fx.Timers = append(a.fx.Timers, a.s.NextTimerID)
}

// deliver routes a message produced here: to this partition's sessions,
// or into the outbox for another partition.
func (a *applier) deliver(m *core.TaskMessage) {
	p := PartitionOf(m.Target.InstanceID, a.s.Count)
	if p != a.s.Partition {
		if a.out == nil {
			a.out = map[int][]*core.TaskMessage{}
		}
		a.out[p] = append(a.out[p], m)
		return
	}
	a.deliverNow(m)
}

// deliverNow hands a message to its instance on this partition, or to
// the timers if it is due later.
func (a *applier) deliverNow(m *core.TaskMessage) {
	e := m.Event
	if !e.FireAt.IsZero() && e.FireAt.After(a.at) && e.Kind != core.EventTimerFired {
		a.addTimer(m)
		return
	}
	if e.Kind == core.EventTimerFired && e.FireAt.After(a.at) {
		a.addTimer(m)
		return
	}
	id := m.Target.InstanceID
	inst := a.get(id)
	if core.IsEntityInstanceID(id) {
		if inst == nil {
			a.s.NextGeneration++
			inst = &Instance{ID: id, IsEntity: true, Generation: a.s.NextGeneration,
				Record: InstanceRecord{CreatedAt: a.at, LastUpdatedAt: a.at}}
			if eid, err := core.ParseEntityID(id); err == nil {
				inst.Record.Name = eid.Name
			}
			a.set(inst)
		}
		a.enqueue(inst, e)
		return
	}
	if e.Kind == core.EventExecutionStarted {
		if inst != nil && !inst.Record.Status.IsTerminal() && e.Parent != nil {
			// A sub-orchestration whose id is taken by a running instance.
			reply := core.NewEvent(core.EventSubOrchestrationFailed, a.at)
			reply.TaskScheduledID = e.Parent.TaskScheduledID
			reply.Failure = &core.FailureDetails{Type: "InstanceExists",
				Message: "cannot start sub-orchestration " + id + ": an instance with that id is " + inst.Record.Status.String()}
			a.deliver(&core.TaskMessage{Target: core.Instance{InstanceID: e.Parent.InstanceID, ExecutionID: e.Parent.ExecutionID}, Event: reply})
			return
		}
		if inst != nil && inst.Record.ExecutionID == e.ExecutionID {
			// A scheduled start coming due, unless the instance was
			// terminated or has run meanwhile.
			if inst.WaitingForStart {
				inst.WaitingForStart = false
				inst.Pending = append([]*core.HistoryEvent{e}, inst.Pending...)
				a.fx.Ready = append(a.fx.Ready, inst.ID)
			}
			return
		}
		a.startExecution(id, e)
		return
	}
	if inst == nil || inst.IsEntity || // no such instance: dropped, as in Durable Functions
		(m.Target.ExecutionID != "" && m.Target.ExecutionID != inst.Record.ExecutionID) || // an earlier execution
		inst.Record.Status.IsTerminal() {
		for _, r := range core.UndeliverableReply(m) {
			a.deliver(r)
		}
		return
	}
	a.enqueue(inst, e)
}

func (a *applier) flushOutbox() {
	if len(a.out) == 0 {
		return
	}
	dests := make([]int, 0, len(a.out))
	for d := range a.out {
		dests = append(dests, d)
	}
	sort.Ints(dests)
	if a.s.OutboxLast == nil {
		a.s.OutboxLast = map[int]uint64{}
	}
	for _, d := range dests {
		b := &OutboxBatch{Pos: a.pos, Dest: d, Prev: a.s.OutboxLast[d], Messages: a.out[d]}
		a.s.OutboxLast[d] = a.pos
		a.s.Outbox = append(a.s.Outbox, b)
		a.fx.Outbox = append(a.fx.Outbox, b)
	}
	a.out = nil
}

// messagesReceived applies a batch if it is the next one from its origin
// (DESIGN §4.6): a batch at or below the dedup mark is a duplicate (acked
// again); one whose predecessor was not applied is a gap (not applied; the
// origin is asked to resend after the mark).
func (a *applier) messagesReceived(b *transport.MessageBatch) {
	if len(b.Messages) == 0 {
		return
	}
	mark := a.s.Dedup[b.Origin]
	last := b.FirstSub + uint32(len(b.Messages)) - 1
	switch {
	case b.OriginPos < mark.Pos || (b.OriginPos == mark.Pos && last <= mark.Sub):
		a.fx.Duplicates = append(a.fx.Duplicates, b.Origin)
		return
	case b.OriginPos == mark.Pos && b.FirstSub > mark.Sub+1,
		b.OriginPos > mark.Pos && (b.FirstSub != 0 || b.Prev > mark.Pos):
		a.fx.Gaps = append(a.fx.Gaps, DedupOrigin{Origin: b.Origin, Pos: mark.Pos})
		return
	}
	// The next batch (Prev below the mark only comes from logs written
	// before batches carried Prev), or the rest of a split one.
	for i, m := range b.Messages {
		sub := b.FirstSub + uint32(i)
		if b.OriginPos == mark.Pos && sub <= mark.Sub {
			continue
		}
		a.deliverNow(m)
	}
	if a.s.Dedup == nil {
		a.s.Dedup = map[int]DedupMark{}
	}
	a.s.Dedup[b.Origin] = DedupMark{Pos: b.OriginPos, Sub: last}
	a.fx.Received = append(a.fx.Received, DedupOrigin{Origin: b.Origin, Pos: b.OriginPos})
}

func (a *applier) ackReceived(ack *transport.Ack) {
	a.fx.Acks = append(a.fx.Acks, DedupOrigin{Origin: ack.From, Pos: ack.UpTo})
	keep := a.s.Outbox[:0]
	for _, b := range a.s.Outbox {
		if b.Dest == ack.From && b.Pos <= ack.UpTo {
			continue
		}
		keep = append(keep, b)
	}
	clear(a.s.Outbox[len(keep):])
	a.s.Outbox = keep
}

func (a *applier) batchProcessed(e *BatchProcessed) {
	inst := a.get(e.InstanceID)
	if inst == nil || inst.Generation != e.Generation || e.Consumed > len(inst.Pending) {
		return // the instance was replaced or purged meanwhile
	}
	inst.Pending = slices.Delete(inst.Pending, 0, e.Consumed)
	inst.History = append(inst.History, e.NewEvents...)
	r := &inst.Record
	r.LastUpdatedAt = a.at
	r.CustomStatus = e.Custom
	if r.Status != e.Status {
		a.fx.Changed = append(a.fx.Changed, inst.ID)
	}
	r.Status = e.Status
	if e.Status.IsTerminal() {
		r.Output, r.Failure = e.Output, e.Failure
	}
	for _, m := range e.Activities {
		a.s.NextActivityID++
		a.s.Activities[a.s.NextActivityID] = m
		a.fx.Activities = append(a.fx.Activities, a.s.NextActivityID)
	}
	for _, m := range e.Timers {
		a.addTimer(m)
	}
	for _, m := range e.Messages {
		a.deliver(m)
	}
	if e.ContinueStart != nil {
		// The next execution starts with fresh history.
		rest := inst.Pending
		inst.History = nil
		inst.Pending = nil
		r.ExecutionID, r.Input, r.Output, r.Failure = e.ContinueStart.ExecutionID, e.ContinueStart.Input, nil, nil
		r.Status = core.StatusRunning
		a.fx.Dropped = append(a.fx.Dropped, inst.ID)
		a.enqueue(inst, e.ContinueStart)
		inst.Pending = append(inst.Pending, e.ContinueCarryOver...)
		for _, p := range rest {
			// Messages for the ended execution are dropped; events stay.
			if p.Kind == core.EventEventRaised || p.Kind == core.EventExecutionTerminated ||
				p.Kind == core.EventExecutionSuspended || p.Kind == core.EventExecutionResumed {
				inst.Pending = append(inst.Pending, p)
			}
		}
		return
	}
	if e.Status.IsTerminal() {
		inst.Pending = nil
		a.fx.Dropped = append(a.fx.Dropped, inst.ID)
		return
	}
	if len(inst.Pending) > 0 {
		a.fx.Ready = append(a.fx.Ready, inst.ID)
	}
}

func (a *applier) entityBatchProcessed(e *EntityBatchProcessed) {
	inst := a.get(e.InstanceID)
	if inst == nil || inst.Generation != e.Generation || e.Consumed > len(inst.Pending) {
		return
	}
	inst.Pending = slices.Delete(inst.Pending, 0, e.Consumed)
	inst.Entity = e.State
	inst.Record.LastUpdatedAt = a.at
	for _, m := range e.Messages {
		a.deliver(m)
	}
	if e.State == nil && len(inst.Pending) == 0 {
		a.s.deleteInstance(inst.ID)
		a.fx.Changed = append(a.fx.Changed, inst.ID)
		return
	}
	if len(inst.Pending) > 0 {
		a.fx.Ready = append(a.fx.Ready, inst.ID)
	}
}

// recoveryCompleted asks the runtime to restart all volatile work.
func (a *applier) recoveryCompleted() {
	s := a.s
	a.fx.Ready = append(a.fx.Ready, s.pendingIDs()...)
	a.fx.Timers = append(a.fx.Timers, sortedKeys(s.Timers)...)
	a.fx.Activities = append(a.fx.Activities, sortedKeys(s.Activities)...)
	a.fx.Outbox = append(a.fx.Outbox, s.Outbox...)
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	ks := make([]uint64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// matches reports whether an orchestration instance passes a filter's
// conditions (paging is the caller's).
func matches(inst *Instance, f *transport.Filter) bool {
	if f == nil {
		return true
	}
	r := &inst.Record
	if f.InstanceIDPrefix != "" && !strings.HasPrefix(inst.ID, f.InstanceIDPrefix) {
		return false
	}
	if !f.CreatedFrom.IsZero() && r.CreatedAt.Before(f.CreatedFrom) {
		return false
	}
	if !f.CreatedTo.IsZero() && !r.CreatedAt.Before(f.CreatedTo) {
		return false
	}
	if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, r.Status) {
		return false
	}
	return true
}
