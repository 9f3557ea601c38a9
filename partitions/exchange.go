package partitions

import (
	"sort"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// exchange decides what a partition sends to the other partitions, and
// when: its outbox batches until they are acknowledged, acks of what it
// durably applied, and resend requests when it sees a gap. It does no I/O
// and reads no clock, in the style of etcd-io/raft: the runtime (or a
// simulation with a virtual clock) tells it what happened and the time,
// performs the sends Tick returns, and reports each result with OnSent.
//
// The rules (DESIGN §4.6):
//   - a batch is sent once its step is durable, and again after a resend
//     request or when no ack came within the resend timeout (which doubles
//     while no ack comes); it leaves the exchange only when acknowledged;
//   - a failed send is retried after a backoff (per destination);
//   - an ack carries the durable dedup mark only, so a crash loses none:
//     after recovery every origin's mark is acknowledged; a duplicate is
//     acknowledged again; a failed ack is retried;
//   - a gap asks the origin to resend after the mark, at most once per
//     resend timeout for the same mark.
type exchange struct {
	self    int
	cfg     exchangeConfig
	durable uint64
	// pending holds batches whose step is not durable yet, by position.
	pending []*OutboxBatch
	// applied holds received batches applied but not yet durable, by
	// commit position.
	applied []receivedMark
	peers   map[int]*peer
	nextAck time.Time
}

// exchangeConfig holds the exchange's timings.
type exchangeConfig struct {
	// AckInterval spaces acks out: they go at most this often.
	AckInterval time.Duration
	// ResendTimeout is how long sent batches wait for an ack before they
	// are sent again; it doubles while no ack comes, up to MaxResend.
	ResendTimeout time.Duration
	MaxResend     time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed send.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxBatchesPerSend caps the batches of one Send.
	MaxBatchesPerSend int
}

func (c *exchangeConfig) normalize() {
	if c.AckInterval <= 0 {
		c.AckInterval = 50 * time.Millisecond
	}
	if c.ResendTimeout <= 0 {
		c.ResendTimeout = time.Second
	}
	if c.MaxResend < c.ResendTimeout {
		c.MaxResend = 16 * c.ResendTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 10 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = 2 * time.Second
	}
	if c.MaxBatchesPerSend <= 0 {
		c.MaxBatchesPerSend = 256
	}
}

// peer is what the exchange knows of one other partition, both as a
// destination and as an origin. All packets to it share one backoff.
type peer struct {
	// As a destination.
	batches  []*OutboxBatch // durable and unacknowledged, by position
	sentUpTo uint64         // batches up to here were sent and await an ack
	deadline time.Time      // when sent batches are sent again; zero if unset
	rearm    bool           // set deadline at the next Tick (after an ack)
	timeout  time.Duration  // the current resend timeout
	retryAt  time.Time      // after a failed send, nothing goes before this
	backoff  time.Duration

	// As an origin.
	mark            uint64 // durable dedup mark: what acks carry
	ackSent         uint64 // the highest mark an ack delivered
	reack           bool   // a duplicate came: ack even if already acked
	resendDue       bool
	resendAfter     uint64
	resendSentAt    time.Time
	resendSentAfter uint64
}

// Send is one transport send to one partition: batches (in position
// order), then an ack, then a resend request.
type Send struct {
	Dest    int
	Batches []*OutboxBatch
	Ack     *transport.Ack
	Resend  *transport.ResendRequest
}

// Packets turns a send from partition origin into transport packets.
func (s Send) Packets(origin int) []*transport.Packet {
	ps := make([]*transport.Packet, 0, len(s.Batches)+2)
	for _, b := range s.Batches {
		ps = append(ps, &transport.Packet{Messages: &transport.MessageBatch{
			Origin: origin, OriginPos: b.Pos, Prev: b.Prev, Messages: b.Messages}})
	}
	if s.Ack != nil {
		ps = append(ps, &transport.Packet{Ack: s.Ack})
	}
	if s.Resend != nil {
		ps = append(ps, &transport.Packet{Resend: s.Resend})
	}
	return ps
}

// newExchange returns the exchange of partition self whose state is
// durable up to position durable, with the given dedup marks (all
// durable: a recovered state): every origin's mark is acknowledged.
func newExchange(self int, cfg exchangeConfig, durable uint64, marks map[int]DedupMark) *exchange {
	cfg.normalize()
	e := &exchange{self: self, cfg: cfg, durable: durable, peers: map[int]*peer{}}
	for o, m := range marks {
		if m.Pos > 0 {
			p := e.peer(o)
			p.mark, p.reack = m.Pos, true
		}
	}
	return e
}

func (e *exchange) peer(n int) *peer {
	p := e.peers[n]
	if p == nil {
		p = &peer{timeout: e.cfg.ResendTimeout}
		e.peers[n] = p
	}
	return p
}

// OnOutbox takes new outbox batches (from Effects.Outbox), in position
// order; they are sent once their step is durable.
func (e *exchange) OnOutbox(batches []*OutboxBatch) {
	for _, b := range batches {
		if b.Pos <= e.durable {
			e.peer(b.Dest).add(b)
		} else {
			e.pending = append(e.pending, b)
		}
	}
}

func (p *peer) add(b *OutboxBatch) {
	if n := len(p.batches); n > 0 && p.batches[n-1].Pos >= b.Pos {
		// Already held (a recovery re-listing the outbox); keep order.
		i := sort.Search(n, func(i int) bool { return p.batches[i].Pos >= b.Pos })
		if p.batches[i].Pos == b.Pos {
			return
		}
		p.batches = append(p.batches, nil)
		copy(p.batches[i+1:], p.batches[i:])
		p.batches[i] = b
		return
	}
	p.batches = append(p.batches, b)
}

// OnApplied notes that the event at commit position commitPos applied the
// batch at originPos from origin (Effects.Received); it is acknowledged
// once durable.
func (e *exchange) OnApplied(commitPos uint64, origin int, originPos uint64) {
	if commitPos <= e.durable {
		e.markDurable(origin, originPos)
		return
	}
	e.applied = append(e.applied, receivedMark{commitPos: commitPos, origin: origin, originPos: originPos})
}

func (e *exchange) markDurable(origin int, originPos uint64) {
	p := e.peer(origin)
	if originPos > p.mark {
		p.mark = originPos
	}
}

// OnDuplicate notes a batch from origin at or below its mark: the origin
// did not get the ack, so it is acknowledged again.
func (e *exchange) OnDuplicate(origin int) { e.peer(origin).reack = true }

// OnGap notes a batch from origin that skips one after the mark after:
// the origin is asked to resend from there.
func (e *exchange) OnGap(origin int, after uint64) {
	p := e.peer(origin)
	p.resendDue, p.resendAfter = true, after
}

// OnDurable notes that the commit log is durable up to pos.
func (e *exchange) OnDurable(pos uint64) {
	if pos <= e.durable {
		return
	}
	e.durable = pos
	n := 0
	for n < len(e.pending) && e.pending[n].Pos <= pos {
		e.peer(e.pending[n].Dest).add(e.pending[n])
		n++
	}
	clear(e.pending[:n])
	e.pending = e.pending[n:]
	n = 0
	for n < len(e.applied) && e.applied[n].commitPos <= pos {
		e.markDurable(e.applied[n].origin, e.applied[n].originPos)
		n++
	}
	e.applied = e.applied[n:]
}

// OnAck notes that partition from durably applied our batches up to upTo.
func (e *exchange) OnAck(from int, upTo uint64) {
	p := e.peer(from)
	n := 0
	for n < len(p.batches) && p.batches[n].Pos <= upTo {
		n++
	}
	if n == 0 {
		return
	}
	clear(p.batches[:n])
	p.batches = p.batches[n:]
	// Progress: the receiver is alive; wait a full timeout again.
	p.timeout = e.cfg.ResendTimeout
	p.deadline = time.Time{}
	p.rearm = len(p.batches) > 0 && p.batches[0].Pos <= p.sentUpTo
}

// OnResendRequest notes that partition from saw a gap after its mark
// after: our batches for it after that position are sent again.
func (e *exchange) OnResendRequest(from int, after uint64) {
	p := e.peer(from)
	if after < p.sentUpTo {
		p.sentUpTo = after
	}
}

// Unacked returns the number of batches not yet acknowledged (including
// those not yet durable).
func (e *exchange) Unacked() int {
	n := len(e.pending)
	for _, p := range e.peers {
		n += len(p.batches)
	}
	return n
}

// firstUnsent returns the index of the first batch not sent.
func (p *peer) firstUnsent() int {
	return sort.Search(len(p.batches), func(i int) bool { return p.batches[i].Pos > p.sentUpTo })
}

// Tick returns what is due at time now: at most one Send per
// destination, in destination order. Each must be reported with OnSent;
// after a successful send Tick may return more (the next chunk).
func (e *exchange) Tick(now time.Time) []Send {
	acksNow := !now.Before(e.nextAck)
	ackSent := false
	var out []Send
	for _, d := range e.sortedPeers() {
		p := e.peers[d]
		if now.Before(p.retryAt) {
			continue
		}
		if p.rearm {
			p.deadline, p.rearm = now.Add(p.timeout), false
		}
		if len(p.batches) > 0 && !p.deadline.IsZero() && !now.Before(p.deadline) {
			// No ack in time: the batches or the ack were lost.
			p.sentUpTo, p.deadline = 0, time.Time{}
			p.timeout = min(2*p.timeout, e.cfg.MaxResend)
		}
		s := Send{Dest: d}
		if i := p.firstUnsent(); i < len(p.batches) {
			j := min(len(p.batches), i+e.cfg.MaxBatchesPerSend)
			s.Batches = append([]*OutboxBatch(nil), p.batches[i:j]...)
		}
		if acksNow && p.mark > 0 && (p.mark > p.ackSent || p.reack) {
			s.Ack = &transport.Ack{From: e.self, UpTo: p.mark}
			ackSent = true
		}
		if p.resendDue {
			if p.resendAfter == p.resendSentAfter && !p.resendSentAt.IsZero() &&
				now.Before(p.resendSentAt.Add(e.cfg.ResendTimeout)) {
				p.resendDue = false // asked recently; the origin's timeout covers the rest
			} else {
				s.Resend = &transport.ResendRequest{From: e.self, After: p.resendAfter}
			}
		}
		if s.Batches != nil || s.Ack != nil || s.Resend != nil {
			out = append(out, s)
		}
	}
	if ackSent {
		e.nextAck = now.Add(e.cfg.AckInterval)
	}
	return out
}

// OnSent reports the result of a Send that Tick returned.
func (e *exchange) OnSent(s Send, err error, now time.Time) {
	p := e.peer(s.Dest)
	if err != nil {
		p.backoff = min(max(2*p.backoff, e.cfg.MinBackoff), e.cfg.MaxBackoff)
		p.retryAt = now.Add(p.backoff)
		return
	}
	p.backoff, p.retryAt = 0, time.Time{}
	if n := len(s.Batches); n > 0 {
		// Only a send that starts at or before the first unsent batch
		// covers everything up to its last one.
		i := p.firstUnsent()
		if i < len(p.batches) && s.Batches[0].Pos <= p.batches[i].Pos && s.Batches[n-1].Pos > p.sentUpTo {
			p.sentUpTo = s.Batches[n-1].Pos
		}
		if p.deadline.IsZero() {
			p.deadline = now.Add(p.timeout)
		}
	}
	if s.Ack != nil {
		if s.Ack.UpTo > p.ackSent {
			p.ackSent = s.Ack.UpTo
		}
		if s.Ack.UpTo >= p.mark {
			p.reack = false
		}
	}
	if s.Resend != nil {
		p.resendSentAt, p.resendSentAfter = now, s.Resend.After
		if p.resendAfter == s.Resend.After {
			p.resendDue = false
		}
	}
}

// Next returns the earliest time at which Tick may return something, or
// the zero time if nothing is due until something happens. For a
// simulation's virtual clock.
func (e *exchange) Next(now time.Time) time.Time {
	var next time.Time
	at := func(t time.Time) {
		if t.Before(now) {
			t = now
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, p := range e.peers {
		ackDue := p.mark > 0 && (p.mark > p.ackSent || p.reack)
		busy := p.firstUnsent() < len(p.batches) || ackDue || p.resendDue || p.rearm ||
			(len(p.batches) > 0 && !p.deadline.IsZero())
		if !busy {
			continue
		}
		if now.Before(p.retryAt) {
			at(p.retryAt)
			continue
		}
		switch {
		case p.firstUnsent() < len(p.batches) || p.resendDue || p.rearm:
			at(now)
		case ackDue:
			at(e.nextAck)
		default:
			at(p.deadline)
		}
		if ackDue {
			at(e.nextAck)
		}
	}
	return next
}

func (e *exchange) sortedPeers() []int {
	ds := make([]int, 0, len(e.peers))
	for d := range e.peers {
		ds = append(ds, d)
	}
	sort.Ints(ds)
	return ds
}
