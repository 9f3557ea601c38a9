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
	"strings"
	"syscall"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/bench"
	"github.com/netherite-go/netherite/eventhubs/emulator"
)

func main() {
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
                    -functions runs it as an Azure Functions custom handler
  taskhub create|delete|info   manage a task hub (-storage, -taskhub, -partitions)
  eventhubs-emulator  run the local Event Hubs emulator (see -h)
  bench WORKLOAD    run a benchmark; workloads: %s
                    flags: -n -partitions -storage -rate -persist-first -cache-mb -json

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
		storage := fs.String("storage", "", `where state lives: a directory (default ./netherite-data/<taskhub>) or "memory"`)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := demo(ctx, stdout, netherite.Options{PartitionCount: *partitions, Storage: *storage}); err != nil {
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
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1000, "orchestrations (hello5, hello3-latency, bank) or activities (fanout)")
	partitions := fs.Int("partitions", netherite.DefaultPartitionCount, "number of partitions (1-32)")
	storage := fs.String("storage", "", `where state lives: a directory (default: a fresh temporary directory, removed afterwards) or "memory"`)
	rate := fs.Float64("rate", 100, "starts per second (hello3-latency)")
	persistFirst := fs.Bool("persist-first", false, "persist each step before applying it (no speculation)")
	cacheMB := fs.Int64("cache-mb", 0, "memory for partition state in MiB (default 256)")
	asJSON := fs.Bool("json", false, "print one JSON object")
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
	cfg := bench.Config{Workload: workload, N: *n, Partitions: *partitions, Storage: *storage, Rate: *rate,
		PersistStepsFirst: *persistFirst, CacheBytes: *cacheMB << 20}
	if !*asJSON && isTerminal(os.Stderr) {
		cfg.Progress = stderr
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
		fmt.Fprintf(stdout, "%s: n=%d partitions=%d storage=%s persist-first=%v\n", res.Workload, res.N, res.Partitions, res.Storage, res.PersistFirst)
		fmt.Fprintf(stdout, "  completed %d, failed %d in %.3fs: %.0f/s\n", res.Completed, res.Failed, res.Seconds, res.ThroughputPerS)
		fmt.Fprintf(stdout, "  latency p50 %.2fms p90 %.2fms p99 %.2fms\n", res.P50Ms, res.P90Ms, res.P99Ms)
		fmt.Fprintf(stdout, "  commit log: %d writes for %d events (%.1f events/write)\n", res.LogWrites, res.EventsLogged, res.StepsPerWrite)
		if res.HeapBytesPerInstance > 0 {
			fmt.Fprintf(stdout, "  heap per completed instance: %.0f bytes\n", res.HeapBytesPerInstance)
		}
		if res.StorageRequests > 0 {
			fmt.Fprintf(stdout, "  storage requests: %d (%.3f per orchestration step)\n", res.StorageRequests, res.RequestsPerStep)
		}
		if res.RecoverySeconds > 0 {
			fmt.Fprintf(stdout, "  restart (recovery of %d instances): %.3fs\n", res.Completed, res.RecoverySeconds)
		}
		if res.RSSBytes > 0 {
			fmt.Fprintf(stdout, "  process RSS holding %d instances: %.1f MiB\n", res.Completed, float64(res.RSSBytes)/(1<<20))
		}
		if res.Conserved != nil {
			fmt.Fprintf(stdout, "  bank total conserved: %v\n", *res.Conserved)
		}
	}
	if err != nil || res.Failed > 0 {
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func envLookup(name string) string { return os.Getenv(name) }
