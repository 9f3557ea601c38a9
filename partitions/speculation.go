package partitions

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/netherite-go/netherite/transport"
)

// Speculation says what a partition may do before a step is durable
// (DESIGN §4.5).
type Speculation int

const (
	// SpeculationLocal (the default) applies a step and runs what it
	// starts at once; what another partition or a client can observe
	// leaves only once the step is durable.
	SpeculationLocal Speculation = iota
	// SpeculationNone applies a step only once it is durable (what
	// PersistStepsFirst used to say).
	SpeculationNone
	// SpeculationGlobal also lets messages to other partitions leave
	// before their step is durable (see doc/speculation.md).
	SpeculationGlobal
)

// String returns the mode's name: "local", "none" or "global".
func (s Speculation) String() string {
	switch s {
	case SpeculationLocal:
		return "local"
	case SpeculationNone:
		return "none"
	case SpeculationGlobal:
		return "global"
	}
	return fmt.Sprintf("Speculation(%d)", int(s))
}

// ParseSpeculation reads a mode's name ("" is the default, local).
func ParseSpeculation(name string) (Speculation, error) {
	switch name {
	case "", "local":
		return SpeculationLocal, nil
	case "none":
		return SpeculationNone, nil
	case "global":
		return SpeculationGlobal, nil
	}
	return 0, fmt.Errorf("unknown speculation mode %q (want none, local or global)", name)
}

// valid reports whether s is one of the modes.
func (s Speculation) valid() bool { return s >= SpeculationLocal && s <= SpeculationGlobal }

// What a receiver knows of a speculative step of another partition.
type specVerdict int

const (
	specUnknown specVerdict = iota // not (yet) confirmed durable
	specDurable
	specLost
)

// judge says what confirmation c tells about step (epoch, pos) of its
// sender (transport.Confirm explains the rule).
func judge(c *transport.Confirm, epoch, pos uint64) specVerdict {
	if c == nil || len(c.Epochs) == 0 {
		return specUnknown
	}
	last := c.Epochs[len(c.Epochs)-1]
	switch {
	case epoch > last:
		return specUnknown // c is older than the step
	case epoch == last:
		if pos <= c.Durable {
			return specDurable
		}
		return specUnknown
	}
	i, found := slices.BinarySearch(c.Epochs, epoch)
	if !found {
		// Older than every incarnation listed (or one that never sent:
		// its start never became durable, so no step names it). The
		// next incarnation started at or before Epochs[i], so a step at
		// or after it was lost; one before it cannot be told: it counts
		// as lost, which costs a rollback, never a wrong state.
		return specLost
	}
	if pos < c.Epochs[i+1] {
		return specDurable
	}
	return specLost
}

// newer reports whether confirmation a says more than b.
func newer(a, b *transport.Confirm) bool {
	if b == nil || len(b.Epochs) == 0 {
		return len(a.Epochs) > 0
	}
	if len(a.Epochs) == 0 {
		return false
	}
	la, lb := a.Epochs[len(a.Epochs)-1], b.Epochs[len(b.Epochs)-1]
	return la > lb || (la == lb && a.Durable > b.Durable)
}

// SpecDeps is a receiver's side of global speculation: the speculative
// batches it applied whose steps their origins have not yet confirmed
// durable, and what it learnt of each origin's incarnations. It is pure
// bookkeeping (no I/O, no clock), shared by the runtime and the
// simulation. The rule it keeps (doc/speculation.md): nothing at or after
// the log position of such a batch may become durable until the step is
// confirmed; a step that turns out lost means a rollback to the durable
// prefix.
type SpecDeps struct {
	deps []specDep // by local log position
	info map[int]*transport.Confirm
}

type specDep struct {
	pos       uint64 // local log position of the MessagesReceived
	origin    int
	epoch     uint64
	originPos uint64
}

// NewSpecDeps starts with what is known of other partitions'
// incarnations: what the state learnt (State.Learnt) and what the host
// kept (SpecMemory); either may be nil.
func NewSpecDeps(learnt map[int][]uint64, known map[int]*transport.Confirm) *SpecDeps {
	d := &SpecDeps{info: map[int]*transport.Confirm{}}
	for o, es := range learnt {
		d.info[o] = &transport.Confirm{From: o, Epochs: es}
	}
	for o, c := range known {
		if newer(c, d.info[o]) {
			d.info[o] = c
		}
	}
	return d
}

// Learnt returns what is known of other partitions' incarnations, for
// RecoveryCompleted.Learnt (nil if nothing).
func Learnt(known map[int]*transport.Confirm) map[int][]uint64 {
	var m map[int][]uint64
	for o, c := range known {
		if len(c.Epochs) > 0 {
			if m == nil {
				m = map[int][]uint64{}
			}
			m[o] = slices.Clone(c.Epochs)
		}
	}
	return m
}

// Admit decides on a speculative batch from origin (its step (epoch,
// originPos)) about to be logged at local position pos: false if the step
// is known to be lost (the batch must be dropped, not applied); true if it
// may be applied, in which case it is a dependency unless already known
// durable.
func (d *SpecDeps) Admit(pos uint64, origin int, epoch, originPos uint64) bool {
	switch judge(d.info[origin], epoch, originPos) {
	case specLost:
		return false
	case specDurable:
		return true
	}
	d.deps = append(d.deps, specDep{pos: pos, origin: origin, epoch: epoch, originPos: originPos})
	return true
}

// Learn takes a confirmation from another partition and settles the
// dependencies it decides. It returns a description of the first
// dependency found lost ("" if none): the receiver must roll back.
func (d *SpecDeps) Learn(c *transport.Confirm) (lost string) {
	if c == nil || !newer(c, d.info[c.From]) {
		return ""
	}
	d.info[c.From] = c
	keep := d.deps[:0]
	for _, dep := range d.deps {
		if dep.origin != c.From {
			keep = append(keep, dep)
			continue
		}
		switch judge(c, dep.epoch, dep.originPos) {
		case specDurable:
			continue
		case specLost:
			if lost == "" {
				lost = fmt.Sprintf("applied at position %d a batch of partition %d whose step %d of incarnation %d was lost (incarnations %v)",
					dep.pos, dep.origin, dep.originPos, dep.epoch, c.Epochs)
			}
		}
		keep = append(keep, dep)
	}
	d.deps = keep
	return lost
}

// Limit returns the highest local log position that may become durable
// (math.MaxUint64 if nothing waits for a confirmation).
func (d *SpecDeps) Limit() uint64 {
	if len(d.deps) == 0 {
		return math.MaxUint64
	}
	return d.deps[0].pos - 1
}

// Pending counts the dependencies not yet confirmed.
func (d *SpecDeps) Pending() int { return len(d.deps) }

// Waiting lists the origins with unconfirmed dependencies, sorted.
func (d *SpecDeps) Waiting() []int {
	var out []int
	for _, dep := range d.deps {
		if !slices.Contains(out, dep.origin) {
			out = append(out, dep.origin)
		}
	}
	slices.Sort(out)
	return out
}

// Known returns what was learnt of other partitions' incarnations.
func (d *SpecDeps) Known() map[int]*transport.Confirm {
	out := make(map[int]*transport.Confirm, len(d.info))
	for o, c := range d.info {
		out[o] = c
	}
	return out
}

// SpecMemory keeps, across the restarts of a host's partitions, what each
// learnt of the others' incarnations: a partition that rolled back
// because a step was lost must know, when it reads that step's batch from
// its input queue again, to drop it. (After a host crash this is lost; a
// partition may then apply such a batch once more and roll back once
// more, having learnt.) Safe for concurrent use.
//
// It also keeps, for a partition that rolled back, the input position it
// had read up to: until its next incarnation has read that far again and
// its speculative batches are settled, it sends only durable steps, so
// that two partitions that each applied the other's lost steps cannot
// keep rolling each other back (the sim found that ping-pong).
type SpecMemory struct {
	mu       sync.Mutex
	known    map[int]map[int]*transport.Confirm
	rollback map[int]uint64
}

// NewSpecMemory returns an empty memory.
func NewSpecMemory() *SpecMemory {
	return &SpecMemory{known: map[int]map[int]*transport.Confirm{}, rollback: map[int]uint64{}}
}

// RolledBack records that partition p rolled back, having read its input
// up to inputPos.
func (m *SpecMemory) RolledBack(p int, inputPos uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rollback[p] = max(m.rollback[p], inputPos)
}

// Quarantine returns the input position partition p must read up to, with
// its speculative batches settled, before it sends speculatively again (0:
// none), and forgets it.
func (m *SpecMemory) Quarantine(p int) uint64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.rollback[p]
	delete(m.rollback, p)
	return q
}

// Get returns what partition p learnt.
func (m *SpecMemory) Get(p int) map[int]*transport.Confirm {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.known[p]
}

// Put records what partition p learnt.
func (m *SpecMemory) Put(p int, known map[int]*transport.Confirm) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.known[p] = known
}

// carriesSpeculation reports whether a transport says it carries
// speculative batches (transport.Packet.SpecEpoch and Confirm) intact.
func carriesSpeculation(t transport.Transport) bool {
	c, ok := t.(interface{ CarriesSpeculation() bool })
	return ok && c.CarriesSpeculation()
}

// String describes the dependencies, for traces.
func (d *SpecDeps) String() string {
	var b strings.Builder
	for _, dep := range d.deps {
		fmt.Fprintf(&b, "[at %d: p%d step %d of incarnation %d] ", dep.pos, dep.origin, dep.originPos, dep.epoch)
	}
	return b.String()
}
