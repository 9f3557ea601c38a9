package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInjected is wrapped by the errors a Faulty transport makes up.
var ErrInjected = errors.New("transport: injected fault")

// Fault is what a Faulty transport does to one packet.
type Fault int

// The faults.
const (
	// FaultNone leaves the choice to the random rates.
	FaultNone Fault = iota
	// FaultDeliver delivers the packet unharmed.
	FaultDeliver
	// FaultDrop loses the packet (the send still succeeds).
	FaultDrop
	// FaultDuplicate delivers the packet twice.
	FaultDuplicate
	// FaultDelay holds the packet back for up to MaxDelay (at least 1 ms).
	FaultDelay
	// FaultFail fails the whole send: nothing of it is delivered.
	FaultFail
)

// FaultConfig says what a Faulty transport does. Rates are probabilities
// per packet (FailRate and PhantomFailRate: per send; ReceiveFailRate: per
// receive).
type FaultConfig struct {
	Seed      uint64
	DropRate  float64
	DupRate   float64
	DelayRate float64
	// MaxDelay bounds how long a delayed packet is held back. Delays
	// reorder packets across senders and between the sends of one sender,
	// as a network does; a queue itself stays ordered.
	MaxDelay time.Duration
	// FailRate fails a send with an error, delivering nothing.
	FailRate float64
	// PhantomFailRate fails a send with an error after delivering it
	// (the sender cannot tell it arrived).
	PhantomFailRate float64
	// ReceiveFailRate fails a receive with a transient error.
	ReceiveFailRate float64
	// Clients extends the faults to client requests and responses. Off by
	// default: a client retries a request only after its attempt timeout
	// (seconds), which slows tests down.
	Clients bool
	// Script, if set, decides the fault for each packet first; FaultNone
	// leaves it to the rates. It is called with the destination partition
	// (-1 for a client) and must not block.
	Script func(dest int, pk *Packet) Fault
}

// FaultStats counts the faults a Faulty transport injected.
type FaultStats struct {
	Dropped, Duplicated, Delayed, FailedSends, PhantomSends, FailedReceives int64
}

// Faulty wraps a transport and injects network faults into what goes
// through it: drops, duplicates, delays (so reordering) and failed sends,
// before packets reach the inner transport's queues. By default only
// partition-to-partition packets (messages, acks, resend requests) are
// subject to faults.
type Faulty struct {
	inner Transport
	cfg   FaultConfig

	mu  sync.Mutex
	rng *rand.Rand

	failReceives atomic.Int64
	pending      sync.WaitGroup
	stats        struct {
		dropped, duplicated, delayed, failedSends, phantomSends, failedReceives atomic.Int64
	}
}

var _ Transport = (*Faulty)(nil)

// NewFaulty wraps inner with the faults of cfg.
func NewFaulty(inner Transport, cfg FaultConfig) *Faulty {
	return &Faulty{inner: inner, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
}

// Inner returns the wrapped transport.
func (f *Faulty) Inner() Transport { return f.inner }

// PartitionQueueLength passes the inner transport's answer on (packets
// held back as delayed are not in a queue yet, and do not count).
func (f *Faulty) PartitionQueueLength(p int, from uint64) (int64, bool) {
	if ql, ok := f.inner.(QueueLengther); ok {
		return ql.PartitionQueueLength(p, from)
	}
	return 0, false
}

// FailReceives makes the next n receives fail with a transient error.
func (f *Faulty) FailReceives(n int) { f.failReceives.Add(int64(n)) }

// Stats returns the faults injected so far.
func (f *Faulty) Stats() FaultStats {
	s := &f.stats
	return FaultStats{Dropped: s.dropped.Load(), Duplicated: s.duplicated.Load(), Delayed: s.delayed.Load(),
		FailedSends: s.failedSends.Load(), PhantomSends: s.phantomSends.Load(), FailedReceives: s.failedReceives.Load()}
}

// Settle waits until every delayed packet has been delivered (or lost to
// a closed transport).
func (f *Faulty) Settle() { f.pending.Wait() }

func (f *Faulty) faultable(pk *Packet) bool {
	if pk.Messages != nil || pk.Ack != nil || pk.Resend != nil || pk.Confirm != nil {
		return true
	}
	return f.cfg.Clients && (pk.Request != nil || pk.Response != nil)
}

type delayed struct {
	pk    *Packet
	after time.Duration
}

// plan decides the fate of a send: the packets to deliver now, those to
// deliver later, and the error to return.
func (f *Faulty) plan(dest int, packets []*Packet) (now []*Packet, later []delayed, phantom bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	faults := false
	for _, pk := range packets {
		if f.faultable(pk) {
			faults = true
			break
		}
	}
	if !faults {
		return packets, nil, false, nil
	}
	roll := func(p float64) bool { return p > 0 && f.rng.Float64() < p }
	if roll(f.cfg.FailRate) {
		f.stats.failedSends.Add(1)
		return nil, nil, false, fmt.Errorf("send to %d: %w", dest, ErrInjected)
	}
	phantom = roll(f.cfg.PhantomFailRate)
	for _, pk := range packets {
		if !f.faultable(pk) {
			now = append(now, pk)
			continue
		}
		fault := FaultNone
		if f.cfg.Script != nil {
			fault = f.cfg.Script(dest, pk)
		}
		if fault == FaultNone {
			switch {
			case roll(f.cfg.DropRate):
				fault = FaultDrop
			case roll(f.cfg.DupRate):
				fault = FaultDuplicate
			case f.cfg.MaxDelay > 0 && roll(f.cfg.DelayRate):
				fault = FaultDelay
			default:
				fault = FaultDeliver
			}
		}
		switch fault {
		case FaultFail:
			f.stats.failedSends.Add(1)
			return nil, nil, false, fmt.Errorf("send to %d: %w", dest, ErrInjected)
		case FaultDrop:
			f.stats.dropped.Add(1)
		case FaultDuplicate:
			f.stats.duplicated.Add(1)
			now = append(now, pk, pk)
		case FaultDelay:
			f.stats.delayed.Add(1)
			d := time.Millisecond
			if f.cfg.MaxDelay > d {
				d += time.Duration(f.rng.Int64N(int64(f.cfg.MaxDelay - d)))
			}
			later = append(later, delayed{pk: pk, after: d})
		default:
			now = append(now, pk)
		}
	}
	if phantom {
		f.stats.phantomSends.Add(1)
		err = fmt.Errorf("send to %d (delivered): %w", dest, ErrInjected)
	}
	return now, later, phantom, err
}

func (f *Faulty) later(ds []delayed, deliver func(*Packet)) {
	for _, d := range ds {
		f.pending.Add(1)
		time.AfterFunc(d.after, func() {
			defer f.pending.Done()
			deliver(d.pk)
		})
	}
}

// SendToPartition sends packets through the faults.
func (f *Faulty) SendToPartition(partition int, packets ...*Packet) error {
	now, later, _, err := f.plan(partition, packets)
	if now == nil && later == nil {
		return err
	}
	f.later(later, func(pk *Packet) { _ = f.inner.SendToPartition(partition, pk) })
	if len(now) > 0 {
		if ierr := f.inner.SendToPartition(partition, now...); ierr != nil {
			return ierr
		}
	}
	return err
}

// ReceivePartition receives, failing as configured.
func (f *Faulty) ReceivePartition(ctx context.Context, partition int, from uint64) ([]*Packet, uint64, error) {
	if f.failReceives.Load() > 0 && f.failReceives.Add(-1) >= 0 {
		f.stats.failedReceives.Add(1)
		return nil, from, fmt.Errorf("receive from partition %d: %w", partition, ErrInjected)
	}
	if f.cfg.ReceiveFailRate > 0 {
		f.mu.Lock()
		fail := f.rng.Float64() < f.cfg.ReceiveFailRate
		f.mu.Unlock()
		if fail {
			f.stats.failedReceives.Add(1)
			return nil, from, fmt.Errorf("receive from partition %d: %w", partition, ErrInjected)
		}
	}
	return f.inner.ReceivePartition(ctx, partition, from)
}

// TrimPartition passes through.
func (f *Faulty) TrimPartition(partition int, upTo uint64) { f.inner.TrimPartition(partition, upTo) }

// SendToClient sends responses, through the faults if Clients is set.
func (f *Faulty) SendToClient(clientID string, packets ...*Packet) error {
	now, later, _, err := f.plan(-1, packets)
	if now == nil && later == nil {
		return err
	}
	f.later(later, func(pk *Packet) { _ = f.inner.SendToClient(clientID, pk) })
	if len(now) > 0 {
		if ierr := f.inner.SendToClient(clientID, now...); ierr != nil {
			return ierr
		}
	}
	return err
}

// ListenClient passes through.
func (f *Faulty) ListenClient(clientID string) (<-chan *Packet, func(), error) {
	return f.inner.ListenClient(clientID)
}

// SendToLoadMonitor passes through.
func (f *Faulty) SendToLoadMonitor(packets ...*Packet) error {
	return f.inner.SendToLoadMonitor(packets...)
}

// PartitionCount passes through.
func (f *Faulty) PartitionCount() int { return f.inner.PartitionCount() }

// CarriesSpeculation says whether the wrapped transport carries
// speculative batches and confirmations: the faults never alter a packet.
func (f *Faulty) CarriesSpeculation() bool {
	c, ok := f.inner.(interface{ CarriesSpeculation() bool })
	return ok && c.CarriesSpeculation()
}
