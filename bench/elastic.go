package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The elastic benchmark (`netherite bench elastic`) offers hello5 at a
// fixed rate while hosts sharing one task hub come and go (1 → 3 → 2 → 1
// by default), and records every orchestration's times and, every
// sampling interval, which host runs each partition. This file turns
// those raw records into the report: pure functions of an ElasticRun,
// so that they are tested on made-up runs.

// ElasticOp is one orchestration of an elastic run. Times are since the
// run's start; a negative AckAt or EndAt means never (not acknowledged,
// or still running when the run ended).
type ElasticOp struct {
	Due    time.Duration // intended start (open loop)
	Issued bool          // the harness issued the start
	AckAt  time.Duration // start acknowledged
	EndAt  time.Duration // completed or failed
	OK     bool          // completed
}

// OwnerSample is what the hosts said at one moment: the hosts running
// then (started, Stop not yet returned) and, for each partition, the host
// where it was PartitionOK ("" for none; ids joined by "+" when several
// hosts said so, which the report counts as a conflict).
type OwnerSample struct {
	At     time.Duration
	Hosts  []string
	Owners []string
}

// HostEvent is a host started or stopped: At is the call, Took how long
// it took to return.
type HostEvent struct {
	At, Took time.Duration
	Host     string
	Action   string // "start" or "stop"
	Err      string `json:",omitempty"`
}

// ElasticPhase is one step of the schedule: from From to To, Hosts hosts.
type ElasticPhase struct {
	Hosts    int
	From, To time.Duration
}

// ElasticRun is the raw record of an elastic run.
type ElasticRun struct {
	Workload   string
	Storage    string
	Transport  string
	Partitions int
	Rate       float64 // offered starts per second
	Window     time.Duration
	Phases     []ElasticPhase
	// End is when the run ended (every start ended, or the drain
	// timeout passed).
	End     time.Duration
	Ops     []ElasticOp
	Samples []OwnerSample
	Events  []HostEvent
	Errors  map[string]int
	// FirstError is the first failure's text.
	FirstError string
}

// ElasticReport is what the elastic benchmark reports.
type ElasticReport struct {
	Workload    string         `json:"workload"`
	Storage     string         `json:"storage"`
	Transport   string         `json:"transport"`
	Partitions  int            `json:"partitions"`
	OfferedPerS float64        `json:"offered_per_s"`
	WindowS     float64        `json:"window_s"`
	Schedule    []int          `json:"hosts_schedule"`
	Issued      int            `json:"issued"`
	Completed   int            `json:"completed"`
	Failed      int            `json:"failed"`
	Errors      map[string]int `json:"errors,omitempty"`
	FirstError  string         `json:"first_error,omitempty"`
	Seconds     float64        `json:"seconds"`
	Phases      []PhaseStats   `json:"phases"`
	Stall       Stall          `json:"longest_stall"`
	Handovers   []Handover     `json:"handovers"`
	HostEvents  []HostEvent    `json:"host_events"`
	// Slowest are the completions with the longest latencies (at most
	// 10), slowest first: when they were due and when they completed.
	Slowest []SlowOp `json:"slowest"`
	// Outages are the stretches in which a partition ran on no host,
	// longest first.
	Outages []Outage `json:"outages"`
	// Conflicts counts (sample, partition) pairs where more than one
	// host said it ran the partition.
	Conflicts int           `json:"conflicts"`
	Windows   []WindowStats `json:"windows"`

	run *ElasticRun
}

// PhaseStats are the figures of one phase of the schedule (or of the
// drain after it): completions and their latencies by completion time,
// starts acknowledged by acknowledgement time.
type PhaseStats struct {
	Name          string  `json:"name"`
	Hosts         int     `json:"hosts"`
	FromS         float64 `json:"from_s"`
	ToS           float64 `json:"to_s"`
	OfferedPerS   float64 `json:"offered_per_s"`
	AchievedPerS  float64 `json:"achieved_per_s"`
	CompletedPerS float64 `json:"completed_per_s"`
	Completed     int     `json:"completed"`
	Failed        int     `json:"failed"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	// BalancedAfterS is how long after the phase began every partition
	// ran on exactly one of the phase's hosts, spread evenly (counts
	// differing by at most one); -1 if never in the phase.
	BalancedAfterS float64 `json:"balanced_after_s"`
	// Placement is the partitions per host at the phase's last sample.
	Placement string `json:"placement"`
}

// WindowStats are the figures of one sampling window.
type WindowStats struct {
	FromS     float64 `json:"from_s"`
	Completed int     `json:"completed"`
	PerS      float64 `json:"per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	// Outstanding is the starts issued and not ended at the window's end.
	Outstanding int `json:"outstanding"`
}

// Stall is the longest stretch without a completion while work was
// outstanding.
type Stall struct {
	Seconds float64 `json:"seconds"`
	FromS   float64 `json:"from_s"`
	ToS     float64 `json:"to_s"`
}

// SlowOp is one of the slowest completions.
type SlowOp struct {
	DueS      float64 `json:"due_s"`
	EndS      float64 `json:"end_s"`
	LatencyMs float64 `json:"latency_ms"`
}

// Outage is a stretch of samples in which a partition, once running,
// ran on no host: from its last sample on a host to its next one (or the
// run's end), so an upper bound at the sampling resolution.
type Outage struct {
	Partition int     `json:"partition"`
	FromS     float64 `json:"from_s"`
	ToS       float64 `json:"to_s"`
	Seconds   float64 `json:"seconds"`
	// Ended: the partition ran again before the run ended.
	Ended bool `json:"ended"`
}

// Handover is a partition seen on one host and next on another. GapS is
// an upper bound of the time no host ran it: from the last sample on the
// old host to the first on the new one.
type Handover struct {
	Partition int     `json:"partition"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	LastSeenS float64 `json:"last_seen_s"`
	OwnedS    float64 `json:"owned_s"`
	GapS      float64 `json:"gap_s"`
}

func secs(d time.Duration) float64 { return d.Seconds() }

// Analyze computes the report of a run.
func (r *ElasticRun) Analyze() *ElasticReport {
	rep := &ElasticReport{Workload: r.Workload, Storage: r.Storage, Transport: r.Transport, Partitions: r.Partitions,
		OfferedPerS: r.Rate, WindowS: secs(r.Window), Errors: r.Errors, FirstError: r.FirstError, Seconds: secs(r.End), run: r}
	for _, ph := range r.Phases {
		rep.Schedule = append(rep.Schedule, ph.Hosts)
	}
	for _, o := range r.Ops {
		if !o.Issued {
			rep.Failed++ // never issued: counted, not dropped
			continue
		}
		rep.Issued++
		if o.OK {
			rep.Completed++
		} else {
			rep.Failed++
		}
	}
	rep.Phases = r.phaseStats()
	rep.Windows = r.windows()
	rep.Stall = r.longestStall()
	rep.Handovers, rep.Conflicts = r.handovers()
	rep.Outages = r.outages()
	rep.Slowest = r.slowest(10)
	rep.HostEvents = r.Events
	return rep
}

// phaseStats are the schedule's phases, then the drain if anything ended
// after the last one.
func (r *ElasticRun) phaseStats() []PhaseStats {
	type span struct {
		name     string
		hosts    int
		from, to time.Duration
		offered  float64
	}
	var spans []span
	for _, ph := range r.Phases {
		name := fmt.Sprintf("%d host", ph.Hosts)
		if ph.Hosts != 1 {
			name += "s"
		}
		spans = append(spans, span{name, ph.Hosts, ph.From, ph.To, r.Rate})
	}
	if n := len(r.Phases); n > 0 && r.End > r.Phases[n-1].To {
		spans = append(spans, span{"drain", r.Phases[n-1].Hosts, r.Phases[n-1].To, r.End, 0})
	}
	var out []PhaseStats
	for i, sp := range spans {
		last := i == len(spans)-1
		in := func(t time.Duration) bool { return t >= sp.from && (t < sp.to || (last && t <= sp.to)) }
		ps := PhaseStats{Name: sp.name, Hosts: sp.hosts, FromS: secs(sp.from), ToS: secs(sp.to), OfferedPerS: sp.offered, BalancedAfterS: -1}
		var lat []time.Duration
		acks := 0
		for _, o := range r.Ops {
			if o.Issued && o.AckAt >= 0 && in(o.AckAt) {
				acks++
			}
			if !o.Issued || o.EndAt < 0 || !in(o.EndAt) {
				continue
			}
			if o.OK {
				ps.Completed++
				lat = append(lat, o.EndAt-o.Due)
			} else {
				ps.Failed++
			}
		}
		if d := secs(sp.to - sp.from); d > 0 {
			ps.CompletedPerS = float64(ps.Completed) / d
			ps.AchievedPerS = float64(acks) / d
		}
		ps.P50Ms, ps.P99Ms, ps.MaxMs = percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
		if i < len(r.Phases) {
			ps.BalancedAfterS, ps.Placement = r.balance(sp.from, sp.to)
		}
		out = append(out, ps)
	}
	return out
}

// balance finds the first sample in [from, to) at which the partitions
// were balanced over the hosts of the phase's last sample, and the
// placement at that last sample.
func (r *ElasticRun) balance(from, to time.Duration) (float64, string) {
	var in []OwnerSample
	for _, s := range r.Samples {
		if s.At >= from && s.At < to {
			in = append(in, s)
		}
	}
	if len(in) == 0 {
		return -1, ""
	}
	final := in[len(in)-1].Hosts
	for _, s := range in {
		if balanced(s.Owners, final) {
			return secs(s.At - from), placement(in[len(in)-1].Owners)
		}
	}
	return -1, placement(in[len(in)-1].Owners)
}

// balanced: every partition runs on exactly one of hosts, and the hosts'
// partition counts differ by at most one.
func balanced(owners, hosts []string) bool {
	if len(hosts) == 0 {
		return false
	}
	count := map[string]int{}
	for _, h := range hosts {
		count[h] = 0
	}
	for _, o := range owners {
		if _, ok := count[o]; !ok {
			return false // none, several, or a host not in the phase
		}
		count[o]++
	}
	lo, hi := math.MaxInt, 0
	for _, n := range count {
		lo, hi = min(lo, n), max(hi, n)
	}
	return hi-lo <= 1
}

// placement formats partitions per host ("h0:4 h1:4 h2:4", "-:1" for
// partitions running nowhere), hosts sorted.
func placement(owners []string) string {
	count := map[string]int{}
	for _, o := range owners {
		if o == "" {
			o = "-"
		}
		count[o]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, count[k])
	}
	return strings.Join(parts, " ")
}

// windows cuts the run into sampling windows: completions in each (by
// completion time), their latency percentiles, and the work outstanding
// at its end.
func (r *ElasticRun) windows() []WindowStats {
	w := r.Window
	if w <= 0 || r.End <= 0 {
		return nil
	}
	n := int((r.End + w - 1) / w)
	lats := make([][]time.Duration, n)
	var dues, ends []time.Duration
	for _, o := range r.Ops {
		if !o.Issued {
			continue
		}
		dues = append(dues, o.Due)
		if o.EndAt >= 0 {
			ends = append(ends, o.EndAt)
		}
		if o.OK && o.EndAt >= 0 {
			i := min(int(o.EndAt/w), n-1)
			lats[i] = append(lats[i], o.EndAt-o.Due)
		}
	}
	slices := func(xs []time.Duration) { sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] }) }
	slices(dues)
	slices(ends)
	upTo := func(xs []time.Duration, t time.Duration) int {
		return sort.Search(len(xs), func(i int) bool { return xs[i] > t })
	}
	out := make([]WindowStats, n)
	for i := range out {
		end := min(time.Duration(i+1)*w, r.End)
		ws := WindowStats{FromS: secs(time.Duration(i) * w), Completed: len(lats[i])}
		ws.PerS = float64(ws.Completed) / secs(w)
		ws.P50Ms, ws.P99Ms = percentile(lats[i], 50), percentile(lats[i], 99)
		ws.Outstanding = upTo(dues, end) - upTo(ends, end)
		out[i] = ws
	}
	return out
}

// longestStall sweeps the run's starts and ends in time order: a stall
// runs from the moment work became outstanding, or from the last
// completion while it was, to the next completion, or to the moment
// nothing was outstanding any more (the run's end for work that never
// ended).
func (r *ElasticRun) longestStall() Stall {
	type ev struct {
		t    time.Duration
		kind int // 0 start, 1 completion, 2 failure
	}
	var evs []ev
	for _, o := range r.Ops {
		if !o.Issued {
			continue
		}
		evs = append(evs, ev{o.Due, 0})
		switch {
		case o.EndAt < 0:
		case o.OK:
			evs = append(evs, ev{o.EndAt, 1})
		default:
			evs = append(evs, ev{o.EndAt, 2})
		}
	}
	// At equal times, ends before starts: an op that ends as another
	// starts does not stretch a stall.
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return evs[i].kind > evs[j].kind
	})
	var best Stall
	consider := func(from, to time.Duration) {
		if d := secs(to - from); d > best.Seconds {
			best = Stall{Seconds: d, FromS: secs(from), ToS: secs(to)}
		}
	}
	out := 0
	var since time.Duration
	for _, e := range evs {
		switch e.kind {
		case 0:
			if out == 0 {
				since = e.t
			}
			out++
		case 1:
			consider(since, e.t)
			since = e.t
			out--
		case 2:
			out--
			if out == 0 {
				consider(since, e.t)
			}
		}
	}
	if out > 0 {
		consider(since, max(r.End, since))
	}
	return best
}

// handovers finds, for each partition, the moves between hosts seen in
// the samples, and counts the conflicts (several hosts at once).
func (r *ElasticRun) handovers() ([]Handover, int) {
	var hs []Handover
	conflicts := 0
	for p := 0; p < r.Partitions; p++ {
		owner := ""
		var seen time.Duration
		for _, s := range r.Samples {
			if p >= len(s.Owners) {
				continue
			}
			o := s.Owners[p]
			switch {
			case strings.Contains(o, "+"):
				conflicts++
				continue
			case o == "":
				continue
			case owner != "" && o != owner:
				hs = append(hs, Handover{Partition: p, From: owner, To: o, LastSeenS: secs(seen), OwnedS: secs(s.At), GapS: secs(s.At - seen)})
			}
			owner, seen = o, s.At
		}
	}
	sort.SliceStable(hs, func(i, j int) bool {
		if hs[i].OwnedS != hs[j].OwnedS {
			return hs[i].OwnedS < hs[j].OwnedS
		}
		return hs[i].Partition < hs[j].Partition
	})
	return hs, conflicts
}

// slowest are the n completions with the longest latencies.
func (r *ElasticRun) slowest(n int) []SlowOp {
	var out []SlowOp
	for _, o := range r.Ops {
		if o.Issued && o.OK && o.EndAt >= 0 {
			out = append(out, SlowOp{DueS: secs(o.Due), EndS: secs(o.EndAt), LatencyMs: ms(o.EndAt - o.Due)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LatencyMs > out[j].LatencyMs })
	return out[:min(n, len(out))]
}

// outages finds, for each partition, the stretches of samples with no
// owner after it first had one.
func (r *ElasticRun) outages() []Outage {
	var out []Outage
	for p := 0; p < r.Partitions; p++ {
		owned := false
		var last time.Duration
		down := false
		for _, s := range r.Samples {
			if p >= len(s.Owners) {
				continue
			}
			switch {
			case s.Owners[p] != "" && down:
				out = append(out, Outage{Partition: p, FromS: secs(last), ToS: secs(s.At), Seconds: secs(s.At - last), Ended: true})
				down = false
				last = s.At
			case s.Owners[p] != "":
				owned, last = true, s.At
			case owned:
				down = true
			}
		}
		if down {
			out = append(out, Outage{Partition: p, FromS: secs(last), ToS: secs(r.End), Seconds: secs(r.End - last)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out
}

// Text is the report for people.
func (rep *ElasticReport) Text() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	sched := make([]string, len(rep.Schedule))
	for i, h := range rep.Schedule {
		sched[i] = fmt.Sprint(h)
	}
	tr := rep.Transport
	if tr == "" {
		tr = "memory (shared)"
	}
	p("elastic: %s at %.0f starts/s offered (open loop, latency from each start's intended time), %d partitions\n",
		rep.Workload, rep.OfferedPerS, rep.Partitions)
	p("  storage %s, transport %s; hosts %s; sampled every %.0fms\n", rep.Storage, tr, strings.Join(sched, " → "), rep.WindowS*1000)
	p("  issued %d, completed %d, failed %d in %.1fs\n", rep.Issued, rep.Completed, rep.Failed, rep.Seconds)
	if rep.Failed > 0 {
		p("  failures: %s\n", ErrorsLine(rep.Errors))
		if rep.FirstError != "" {
			p("  first failure: %s\n", rep.FirstError)
		}
	}
	p("\n%-9s %5s %13s %9s %10s %12s %9s %9s %9s %7s %9s  %s\n", "phase", "hosts", "seconds", "offered/s", "achieved/s", "completed/s",
		"p50 ms", "p99 ms", "max ms", "failed", "balanced", "placement at the end")
	for _, ph := range rep.Phases {
		bal := "never"
		switch {
		case ph.Name == "drain":
			bal = "–"
		case ph.BalancedAfterS >= 0:
			bal = fmt.Sprintf("+%.2fs", ph.BalancedAfterS)
		}
		p("%-9s %5d %6.1f–%-6.1f %9.0f %10.1f %12.1f %9.1f %9.1f %9.1f %7d %9s  %s\n", ph.Name, ph.Hosts, ph.FromS, ph.ToS, ph.OfferedPerS,
			ph.AchievedPerS, ph.CompletedPerS, ph.P50Ms, ph.P99Ms, ph.MaxMs, ph.Failed, bal, ph.Placement)
	}
	p("\nlongest stall (no completion while work was outstanding): %.3fs, from %.2fs to %.2fs\n", rep.Stall.Seconds, rep.Stall.FromS, rep.Stall.ToS)
	if len(rep.Slowest) > 0 {
		p("\nslowest completions (due → completed: latency):")
		for i, o := range rep.Slowest {
			if i == 5 {
				break
			}
			p(" %.2fs → %.2fs: %.0fms;", o.DueS, o.EndS, o.LatencyMs)
		}
		p("\n")
	}
	p("\nhost events:\n")
	for _, e := range rep.HostEvents {
		p("  %7.2fs %-5s %s (returned after %.3fs)", secs(e.At), e.Action, e.Host, secs(e.Took))
		if e.Err != "" {
			p(": %s", e.Err)
		}
		p("\n")
	}
	p("\nhandovers seen (partition: from → to, first seen on the new host; gap ≤ time since last seen on the old one):\n")
	if len(rep.Handovers) == 0 {
		p("  none\n")
	}
	for _, h := range rep.Handovers {
		p("  p%-2d %s → %s at %.2fs (gap ≤ %.2fs)\n", h.Partition, h.From, h.To, h.OwnedS, h.GapS)
	}
	if len(rep.Handovers) > 0 {
		gaps := make([]time.Duration, len(rep.Handovers))
		for i, h := range rep.Handovers {
			gaps[i] = time.Duration(h.GapS * float64(time.Second))
		}
		p("  %d handovers; gap p50 ≤ %.0fms, max ≤ %.0fms (sampling resolution %.0fms)\n", len(gaps), percentile(gaps, 50), percentile(gaps, 100), rep.WindowS*1000)
	}
	p("\npartitions running nowhere (from the last sample on a host to the next; longest first):\n")
	if len(rep.Outages) == 0 {
		p("  none\n")
	}
	for i, o := range rep.Outages {
		if i == 5 {
			p("  ... %d more\n", len(rep.Outages)-i)
			break
		}
		end := "ran again"
		if !o.Ended {
			end = "still nowhere at the end"
		}
		p("  p%-2d %.2fs from %.2fs to %.2fs (%s)\n", o.Partition, o.Seconds, o.FromS, o.ToS, end)
	}
	p("samples where two hosts said they ran one partition: %d\n", rep.Conflicts)
	return b.String()
}

// Write writes elastic-report.txt, elastic.json and elastic.png into dir
// and returns the PNG's path.
func (rep *ElasticReport) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench elastic: report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "elastic-report.txt"), []byte(rep.Text()), 0o644); err != nil {
		return "", fmt.Errorf("bench elastic: report: %w", err)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("bench elastic: elastic.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "elastic.json"), append(js, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("bench elastic: elastic.json: %w", err)
	}
	path := filepath.Join(dir, "elastic.png")
	if err := rep.writePNG(path); err != nil {
		return "", err
	}
	return path, nil
}

// ElasticConfig configures an elastic run (RunElastic).
type ElasticConfig struct {
	// Partitions of the task hub (default 12).
	Partitions int
	// Rate is the offered starts per second of hello5 (default 100).
	Rate float64
	// Hosts is the number of hosts in each phase (default 1, 3, 2, 1):
	// hosts are added by starting new ones and removed by stopping the
	// newest gracefully, so the first host runs throughout (its client
	// drives the load).
	Hosts []int
	// Phase is each phase's length (default 20 s).
	Phase time.Duration
	// Drain bounds the wait for outstanding work after the last phase
	// (default 60 s); what has not ended by then fails as a timeout.
	Drain time.Duration
	// Window is the sampling interval (default 250 ms).
	Window time.Duration
	// Storage is a directory (default: a fresh temporary one, removed
	// afterwards) or an Azure Storage connection string (a fresh task
	// hub, deleted afterwards).
	Storage string
	// Transport is "" (one in-process memory transport shared by the
	// hosts) or an Event Hubs connection string (fresh hubs named with
	// EventHubsPrefix, or a fresh prefix, deleted afterwards).
	Transport         string
	EventHubsPrefix   string
	EventHubsAdminURL string
	// ReportInterval and HostTimeout are the hosts' Options.
	// LoadReportInterval and HostTimeout (0: the host's defaults).
	ReportInterval, HostTimeout time.Duration
	// Progress, if set, receives a line at every host event.
	Progress io.Writer
}

func (c *ElasticConfig) defaults() error {
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.Rate <= 0 {
		c.Rate = 100
	}
	if len(c.Hosts) == 0 {
		c.Hosts = []int{1, 3, 2, 1}
	}
	for _, n := range c.Hosts {
		if n < 1 {
			return fmt.Errorf("bench elastic: every phase needs at least one host, got %v", c.Hosts)
		}
	}
	if c.Phase <= 0 {
		c.Phase = 20 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = time.Minute
	}
	if c.Window <= 0 {
		c.Window = 250 * time.Millisecond
	}
	if c.Storage == "memory" {
		return fmt.Errorf(`bench elastic: hosts must share storage: a directory or Azure Storage, not "memory"`)
	}
	return nil
}

// HandoverConfig configures the graceful handover benchmark
// (RunHandover): two elastic hosts share a task hub of one partition
// holding Instances completed orchestrations; each move stops the host
// running the partition gracefully and times until the other host runs
// it, then starts the stopped host again.
type HandoverConfig struct {
	Instances int // default 10,000
	Moves     int // default 100
	// Storage, Transport, EventHubsPrefix, EventHubsAdminURL,
	// ReportInterval and HostTimeout as in ElasticConfig.
	Storage                     string
	Transport                   string
	EventHubsPrefix             string
	EventHubsAdminURL           string
	ReportInterval, HostTimeout time.Duration
	// BeforeMoves, if set, is called once the instances exist and both
	// hosts run (a benchmark resets its timer there).
	BeforeMoves func()
	Progress    io.Writer
}

// HandoverResult is what the handover benchmark measured: each move's
// time from the Stop call to the partition being PartitionOK on the
// other host.
type HandoverResult struct {
	Instances    int             `json:"instances"`
	Moves        []time.Duration `json:"moves_ns"`
	P50Ms        float64         `json:"p50_ms"`
	P99Ms        float64         `json:"p99_ms"`
	MaxMs        float64         `json:"max_ms"`
	SetupSeconds float64         `json:"setup_s"`
	// StopMs are the Stop calls' own durations (p50, max): the part of a
	// move spent checkpointing and releasing.
	StopP50Ms float64 `json:"stop_p50_ms"`
	StopMaxMs float64 `json:"stop_max_ms"`
	stops     []time.Duration
}

// summarize fills the percentiles from the moves.
func (r *HandoverResult) summarize() {
	r.P50Ms, r.P99Ms, r.MaxMs = percentile(r.Moves, 50), percentile(r.Moves, 99), percentile(r.Moves, 100)
	r.StopP50Ms, r.StopMaxMs = percentile(r.stops, 50), percentile(r.stops, 100)
}

// Text is the result for people.
func (r *HandoverResult) Text() string {
	return fmt.Sprintf("handover: 1 partition holding %d instances, %d graceful moves between 2 elastic hosts (setup %.1fs)\n"+
		"  Stop call → PartitionOK on the other host: p50 %.1fms p99 %.1fms max %.1fms (goal p99 ≤ 1000ms)\n"+
		"  of which the Stop call itself: p50 %.1fms max %.1fms\n",
		r.Instances, len(r.Moves), r.SetupSeconds, r.P50Ms, r.P99Ms, r.MaxMs, r.StopP50Ms, r.StopMaxMs)
}
