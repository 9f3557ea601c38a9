package loadmonitor

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// Config tunes a Monitor. Zero durations and numbers take the defaults
// given with each field.
type Config struct {
	// Partitions is the partition count of the task hub.
	Partitions int
	// Self is the id of the host running this monitor (Record.Monitor).
	Self string
	// HostTimeout: a host that has not reported for this long is dead
	// (default 10 s).
	HostTimeout time.Duration
	// ForgetAfter: a host that has not reported for this long is dropped
	// from Record.Hosts (default 6 × HostTimeout).
	ForgetAfter time.Duration
	// ResumeWindow: when the monitor resumes from a record written less
	// than this long before its first reading of the clock, the hosts the
	// record calls live stay live for one HostTimeout from then, so that a
	// monitor moving to another host does not reshuffle the partitions
	// while the hosts' reports find it (default 1 min). An older record's
	// hosts must report again to count.
	ResumeWindow time.Duration

	// Load balancing (after counts): the most loaded host gives a partition
	// to (or swaps one with) the least loaded one only when the most
	// loaded host's load (events/s) is at least MinLoad (default 20), at
	// least LoadRatio times the least loaded one's (default 1.5), the move
	// closes at least a quarter of the gap, and all of this has held for
	// LoadDelay (default 30 s); load moves are at least LoadDelay apart.
	MinLoad   float64
	LoadRatio float64
	LoadDelay time.Duration

	// Scale recommendation (doc/scaling.md).
	// TimerHorizon: a timer due within it keeps one host (default 1 min).
	TimerHorizon time.Duration
	// BacklogPerHost: the backlog (work items + activities + unread input)
	// one host is expected to absorb; more asks for more hosts
	// (default 500).
	BacklogPerHost int
	// ScaleDownDelay: the recommendation falls (other than to 0 when idle
	// or to 1 for a timer) only when it has not changed for this long, and
	// by one host at a time (default 30 s).
	ScaleDownDelay time.Duration
	// IdlePeriods: a partition is idle when its newest IdlePeriods trend
	// letters are all I (default TrendLength).
	IdlePeriods int
}

func (c *Config) setDefaults() error {
	if c.Partitions < 1 {
		return fmt.Errorf("loadmonitor: config: %d partitions (want at least 1)", c.Partitions)
	}
	if c.Self == "" {
		return errors.New("loadmonitor: config: Self (the monitor's host id) is empty")
	}
	def := func(d *time.Duration, v time.Duration, name string) error {
		if *d < 0 {
			return fmt.Errorf("loadmonitor: config: %s is negative (%v)", name, *d)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	if err := def(&c.HostTimeout, 10*time.Second, "HostTimeout"); err != nil {
		return err
	}
	if err := def(&c.ForgetAfter, 6*c.HostTimeout, "ForgetAfter"); err != nil {
		return err
	}
	if err := def(&c.ResumeWindow, time.Minute, "ResumeWindow"); err != nil {
		return err
	}
	if err := def(&c.LoadDelay, 30*time.Second, "LoadDelay"); err != nil {
		return err
	}
	if err := def(&c.TimerHorizon, DefaultTimerHorizon, "TimerHorizon"); err != nil {
		return err
	}
	if err := def(&c.ScaleDownDelay, 30*time.Second, "ScaleDownDelay"); err != nil {
		return err
	}
	if c.MinLoad < 0 || c.LoadRatio < 0 || c.BacklogPerHost < 0 || c.IdlePeriods < 0 {
		return errors.New("loadmonitor: config: MinLoad, LoadRatio, BacklogPerHost and IdlePeriods must not be negative")
	}
	if c.MinLoad == 0 {
		c.MinLoad = 20
	}
	if c.LoadRatio == 0 {
		c.LoadRatio = 1.5
	}
	if c.LoadRatio < 1 {
		return fmt.Errorf("loadmonitor: config: LoadRatio %v is below 1", c.LoadRatio)
	}
	if c.BacklogPerHost == 0 {
		c.BacklogPerHost = 500
	}
	if c.IdlePeriods == 0 {
		c.IdlePeriods = TrendLength
	}
	if c.ForgetAfter < c.HostTimeout {
		return fmt.Errorf("loadmonitor: config: ForgetAfter %v is shorter than HostTimeout %v", c.ForgetAfter, c.HostTimeout)
	}
	return nil
}

// Monitor is the load monitor's state machine: reports and clock readings
// in, records out. It reads no clock and starts no goroutine, so the same
// calls always give the same records.
type Monitor struct {
	cfg Config

	hosts  map[string]*hostState
	parts  []partState
	owners []string

	version  uint64
	position uint64
	updated  time.Time

	// started is the first clock reading (zero before); resume grace for
	// the previous record's live hosts starts then.
	started     bool
	prevUpdated time.Time
	resumed     []string

	// pending: a host joined, returned or is stopping; the next Decide
	// should run now rather than at the next tick.
	pending bool

	imbalanceSince time.Time
	lastLoadMove   time.Time

	rec      Recommendation
	recKnown bool // rec was computed (or resumed), not the zero value
	recSince time.Time
}

type hostState struct {
	id       string
	clientID string
	// last is when its newest report arrived (shown); seen is the time
	// liveness counts from (last, or the resume time for a host carried
	// over from the previous record).
	last     time.Time
	seen     time.Time
	stopping bool
	running  []int
}

type partState struct {
	load transport.PartitionLoad
	has  bool
	// from is the host whose report load came from.
	from string
	// rate is the smoothed events/s; base* the Events count and time it
	// is measured from (reset when the partition changes hosts: Events
	// counts from the start on a host).
	rate       float64
	hasRate    bool
	baseEvents int64
	baseAt     time.Time
	hasBase    bool
}

// New makes a monitor that continues from prev, the stored record (nil:
// start fresh, nothing placed until a host reports).
func New(cfg Config, prev *Record) (*Monitor, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	n := cfg.Partitions
	m := &Monitor{cfg: cfg, hosts: map[string]*hostState{}, parts: make([]partState, n), owners: make([]string, n)}
	if prev == nil {
		return m, nil
	}
	if len(prev.Owners) != 0 && len(prev.Owners) != n {
		return nil, fmt.Errorf("loadmonitor: stored record places %d partitions, the task hub has %d", len(prev.Owners), n)
	}
	copy(m.owners, prev.Owners)
	m.version = prev.Version
	m.position = prev.Position
	m.updated = prev.Updated
	m.prevUpdated = prev.Updated
	m.rec, m.recKnown = prev.Recommendation, true
	for _, l := range prev.Loads {
		if l.Partition < 0 || l.Partition >= n {
			return nil, fmt.Errorf("loadmonitor: stored record has the load of partition %d, the task hub has %d", l.Partition, n)
		}
		p := &m.parts[l.Partition]
		p.load = l
		p.has = true
		p.from = m.owners[l.Partition]
	}
	for _, h := range prev.Hosts {
		if h.ID == "" {
			continue
		}
		m.hosts[h.ID] = &hostState{id: h.ID, clientID: h.ClientID, last: h.LastReport, seen: h.LastReport,
			stopping: h.Stopping, running: slices.Clone(h.Running)}
		if h.Live {
			m.resumed = append(m.resumed, h.ID)
		}
	}
	return m, nil
}

// start notes the first clock reading: the previous record's live hosts
// get one HostTimeout from now to report, if the record is recent.
func (m *Monitor) start(now time.Time) {
	if m.started {
		return
	}
	m.started = true
	m.recSince = now
	if m.prevUpdated.IsZero() || now.Sub(m.prevUpdated) > m.cfg.ResumeWindow {
		return
	}
	for _, id := range m.resumed {
		if h := m.hosts[id]; h != nil && h.seen.Before(now) {
			h.seen = now
		}
	}
}

// Observe applies one host's report, received at now. Liveness counts
// from now (the monitor's clock); a report whose own time (At) is more
// than ForgetAfter before now is ignored as history.
func (m *Monitor) Observe(r *transport.LoadReport, now time.Time) {
	m.start(now)
	if r == nil || r.Host == "" {
		return
	}
	if !r.At.IsZero() && now.Sub(r.At) > m.cfg.ForgetAfter {
		// History (a monitor reading an old queue from its start): by the
		// host's own clock it is older than a forgotten host's last word.
		// Clocks only need to agree within ForgetAfter.
		return
	}
	h := m.hosts[r.Host]
	if h == nil {
		h = &hostState{id: r.Host}
		m.hosts[r.Host] = h
		m.pending = true
	} else if !m.live(h, now) && !r.Stopping {
		m.pending = true // returning
	}
	if r.Stopping && !h.stopping {
		m.pending = true
	}
	h.clientID = r.ClientID
	h.last, h.seen = now, now
	h.stopping = r.Stopping
	h.running = h.running[:0]
	for _, pl := range r.Partitions {
		if pl.Partition < 0 || pl.Partition >= len(m.parts) {
			continue
		}
		h.running = append(h.running, pl.Partition)
		m.applyLoad(r.Host, pl, now)
	}
	slices.Sort(h.running)
	h.running = slices.Compact(h.running)
}

// applyLoad keeps the newest load of a partition. During a handover both
// the old and the new host may report it; the owner's report wins, so a
// late report of the old host does not overwrite the new one's.
func (m *Monitor) applyLoad(host string, pl transport.PartitionLoad, now time.Time) {
	p := &m.parts[pl.Partition]
	owner := m.owners[pl.Partition]
	if p.has && p.from != host && p.from == owner && owner != "" {
		return
	}
	if p.from != host || !p.hasBase || pl.Events < p.baseEvents || !now.After(p.baseAt) {
		// A new host counts Events from its start: measure from here.
		p.baseEvents, p.baseAt, p.hasBase = pl.Events, now, true
	} else {
		inst := float64(pl.Events-p.baseEvents) / now.Sub(p.baseAt).Seconds()
		if p.hasRate {
			p.rate = (p.rate + inst) / 2
		} else {
			p.rate, p.hasRate = inst, true
		}
		p.baseEvents, p.baseAt = pl.Events, now
	}
	p.load, p.has, p.from = pl, true, host
}

// Advance records the queue position after the last report applied.
func (m *Monitor) Advance(position uint64) {
	m.position = position
}

// Pending reports whether a report since the last Decide calls for a
// decision now: a host joined, returned or is stopping.
func (m *Monitor) Pending() bool { return m.pending }

func (m *Monitor) live(h *hostState, now time.Time) bool {
	return !h.stopping && now.Sub(h.seen) < m.cfg.HostTimeout
}

// Decide places the partitions and recommends a host count as of now. rec
// is a fresh copy of the record; changed says Owners changed (and Version
// with them).
func (m *Monitor) Decide(now time.Time) (rec *Record, changed bool) {
	m.start(now)
	m.pending = false
	for id, h := range m.hosts {
		if now.Sub(h.seen) >= m.cfg.ForgetAfter {
			delete(m.hosts, id)
		}
	}
	live := m.liveHosts(now)
	before := slices.Clone(m.owners)
	if len(live) > 0 {
		// No live host: the owners stay. Late reports (a slow queue, a
		// monitor that just moved) must not stop every partition; a dead
		// owner's partitions cannot run anywhere else anyway.
		m.balanceCounts(live)
		if !slices.Equal(before, m.owners) {
			m.imbalanceSince = time.Time{}
		} else {
			m.balanceLoad(live, now)
		}
	}
	changed = !slices.Equal(before, m.owners)
	if changed {
		m.version++
	}
	m.recommend(len(live), now)
	m.updated = now
	return m.Record(), changed
}

func (m *Monitor) liveHosts(now time.Time) []string {
	var live []string
	for id, h := range m.hosts {
		if m.live(h, now) {
			live = append(live, id)
		}
	}
	sort.Strings(live)
	return live
}

// balanceCounts gives each live host floor or ceil of N/H partitions,
// keeping every partition that can stay where it is.
func (m *Monitor) balanceCounts(live []string) {
	n, hn := len(m.owners), len(live)
	isLive := make(map[string]bool, hn)
	for _, id := range live {
		isLive[id] = true
	}
	// A partition without a live owner that exactly one live host reports
	// running stays there (a monitor that lost its record adopts what
	// runs).
	runners := make(map[int][]string)
	for _, id := range live {
		for _, p := range m.hosts[id].running {
			runners[p] = append(runners[p], id)
		}
	}
	for p, o := range m.owners {
		if isLive[o] {
			continue
		}
		if r := runners[p]; len(r) == 1 {
			m.owners[p] = r[0]
		} else {
			m.owners[p] = ""
		}
	}
	count := make(map[string]int, hn)
	for _, o := range m.owners {
		if o != "" {
			count[o]++
		}
	}
	// The N mod H hosts that hold the most keep the extra partition
	// (ties: sorted ids), so fewer partitions move.
	order := slices.Clone(live)
	sort.SliceStable(order, func(i, j int) bool { return count[order[i]] > count[order[j]] })
	quota := make(map[string]int, hn)
	for i, id := range order {
		quota[id] = n / hn
		if i < n%hn {
			quota[id]++
		}
	}
	// Hosts over quota give up their highest-numbered partitions.
	for p := n - 1; p >= 0; p-- {
		o := m.owners[p]
		if o != "" && count[o] > quota[o] {
			count[o]--
			m.owners[p] = ""
		}
	}
	// Free partitions, lowest first, fill hosts under quota in id order.
	hi := 0
	for p, o := range m.owners {
		if o != "" {
			continue
		}
		for hi < hn && count[live[hi]] >= quota[live[hi]] {
			hi++
		}
		if hi == hn {
			break // cannot happen: the quotas add up to n
		}
		m.owners[p] = live[hi]
		count[live[hi]]++
	}
}

// balanceLoad moves one partition (or swaps two) between the most and the
// least loaded live host when the imbalance is large and has lasted
// LoadDelay; counts stay within floor/ceil.
func (m *Monitor) balanceLoad(live []string, now time.Time) {
	if len(live) < 2 {
		m.imbalanceSince = time.Time{}
		return
	}
	load := make(map[string]float64, len(live))
	count := make(map[string]int, len(live))
	for p, o := range m.owners {
		load[o] += m.parts[p].rate
		count[o]++
	}
	hiH, loH := live[0], live[0]
	for _, id := range live[1:] {
		if load[id] > load[hiH] {
			hiH = id
		}
		if load[id] < load[loH] {
			loH = id
		}
	}
	hiL, loL := load[hiH], load[loH]
	if hiL < m.cfg.MinLoad || hiL <= m.cfg.LoadRatio*loL {
		m.imbalanceSince = time.Time{}
		return
	}
	// The best move: the one leaving the lower maximum of the two hosts.
	best, bp, bq := hiL, -1, -1
	consider := func(score float64, p, q int) {
		if score < best {
			best, bp, bq = score, p, q
		}
	}
	for p, o := range m.owners {
		if o != hiH {
			continue
		}
		rp := m.parts[p].rate
		if count[hiH] > count[loH] {
			consider(max(hiL-rp, loL+rp), p, -1)
		}
		for q, oq := range m.owners {
			if oq != loH {
				continue
			}
			rq := m.parts[q].rate
			consider(max(hiL-rp+rq, loL+rp-rq), p, q)
		}
	}
	if bp < 0 || best > hiL-(hiL-loL)/4 {
		m.imbalanceSince = time.Time{}
		return
	}
	if m.imbalanceSince.IsZero() {
		m.imbalanceSince = now
	}
	if now.Sub(m.imbalanceSince) < m.cfg.LoadDelay ||
		(!m.lastLoadMove.IsZero() && now.Sub(m.lastLoadMove) < m.cfg.LoadDelay) {
		return
	}
	m.owners[bp] = loH
	if bq >= 0 {
		m.owners[bq] = hiH
	}
	m.lastLoadMove = now
	m.imbalanceSince = time.Time{}
}

// Record returns a copy of the current record.
func (m *Monitor) Record() *Record {
	r := &Record{
		Version:        m.version,
		Monitor:        m.cfg.Self,
		Updated:        m.updated,
		Owners:         slices.Clone(m.owners),
		Recommendation: m.rec,
		Position:       m.position,
		Loads:          make([]transport.PartitionLoad, len(m.parts)),
	}
	for p := range m.parts {
		r.Loads[p] = m.parts[p].load
		r.Loads[p].Partition = p
	}
	ids := make([]string, 0, len(m.hosts))
	for id := range m.hosts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		h := m.hosts[id]
		r.Hosts = append(r.Hosts, HostInfo{
			ID: h.id, ClientID: h.clientID, LastReport: h.last,
			Live:     m.started && m.live(h, m.updated),
			Stopping: h.stopping, Running: cloneOrNil(h.running),
		})
	}
	return r
}

func cloneOrNil(s []int) []int {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
