package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

var errSendFailed = errors.New("sim: send failed")

// node is one partition: its durable storage, its state, and what its
// runtime would hold in memory. A crash loses everything but the storage
// and the input queue.
type node struct {
	w     *world
	id    int
	dev   *faster.FaultDevice
	kvdev *faster.FaultDevice // nil: the whole state in each checkpoint
	meta  *faster.MemoryMeta
	store *partitions.DurableStore
	up    bool

	// queue is the partition's input queue (it survives crashes).
	queue []*transport.Packet

	// Volatile: lost in a crash.
	st       *partitions.State
	readPos  uint64 // next queue position to read
	pos      uint64 // last assigned commit position
	durable  uint64 // last durable commit position
	unlogged []partitions.LogEntry
	ready    map[string]bool
	acts     map[uint64]bool
	timers   map[uint64]bool
	resps    []pendingResponse
	unsent   []*partitions.OutboxBatch // not yet durable
	received []receivedMark            // applied, not yet durable
	courier  *partitions.Courier
}

type pendingResponse struct {
	pos  uint64
	resp partitions.Response
}

type receivedMark struct {
	pos    uint64 // our commit position
	origin int
	mark   uint64 // the origin's position applied
}

func newNode(w *world, id int) (*node, error) {
	n := &node{w: w, id: id, meta: faster.NewMemoryMeta(),
		dev: faster.NewFaultDevice(faster.NewMemoryDevice(fmt.Sprintf("p%d", id), 512, 1<<20))}
	if w.cfg.KV {
		n.kvdev = faster.NewFaultDevice(faster.NewMemoryDevice(fmt.Sprintf("p%d-kv", id), 512, 1<<20))
	}
	return n, n.open()
}

// open opens the storage, recovers the state and starts the partition:
// the first event, RecoveryCompleted, restarts what was volatile.
func (n *node) open() error {
	var opts []partitions.StoreOptions
	if n.kvdev != nil {
		// A resident budget of a few instances: most are evicted and read
		// back, across checkpoints and crashes.
		opts = append(opts, partitions.StoreOptions{KVDevice: n.kvdev, KVMemoryBytes: 64 << 10, KVPageSize: 4096, ResidentBytes: 8 << 10})
	}
	store, err := partitions.OpenDurableStore(fmt.Sprintf("partition %d", n.id), n.dev, n.meta, opts...)
	if err != nil {
		return err
	}
	st, err := store.Recover(n.id, n.w.cfg.Partitions)
	if err != nil {
		return err
	}
	n.store, n.st, n.up = store, st, true
	n.readPos, n.pos, n.durable = st.NextInputPos, st.LastPos, st.LastPos
	n.unlogged, n.resps, n.unsent, n.received = nil, nil, nil, nil
	n.ready, n.acts, n.timers = map[string]bool{}, map[uint64]bool{}, map[uint64]bool{}
	n.courier = partitions.NewCourier(partitions.CourierConfig{Self: n.id, Count: n.w.cfg.Partitions})
	// As the runtime does: recovered dedup marks are durable, so they are
	// acknowledged again in case the acks were lost.
	origins := make([]int, 0, len(st.Dedup))
	for o := range st.Dedup {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	for _, o := range origins {
		n.courier.DurableMark(o, st.Dedup[o].Pos, n.w.now)
	}
	n.apply(&partitions.RecoveryCompleted{})
	return nil
}

// crash loses everything volatile, and the device loses what was written
// but not flushed.
func (n *node) crash() error {
	n.w.res.Crashes++
	n.w.note("p%d crash (unlogged %d, durable %d)", n.id, len(n.unlogged), n.durable)
	n.countLoads()
	n.up = false
	for _, d := range []*faster.FaultDevice{n.dev, n.kvdev} {
		if d == nil {
			continue
		}
		if err := d.Crash(); err != nil {
			return n.w.fail("p%d: crash: %v", n.id, err)
		}
		d.Restart()
	}
	n.st, n.courier = nil, nil
	return nil
}

// countLoads adds the instances this incarnation read back to the result.
func (n *node) countLoads() {
	_, loads, _ := n.st.BackingStats()
	n.w.res.Loads += loads
}

func (n *node) recover() error {
	n.w.note("p%d recover", n.id)
	if err := n.open(); err != nil {
		return n.w.fail("p%d: recover: %v", n.id, err)
	}
	return nil
}

func (n *node) canRead() bool { return n.readPos < uint64(len(n.queue)) }

// read takes the next packet of the input queue in as an event.
func (n *node) read() error {
	pk := n.queue[n.readPos]
	n.readPos++
	inputPos := n.readPos
	switch {
	case pk.Request != nil:
		n.apply(&partitions.ClientRequestReceived{InputPos: inputPos, Request: pk.Request})
	case pk.Messages != nil:
		n.apply(&partitions.MessagesReceived{InputPos: inputPos, Batch: pk.Messages})
	case pk.Ack != nil:
		n.apply(&partitions.AckReceived{InputPos: inputPos, Ack: pk.Ack})
	case pk.Resend != nil:
		n.courier.ResendRequested(pk.Resend.From, pk.Resend.After)
	}
	return nil
}

// apply logs one event and applies it: at once (speculatively, before it
// is durable), or with SpeculationNone once it is committed.
func (n *node) apply(ev partitions.Event) {
	n.pos++
	e := partitions.LogEntry{Pos: n.pos, At: n.w.now, Event: ev}
	n.unlogged = append(n.unlogged, e)
	if n.w.cfg.Speculation != partitions.SpeculationNone {
		n.applyEntry(e)
	}
}

// applyEntry runs the state machine on one logged event and takes in its
// effects, as the runtime's apply does.
func (n *node) applyEntry(e partitions.LogEntry) {
	ev := e.Event
	var fx partitions.Effects
	n.st.Apply(e.Pos, e.At, e.Event, &fx)
	n.w.res.Events++
	switch ev := ev.(type) {
	case *partitions.BatchProcessed:
		n.afterWork(ev.InstanceID)
	case *partitions.EntityBatchProcessed:
		n.afterWork(ev.InstanceID)
	}
	for _, id := range fx.Ready {
		n.ready[id] = true
	}
	for _, id := range fx.Activities {
		n.acts[id] = true
	}
	for _, id := range fx.Timers {
		n.timers[id] = true
	}
	for _, r := range fx.Responses {
		n.resps = append(n.resps, pendingResponse{pos: e.Pos, resp: r})
	}
	n.unsent = append(n.unsent, fx.Outbox...)
	for _, r := range fx.Received {
		n.received = append(n.received, receivedMark{pos: e.Pos, origin: r.Origin, mark: r.Pos})
	}
	n.courier.Observe(&fx, n.w.now)
}

func (n *node) afterWork(id string) {
	if inst := n.st.Lookup(id); inst != nil && len(inst.Pending) > 0 {
		n.ready[id] = true
	}
}

// commit appends what was applied to the commit log. Sometimes (with
// faults on) the flush fails and the partition crashes mid-commit.
func (n *node) commit() error {
	if n.w.faults && n.w.rng.Float64() < 0.05 {
		n.dev.FailAt(faster.FaultFlush, 1, nil)
	}
	entries := n.unlogged
	if err := n.store.Append(entries); err != nil {
		if errors.Is(err, faster.ErrInjectedFault) {
			n.w.note("p%d commit of %d entries failed: crash", n.id, len(entries))
			return n.crash()
		}
		return n.w.fail("p%d: commit: %v", n.id, err)
	}
	n.unlogged = nil
	n.durable = entries[len(entries)-1].Pos
	if n.w.cfg.Speculation == partitions.SpeculationNone {
		for _, e := range entries {
			n.applyEntry(e)
		}
	}
	n.onDurable()
	return nil
}

// onDurable hands the courier what waited for durability: batches for
// other partitions, client responses and acks; then sends what is due.
func (n *node) onDurable() {
	k := 0
	for k < len(n.unsent) && n.unsent[k].Pos <= n.durable {
		k++
	}
	n.courier.Durable(n.unsent[:k]...)
	n.unsent = n.unsent[k:]
	k = 0
	for k < len(n.resps) && n.resps[k].pos <= n.durable {
		n.courier.Respond(n.resps[k].resp.ClientID, n.resps[k].resp.Response)
		k++
	}
	n.resps = n.resps[k:]
	k = 0
	for k < len(n.received) && n.received[k].pos <= n.durable {
		n.courier.DurableMark(n.received[k].origin, n.received[k].mark, n.w.now)
		k++
	}
	n.received = n.received[k:]
	n.pump()
}

// pump performs the sends the courier has due. With faults on, a send may
// fail outright, or fail after its packets went out (a timeout after the
// fact); the courier retries both.
func (n *node) pump() {
	for _, s := range n.courier.Ready(n.w.now) {
		var err error
		fail := n.w.faults && n.w.rng.Float64() < n.w.cfg.FailRate
		if !fail || n.w.rng.Intn(2) == 0 {
			to := s.Partition
			if s.Client != "" {
				to = toClient
			}
			for _, pk := range s.Packets {
				n.w.send(to, pk)
			}
		}
		if fail {
			err = errSendFailed
			n.w.note("p%d send to %d failed", n.id, s.Partition)
		}
		n.courier.Result(s, err, n.w.now)
	}
}

// tick fires due timers and lets the exchange resend what is overdue.
func (n *node) tick() {
	var due []uint64
	for _, id := range sortedIDs(n.timers) {
		m := n.st.Timers[id]
		if m == nil {
			delete(n.timers, id)
			continue
		}
		if !m.Event.FireAt.After(n.w.now) {
			due = append(due, id)
			delete(n.timers, id)
		}
	}
	if len(due) > 0 {
		n.apply(&partitions.TimerFired{TimerIDs: due})
	}
	n.pump()
}

// work runs one ready work item to completion with the replay executor.
func (n *node) work() error {
	ids := sortedIDs(n.ready)
	id := ids[n.w.rng.Intn(len(ids))]
	delete(n.ready, id)
	inst := n.st.Lookup(id)
	if inst == nil || len(inst.Pending) == 0 || inst.WaitingForStart {
		return nil
	}
	pending := slices.Clone(inst.Pending)
	if inst.IsEntity {
		eid, err := core.ParseEntityID(id)
		if err != nil {
			return n.w.fail("p%d: entity id %q: %v", n.id, id, err)
		}
		st, msgs := n.w.exec.ExecuteEntity(eid, inst.Entity, pending, n.w.now)
		n.apply(&partitions.EntityBatchProcessed{InstanceID: id, Generation: inst.Generation, Consumed: len(pending), State: st, Messages: msgs})
		return nil
	}
	res := n.w.exec.ExecuteOrchestration(&partitions.OrchestrationWork{InstanceID: id,
		History: inst.History[:len(inst.History):len(inst.History)], NewEvents: pending, Now: n.w.now})
	n.apply(&partitions.BatchProcessed{InstanceID: id, Generation: inst.Generation, Consumed: len(pending),
		NewEvents: res.NewEvents, Activities: res.Activities, Timers: res.Timers, Messages: res.Messages,
		Status: res.Status, Output: res.Output, Failure: res.Failure, Custom: res.Custom,
		ContinueStart: res.ContinueStart, ContinueCarryOver: res.ContinueCarryOver})
	return nil
}

// activity runs one queued activity.
func (n *node) activity() error {
	ids := sortedIDs(n.acts)
	id := ids[n.w.rng.Intn(len(ids))]
	delete(n.acts, id)
	m := n.st.Activities[id]
	if m == nil {
		return nil
	}
	reply := n.w.exec.ExecuteActivity(context.Background(), m)
	n.apply(&partitions.ActivityCompleted{ActivityID: id, Reply: reply})
	return nil
}

// checkpoint snapshots the state (everything applied is durable) and
// truncates the log.
func (n *node) checkpoint() error {
	snap, err := n.store.Snapshot(n.st)
	if err != nil {
		return n.w.fail("p%d: snapshot: %v", n.id, err)
	}
	if err := n.store.SaveCheckpoint(snap, n.st.LastPos, n.st.NextInputPos, n.store.Mark()); err != nil {
		return n.w.fail("p%d: checkpoint: %v", n.id, err)
	}
	n.w.res.Checkpoints++
	return nil
}
