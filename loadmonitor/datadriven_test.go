package loadmonitor

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// The files in testdata/ are specifications of the monitor, one scenario
// each. A case is a command line, optional indented input lines, and, if
// the command prints anything, "----" and the expected output up to a
// blank line. Lines starting with # are comments. Run with -rewrite to
// write the actual output into the files (then read the diff!).
//
// Commands (times are offsets from a fixed instant, e.g. at=1.5s):
//
//	config partitions=N [self=m] [timeout=10s] [forget=60s] [resume=1m]
//	       [minload=20] [ratio=1.5] [loaddelay=30s] [horizon=1m]
//	       [backlog=500] [scaledown=30s] [idle=5]
//	    a fresh monitor (no stored record)
//	resume [self=m]
//	    the record so far goes through Marshal/Unmarshal into a new
//	    monitor (the monitor moved to another host)
//	report host=H at=T [client=C] [stopping] [parts=0,1,...] [k=v ...]
//	    a report; k=v (workitems, activities, timers, next, outbox, lag,
//	    events, cache, instances, latency) apply to every partition of
//	    parts=; indented lines "p=N k=v ..." add or detail one partition;
//	    an indented "sent=T" sets the report's own time (default: at)
//	decide at=T
//	    prints the record: version, owners, hosts, recommendation
//	loads
//	    prints the newest load of each partition that has one
//	pending
//	    prints whether the next Decide should run at once
//	rates P=R ...
//	    sets the event rate (events/s) of partitions for run
//	run hosts=a,b from=T to=T every=D [latency=L]
//	    simulates hosts that follow the placement: every D each host
//	    reports the partitions the record gives it (Events growing at the
//	    partition's rate since it came to that host), then the monitor
//	    decides; prints each placement change, and the final counts
var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

var ddBase = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

type ddCase struct {
	cmd      string
	input    []string
	expected string
	hasOut   bool
	lineNo   int
	before   []string // comments and blank lines before the command
}

func parseDD(t *testing.T, path string) (cases []ddCase, trailer []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var before []string
	for i := 0; i < len(lines); {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			before = append(before, l)
			i++
			continue
		}
		c := ddCase{cmd: l, lineNo: i + 1, before: before}
		before = nil
		i++
		for i < len(lines) && (strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t")) {
			c.input = append(c.input, strings.TrimSpace(lines[i]))
			i++
		}
		if i < len(lines) && lines[i] == "----" {
			c.hasOut = true
			i++
			var out []string
			for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
				out = append(out, lines[i])
				i++
			}
			c.expected = strings.Join(out, "\n")
		}
		cases = append(cases, c)
	}
	return cases, before
}

func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			cases, trailer := parseDD(t, f)
			d := &ddRunner{t: t}
			var out strings.Builder
			for _, c := range cases {
				got := d.run(c)
				for _, l := range c.before {
					out.WriteString(l + "\n")
				}
				out.WriteString(c.cmd + "\n")
				for _, l := range c.input {
					out.WriteString("  " + l + "\n")
				}
				if got != "" {
					out.WriteString("----\n" + got + "\n")
				}
				if !*rewrite && got != c.expected {
					t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", f, c.lineNo, c.cmd, got, c.expected)
				}
			}
			for _, l := range trailer {
				out.WriteString(l + "\n")
			}
			if *rewrite {
				if err := os.WriteFile(f, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type ddRunner struct {
	t   *testing.T
	cfg Config
	m   *Monitor

	rates     map[int]float64
	simOwner  map[int]string
	simEvents map[int]float64
}

type ddArgs struct {
	t     *testing.T
	where string
	kv    map[string]string
	flags map[string]bool
	used  map[string]bool
}

func parseArgs(t *testing.T, where string, fields []string) *ddArgs {
	a := &ddArgs{t: t, where: where, kv: map[string]string{}, flags: map[string]bool{}, used: map[string]bool{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else {
			a.flags[f] = true
		}
	}
	return a
}

func (a *ddArgs) has(k string) bool { _, ok := a.kv[k]; return ok }

func (a *ddArgs) str(k, def string) string {
	a.used[k] = true
	if v, ok := a.kv[k]; ok {
		return v
	}
	return def
}

func (a *ddArgs) int(k string, def int) int {
	v := a.str(k, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		a.t.Fatalf("%s: %s=%q: %v", a.where, k, v, err)
	}
	return n
}

func (a *ddArgs) float(k string, def float64) float64 {
	v := a.str(k, "")
	if v == "" {
		return def
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		a.t.Fatalf("%s: %s=%q: %v", a.where, k, v, err)
	}
	return n
}

func (a *ddArgs) dur(k string) time.Duration {
	v := a.str(k, "")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		a.t.Fatalf("%s: %s=%q: %v", a.where, k, v, err)
	}
	return d
}

func (a *ddArgs) at() time.Time {
	if !a.has("at") {
		a.t.Fatalf("%s: at= missing", a.where)
	}
	return ddBase.Add(a.dur("at"))
}

func (a *ddArgs) flag(k string) bool { a.used[k] = true; return a.flags[k] }

// done fails on arguments no command read: a typo must not pass silently.
func (a *ddArgs) done() {
	for k := range a.kv {
		if !a.used[k] {
			a.t.Fatalf("%s: unknown argument %s", a.where, k)
		}
	}
	for k := range a.flags {
		if !a.used[k] {
			a.t.Fatalf("%s: unknown flag %s", a.where, k)
		}
	}
}

func (d *ddRunner) run(c ddCase) string {
	d.t.Helper()
	t := d.t
	fields := strings.Fields(c.cmd)
	where := fmt.Sprintf("line %d", c.lineNo)
	a := parseArgs(t, where, fields[1:])
	defer a.done()
	switch fields[0] {
	case "config":
		d.cfg = Config{
			Partitions: a.int("partitions", 0), Self: a.str("self", "m"),
			HostTimeout: a.dur("timeout"), ForgetAfter: a.dur("forget"), ResumeWindow: a.dur("resume"),
			MinLoad: a.float("minload", 0), LoadRatio: a.float("ratio", 0), LoadDelay: a.dur("loaddelay"),
			TimerHorizon: a.dur("horizon"), BacklogPerHost: a.int("backlog", 0), ScaleDownDelay: a.dur("scaledown"),
			IdlePeriods: a.int("idle", 0),
		}
		m, err := New(d.cfg, nil)
		if err != nil {
			return "error: " + err.Error()
		}
		d.m = m
		return ""
	case "resume":
		b, err := Marshal(d.m.Record())
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		prev, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		cfg := d.cfg
		cfg.Self = a.str("self", cfg.Self)
		m, err := New(cfg, prev)
		if err != nil {
			return "error: " + err.Error()
		}
		d.m = m
		return ""
	case "report":
		r := &transport.LoadReport{Host: a.str("host", ""), At: a.at()}
		r.ClientID = a.str("client", "client-"+r.Host)
		r.Stopping = a.flag("stopping")
		now := r.At
		var common []string
		for _, k := range []string{"workitems", "activities", "timers", "next", "outbox", "lag", "events", "cache", "instances", "latency"} {
			if v, ok := a.kv[k]; ok {
				a.used[k] = true
				common = append(common, k+"="+v)
			}
		}
		if ps := a.str("parts", ""); ps != "" {
			for _, s := range strings.Split(ps, ",") {
				p, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("%s: parts: %v", where, err)
				}
				r.Partitions = append(r.Partitions, ddLoad(t, where, p, common))
			}
		}
		for _, in := range c.input {
			if sent, ok := strings.CutPrefix(in, "sent="); ok {
				d, err := time.ParseDuration(sent)
				if err != nil {
					t.Fatalf("%s: sent: %v", where, err)
				}
				r.At = ddBase.Add(d)
				continue
			}
			f := strings.Fields(in)
			pa := parseArgs(t, where, f[:1])
			p := pa.int("p", -1)
			pa.done()
			l := ddLoad(t, where, p, append(common, f[1:]...))
			replaced := false
			for i := range r.Partitions {
				if r.Partitions[i].Partition == p {
					r.Partitions[i], replaced = l, true
				}
			}
			if !replaced {
				r.Partitions = append(r.Partitions, l)
			}
		}
		d.m.Observe(r, now)
		return ""
	case "decide":
		rec, changed := d.m.Decide(a.at())
		return formatRecord(rec, changed)
	case "loads":
		return formatLoads(d.m.Record())
	case "pending":
		return fmt.Sprintf("pending: %v", d.m.Pending())
	case "rates":
		if d.rates == nil {
			d.rates = map[int]float64{}
		}
		for _, f := range fields[1:] {
			ps, rs, _ := strings.Cut(f, "=")
			p, err1 := strconv.Atoi(ps)
			r, err2 := strconv.ParseFloat(rs, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: bad rate %q", where, f)
			}
			d.rates[p] = r
		}
		a.kv = nil
		return ""
	case "run":
		return d.simulate(a)
	case "wake":
		// wake at=T [unread=P:N,...] [unreadable=P]: Wake over the
		// newest record, with what the input queues hold.
		var unread []Unread
		if us := a.str("unread", ""); us != "" {
			for _, s := range strings.Split(us, ",") {
				ps, ns, _ := strings.Cut(s, ":")
				p, err1 := strconv.Atoi(ps)
				n, err2 := strconv.Atoi(ns)
				if err1 != nil || err2 != nil {
					t.Fatalf("%s: bad unread %q", where, s)
				}
				unread = append(unread, Unread{Partition: p, Work: n})
			}
		}
		if a.has("unreadable") {
			unread = append(unread, Unread{Partition: a.int("unreadable", 0), Err: errors.New("receiver refused")})
		}
		horizon := d.cfg.TimerHorizon
		if horizon == 0 {
			horizon = DefaultTimerHorizon
		}
		w := Wake(d.m.Record(), unread, a.at(), horizon)
		return fmt.Sprintf("wake: %d (%s)", w.Hosts, w.Reason)
	}
	t.Fatalf("%s: unknown command %q", where, fields[0])
	return ""
}

func ddLoad(t *testing.T, where string, p int, kvs []string) transport.PartitionLoad {
	a := parseArgs(t, where, kvs)
	l := transport.PartitionLoad{
		Partition: p, WorkItems: a.int("workitems", 0), Activities: a.int("activities", 0),
		Timers: a.int("timers", 0), Outbox: a.int("outbox", 0), InputLag: int64(a.int("lag", 0)),
		Events: int64(a.int("events", 0)), CacheBytes: int64(a.int("cache", 0)), Instances: int64(a.int("instances", 0)),
		Latency: a.str("latency", ""),
	}
	if a.has("next") {
		l.NextTimer = ddBase.Add(a.dur("next"))
	}
	a.done()
	return l
}

// formatRecord prints what a specification cares about: the placement as
// runs of partitions per owner, the hosts, the recommendation.
func formatRecord(r *Record, changed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v%d", r.Version)
	if changed {
		b.WriteString(" changed")
	}
	b.WriteString(" owners: " + ownerRuns(r.Owners))
	count := map[string]int{}
	for _, o := range r.Owners {
		count[o]++
	}
	b.WriteString("\nhosts:")
	if len(r.Hosts) == 0 {
		b.WriteString(" none")
	}
	for _, h := range r.Hosts {
		state := "dead"
		switch {
		case h.Stopping:
			state = "stopping"
		case h.Live:
			state = "live"
		}
		fmt.Fprintf(&b, " %s(%s,%d)", h.ID, state, count[h.ID])
	}
	fmt.Fprintf(&b, "\nrecommend: %d (%s)", r.Recommendation.Hosts, r.Recommendation.Reason)
	return b.String()
}

func formatLoads(r *Record) string {
	var lines []string
	for _, l := range r.Loads {
		if l == (transport.PartitionLoad{Partition: l.Partition}) {
			continue
		}
		s := fmt.Sprintf("p%d: workitems=%d activities=%d timers=%d outbox=%d lag=%d events=%d latency=%s",
			l.Partition, l.WorkItems, l.Activities, l.Timers, l.Outbox, l.InputLag, l.Events, l.Latency)
		if !l.NextTimer.IsZero() {
			s += fmt.Sprintf(" next=%v", l.NextTimer.Sub(ddBase))
		}
		lines = append(lines, s)
	}
	if len(lines) == 0 {
		return "no loads"
	}
	return strings.Join(lines, "\n")
}

// simulate runs hosts that follow the placement (the run command).
func (d *ddRunner) simulate(a *ddArgs) string {
	hosts := strings.Split(a.str("hosts", ""), ",")
	from, to, every := ddBase.Add(a.dur("from")), ddBase.Add(a.dur("to")), a.dur("every")
	latency := a.str("latency", "")
	if every <= 0 {
		d.t.Fatalf("%s: every= missing", a.where)
	}
	if d.simOwner == nil {
		d.simOwner, d.simEvents = map[int]string{}, map[int]float64{}
	}
	var out []string
	owners := d.m.Record().Owners
	for now := from; !now.After(to); now = now.Add(every) {
		for _, h := range hosts {
			r := &transport.LoadReport{Host: h, ClientID: "client-" + h, At: now}
			for p, o := range owners {
				if o != h {
					continue
				}
				if d.simOwner[p] != h {
					// Events count from the partition's start on a host.
					d.simOwner[p], d.simEvents[p] = h, 0
				} else {
					d.simEvents[p] += d.rates[p] * every.Seconds()
				}
				r.Partitions = append(r.Partitions, transport.PartitionLoad{Partition: p, Events: int64(d.simEvents[p]), Latency: latency})
			}
			d.m.Observe(r, now)
		}
		rec, changed := d.m.Decide(now)
		owners = rec.Owners
		if changed {
			out = append(out, fmt.Sprintf("%v: v%d %s", now.Sub(ddBase), rec.Version, ownerRuns(rec.Owners)))
		}
	}
	if len(out) == 0 {
		out = append(out, "no change")
	}
	load := map[string]float64{}
	for p, o := range owners {
		load[o] += d.rates[p]
	}
	var fin []string
	for _, h := range hosts {
		fin = append(fin, fmt.Sprintf("%s=%g", h, load[h]))
	}
	out = append(out, "load: "+strings.Join(fin, " "))
	return strings.Join(out, "\n")
}

func ownerRuns(owners []string) string {
	var parts []string
	for i := 0; i < len(owners); {
		j := i
		for j+1 < len(owners) && owners[j+1] == owners[i] {
			j++
		}
		o := owners[i]
		if o == "" {
			o = "-"
		}
		if i == j {
			parts = append(parts, fmt.Sprintf("%d:%s", i, o))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d:%s", i, j, o))
		}
		i = j + 1
	}
	return strings.Join(parts, " ")
}
