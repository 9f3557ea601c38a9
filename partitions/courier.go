package partitions

import (
	"slices"
	"sort"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// Courier decides what a partition sends to other partitions and to
// clients, and when: batches whose step is durable, resends of batches not
// acknowledged in time or asked for again, acks of what was durably
// applied, requests to resend after a gap, and client responses (DESIGN
// §4.6). It does no I/O and reads no clock: the runtime (or a simulation
// with a virtual clock) feeds it what happened and the time, performs the
// sends Ready returns, and reports each outcome with Result. Only one
// goroutine may use it.
//
// Per destination partition it keeps the durable batches not yet
// acknowledged; a send that fails is retried with exponential backoff,
// batches sent but not acknowledged within ResendAfter are sent again
// (covering lost batches and lost acks), and a resend request rewinds to
// the position the receiver asks for. Acks only ever carry durable dedup
// marks, so none promises what a crash could lose.
//
// Under global speculation the courier is also handed batches whose step
// is not yet durable: it sends them tagged with the current incarnation
// (transport.Packet.SpecEpoch) and confirms, on the sends that follow,
// how far the partition's steps became durable (transport.Confirm); and
// it asks the origins this partition waits on for their confirmations.
type Courier struct {
	cfg     CourierConfig
	links   []*link // by partition
	clients map[string]*clientQueue
	stats   CourierStats
	// epochs and durable are this partition's incarnations and durable
	// position (SetEpochs, SetDurable): what a Confirm says.
	epochs  []uint64
	durable uint64
}

// CourierConfig tunes a Courier. Zero fields take the defaults.
type CourierConfig struct {
	// Self is the partition the courier sends for.
	Self int
	// Count is the number of partitions.
	Count int
	// AckDelay is how long an ack may wait, to cover more batches
	// (default 20 ms).
	AckDelay time.Duration
	// ResendAfter is the least time a sent batch may go unacknowledged
	// before it is sent again (default 100 ms); the timeout follows the
	// acks' round trip (smoothed, plus four times its variation) when that
	// is longer, and doubles while nothing is acknowledged, up to
	// MaxResendAfter (default 8 s). ResendAfter also spaces resend
	// requests for the same gap.
	ResendAfter    time.Duration
	MaxResendAfter time.Duration
	// RetryMin and RetryMax bound the backoff after a failed send
	// (defaults 5 ms and 2 s).
	RetryMin, RetryMax time.Duration
	// ResponseTTL is how long a client response is retried before it is
	// dropped: the client has probably gone (default 1 min).
	ResponseTTL time.Duration
}

func (c *CourierConfig) normalize() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AckDelay, 20*time.Millisecond)
	def(&c.ResendAfter, 100*time.Millisecond)
	def(&c.MaxResendAfter, 8*time.Second)
	def(&c.RetryMin, 5*time.Millisecond)
	def(&c.RetryMax, 2*time.Second)
	def(&c.ResponseTTL, time.Minute)
	if c.MaxResendAfter < c.ResendAfter {
		c.MaxResendAfter = c.ResendAfter
	}
}

// CourierStats counts what a courier did.
type CourierStats struct {
	// Failures counts sends that failed (each is retried).
	Failures int64
	// Resent counts batches sent again (after a timeout or a request).
	Resent int64
	// ResendRequests counts requests sent after gaps.
	ResendRequests int64
	// Reacks counts acks sent again for duplicates.
	Reacks int64
	// DroppedResponses counts client responses given up.
	DroppedResponses int64
}

// Send is one send the runtime must perform: packets to a partition
// (Client empty) or to a client.
type Send struct {
	Partition int
	Client    string
	Packets   []*transport.Packet

	upTo      uint64 // highest batch position in Packets (0: none)
	specUpTo  uint64 // highest speculative batch position in Packets
	confirm   uint64 // durable position confirmed in Packets (0: none)
	ask       bool   // Packets ask for a confirmation
	ack       uint64 // ack in Packets (0: none)
	resend    bool
	responses int
}

type link struct {
	// As the sender to this partition.
	pending  []*OutboxBatch // durable, unacknowledged, by position
	acked    uint64
	sentUpTo uint64 // pending batches up to here were sent since the last rewind
	maxSent  uint64 // the highest position ever sent
	sentAt   time.Time
	resendIn time.Duration
	// Round-trip estimate (as TCP's): first transmissions not yet acked,
	// and the smoothed ack delay and its variation; 0 before a sample.
	probes []probe
	srtt   time.Duration
	rttvar time.Duration
	// As the receiver from this partition.
	durable  uint64 // durable dedup mark
	ackSent  uint64
	reack    bool
	ackAt    time.Time // when the wanted ack may go
	gapDue   bool
	gapAfter uint64
	gapAt    time.Time // when the last resend request went
	// Retries of failed sends.
	retryAt time.Time
	backoff time.Duration
	// Global speculation, as the sender: the highest position sent
	// before it was durable, the durable position last confirmed, and
	// whether the receiver asked for a confirmation. As the receiver:
	// whether this partition waits on the origin's confirmation, and when
	// it last asked for one.
	specMax     uint64
	confirmSent uint64
	confirmWant bool
	waiting     bool
	askedAt     time.Time
}

type probe struct {
	pos uint64
	at  time.Time
}

type clientQueue struct {
	items    []*transport.ClientResponse
	failedAt time.Time // first failure of the current streak
	retryAt  time.Time
	backoff  time.Duration
}

// NewCourier returns a courier for partition cfg.Self of cfg.Count.
func NewCourier(cfg CourierConfig) *Courier {
	cfg.normalize()
	c := &Courier{cfg: cfg, clients: map[string]*clientQueue{}}
	for i := 0; i < cfg.Count; i++ {
		c.links = append(c.links, &link{resendIn: cfg.ResendAfter})
	}
	return c
}

// Stats returns the counters.
func (c *Courier) Stats() CourierStats { return c.stats }

func (c *Courier) link(p int) *link {
	if p < 0 || p >= len(c.links) {
		return nil
	}
	return c.links[p]
}

// Durable hands over batches whose step is durable. Batches already known
// or acknowledged are ignored, so the outbox can be handed over again
// after recovery.
func (c *Courier) Durable(batches ...*OutboxBatch) {
	for _, b := range batches {
		c.durable = max(c.durable, b.Pos) // the log is durable up to a durable step
	}
	c.add(batches)
}

// Speculative hands over batches whose step is not yet durable (global
// speculation): they are sent tagged with the current incarnation, which
// SetEpochs must have told.
func (c *Courier) Speculative(batches ...*OutboxBatch) { c.add(batches) }

func (c *Courier) add(batches []*OutboxBatch) {
	for _, b := range batches {
		l := c.link(b.Dest)
		if l == nil || b.Pos <= l.acked {
			continue
		}
		n := len(l.pending)
		if n == 0 || l.pending[n-1].Pos < b.Pos {
			l.pending = append(l.pending, b)
			continue
		}
		i := sort.Search(n, func(i int) bool { return l.pending[i].Pos >= b.Pos })
		if l.pending[i].Pos != b.Pos {
			l.pending = slices.Insert(l.pending, i, b)
			if b.Pos <= l.sentUpTo {
				l.sentUpTo = b.Pos - 1 // not sent yet
			}
		}
	}
}

// SetEpochs tells the partition's incarnations (State.Epochs), for the
// confirmations it sends.
func (c *Courier) SetEpochs(epochs []uint64) {
	c.epochs = slices.Clone(epochs)
}

// SetDurable tells how far the partition's log is durable: batches
// handed over beyond it are speculative, and receivers of speculative
// batches are told once it passes them.
func (c *Courier) SetDurable(pos uint64) {
	c.durable = max(c.durable, pos)
}

// ConfirmWanted takes a request from partition p for a confirmation.
func (c *Courier) ConfirmWanted(p int) {
	if l := c.link(p); l != nil {
		l.confirmWant = true
	}
}

// WaitOn says which origins this partition waits on for confirmations
// (SpecDeps.Waiting): they are asked once per ResendAfter, in case their
// confirmation was lost.
func (c *Courier) WaitOn(origins []int, now time.Time) {
	for p, l := range c.links {
		w := slices.Contains(origins, p)
		if w && !l.waiting {
			l.askedAt = now // their own confirmation is due first
		}
		l.waiting = w
	}
}

// confirmDue reports whether l's partition is due a confirmation.
func (c *Courier) confirmDue(l *link) bool {
	return len(c.epochs) > 0 && (l.confirmWant || (l.specMax > l.confirmSent && c.durable > l.confirmSent))
}

func (c *Courier) askDue(l *link, now time.Time) bool {
	return l.waiting && !now.Before(l.askedAt.Add(c.cfg.ResendAfter))
}

// confirmPacket is this partition's confirmation.
func (c *Courier) confirmPacket(want bool) *transport.Packet {
	epochs := c.epochs
	if len(epochs) > 8 {
		epochs = epochs[len(epochs)-8:]
	}
	return &transport.Packet{Confirm: &transport.Confirm{From: c.cfg.Self, Epochs: slices.Clone(epochs), Durable: c.durable, Want: want}}
}

// Acked takes an acknowledgement from dest: it durably applied our
// batches up to upTo.
func (c *Courier) Acked(dest int, upTo uint64, now time.Time) {
	l := c.link(dest)
	if l == nil || upTo <= l.acked {
		return
	}
	l.acked = upTo
	n := 0
	for n < len(l.pending) && l.pending[n].Pos <= upTo {
		n++
	}
	clear(l.pending[:n])
	l.pending = l.pending[n:]
	l.sentUpTo = max(l.sentUpTo, upTo)
	// A round-trip sample from the newest first transmission acked.
	n = 0
	var sample time.Duration
	for n < len(l.probes) && l.probes[n].pos <= upTo {
		sample = now.Sub(l.probes[n].at)
		n++
	}
	l.probes = l.probes[n:]
	if n > 0 {
		if l.srtt == 0 {
			l.srtt, l.rttvar = sample, sample/2
		} else {
			d := l.srtt - sample
			if d < 0 {
				d = -d
			}
			l.rttvar = (3*l.rttvar + d) / 4
			l.srtt = (7*l.srtt + sample) / 8
		}
		l.resendIn = c.timeout(l)
	}
	// Progress: the timeout for the rest starts over (backed off until a
	// sample says how long acks take).
	l.sentAt = now
}

// timeout is how long sent batches may wait for an ack: the round trip
// seen so far with its variation (so a receiver that lags behind is not
// flooded with resends), at least ResendAfter.
func (c *Courier) timeout(l *link) time.Duration {
	return min(max(c.cfg.ResendAfter, l.srtt+4*l.rttvar), c.cfg.MaxResendAfter)
}

// ResendRequested takes a request from dest to resend what follows after.
func (c *Courier) ResendRequested(dest int, after uint64) {
	l := c.link(dest)
	if l == nil {
		return
	}
	if after < l.sentUpTo {
		l.sentUpTo = max(after, l.acked)
		l.probes = l.probes[:0]
	}
}

// DurableMark says that what origin sent up to pos is durably applied
// here: an ack is due.
func (c *Courier) DurableMark(origin int, pos uint64, now time.Time) {
	l := c.link(origin)
	if l == nil || pos <= l.durable {
		return
	}
	if !c.ackWanted(l) {
		l.ackAt = now.Add(c.cfg.AckDelay)
	}
	l.durable = pos
}

// Duplicate says that origin sent a batch already applied: its ack may
// have been lost, so the durable mark is acknowledged again.
func (c *Courier) Duplicate(origin int, now time.Time) {
	l := c.link(origin)
	if l == nil || l.reack {
		return
	}
	if !c.ackWanted(l) {
		l.ackAt = now.Add(c.cfg.AckDelay)
	}
	l.reack = true
}

// Gap says that origin sent a batch whose predecessor was not applied
// here; mark is what was applied from it. The origin is asked to resend
// after mark, at most once per ResendAfter for the same mark.
func (c *Courier) Gap(origin int, mark uint64, now time.Time) {
	l := c.link(origin)
	if l == nil {
		return
	}
	if !l.gapDue && mark == l.gapAfter && !l.gapAt.IsZero() && now.Before(l.gapAt.Add(c.cfg.ResendAfter)) {
		return
	}
	l.gapDue, l.gapAfter = true, mark
}

// Observe takes what applying an event reported that concerns the
// courier at once: duplicates (re-ack), gaps (resend request) and acks.
// The rest waits for durability: batches (Durable), applied marks
// (DurableMark) and responses (Respond).
func (c *Courier) Observe(fx *Effects, now time.Time) {
	for _, o := range fx.Duplicates {
		c.Duplicate(o, now)
	}
	for _, g := range fx.Gaps {
		c.Gap(g.Origin, g.Pos, now)
	}
	for _, a := range fx.Acks {
		c.Acked(a.Origin, a.Pos, now)
	}
}

// Respond queues a response to a client.
func (c *Courier) Respond(clientID string, r *transport.ClientResponse) {
	q := c.clients[clientID]
	if q == nil {
		q = &clientQueue{}
		c.clients[clientID] = q
	}
	q.items = append(q.items, r)
}

func (c *Courier) ackWanted(l *link) bool {
	return l.durable > 0 && (l.durable > l.ackSent || l.reack)
}

// Ready returns the sends due at now. Each must be performed and its
// outcome reported with Result before Ready is called again.
func (c *Courier) Ready(now time.Time) []Send {
	var out []Send
	for dest, l := range c.links {
		if now.Before(l.retryAt) {
			continue
		}
		s := Send{Partition: dest}
		if c.confirmDue(l) || c.askDue(l, now) {
			// First, so that it arrives with (or before) the batches.
			s.ask = c.askDue(l, now)
			s.confirm = c.durable
			s.Packets = append(s.Packets, c.confirmPacket(s.ask))

		}
		if l.sentUpTo > l.acked && len(l.pending) > 0 && !now.Before(l.sentAt.Add(l.resendIn)) {
			// Nothing acknowledged in time: send everything again. Acks
			// of resent batches give no round-trip samples (ambiguous).
			l.sentUpTo = l.acked
			l.probes = l.probes[:0]
			l.resendIn = min(2*l.resendIn, c.cfg.MaxResendAfter)
		}
		first := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].Pos > l.sentUpTo })
		for _, b := range l.pending[first:] {
			pk := &transport.Packet{Messages: &transport.MessageBatch{
				Origin: c.cfg.Self, OriginPos: b.Pos, Prev: b.Prev, Messages: b.Messages}}
			if b.Pos > c.durable {
				// Not durable yet: a step of the current incarnation.
				if len(c.epochs) == 0 {
					break // no incarnation to name it by: it waits
				}
				pk.SpecEpoch = c.epochs[len(c.epochs)-1]
				s.specUpTo = b.Pos
			}
			s.Packets = append(s.Packets, pk)
			s.upTo = b.Pos
		}
		if c.ackWanted(l) && !now.Before(l.ackAt) {
			s.ack = l.durable
			s.Packets = append(s.Packets, &transport.Packet{Ack: &transport.Ack{From: c.cfg.Self, UpTo: l.durable}})
		}
		if l.gapDue {
			s.resend = true
			s.Packets = append(s.Packets, &transport.Packet{Resend: &transport.ResendRequest{From: c.cfg.Self, After: l.gapAfter}})
		}
		if len(s.Packets) > 0 {
			out = append(out, s)
		}
	}
	if len(c.clients) > 0 {
		ids := make([]string, 0, len(c.clients))
		for id := range c.clients {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			q := c.clients[id]
			if now.Before(q.retryAt) {
				continue
			}
			s := Send{Partition: -1, Client: id, responses: len(q.items)}
			for _, r := range q.items {
				s.Packets = append(s.Packets, &transport.Packet{Response: r})
			}
			out = append(out, s)
		}
	}
	return out
}

// Result reports the outcome of a send Ready returned.
func (c *Courier) Result(s Send, err error, now time.Time) {
	if s.Client != "" {
		q := c.clients[s.Client]
		if q == nil {
			return
		}
		if err == nil {
			q.items = q.items[s.responses:]
			if len(q.items) == 0 {
				delete(c.clients, s.Client)
			} else {
				q.failedAt, q.backoff = time.Time{}, 0
			}
			return
		}
		c.stats.Failures++
		if q.failedAt.IsZero() {
			q.failedAt = now
		}
		if now.Sub(q.failedAt) >= c.cfg.ResponseTTL {
			c.stats.DroppedResponses += int64(s.responses)
			q.items = q.items[s.responses:]
			if len(q.items) == 0 {
				delete(c.clients, s.Client)
				return
			}
		}
		q.backoff = c.nextBackoff(q.backoff)
		q.retryAt = now.Add(q.backoff)
		return
	}
	l := c.link(s.Partition)
	if l == nil {
		return
	}
	if err != nil {
		c.stats.Failures++
		l.backoff = c.nextBackoff(l.backoff)
		l.retryAt = now.Add(l.backoff)
		return
	}
	l.backoff, l.retryAt = 0, time.Time{}
	l.specMax = max(l.specMax, s.specUpTo)
	if s.confirm > 0 || s.ask {
		l.confirmSent = max(l.confirmSent, s.confirm)
		l.confirmWant = false
	}
	if s.ask {
		l.askedAt = now
	}
	if s.upTo > 0 {
		if s.upTo > l.sentUpTo {
			c.stats.Resent += int64(countBetween(l.pending, l.sentUpTo, min(s.upTo, l.maxSent)))
			l.sentUpTo = s.upTo
		}
		if s.upTo > l.maxSent {
			l.probes = append(l.probes, probe{pos: s.upTo, at: now})
		}
		l.maxSent = max(l.maxSent, s.upTo)
		l.sentAt = now
	}
	if s.ack > 0 {
		if l.reack && s.ack <= l.ackSent {
			c.stats.Reacks++
		}
		l.ackSent = max(l.ackSent, s.ack)
		l.reack = false
	}
	if s.resend {
		c.stats.ResendRequests++
		l.gapDue, l.gapAt = false, now
	}
}

func (c *Courier) nextBackoff(b time.Duration) time.Duration {
	if b == 0 {
		return c.cfg.RetryMin
	}
	return min(2*b, c.cfg.RetryMax)
}

// Next returns when Ready may next have something to send (the zero time
// if nothing is waiting); now if it has something now.
func (c *Courier) Next(now time.Time) time.Time {
	var next time.Time
	at := func(t time.Time) {
		if t.Before(now) {
			t = now
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, l := range c.links {
		wants := false
		if len(l.pending) > 0 {
			if l.pending[len(l.pending)-1].Pos > l.sentUpTo {
				wants = true
			} else if due := l.sentAt.Add(l.resendIn); due.After(l.retryAt) {
				at(due)
			} else {
				// Due, but the link backs off after a failed send: Ready
				// sends nothing before then (waking sooner would spin).
				at(l.retryAt)
			}
		}
		if c.ackWanted(l) {
			if l.retryAt.After(l.ackAt) {
				at(l.retryAt)
			} else {
				at(l.ackAt)
			}
		}
		if l.gapDue || c.confirmDue(l) {
			wants = true
		}
		if l.waiting {
			t := l.askedAt.Add(c.cfg.ResendAfter)
			if l.retryAt.After(t) {
				t = l.retryAt
			}
			at(t)
		}
		if wants {
			at(l.retryAt)
		}
	}
	for _, q := range c.clients {
		at(q.retryAt)
	}
	return next
}

// Unacked returns how many durable batches wait for an acknowledgement.
func (c *Courier) Unacked() int {
	n := 0
	for _, l := range c.links {
		n += len(l.pending)
	}
	return n
}

// countBetween counts the batches with positions in (from, to].
func countBetween(bs []*OutboxBatch, from, to uint64) int {
	n := 0
	for _, b := range bs {
		if b.Pos > from && b.Pos <= to {
			n++
		}
	}
	return n
}
