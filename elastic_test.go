package netherite_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// The elastic tests run several hosts in one process on the memory
// transport and one directory: hosts join, leave, die and come back while
// hello5 and bank transfers run; every acknowledged orchestration must
// complete exactly once, and the bank total must be conserved.

const (
	elasticPartitions = 12
	elasticInterval   = 200 * time.Millisecond
	elasticTimeout    = 2 * time.Second
	elasticAccounts   = 12
	elasticInitial    = 1000
)

// elasticHub is a task hub shared by the hosts of one test.
type elasticHub struct {
	t   *testing.T
	dir string
	// base has the transport (and the task hub) of every host.
	base netherite.Options
	mu   sync.Mutex
	all  []*netherite.Host
	// after runs once every host stopped.
	after func()
	// own checks that no two hosts ever run a partition at once; hv, if
	// set, measures handovers.
	own ownership
	hv  atomic.Pointer[handovers]
}

func newElasticHub(t *testing.T) *elasticHub {
	t.Cleanup(netherite.SetClientAttemptTimeout(2 * time.Second))
	tr := transport.NewMemory(elasticPartitions)
	e := &elasticHub{t: t, dir: t.TempDir(), own: ownership{runner: map[int]string{}}}
	e.base = netherite.Options{SharedTransport: tr, Storage: e.dir, PartitionCount: elasticPartitions}
	t.Cleanup(tr.Close)
	t.Cleanup(netherite.SetPartitionEvents(func(host string, p int, event string, at time.Time) {
		e.own.observe(host, p, event)
		if hv := e.hv.Load(); hv != nil {
			hv.observe(p, event, at)
		}
	}))
	t.Cleanup(func() {
		defer e.own.check(t)
		e.mu.Lock()
		defer e.mu.Unlock()
		var wg sync.WaitGroup
		for _, h := range e.all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.Stop(context.Background())
			}()
		}
		wg.Wait()
		if e.after != nil {
			e.after()
		}
	})
	return e
}

// newElasticHubOnEventHubs is newElasticHub on the Event Hubs emulator,
// with a fresh task hub (name prefix, then a number) deleted at the end.
func newElasticHubOnEventHubs(t *testing.T, prefix string) *elasticHub {
	eh := emulatortest.Get(t) // first: it must outlive the hosts
	e := newElasticHub(t)
	name := fmt.Sprintf("%s%d", prefix, time.Now().UnixNano()%1e12)
	e.base = netherite.Options{Storage: e.dir, PartitionCount: elasticPartitions, TaskHub: name,
		Transport: eh.ConnectionString, EventHubsPrefix: name + "-", EventHubsAdminURL: eh.AdminURL}
	del := e.base
	e.after = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := netherite.DeleteTaskHub(ctx, del); err != nil {
			t.Errorf("delete task hub %s: %v", name, err)
		}
	}
	return e
}

func elasticRegistry() *durable.Registry {
	r := durable.NewRegistry()
	samples.Register(r)
	hello := durable.RegisterActivity(r, "ElasticHello", func(ctx durable.ActivityContext, i int) (int, error) { return i, nil })
	durable.RegisterOrchestrator(r, "Hello5", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		sum := 0
		for i := 1; i <= 5; i++ {
			v, err := durable.Await[int](hello.Call(ctx, i))
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	durable.RegisterOrchestrator(r, "ZeroSleeper", func(ctx durable.OrchestrationContext, seconds int) (string, error) {
		return "woke", ctx.CreateTimer(time.Duration(seconds) * time.Second).Await(nil)
	})
	return r
}

func elasticLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("NETHERITE_ELASTIC_LOG") != "" {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func (e *elasticHub) options(id string) netherite.Options {
	o := e.base
	o.Elastic, o.HostID, o.LoadReportInterval, o.HostTimeout = true, id, elasticInterval, elasticTimeout
	o.StateCacheBytes, o.Logger = 32<<20, elasticLogger()
	return o
}

// start starts an elastic host.
func (e *elasticHub) start(id string) *netherite.Host {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := netherite.Start(ctx, e.options(id), elasticRegistry())
	if err != nil {
		e.t.Fatalf("start host %s: %v", id, err)
	}
	if h.ID() != id {
		e.t.Fatalf("host id %q, want %q", h.ID(), id)
	}
	e.mu.Lock()
	e.all = append(e.all, h)
	e.mu.Unlock()
	return h
}

// client starts a host that runs no partition: the load's client, which
// lives through every move.
func (e *elasticHub) client() durable.Client {
	e.t.Helper()
	o := e.base
	o.Partitions, o.Logger = []int{}, elasticLogger()
	h, err := netherite.Start(context.Background(), o, elasticRegistry())
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.all = append(e.all, h)
	e.mu.Unlock()
	return h.Client()
}

func runningCount(h *netherite.Host) int {
	n := 0
	for _, s := range h.Partitions() {
		if s.State == netherite.PartitionOK {
			n++
		}
	}
	return n
}

func counts(hosts ...*netherite.Host) []int {
	out := make([]int, len(hosts))
	for i, h := range hosts {
		out[i] = runningCount(h)
	}
	return out
}

// waitCounts waits until the hosts run the given numbers of partitions,
// and returns how long that took.
func waitCounts(t *testing.T, within time.Duration, what string, hosts []*netherite.Host, want ...int) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		got := counts(hosts...)
		if slices.Equal(got, want) {
			took := time.Since(start)
			t.Logf("%s: %v after %v", what, got, took.Round(time.Millisecond))
			return took
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: partitions running %v after %v, want %v", what, got, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load runs hello5 and bank transfers until stopped, and then checks
// every acknowledged orchestration and the bank total.
type load struct {
	t      *testing.T
	c      durable.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	acked  map[string]string // id -> orchestration
	unsure []string          // starts that failed: they may run
	fails  atomic.Int64
}

func elasticAccount(i int) string { return fmt.Sprintf("acct%d!%d", i, i%elasticPartitions) }

func startLoad(t *testing.T, c durable.Client) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < elasticAccounts; i++ {
		if err := c.SignalEntity(ctx, core.NewEntityID(samples.Account, elasticAccount(i)), "deposit", elasticInitial); err != nil {
			t.Fatal(err)
		}
	}
	l := &load{t: t, c: c, acked: map[string]string{}}
	lctx, lcancel := context.WithCancel(context.Background())
	l.cancel = lcancel
	for g := 0; g < 2; g++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; lctx.Err() == nil; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				name, input := "Hello5", any(nil)
				if g == 1 {
					from := i % elasticAccounts
					to := (from + 1 + i%(elasticAccounts-1)) % elasticAccounts
					name, input = samples.Transfer, samples.TransferRequest{From: elasticAccount(from), To: elasticAccount(to), Amount: 1 + i%7}
				}
				// Not cancelled with the load: every start ends acknowledged
				// or failed, so that no transfer is in flight at the check.
				sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.StartOrchestration(sctx, name, input, durable.WithStartInstanceID(id))
				scancel()
				if err != nil {
					if l.fails.Add(1) <= 3 {
						l.t.Logf("start %s: %v", id, err)
					}
					l.mu.Lock()
					l.unsure = append(l.unsure, id)
					l.mu.Unlock()
					continue
				}
				l.mu.Lock()
				l.acked[id] = name
				l.mu.Unlock()
				select {
				case <-lctx.Done():
				case <-time.After(15 * time.Millisecond):
				}
			}
		}()
	}
	return l
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// check stops the load and checks its outcome.
func (l *load) check(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if len(l.acked) < 20 {
		t.Fatalf("only %d orchestrations acknowledged", len(l.acked))
	}
	ids := make([]string, 0, len(l.acked))
	for id := range l.acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	errs := make(chan error, len(ids))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := l.c.WaitForCompletion(ctx, id, durable.WithPayloads(), durable.WithHistory())
			switch {
			case err != nil:
				errs <- fmt.Errorf("acknowledged %s (%s): %w", id, l.acked[id], err)
			case s.RuntimeStatus != core.StatusCompleted:
				errs <- fmt.Errorf("acknowledged %s (%s): %s %v", id, l.acked[id], s.RuntimeStatus, s.Failure)
			case l.acked[id] == "Hello5" && string(s.Output) != "15":
				errs <- fmt.Errorf("%s: output %s, want 15", id, s.Output)
			default:
				if err := durabletest.CheckExactlyOnce(s.History); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			}
		}()
	}
	// A start that failed may have created its instance all the same: a
	// transfer must not be in flight when the accounts are summed.
	for _, id := range l.unsure {
		if _, err := l.c.GetStatus(ctx, id); err == nil {
			if _, err := l.c.WaitForCompletion(ctx, id); err != nil {
				t.Errorf("unacknowledged %s: %v", id, err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for i := 0; i < elasticAccounts; i++ {
		m, err := l.c.GetEntity(ctx, core.NewEntityID(samples.Account, elasticAccount(i)), true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		if err := m.ReadState(&bal); err != nil {
			t.Fatal(err)
		}
		total += bal
	}
	if total != elasticAccounts*elasticInitial {
		t.Fatalf("bank total %d, want %d", total, elasticAccounts*elasticInitial)
	}
	t.Logf("%d acknowledged orchestrations completed exactly once (%d starts failed); bank total conserved", len(ids), l.fails.Load())
}

// handovers records, per partition, when a host began to release it and
// when the next host ran it.
type handovers struct {
	mu       sync.Mutex
	released map[int]time.Time
	took     []time.Duration
}

func (e *elasticHub) watchHandovers() *handovers {
	hv := &handovers{released: map[int]time.Time{}}
	e.hv.Store(hv)
	return hv
}

func (hv *handovers) observe(p int, event string, at time.Time) {
	hv.mu.Lock()
	defer hv.mu.Unlock()
	switch event {
	case "release":
		hv.released[p] = at
	case "running":
		if r, ok := hv.released[p]; ok {
			hv.took = append(hv.took, at.Sub(r))
			delete(hv.released, p)
		}
	}
}

// ownership follows which host runs each partition: a host says "running"
// once it holds the partition's lock, and "stopped" before it lets the lock
// go, so with exclusive ownership a partition is never "running" on a host
// while another host has not said "stopped".
type ownership struct {
	mu       sync.Mutex
	runner   map[int]string
	overlaps []string
	runs     int
}

func (o *ownership) observe(host string, p int, event string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch event {
	case "running":
		o.runs++
		if r, ok := o.runner[p]; ok {
			o.overlaps = append(o.overlaps, fmt.Sprintf("partition %d runs on %s while %s still runs it", p, host, r))
		}
		o.runner[p] = host
	case "stopped":
		if r := o.runner[p]; r == host {
			delete(o.runner, p)
		} else {
			o.overlaps = append(o.overlaps, fmt.Sprintf("partition %d stopped on %s, but it ran on %q", p, host, r))
		}
	}
}

// check fails the test if two hosts ever ran a partition at once, or if
// the events said nothing at all (the check would mean nothing).
func (o *ownership) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.runs == 0 {
		t.Error("ownership check: no partition ever reported running")
	}
	for _, s := range o.overlaps {
		t.Error("ownership: " + s)
	}
	if len(o.runner) != 0 {
		t.Errorf("ownership: partitions still running after every host stopped: %v", o.runner)
	}
}

// summary returns the handover times so far, and forgets them.
func (hv *handovers) summary() (n int, p50, worst time.Duration) {
	hv.mu.Lock()
	defer hv.mu.Unlock()
	d := slices.Clone(hv.took)
	hv.took = nil
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	return len(d), d[len(d)/2], d[len(d)-1]
}

// TestElasticJoinAndLeave: one host, then three (4/4/4 within 10 s); one
// stops gracefully (its partitions run elsewhere within 2 s); it comes
// back and gets its share.
func TestElasticJoinAndLeave(t *testing.T) {
	e := newElasticHub(t)
	hv := e.watchHandovers()
	a := e.start("a")
	waitCounts(t, 10*time.Second, "one host", []*netherite.Host{a}, 12)
	l := startLoad(t, e.client())
	b, c := e.start("b"), e.start("c")
	waitCounts(t, 10*time.Second, "three hosts", []*netherite.Host{a, b, c}, 4, 4, 4)
	n, p50, worst := hv.summary()
	t.Logf("scale-out handovers: %d, p50 %v, max %v", n, p50, worst)

	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, 2*time.Second, "b stopped", []*netherite.Host{a, c}, 6, 6)
	n, p50, worst = hv.summary()
	t.Logf("graceful stop handovers: %d, p50 %v, max %v", n, p50, worst)
	if n != 4 {
		t.Errorf("%d handovers measured after b stopped, want 4", n)
	}

	b = e.start("b")
	waitCounts(t, 10*time.Second, "b back", []*netherite.Host{a, b, c}, 4, 4, 4)
	n, p50, worst = hv.summary()
	t.Logf("rejoin handovers: %d, p50 %v, max %v", n, p50, worst)
	for l.count() < 50 {
		time.Sleep(20 * time.Millisecond)
	}
	l.check(t)
}

// TestElasticKill: a host dies; its partitions run elsewhere within the
// host timeout + 5 s; restarted, it gets its share back.
func TestElasticKill(t *testing.T) {
	e := newElasticHub(t)
	a, b, c := e.start("a"), e.start("b"), e.start("c")
	waitCounts(t, 10*time.Second, "three hosts", []*netherite.Host{a, b, c}, 4, 4, 4)
	l := startLoad(t, e.client())
	for l.count() < 20 {
		time.Sleep(20 * time.Millisecond)
	}
	c.Kill()
	waitCounts(t, elasticTimeout+5*time.Second, "c killed", []*netherite.Host{a, b}, 6, 6)
	c = e.start("c")
	waitCounts(t, 10*time.Second, "c back", []*netherite.Host{a, b, c}, 4, 4, 4)
	for l.count() < 60 {
		time.Sleep(20 * time.Millisecond)
	}
	l.check(t)
}

// TestElasticMonitorFailover: the host running the load monitor dies;
// another takes the monitor over and placement keeps working.
func TestElasticMonitorFailover(t *testing.T) {
	e := newElasticHub(t)
	a, b := e.start("a"), e.start("b")
	waitCounts(t, 10*time.Second, "two hosts", []*netherite.Host{a, b}, 6, 6)
	l := startLoad(t, e.client())
	rec, err := a.Scale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*netherite.Host{"a": a, "b": b}
	dying, other := hosts[rec.Monitor], a
	if dying == nil {
		t.Fatalf("record names monitor %q, neither host", rec.Monitor)
	}
	if dying == a {
		other = b
	}
	for l.count() < 20 {
		time.Sleep(20 * time.Millisecond)
	}
	dying.Kill()
	waitCounts(t, elasticTimeout+5*time.Second, "monitor's host killed", []*netherite.Host{other}, 12)
	rec, err = other.Scale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Monitor != other.ID() {
		t.Fatalf("monitor %q after %s died, want %s", rec.Monitor, dying.ID(), other.ID())
	}
	d := e.start("d")
	waitCounts(t, 10*time.Second, "new host", []*netherite.Host{other, d}, 6, 6)
	for l.count() < 60 {
		time.Sleep(20 * time.Millisecond)
	}
	l.check(t)
	// The status of the task hub, read from storage without a host.
	st, err := netherite.TaskHubStatus(context.Background(), netherite.Options{Storage: e.dir, TaskHub: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Monitor != other.ID() || len(st.Owners) != elasticPartitions {
		t.Fatalf("task hub status: monitor %q, %d owners", st.Monitor, len(st.Owners))
	}
}

// TestElasticOptions: elastic misconfigurations are refused with errors
// that name the option.
func TestElasticOptions(t *testing.T) {
	r := durable.NewRegistry()
	tr := transport.NewMemory(4)
	defer tr.Close()
	dir := t.TempDir()
	for _, c := range []struct {
		o    netherite.Options
		want string
	}{
		{netherite.Options{Elastic: true, Storage: dir, PartitionCount: 4}, "Options.SharedTransport"},
		{netherite.Options{Elastic: true, Storage: "memory", SharedTransport: tr, PartitionCount: 4}, "storage that every host"},
		{netherite.Options{Elastic: true, Storage: dir, SharedTransport: tr, PartitionCount: 4, Partitions: []int{0}}, "Options.Partitions"},
		{netherite.Options{Elastic: true, Backend: netherite.BackendAzStorage, Storage: "UseDevelopmentStorage=true"}, "Options.Elastic"},
		{netherite.Options{Storage: dir, LoadReportInterval: time.Second}, "Options.Elastic"},
		{netherite.Options{Storage: dir, HostTimeout: time.Second}, "Options.Elastic"},
		{netherite.Options{Elastic: true, Storage: dir, SharedTransport: tr, PartitionCount: 4, LoadReportInterval: -1}, "Options.LoadReportInterval"},
		{netherite.Options{Elastic: true, Storage: dir, SharedTransport: tr, PartitionCount: 4, LoadReportInterval: 2}, "at least 10ms"},
		{netherite.Options{Elastic: true, Storage: dir, SharedTransport: tr, PartitionCount: 4,
			LoadReportInterval: time.Second, HostTimeout: 1500 * time.Millisecond}, "Options.HostTimeout"},
	} {
		h, err := netherite.Start(context.Background(), c.o, r)
		if err == nil {
			h.Stop(context.Background())
			t.Errorf("options %+v accepted", c.o)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("options %+v: error %q does not name %s", c.o, err, c.want)
		}
	}
	// A host id by default; the defaults of the intervals.
	h, err := netherite.Start(context.Background(), netherite.Options{Elastic: true, Storage: dir, SharedTransport: tr, PartitionCount: 4,
		Logger: elasticLogger()}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	host, _ := os.Hostname()
	if id := h.ID(); !strings.HasPrefix(id, fmt.Sprintf("%s-%d-", host, os.Getpid())) || len(id) != len(fmt.Sprintf("%s-%d-abcd", host, os.Getpid())) {
		t.Errorf("default host id %q", id)
	}
	if o := h.Options(); o.LoadReportInterval != netherite.DefaultLoadReportInterval || o.HostTimeout != netherite.DefaultHostTimeout {
		t.Errorf("defaults: interval %v, timeout %v", o.LoadReportInterval, o.HostTimeout)
	}
	// No task hub; a task hub whose monitor never ran.
	if _, err := netherite.TaskHubStatus(context.Background(), netherite.Options{Storage: t.TempDir()}); err == nil {
		t.Error("TaskHubStatus of an empty directory succeeded")
	}
	static := t.TempDir()
	sh, err := netherite.Start(context.Background(), netherite.Options{Storage: static, PartitionCount: 2, Logger: elasticLogger()}, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sh.Scale(context.Background()); err == nil || !strings.Contains(err.Error(), "Options.Elastic") {
		t.Errorf("Scale of a static host: %v", err)
	}
	if err := sh.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := netherite.TaskHubStatus(context.Background(), netherite.Options{Storage: static}); err == nil ||
		!strings.Contains(err.Error(), "no load monitor record") {
		t.Errorf("TaskHubStatus of a static task hub: %v", err)
	}
	if _, err := netherite.TaskHubStatus(context.Background(), netherite.Options{Storage: "memory"}); err == nil {
		t.Error("TaskHubStatus of memory storage succeeded")
	}
}

// TestElasticWaitSurvivesMove: a client waiting for an orchestration whose
// partition moves to another host gets its answer (partitions forget
// their waiting clients when they stop; the client re-arms its wait).
func TestElasticWaitSurvivesMove(t *testing.T) {
	e := newElasticHub(t)
	a, b := e.start("a"), e.start("b")
	waitCounts(t, 10*time.Second, "two hosts", []*netherite.Host{a, b}, 6, 6)
	p := -1
	for _, s := range b.Partitions() {
		if s.State == netherite.PartitionOK {
			p = s.Partition
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := fmt.Sprintf("waiter!%d", p)
	c := a.Client()
	if _, err := c.StartOrchestration(ctx, samples.WaitForEvent, nil, durable.WithStartInstanceID(id)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
		if err == nil && (s.RuntimeStatus != core.StatusCompleted || string(s.Output) != `"approved"`) {
			err = fmt.Errorf("status %s, output %s", s.RuntimeStatus, s.Output)
		}
		done <- err
	}()
	for b.Waiters(p) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the wait never reached the partition")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Work on the partition after the wait: its new owner resumes reading
	// the partition's queue after the wait.
	after := fmt.Sprintf("after!%d", p)
	if _, err := c.StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID(after)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForCompletion(ctx, after); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, 5*time.Second, "b stopped", []*netherite.Host{a}, 12)
	if err := c.RaiseEvent(ctx, id, "Approval", "approved"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait was not answered after its partition moved")
	}
}

// TestElasticEventHubs: elastic hosts over Event Hubs (the emulator) and a
// directory: placement updates cross the clients' hubs, load reports the
// loadmonitor hub; a host joins and one stops gracefully under load.
func TestElasticEventHubs(t *testing.T) {
	if testing.Short() {
		t.Skip("Event Hubs emulator test skipped in -short mode")
	}
	e := newElasticHubOnEventHubs(t, "el")
	a := e.start("a")
	waitCounts(t, 20*time.Second, "one host", []*netherite.Host{a}, 12)
	l := startLoad(t, e.client())
	b := e.start("b")
	waitCounts(t, 20*time.Second, "two hosts", []*netherite.Host{a, b}, 6, 6)
	for l.count() < 20 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCounts(t, 5*time.Second, "b stopped", []*netherite.Host{a}, 12)
	for l.count() < 40 {
		time.Sleep(20 * time.Millisecond)
	}
	l.check(t)
}

// TestElasticRecommendation: the recommended host count rises under a
// backlog, falls to 0 when the task hub is idle, and a timer due soon
// keeps it at 1.
func TestElasticRecommendation(t *testing.T) {
	t.Cleanup(netherite.TuneMonitor(func(c *loadmonitor.Config) { c.BacklogPerHost = 20 }))
	e := newElasticHub(t)
	r := elasticRegistry()
	slow := durable.RegisterActivity(r, "ElasticSlow", func(ctx durable.ActivityContext, i int) (int, error) {
		time.Sleep(20 * time.Millisecond)
		return i, nil
	})
	durable.RegisterOrchestrator(r, "ElasticFan", func(ctx durable.OrchestrationContext, n int) (int, error) {
		ts := make([]durable.Task, n)
		for i := range ts {
			ts[i] = slow.Call(ctx, i)
		}
		return 0, durable.WhenAll(ts...).Await(nil)
	})
	durable.RegisterOrchestrator(r, "ElasticSleeper", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		return "woke", ctx.CreateTimer(30 * time.Second).Await(nil)
	})
	o := e.options("a")
	o.MaxConcurrentActivities = 2
	a, err := netherite.Start(context.Background(), o, r)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.all = append(e.all, a)
	e.mu.Unlock()
	waitCounts(t, 10*time.Second, "one host", []*netherite.Host{a}, 12)
	waitRecord := func(what string, within time.Duration, ok func(*loadmonitor.Record) bool) *loadmonitor.Record {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			rec, err := a.Scale(context.Background())
			if err == nil && ok(rec) {
				t.Logf("%s: recommendation %d (%s)", what, rec.Recommendation.Hosts, rec.Recommendation.Reason)
				return rec
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; last record %+v (error %v)", what, within, rec, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The record shows the host, what it runs and the partitions' load.
	waitRecord("host reported", 5*time.Second, func(rec *loadmonitor.Record) bool {
		return len(rec.Hosts) == 1 && rec.Hosts[0].ID == "a" && rec.Hosts[0].Live && len(rec.Hosts[0].Running) == 12 &&
			rec.Monitor == "a" && len(rec.Loads) == 12
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := a.Client()
	var ids []string
	for i := 0; i < 30; i++ {
		id, err := c.StartOrchestration(ctx, "ElasticFan", 10)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waitRecord("backlog", 10*time.Second, func(rec *loadmonitor.Record) bool { return rec.Recommendation.Hosts > 1 })
	for _, id := range ids {
		s, err := c.WaitForCompletion(ctx, id, durable.WithHistory())
		if err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s: %v %v", id, err, s)
		}
		if err := durabletest.CheckExactlyOnce(s.History); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	waitRecord("idle", 15*time.Second, func(rec *loadmonitor.Record) bool { return rec.Recommendation.Hosts == 0 })
	if _, err := c.StartOrchestration(ctx, "ElasticSleeper", nil); err != nil {
		t.Fatal(err)
	}
	waitRecord("timer due soon", 15*time.Second, func(rec *loadmonitor.Record) bool {
		return rec.Recommendation.Hosts == 1 && strings.Contains(rec.Recommendation.Reason, "timer")
	})
}
