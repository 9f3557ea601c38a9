package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/bench"
)

// runCompare is `netherite bench compare`: every workload on every
// configuration, written as a report with tables and plots.
func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench-report", "directory of the report (report.json, report.md, PNG plots)")
	workloads := fs.String("workloads", strings.Join(bench.CompareWorkloads, ","), "comma-separated workloads to run")
	configs := fs.String("configs", strings.Join(bench.CompareConfigurations, ","), "comma-separated configurations to run")
	n := fs.Int("n", 1000, "hello5: orchestrations")
	rate := fs.Float64("rate", 20, "hello3-latency: offered starts per second")
	duration := fs.Duration("duration", 20*time.Second, "hello3-latency: how long the open loop starts orchestrations (rate x duration of them)")
	fanout := fs.Int("fanout", 1000, "fanout: activities")
	transfers := fs.Int("transfers", 500, "bank: transfers")
	signals := fs.Int("signals", 5000, "entity-signal: signals")
	entities := fs.Int("entities", bench.DefaultEntities, "entity-signal: counter entities")
	partitions := fs.Int("partitions", netherite.DefaultPartitionCount, "Netherite: partitions")
	storage := fs.String("storage", os.Getenv("NETHERITE_AZURITE"), "Azure Storage connection string of the Azurite configurations (default $NETHERITE_AZURITE)")
	eventhubs := fs.String("eventhubs", os.Getenv("NETHERITE_EVENTHUBS"), "Event Hubs connection string of the Event Hubs configuration (default $NETHERITE_EVENTHUBS)")
	timeout := fs.Duration("run-timeout", 10*time.Minute, "bound on each run; a run not done by then is reported as a timeout with what it completed")
	warmup := fs.Int("warmup", 20, "orchestrations of a discarded hello5 run on each configuration first (0: none)")
	profiles := fs.String("profile-dir", "", "write a CPU profile of each run into this directory (go tool pprof)")
	from := fs.String("from", "", "run nothing: draw report.md and the plots again from this report.json into -out")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: netherite bench compare [flags]\n\nRuns each workload (%s) on each configuration (%s)\nand writes report.json, report.md and PNG plots.\n\n",
			strings.Join(bench.CompareWorkloads, ", "), strings.Join(bench.CompareConfigurations, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "netherite bench compare: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *from != "" {
		rep, err := bench.ReadReport(*from)
		if err == nil {
			err = rep.Write(*out)
		}
		if err != nil {
			fmt.Fprintln(stderr, "netherite bench compare:", err)
			return 1
		}
		fmt.Fprintf(stdout, "report written to %s\n", filepath.Join(*out, "report.md"))
		return 0
	}
	w := *warmup
	if w == 0 {
		w = -1
	}
	o := bench.CompareOptions{Workloads: list(*workloads), Configurations: list(*configs), N: *n, Rate: *rate, Duration: *duration,
		FanOut: *fanout, Transfers: *transfers, Signals: *signals, Entities: *entities, Partitions: *partitions,
		Azurite: *storage, EventHubs: *eventhubs, RunTimeout: *timeout, Warmup: w, Log: stderr, ProfileDir: *profiles}
	rep, err := bench.Compare(ctx, o)
	if rep == nil {
		fmt.Fprintln(stderr, "netherite bench compare:", err)
		return 1
	}
	if werr := rep.Write(*out); werr != nil {
		fmt.Fprintln(stderr, "netherite bench compare:", werr)
		return 1
	}
	fmt.Fprintf(stdout, "report written to %s\n", filepath.Join(*out, "report.md"))
	if err != nil {
		fmt.Fprintln(stderr, "netherite bench compare:", err)
		return 1
	}
	return 0
}

// list splits a comma-separated flag value.
func list(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
