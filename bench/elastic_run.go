package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/transport"
)

// RunElastic runs hello5 at cfg.Rate while elastic hosts sharing one task
// hub follow cfg.Hosts, and reports what happened.
func RunElastic(ctx context.Context, cfg ElasticConfig) (*ElasticReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Storage == "" {
		dir, err := os.MkdirTemp("", "netherite-elastic-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Storage = dir
	}
	base, cleanup, err := elasticOptions(&cfg, "elastic")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	r := durable.NewRegistry()
	Register(r)
	hs := &hostSet{base: base, r: r, progress: cfg.Progress}
	defer hs.stopAll()

	// The first host takes every partition before the load begins.
	prep, cancel := context.WithTimeout(ctx, 2*time.Minute)
	h0, err := hs.start(prep, time.Now())
	if err == nil {
		err = waitRunning(prep, h0, cfg.Partitions)
	}
	cancel()
	if err != nil {
		return nil, fmt.Errorf("bench elastic: first host: %w", err)
	}

	run := &ElasticRun{Workload: "hello5", Storage: storageName(cfg.Storage), Partitions: cfg.Partitions, Rate: cfg.Rate, Window: cfg.Window}
	if netherite.IsEventHubsConnection(cfg.Transport) {
		run.Transport = "eventhubs(" + base.EventHubsPrefix + ")" // never the key
	}
	var total time.Duration
	for _, n := range cfg.Hosts {
		run.Phases = append(run.Phases, ElasticPhase{Hosts: n, From: total, To: total + cfg.Phase})
		total += cfg.Phase
	}
	n := int(cfg.Rate * total.Seconds())
	run.Ops = make([]ElasticOp, n)
	t0 := time.Now()
	hs.mu.Lock()
	hs.t0 = t0
	hs.mu.Unlock()
	for i := range run.Ops {
		run.Ops[i] = ElasticOp{Due: time.Duration(float64(i) * float64(time.Second) / cfg.Rate), AckAt: -1, EndAt: -1}
	}

	loadCtx, cancelLoad := context.WithDeadline(ctx, t0.Add(total+cfg.Drain))
	defer cancelLoad()
	c := h0.Client()
	loadDone := make(chan *recorder, 1)
	go func() {
		since := func() time.Duration { return time.Since(t0) }
		rec, _ := (&openLoop{n: n, rate: cfg.Rate, start: t0}).run(loadCtx, func(ctx context.Context, i int, acked func()) error {
			o := &run.Ops[i] // this goroutine's alone until the loop returns
			o.Issued = true
			defer func() { o.EndAt = since() }()
			id, err := c.StartOrchestration(ctx, "BenchHello5", "world")
			if err != nil {
				return fail("start", err)
			}
			o.AckAt = since()
			acked()
			// The client's own wait: it re-arms waits that a moving
			// partition forgets, so the harness adds no polling of its own.
			if err := waitCompleted(ctx, c, id); err != nil {
				return err
			}
			o.OK = true
			return nil
		})
		loadDone <- rec
	}()

	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplesDone := make(chan []OwnerSample, 1)
	go func() { samplesDone <- hs.sample(sampleCtx, cfg.Window, cfg.Partitions) }()

	// The schedule: phase k begins at t0 + k×Phase with its host count.
	var phaseErr error
	for k, ph := range run.Phases {
		if k > 0 {
			if err := sleepUntil(ctx, t0.Add(ph.From)); err != nil {
				phaseErr = err
				break
			}
		}
		if err := hs.resize(ctx, ph.Hosts); err != nil {
			phaseErr = err
			break
		}
	}
	if phaseErr != nil {
		cancelLoad()
	}
	rec := <-loadDone
	run.End = time.Since(t0)
	stopSampling()
	run.Samples = <-samplesDone
	st := rec.stats()
	run.Errors = st.Errors
	if st.First != nil {
		run.FirstError = st.First.Error()
	}
	run.Events = hs.events() // not the teardown's stops below
	hs.stopAll()
	rep := run.Analyze()
	if phaseErr != nil {
		return rep, fmt.Errorf("bench elastic: schedule: %w", phaseErr)
	}
	return rep, nil
}

// storageName describes storage for a report: never a key.
func storageName(s string) string {
	if isAzure(s) {
		return "azure-storage(" + blobEndpoint(s) + ")"
	}
	return s
}

// elasticOptions are the options every elastic host of a run shares, on
// a fresh task hub (Azure) or fresh hubs (Event Hubs), and the cleanup
// that deletes them.
func elasticOptions(cfg *ElasticConfig, prefix string) (netherite.Options, func(), error) {
	o := netherite.Options{PartitionCount: cfg.Partitions, Storage: cfg.Storage, Transport: cfg.Transport,
		EventHubsPrefix: cfg.EventHubsPrefix, EventHubsAdminURL: cfg.EventHubsAdminURL,
		Elastic: true, LoadReportInterval: cfg.ReportInterval, HostTimeout: cfg.HostTimeout,
		MaxConcurrentActivities: 256, MaxConcurrentOrchestrations: 256,
		// Hosts coming and going log every move at Info: warnings only.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	stamp := time.Now().UnixNano() % 1e9
	eventHubs := netherite.IsEventHubsConnection(cfg.Transport)
	var mem *transport.Memory
	switch {
	case eventHubs:
		if o.EventHubsPrefix == "" {
			o.EventHubsPrefix = fmt.Sprintf("%s%d-", prefix, stamp)
		}
	case cfg.Transport == "" || cfg.Transport == "memory":
		o.Transport = ""
		mem = transport.NewMemory(cfg.Partitions)
		o.SharedTransport = mem
	default:
		return o, nil, fmt.Errorf("bench %s: -transport: want memory or an Event Hubs connection string", prefix)
	}
	if isAzure(cfg.Storage) {
		o.TaskHub = fmt.Sprintf("%s%d", prefix, stamp)
	}
	cleanup := func() {
		if mem != nil {
			mem.Close()
		}
		if o.TaskHub != "" || eventHubs {
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			netherite.DeleteTaskHub(ctx, o)
		}
	}
	return o, cleanup, nil
}

// waitRunning waits until h runs all n partitions.
func waitRunning(ctx context.Context, h *netherite.Host, n int) error {
	return poll(ctx, 10*time.Millisecond, func() bool {
		ok := 0
		for _, s := range h.Partitions() {
			if s.State == netherite.PartitionOK {
				ok++
			}
		}
		return ok == n
	})
}

// poll calls cond every interval until it holds or ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// hostSet is the elastic hosts of a run, oldest first.
type hostSet struct {
	base     netherite.Options
	r        *durable.Registry
	progress io.Writer
	t0       time.Time // the load's start: event times are relative to it

	mu    sync.Mutex
	next  int
	hosts []*netherite.Host
	evs   []HostEvent
	ats   []time.Time // when each event's call was made
}

func (s *hostSet) logf(format string, args ...any) {
	if s.progress != nil {
		fmt.Fprintf(s.progress, format+"\n", args...)
	}
}

func (s *hostSet) event(at time.Time, host, action string, err error) {
	e := HostEvent{Took: time.Since(at), Host: host, Action: action}
	if err != nil {
		e.Err = err.Error()
	}
	s.mu.Lock()
	s.evs, s.ats = append(s.evs, e), append(s.ats, at)
	started := !s.t0.IsZero()
	if started {
		e.At = at.Sub(s.t0)
	}
	s.mu.Unlock()
	if !started {
		s.logf("%s %s (%.3fs)", action, host, secs(e.Took))
	} else {
		s.logf("%7.2fs %s %s (%.3fs)", secs(e.At), action, host, secs(e.Took))
	}
}

// events are the host events, times since t0 (events before the load
// began have negative times).
func (s *hostSet) events() []HostEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]HostEvent(nil), s.evs...)
	for i := range out {
		out[i].At = s.ats[i].Sub(s.t0)
	}
	return out
}

// start starts a new host named h<k>.
func (s *hostSet) start(ctx context.Context, at time.Time) (*netherite.Host, error) {
	s.mu.Lock()
	o := s.base
	o.HostID = fmt.Sprintf("h%d", s.next)
	s.next++
	s.mu.Unlock()
	h, err := netherite.Start(ctx, o, s.r)
	s.event(at, o.HostID, "start", err)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.hosts = append(s.hosts, h)
	s.mu.Unlock()
	return h, nil
}

// resize starts or stops hosts (the newest first, gracefully) until n run.
func (s *hostSet) resize(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		cur := len(s.hosts)
		var last *netherite.Host
		if cur > 0 {
			last = s.hosts[cur-1]
		}
		s.mu.Unlock()
		switch {
		case cur < n:
			if _, err := s.start(ctx, time.Now()); err != nil {
				return err
			}
		case cur > n:
			if err := s.stop(last); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// stop stops h gracefully; it stays in the samples until Stop returns.
func (s *hostSet) stop(h *netherite.Host) error {
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	err := h.Stop(ctx)
	cancel()
	s.mu.Lock()
	for i, x := range s.hosts {
		if x == h {
			s.hosts = append(s.hosts[:i:i], s.hosts[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	s.event(at, h.ID(), "stop", err)
	return err
}

// stopAll stops the remaining hosts, newest first.
func (s *hostSet) stopAll() {
	for {
		s.mu.Lock()
		if len(s.hosts) == 0 {
			s.mu.Unlock()
			return
		}
		h := s.hosts[len(s.hosts)-1]
		s.mu.Unlock()
		s.stop(h)
	}
}

// sample records, every interval until ctx ends, the hosts and the host
// each partition runs on.
func (s *hostSet) sample(ctx context.Context, interval time.Duration, partitions int) []OwnerSample {
	var out []OwnerSample
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.mu.Lock()
		hosts := append([]*netherite.Host(nil), s.hosts...)
		s.mu.Unlock()
		smp := OwnerSample{At: time.Since(s.t0), Owners: make([]string, partitions)}
		for _, h := range hosts {
			id := h.ID()
			smp.Hosts = append(smp.Hosts, id)
			for _, ps := range h.Partitions() {
				if ps.State != netherite.PartitionOK || ps.Partition >= partitions {
					continue
				}
				if o := smp.Owners[ps.Partition]; o != "" {
					smp.Owners[ps.Partition] = strings.Join([]string{o, id}, "+")
				} else {
					smp.Owners[ps.Partition] = id
				}
			}
		}
		out = append(out, smp)
		select {
		case <-t.C:
		case <-ctx.Done():
			return out
		}
	}
}
