// Package sim is a deterministic simulation of a task hub's partitions, in
// the spirit of etcd-io/raft's rafttest and FoundationDB's simulation.
//
// N partitions and a client exchange packets over a network that drops,
// duplicates, delays and reorders them, while partitions crash and recover
// from storage that loses whatever was not yet committed. One seeded random
// source makes every choice and a virtual clock tells every time, so a run
// is a pure function of its Config: a failing seed reproduces exactly.
//
// The simulation drives the engine's own code: the partition state machine
// (partitions.State), its commit log and checkpoints (partitions.DurableStore
// over a faster.FaultDevice), the protocol decisions of the runtime
// (partitions.Exchange) and the SDK's replay executor running the sample
// workflows. Only the goroutines and the real clock of partitions.Partition
// are replaced by the scheduler here.
//
// After the faulty phase the network heals and the run continues until
// nothing is left to do; then Run checks the invariants (see check.go).
package sim

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// Config says what one simulated run does. Zero fields take defaults.
type Config struct {
	Seed       int64
	Partitions int // default 4
	// Steps is the number of scheduler steps with faults on (default
	// 3000); the run then heals and continues until it is quiet.
	Steps int
	// The workload: hello sequences (activities), bank transfers under
	// entity locks across partitions, orchestrations that each signal one
	// shared counter entity exactly once, and chains (durable timers,
	// sub-orchestrations on other partitions, continue-as-new).
	Hellos    int // default 6
	Transfers int // default 8
	Accounts  int // default 4
	Signals   int // default 6
	Chains    int // timers, sub-orchestrations elsewhere, continue-as-new; default 3
	// Faults (only during the first Steps steps).
	DropRate  float64       // of packets in the network; default 0.1
	DupRate   float64       // default 0.1
	CrashRate float64       // per step; default 0.004
	FailRate  float64       // of sends; default 0.05
	MaxDelay  time.Duration // network delay bound; default 2 s
	// KV keeps instances in the hybrid-log KV with a tiny resident set,
	// so they are evicted and read back (TestSim uses it on odd seeds).
	KV bool
	// Speculation is the partitions' mode (TestSim picks one per seed).
	Speculation partitions.Speculation
	// NoFaults turns every fault off (for a baseline run).
	NoFaults bool
	// blackhole makes the network swallow every copy of the first batch
	// between partitions, forever (to show that the checks can fail).
	blackhole bool
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Partitions, 4)
	def(&c.Steps, 3000)
	def(&c.Hellos, 6)
	def(&c.Transfers, 8)
	def(&c.Accounts, 4)
	def(&c.Signals, 6)
	def(&c.Chains, 3)
	if c.NoFaults {
		c.DropRate, c.DupRate, c.CrashRate, c.FailRate = 0, 0, 0, 0
		return
	}
	if c.DropRate == 0 {
		c.DropRate = 0.1
	}
	if c.DupRate == 0 {
		c.DupRate = 0.1
	}
	if c.CrashRate == 0 {
		c.CrashRate = 0.004
	}
	if c.FailRate == 0 {
		c.FailRate = 0.05
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 2 * time.Second
	}
}

// Result counts what happened in a run.
type Result struct {
	Steps       int
	Events      int // update events applied (live, across incarnations)
	Crashes     int
	Checkpoints int
	// Loads counts instances read back from the KV (KV mode).
	Loads      int64
	Delivered  int
	Dropped    int
	Duplicated int
	// Acknowledged counts the starts the client saw acknowledged.
	Acknowledged int
}

// Error is an invariant violation, with the seed that reproduces it and
// the last steps of the run.
type Error struct {
	Seed  int64
	Msg   string
	Trace []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sim: seed %d: %s\nlast steps:\n  %s", e.Seed, e.Msg, strings.Join(e.Trace, "\n  "))
}

// epoch is the virtual clock's start.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// world is one run.
type world struct {
	cfg    Config
	rng    *rand.Rand
	now    time.Time
	exec   partitions.Executor
	nodes  []*node
	net    []flight
	client *client
	res    Result
	faults bool
	trace  []string
	hole   *transport.MessageBatch
}

// flight is a packet in the network.
type flight struct {
	at  time.Time // deliverable from
	to  int       // partition, or toClient
	pkt *transport.Packet
}

const toClient = -1

// Run simulates one run and checks its invariants.
func Run(cfg Config) (Result, error) {
	cfg.defaults()
	w := &world{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)), now: epoch, exec: newExecutor()}
	for i := 0; i < cfg.Partitions; i++ {
		n, err := newNode(w, i)
		if err != nil {
			return w.res, w.fail("partition %d: open: %v", i, err)
		}
		w.nodes = append(w.nodes, n)
	}
	w.client = newClient(w)
	w.faults = !cfg.NoFaults
	for w.res.Steps < cfg.Steps {
		if err := w.step(); err != nil {
			return w.res, err
		}
	}
	// Heal: no more faults, every node up; run until quiet.
	w.faults = false
	for _, n := range w.nodes {
		if !n.up {
			if err := n.recover(); err != nil {
				return w.res, w.fail("partition %d: recover: %v", n.id, err)
			}
		}
	}
	for quiet := 0; quiet < 3; {
		if w.res.Steps > cfg.Steps+50000 {
			return w.res, w.fail("not quiet after %d steps: %s", w.res.Steps, w.busyReport())
		}
		if w.idle() {
			// Let timers (protocol resends, durable timers) come due.
			w.advance(5 * time.Second)
			quiet++
			continue
		}
		quiet = 0
		if err := w.step(); err != nil {
			return w.res, err
		}
	}
	return w.res, w.check()
}

func (w *world) fail(format string, args ...any) error {
	return &Error{Seed: w.cfg.Seed, Msg: fmt.Sprintf(format, args...), Trace: slices.Clone(w.trace)}
}

func (w *world) note(format string, args ...any) {
	const keep = 60
	if len(w.trace) == keep {
		copy(w.trace, w.trace[1:])
		w.trace = w.trace[:keep-1]
	}
	w.trace = append(w.trace, fmt.Sprintf("%6d %s ", w.res.Steps, w.now.Sub(epoch))+fmt.Sprintf(format, args...))
}

// action is one thing the scheduler may do next.
type action struct {
	weight int
	do     func() error
}

// step picks one enabled action at random and does it.
func (w *world) step() error {
	w.res.Steps++
	var acts []action
	add := func(weight int, do func() error) { acts = append(acts, action{weight, do}) }
	if i := w.deliverable(); len(i) > 0 {
		add(30, func() error { return w.deliver(i[w.rng.Intn(len(i))]) })
	}
	if w.client.pending() {
		add(6, w.client.send)
	}
	if len(w.client.overdue()) > 0 {
		add(2, w.client.retry)
	}
	for _, n := range w.nodes {
		if !n.up {
			add(2, n.recover)
			continue
		}
		if n.canRead() {
			add(10, n.read)
		}
		if len(n.unlogged) > 0 {
			add(8, n.commit)
		}
		if len(n.ready) > 0 {
			add(10, n.work)
		}
		if len(n.acts) > 0 {
			add(8, n.activity)
		}
		if len(n.unlogged) == 0 {
			add(1, n.checkpoint)
		}
		if w.faults && w.rng.Float64() < w.cfg.CrashRate {
			add(1000, n.crash)
		}
	}
	add(3, func() error { w.advance(time.Duration(1+w.rng.Intn(400)) * time.Millisecond); return nil })
	total := 0
	for _, a := range acts {
		total += a.weight
	}
	r := w.rng.Intn(total)
	for _, a := range acts {
		if r < a.weight {
			err := a.do()
			for _, n := range w.nodes {
				if n.up {
					// As the runtime's loop does after each turn; work
					// items run within a step, so none is busy here.
					n.st.Evict(nil)
				}
			}
			return err
		}
		r -= a.weight
	}
	panic("unreachable")
}

// idle reports whether nothing is left to do at the current time.
func (w *world) idle() bool {
	if len(w.net) > 0 || w.client.pending() || w.client.unanswered() {
		return false
	}
	for _, n := range w.nodes {
		if !n.up || n.canRead() || len(n.unlogged) > 0 || len(n.ready) > 0 || len(n.acts) > 0 ||
			n.courier.Unacked() > 0 || !n.courier.Next(w.now).IsZero() {
			return false
		}
	}
	return true
}

func (w *world) busyReport() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d packets in the network;", len(w.net))
	for _, n := range w.nodes {
		fmt.Fprintf(&b, " p%d: up=%v unread=%d unlogged=%d ready=%d activities=%d outbox=%d timers=%d;",
			n.id, n.up, len(n.queue)-int(n.readPos), len(n.unlogged), len(n.ready), len(n.acts), len(n.st.Outbox), len(n.st.Timers))
	}
	return b.String()
}

// send puts a packet into the network. With faults on it may be dropped or
// duplicated; it is delayed by up to MaxDelay either way, which reorders
// packets across senders (and, before they reach a queue, within one).
func (w *world) send(to int, pkt *transport.Packet) {
	copies := 1
	if b := pkt.Messages; b != nil && w.cfg.blackhole {
		if w.hole == nil {
			w.hole = b
		}
		if b.Origin == w.hole.Origin && b.OriginPos == w.hole.OriginPos {
			w.note("blackhole %s to %d", describe(pkt), to)
			return
		}
	}
	if w.faults {
		if w.rng.Float64() < w.cfg.DropRate {
			w.res.Dropped++
			w.note("drop %s to %d", describe(pkt), to)
			return
		}
		if w.rng.Float64() < w.cfg.DupRate {
			w.res.Duplicated++
			copies = 2
		}
	}
	for range copies {
		delay := time.Duration(0)
		if w.cfg.MaxDelay > 0 {
			delay = time.Duration(w.rng.Int63n(int64(w.cfg.MaxDelay)))
		}
		w.net = append(w.net, flight{at: w.now.Add(delay), to: to, pkt: pkt})
	}
}

// deliverable lists the packets in the network that may arrive now.
func (w *world) deliverable() []int {
	var out []int
	for i, f := range w.net {
		if !f.at.After(w.now) {
			out = append(out, i)
		}
	}
	if len(out) == 0 && len(w.net) > 0 && !w.faults {
		// Healing: let time pass rather than stall on delays.
		return nil
	}
	return out
}

func (w *world) deliver(i int) error {
	f := w.net[i]
	w.net = slices.Delete(w.net, i, i+1)
	w.res.Delivered++
	if f.to == toClient {
		w.client.receive(f.pkt)
		return nil
	}
	// A partition's input queue is durable and ordered (an Event Hubs
	// partition): once appended, a packet stays, whatever its reader does.
	n := w.nodes[f.to]
	n.queue = append(n.queue, f.pkt)
	return nil
}

// advance moves the virtual clock and fires what came due.
func (w *world) advance(d time.Duration) {
	w.now = w.now.Add(d)
	for _, n := range w.nodes {
		if n.up {
			n.tick()
		}
	}
}

func describe(p *transport.Packet) string {
	switch {
	case p.Messages != nil:
		return fmt.Sprintf("batch %d@%d(%d msgs)", p.Messages.Origin, p.Messages.OriginPos, len(p.Messages.Messages))
	case p.Ack != nil:
		return fmt.Sprintf("ack from %d up to %d", p.Ack.From, p.Ack.UpTo)
	case p.Request != nil:
		return fmt.Sprintf("request %s %s", p.Request.Kind, p.Request.InstanceID)
	case p.Response != nil:
		return fmt.Sprintf("response %d", p.Response.RequestID)
	}
	return "packet"
}

// sortedIDs returns a set's keys in order: map order must never leak into
// a run, or seeds would not reproduce.
func sortedIDs[K string | uint64](m map[K]bool) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// eventAt makes a history event stamped with the virtual clock.
func (w *world) eventAt(kind core.EventKind) *core.HistoryEvent {
	return core.NewEvent(kind, w.now)
}
