package bench

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/bench/plot"
)

const msec = time.Millisecond

// madeUpRun is a small elastic run with known figures: 10 starts/s over
// two phases (1 host a, then a and b), a stall from 2.0 s to 3.05 s, a
// failure, a start never issued, partition 1 moving from a to b, and one
// sample where two hosts claim partition 0.
func madeUpRun() *ElasticRun {
	r := &ElasticRun{Workload: "hello5", Storage: "dir", Partitions: 2, Rate: 10, Window: 250 * msec,
		Phases: []ElasticPhase{{1, 0, 2 * time.Second}, {2, 2 * time.Second, 4 * time.Second}}, End: 5 * time.Second,
		Errors: map[string]int{"status: Failed": 1, "start: canceled": 1}}
	for i := 0; i < 40; i++ {
		due := time.Duration(i) * 100 * msec
		o := ElasticOp{Due: due, Issued: true, AckAt: due + 10*msec, EndAt: due + 50*msec, OK: true}
		switch {
		case i >= 20 && i < 30:
			o.EndAt = 3200 * msec
		case i == 35:
			o.OK, o.EndAt = false, 3600*msec
		case i == 39:
			o = ElasticOp{Due: due, AckAt: -1, EndAt: -1}
		}
		r.Ops = append(r.Ops, o)
	}
	for t := time.Duration(0); t < 5*time.Second; t += 250 * msec {
		s := OwnerSample{At: t, Hosts: []string{"a"}, Owners: []string{"a", "a"}}
		if t >= 2*time.Second {
			s.Hosts = []string{"a", "b"}
		}
		switch {
		case t == 2500*msec:
			s.Owners = []string{"a", ""}
		case t == 4500*msec:
			s.Owners = []string{"a+b", "b"}
		case t > 2500*msec:
			s.Owners = []string{"a", "b"}
		}
		r.Samples = append(r.Samples, s)
	}
	r.Events = []HostEvent{{At: -time.Second, Took: 100 * msec, Host: "a", Action: "start"}, {At: 2 * time.Second, Took: 50 * msec, Host: "b", Action: "start"}}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestElasticAnalyze(t *testing.T) {
	rep := madeUpRun().Analyze()
	if rep.Issued != 39 || rep.Completed != 38 || rep.Failed != 2 {
		t.Errorf("issued %d completed %d failed %d, want 39 38 2", rep.Issued, rep.Completed, rep.Failed)
	}
	if len(rep.Phases) != 3 || rep.Phases[2].Name != "drain" {
		t.Fatalf("phases %+v, want 1 host, 2 hosts, drain", rep.Phases)
	}
	p1, p2, drain := rep.Phases[0], rep.Phases[1], rep.Phases[2]
	if p1.Name != "1 host" || p1.Completed != 20 || !near(p1.CompletedPerS, 10) || !near(p1.AchievedPerS, 10) || p1.P50Ms != 50 || p1.P99Ms != 50 {
		t.Errorf("phase 1: %+v", p1)
	}
	if p1.BalancedAfterS != 0 || p1.Placement != "a:2" {
		t.Errorf("phase 1 placement: balanced after %v, %q", p1.BalancedAfterS, p1.Placement)
	}
	// Phase 2: ops 20-29 end at 3.2 s (latencies 1.2 s down to 0.3 s),
	// 8 more complete in 50 ms, op 35 fails.
	if p2.Name != "2 hosts" || p2.Completed != 18 || p2.Failed != 1 || !near(p2.CompletedPerS, 9) || p2.MaxMs != 1200 || p2.P50Ms != 300 {
		t.Errorf("phase 2: %+v", p2)
	}
	if !near(p2.BalancedAfterS, 0.75) || p2.Placement != "a:1 b:1" {
		t.Errorf("phase 2 placement: balanced after %v, %q", p2.BalancedAfterS, p2.Placement)
	}
	if drain.Completed != 0 || drain.OfferedPerS != 0 || drain.FromS != 4 || drain.ToS != 5 {
		t.Errorf("drain: %+v", drain)
	}
	if !near(rep.Stall.Seconds, 1.05) || !near(rep.Stall.FromS, 2) || !near(rep.Stall.ToS, 3.05) {
		t.Errorf("stall %+v, want 1.05 s from 2 s", rep.Stall)
	}
	if len(rep.Handovers) != 1 {
		t.Fatalf("handovers %+v, want p1 a → b", rep.Handovers)
	}
	if h := rep.Handovers[0]; h.Partition != 1 || h.From != "a" || h.To != "b" || !near(h.LastSeenS, 2.25) || !near(h.OwnedS, 2.75) || !near(h.GapS, 0.5) {
		t.Errorf("handover %+v", h)
	}
	// p1 ran nowhere at 2.5 s: from its last sample on a (2.25 s) to
	// its first on b (2.75 s).
	if len(rep.Outages) != 1 || rep.Outages[0] != (Outage{Partition: 1, FromS: 2.25, ToS: 2.75, Seconds: 0.5, Ended: true}) {
		t.Errorf("outages %+v", rep.Outages)
	}
	// The slowest: op 20 (due 2.0 s, done 3.2 s), then op 21.
	if len(rep.Slowest) != 10 || rep.Slowest[0] != (SlowOp{DueS: 2, EndS: 3.2, LatencyMs: 1200}) || !near(rep.Slowest[1].DueS, 2.1) {
		t.Errorf("slowest %+v", rep.Slowest)
	}
	if rep.Conflicts != 1 {
		t.Errorf("conflicts %d, want 1", rep.Conflicts)
	}
	if len(rep.Windows) != 20 {
		t.Fatalf("%d windows, want 20", len(rep.Windows))
	}
	sum := 0
	for _, w := range rep.Windows {
		sum += w.Completed
	}
	if sum != rep.Completed {
		t.Errorf("windows hold %d completions, the run %d", sum, rep.Completed)
	}
	// Window 12 (3.0-3.25 s) holds the 10 stalled ones and ops 30, 31.
	if w := rep.Windows[12]; w.Completed != 12 || !near(w.PerS, 48) || w.P99Ms != 1200 {
		t.Errorf("window 12: %+v", w)
	}
	// At 2.5 s ops 20-25 are out.
	if w := rep.Windows[9]; w.Outstanding != 6 || w.Completed != 0 {
		t.Errorf("window 9: %+v", w)
	}
	txt := rep.Text()
	for _, want := range []string{"longest stall", "1.050s", "p1  a → b at 2.75s (gap ≤ 0.50s)", "2 hosts", "drain", "failures: start: canceled ×1, status: Failed ×1", "two hosts said they ran one partition: 1", "p1  0.50s from 2.25s to 2.75s (ran again)"} {
		if !strings.Contains(txt, want) {
			t.Errorf("report lacks %q:\n%s", want, txt)
		}
	}
}

// Work that never ends stalls until the run's end; a failure that leaves
// nothing outstanding ends a stall.
func TestElasticStallEdges(t *testing.T) {
	r := &ElasticRun{End: 10 * time.Second, Ops: []ElasticOp{
		{Due: 0, Issued: true, EndAt: time.Second, OK: true},
		{Due: 2 * time.Second, Issued: true, EndAt: 5 * time.Second},
		{Due: 6 * time.Second, Issued: true, EndAt: -1},
	}}
	if s := r.longestStall(); !near(s.Seconds, 4) || !near(s.FromS, 6) {
		t.Errorf("stall %+v, want 4 s from 6 s (never ended)", s)
	}
	r.End = 8 * time.Second
	if s := r.longestStall(); !near(s.Seconds, 3) || !near(s.FromS, 2) {
		t.Errorf("stall %+v, want 3 s from 2 s (ended by the failure)", s)
	}
}

// A partition that stops running and never comes back is an outage to
// the run's end; one never seen running is not.
func TestElasticOutageToTheEnd(t *testing.T) {
	r := &ElasticRun{Partitions: 2, End: 3 * time.Second, Samples: []OwnerSample{
		{At: 0, Owners: []string{"a", ""}},
		{At: time.Second, Owners: []string{"", ""}},
		{At: 2 * time.Second, Owners: []string{"", ""}},
	}}
	got := r.outages()
	if len(got) != 1 || got[0] != (Outage{Partition: 0, FromS: 0, ToS: 3, Seconds: 3}) {
		t.Errorf("outages %+v", got)
	}
}

func TestElasticWriteAndFigure(t *testing.T) {
	rep := madeUpRun().Analyze()
	dir := t.TempDir()
	if keep := os.Getenv("NETHERITE_BENCH_KEEP"); keep != "" {
		dir = keep // to look at the figure
	}
	path, err := rep.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"elastic-report.txt", "elastic.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w, h := img.Bounds().Dx(), img.Bounds().Dy(); w != elasticPlotW || h != 2*elasticLineH+150+14*2 {
		t.Errorf("figure %dx%d", w, h)
	}
	// The owners panel shows host a's colour, host b's, and black for
	// the conflict.
	found := map[[3]uint8]bool{}
	y0 := 2 * elasticLineH
	for y := y0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < img.Bounds().Dx(); x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			found[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}] = true
		}
	}
	for name, c := range map[string][3]uint8{"a": {plot.Palette[0].R, plot.Palette[0].G, plot.Palette[0].B}, "b": {plot.Palette[1].R, plot.Palette[1].G, plot.Palette[1].B}} {
		if !found[c] {
			t.Errorf("owners panel lacks host %s's colour", name)
		}
	}
	bands, legend := rep.ownerBands()
	if len(legend) != 2 || legend[0] != "a" || legend[1] != "b" {
		t.Errorf("legend %v", legend)
	}
	// p0: a, then the conflict at 4.5 s, then a again.
	want := []plot.Span{{X0: 0, X1: 4.5, Colour: 1}, {X0: 4.5, X1: 4.75, Colour: plot.Conflict}, {X0: 4.75, X1: 5, Colour: 1}}
	if got := bands[0].Spans; len(got) != len(want) {
		t.Errorf("p0 spans %+v, want %+v", got, want)
	} else {
		for i := range want {
			if !near(got[i].X0, want[i].X0) || !near(got[i].X1, want[i].X1) || got[i].Colour != want[i].Colour {
				t.Errorf("p0 span %d: %+v, want %+v", i, got[i], want[i])
			}
		}
	}
}
