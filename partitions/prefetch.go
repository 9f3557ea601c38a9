package partitions

import (
	"fmt"
	"slices"
	"strings"

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
	// purge is the scan of a purge-by-filter.
	purge *purgeScan
}

// loadResult is a finished load, or (fn) something a background reader
// hands back to the loop.
type loadResult struct {
	id   string
	inst *Instance
	err  error
	fn   func()
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

// count is the number of items parked now.
func (pf *prefetcher) count() int64 {
	if pf == nil {
		return 0
	}
	return int64(len(pf.lanes[laneInput]) + len(pf.lanes[laneLocal]))
}

// Parked counts the items waiting for their instances to load. Safe for
// concurrent use.
func (p *Partition) Parked() int64 { return p.stats.parked.Load() }

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
	if pf == nil || it.drain || it.checkpoint != nil || it.released != nil {
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
	if e, ok := it.update.(*ClientRequestReceived); ok && e.Request.Kind == transport.RequestPurgeWhere {
		p.startPurgeScan(x, e.Request)
	}
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
	if x.purge != nil && !p.purgeReady(x) {
		return false
	}
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
	if x.purge != nil {
		p.state.StopWatch(x.purge.watch)
	}
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
		select {
		case results <- loadResult{id: id, inst: inst, err: err}:
		case <-p.done:
		}
	}()
}

// post runs fn on the loop; for background readers.
func (p *Partition) post(fn func()) {
	select {
	case p.pf.results <- loadResult{fn: fn}:
	case <-p.done:
	}
}

// loaded takes in a finished load (and any others that finished) and
// releases what became ready.
func (p *Partition) loaded(r loadResult) {
	pf := p.pf
	for {
		switch {
		case r.fn != nil:
			r.fn()
		case r.err != nil:
			delete(pf.loading, r.id)
			p.state.LoadFailed(r.err) // the loop stops the partition
			return
		default:
			delete(pf.loading, r.id)
			p.state.Install(r.id, r.inst)
			if pf.wake[r.id] {
				delete(pf.wake, r.id)
				p.markReady(r.id)
			}
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
	// All of it, not only the prefetch window: an item beyond the window
	// may need only what a load just brought in, and no later load would
	// look at it again.
	q, keep := pf.lanes[laneLocal], pf.lanes[laneLocal][:0]
	for _, x := range q {
		if p.resident(x) {
			p.release(x)
		} else {
			keep = append(keep, x)
		}
	}
	clear(q[len(keep):])
	pf.lanes[laneLocal] = keep
	p.startLoads()
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
		if e.Request.Kind != transport.RequestPurgeWhere { // see startPurgeScan
			add(e.Request.InstanceID)
		}
	case *MessagesReceived:
		if b := e.Batch; len(b.Messages) > 0 {
			// A duplicate now stays one (the mark only grows): Apply
			// delivers nothing, so nothing needs loading.
			mark, last := p.state.Dedup[b.Origin], b.FirstSub+uint32(len(b.Messages))-1
			if b.OriginPos < mark.Pos || (b.OriginPos == mark.Pos && last <= mark.Sub) {
				break
			}
		}
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

// --- purge by filter ---

// A purge-by-filter is an update event: its effect must be the same when
// the log is replayed, where it considers every instance. On the live loop
// it considers only the resident ones (State.purgeIDs), so before it is
// released every instance that may match at that point is made resident:
//   - when it arrives, the resident instances that match are pinned, a
//     watch starts collecting the ids changed from then on, and a
//     background reader checks the other instances in the store;
//   - when the reader is done, the ones it found matching and every id
//     changed since the start become needs, loaded and pinned like any
//     other (re-checked until the item is released).
//
// An instance that is not resident at release was thus checked at the
// start, did not match, and has not changed since: replay skips it too.

type purgeScan struct {
	watch *Watch
	done  bool
	found []string
	err   error
}

func purgeMatches(inst *Instance, f *transport.Filter) bool {
	return inst != nil && !inst.IsEntity && inst.Record.Status.IsTerminal() && matches(inst, f)
}

func (p *Partition) startPurgeScan(x *parkedItem, req *transport.ClientRequest) {
	ps := &purgeScan{watch: p.state.StartWatch()}
	x.purge = ps
	var mine []string
	for id, inst := range p.state.Instances {
		if purgeMatches(inst, req.Filter) {
			mine = append(mine, id)
		}
	}
	p.state.Pin(mine)
	x.needs = append(x.needs, mine...)
	view := p.state.ScanView()
	go func() {
		var found []string
		var err error
		for _, id := range view.keys() {
			if view.skip[id] {
				continue
			}
			inst, lerr := view.load(id)
			if lerr != nil {
				err = lerr
				break
			}
			if purgeMatches(inst, req.Filter) {
				found = append(found, id)
			}
		}
		p.post(func() { ps.done, ps.found, ps.err = true, found, err })
	}()
}

// purgeReady adds what the scan found, and the ids changed since it
// started, to the item's needs; false while the scan runs.
func (p *Partition) purgeReady(x *parkedItem) bool {
	ps := x.purge
	if !ps.done {
		return false
	}
	if ps.err != nil {
		p.state.LoadFailed(ps.err)
		return false
	}
	have := make(map[string]bool, len(x.needs))
	for _, id := range x.needs {
		have[id] = true
	}
	var more []string
	for _, id := range ps.found {
		if !have[id] {
			have[id] = true
			more = append(more, id)
		}
	}
	for id := range ps.watch.ids {
		if !have[id] {
			have[id] = true
			more = append(more, id)
		}
	}
	ps.found = nil
	clear(ps.watch.ids)
	p.state.Pin(more)
	x.needs = append(x.needs, more...)
	return true
}

// --- paged reads (queries, entity lists) ---

type pageEntry struct {
	id string
	v  any
}

// scanPage answers a paged read without loading on the loop: the resident
// instances are read here, the rest of the store by a background reader
// (which skips the resident and deleted ones), and the two are merged in
// id order. The answer goes out through respondRead, so it waits for
// durability like any read.
func (p *Partition) scanPage(req *transport.ClientRequest, after string, n int,
	idOK func(string) bool, keep func(*Instance) bool, render func(*Instance) any,
	answer func(entries []pageEntry, more bool) *transport.ClientResponse) {
	var mine []pageEntry
	for id, inst := range p.state.Instances {
		if id > after && idOK(id) && keep(inst) {
			mine = append(mine, pageEntry{id, render(inst)})
		}
	}
	slices.SortFunc(mine, func(a, b pageEntry) int { return strings.Compare(a.id, b.id) })
	view := p.state.ScanView()
	if view == nil || p.pf == nil {
		more := len(mine) > n
		p.respondRead(req, answer(mine[:min(len(mine), n)], more))
		return
	}
	mine = mine[:min(len(mine), n+1)]
	go func() {
		var theirs []pageEntry
		var err error
		keys := view.keys()
		i, _ := slices.BinarySearch(keys, after)
		for _, id := range keys[i:] {
			if len(theirs) > n {
				break
			}
			if id <= after || view.skip[id] || !idOK(id) {
				continue
			}
			inst, lerr := view.load(id)
			if lerr != nil {
				err = lerr
				break
			}
			if inst != nil && keep(inst) {
				theirs = append(theirs, pageEntry{id, render(inst)})
			}
		}
		all := make([]pageEntry, 0, len(mine)+len(theirs))
		a, b := mine, theirs
		for len(a) > 0 || len(b) > 0 {
			if len(b) == 0 || (len(a) > 0 && a[0].id < b[0].id) {
				all, a = append(all, a[0]), a[1:]
			} else {
				all, b = append(all, b[0]), b[1:]
			}
		}
		p.post(func() {
			if err != nil {
				p.state.LoadFailed(err)
				p.respondRead(req, &transport.ClientResponse{Error: fmt.Sprintf("partition %d: read instances: %v", p.cfg.Partition, err)})
				return
			}
			more := len(all) > n
			p.respondRead(req, answer(all[:min(len(all), n)], more))
		})
	}()
}
