// Package bench holds the benchmark workloads and the harness that runs
// them against a host: throughput, latency percentiles, failures and
// storage activity, for `netherite bench` and `go test -bench`.
//
// Two drivers run the orchestrations of a workload. The open loop
// (hello3-latency, crash-recovery) starts them on a fixed schedule and
// measures latency from each one's intended start, so a slow engine or
// harness cannot hide its delays. The closed loop (hello5, bank, hold,
// clean-restart) keeps at most Config.InFlight orchestrations in flight
// and measures throughput.
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/partitions"
)

// Workloads lists the workload names.
var Workloads = []string{"hello5", "hello3-latency", "fanout", "bank", "clean-restart", "crash-recovery", "hello5-coldcache", "hold", "chain", "entity-signal"}

// stopTimeout bounds the stop of a benchmark host after its run.
const stopTimeout = 30 * time.Second

// DefaultInFlight caps the orchestrations in flight in a closed loop, so
// that the harness's own waiting does not grow with n.
const DefaultInFlight = 2048

// ColdCacheBytes is the state cache of the cold run of hello5-coldcache:
// small enough that nearly every step reads its instance from storage.
const ColdCacheBytes = 1 << 20

// Config selects a workload and the host it runs on.
type Config struct {
	Workload   string
	N          int
	Partitions int
	Storage    string
	// Transport is netherite.Options.Transport: "" (in-process queues) or
	// an Event Hubs connection string; a run on Event Hubs gets fresh hubs
	// (named with EventHubsPrefix, or a fresh prefix), deleted afterwards.
	Transport         string
	EventHubsPrefix   string
	EventHubsAdminURL string
	// TaskHub, if set, runs on that existing task hub (not deleted
	// afterwards), and Owned lists the partitions this process runs (nil:
	// all; empty: none, a client only): so a run can drive hosts in other
	// processes (`netherite serve`, which runs the benchmark functions too).
	TaskHub string
	Owned   []int
	// Rate is the offered start rate per second of the open loop
	// (hello3-latency, crash-recovery; default 100).
	Rate float64
	// InFlight caps the orchestrations in flight in the closed loop
	// (0: DefaultInFlight; negative: no cap, all n started at once).
	InFlight          int
	PersistStepsFirst bool
	// Speculation is the host's speculation mode (PersistStepsFirst is
	// SpeculationNone).
	Speculation netherite.Speculation
	// CommitDelay simulates a device's commit latency on "memory"
	// storage (see netherite.Options.MemoryCommitDelay).
	CommitDelay time.Duration
	// CacheBytes bounds the partition state in memory (0: the default).
	CacheBytes int64
	// CheckpointEvents, if positive, checkpoints each partition after this
	// many events (default: the host's, 10,000).
	CheckpointEvents int
	// Timeout bounds the run; what is not done by then fails as a timeout
	// (0: no bound).
	Timeout time.Duration
	// Seed picks the moment crash-recovery kills the host (0: from the
	// clock); the seed used is in the result.
	Seed int64
	// killAfterAcks, in tests, holds the crash-recovery kill until the
	// child acknowledged this many starts.
	killAfterAcks int
	// AfterRun, if set, is called when the workload is done and the host
	// still runs (for profiling).
	AfterRun func()
	// Progress, if set, receives a progress line as work completes.
	Progress io.Writer
	// Backend and PollingInterval select the engine: see
	// netherite.Options.Backend and AzureStorage.MaxQueuePollingInterval
	// (compare.go runs the workloads on each, with Transport too).
	Backend         string
	PollingInterval time.Duration
	// Entities is the number of counter entities of entity-signal
	// (default 64).
	Entities int
	// KeepSamples keeps the latencies and completion times in
	// Result.Samples (for plots).
	KeepSamples bool
}

// Modes of running a workload (Result.Mode).
const (
	modeOpen   = "open-loop"   // starts on a schedule; latency from the intended start
	modeClosed = "closed-loop" // at most in_flight_cap in flight; latency from the start call
	modeSingle = "single"      // one orchestration (fanout)
)

// Result is what a run measured. Rates are named for what they count.
type Result struct {
	Workload     string `json:"workload"`
	N            int    `json:"n"`
	Partitions   int    `json:"partitions"`
	Storage      string `json:"storage"`
	PersistFirst bool   `json:"persist_steps_first"`
	Speculation  string `json:"speculation"`
	Mode         string `json:"mode"`
	// LatencyFrom says where latencies start: "intended start" (open
	// loop) or "start call" (closed loop, single).
	LatencyFrom string `json:"latency_from"`
	// OfferedPerS is the schedule's start rate and AchievedPerS the rate
	// at which starts were acknowledged (open loop). MaxIssueLagMs is how
	// late the harness issued a start against its schedule.
	OfferedPerS   float64 `json:"offered_per_s,omitempty"`
	AchievedPerS  float64 `json:"achieved_per_s,omitempty"`
	MaxIssueLagMs float64 `json:"max_issue_lag_ms,omitempty"`
	// InFlightCap is the closed loop's cap (n when all start at once).
	InFlightCap int `json:"in_flight_cap,omitempty"`
	// Completed and Failed count orchestrations; Errors counts the
	// failures by kind ("start: timeout", "status: Failed", ...).
	Completed  int            `json:"completed"`
	Failed     int            `json:"failed"`
	Errors     map[string]int `json:"errors"`
	FirstError string         `json:"first_error,omitempty"`
	Seconds    float64        `json:"seconds"`
	// Throughput by what it counts: completed orchestrations, activities
	// (fanout) and bank transfers per second.
	OrchestrationsPerS float64 `json:"orchestrations_per_s"`
	ActivitiesPerS     float64 `json:"activities_per_s,omitempty"`
	TransfersPerS      float64 `json:"transfers_per_s,omitempty"`
	// Latency percentiles of the completed orchestrations (failures are
	// in Failed, not here).
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// LogWrites and EventsLogged count commit-log appends and the events
	// they carried; StepsPerWrite is their ratio.
	LogWrites int64 `json:"log_writes"`
	// Commits counts the commit logs' device commits (one write and one
	// flush each), CommitsPerSPerPartition their rate per partition over
	// the run, and Sync* the distribution of each commit's flush
	// (fdatasync) time; Commit* that of the whole commit.
	Commits                 int64   `json:"commits,omitempty"`
	CommitsPerSPerPartition float64 `json:"commits_per_s_per_partition,omitempty"`
	SyncP50Us               float64 `json:"sync_p50_us,omitempty"`
	SyncP90Us               float64 `json:"sync_p90_us,omitempty"`
	SyncP99Us               float64 `json:"sync_p99_us,omitempty"`
	SyncMaxUs               float64 `json:"sync_max_us,omitempty"`
	CommitP50Us             float64 `json:"commit_p50_us,omitempty"`
	CommitP99Us             float64 `json:"commit_p99_us,omitempty"`
	EventsLogged            int64   `json:"events_logged"`
	StepsPerWrite           float64 `json:"events_per_log_write"`
	// StateLoads counts instances read back from storage after eviction,
	// LoadsPerStep per orchestration step (episode).
	CacheBytes   int64   `json:"cache_bytes,omitempty"`
	StateLoads   int64   `json:"state_loads"`
	LoadsPerStep float64 `json:"state_loads_per_step,omitempty"`
	// SyncLoads counts the loads done synchronously on a partition's
	// event loop (the rest were prefetched).
	SyncLoads int64 `json:"sync_loads"`
	// HeapBytesPerInstance is the live heap per completed instance held
	// by the host after the run (hello5 only).
	HeapBytesPerInstance float64 `json:"heap_bytes_per_instance,omitempty"`
	// Conserved reports the bank invariant (bank only).
	Conserved *bool `json:"conserved,omitempty"`
	// StorageRequests counts requests to Azure Storage, and
	// RequestsPerStep divides them by the orchestration steps (episodes).
	StorageRequests int64   `json:"storage_requests,omitempty"`
	RequestsPerStep float64 `json:"storage_requests_per_step,omitempty"`
	// Event Hubs transport figures: packets, events (each carries one or
	// more packets) and Event Hubs batches (one send each) sent by the
	// host, events per batch, and the packets that went through the blob
	// store for being too large.
	Transport          string  `json:"transport,omitempty"`
	EventHubsPackets   int64   `json:"eventhubs_packets_sent,omitempty"`
	EventHubsEvents    int64   `json:"eventhubs_events_sent,omitempty"`
	EventHubsBatches   int64   `json:"eventhubs_batches_sent,omitempty"`
	EventsPerBatch     float64 `json:"eventhubs_events_per_batch,omitempty"`
	PacketsPerBatch    float64 `json:"eventhubs_packets_per_batch,omitempty"`
	EventHubsBlobSends int64   `json:"eventhubs_blob_payloads,omitempty"`
	// Restart figures (clean-restart, crash-recovery): RestartSeconds
	// until Start returned, RecoverySeconds until the first query
	// answered, both from the restart; the commit log replayed then.
	RestartSeconds  float64 `json:"restart_seconds,omitempty"`
	RecoverySeconds float64 `json:"recovery_seconds,omitempty"`
	ReplayedEvents  int64   `json:"replayed_events,omitempty"`
	ReplayedBytes   int64   `json:"replayed_bytes,omitempty"`
	// Crash figures (crash-recovery): the seed and moment of the kill,
	// what the killed process had acknowledged and completed by then, and
	// how long the restarted host took to complete every acknowledged
	// start (Completed/Failed then count those).
	Seed                int64   `json:"seed,omitempty"`
	KillAfterS          float64 `json:"kill_after_s,omitempty"`
	AckedBeforeKill     int     `json:"acknowledged_before_kill,omitempty"`
	CompletedBeforeKill int     `json:"completed_before_kill,omitempty"`
	DrainSeconds        float64 `json:"drain_seconds,omitempty"`
	// Warm is the warm-cache run of hello5-coldcache, and ColdToWarm the
	// cold run's orchestrations/s divided by the warm run's.
	Warm       *Result `json:"warm,omitempty"`
	ColdToWarm float64 `json:"cold_to_warm_throughput,omitempty"`
	// RSSBytes is the process's resident memory after the run, with the
	// completed instances held (hold only).
	RSSBytes int64 `json:"rss_bytes,omitempty"`
	// Chain has the per-hop figures of the chain workload.
	Chain *ChainResult `json:"chain,omitempty"`
	// Backend is the engine that ran (compare.go), StorageByKind the
	// storage requests by kind (storagecount), SignalsPerS the entity
	// signals processed per second (entity-signal).
	Backend       string           `json:"backend,omitempty"`
	StorageByKind map[string]int64 `json:"storage_requests_by_kind,omitempty"`
	SignalsPerS   float64          `json:"signals_per_s,omitempty"`
	// Episodes and Activities are the baseline's own counts of the
	// orchestration episodes it checkpointed and activities it ran.
	Episodes   int64 `json:"baseline_episodes,omitempty"`
	Activities int64 `json:"baseline_activities,omitempty"`
	// Samples are the raw samples, if Config.KeepSamples.
	Samples *Samples `json:"-"`
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
	registerChain(r)
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
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	switch cfg.Workload {
	case "hello5", "hello3-latency", "fanout", "bank", "clean-restart", "hold", "chain", "entity-signal":
	case "crash-recovery":
		return runCrashRecovery(ctx, cfg)
	case "hello5-coldcache":
		return runColdCache(ctx, cfg)
	case "recovery":
		return nil, fmt.Errorf(`bench: workload "recovery" is now "clean-restart" (a restart after a clean stop, which checkpoints); "crash-recovery" kills the host`)
	default:
		return nil, fmt.Errorf("bench: unknown workload %q (want one of %v)", cfg.Workload, Workloads)
	}
	if cfg.Storage == "" {
		dir, err := os.MkdirTemp("", "netherite-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Storage = dir
	}
	return runOne(ctx, cfg)
}

// isAzure tells a storage account (connection string or URL) from a
// directory or "memory".
func isAzure(storage string) bool {
	return strings.Contains(storage, "=") || strings.HasPrefix(storage, "http")
}

// hostOptions are the options of a benchmark host on storage, with hub as
// the task hub name ("" for the default).
func hostOptions(cfg Config, hub string) netherite.Options {
	return netherite.Options{TaskHub: hub, PartitionCount: cfg.Partitions, Storage: cfg.Storage, StateCacheBytes: cfg.CacheBytes,
		Transport: cfg.Transport, EventHubsPrefix: cfg.EventHubsPrefix, EventHubsAdminURL: cfg.EventHubsAdminURL, Partitions: cfg.Owned,
		PersistStepsFirst: cfg.PersistStepsFirst, Speculation: cfg.Speculation, MemoryCommitDelay: cfg.CommitDelay, MaxConcurrentActivities: 256, MaxConcurrentOrchestrations: 256,
		Checkpoints: partitions.CheckpointPolicy{Events: cfg.CheckpointEvents}, Backend: cfg.Backend,
		AzureStorage: netherite.AzureStorageOptions{MaxQueuePollingInterval: cfg.PollingInterval}}
}

// newResult describes the host a run uses; never an account key.
func newResult(cfg Config, o netherite.Options, hub string) *Result {
	storage := o.Storage
	if hub != "" {
		storage = "azure-storage(" + hub + ")"
	}
	tr := ""
	if netherite.IsEventHubsConnection(o.Transport) {
		tr = "eventhubs(" + o.EventHubsPrefix + ")" // never the key
	}
	return &Result{Workload: cfg.Workload, N: cfg.N, Partitions: o.PartitionCount, Storage: storage, Transport: tr,
		PersistFirst: o.PersistStepsFirst, Speculation: o.Speculation.String(), Errors: map[string]int{}, CacheBytes: cfg.CacheBytes, Backend: o.Backend}
}

// inFlightCap is the closed loop's cap for cfg.
func inFlightCap(cfg Config) int {
	switch {
	case cfg.InFlight < 0:
		return cfg.N
	case cfg.InFlight == 0:
		return min(DefaultInFlight, cfg.N)
	}
	return min(cfg.InFlight, cfg.N)
}

// stepsPer is the orchestration steps (episodes) of one orchestration of
// a workload, for per-step figures.
var stepsPer = map[string]int{"hello5": 6, "hello5-coldcache": 6, "hello3-latency": 4, "clean-restart": 1, "hold": 1, "entity-signal": 1}

// runOne runs a workload that needs one host (and a restart for
// clean-restart).
func runOne(ctx context.Context, cfg Config) (*Result, error) {
	r := durable.NewRegistry()
	Register(r)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	hub := ""
	if isAzure(cfg.Storage) {
		// A fresh task hub for every run, deleted afterwards.
		hub = fmt.Sprintf("bench%d", time.Now().UnixNano()%1e9)
	}
	eventHubs := netherite.IsEventHubsConnection(cfg.Transport)
	keep := cfg.TaskHub != ""
	if keep {
		hub = cfg.TaskHub
	} else if eventHubs && cfg.EventHubsPrefix == "" {
		// Fresh hubs for every run, deleted afterwards.
		cfg.EventHubsPrefix = fmt.Sprintf("bench%d-", time.Now().UnixNano()%1e9)
	}
	opts := hostOptions(cfg, hub)
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Bounded: a host with a backlog (a run that timed out) must not
		// hold the result back; what it still runs is abandoned.
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		h.Stop(sctx)
		if !keep && (hub != "" || eventHubs) {
			netherite.DeleteTaskHub(sctx, opts)
		}
	}()
	res := newResult(cfg, h.Options(), hub)
	c := h.Client()
	prog := newProgress(cfg.Progress, cfg.N)
	var rec *recorder
	var t0 time.Time
	switch cfg.Workload {
	case "hello5":
		rec, t0 = closed(cfg, res).run(ctx, orchestrationOp(c, "BenchHello5", prog))
	case "hello3-latency":
		res.Mode, res.LatencyFrom, res.OfferedPerS = modeOpen, "intended start", cfg.Rate
		rec, t0 = (&openLoop{n: cfg.N, rate: cfg.Rate}).run(ctx, orchestrationOp(c, "BenchHello3", prog))
	case "fanout":
		res.Mode, res.LatencyFrom = modeSingle, "start call"
		rec, t0 = (&closedLoop{n: 1, inFlight: 1}).run(ctx, fanOutOp(c, cfg.N))
	case "bank":
		rec, t0, err = runBank(ctx, c, cfg, res, prog)
	case "chain":
		rec, t0 = runChain(ctx, c, cfg, res, prog)
	case "clean-restart", "hold":
		rec, t0 = closed(cfg, res).run(ctx, orchestrationOp(c, "BenchInline", prog))
	case "entity-signal":
		rec, t0, err = runEntitySignal(ctx, c, cfg, res, prog)
	}
	res.Seconds = time.Since(t0).Seconds()
	prog.finish()
	if rec != nil {
		st := rec.stats()
		st.fill(res, t0)
		if cfg.KeepSamples {
			res.Samples = newSamples(st, t0)
		}
	}
	if err != nil {
		return res, err
	}
	if res.Seconds > 0 {
		res.OrchestrationsPerS = float64(res.Completed) / res.Seconds
		switch cfg.Workload {
		case "fanout":
			if res.Completed == 1 {
				res.ActivitiesPerS = float64(cfg.N) / res.Seconds
			}
		case "bank":
			res.TransfersPerS = res.OrchestrationsPerS
		case "entity-signal":
			res.SignalsPerS, res.OrchestrationsPerS = res.OrchestrationsPerS, 0
		}
	}
	hostStats(h, cfg.Workload, res)
	switch cfg.Workload {
	case "clean-restart":
		// Stop cleanly (which checkpoints) and time the restart.
		if err := h.Stop(ctx); err != nil {
			return res, err
		}
		t1 := time.Now()
		if h, err = netherite.Start(ctx, opts, r); err != nil {
			return res, err
		}
		res.RestartSeconds = time.Since(t1).Seconds()
		if err := firstQuery(ctx, h.Client()); err != nil {
			return res, fmt.Errorf("clean-restart: first query: %w", err)
		}
		res.RecoverySeconds = time.Since(t1).Seconds()
		res.ReplayedEvents, res.ReplayedBytes = h.Replayed()
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

// closed is the closed loop of cfg, described in res.
func closed(cfg Config, res *Result) *closedLoop {
	res.Mode, res.LatencyFrom, res.InFlightCap = modeClosed, "start call", inFlightCap(cfg)
	return &closedLoop{n: cfg.N, inFlight: res.InFlightCap}
}

// hostStats adds the host's storage figures to res.
func hostStats(h *netherite.Host, workload string, res *Result) {
	res.LogWrites, res.EventsLogged = h.Stats()
	if res.LogWrites > 0 {
		res.StepsPerWrite = float64(res.EventsLogged) / float64(res.LogWrites)
	}
	if cs := h.CommitStats(); cs.Commits > 0 {
		us := func(d time.Duration) float64 { return float64(d) / 1e3 }
		res.Commits = cs.Commits
		if res.Seconds > 0 && res.Partitions > 0 {
			res.CommitsPerSPerPartition = float64(cs.Commits) / res.Seconds / float64(res.Partitions)
		}
		res.SyncP50Us, res.SyncP90Us, res.SyncP99Us = us(cs.Sync.Quantile(0.5)), us(cs.Sync.Quantile(0.9)), us(cs.Sync.Quantile(0.99))
		res.SyncMaxUs = us(cs.Sync.Max)
		res.CommitP50Us, res.CommitP99Us = us(cs.Commit.Quantile(0.5)), us(cs.Commit.Quantile(0.99))
	}
	_, res.StateLoads, _ = h.StateStats()
	res.SyncLoads = h.SyncLoads()
	steps := float64(stepsPer[workload] * res.Completed)
	if steps > 0 {
		res.LoadsPerStep = float64(res.StateLoads) / steps
	}
	res.StorageByKind = h.StorageRequestsByKind()
	if s, ok := h.AzureStorageStats(); ok {
		res.Episodes, res.Activities = s.Episodes, s.Activities
	}
	if res.StorageRequests = h.StorageRequests(); res.StorageRequests > 0 && steps > 0 {
		res.RequestsPerStep = float64(res.StorageRequests) / steps
	}
	if st, ok := h.EventHubsStats(); ok {
		res.EventHubsPackets, res.EventHubsEvents, res.EventHubsBatches = st.PacketsSent, st.EventsSent, st.BatchesSent
		res.EventsPerBatch, res.PacketsPerBatch, res.EventHubsBlobSends = st.EventsPerBatch(), st.PacketsPerBatch(), st.BlobsSent
	}
}

// firstQuery asks for one instance, as a user would after a restart.
func firstQuery(ctx context.Context, c durable.Client) error {
	page, err := c.Query(ctx, durable.InstanceQuery{PageSize: 1})
	if err != nil {
		return err
	}
	if len(page.Instances) == 0 {
		return errors.New("no instance after the restart")
	}
	return nil
}

// orchestrationOp starts orchestrator name and waits for it to complete.
func orchestrationOp(c durable.Client, name string, prog *progress) op {
	return func(ctx context.Context, i int, acked func()) error {
		defer prog.add()
		id, err := c.StartOrchestration(ctx, name, "world")
		if err != nil {
			return fail("start", err)
		}
		acked()
		return waitCompleted(ctx, c, id)
	}
}

// waitCompleted waits for instance id and fails unless it completed.
func waitCompleted(ctx context.Context, c durable.Client, id string) error {
	_, err := waitStatus(ctx, c, id)
	return err
}

// waitStatus waits for instance id and returns its status, or fails
// unless it completed.
func waitStatus(ctx context.Context, c durable.Client, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	s, err := c.WaitForCompletion(ctx, id, opts...)
	if err != nil {
		return nil, fail("wait", err)
	}
	if s.RuntimeStatus != core.StatusCompleted {
		return nil, &failure{kind: "status: " + s.RuntimeStatus.String(), err: fmt.Errorf("instance %s ended %s (%v)", id, s.RuntimeStatus, s.Failure)}
	}
	return s, nil
}

// fanOutOp runs one orchestration that calls n activities in parallel.
func fanOutOp(c durable.Client, n int) op {
	return func(ctx context.Context, _ int, acked func()) error {
		id, err := c.StartOrchestration(ctx, "BenchFanOut", n)
		if err != nil {
			return fail("start", err)
		}
		acked()
		s, err := waitStatus(ctx, c, id, durable.WithPayloads())
		if err != nil {
			return err
		}
		var sum int
		if err := s.ReadOutput(&sum); err != nil || sum != n*(n-1)/2 {
			return &failure{kind: "wrong output", err: fmt.Errorf("fanout: output %s, want %d (%v)", s.Output, n*(n-1)/2, err)}
		}
		return nil
	}
}

// runBank runs n transfers between accounts placed on every partition and
// checks that the total balance is conserved.
func runBank(ctx context.Context, c durable.Client, cfg Config, res *Result, prog *progress) (*recorder, time.Time, error) {
	parts := res.Partitions
	accounts := 2 * parts
	const initial = 1000
	key := func(i int) string { return fmt.Sprintf("acct%d!%d", i, i%parts) }
	for i := 0; i < accounts; i++ {
		if err := c.SignalEntity(ctx, core.NewEntityID("BenchAccount", key(i)), "add", initial); err != nil {
			return nil, time.Now(), err
		}
	}
	rec, t0 := closed(cfg, res).run(ctx, func(ctx context.Context, i int, acked func()) error {
		defer prog.add()
		from := (i * 7) % accounts
		to := (from + 1 + i%(accounts-1)) % accounts
		id, err := c.StartOrchestration(ctx, "BenchTransfer", [3]string{key(from), key(to)})
		if err != nil {
			return fail("start", err)
		}
		acked()
		return waitCompleted(ctx, c, id)
	})
	total := 0
	for i := 0; i < accounts; i++ {
		m, err := c.GetEntity(ctx, core.NewEntityID("BenchAccount", key(i)), true)
		if err != nil {
			return rec, t0, fmt.Errorf("bank: read account %s: %w", key(i), err)
		}
		var bal int
		if err := m.ReadState(&bal); err != nil {
			return rec, t0, err
		}
		total += bal
	}
	ok := total == accounts*initial
	res.Conserved = &ok
	if !ok {
		return rec, t0, fmt.Errorf("bank: TOTAL NOT CONSERVED: %d, want %d", total, accounts*initial)
	}
	return rec, t0, nil
}

// runColdCache runs hello5 on the same storage, each time on a fresh task
// hub: a discarded warm-up, then warm (the configured state cache) and
// cold (ColdCacheBytes, so that instances are evicted and read back from
// storage as far as the host allows; state_loads_per_step says how far).
// The result is the cold run's, with the warm run and the ratio.
func runColdCache(ctx context.Context, cfg Config) (*Result, error) {
	root := cfg.Storage
	if root == "" {
		dir, err := os.MkdirTemp("", "netherite-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		root = dir
	}
	run := func(what string, n int, cache int64) (*Result, error) {
		c := cfg
		c.Workload, c.N, c.CacheBytes, c.Storage = "hello5", n, cache, root
		if !isAzure(root) && root != "memory" {
			dir, err := os.MkdirTemp(root, what+"-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(dir)
			c.Storage = dir
		}
		res, err := runOne(ctx, c)
		if err != nil {
			return res, fmt.Errorf("hello5-coldcache: %s run: %w", what, err)
		}
		return res, nil
	}
	// A first run pays for warming up the process and the storage
	// service (Azurite's JIT): a discarded run of n/4 takes that cost.
	if _, err := run("warmup", max(1, cfg.N/4), cfg.CacheBytes); err != nil {
		return nil, err
	}
	warm, err := run("warm", cfg.N, cfg.CacheBytes)
	if err != nil {
		return warm, err
	}
	cold, err := run("cold", cfg.N, ColdCacheBytes)
	if cold == nil {
		return nil, err
	}
	cold.Workload, cold.Warm = "hello5-coldcache", warm
	if warm.OrchestrationsPerS > 0 {
		cold.ColdToWarm = cold.OrchestrationsPerS / warm.OrchestrationsPerS
	}
	return cold, err
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
