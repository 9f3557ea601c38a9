package partitions

import (
	"container/list"
	"fmt"
	"slices"

	"github.com/netherite-go/netherite/faster"
)

// Instances live in State.Instances while they are resident in memory.
// With a backing store (a faster KV), instances that are not needed are
// evicted from memory and read back on demand, so a partition may hold
// more state than memory.
//
// The contract with checkpoints: between two checkpoints the backing store
// is only read, never written. Instances changed since the last checkpoint
// are dirty and stay resident; a checkpoint writes them to the store (on
// the partition's loop, so the state is consistent) and then the store's
// fold-over checkpoint makes them durable in the background. Recovery
// opens the store at its last checkpoint and replays the commit log after
// it, loading instances as events touch them.

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
}

// AttachBacking makes kv the store behind the state's instances, keeping
// at most about budget bytes of instances resident. pending lists the ids
// of instances with work to do, as saved at the checkpoint.
func (s *State) AttachBacking(kv *faster.KV, budget int64, pending []string) {
	b := &backing{kv: kv, budget: budget, dirty: map[string]bool{}, lru: list.New(),
		elems: map[string]*list.Element{}, sizes: map[string]int64{}, pending: map[string]bool{}}
	for _, id := range pending {
		b.pending[id] = true
	}
	for id := range s.Instances {
		b.touch(id, instanceSize(s.Instances[id]))
		b.dirty[id] = true
	}
	s.backing = b
}

// BackingErr reports a failure to read an instance back from storage.
func (s *State) BackingErr() error {
	if s.backing == nil {
		return nil
	}
	return s.backing.err
}

// Lookup returns an instance, reading it back from the store if it is not
// resident, or nil if there is none.
func (s *State) Lookup(id string) *Instance {
	if inst := s.Instances[id]; inst != nil {
		if s.backing != nil {
			s.backing.use(id)
		}
		return inst
	}
	b := s.backing
	if b == nil || b.dirty[id] {
		return nil // none, or deleted since the last flush
	}
	inst := b.load(id)
	if inst != nil {
		s.Instances[id] = inst
		b.touch(id, instanceSize(inst))
	}
	return inst
}

// peek is Lookup without making the instance resident (for scans).
func (s *State) peek(id string) *Instance {
	if inst := s.Instances[id]; inst != nil {
		return inst
	}
	if s.backing == nil || s.backing.dirty[id] {
		return nil
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
			if _, res := s.Instances[id]; !res && !b.dirty[id] {
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
	}
}

// deleteInstance removes an instance (from the store at the next flush).
func (s *State) deleteInstance(id string) {
	delete(s.Instances, id)
	if b := s.backing; b != nil {
		b.forget(id)
		b.dirty[id] = true
		delete(b.pending, id)
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

// FlushDirty writes every instance changed since the last flush to the
// store, and returns the pending ids to save with the checkpoint.
func (s *State) FlushDirty() ([]string, error) {
	b := s.backing
	if b == nil {
		return nil, nil
	}
	ids := make([]string, 0, len(b.dirty))
	for id := range b.dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		inst := s.Instances[id]
		if inst == nil {
			if err := b.kv.Delete(id); err != nil {
				return nil, err
			}
			continue
		}
		v, err := EncodeInstance(inst)
		if err != nil {
			return nil, err
		}
		if err := b.kv.Upsert(id, v); err != nil {
			return nil, err
		}
	}
	clear(b.dirty)
	return s.pendingIDs(), nil
}

// Evict drops clean instances from memory, least recently used first,
// until the resident ones fit the budget. busy instances stay.
func (s *State) Evict(busy map[string]bool) {
	b := s.backing
	if b == nil {
		return
	}
	for el := b.lru.Back(); el != nil && b.resident > b.budget; {
		prev := el.Prev()
		id := el.Value.(string)
		if !b.dirty[id] && !busy[id] {
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
	v, ok, err := b.kv.Get(id)
	if err != nil {
		if b.err == nil {
			b.err = fmt.Errorf("load instance %q: %w", id, err)
		}
		return nil
	}
	if !ok {
		return nil
	}
	inst, err := DecodeInstance(v)
	if err != nil {
		if b.err == nil {
			b.err = fmt.Errorf("load instance %q: %w", id, err)
		}
		return nil
	}
	b.loads++
	return inst
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
