package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
)

// CompareWorkloads are the workloads `netherite bench compare` runs.
var CompareWorkloads = []string{"hello5", "hello3-latency", "fanout", "bank", "entity-signal"}

// The configurations of the comparison, in report order.
const (
	ConfigMemory    = "netherite-memory"
	ConfigDisk      = "netherite-disk"
	ConfigAzurite   = "netherite-azurite"
	ConfigEventHubs = "netherite-eventhubs"
	ConfigBaseline  = "baseline-azurite"    // DurableTask.AzureStorage's design, default polling (30 s max)
	ConfigBaseline1 = "baseline-azurite-1s" // the same with 1 s maximum polling interval
)

// CompareConfigurations lists the configurations in report order.
var CompareConfigurations = []string{ConfigMemory, ConfigDisk, ConfigAzurite, ConfigEventHubs, ConfigBaseline, ConfigBaseline1}

// Baselines are the configurations ratios are taken against.
var Baselines = []string{ConfigBaseline, ConfigBaseline1}

// CompareOptions say what `bench compare` runs. Zero values take the
// defaults in brackets.
type CompareOptions struct {
	Workloads      []string // [CompareWorkloads]
	Configurations []string // [CompareConfigurations]
	// N is the orchestrations of hello5 [1000]; Rate and Duration make
	// the open loop of hello3-latency (Rate×Duration orchestrations)
	// [20/s, 20s]; FanOut the activities of fanout [1000]; Transfers the
	// orchestrations of bank [500]; Signals and Entities the signals and
	// counters of entity-signal [5000, 64].
	N         int
	Rate      float64
	Duration  time.Duration
	FanOut    int
	Transfers int
	Signals   int
	Entities  int
	// Partitions of the Netherite task hubs [12].
	Partitions int
	// Azurite is the connection string of the storage account of the
	// Azure configurations ("": they are not available).
	Azurite string
	// EventHubs is the Event Hubs connection string of the Event Hubs
	// configuration ("": not available).
	EventHubs string
	// RunTimeout bounds each run [10m]; a run still going a minute after
	// it is abandoned and reported as a timeout with what it completed.
	RunTimeout time.Duration
	// Warmup runs a discarded hello5 of this many orchestrations on each
	// configuration before its runs (the first run on a storage service
	// pays for warming it up) [20; negative: none].
	Warmup int
	// Log, if set, receives a line per run.
	Log io.Writer
	// ProfileDir, if set, receives a CPU profile of each run
	// (WORKLOAD-CONFIGURATION.pprof), to see where the time goes.
	ProfileDir string
}

func (o *CompareOptions) defaults() {
	if len(o.Workloads) == 0 {
		o.Workloads = CompareWorkloads
	}
	if len(o.Configurations) == 0 {
		o.Configurations = CompareConfigurations
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.N, 1000)
	def(&o.FanOut, 1000)
	def(&o.Transfers, 500)
	def(&o.Signals, 5000)
	def(&o.Entities, DefaultEntities)
	def(&o.Partitions, netherite.DefaultPartitionCount)
	if o.Warmup == 0 {
		o.Warmup = 20
	}
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = 10 * time.Minute
	}
}

// configuration is how one configuration of the comparison runs.
type configuration struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Backend     string        `json:"backend"`
	Storage     string        `json:"storage"` // "memory", "disk", "azurite": never a connection string
	Transport   string        `json:"transport"`
	Polling     time.Duration `json:"max_polling_interval_ns,omitempty"`
	// Unavailable says why the configuration cannot run here ("": it can).
	Unavailable string `json:"unavailable,omitempty"`
	storage     string
	transport   string
}

// configurationFor describes configuration name under o.
func configurationFor(name string, o *CompareOptions) (*configuration, error) {
	c := &configuration{Name: name, Backend: netherite.BackendNetherite, Transport: "memory"}
	noAzurite := "no Azurite: set NETHERITE_AZURITE or -storage (scripts/azurite/start.sh prints it)"
	switch name {
	case ConfigMemory:
		c.Description, c.Storage, c.storage = "Netherite, state in memory", "memory", "memory"
	case ConfigDisk:
		c.Description, c.Storage = "Netherite, state on local disk (a fresh temporary directory per run)", "disk"
	case ConfigAzurite:
		c.Description, c.Storage, c.storage = "Netherite, state in Azure Storage (Azurite), in-memory transport", "azurite", o.Azurite
		if o.Azurite == "" {
			c.Unavailable = noAzurite
		}
	case ConfigEventHubs:
		c.Description, c.Storage, c.storage = "Netherite, state in Azurite, Event Hubs transport (emulator)", "azurite", o.Azurite
		c.Transport, c.transport = "eventhubs", o.EventHubs
		switch {
		case o.Azurite == "":
			c.Unavailable = noAzurite
		case o.EventHubs == "":
			c.Unavailable = "no Event Hubs: set NETHERITE_EVENTHUBS or -eventhubs to an Event Hubs (emulator) connection string"
		}
	case ConfigBaseline, ConfigBaseline1:
		c.Backend, c.Storage, c.storage = netherite.BackendAzStorage, "azurite", o.Azurite
		c.Description = "baseline (DurableTask.AzureStorage design) on Azurite, default polling (back-off up to 30 s)"
		if name == ConfigBaseline1 {
			c.Polling = time.Second
			c.Description = "baseline (DurableTask.AzureStorage design) on Azurite, polling back-off up to 1 s"
		}
		if o.Azurite == "" {
			c.Unavailable = noAzurite
		}
	default:
		return nil, fmt.Errorf("bench compare: unknown configuration %q (want one of %v)", name, CompareConfigurations)
	}
	if c.Unavailable == "" {
		if err := probe(c, o.Partitions); err != nil {
			c.Unavailable = o.redact(err.Error())
		}
	}
	return c, nil
}

// redact replaces the connection strings in s (an error message) by
// their kind: a report never shows a key.
func (o *CompareOptions) redact(s string) string {
	for conn, name := range map[string]string{o.Azurite: "<storage connection string>", o.EventHubs: "<Event Hubs connection string>"} {
		if conn != "" {
			s = strings.ReplaceAll(s, conn, name)
		}
	}
	return s
}

// probe asks netherite.Start whether it accepts the configuration's
// options, without starting anything: with a cancelled context, Start
// validates the options and then gives up.
func probe(c *configuration, partitions int) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	storage := c.storage
	if storage == "" {
		storage = "memory"
	}
	cfg := Config{Partitions: partitions, Storage: storage, Backend: c.Backend, Transport: c.transport, PollingInterval: c.Polling}
	h, err := netherite.Start(ctx, hostOptions(cfg, "probe"), durable.NewRegistry())
	if h != nil {
		h.Stop(context.Background())
	}
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Run statuses.
const (
	StatusOK          = "ok"
	StatusFailed      = "failed"
	StatusTimeout     = "timeout"
	StatusUnavailable = "not available"
)

// CompareRun is one workload on one configuration.
type CompareRun struct {
	Workload      string  `json:"workload"`
	Configuration string  `json:"configuration"`
	Status        string  `json:"status"`
	Error         string  `json:"error,omitempty"`
	Result        *Result `json:"result,omitempty"`
	// Throughput is in Unit per second ("orchestrations", "activities",
	// "transfers", "signals").
	Throughput float64 `json:"throughput"`
	Unit       string  `json:"unit"`
	// Steps is what storage requests are divided by (StepUnit names it),
	// RequestsPerStep and ByKindPerStep the quotients.
	Steps           float64            `json:"steps,omitempty"`
	StepUnit        string             `json:"step_unit"`
	RequestsPerStep float64            `json:"storage_requests_per_step,omitempty"`
	ByKindPerStep   map[string]float64 `json:"storage_requests_per_step_by_kind,omitempty"`
	// CDF is the latency distribution: (ms, fraction) points.
	CDF [][2]float64 `json:"latency_cdf,omitempty"`
	// Timeline counts completions per IntervalS seconds from the start.
	IntervalS float64 `json:"timeline_interval_s,omitempty"`
	Timeline  []int   `json:"timeline,omitempty"`
}

// Compare runs every workload of o on every configuration, one run at a
// time, and returns what they measured. Failed, timed-out and unavailable
// runs are in the report with their reason; the error is only for
// options it cannot run at all.
func Compare(ctx context.Context, o CompareOptions) (*Report, error) {
	o.defaults()
	for _, w := range o.Workloads {
		if !slices.Contains(CompareWorkloads, w) {
			return nil, fmt.Errorf("bench compare: unknown workload %q (want some of %v)", w, CompareWorkloads)
		}
	}
	rep := newReport(o)
	for _, name := range o.Configurations {
		c, err := configurationFor(name, &o)
		if err != nil {
			return nil, err
		}
		rep.Configurations = append(rep.Configurations, c)
	}
	for _, c := range rep.Configurations {
		if c.Unavailable == "" && o.Warmup > 0 {
			logf(o.Log, "%s: warm-up (hello5 of %d, discarded)", c.Name, o.Warmup)
			cfg := o.config(c, "hello5")
			cfg.N, cfg.KeepSamples = o.Warmup, false
			if _, err := runBounded(ctx, cfg, o.RunTimeout); err != nil {
				logf(o.Log, "%s: warm-up: %v", c.Name, err)
			}
		}
		for _, w := range o.Workloads {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			run := &CompareRun{Workload: w, Configuration: c.Name}
			if c.Unavailable != "" {
				logf(o.Log, "%s on %s: not available: %s", w, c.Name, c.Unavailable)
			}
			run.Unit, run.StepUnit = units(w)
			rep.Runs = append(rep.Runs, run)
			if c.Unavailable != "" {
				run.Status, run.Error = StatusUnavailable, c.Unavailable
				continue
			}
			stopProfile, err := o.profile(w, c.Name)
			if err != nil {
				return rep, err
			}
			start := time.Now()
			res, err := runBounded(ctx, o.config(c, w), o.RunTimeout)
			stopProfile()
			run.fill(res, err)
			run.Error = o.redact(run.Error)
			if run.Result != nil {
				run.Result.FirstError = o.redact(run.Result.FirstError)
			}
			logf(o.Log, "%s on %s: %s in %.1fs, %.1f %s/s, p50 %.1fms%s", w, c.Name, run.Status, time.Since(start).Seconds(),
				run.Throughput, run.Unit, run.p50(), errSuffix(run.Error))
		}
	}
	rep.ratios()
	rep.Finished = time.Now().UTC()
	return rep, nil
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// profile starts the CPU profile of workload w on configuration c, if
// asked for, and returns what stops it.
func (o *CompareOptions) profile(w, c string) (stop func(), err error) {
	if o.ProfileDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench compare: profile: %w", err)
	}
	f, err := os.Create(filepath.Join(o.ProfileDir, w+"-"+c+".pprof"))
	if err != nil {
		return nil, fmt.Errorf("bench compare: profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench compare: profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// config is the bench configuration of workload w on c.
func (o *CompareOptions) config(c *configuration, w string) Config {
	cfg := Config{Workload: w, Partitions: o.Partitions, Storage: c.storage, Backend: c.Backend, Transport: c.transport,
		PollingInterval: c.Polling, Timeout: o.RunTimeout, KeepSamples: true, Entities: o.Entities}
	switch w {
	case "hello5":
		cfg.N = o.N
	case "hello3-latency":
		cfg.Rate = o.Rate
		cfg.N = max(1, int(o.Rate*o.Duration.Seconds()))
	case "fanout":
		cfg.N = o.FanOut
	case "bank":
		cfg.N = o.Transfers
	case "entity-signal":
		cfg.N = o.Signals
	}
	return cfg
}

// units names what a workload's throughput counts, and the unit its
// storage requests are divided by.
func units(w string) (unit, step string) {
	switch w {
	case "hello5", "hello3-latency":
		return "orchestrations", "orchestration step"
	case "fanout":
		return "activities", "activity"
	case "bank":
		return "transfers", "transfer"
	case "entity-signal":
		return "signals", "signal"
	}
	return "orchestrations", "orchestration"
}

// runBounded runs cfg and gives up on it a minute after its timeout, if
// it is still going then (a run that hangs must not hang the comparison).
func runBounded(ctx context.Context, cfg Config, timeout time.Duration) (*Result, error) {
	type out struct {
		res *Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		res, err := Run(ctx, cfg)
		ch <- out{res, err}
	}()
	grace := time.NewTimer(timeout + time.Minute)
	defer grace.Stop()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-grace.C:
		return nil, fmt.Errorf("run abandoned %v after its %v timeout: %w", time.Minute, timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fill sets the run's status and figures from a result.
func (r *CompareRun) fill(res *Result, err error) {
	r.Result = res
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		r.Status, r.Error = StatusTimeout, err.Error()
	case err != nil:
		r.Status, r.Error = StatusFailed, err.Error()
	case res == nil:
		r.Status, r.Error = StatusFailed, "no result"
	case res.Failed > 0 && res.Errors != nil && timedOut(res.Errors):
		r.Status, r.Error = StatusTimeout, fmt.Sprintf("%d of %d not done in time: %s", res.Failed, res.Failed+res.Completed, ErrorsLine(res.Errors))
	case res.Failed > 0:
		r.Status, r.Error = StatusFailed, fmt.Sprintf("%d failed: %s", res.Failed, ErrorsLine(res.Errors))
	default:
		r.Status = StatusOK
	}
	if res == nil {
		return
	}
	switch r.Unit {
	case "activities":
		r.Throughput = res.ActivitiesPerS
	case "transfers":
		r.Throughput = res.TransfersPerS
	case "signals":
		r.Throughput = res.SignalsPerS
	default:
		r.Throughput = res.OrchestrationsPerS
	}
	r.Steps = stepsOf(r.Workload, res)
	if r.Steps > 0 && res.StorageRequests > 0 {
		r.RequestsPerStep = float64(res.StorageRequests) / r.Steps
		r.ByKindPerStep = map[string]float64{}
		for k, v := range res.StorageByKind {
			r.ByKindPerStep[k] = float64(v) / r.Steps
		}
	}
	if s := res.Samples; s != nil {
		r.CDF = cdf(s.Latencies, 200)
		r.IntervalS, r.Timeline = timeline(s.Done, 40)
	}
}

func (r *CompareRun) p50() float64 {
	if r.Result == nil {
		return 0
	}
	return r.Result.P50Ms
}

func timedOut(errs map[string]int) bool {
	for k := range errs {
		if strings.HasSuffix(k, "timeout") {
			return true
		}
	}
	return false
}

// stepsOf is what a run's storage requests are divided by: orchestration
// steps (episodes: one per start and one per activity result, as
// stepsPer counts them) for the sequences, activities for fanout,
// transfers for bank and signals for entity-signal, all of them
// completed ones.
func stepsOf(w string, res *Result) float64 {
	switch w {
	case "fanout":
		if res.Completed == 1 {
			return float64(res.N)
		}
		return 0
	case "bank", "entity-signal":
		return float64(res.Completed)
	}
	return float64(stepsPer[w] * res.Completed)
}

// cdf is the empirical distribution of d as at most points (ms,
// fraction) pairs, the last at fraction 1.
func cdf(d []time.Duration, points int) [][2]float64 {
	if len(d) == 0 {
		return nil
	}
	xs := slices.Clone(d)
	slices.Sort(xs)
	n := len(xs)
	step := max(1, n/points)
	var out [][2]float64
	for i := step - 1; i < n; i += step {
		out = append(out, [2]float64{ms(xs[i]), float64(i+1) / float64(n)})
	}
	if out[len(out)-1][1] != 1 {
		out = append(out, [2]float64{ms(xs[n-1]), 1})
	}
	return out
}

// timeline counts the completions in buckets of a round interval chosen
// to give about buckets of them over the run (at least 10 ms).
func timeline(done []time.Duration, buckets int) (intervalS float64, counts []int) {
	if len(done) == 0 {
		return 0, nil
	}
	last := slices.Max(done)
	iv := roundInterval(last / time.Duration(buckets))
	counts = make([]int, int(last/iv)+1)
	for _, t := range done {
		counts[max(0, int(t/iv))]++
	}
	return iv.Seconds(), counts
}

// roundInterval rounds d up to 1, 2 or 5 times a power of ten
// milliseconds, at least 10 ms.
func roundInterval(d time.Duration) time.Duration {
	for iv := 10 * time.Millisecond; ; iv *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			if m*iv >= d {
				return m * iv
			}
		}
	}
}
