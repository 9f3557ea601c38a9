package bench

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A tiny elastic run (1 → 2 → 1 hosts, a few seconds each) produces a
// report and a figure whose numbers agree with each other, and every
// orchestration it started completes. Nothing here is timed pass/fail.
func TestElasticRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs elastic hosts for ~10 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := ElasticConfig{Partitions: 4, Rate: 20, Hosts: []int{1, 2, 1}, Phase: 3 * time.Second, Drain: time.Minute,
		ReportInterval: 200 * time.Millisecond, HostTimeout: time.Second, Storage: t.TempDir()}
	rep, err := RunElastic(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Text())
	const n = 20 * 9
	if rep.Issued != n || rep.Completed+rep.Failed != n {
		t.Errorf("issued %d, completed %d, failed %d: want %d issued, all ended", rep.Issued, rep.Completed, rep.Failed, n)
	}
	if rep.Failed > 0 {
		t.Errorf("%d failed (%s): %s", rep.Failed, ErrorsLine(rep.Errors), rep.FirstError)
	}
	phased, windowed := 0, 0
	for _, ph := range rep.Phases {
		phased += ph.Completed
	}
	for _, w := range rep.Windows {
		windowed += w.Completed
	}
	if phased != rep.Completed || windowed != rep.Completed {
		t.Errorf("completions: %d in phases, %d in windows, %d in all", phased, windowed, rep.Completed)
	}
	if len(rep.Phases) < 3 || rep.Phases[0].Hosts != 1 || rep.Phases[1].Hosts != 2 || rep.Phases[2].Hosts != 1 {
		t.Errorf("phases %+v", rep.Phases)
	}
	var actions []string
	for _, e := range rep.HostEvents {
		actions = append(actions, e.Action+" "+e.Host)
		if e.Err != "" {
			t.Errorf("%s %s: %s", e.Action, e.Host, e.Err)
		}
	}
	if got := strings.Join(actions, ", "); !strings.HasPrefix(got, "start h0, start h1, stop h1") {
		t.Errorf("host events: %s", got)
	}
	// Each phase has samples, and they name only the hosts running then.
	run := rep.run
	for _, ph := range run.Phases {
		seen := 0
		for _, s := range run.Samples {
			if s.At >= ph.From && s.At < ph.To {
				seen++
			}
		}
		if seen == 0 {
			t.Errorf("no sample in phase %+v", ph)
		}
	}
	for _, s := range run.Samples {
		for p, o := range s.Owners {
			for _, id := range strings.Split(o, "+") {
				if id != "" && !contains(s.Hosts, id) {
					t.Errorf("sample at %v: partition %d on %s, not among %v", s.At, p, id, s.Hosts)
				}
			}
		}
	}
	dir := t.TempDir()
	path, err := rep.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	if txt, err := os.ReadFile(filepath.Join(dir, "elastic-report.txt")); err != nil || !strings.Contains(string(txt), "longest stall") {
		t.Errorf("elastic-report.txt: %v", err)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// BenchmarkHandover moves one partition holding NETHERITE_HANDOVER_INSTANCES
// (default 10,000) completed instances between two elastic hosts b.N times
// by stopping its host gracefully, and reports the p50 and p99 time from
// the Stop call to the partition running on the other host:
//
//	go test -run '^$' -bench Handover -benchtime 100x ./bench/
func BenchmarkHandover(b *testing.B) {
	n := 10_000
	if s := os.Getenv("NETHERITE_HANDOVER_INSTANCES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatalf("NETHERITE_HANDOVER_INSTANCES: %v", err)
		}
	}
	res, err := RunHandover(context.Background(), HandoverConfig{Instances: n, Moves: b.N, Storage: b.TempDir(), BeforeMoves: b.ResetTimer})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.P50Ms, "p50-ms")
	b.ReportMetric(res.P99Ms, "p99-ms")
	b.ReportMetric(res.MaxMs, "max-ms")
	b.Log("\n" + res.Text())
}
