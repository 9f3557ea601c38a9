// Command netherite is the command line of Netherite for Go.
//
//	netherite demo                 run the sample workflows and print what happened
//	netherite bench WORKLOAD       run a benchmark workload
//	netherite serve                serve the Durable Functions HTTP API for the samples
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/bench"
	"github.com/netherite-go/netherite/eventhubs/emulator"
)

func main() {
	bench.RunChildIfRequested() // crash-recovery re-executes this binary as its load child
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: netherite <command> [flags]

commands:
  demo              run the sample workflows (hello sequence, fan-out/fan-in,
                    counter entity, bank transfers) on an embedded host
  serve             run a host with the sample functions and the Durable
                    Functions HTTP API on -addr (default 127.0.0.1:7071);
                    -functions runs it as an Azure Functions custom handler;
                    -elastic lets hosts join and leave (the load monitor places
                    partitions); GET /runtime/webhooks/durabletask/scale and
                    /metrics tell the load and how many hosts to run
  taskhub create|delete|info   manage a task hub (-storage, -taskhub, -partitions;
                    with -transport also its Event Hubs hubs)
  taskhub status    the load monitor's view of an elastic task hub: hosts,
                    partitions with owner and load, scale recommendation (-json)
  eventhubs-emulator  run the local Event Hubs emulator (see -h)
  bench WORKLOAD    run a benchmark; workloads: %s
                    flags: -n -partitions -storage -transport -rate -inflight
                    -persist-first -cache-mb -timeout -seed -json
  bench compare     run the workloads on Netherite and on the Azure Storage
                    baseline; writes bench-report/ (see 'bench compare -h')
  bench elastic     hello5 at a fixed rate while elastic hosts go 1 -> 3 -> 2 -> 1;
                    writes bench-elastic/ with a PNG (see 'bench elastic -h')
  bench handover    time graceful moves of one partition between two elastic
                    hosts (see 'bench handover -h')

run 'netherite <command> -h' for the flags of a command
`, strings.Join(bench.Workloads, ", "))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(stderr)
		partitions := fs.Int("partitions", 0, "number of partitions (1-32) of a new task hub (default 12, or the existing hub's)")
		storage := fs.String("storage", "", `where state lives: a directory (default ./netherite-data/<taskhub>), "memory", `+
			`an Azure Storage connection string, "UseDevelopmentStorage=true" (Azurite) or an account URL`)
		tf := addTransportFlags(fs)
		backend := backendFlags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		o := netherite.Options{PartitionCount: *partitions, Storage: *storage}
		tf.apply(&o)
		backend(&o)
		if err := demo(ctx, stdout, o); err != nil {
			fmt.Fprintln(stderr, "netherite demo:", err)
			return 1
		}
		return 0
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "taskhub":
		return runTaskHub(ctx, args[1:], stdout, stderr)
	case "eventhubs-emulator":
		return emulator.Run(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "netherite: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runCompare(ctx, args[1:], stdout, stderr)
		case "elastic":
			return runBenchElastic(ctx, args[1:], stdout, stderr)
		case "handover":
			return runBenchHandover(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000, "orchestrations (hello5, hello3-latency, bank, crash-recovery, ...) or activities (fanout)")
	partitions := fs.Int("partitions", netherite.DefaultPartitionCount, "number of partitions (1-32)")
	storage := fs.String("storage", "", `where state lives: a directory (default: a fresh temporary directory, removed afterwards), "memory", or an Azure Storage connection string`)
	rate := fs.Float64("rate", 100, "offered starts per second of the open loop (hello3-latency, crash-recovery)")
	inflight := fs.Int("inflight", bench.DefaultInFlight, "closed loop (hello5, bank, hold, clean-restart): at most this many orchestrations in flight; -1: all started at once")
	persistFirst := fs.Bool("persist-first", false, "persist each step before applying it (the same as -speculation none)")
	speculation := fs.String("speculation", "local", "what may happen before a step is durable: none, local or global")
	cacheMB := fs.Int64("cache-mb", 0, "memory for partition state in MiB (default 256)")
	timeout := fs.Duration("timeout", 30*time.Minute, "bound on the run; what is not done by then counts as failed")
	seed := fs.Int64("seed", 0, "crash-recovery: seed of the kill moment (default: from the clock)")
	ckptEvents := fs.Int("checkpoint-events", 0, "checkpoint each partition after this many events (default 10,000)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	commitDelay := fs.Duration("commit-delay", 0, `with -storage memory: every commit takes this long (a simulated device, to count commits on the critical path)`)
	tf := addTransportFlags(fs)
	taskHub := fs.String("taskhub", "", "run on this existing task hub (kept afterwards) instead of a fresh one")
	owned := fs.String("partitions-owned", "", `partitions this process runs: "all" (default), "none" (drive hosts started with `+
		"`netherite serve` on the same -taskhub, -storage and -transport), or a list such as 0-5")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof -top FILE)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: netherite bench [flags] WORKLOAD\nworkloads: %s\n", strings.Join(bench.Workloads, ", "))
		fs.PrintDefaults()
	}
	// Accept the workload before or after the flags.
	var workload string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		workload, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if workload == "" && fs.NArg() > 0 {
		workload = fs.Arg(0)
	}
	if workload == "" {
		fs.Usage()
		return 2
	}
	spec, err := netherite.ParseSpeculation(*speculation)
	if err != nil {
		fmt.Fprintln(stderr, "netherite bench:", err)
		return 2
	}
	cfg := bench.Config{Speculation: spec, Workload: workload, N: *n, Partitions: *partitions, Storage: *storage, Rate: *rate, InFlight: *inflight,
		PersistStepsFirst: *persistFirst, CacheBytes: *cacheMB << 20, Timeout: *timeout, Seed: *seed, CheckpointEvents: *ckptEvents, CommitDelay: *commitDelay,
		TaskHub: *taskHub}
	var to netherite.Options
	tf.apply(&to)
	cfg.Transport, cfg.EventHubsPrefix, cfg.EventHubsAdminURL = to.Transport, to.EventHubsPrefix, to.EventHubsAdminURL
	if cfg.Owned, err = parsePartitionList(*owned); err != nil {
		fmt.Fprintln(stderr, "netherite bench: -partitions-owned:", err)
		return 2
	}
	if !*asJSON && isTerminal(os.Stderr) {
		cfg.Progress = stderr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "netherite bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "netherite bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "netherite bench:", err)
		if res == nil {
			return 1
		}
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	} else {
		printBench(stdout, res)
	}
	if err != nil || res.Failed > 0 {
		return 1
	}
	return 0
}

// printBench prints a result for people; -json has every figure.
func printBench(w io.Writer, res *bench.Result) {
	if res.Warm != nil {
		fmt.Fprintf(w, "warm run (state cache %s):\n", cacheName(res.Warm.CacheBytes))
		printBench(w, res.Warm)
		fmt.Fprintf(w, "cold run (state cache %s):\n", cacheName(res.CacheBytes))
	}
	tr := res.Transport
	if tr == "" {
		tr = "memory"
	}
	fmt.Fprintf(w, "%s: n=%d partitions=%d storage=%s transport=%s speculation=%s\n", res.Workload, res.N, res.Partitions, res.Storage, tr, res.Speculation)
	switch res.Mode {
	case "open-loop":
		fmt.Fprintf(w, "  open loop: offered %.0f starts/s, achieved %.0f/s", res.OfferedPerS, res.AchievedPerS)
		if res.MaxIssueLagMs > 0 {
			fmt.Fprintf(w, " (harness at most %.1fms behind schedule)", res.MaxIssueLagMs)
		}
		fmt.Fprintln(w)
	case "closed-loop":
		if res.InFlightCap >= res.N {
			fmt.Fprintf(w, "  closed loop: all %d started at once\n", res.N)
		} else {
			fmt.Fprintf(w, "  closed loop: at most %d orchestrations in flight\n", res.InFlightCap)
		}
	}
	if res.Workload == "crash-recovery" {
		fmt.Fprintf(w, "  of the %d starts acknowledged before the kill, %d completed after the restart, %d failed\n", res.AckedBeforeKill, res.Completed, res.Failed)
	} else {
		rates := fmt.Sprintf("%.0f orchestrations/s", res.OrchestrationsPerS)
		if res.ActivitiesPerS > 0 {
			rates += fmt.Sprintf(", %.0f activities/s", res.ActivitiesPerS)
		}
		if res.TransfersPerS > 0 {
			rates += fmt.Sprintf(", %.0f transfers/s", res.TransfersPerS)
		}
		if res.SignalsPerS > 0 {
			rates = fmt.Sprintf("%.0f signals/s", res.SignalsPerS)
		}
		fmt.Fprintf(w, "  completed %d, failed %d in %.3fs: %s\n", res.Completed, res.Failed, res.Seconds, rates)
	}
	if res.Failed > 0 {
		fmt.Fprintf(w, "  failures: %s\n", bench.ErrorsLine(res.Errors))
	}
	if res.LatencyFrom != "" {
		fmt.Fprintf(w, "  latency from %s: p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms\n", res.LatencyFrom, res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs)
	}
	fmt.Fprintf(w, "  commit log: %d writes for %d events (%.1f events/write)\n", res.LogWrites, res.EventsLogged, res.StepsPerWrite)
	if res.Commits > 0 {
		fmt.Fprintf(w, "  commits: %d, %.0f/s per partition; flush p50 %.0fµs p90 %.0fµs p99 %.0fµs max %.0fµs; commit p50 %.0fµs p99 %.0fµs\n",
			res.Commits, res.CommitsPerSPerPartition, res.SyncP50Us, res.SyncP90Us, res.SyncP99Us, res.SyncMaxUs, res.CommitP50Us, res.CommitP99Us)
	}
	if res.StateLoads > 0 {
		fmt.Fprintf(w, "  state loads from storage: %d (%.3f per orchestration step), %d of them on the event loop\n", res.StateLoads, res.LoadsPerStep, res.SyncLoads)
	}
	if res.HeapBytesPerInstance > 0 {
		fmt.Fprintf(w, "  heap per completed instance: %.0f bytes\n", res.HeapBytesPerInstance)
	}
	if res.StorageRequests > 0 {
		fmt.Fprintf(w, "  storage requests: %d (%.3f per orchestration step)\n", res.StorageRequests, res.RequestsPerStep)
	}
	if res.EventHubsBatches > 0 {
		fmt.Fprintf(w, "  Event Hubs: %d packets in %d events in %d batches (%.1f events, %.1f packets per batch), %d payloads through blobs\n",
			res.EventHubsPackets, res.EventHubsEvents, res.EventHubsBatches, res.EventsPerBatch, res.PacketsPerBatch, res.EventHubsBlobSends)
	}
	if res.KillAfterS > 0 {
		fmt.Fprintf(w, "  killed (SIGKILL) %.3fs into the load (seed %d): %d starts acknowledged, %d completed by then\n",
			res.KillAfterS, res.Seed, res.AckedBeforeKill, res.CompletedBeforeKill)
	}
	if res.RecoverySeconds > 0 {
		fmt.Fprintf(w, "  restart: host started in %.3fs, first query answered at %.3fs; replayed %d events (%d bytes) of commit log\n",
			res.RestartSeconds, res.RecoverySeconds, res.ReplayedEvents, res.ReplayedBytes)
	}
	if res.DrainSeconds > 0 {
		fmt.Fprintf(w, "  every acknowledged start completed %.3fs after the restart\n", res.DrainSeconds)
	}
	if res.Warm != nil && res.ColdToWarm > 0 {
		fmt.Fprintf(w, "cold/warm throughput: %.3f\n", res.ColdToWarm)
	}
	if res.RSSBytes > 0 {
		fmt.Fprintf(w, "  process RSS holding %d instances: %.1f MiB\n", res.Completed, float64(res.RSSBytes)/(1<<20))
	}
	if ch := res.Chain; ch != nil {
		fmt.Fprintf(w, "  per hop between partitions (%d hops, depth %d): p50 %.2fms p90 %.2fms p99 %.2fms; down (start) p50 %.2fms p99 %.2fms; up (completion) p50 %.2fms p99 %.2fms\n",
			ch.Hops, ch.Depth, ch.HopP50Ms, ch.HopP90Ms, ch.HopP99Ms, ch.DownP50Ms, ch.DownP99Ms, ch.UpP50Ms, ch.UpP99Ms)
	}
	if res.Conserved != nil {
		fmt.Fprintf(w, "  bank total conserved: %v\n", *res.Conserved)
	}
}

func cacheName(b int64) string {
	if b == 0 {
		return "default"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func envLookup(name string) string { return os.Getenv(name) }
