package transport

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// FaultConfig says how a Faulty transport misbehaves. Rates are
// probabilities in [0, 1].
type FaultConfig struct {
	// Seed seeds the fault decisions.
	Seed uint64
	// DropRate is the chance that a packet between partitions is lost.
	DropRate float64
	// DupRate is the chance that a packet between partitions arrives
	// twice (each copy with its own delay).
	DupRate float64
	// MaxDelay delays each packet between partitions by a random time up
	// to this, so packets are reordered, also across senders.
	MaxDelay time.Duration
	// FailRate is the chance that a send between partitions, or a send to
	// a client, fails with an error (and delivers nothing).
	FailRate float64
	// ReceiveFailRate is the chance that ReceivePartition fails (without
	// consuming anything).
	ReceiveFailRate float64
}

// ErrInjected is the error of the sends and receives a Faulty transport
// fails on purpose.
var ErrInjected = errors.New("transport: injected fault")

// Faulty wraps a transport and makes packets between partitions (batches,
// acks, resend requests) get lost, duplicated, delayed and reordered
// before they reach the inner transport's queues, which stay ordered once
// a packet is in them. Client requests pass straight through, in order:
// clients do not retry. A test tool (the network a real transport runs
// over behaves like this).
type Faulty struct {
	inner Transport
	cfg   FaultConfig

	mu      sync.Mutex
	rng     *rand.Rand
	due     delayHeap
	seq     uint64
	wake    chan struct{}
	quit    chan struct{}
	stopped bool
	done    chan struct{}
	stats   FaultStats
}

// FaultStats counts what a Faulty transport did.
type FaultStats struct {
	Sent, Dropped, Duplicated, Delayed, FailedSends, FailedReceives int
}

// NewFaulty wraps inner. Close stops the delivery of delayed packets (it
// does not close inner).
func NewFaulty(inner Transport, cfg FaultConfig) *Faulty {
	f := &Faulty{inner: inner, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go f.deliver()
	return f
}

type delayed struct {
	at     time.Time
	seq    uint64
	dest   int
	packet *Packet
}

type delayHeap []delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Stats returns the fault counts so far.
func (f *Faulty) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Close stops delivering delayed packets; those not yet delivered are
// lost.
func (f *Faulty) Close() {
	f.mu.Lock()
	if !f.stopped {
		f.stopped = true
		close(f.quit)
	}
	f.mu.Unlock()
	<-f.done
}

// Inner returns the wrapped transport.
func (f *Faulty) Inner() Transport { return f.inner }

func (f *Faulty) chance(p float64) bool { return p > 0 && f.rng.Float64() < p }

// SendToPartition sends client requests through at once, and passes
// packets between partitions through the faults.
func (f *Faulty) SendToPartition(partition int, packets ...*Packet) error {
	var direct, faulty []*Packet
	for _, p := range packets {
		if p.Request != nil {
			direct = append(direct, p)
		} else {
			faulty = append(faulty, p)
		}
	}
	if len(direct) > 0 {
		if err := f.inner.SendToPartition(partition, direct...); err != nil {
			return err
		}
	}
	if len(faulty) == 0 {
		return nil
	}
	if partition < 0 || partition >= f.inner.PartitionCount() {
		return f.inner.SendToPartition(partition, faulty...) // the inner error
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return ErrClosed
	}
	if f.chance(f.cfg.FailRate) {
		f.stats.FailedSends++
		f.mu.Unlock()
		return ErrInjected
	}
	now := time.Now()
	var immediate []*Packet
	for _, p := range faulty {
		f.stats.Sent++
		if f.chance(f.cfg.DropRate) {
			f.stats.Dropped++
			continue
		}
		copies := 1
		if f.chance(f.cfg.DupRate) {
			f.stats.Duplicated++
			copies = 2
		}
		for c := 0; c < copies; c++ {
			if f.cfg.MaxDelay <= 0 {
				immediate = append(immediate, p)
				continue
			}
			f.stats.Delayed++
			f.seq++
			d := time.Duration(f.rng.Int64N(int64(f.cfg.MaxDelay) + 1))
			heap.Push(&f.due, delayed{at: now.Add(d), seq: f.seq, dest: partition, packet: p})
		}
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	if len(immediate) > 0 {
		return f.inner.SendToPartition(partition, immediate...)
	}
	return nil
}

// deliver moves delayed packets into the inner queues when due.
func (f *Faulty) deliver() {
	defer close(f.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		f.mu.Lock()
		now := time.Now()
		var ready []delayed
		for len(f.due) > 0 && !f.due[0].at.After(now) {
			ready = append(ready, heap.Pop(&f.due).(delayed))
		}
		wait := time.Hour
		if len(f.due) > 0 {
			wait = f.due[0].at.Sub(now)
		}
		f.mu.Unlock()
		for _, d := range ready {
			// A closed inner transport loses it, as a network would.
			_ = f.inner.SendToPartition(d.dest, d.packet)
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-f.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-f.quit:
			return
		}
	}
}

// ReceivePartition reads the inner queue, failing now and then.
func (f *Faulty) ReceivePartition(ctx context.Context, partition int, from uint64) ([]*Packet, uint64, error) {
	f.mu.Lock()
	fail := f.chance(f.cfg.ReceiveFailRate)
	if fail {
		f.stats.FailedReceives++
	}
	f.mu.Unlock()
	if fail {
		return nil, from, ErrInjected
	}
	return f.inner.ReceivePartition(ctx, partition, from)
}

// TrimPartition trims the inner queue.
func (f *Faulty) TrimPartition(partition int, upTo uint64) { f.inner.TrimPartition(partition, upTo) }

// SendToClient sends to the inner transport, failing now and then.
func (f *Faulty) SendToClient(clientID string, packets ...*Packet) error {
	f.mu.Lock()
	fail := f.chance(f.cfg.FailRate)
	if fail {
		f.stats.FailedSends++
	}
	f.mu.Unlock()
	if fail {
		return ErrInjected
	}
	return f.inner.SendToClient(clientID, packets...)
}

// ListenClient opens a client's response queue on the inner transport.
func (f *Faulty) ListenClient(clientID string) (<-chan *Packet, func(), error) {
	return f.inner.ListenClient(clientID)
}

// SendToLoadMonitor passes load reports through.
func (f *Faulty) SendToLoadMonitor(packets ...*Packet) error {
	return f.inner.SendToLoadMonitor(packets...)
}

// PartitionCount is the inner transport's.
func (f *Faulty) PartitionCount() int { return f.inner.PartitionCount() }
