package netherite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

// The coordinator of an elastic host (DESIGN.md §7). It reports the host's
// load to the load monitor, follows the monitor's placement (starting a
// partition manager for every partition placed here, releasing the
// others), and competes for the monitor's lease: the host that holds it
// runs the monitor.
//
// Safety is the storage's: a partition runs only under its lock or lease,
// so a stale placement can delay a partition, never run it twice.

const (
	// placementPoll is how often a host reads the placement record from
	// storage, in case it missed an update sent through the transport.
	placementPoll = time.Second
	// monitorRetry is the pause after the monitor failed or its lease could
	// not be taken for a reason other than another holder.
	monitorRetry = time.Second
)

// monitorRun is what the load monitor's run loop needs of its host.
type monitorRun struct {
	hostID      string
	partitions  int
	interval    time.Duration // of the hosts' load reports
	hostTimeout time.Duration
	// start is the record in storage when the lease was taken (nil: none):
	// the monitor continues its version and its queue position.
	start *loadmonitor.Record
	// receive reads the load monitor's queue from a position.
	receive func(ctx context.Context, from uint64) ([]*transport.Packet, uint64, error)
	// write stores a record under the lease.
	write func(ctx context.Context, rec *loadmonitor.Record) error
	// send tells a host's client the placement.
	send func(clientID string, u *transport.PlacementUpdate) error
	// published is called with every record written.
	published func(rec *loadmonitor.Record)
	log       *slog.Logger
	tune      func(*loadmonitor.Config) // tests
}

// runLoadMonitor runs the load monitor until ctx ends or it fails
// (tests replace it).
var runLoadMonitor = func(ctx context.Context, r monitorRun) error {
	cfg := loadmonitor.Config{Partitions: r.partitions, Self: r.hostID, HostTimeout: r.hostTimeout}
	if r.tune != nil {
		r.tune(&cfg)
	}
	return loadmonitor.Run(ctx, loadmonitor.RunConfig{
		Monitor: cfg, Prev: r.start, Receive: r.receive, Write: r.write, Send: r.send,
		// Decisions on joins and stops are immediate; the tick paces the
		// rest (deaths, load, the recommendation, re-sends).
		Tick:     min(r.interval, time.Second),
		Logger:   r.log,
		OnRecord: r.published,
	})
}

// testMonitorConfig, set only by tests, tunes the load monitor.
var testMonitorConfig func(*loadmonitor.Config)

// loadMonitorReceiver is a transport that lets the load monitor read its
// queue (the memory transport and Event Hubs).
type loadMonitorReceiver interface {
	ReceiveLoadMonitor(ctx context.Context, from uint64) ([]*transport.Packet, uint64, error)
}

type coordinator struct {
	h        *Host
	id       string
	ms       monitorStore
	t        transport.Transport
	count    int
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	ctx       context.Context // the follower and the reporter: ends at Stop
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	monCtx    context.Context // the monitor candidate: ends after the partitions are released
	monCancel context.CancelFunc
	monWG     sync.WaitGroup
	// bg counts the goroutines that release partitions or watch managers
	// end: stop and kill wait for them.
	bg     sync.WaitGroup
	kick   chan struct{}
	runMon func(ctx context.Context, r monitorRun) error
	tune   func(*loadmonitor.Config)

	mu       sync.Mutex
	applied  bool // a placement was applied
	version  uint64
	owners   []string
	active   map[int]*partitionManager // placed here
	leaving  map[int]*partitionManager // being released
	rec      *loadmonitor.Record       // the monitor's newest record, while this host runs it
	stopping bool
	killed   bool
	// storageOK is when the host last read the stored record; cut: it has
	// not for HostTimeout (see poll).
	storageOK time.Time
	cut       bool
	// formatLogged is when poll last logged a record of another format,
	// twinLogged one that names another client under this host's id.
	formatLogged time.Time
	twinLogged   time.Time
	started      time.Time
}

func newCoordinator(h *Host, ms monitorStore) *coordinator {
	c := &coordinator{h: h, id: h.opts.HostID, ms: ms, t: h.t, count: h.opts.PartitionCount,
		interval: h.opts.LoadReportInterval, timeout: h.opts.HostTimeout,
		log:  h.opts.Logger.With(slog.String("host", h.opts.HostID)),
		kick: make(chan struct{}, 1), runMon: runLoadMonitor, tune: testMonitorConfig, active: map[int]*partitionManager{}, leaving: map[int]*partitionManager{}}
	c.started = time.Now()
	c.storageOK = c.started
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.monCtx, c.monCancel = context.WithCancel(context.Background())
	return c
}

// start joins the task hub: the first load report goes out at once (it
// fails Start if it cannot be sent), then the loops run in the background.
func (c *coordinator) start() error {
	if err := c.report(false); err != nil {
		return fmt.Errorf("netherite: host %s: first load report: %w", c.id, err)
	}
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.follow() }()
	go func() { defer c.wg.Done(); c.pollLoop() }()
	go func() { defer c.wg.Done(); c.reportLoop() }()
	c.monWG.Add(1)
	go func() { defer c.monWG.Done(); c.candidate() }()
	return nil
}

func (c *coordinator) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// offer takes a placement in if it is newer than the one applied.
func (c *coordinator) offer(version uint64, owners []string) {
	c.mu.Lock()
	newer := !c.applied || version > c.version
	var moved []int
	if newer {
		for p := range owners {
			if p < len(c.owners) && c.owners[p] != owners[p] {
				moved = append(moved, p)
			}
		}
		c.applied, c.version, c.owners = true, version, slices.Clone(owners)
	}
	c.mu.Unlock()
	if newer {
		c.poke()
		// The client's waits on moved partitions are re-armed on their new
		// owners.
		for _, p := range moved {
			c.h.client.moved(p)
		}
	}
}

// placement receives the placement updates sent to the host's client.
func (c *coordinator) placement(u *transport.PlacementUpdate) { c.offer(u.Version, u.Owners) }

// follow applies the newest placement: on every update (through the
// transport or from storage), and when a manager ended.
func (c *coordinator) follow() {
	for {
		c.reconcile()
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		}
	}
}

// pollLoop reads the stored record every placementPoll: the backstop for
// lost updates, and the host's check that it reaches its storage.
func (c *coordinator) pollLoop() {
	tick := time.NewTicker(placementPoll)
	defer tick.Stop()
	for {
		c.poll()
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// poll reads the stored record. A host that cannot read it for HostTimeout
// is cut off from the task hub's storage: its partitions cannot run here
// (their leases lapse), so it leaves the placement (its reports say
// Stopping, and the monitor places its partitions on the other hosts)
// until it reaches storage again.
func (c *coordinator) poll() {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	rec, err := c.ms.readRecord(ctx)
	now := time.Now()
	if errors.Is(err, loadmonitor.ErrFormatVersion) {
		// Storage answered, so the host is not cut off from it; the record
		// is another build's (a rolling upgrade), so placements come
		// through the transport only.
		if c.logOnce(&c.formatLogged, now) {
			c.log.Error("the load monitor's record is of a format this build does not read; "+
				"the hosts of one task hub must run one netherite version", slog.Any("error", err))
		}
		err = nil
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("reading the load monitor's record", slog.Any("error", err))
		c.mu.Lock()
		leave := !c.cut && now.Sub(c.storageOK) >= c.timeout
		if leave {
			c.cut = true
		}
		since := c.storageOK
		c.mu.Unlock()
		if leave {
			c.log.Error("the task hub's storage is unreachable: the host leaves the placement until it is back",
				slog.Time("since", since), slog.Any("error", err))
			if err := c.report(false); err != nil {
				c.log.Warn("sending a load report", slog.Any("error", err))
			}
		}
		return
	}
	c.mu.Lock()
	back := c.cut
	c.cut, c.storageOK = false, now
	c.mu.Unlock()
	if back {
		c.log.Warn("the task hub's storage is reachable again: the host rejoins the placement")
		if err := c.report(false); err != nil {
			c.log.Warn("sending a load report", slog.Any("error", err))
		}
	}
	if rec != nil {
		c.checkTwin(rec, now)
		c.offer(rec.Version, rec.Owners)
	}
}

// logOnce reports whether a message last logged at *last may be logged
// again (once a minute), and if so notes now.
func (c *coordinator) logOnce(last *time.Time, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !last.IsZero() && now.Sub(*last) < time.Minute {
		return false
	}
	*last = now
	return true
}

// checkTwin logs an error if another host reports under this host's id
// (two hosts given the same Options.HostID): the load monitor takes them
// for one, so partitions placed on "it" go to either, and one's stop
// moves the other's partitions. A HostTimeout after start, this host's
// own reports have replaced those of an earlier process with its id.
func (c *coordinator) checkTwin(rec *loadmonitor.Record, now time.Time) {
	if now.Sub(c.started) < c.timeout {
		return
	}
	for _, hi := range rec.Hosts {
		if hi.ID == c.id && hi.ClientID != "" && hi.ClientID != c.h.client.id && hi.Live {
			if !c.logOnce(&c.twinLogged, now) {
				return
			}
			c.log.Error("another host reports to the load monitor under this host's id: every host of a task hub needs its own Options.HostID",
				slog.String("hostID", c.id), slog.String("client", c.h.client.id), slog.String("otherClient", hi.ClientID))
			return
		}
	}
}

// reconcile starts a manager for every partition placed here that has
// none (or whose manager ended: its lease was lost), and releases the
// partitions placed elsewhere.
func (c *coordinator) reconcile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || !c.applied {
		return
	}
	for p := 0; p < c.count; p++ {
		here := p < len(c.owners) && c.owners[p] == c.id
		m := c.active[p]
		switch {
		case here && (m == nil || m.ended()):
			if c.leaving[p] != nil {
				continue // taken again once released
			}
			if m != nil {
				c.h.disown(p, m) // its lease was lost
			}
			m = c.h.newManager(p)
			c.active[p] = m
			m.startElastic()
			c.bg.Add(1)
			go func() {
				defer c.bg.Done()
				<-m.done
				c.poke()
			}()
		case !here && m != nil:
			delete(c.active, p)
			if m.ended() {
				c.h.disown(p, m)
				continue
			}
			c.leaving[p] = m
			c.bg.Add(1)
			go func() {
				defer c.bg.Done()
				c.release(p, m)
			}()
		}
	}
}

// release stops partition p gracefully (checkpoint) and releases its
// storage, so that the host it is placed on takes it at once.
func (c *coordinator) release(p int, m *partitionManager) {
	start := time.Now()
	partitionEvent(c.id, p, "release", start)
	ctx, cancel := context.WithTimeout(context.Background(), max(c.timeout, 10*time.Second))
	err := m.release(ctx)
	cancel()
	if err != nil {
		c.log.Warn("releasing a partition", slog.Int("partition", p), slog.Any("error", err))
	} else {
		c.log.Info("partition released", slog.Int("partition", p), slog.Duration("took", time.Since(start)))
	}
	c.mu.Lock()
	if c.leaving[p] == m {
		delete(c.leaving, p)
	}
	c.h.disown(p, m)
	c.mu.Unlock()
	c.poke()
}

func (c *coordinator) reportLoop() {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if err := c.report(false); err != nil && c.ctx.Err() == nil {
				c.log.Warn("sending a load report", slog.Any("error", err))
			}
		}
	}
}

// report sends a load report: the host's heartbeat and the load of every
// partition that runs here.
func (c *coordinator) report(stopping bool) error {
	now := time.Now()
	rep := &transport.LoadReport{Host: c.id, ClientID: c.h.client.id, At: now.UTC(), Stopping: stopping}
	c.mu.Lock()
	rep.Stopping = rep.Stopping || c.cut
	for p, m := range c.active {
		if inc := m.running(); inc != nil {
			rep.Partitions = append(rep.Partitions, partitionLoad(p, inc.part, now))
		}
	}
	c.mu.Unlock()
	sort.Slice(rep.Partitions, func(i, j int) bool { return rep.Partitions[i].Partition < rep.Partitions[j].Partition })
	return c.t.SendToLoadMonitor(&transport.Packet{Load: rep})
}

// candidate competes for the load monitor's lease, and runs the monitor
// while it holds it, until the host stops.
func (c *coordinator) candidate() {
	ctx := c.monCtx
	for {
		lease, err := c.ms.acquireMonitor(ctx, c.id)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("taking the load monitor's lease", slog.Any("error", err))
			if !sleepCtx(ctx, monitorRetry) {
				return
			}
			continue
		}
		c.log.Info("running the load monitor")
		err = c.runMonitor(ctx, lease)
		c.setRecord(nil)
		if ctx.Err() != nil {
			c.mu.Lock()
			killed := c.killed
			c.mu.Unlock()
			if killed {
				if err := abandonMonitor(lease); err != nil {
					c.log.Warn("abandoning the load monitor's lease", slog.Any("error", err))
				}
			} else if err := lease.release(); err != nil {
				c.log.Warn("releasing the load monitor's lease", slog.Any("error", err))
			}
			return
		}
		select {
		case <-lease.lost():
			c.log.Warn("load monitor lease lost; the monitor stopped", slog.Any("error", err))
		default:
			// The monitor failed with the lease held: give it up, so that
			// another host may do better, and compete again after a pause.
			c.log.Error("load monitor failed", slog.Any("error", err))
			if err := lease.release(); err != nil {
				c.log.Warn("releasing the load monitor's lease", slog.Any("error", err))
			}
			if !sleepCtx(ctx, monitorRetry) {
				return
			}
		}
	}
}

// runMonitor runs the load monitor until the lease is lost, ctx ends or
// the monitor fails.
func (c *coordinator) runMonitor(ctx context.Context, lease monitorLease) error {
	recv, ok := c.t.(loadMonitorReceiver)
	if !ok {
		<-ctx.Done() // cannot happen with the transports of Options.Elastic
		return fmt.Errorf("netherite: transport %T cannot read the load monitor's queue", c.t)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lease.lost():
			cancel()
		case <-mctx.Done():
		}
	}()
	start, err := c.ms.readRecord(mctx)
	if err != nil {
		return fmt.Errorf("netherite: load monitor: read its record: %w", err)
	}
	return c.runMon(mctx, monitorRun{
		hostID: c.id, partitions: c.count, interval: c.interval, hostTimeout: c.timeout, start: start,
		receive: recv.ReceiveLoadMonitor,
		write:   lease.writeRecord,
		send: func(clientID string, u *transport.PlacementUpdate) error {
			return c.t.SendToClient(clientID, &transport.Packet{Placement: u})
		},
		published: c.setRecord,
		log:       c.log,
		tune:      c.tune,
	})
}

// setRecord keeps the monitor's newest record (nil: this host stopped
// running the monitor), and follows its placement at once.
func (c *coordinator) setRecord(rec *loadmonitor.Record) {
	rec = cloneRecord(rec)
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
	if rec != nil {
		c.offer(rec.Version, rec.Owners)
	}
}

// record returns a copy of the monitor's newest record if this host runs
// the monitor, else nil.
func (c *coordinator) record() *loadmonitor.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneRecord(c.rec)
}

// stop leaves the task hub gracefully: a last report says the host stops
// (the monitor places its partitions elsewhere), every partition is
// stopped, checkpointed and released in parallel (the new owners take
// them at once), then the monitor's lease is released.
func (c *coordinator) stop(ctx context.Context) error {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	var errs []error
	if err := c.report(true); err != nil {
		errs = append(errs, fmt.Errorf("netherite: host %s: goodbye report: %w", c.id, err))
	}
	c.mu.Lock()
	active := c.active
	c.active = map[int]*partitionManager{}
	c.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for p, m := range active {
		wg.Add(1)
		go func() {
			defer wg.Done()
			partitionEvent(c.id, p, "release", time.Now())
			if err := m.release(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			c.h.disown(p, m)
		}()
	}
	wg.Wait()
	c.bg.Wait() // the releases under way
	c.monCancel()
	c.monWG.Wait()
	return errors.Join(errs...)
}

// kill stops everything at once, as if the process died: no goodbye
// report, no checkpoint, no lease released (tests).
func (c *coordinator) kill() {
	c.mu.Lock()
	c.stopping, c.killed = true, true
	c.mu.Unlock()
	c.cancel()
	c.monCancel()
	c.wg.Wait()
	c.monWG.Wait()
	c.mu.Lock()
	var all []*partitionManager
	for _, m := range c.active {
		all = append(all, m)
	}
	for _, m := range c.leaving {
		all = append(all, m)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.kill()
		}()
	}
	wg.Wait()
	c.bg.Wait()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// partitionEvents, set only by tests, observes partition moves: "release"
// when a host starts releasing a partition, "running" when one runs it
// (its lock or lease is held), "stopped" when it stopped running it (before
// its lock or lease is let go).
var partitionEvents atomic.Pointer[func(host string, partition int, event string, at time.Time)]

func partitionEvent(host string, p int, event string, at time.Time) {
	if f := partitionEvents.Load(); f != nil {
		(*f)(host, p, event, at)
	}
}

// placedHere counts the partitions placed on this host.
func (c *coordinator) placedHere() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, o := range c.owners {
		if o == c.id {
			n++
		}
	}
	return n
}
