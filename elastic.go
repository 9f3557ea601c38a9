package netherite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"

	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

// Elastic placement (DESIGN.md §7): defaults of its options.
const (
	DefaultLoadReportInterval = 2 * time.Second
	DefaultHostTimeout        = 10 * time.Second
	// MinLoadReportInterval: every host sends a report per interval (to
	// Event Hubs, a message): a unit slip (2 for 2 s) must not flood it.
	MinLoadReportInterval = 10 * time.Millisecond
)

// normalizeElastic checks and defaults HostID, Elastic, LoadReportInterval
// and HostTimeout.
func (o *Options) normalizeElastic() error {
	if o.HostID == "" {
		o.HostID = defaultHostID()
	}
	if o.LoadReportInterval < 0 || o.HostTimeout < 0 {
		return fmt.Errorf("netherite: Options.LoadReportInterval and Options.HostTimeout must not be negative (0 means the default), got %v and %v",
			o.LoadReportInterval, o.HostTimeout)
	}
	if !o.Elastic {
		if o.LoadReportInterval != 0 || o.HostTimeout != 0 {
			return errors.New("netherite: Options.LoadReportInterval and Options.HostTimeout apply to Options.Elastic only")
		}
		return nil
	}
	if o.Backend == BackendAzStorage {
		return fmt.Errorf("netherite: Options.Elastic: the %q backend places its control queues itself; elastic placement is the %q backend's",
			BackendAzStorage, BackendNetherite)
	}
	if o.Partitions != nil {
		return errors.New("netherite: Options.Partitions must be nil with Options.Elastic: the load monitor places the partitions")
	}
	if o.LoadReportInterval == 0 {
		o.LoadReportInterval = DefaultLoadReportInterval
	}
	if o.LoadReportInterval < MinLoadReportInterval {
		return fmt.Errorf("netherite: Options.LoadReportInterval must be at least %v, got %v (a time.Duration: 2*time.Second, not 2)",
			MinLoadReportInterval, o.LoadReportInterval)
	}
	if o.HostTimeout == 0 {
		o.HostTimeout = max(DefaultHostTimeout, 2*o.LoadReportInterval)
	}
	if o.HostTimeout < 2*o.LoadReportInterval {
		return fmt.Errorf("netherite: Options.HostTimeout (%v) must be at least two Options.LoadReportIntervals (%v): "+
			"a host that misses one report is not dead", o.HostTimeout, o.LoadReportInterval)
	}
	return nil
}

// defaultHostID is "<hostname>-<pid>-<4 random hex digits>": unique among
// the processes of one machine, and across restarts of one process id.
func defaultHostID() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "host"
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", name, os.Getpid(), hex.EncodeToString(b[:]))
}

// ID returns the host's id (Options.HostID).
func (h *Host) ID() string { return h.opts.HostID }

// Scale returns the load monitor's newest record: the placement, the
// hosts, the load of every partition and the scale recommendation. It
// comes from memory if this host runs the load monitor, else from the task
// hub's storage. It needs Options.Elastic.
func (h *Host) Scale(ctx context.Context) (*loadmonitor.Record, error) {
	if h.coord == nil {
		return nil, errors.New("netherite: Scale needs Options.Elastic (without it no load monitor runs)")
	}
	if rec := h.coord.record(); rec != nil {
		return rec, nil
	}
	rec, err := h.coord.ms.readRecord(ctx)
	if err != nil {
		return nil, fmt.Errorf("netherite: read the load monitor's record: %w", err)
	}
	if rec == nil {
		return nil, errNoRecord(h.opts.TaskHub)
	}
	return rec, nil
}

func errNoRecord(taskHub string) error {
	return fmt.Errorf("netherite: task hub %q has no load monitor record yet: no elastic host has run its load monitor", taskHub)
}

// TaskHubStatus reads the load monitor's newest record of the task hub
// that opts describe, from its storage, without starting a host.
//
// It is also what a platform that scales the task hub to zero hosts asks
// while none runs: when the record is stale (no load monitor has written
// it within Options.HostTimeout, so no host runs) and recommends 0 hosts,
// its Recommendation is loadmonitor.Wake's, which is 1 when a partition's
// input queue holds a request or message that no host has read, a timer is
// due within a minute, or a partition was left with work. Looking into the
// queues needs a transport that can (Event Hubs, or a SharedTransport that
// is a transport.InputProber).
func TaskHubStatus(ctx context.Context, opts Options) (*loadmonitor.Record, error) {
	store, tspec, err := opts.parse()
	if err != nil {
		return nil, err
	}
	if !store.shared() {
		return nil, noMonitorStore(store)
	}
	// taskHubInfo also tells the storage which hub's record to read; it
	// creates nothing.
	hub, err := store.taskHubInfo(ctx, opts.TaskHub)
	if err != nil {
		return nil, err
	}
	ms, err := store.monitor()
	if err != nil {
		return nil, err
	}
	rec, err := ms.readRecord(ctx)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: read the load monitor's record: %w", opts.TaskHub, err)
	}
	if rec == nil {
		return nil, errNoRecord(opts.TaskHub)
	}
	return wakeRecord(ctx, opts, tspec, hub, rec, time.Now())
}

// probeLimit bounds the packets TaskHubStatus looks at per partition: one
// request is enough to wake a host.
const probeLimit = 64

// wakeRecord applies loadmonitor.Wake to a stale record that recommends
// no host (see TaskHubStatus).
func wakeRecord(ctx context.Context, opts Options, tspec transportSpec, hub *TaskHubParameters,
	rec *loadmonitor.Record, now time.Time) (*loadmonitor.Record, error) {
	timeout := opts.HostTimeout
	if timeout <= 0 {
		timeout = DefaultHostTimeout
	}
	if rec.Recommendation.Hosts > 0 || now.Sub(rec.Updated) <= timeout {
		return rec, nil // a monitor is running (or hosts are wanted): its word stands
	}
	var prober transport.InputProber
	switch ts := tspec.(type) {
	case memoryTransport:
		prober, _ = ts.shared.(transport.InputProber)
	case eventHubsTransport:
		t, err := openEventHubsProbe(ctx, opts, hub)
		if err != nil {
			return nil, err
		}
		defer t.Close()
		prober = t
	}
	var unread []loadmonitor.Unread
	if prober != nil {
		for _, l := range rec.Loads {
			n, err := prober.UnreadWork(ctx, l.Partition, l.InputPosition, probeLimit)
			unread = append(unread, loadmonitor.Unread{Partition: l.Partition, Work: n, Err: err})
		}
	}
	rec = cloneRecord(rec)
	rec.Recommendation = loadmonitor.Wake(rec, unread, now, timerHorizon())
	return rec, nil
}

// timerHorizon is the load monitor's TimerHorizon (tests tune it).
func timerHorizon() time.Duration {
	var cfg loadmonitor.Config
	if testMonitorConfig != nil {
		testMonitorConfig(&cfg)
	}
	if cfg.TimerHorizon > 0 {
		return cfg.TimerHorizon
	}
	return loadmonitor.DefaultTimerHorizon
}

// cloneRecord copies a record, so that callers may keep it.
func cloneRecord(r *loadmonitor.Record) *loadmonitor.Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Owners = slices.Clone(r.Owners)
	c.Loads = slices.Clone(r.Loads)
	c.Hosts = slices.Clone(r.Hosts)
	for i := range c.Hosts {
		c.Hosts[i].Running = slices.Clone(c.Hosts[i].Running)
	}
	return &c
}

// partitionLoad samples a running partition's load.
func partitionLoad(p int, part runningPartition, now time.Time) transport.PartitionLoad {
	l := part.LoadSample(now)
	l.Partition = p
	return l
}
