package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/netherite-go/netherite/bench/plot"
	"github.com/netherite-go/netherite/storagecount"
)

// Report is what `bench compare` measured, with where and how.
type Report struct {
	Started        time.Time        `json:"started"`
	Finished       time.Time        `json:"finished"`
	Commit         string           `json:"commit"`
	Machine        Machine          `json:"machine"`
	Settings       Settings         `json:"settings"`
	Configurations []*configuration `json:"configurations"`
	Runs           []*CompareRun    `json:"runs"`
	// Ratios compare each run with the same workload on each baseline.
	Ratios []Ratio `json:"ratios"`
	// Definitions explain the figures.
	Definitions map[string]string `json:"definitions"`
}

// Machine describes the computer the comparison ran on.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
}

// Settings are the comparison's options, without secrets.
type Settings struct {
	Workloads      []string `json:"workloads"`
	Configurations []string `json:"configurations"`
	N              int      `json:"hello5_n"`
	Rate           float64  `json:"hello3_rate_per_s"`
	DurationS      float64  `json:"hello3_duration_s"`
	FanOut         int      `json:"fanout_activities"`
	Transfers      int      `json:"bank_transfers"`
	Signals        int      `json:"entity_signals"`
	Entities       int      `json:"entity_counters"`
	Partitions     int      `json:"partitions"`
	RunTimeoutS    float64  `json:"run_timeout_s"`
	Warmup         int      `json:"warmup_orchestrations"`
	Azurite        string   `json:"azurite,omitempty"`   // its blob endpoint, never the key
	EventHubs      string   `json:"eventhubs,omitempty"` // "set" or ""
}

// Ratio compares a configuration with a baseline on one workload:
// Throughput is the configuration's over the baseline's, P50 the
// baseline's latency over the configuration's (both: higher is better
// for the configuration), Requests the configuration's storage requests
// per step over the baseline's (lower is better).
type Ratio struct {
	Workload      string  `json:"workload"`
	Configuration string  `json:"configuration"`
	Baseline      string  `json:"baseline"`
	Throughput    float64 `json:"throughput_ratio,omitempty"`
	P50           float64 `json:"p50_latency_ratio,omitempty"`
	Requests      float64 `json:"requests_per_step_ratio,omitempty"`
}

var definitions = map[string]string{
	"throughput": "completed units per second of the run: orchestrations (hello5, hello3-latency), activities of the one fan-out orchestration (fanout), transfer orchestrations (bank), signals processed as read back from the counter entities (entity-signal)",
	"latency":    "hello3-latency is an open loop at a fixed start rate; its latency runs from each orchestration's intended start to its completion as seen by the client (no coordinated omission). Other workloads are closed loops; their latency runs from the start call; entity-signal has none",
	"step":       "storage requests are divided by: orchestration steps for hello5 (6 per orchestration: the start and 5 activity results) and hello3-latency (4), i.e. the episodes an engine runs when it does not batch; activities for fanout; completed transfers for bank; processed signals for entity-signal (whose read-back of the counters is included)",
	"requests":   "HTTP requests (attempts, retries included) sent to Azure Storage during the run, by kind: blob read (GET/HEAD, listings), blob write, blob lease (acquire/renew/release/break), queue and table read (GET; dequeues count as reads) and write (PUT/POST/MERGE/DELETE). They include the client's requests in the same process: the baseline's client starts orchestrations through the queues and tables and polls the Instances table while it waits for completion, Netherite's client talks to its partitions without storage",
	"ratio":      "throughput ratio = configuration / baseline; p50 ratio = baseline p50 / configuration p50; requests ratio = configuration / baseline requests per step",
}

func newReport(o CompareOptions) *Report {
	r := &Report{Started: time.Now().UTC(), Commit: commit(), Machine: machine(), Definitions: definitions}
	r.Settings = Settings{Workloads: o.Workloads, Configurations: o.Configurations, N: o.N, Rate: o.Rate, DurationS: o.Duration.Seconds(),
		FanOut: o.FanOut, Transfers: o.Transfers, Signals: o.Signals, Entities: o.Entities, Partitions: o.Partitions,
		RunTimeoutS: o.RunTimeout.Seconds(), Warmup: o.Warmup, Azurite: blobEndpoint(o.Azurite)}
	if o.EventHubs != "" {
		r.Settings.EventHubs = "set"
	}
	return r
}

// blobEndpoint is the BlobEndpoint of a connection string (never its
// key), or "set".
func blobEndpoint(conn string) string {
	if conn == "" {
		return ""
	}
	for _, kv := range strings.Split(conn, ";") {
		if v, ok := strings.CutPrefix(kv, "BlobEndpoint="); ok {
			return v
		}
	}
	if strings.HasPrefix(conn, "http") && !strings.Contains(conn, "?") {
		return conn
	}
	return "set"
}

// commit is the source revision: git's, or the one stamped in the binary.
func commit() string {
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		c := strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			c += " (modified)"
		}
		return c
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (modified)"
				}
			}
		}
		if rev != "" {
			return rev + dirty
		}
	}
	return "unknown"
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// run finds the run of workload w on configuration c.
func (r *Report) run(w, c string) *CompareRun {
	for _, x := range r.Runs {
		if x.Workload == w && x.Configuration == c {
			return x
		}
	}
	return nil
}

// ratios compares every successful run with the successful runs of the
// same workload on the baselines.
func (r *Report) ratios() {
	r.Ratios = nil
	for _, x := range r.Runs {
		if x.Status != StatusOK || slices.Contains(Baselines, x.Configuration) {
			continue
		}
		for _, b := range Baselines {
			y := r.run(x.Workload, b)
			if y == nil || y.Status != StatusOK {
				continue
			}
			ra := Ratio{Workload: x.Workload, Configuration: x.Configuration, Baseline: b,
				Throughput: ratio(x.Throughput, y.Throughput), Requests: ratio(x.RequestsPerStep, y.RequestsPerStep)}
			if x.Result != nil && y.Result != nil {
				ra.P50 = ratio(y.Result.P50Ms, x.Result.P50Ms)
			}
			r.Ratios = append(r.Ratios, ra)
		}
	}
}

// ratio is a/b, 0 when either is not positive.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// Write writes report.json, report.md and the plots into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench compare: report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench compare: report.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench compare: report.json: %w", err)
	}
	plots, err := r.writePlots(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown(plots)), 0o644); err != nil {
		return fmt.Errorf("bench compare: report.md: %w", err)
	}
	return nil
}

// workloads and configs are the report's rows and columns, in order.
func (r *Report) workloads() []string {
	var ws []string
	for _, x := range r.Runs {
		if !slices.Contains(ws, x.Workload) {
			ws = append(ws, x.Workload)
		}
	}
	return ws
}

func (r *Report) configs() []string {
	var cs []string
	for _, c := range r.Configurations {
		cs = append(cs, c.Name)
	}
	return cs
}

// cell formats a run's figure, or its status when it has none.
func cell(x *CompareRun, f func(*CompareRun) float64) string {
	switch {
	case x == nil:
		return "–"
	case x.Status == StatusUnavailable:
		return "n/a"
	}
	v := f(x)
	s := plot.FormatValue(v)
	if v == 0 {
		s = "–"
	}
	if x.Status != StatusOK {
		s += " (" + x.Status + ")"
	}
	return s
}

// Markdown renders the report's tables, with the plots (file names in
// the report's directory).
func (r *Report) Markdown(plots []string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Netherite vs the Azure Storage baseline\n\n")
	p("Started %s, finished %s, commit `%s`.\n\n", r.Started.Format(time.RFC3339), r.Finished.Format(time.RFC3339), r.Commit)
	p("Machine: %d CPUs", r.Machine.CPUs)
	if r.Machine.CPUModel != "" {
		p(" (%s)", r.Machine.CPUModel)
	}
	p(", %s/%s, %s.\n\n", r.Machine.OS, r.Machine.Arch, r.Machine.GoVersion)
	s := r.Settings
	p("Settings: hello5 n=%d; hello3-latency %.0f starts/s for %.0fs; fanout %d activities; bank %d transfers; entity-signal %d signals to %d counters; %d partitions; run timeout %.0fs; warm-up %d.\n\n",
		s.N, s.Rate, s.DurationS, s.FanOut, s.Transfers, s.Signals, s.Entities, s.Partitions, s.RunTimeoutS, s.Warmup)

	p("## Configurations\n\n| configuration | what | status |\n|---|---|---|\n")
	for _, c := range r.Configurations {
		st := "ran"
		if c.Unavailable != "" {
			st = "not available: " + c.Unavailable
		}
		p("| %s | %s | %s |\n", c.Name, c.Description, st)
	}
	cs, ws := r.configs(), r.workloads()
	header := func(first string) {
		p("| %s |", first)
		for _, c := range cs {
			p(" %s |", c)
		}
		p("\n|---|")
		for range cs {
			p("---:|")
		}
		p("\n")
	}

	p("\n## Throughput\n\nCompleted units per second (see the unit per row). hello3-latency is an open loop: an engine that keeps up completes at the offered rate (%.0f/s here), so compare it on latency.\n\n", r.Settings.Rate)
	header("workload (unit/s)")
	for _, w := range ws {
		unit, _ := units(w)
		p("| %s (%s) |", w, unit)
		for _, c := range cs {
			p(" %s |", cell(r.run(w, c), func(x *CompareRun) float64 { return x.Throughput }))
		}
		p("\n")
	}

	p("\n## Latency (ms): p50 / p90 / p99\n\n")
	header("workload")
	for _, w := range ws {
		if w == "entity-signal" {
			continue
		}
		p("| %s |", w)
		for _, c := range cs {
			x := r.run(w, c)
			if x == nil || x.Result == nil || x.Result.P50Ms == 0 {
				p(" %s |", cell(x, func(*CompareRun) float64 { return 0 }))
				continue
			}
			p(" %s / %s / %s |", plot.FormatValue(x.Result.P50Ms), plot.FormatValue(x.Result.P90Ms), plot.FormatValue(x.Result.P99Ms))
		}
		p("\n")
	}

	p("\n## Storage requests per step\n\nTotal requests to Azure Storage divided by the workload's steps (see the unit), and by kind.\n\n")
	p("| workload | configuration | per | requests | per step | by kind (per step) |\n|---|---|---|---:|---:|---|\n")
	for _, w := range ws {
		for _, c := range cs {
			x := r.run(w, c)
			if x == nil || x.Result == nil || x.Result.StorageRequests == 0 {
				continue
			}
			var kinds []string
			byKind := map[string]int64{}
			for k, v := range x.Result.StorageByKind {
				byKind[k] = v
			}
			for _, k := range storagecount.Kinds(byKind) {
				kinds = append(kinds, fmt.Sprintf("%s %s", k, plot.FormatValue(x.ByKindPerStep[k])))
			}
			p("| %s | %s | %s | %d | %s | %s |\n", w, c, x.StepUnit, x.Result.StorageRequests,
				cell(x, func(x *CompareRun) float64 { return x.RequestsPerStep }), strings.Join(kinds, ", "))
		}
	}

	p("\n## Ratios against the baseline\n\nThroughput: configuration / baseline. p50: baseline p50 / configuration p50. Requests: configuration / baseline requests per step. Higher is better for the first two, lower for the third.\n\n")
	if len(r.Ratios) == 0 {
		p("No ratios: no baseline run completed here.\n")
	} else {
		p("| workload | configuration | baseline | throughput | p50 latency | requests/step |\n|---|---|---|---:|---:|---:|\n")
		for _, ra := range r.Ratios {
			f := func(v float64) string {
				if v == 0 {
					return "–"
				}
				return plot.FormatValue(v) + "x"
			}
			p("| %s | %s | %s | %s | %s | %s |\n", ra.Workload, ra.Configuration, ra.Baseline, f(ra.Throughput), f(ra.P50), f(ra.Requests))
		}
	}

	var problems []*CompareRun
	for _, x := range r.Runs {
		if x.Status != StatusOK && x.Status != StatusUnavailable {
			problems = append(problems, x)
		}
	}
	if len(problems) > 0 {
		p("\n## Failed and timed-out runs\n\n")
		for _, x := range problems {
			done := 0
			if x.Result != nil {
				done = x.Result.Completed
			}
			p("- %s on %s: %s, %d completed: %s\n", x.Workload, x.Configuration, x.Status, done, x.Error)
		}
	}

	p("\n## Definitions\n\n")
	for _, k := range []string{"throughput", "latency", "step", "requests", "ratio"} {
		p("- **%s**: %s.\n", k, r.Definitions[k])
	}
	if len(plots) > 0 {
		p("\n## Plots\n\n")
		for _, f := range plots {
			p("![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
		}
	}
	return b.String()
}

// ReadReport reads a report.json written by Write, so that its tables
// and plots can be drawn again.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench compare: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench compare: %s: %w", path, err)
	}
	return &r, nil
}
