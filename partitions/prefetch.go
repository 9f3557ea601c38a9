package partitions

import (
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// Prefetch keeps storage I/O off the partition's loop (DESIGN §4.8): an
// item whose instances are not resident is parked while they load in the
// background, and released to the loop once they are.
//
// Order. Items arrive in two lanes, each released strictly in its own
// order:
//   - the input lane: everything read from the partition's input queue
//     (client requests and reads, message batches, acks), in queue order.
//     Dedup and gap checks need per-origin order, clients expect their
//     requests in order, and trimming the queue needs every item before a
//     logged one to be handled;
//   - the local lane: what the partition produces itself (work-item and
//     activity completions, fired timers). These race with each other and
//     with the input anyway, so they keep no order: each is released as
//     soon as its instances are resident. A work-item completion touches
//     its busy (so resident) instance and is usually handled at once.
//
// An input item that needs nothing missing, arriving at an empty lane, is
// handled at once; otherwise it parks at the end of the lane, even if its
// own instances are resident (input-order release). Loads run ahead of the
// lane heads, for up to prefetchWindow parked items and maxLoads loads at
// once, so that a lane's loads overlap. The commit position is assigned
// when an item is released, so positions follow release order.
//
// Pinning. The instances a parked item needs are pinned from when it
// parks until it is applied (with PersistStepsFirst, until the event is
// applied at durability), so that eviction cannot drop them in between.
// An id, once resident or known absent, stays so while pinned: it becomes
// present only by being created in memory.
//
// Determinism. Apply never loads on a live loop: needs lists every
// instance Apply can look up for the event (the targets of delivered
// messages, and the parent or lock holders a refusal replies to). Should
// one be missed, Lookup loads it synchronously and counts it in
// SyncLoads, which the tests assert is zero. Replay at recovery runs
// before the loop and loads synchronously, which is allowed.
//
// Work items for instances that are ready but not resident (after recovery
// only the pending ids are known) are started once the instance has been
// loaded (wake).

const (
	// maxLoads bounds the instance loads in flight per partition.
	maxLoads = 32
	// prefetchWindow bounds how many parked items per lane may have their
	// loads started ahead of the head.
	prefetchWindow = 512
)

type parkedItem struct {
	it    intakeItem
	needs []string
	// requested: needs[:requested] are resident or loading.
	requested int
}

type loadResult struct {
	id   string
	inst *Instance
	err  error
}

type heldPins struct {
	pos uint64
	ids []string
}

// prefetcher is the loop's state for prefetching; only the loop uses it
// (the loads report through results).
type prefetcher struct {
	load    func(id string) (*Instance, error)
	lanes   [2][]*parkedItem
	loading map[string]bool
	results chan loadResult
	wake    map[string]bool // ids to mark ready once loaded
	wakeQ   []string        // of those, loads not yet started
	held    []heldPins      // PersistStepsFirst: pins until applied
	parked  int64           // items parked so far (stats)
}

const (
	laneInput = 0
	laneLocal = 1
)

// newPrefetcher returns nil for a state without a backing store: then
// everything is resident and items are handled as they arrive.
func newPrefetcher(st *State) *prefetcher {
	load := st.Loader()
	if load == nil {
		return nil
	}
	return &prefetcher{load: load, loading: map[string]bool{}, wake: map[string]bool{},
		results: make(chan loadResult, maxLoads)}
}

// loadResults is the channel the loop selects on (nil without prefetch).
func (p *Partition) loadResults() chan loadResult {
	if p.pf == nil {
		return nil
	}
	return p.pf.results
}

// arrive takes an item from intake: handled now, or parked.
func (p *Partition) arrive(it intakeItem) {
	pf := p.pf
	if pf == nil || it.drain || it.checkpoint != nil || it.resend != nil {
		p.handle(it)
		return
	}
	p.unpinApplied()
	lane := laneLocal
	if it.inputPos > 0 {
		lane = laneInput
	}
	x := &parkedItem{it: it, needs: p.needs(it)}
	p.state.Pin(x.needs)
	if (lane == laneLocal || len(pf.lanes[lane]) == 0) && p.resident(x) {
		p.release(x)
		return
	}
	pf.lanes[lane] = append(pf.lanes[lane], x)
	pf.parked++
	p.startLoads()
}

// resident reports whether every instance x needs is resident (or known
// absent) and none is still loading.
func (p *Partition) resident(x *parkedItem) bool {
	for _, id := range x.needs {
		if p.pf.loading[id] || !p.state.Resident(id) {
			return false
		}
	}
	return true
}

// release hands an item to the loop and drops its pins once its event is
// applied.
func (p *Partition) release(x *parkedItem) {
	p.handle(x.it)
	if x.it.update != nil && p.state.LastPos < p.pos {
		// PersistStepsFirst: applied once durable.
		p.pf.held = append(p.pf.held, heldPins{pos: p.pos, ids: x.needs})
		return
	}
	p.state.Unpin(x.needs)
}

// unpinApplied drops the pins of deferred events applied since.
func (p *Partition) unpinApplied() {
	pf := p.pf
	n := 0
	for n < len(pf.held) && pf.held[n].pos <= p.state.LastPos {
		p.state.Unpin(pf.held[n].ids)
		n++
	}
	pf.held = pf.held[n:]
}

// startLoads starts loads for the parked items nearest the lane heads,
// then for instances waiting to be woken.
func (p *Partition) startLoads() {
	pf := p.pf
	for lane := range pf.lanes {
		for i, x := range pf.lanes[lane] {
			if i >= prefetchWindow {
				break
			}
			for x.requested < len(x.needs) {
				id := x.needs[x.requested]
				if !pf.loading[id] && !p.state.Resident(id) {
					if len(pf.loading) >= maxLoads {
						return
					}
					p.startLoad(id)
				}
				x.requested++
			}
		}
	}
	for len(pf.wakeQ) > 0 && len(pf.loading) < maxLoads {
		id := pf.wakeQ[0]
		pf.wakeQ = pf.wakeQ[1:]
		if pf.loading[id] {
			continue
		}
		if p.state.Resident(id) {
			delete(pf.wake, id)
			p.markReady(id)
			continue
		}
		p.startLoad(id)
	}
}

func (p *Partition) startLoad(id string) {
	pf := p.pf
	pf.loading[id] = true
	load, results := pf.load, pf.results
	go func() {
		inst, err := load(id)
		results <- loadResult{id: id, inst: inst, err: err} // buffered: never blocks
	}()
}

// loaded takes in a finished load (and any others that finished) and
// releases what became ready.
func (p *Partition) loaded(r loadResult) {
	pf := p.pf
	for {
		delete(pf.loading, r.id)
		if r.err != nil {
			p.state.LoadFailed(r.err) // the loop stops the partition
			return
		}
		p.state.Install(r.id, r.inst)
		if pf.wake[r.id] {
			delete(pf.wake, r.id)
			p.markReady(r.id)
		}
		select {
		case r = <-pf.results:
			continue
		default:
		}
		break
	}
	p.unpinApplied()
	// The input lane releases in order; the local lane whatever is ready.
	q := pf.lanes[laneInput]
	n := 0
	for n < len(q) && p.resident(q[n]) {
		p.release(q[n])
		q[n] = nil
		n++
	}
	pf.lanes[laneInput] = q[n:]
	q, keep := pf.lanes[laneLocal], pf.lanes[laneLocal][:0]
	for i, x := range q {
		if i < prefetchWindow && p.resident(x) {
			p.release(x)
		} else {
			keep = append(keep, x)
		}
	}
	clear(q[len(keep):])
	pf.lanes[laneLocal] = keep
	p.startLoads()
	p.flushLog()
}

// wakeWhenLoaded marks a ready instance ready again once it is loaded:
// dispatch does not load it on the loop.
func (p *Partition) wakeWhenLoaded(id string) {
	pf := p.pf
	if pf == nil || pf.wake[id] {
		return
	}
	pf.wake[id] = true
	pf.wakeQ = append(pf.wakeQ, id)
	p.startLoads()
}

// needs lists the instances Apply (or a read) may look up for an item.
// It errs on the side of loading too much: an id that does not exist
// costs an index lookup.
func (p *Partition) needs(it intakeItem) []string {
	var ids []string
	add := func(id string) {
		for _, x := range ids {
			if x == id {
				return
			}
		}
		ids = append(ids, id)
	}
	msg := func(m *core.TaskMessage) {
		if m == nil {
			return
		}
		add(m.Target.InstanceID)
		if e := m.Event; e != nil && e.Kind == core.EventExecutionStarted && e.Parent != nil {
			add(e.Parent.InstanceID) // refused sub-orchestration: the parent hears of it
		}
		for _, r := range core.UndeliverableReply(m) {
			add(r.Target.InstanceID) // a lock grant for a gone orchestration: releases
		}
	}
	if r := it.read; r != nil {
		switch r.Kind {
		case transport.RequestQuery, transport.RequestListEntities:
		default:
			add(r.InstanceID)
		}
		return ids
	}
	switch e := it.update.(type) {
	case *ClientRequestReceived:
		add(e.Request.InstanceID)
	case *MessagesReceived:
		for _, m := range e.Batch.Messages {
			msg(m)
		}
	case *BatchProcessed:
		add(e.InstanceID)
		for _, m := range e.Messages {
			msg(m)
		}
	case *EntityBatchProcessed:
		add(e.InstanceID)
		for _, m := range e.Messages {
			msg(m)
		}
	case *ActivityCompleted:
		msg(e.Reply)
	case *TimerFired:
		for _, id := range e.TimerIDs {
			msg(p.state.Timers[id])
		}
	}
	return ids
}
