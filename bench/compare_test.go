package bench

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// A reduced comparison (tiny n) runs every workload on memory and disk,
// and on Azurite and the baseline when NETHERITE_AZURITE is set, and
// writes a report whose files parse and whose plots are pictures.
func TestCompareReport(t *testing.T) {
	configs := []string{ConfigMemory, ConfigDisk, ConfigEventHubs}
	azurite := os.Getenv("NETHERITE_AZURITE")
	if azurite != "" {
		configs = append(configs, ConfigAzurite, ConfigBaseline1)
	}
	// Tiny, so that the baseline's runs (1 s polling) stay short in CI.
	o := CompareOptions{Configurations: configs, N: 10, Rate: 40, Duration: 250 * time.Millisecond, FanOut: 20, Transfers: 6,
		Signals: 40, Entities: 4, Partitions: 2, Azurite: azurite, EventHubs: "", RunTimeout: time.Minute, Warmup: -1}
	rep, err := Compare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rep.Write(dir); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if got.Commit == "" || got.Machine.CPUs == 0 || got.Machine.GoVersion == "" || got.Started.IsZero() || got.Settings.N != 10 {
		t.Errorf("report.json header: commit %q machine %+v settings %+v started %v", got.Commit, got.Machine, got.Settings, got.Started)
	}
	if strings.Contains(string(js), "AccountKey") {
		t.Error("report.json holds an account key")
	}
	var names []string
	for _, c := range got.Configurations {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, configs) {
		t.Errorf("configurations %v, want %v", names, configs)
	}
	if len(got.Runs) != len(configs)*len(CompareWorkloads) {
		t.Fatalf("%d runs, want %d", len(got.Runs), len(configs)*len(CompareWorkloads))
	}
	for _, r := range got.Runs {
		switch {
		case r.Configuration == ConfigEventHubs || (r.Configuration == ConfigBaseline1 && r.Status == StatusUnavailable):
			// No Event Hubs here; the baseline may not be in this build.
			if r.Status != StatusUnavailable || r.Error == "" {
				t.Errorf("%s on %s: status %s (%s), want not available with a reason", r.Workload, r.Configuration, r.Status, r.Error)
			}
		case r.Status != StatusOK || r.Result == nil || r.Throughput <= 0:
			t.Errorf("%s on %s: status %s (%s), throughput %v", r.Workload, r.Configuration, r.Status, r.Error, r.Throughput)
		case r.Workload == "hello3-latency" && (len(r.CDF) == 0 || r.CDF[len(r.CDF)-1][1] != 1):
			t.Errorf("hello3-latency on %s: CDF %v", r.Configuration, r.CDF)
		case r.Workload != "fanout" && len(r.Timeline) == 0:
			t.Errorf("%s on %s: no timeline", r.Workload, r.Configuration)
		case r.Configuration == ConfigAzurite && (r.RequestsPerStep <= 0 || r.ByKindPerStep["blob write"] <= 0):
			t.Errorf("%s on %s: %v requests per step, by kind %v", r.Workload, r.Configuration, r.RequestsPerStep, r.ByKindPerStep)
		case r.Configuration == ConfigBaseline1 && (r.RequestsPerStep <= 0 || r.ByKindPerStep["queue write"] <= 0 || r.ByKindPerStep["table write"] <= 0):
			t.Errorf("%s on %s: %v requests per step, by kind %v", r.Workload, r.Configuration, r.RequestsPerStep, r.ByKindPerStep)
		}
	}
	if azurite != "" && got.run("hello5", ConfigBaseline1).Status == StatusOK && len(got.Ratios) == 0 {
		t.Error("no ratios against the baseline that ran")
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Throughput", "| hello5 (orchestrations) |", "## Latency (ms): p50 / p90 / p99", "| hello3-latency |",
		"## Storage requests per step", "## Ratios against the baseline", "| netherite-eventhubs | Netherite, state in Azurite, Event Hubs transport (emulator) | not available: ",
		"![latency-cdf](latency-cdf.png)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(pngs) != len(CompareWorkloads)*2 { // bars per workload, CDF, timelines but fanout's
		t.Errorf("%d plots: %v", len(pngs), pngs)
	}
	for _, p := range pngs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if n := distinctColours(img); n < 4 || img.Bounds().Dx() < 400 {
			t.Errorf("%s: %d colours, %v: blank?", p, n, img.Bounds())
		}
	}
}

func distinctColours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

func TestCompareRefusesUnknownNames(t *testing.T) {
	if _, err := Compare(context.Background(), CompareOptions{Workloads: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "unknown workload") {
		t.Errorf("unknown workload: %v", err)
	}
	if _, err := Compare(context.Background(), CompareOptions{Workloads: []string{"hello5"}, Configurations: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "unknown configuration") {
		t.Errorf("unknown configuration: %v", err)
	}
}

func TestCDF(t *testing.T) {
	var d []time.Duration
	for i := 1000; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	c := cdf(d, 100)
	if len(c) != 100 || c[0] != [2]float64{10, 0.01} || c[49] != [2]float64{500, 0.5} || c[99] != [2]float64{1000, 1} {
		t.Errorf("cdf: %d points, first %v, middle %v, last %v", len(c), c[0], c[49], c[len(c)-1])
	}
	if c := cdf(d[:3], 100); len(c) != 3 || c[2][1] != 1 || c[0][0] != 998 {
		t.Errorf("cdf of 3: %v", c)
	}
	if cdf(nil, 10) != nil {
		t.Error("cdf of nothing")
	}
}

func TestTimeline(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{0: 10 * time.Millisecond, 11 * time.Millisecond: 20 * time.Millisecond,
		30 * time.Millisecond: 50 * time.Millisecond, 500 * time.Millisecond: 500 * time.Millisecond, 2100 * time.Millisecond: 5 * time.Second} {
		if got := roundInterval(d); got != want {
			t.Errorf("roundInterval(%v) = %v, want %v", d, got, want)
		}
	}
	done := []time.Duration{0, 100 * time.Millisecond, 150 * time.Millisecond, 990 * time.Millisecond, 2 * time.Second}
	iv, counts := timeline(done, 40)
	if iv != 0.05 || len(counts) != 41 || counts[0] != 1 || counts[2] != 1 || counts[3] != 1 || counts[19] != 1 || counts[40] != 1 {
		t.Errorf("timeline: interval %v, counts %v", iv, counts)
	}
	sum := 0
	for _, n := range counts {
		sum += n
	}
	if sum != len(done) {
		t.Errorf("timeline counts %d completions, want %d", sum, len(done))
	}
}

func TestRatios(t *testing.T) {
	res := func(p50 float64) *Result { return &Result{P50Ms: p50} }
	r := &Report{Runs: []*CompareRun{
		{Workload: "hello5", Configuration: ConfigAzurite, Status: StatusOK, Throughput: 600, RequestsPerStep: 0.5, Result: res(20)},
		{Workload: "hello5", Configuration: ConfigBaseline, Status: StatusOK, Throughput: 20, RequestsPerStep: 5, Result: res(2000)},
		{Workload: "hello5", Configuration: ConfigBaseline1, Status: StatusTimeout, Throughput: 10, Result: res(900)},
		{Workload: "bank", Configuration: ConfigAzurite, Status: StatusFailed, Throughput: 5, Result: res(1)},
		{Workload: "bank", Configuration: ConfigBaseline, Status: StatusOK, Throughput: 5, Result: res(1)},
	}}
	r.ratios()
	want := []Ratio{{Workload: "hello5", Configuration: ConfigAzurite, Baseline: ConfigBaseline, Throughput: 30, P50: 100, Requests: 0.1}}
	if !reflect.DeepEqual(r.Ratios, want) {
		t.Errorf("ratios %+v, want %+v (only against baselines that completed, of runs that completed)", r.Ratios, want)
	}
	if ratio(1, 0) != 0 || ratio(0, 1) != 0 {
		t.Error("ratio with a zero")
	}
}

func TestRunStatus(t *testing.T) {
	for _, c := range []struct {
		res  *Result
		err  error
		want string
	}{
		{&Result{Completed: 5, Errors: map[string]int{}}, nil, StatusOK},
		{&Result{Completed: 3, Failed: 2, Errors: map[string]int{"wait: timeout": 2}}, nil, StatusTimeout},
		{&Result{Completed: 3, Failed: 2, Errors: map[string]int{"status: Failed": 2}}, nil, StatusFailed},
		{nil, errors.New("boom"), StatusFailed},
		{nil, context.DeadlineExceeded, StatusTimeout},
	} {
		r := &CompareRun{Workload: "hello5", Unit: "orchestrations"}
		r.fill(c.res, c.err)
		if r.Status != c.want || (c.want != StatusOK && r.Error == "") {
			t.Errorf("%+v, %v: status %s (%q), want %s", c.res, c.err, r.Status, r.Error, c.want)
		}
	}
	if !slices.Contains(CompareWorkloads, "entity-signal") {
		t.Error("entity-signal is not compared")
	}
}

func TestRedact(t *testing.T) {
	o := &CompareOptions{Azurite: "AccountName=a;AccountKey=SECRET1;BlobEndpoint=http://x", EventHubs: "Endpoint=sb://y;SharedAccessKey=SECRET2"}
	got := o.redact(`unknown Options.Transport "` + o.EventHubs + `" with storage ` + o.Azurite)
	if strings.Contains(got, "SECRET") || !strings.Contains(got, "<Event Hubs connection string>") {
		t.Errorf("redact: %s", got)
	}
	if blobEndpoint(o.Azurite) != "http://x" || blobEndpoint("https://acct.blob.core.windows.net/?sv=SECRET") != "set" {
		t.Error("blobEndpoint shows more than the endpoint")
	}
}
