// Package bench holds the benchmark workloads and the harness that runs
// them against a host: throughput, latency percentiles and storage
// activity, for `netherite bench` and `go test -bench`.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// Workloads lists the workload names.
var Workloads = []string{"hello5", "hello3-latency", "fanout", "bank", "recovery", "hold"}

// Config selects a workload and the host it runs on.
type Config struct {
	Workload   string
	N          int
	Partitions int
	Storage    string
	// Rate is the start rate per second for hello3-latency.
	Rate              float64
	PersistStepsFirst bool
	// CacheBytes bounds the partition state in memory (0: the default).
	CacheBytes int64
	// AfterRun, if set, is called when the workload is done and the host
	// still runs (for profiling).
	AfterRun func()
	// Progress, if set, receives a progress line as work completes.
	Progress io.Writer
}

// Result is what a run measured.
type Result struct {
	Workload       string  `json:"workload"`
	N              int     `json:"n"`
	Partitions     int     `json:"partitions"`
	Storage        string  `json:"storage"`
	PersistFirst   bool    `json:"persist_steps_first"`
	Completed      int     `json:"completed"`
	Failed         int     `json:"failed"`
	Seconds        float64 `json:"seconds"`
	ThroughputPerS float64 `json:"throughput_per_s"`
	P50Ms          float64 `json:"p50_ms"`
	P90Ms          float64 `json:"p90_ms"`
	P99Ms          float64 `json:"p99_ms"`
	// LogWrites and EventsLogged count commit-log appends and the events
	// they carried; StepsPerWrite is their ratio.
	LogWrites     int64   `json:"log_writes"`
	EventsLogged  int64   `json:"events_logged"`
	StepsPerWrite float64 `json:"events_per_log_write"`
	// HeapBytesPerInstance is the live heap per completed instance held
	// by the host after the run (hello5 only).
	HeapBytesPerInstance float64 `json:"heap_bytes_per_instance,omitempty"`
	// Conserved reports the bank invariant (bank only).
	Conserved *bool `json:"conserved,omitempty"`
	// StorageRequests counts requests to Azure Storage, and
	// RequestsPerStep divides them by the orchestration steps (episodes).
	StorageRequests int64   `json:"storage_requests,omitempty"`
	RequestsPerStep float64 `json:"storage_requests_per_step,omitempty"`
	// RecoverySeconds is how long a restart took, from Start to the
	// first answered status (recovery only).
	RecoverySeconds float64 `json:"recovery_seconds,omitempty"`
	// RSSBytes is the process's resident memory after the run, with the
	// completed instances held (hold only).
	RSSBytes int64 `json:"rss_bytes,omitempty"`
}

// Register adds the benchmark functions to r.
func Register(r *durable.Registry) {
	hello := durable.RegisterActivity(r, "BenchHello", func(ctx durable.ActivityContext, name string) (string, error) {
		return "Hello " + name, nil
	})
	seq := func(n int) func(durable.OrchestrationContext, string) (string, error) {
		return func(ctx durable.OrchestrationContext, name string) (string, error) {
			var out string
			for i := 0; i < n; i++ {
				s, err := hello.Call(ctx, name).Get()
				if err != nil {
					return "", err
				}
				out = s
			}
			return out, nil
		}
	}
	durable.RegisterOrchestrator(r, "BenchHello5", seq(5))
	durable.RegisterOrchestrator(r, "BenchInline", func(ctx durable.OrchestrationContext, in string) (string, error) { return in, nil })
	durable.RegisterOrchestrator(r, "BenchHello3", seq(3))
	one := durable.RegisterActivity(r, "BenchOne", func(ctx durable.ActivityContext, i int) (int, error) { return i, nil })
	durable.RegisterOrchestrator(r, "BenchFanOut", func(ctx durable.OrchestrationContext, n int) (int, error) {
		ts := make([]durable.Task, n)
		for i := range ts {
			ts[i] = one.Call(ctx, i)
		}
		if err := durable.WhenAll(ts...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, t := range ts {
			v, err := durable.Await[int](t)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	durable.RegisterEntity(r, "BenchAccount", func(ctx durable.EntityContext) error {
		var bal int
		if err := ctx.GetState(&bal); err != nil {
			return err
		}
		switch ctx.Operation() {
		case "get":
			return ctx.Return(bal)
		case "add":
			var d int
			if err := ctx.GetInput(&d); err != nil {
				return err
			}
			return ctx.SetState(bal + d)
		}
		return fmt.Errorf("unknown operation %q", ctx.Operation())
	})
	durable.RegisterOrchestrator(r, "BenchTransfer", func(ctx durable.OrchestrationContext, t [3]string) (bool, error) {
		from, to := core.NewEntityID("BenchAccount", t[0]), core.NewEntityID("BenchAccount", t[1])
		lock, err := ctx.LockEntities(from, to)
		if err != nil {
			return false, err
		}
		defer lock.Release()
		bal, err := durable.Await[int](ctx.CallEntity(from, "get", nil))
		if err != nil || bal < 10 {
			return false, err
		}
		if err := durable.WhenAll(ctx.CallEntity(from, "add", -10), ctx.CallEntity(to, "add", 10)).Await(nil); err != nil {
			return false, err
		}
		return true, nil
	})
}

// Run runs one workload on a fresh host.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.N <= 0 {
		return nil, fmt.Errorf("bench: n must be positive, got %d", cfg.N)
	}
	if cfg.Storage == "" {
		dir, err := os.MkdirTemp("", "netherite-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Storage = dir
	}
	r := durable.NewRegistry()
	Register(r)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	hub := ""
	if strings.Contains(cfg.Storage, "=") || strings.HasPrefix(cfg.Storage, "http") {
		// An Azure Storage account: a fresh task hub for every run.
		hub = fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)
	}
	opts := netherite.Options{TaskHub: hub, PartitionCount: cfg.Partitions, Storage: cfg.Storage, StateCacheBytes: cfg.CacheBytes,
		PersistStepsFirst: cfg.PersistStepsFirst, MaxConcurrentActivities: 256, MaxConcurrentOrchestrations: 256}
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		return nil, err
	}
	defer func() { h.Stop(context.Background()) }()
	o := h.Options()
	storage := o.Storage
	if hub != "" {
		storage = "azure-storage(" + hub + ")" // never print account keys
	}
	res := &Result{Workload: cfg.Workload, N: cfg.N, Partitions: o.PartitionCount, Storage: storage, PersistFirst: o.PersistStepsFirst}
	c := h.Client()
	var lat []time.Duration
	t0 := time.Now()
	switch cfg.Workload {
	case "hello5":
		lat, err = runMany(ctx, c, cfg, res, "BenchHello5", 0)
	case "hello3-latency":
		rate := cfg.Rate
		if rate <= 0 {
			rate = 100
		}
		lat, err = runMany(ctx, c, cfg, res, "BenchHello3", rate)
	case "fanout":
		lat, err = runFanOut(ctx, c, cfg, res)
	case "bank":
		lat, err = runBank(ctx, c, cfg, res)
	case "recovery", "hold":
		lat, err = runMany(ctx, c, cfg, res, "BenchInline", 0)
	default:
		return nil, fmt.Errorf("bench: unknown workload %q (want one of %v)", cfg.Workload, Workloads)
	}
	res.Seconds = time.Since(t0).Seconds()
	if err != nil {
		return res, err
	}
	if res.Seconds > 0 {
		res.ThroughputPerS = float64(res.Completed) / res.Seconds
	}
	res.P50Ms, res.P90Ms, res.P99Ms = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	res.LogWrites, res.EventsLogged = h.Stats()
	if res.StorageRequests = h.StorageRequests(); res.StorageRequests > 0 {
		steps := map[string]int{"hello5": 6, "hello3-latency": 4, "recovery": 1, "hold": 1}[cfg.Workload]
		if steps > 0 && res.Completed > 0 {
			res.RequestsPerStep = float64(res.StorageRequests) / float64(steps*res.Completed)
		}
	}
	if res.LogWrites > 0 {
		res.StepsPerWrite = float64(res.EventsLogged) / float64(res.LogWrites)
	}
	switch cfg.Workload {
	case "recovery":
		// Stop cleanly (with checkpoints) and time the restart.
		if err := h.Stop(ctx); err != nil {
			return res, err
		}
		t1 := time.Now()
		if h, err = netherite.Start(ctx, opts, r); err != nil {
			return res, err
		}
		page, err := h.Client().Query(ctx, durable.InstanceQuery{PageSize: 1})
		if err != nil || len(page.Instances) == 0 {
			return res, fmt.Errorf("recovery: no instance after restart (%v)", err)
		}
		res.RecoverySeconds = time.Since(t1).Seconds()
	case "hold":
		runtime.GC()
		debug.FreeOSMemory()
		res.RSSBytes = rss()
	}
	if cfg.AfterRun != nil {
		cfg.AfterRun()
	}
	if cfg.Workload == "hello5" && res.Completed > 0 {
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		res.HeapBytesPerInstance = math.Max(0, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(res.Completed))
	}
	return res, nil
}

// runMany starts n orchestrations (all at once, or at rate per second)
// and waits for each, measuring start-to-completion latency.
func runMany(ctx context.Context, c durable.Client, cfg Config, res *Result, name string, rate float64) ([]time.Duration, error) {
	lat := make([]time.Duration, cfg.N)
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	prog := newProgress(cfg.Progress, cfg.N)
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
	}
	sem := make(chan struct{}, 64) // bound concurrent start requests
	// Bound the orchestrations in flight too (not at a fixed rate), so the
	// harness's own waiting does not grow with n.
	var inflight chan struct{}
	if rate <= 0 {
		inflight = make(chan struct{}, 2048)
	}
	for i := 0; i < cfg.N; i++ {
		if inflight != nil {
			inflight <- struct{}{}
		}
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			if inflight != nil {
				defer func() { <-inflight }()
			}
			start := time.Now()
			id, err := c.StartOrchestration(ctx, name, "world")
			<-sem
			if err != nil {
				select {
				case errs <- fmt.Errorf("start: %w", err):
				default:
				}
				failed.Add(1)
				return
			}
			s, err := c.WaitForCompletion(ctx, id)
			lat[i] = time.Since(start)
			if err != nil || s.RuntimeStatus != core.StatusCompleted {
				failed.Add(1)
			} else {
				done.Add(1)
			}
			prog.add()
		}()
	}
	wg.Wait()
	prog.finish()
	res.Completed, res.Failed = int(done.Load()), int(failed.Load())
	select {
	case err := <-errs:
		return lat, err
	default:
	}
	return lat, nil
}

func runFanOut(ctx context.Context, c durable.Client, cfg Config, res *Result) ([]time.Duration, error) {
	start := time.Now()
	id, err := c.StartOrchestration(ctx, "BenchFanOut", cfg.N)
	if err != nil {
		return nil, err
	}
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		return nil, err
	}
	var sum int
	if s.RuntimeStatus != core.StatusCompleted || s.ReadOutput(&sum) != nil || sum != cfg.N*(cfg.N-1)/2 {
		res.Failed = 1
		return nil, fmt.Errorf("fanout: status %s output %s failure %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	res.Completed = cfg.N // activities
	return []time.Duration{time.Since(start)}, nil
}

// runBank runs n transfers between accounts placed on every partition and
// checks that the total balance is conserved.
func runBank(ctx context.Context, c durable.Client, cfg Config, res *Result) ([]time.Duration, error) {
	parts := cfg.Partitions
	if parts <= 0 {
		parts = netherite.DefaultPartitionCount
	}
	accounts := 2 * parts
	const initial = 1000
	key := func(i int) string { return fmt.Sprintf("acct%d!%d", i, i%parts) }
	for i := 0; i < accounts; i++ {
		if err := c.SignalEntity(ctx, core.NewEntityID("BenchAccount", key(i)), "add", initial); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, cfg.N)
	var done, failed atomic.Int64
	var wg sync.WaitGroup
	prog := newProgress(cfg.Progress, cfg.N)
	sem := make(chan struct{}, 64)
	for i := 0; i < cfg.N; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			from := (i * 7) % accounts
			to := (from + 1 + i%(accounts-1)) % accounts
			start := time.Now()
			id, err := c.StartOrchestration(ctx, "BenchTransfer", [3]string{key(from), key(to)})
			<-sem
			if err == nil {
				var s *durable.OrchestrationStatus
				s, err = c.WaitForCompletion(ctx, id)
				if err == nil && s.RuntimeStatus != core.StatusCompleted {
					err = errors.New(s.RuntimeStatus.String())
				}
			}
			lat[i] = time.Since(start)
			if err != nil {
				failed.Add(1)
			} else {
				done.Add(1)
			}
			prog.add()
		}()
	}
	wg.Wait()
	prog.finish()
	res.Completed, res.Failed = int(done.Load()), int(failed.Load())
	total := 0
	for i := 0; i < accounts; i++ {
		m, err := c.GetEntity(ctx, core.NewEntityID("BenchAccount", key(i)), true)
		if err != nil {
			return lat, fmt.Errorf("bank: read account %s: %w", key(i), err)
		}
		var bal int
		if err := m.ReadState(&bal); err != nil {
			return lat, err
		}
		total += bal
	}
	ok := total == accounts*initial
	res.Conserved = &ok
	if !ok {
		return lat, fmt.Errorf("bank: TOTAL NOT CONSERVED: %d, want %d", total, accounts*initial)
	}
	return lat, nil
}

func percentile(d []time.Duration, p float64) float64 {
	var xs []time.Duration
	for _, v := range d {
		if v > 0 {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	if i < 0 {
		i = 0
	}
	return float64(xs[i]) / float64(time.Millisecond)
}

// progress draws a one-line progress bar.
type progress struct {
	w     io.Writer
	total int
	n     atomic.Int64
	mu    sync.Mutex
	last  time.Time
}

func newProgress(w io.Writer, total int) *progress { return &progress{w: w, total: total} }

func (p *progress) add() {
	n := p.n.Add(1)
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && int(n) != p.total {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := int(float64(width) * float64(n) / float64(p.total))
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d", bar, n, p.total)
}

func (p *progress) finish() {
	if p.w != nil {
		fmt.Fprintln(p.w)
	}
}

// rss reads the process's resident set size from /proc (0 elsewhere).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
