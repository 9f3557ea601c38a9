package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/bench"
)

// runBenchElastic runs `netherite bench elastic`: hello5 at a fixed rate
// while elastic hosts in this process come and go.
func runBenchElastic(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench elastic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	partitions := fs.Int("partitions", netherite.DefaultPartitionCount, "number of partitions (1-32)")
	rate := fs.Float64("rate", 100, "offered hello5 starts per second (open loop)")
	hosts := fs.String("hosts", "1,3,2,1", "hosts in each phase: new hosts start, the newest stop gracefully")
	phase := fs.Duration("phase", 20*time.Second, "length of each phase")
	drain := fs.Duration("drain", time.Minute, "after the last phase, wait at most this long for outstanding orchestrations")
	window := fs.Duration("window", 250*time.Millisecond, "sampling interval (throughput, latency, partition owners)")
	storage := fs.String("storage", "", `shared storage of the hosts: a directory (default: a fresh temporary one, removed afterwards) or an Azure Storage connection string ("UseDevelopmentStorage=true" for Azurite)`)
	tf := addTransportFlags(fs)
	reportEvery := fs.Duration("report-interval", 0, "the hosts' load report interval (default: the host's)")
	hostTimeout := fs.Duration("host-timeout", 0, "a host silent for this long is dead (default: the host's)")
	out := fs.String("out", "bench-elastic", "directory for elastic-report.txt, elastic.json and elastic.png")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	counts, err := parseCounts(*hosts)
	if err != nil {
		fmt.Fprintln(stderr, "netherite bench elastic: -hosts:", err)
		return 2
	}
	var to netherite.Options
	tf.apply(&to)
	cfg := bench.ElasticConfig{Partitions: *partitions, Rate: *rate, Hosts: counts, Phase: *phase, Drain: *drain, Window: *window,
		Storage: *storage, Transport: to.Transport, EventHubsPrefix: to.EventHubsPrefix, EventHubsAdminURL: to.EventHubsAdminURL,
		ReportInterval: *reportEvery, HostTimeout: *hostTimeout}
	if !*asJSON {
		cfg.Progress = stderr
	}
	rep, err := bench.RunElastic(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "netherite bench elastic:", err)
		if rep == nil {
			return 1
		}
	}
	path, werr := rep.Write(*out)
	if werr != nil {
		fmt.Fprintln(stderr, "netherite bench elastic:", werr)
	}
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprint(stdout, rep.Text())
		if werr == nil {
			fmt.Fprintf(stdout, "\nwrote %s (and elastic-report.txt, elastic.json beside it)\n", path)
		}
	}
	if err != nil || werr != nil || rep.Failed > 0 {
		return 1
	}
	return 0
}

// runBenchHandover runs `netherite bench handover`: graceful moves of one
// partition between two elastic hosts.
func runBenchHandover(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench handover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	instances := fs.Int("instances", 10_000, "completed instances in the partition before the moves")
	moves := fs.Int("moves", 100, "graceful moves to time")
	storage := fs.String("storage", "", `shared storage: a directory (default: a fresh temporary one) or an Azure Storage connection string`)
	tf := addTransportFlags(fs)
	reportEvery := fs.Duration("report-interval", 0, "the hosts' load report interval (default: the host's)")
	hostTimeout := fs.Duration("host-timeout", 0, "a host silent for this long is dead (default: the host's)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var to netherite.Options
	tf.apply(&to)
	cfg := bench.HandoverConfig{Instances: *instances, Moves: *moves, Storage: *storage, Transport: to.Transport,
		EventHubsPrefix: to.EventHubsPrefix, EventHubsAdminURL: to.EventHubsAdminURL, ReportInterval: *reportEvery, HostTimeout: *hostTimeout}
	if !*asJSON && isTerminal(os.Stderr) {
		cfg.Progress = stderr
	}
	res, err := bench.RunHandover(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "netherite bench handover:", err)
		if res == nil {
			return 1
		}
	}
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprint(stdout, res.Text())
	}
	if err != nil {
		return 1
	}
	return 0
}

// parseCounts parses "1,3,2,1".
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want host counts of at least 1, such as 1,3,2,1", f)
		}
		out = append(out, n)
	}
	return out, nil
}
