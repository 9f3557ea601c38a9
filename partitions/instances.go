package partitions

import (
	"container/list"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/netherite-go/netherite/faster"
)

// Instances live in State.Instances while they are resident in memory.
// With a backing store (a faster KV), instances that are not needed are
// evicted from memory and read back on demand, so a partition may hold
// more state than memory.
//
// The contract with checkpoints: between two checkpoints the backing store
// is only read, never written. Instances changed since the last checkpoint
// are dirty and stay resident; a checkpoint encodes them on the
// partition's loop (so the state is consistent) and hands the bytes to the
// background, which writes them to the store and takes the store's
// fold-over checkpoint. Until those writes are in the store the instances
// are "flushing": still unevictable, and a flushing id that is not
// resident was deleted. Recovery opens the store at its last checkpoint
// and replays the commit log after it, loading instances as events touch
// them.
//
// No storage I/O on the live loop: the partition's runtime loads the
// instances an event needs in the background before it releases the event
// to the loop (prefetch.go), and pins them until the event is applied, so
// Apply finds them resident. Loading synchronously in Lookup is allowed
// only while the log is replayed at recovery (no live loop yet); on a live
// loop it would be a bug, and it is counted (SyncLoads) rather than
// hidden.

// backing is the store behind the resident instances.
type backing struct {
	kv     *faster.KV
	budget int64

	dirty    map[string]bool // changed (or deleted) since the last flush
	lru      *list.List      // resident ids, most recently used first
	elems    map[string]*list.Element
	sizes    map[string]int64
	resident int64
	// pending lists instances with messages to process: recovery restarts
	// their work items without loading every instance.
	pending map[string]bool
	err     error // first load or decode error; the partition stops on it
	loads   int64
	evicts  int64

	// flushing maps ids handed to a background flush to its generation;
	// flushed is the last generation written to the store (set by the
	// background), flushErr its error.
	flushing map[string]uint64
	flushGen uint64
	flushed  atomic.Uint64
	flushMu  sync.Mutex
	flushErr error

	// pins counts, per id, the parked events that need the instance
	// resident: pinned instances are not evicted.
	pins map[string]int
	// live is set once the partition's loop runs on the state: from then
	// on a load in Lookup is a synchronous load on the loop, counted in
	// syncLoads.
	live      bool
	syncLoads int64
	// watches collect the ids changed while a purge-by-filter scans.
	watches map[*Watch]bool
}

// Watch collects the ids of instances changed (created, updated, deleted)
// since it was started.
type Watch struct{ ids map[string]bool }

// StartWatch starts collecting changed ids (nil without a backing store).
func (s *State) StartWatch() *Watch {
	b := s.backing
	if b == nil {
		return nil
	}
	w := &Watch{ids: map[string]bool{}}
	if b.watches == nil {
		b.watches = map[*Watch]bool{}
	}
	b.watches[w] = true
	return w
}

// StopWatch stops w.
func (s *State) StopWatch(w *Watch) {
	if s.backing != nil && w != nil {
		delete(s.backing.watches, w)
	}
}

func (b *backing) noteChange(id string) {
	for w := range b.watches {
		w.ids[id] = true
	}
}

// residentIDs lists the resident instances, sorted.
func (s *State) residentIDs() []string {
	ids := make([]string, 0, len(s.Instances))
	for id := range s.Instances {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// purgeIDs lists the instances a purge-by-filter considers. On a live
// loop only the resident ones: the runtime made every instance that can
// match resident before it released the purge (prefetch.go), and the ones
// that are not resident were checked not to match, and have not changed
// since. Replay at recovery considers all of them (loading them), and so
// finds the same ones.
func (s *State) purgeIDs() []string {
	if s.backing != nil && s.backing.live {
		return s.residentIDs()
	}
	return s.IDs()
}

// scanView is what a background reader needs to page through the store
// consistently with the loop: the store's keys to skip (resident or
// deleted instances, which the loop reports itself) and a loader.
type scanView struct {
	skip map[string]bool
	keys func() []string
	load func(id string) (*Instance, error)
}

// ScanView returns a view for a background scan, or nil without a
// backing store (then everything is resident).
func (s *State) ScanView() *scanView {
	b := s.backing
	if b == nil {
		return nil
	}
	v := &scanView{skip: make(map[string]bool, len(s.Instances)+len(b.dirty)), keys: b.kv.Keys, load: b.fetch}
	for id := range s.Instances {
		v.skip[id] = true
	}
	for id := range b.dirty {
		v.skip[id] = true
	}
	for id := range b.flushing {
		if b.isFlushing(id) {
			v.skip[id] = true
		}
	}
	return v
}

// AttachBacking makes kv the store behind the state's instances, keeping
// at most about budget bytes of instances resident. pending lists the ids
// of instances with work to do, as saved at the checkpoint.
func (s *State) AttachBacking(kv *faster.KV, budget int64, pending []string) {
	b := &backing{kv: kv, budget: budget, dirty: map[string]bool{}, lru: list.New(),
		elems: map[string]*list.Element{}, sizes: map[string]int64{}, pending: map[string]bool{},
		flushing: map[string]uint64{}, pins: map[string]int{}}
	for _, id := range pending {
		b.pending[id] = true
	}
	for id := range s.Instances {
		b.touch(id, instanceSize(s.Instances[id]))
		b.dirty[id] = true
	}
	s.backing = b
}

// BackingErr reports a failure to read an instance back from storage, or
// to write instances to it in the background.
func (s *State) BackingErr() error {
	if s.backing == nil {
		return nil
	}
	if s.backing.err != nil {
		return s.backing.err
	}
	s.backing.flushMu.Lock()
	defer s.backing.flushMu.Unlock()
	return s.backing.flushErr
}

// Lookup returns an instance, reading it back from the store if it is not
// resident, or nil if there is none. On a live loop the runtime makes
// sure the instance is resident first (see Resident); a read here then is
// counted as a synchronous load.
func (s *State) Lookup(id string) *Instance {
	if inst := s.Instances[id]; inst != nil {
		if s.backing != nil {
			s.backing.use(id)
		}
		return inst
	}
	b := s.backing
	if b == nil || b.gone(id) || (b.live && !b.kv.Has(id)) {
		return nil // none, or deleted since the last flush
	}
	if b.live {
		b.syncLoads++
	}
	inst := b.load(id)
	if inst != nil {
		s.Instances[id] = inst
		b.touch(id, instanceSize(inst))
	}
	return inst
}

// Resident reports whether Lookup(id) needs no read from the store: the
// instance is in memory, or known not to exist.
func (s *State) Resident(id string) bool {
	if s.Instances[id] != nil {
		return true
	}
	b := s.backing
	return b == nil || b.gone(id) || !b.kv.Has(id)
}

// gone reports that an instance that is not resident was deleted since
// the last flush (or is being flushed as a delete).
func (b *backing) gone(id string) bool {
	return b.dirty[id] || b.isFlushing(id)
}

func (b *backing) isFlushing(id string) bool {
	gen, ok := b.flushing[id]
	return ok && gen > b.flushed.Load()
}

// GoLive marks the start of the partition's live loop: from now on the
// state must not read the store synchronously.
func (s *State) GoLive() {
	if s.backing != nil {
		s.backing.live = true
	}
}

// SyncLoads counts the instances read synchronously on the live loop
// (zero unless an event touched an instance the runtime had not loaded).
func (s *State) SyncLoads() int64 {
	if s.backing == nil {
		return 0
	}
	return s.backing.syncLoads
}

// Pin keeps the instances resident (once they are) until Unpin.
func (s *State) Pin(ids []string) {
	if b := s.backing; b != nil {
		for _, id := range ids {
			b.pins[id]++
		}
	}
}

// Unpin undoes Pin.
func (s *State) Unpin(ids []string) {
	if b := s.backing; b != nil {
		for _, id := range ids {
			if b.pins[id] <= 1 {
				delete(b.pins, id)
			} else {
				b.pins[id]--
			}
		}
	}
}

// Install makes an instance loaded in the background resident, unless
// the state changed meanwhile (the id became resident, or was deleted):
// what memory holds is then newer than what was read.
func (s *State) Install(id string, inst *Instance) {
	b := s.backing
	if b == nil || s.Instances[id] != nil || b.gone(id) || inst == nil {
		return
	}
	s.Instances[id] = inst
	b.touch(id, instanceSize(inst))
	b.loads++
}

// Loader returns a function that reads an instance from the store,
// safe to call from any goroutine (nil without a store).
func (s *State) Loader() func(id string) (*Instance, error) {
	b := s.backing
	if b == nil {
		return nil
	}
	return b.fetch
}

// peek is Lookup without making the instance resident (for scans). It
// reads the store synchronously: for recovery-time and test use only.
func (s *State) peek(id string) *Instance {
	if inst := s.Instances[id]; inst != nil {
		return inst
	}
	if s.backing == nil || s.backing.gone(id) {
		return nil
	}
	if s.backing.live && s.backing.kv.Has(id) {
		s.backing.syncLoads++
	}
	return s.backing.load(id)
}

// IDs returns every instance id, resident or not, sorted.
func (s *State) IDs() []string {
	ids := make([]string, 0, len(s.Instances))
	for id := range s.Instances {
		ids = append(ids, id)
	}
	if b := s.backing; b != nil {
		for _, id := range b.kv.Keys() {
			if _, res := s.Instances[id]; !res && !b.gone(id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// InstanceCount counts the instances, resident or not.
func (s *State) InstanceCount() int {
	if s.backing == nil {
		return len(s.Instances)
	}
	return len(s.IDs())
}

// setInstance makes inst resident and dirty.
func (s *State) setInstance(inst *Instance) {
	s.Instances[inst.ID] = inst
	if b := s.backing; b != nil {
		b.touch(inst.ID, instanceSize(inst))
		b.dirty[inst.ID] = true
		b.noteChange(inst.ID)
	}
}

// deleteInstance removes an instance (from the store at the next flush).
func (s *State) deleteInstance(id string) {
	delete(s.Instances, id)
	if b := s.backing; b != nil {
		b.forget(id)
		b.dirty[id] = true
		delete(b.pending, id)
		b.noteChange(id)
	}
}

// changed marks instances touched by an event: dirty, resized, and in or
// out of the pending set.
func (s *State) changed(ids []string) {
	b := s.backing
	if b == nil {
		return
	}
	for _, id := range ids {
		b.noteChange(id)
		inst := s.Instances[id]
		if inst == nil {
			delete(b.pending, id)
			continue
		}
		b.dirty[id] = true
		b.touch(id, instanceSize(inst))
		if len(inst.Pending) > 0 && !inst.WaitingForStart {
			b.pending[id] = true
		} else {
			delete(b.pending, id)
		}
	}
}

// pendingIDs lists instances with work to do, sorted.
func (s *State) pendingIDs() []string {
	if s.backing == nil {
		var ids []string
		for _, id := range s.IDs() {
			if inst := s.Instances[id]; len(inst.Pending) > 0 && !inst.WaitingForStart {
				ids = append(ids, id)
			}
		}
		return ids
	}
	ids := make([]string, 0, len(s.backing.pending))
	for id := range s.backing.pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// instanceWrite is one change for the store: an encoded instance, or a
// delete (nil value).
type instanceWrite struct {
	id    string
	value []byte
}

// dirtyFlush is the set of changes a checkpoint writes to the store in the
// background.
type dirtyFlush struct {
	b      *backing
	gen    uint64
	writes []instanceWrite
}

// TakeDirty encodes every instance changed since the last flush (on the
// loop, so they are consistent) and returns them for WriteTo, with the
// pending ids to save with the checkpoint. Instances of a flush not yet
// written (one that was dropped) are taken again.
func (s *State) TakeDirty() (*dirtyFlush, []string, error) {
	b := s.backing
	if b == nil {
		return nil, nil, nil
	}
	b.settle()
	ids := make([]string, 0, len(b.dirty)+len(b.flushing))
	for id := range b.dirty {
		ids = append(ids, id)
	}
	for id := range b.flushing {
		if !b.dirty[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	b.flushGen++
	f := &dirtyFlush{b: b, gen: b.flushGen, writes: make([]instanceWrite, 0, len(ids))}
	for _, id := range ids {
		w := instanceWrite{id: id}
		if inst := s.Instances[id]; inst != nil {
			v, err := EncodeInstance(inst)
			if err != nil {
				return nil, nil, fmt.Errorf("encode instance %q: %w", id, err)
			}
			w.value = v
		}
		f.writes = append(f.writes, w)
		b.flushing[id] = f.gen
	}
	clear(b.dirty)
	return f, s.pendingIDs(), nil
}

// WriteTo writes the changes to the store; it runs in the background.
// Once it succeeds the flushed instances may be evicted. A failure is
// reported by BackingErr too (the partition stops on it: the changes are
// only in memory).
func (f *dirtyFlush) WriteTo(kv *faster.KV) error {
	for _, w := range f.writes {
		var err error
		if w.value == nil {
			err = kv.Delete(w.id)
		} else {
			err = kv.Upsert(w.id, w.value)
		}
		if err != nil {
			err = fmt.Errorf("write instance %q: %w", w.id, err)
			f.b.flushMu.Lock()
			if f.b.flushErr == nil {
				f.b.flushErr = err
			}
			f.b.flushMu.Unlock()
			return err
		}
	}
	for {
		old := f.b.flushed.Load()
		if old >= f.gen || f.b.flushed.CompareAndSwap(old, f.gen) {
			return nil
		}
	}
}

// FlushDirty writes every instance changed since the last flush to the
// store now, and returns the pending ids to save with the checkpoint. For
// recovery and tests; a live partition uses TakeDirty.
func (s *State) FlushDirty() ([]string, error) {
	f, pending, err := s.TakeDirty()
	if err != nil || f == nil {
		return pending, err
	}
	return pending, f.WriteTo(f.b.kv)
}

// settle forgets the flushing ids whose flush is written.
func (b *backing) settle() {
	if len(b.flushing) == 0 {
		return
	}
	done := b.flushed.Load()
	for id, gen := range b.flushing {
		if gen <= done {
			delete(b.flushing, id)
		}
	}
}

// Evict drops clean instances from memory, least recently used first,
// until the resident ones fit the budget. busy, pinned and flushing
// instances stay.
func (s *State) Evict(busy map[string]bool) {
	b := s.backing
	if b == nil {
		return
	}
	if len(b.flushing) > 0 && b.resident > b.budget {
		b.settle()
	}
	for el := b.lru.Back(); el != nil && b.resident > b.budget; {
		prev := el.Prev()
		id := el.Value.(string)
		if !b.dirty[id] && !busy[id] && b.pins[id] == 0 && !b.isFlushing(id) {
			delete(s.Instances, id)
			b.forget(id)
			b.evicts++
		}
		el = prev
	}
}

// overBudget reports whether the resident instances exceed the budget even
// after eviction, because too many are dirty: a checkpoint would let them
// go.
func (s *State) overBudget() bool {
	return s.backing != nil && s.backing.resident > s.backing.budget && len(s.backing.dirty) > 0
}

// BackingStats reports resident bytes, loads and evictions.
func (s *State) BackingStats() (resident int64, loads, evictions int64) {
	if s.backing == nil {
		return 0, 0, 0
	}
	return s.backing.resident, s.backing.loads, s.backing.evicts
}

func (b *backing) load(id string) *Instance {
	inst, err := b.fetch(id)
	if err != nil {
		b.fail(err)
		return nil
	}
	if inst != nil {
		b.loads++
	}
	return inst
}

// fail records the first load error (loop only).
func (b *backing) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// LoadFailed records a failed background load: the partition stops.
func (s *State) LoadFailed(err error) {
	if s.backing != nil {
		s.backing.fail(err)
	}
}

// fetch reads and decodes an instance from the store, or returns nil if
// there is none. It touches only the store: safe from any goroutine.
func (b *backing) fetch(id string) (*Instance, error) {
	v, ok, err := b.kv.Get(id)
	if err != nil {
		return nil, fmt.Errorf("load instance %q: %w", id, err)
	}
	if !ok {
		return nil, nil
	}
	inst, err := DecodeInstance(v)
	if err != nil {
		return nil, fmt.Errorf("load instance %q: %w", id, err)
	}
	return inst, nil
}

func (b *backing) touch(id string, size int64) {
	if el := b.elems[id]; el != nil {
		b.lru.MoveToFront(el)
	} else {
		b.elems[id] = b.lru.PushFront(id)
	}
	b.resident += size - b.sizes[id]
	b.sizes[id] = size
}

func (b *backing) use(id string) {
	if el := b.elems[id]; el != nil {
		b.lru.MoveToFront(el)
	}
}

func (b *backing) forget(id string) {
	if el := b.elems[id]; el != nil {
		b.lru.Remove(el)
		delete(b.elems, id)
	}
	b.resident -= b.sizes[id]
	delete(b.sizes, id)
}

// instanceSize estimates the memory an instance holds.
func instanceSize(inst *Instance) int64 {
	// Sizes of the Go structs and their headers, measured roughly.
	n := int64(512 + len(inst.ID) + len(inst.Record.Input) + len(inst.Record.Output) + len(inst.Record.CustomStatus))
	for _, e := range inst.History {
		n += int64(320 + len(e.Input) + len(e.Result) + len(e.Name))
	}
	for _, e := range inst.Pending {
		n += int64(320 + len(e.Input) + len(e.Result))
	}
	if inst.Entity != nil {
		n += int64(64 + len(inst.Entity.Value))
		for _, e := range inst.Entity.Queue {
			n += int64(160 + len(e.Input))
		}
	}
	return n
}
