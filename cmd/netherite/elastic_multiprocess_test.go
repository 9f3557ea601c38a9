package main

// The elastic multi-process test: three `netherite serve -elastic`
// processes share a task hub on the Event Hubs emulator and Azurite while
// the test drives hello5 and bank transfers as a client. One host starts,
// two join (4/4/4 within 10 s), one stops gracefully (its partitions run
// elsewhere within 2 s), one is killed with SIGKILL (its partitions run
// elsewhere within the lease plus 5 s) and restarted (it gets its share
// back). Then every acknowledged orchestration completed exactly once and
// the bank total is conserved. Partition ownership is observed as the
// hosts report it, through GET /runtime/webhooks/durabletask/scale.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/bench"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/httpapi"
	"github.com/netherite-go/netherite/samples"
)

const (
	elPartitions = 12
	elAccounts   = 6
	elFunds      = 1000
	elLease      = 15 * time.Second
)

func elAccount(i int) core.EntityID {
	return core.NewEntityID(samples.Account, fmt.Sprintf("el-acct%d!%d", i, i*2%elPartitions))
}

// scaleOf reads a process's /scale (nil while it has no record).
func scaleOf(p *proc) (*httpapi.ScaleStatus, error) {
	resp, err := http.Get("http://" + p.addr + httpapi.ScalePath)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /scale: %s", resp.Status)
	}
	var s httpapi.ScaleStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("GET /scale: %w", err)
	}
	return &s, nil
}

// running maps each live host to the partitions it reports running.
func running(s *httpapi.ScaleStatus) map[string][]int {
	out := map[string][]int{}
	for _, h := range s.Hosts {
		if h.Live {
			out[h.ID] = h.Running
		}
	}
	return out
}

func describe(s *httpapi.ScaleStatus) string {
	if s == nil {
		return "no record"
	}
	var parts []string
	for _, h := range s.Hosts {
		parts = append(parts, fmt.Sprintf("%s(live %v) placed %v running %v", h.ID, h.Live, h.Partitions, h.Running))
	}
	return fmt.Sprintf("version %d, monitor %s, recommendation %+v: %s", s.PlacementVersion, s.Monitor, s.Recommendation, strings.Join(parts, "; "))
}

// elProcs are the host processes, for their logs in failure messages.
var elProcs []*proc

// waitScale polls p's /scale every 100 ms until cond holds, and returns
// how long that took; it fails the test after limit.
func waitScale(t *testing.T, p *proc, what string, limit time.Duration, cond func(*httpapi.ScaleStatus) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last *httpapi.ScaleStatus
	var lastErr error
	for time.Since(start) < limit {
		s, err := scaleOf(p)
		if err == nil && s != nil && cond(s) {
			return time.Since(start)
		}
		last, lastErr = s, err
		time.Sleep(100 * time.Millisecond)
	}
	var logs strings.Builder
	for _, q := range elProcs {
		fmt.Fprintf(&logs, "\n--- %s:\n%s", q.name, q.logs)
	}
	t.Fatalf("%s: not within %v (last /scale of %s: %s, %v)%s", what, limit, p.name, describe(last), lastErr, logs.String())
	return 0
}

// waitMetrics polls p's /metrics until it has lines starting with each
// of prefixes.
func waitMetrics(t *testing.T, p *proc, prefixes ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var text string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.addr + httpapi.MetricsPath)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text = string(b)
			missing := false
			for _, pre := range prefixes {
				if !strings.Contains("\n"+text, "\n"+pre) {
					missing = true
				}
			}
			if !missing {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/metrics of %s lacks %q:\n%s", p.name, prefixes, text)
}

// terminate sends SIGTERM and returns the process's exit, once it exits.
func (p *proc) terminate() <-chan error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	return done
}

// spread says that the given live hosts run every partition between them,
// each its fair share, none twice.
func spread(hosts ...string) func(*httpapi.ScaleStatus) bool {
	return func(s *httpapi.ScaleStatus) bool {
		run := running(s)
		if len(run) != len(hosts) {
			return false
		}
		seen := map[int]bool{}
		lo, hi := elPartitions/len(hosts), (elPartitions+len(hosts)-1)/len(hosts)
		for _, h := range hosts {
			ps, ok := run[h]
			if !ok || len(ps) < lo || len(ps) > hi {
				return false
			}
			for _, p := range ps {
				if seen[p] {
					return false // reported by two hosts: a move in progress
				}
				seen[p] = true
			}
		}
		return len(seen) == elPartitions
	}
}

// hostOf returns the partitions a host reports running.
func hostOf(s *httpapi.ScaleStatus, id string) []int {
	for _, h := range s.Hosts {
		if h.ID == id {
			return h.Running
		}
	}
	return nil
}

// movedFrom says that every partition of old runs on a live host other
// than gone.
func movedFrom(gone string, old []int) func(*httpapi.ScaleStatus) bool {
	return func(s *httpapi.ScaleStatus) bool {
		for _, p := range old {
			found := false
			for h, ps := range running(s) {
				if h != gone && slices.Contains(ps, p) {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
}

func TestMultiProcessElastic(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	storage := blobtest.Connection(t)
	eh := emulatortest.Get(t)
	hub := fmt.Sprintf("el%d", time.Now().UnixNano()%1e12)
	prefix := hub + "-"
	common := []string{"-storage", storage, "-taskhub", hub, "-transport", eh.ConnectionString, "-eventhubs-prefix", prefix,
		"-eventhubs-admin", eh.AdminURL}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out, errb strings.Builder
	if code := run(ctx, append([]string{"taskhub", "create", "-partitions", fmt.Sprint(elPartitions)}, common...), &out, &errb); code != 0 {
		t.Fatalf("taskhub create: exit %d: %s", code, errb.String())
	}
	t.Cleanup(func() {
		var out, errb strings.Builder
		if code := run(context.Background(), append([]string{"taskhub", "delete"}, common...), &out, &errb); code != 0 {
			t.Logf("taskhub delete: %s", errb.String())
		}
	})
	// Before any elastic host ran: a clear error.
	out.Reset()
	errb.Reset()
	if code := run(ctx, append([]string{"taskhub", "status"}, common...), &out, &errb); code != 1 || !strings.Contains(errb.String(), "no load monitor record") {
		t.Fatalf("taskhub status before any elastic host: exit %d: %s%s", code, out.String(), errb.String())
	}

	elProcs = nil
	host := func(id string) *proc {
		p := startServe(t, id, append([]string{"-elastic", "-host-id", id, "-lease", elLease.String(),
			"-load-report-interval", "250ms"}, common...)...)
		elProcs = append(elProcs, p)
		return p
	}
	a := host("host-a")
	waitScale(t, a, "host-a runs all partitions", 60*time.Second, spread("host-a"))

	// The test's client: a host that runs no partition.
	r := durable.NewRegistry()
	samples.Register(r)
	bench.Register(r)
	ch, err := netherite.Start(ctx, netherite.Options{Storage: storage, TaskHub: hub, Transport: eh.ConnectionString,
		EventHubsPrefix: prefix, EventHubsAdminURL: eh.AdminURL, Partitions: []int{}}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop(context.Background())
	c := ch.Client()
	for i := 0; i < elAccounts; i++ {
		if err := c.SignalEntity(ctx, elAccount(i), "deposit", elFunds); err != nil {
			t.Fatal(err)
		}
	}

	// The load: four starters of hello5 and bank transfers, until stopped.
	var mu sync.Mutex
	acked := map[string]string{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	for g := 0; g < 4; g++ {
		load.Add(1)
		go func() {
			defer load.Done()
			rng := rand.New(rand.NewSource(int64(g) + time.Now().UnixNano()))
			for i := 0; loadCtx.Err() == nil; i++ {
				id := fmt.Sprintf("el-%d-%d!%d", g, i, rng.Intn(elPartitions))
				name, input := "BenchHello5", any("Ann")
				if i%2 == 1 {
					from := rng.Intn(elAccounts)
					to := (from + 1 + rng.Intn(elAccounts-1)) % elAccounts
					name, input = samples.Transfer, samples.TransferRequest{From: elAccount(from).Key, To: elAccount(to).Key, Amount: 1 + i%7}
				}
				sctx, scancel := context.WithTimeout(loadCtx, 30*time.Second)
				_, err := c.StartOrchestration(sctx, name, input, durable.WithStartInstanceID(id))
				scancel()
				if err != nil {
					if loadCtx.Err() == nil {
						t.Errorf("start %s: %v", id, err)
					}
					return
				}
				mu.Lock()
				acked[id] = name
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // an offered rate, not a flood: ~200 starts/s in all
			}
		}()
	}

	defer func() {
		stopLoad()
		load.Wait()
	}()

	// Two more hosts join: 4/4/4.
	b, cc := host("host-b"), host("host-c")
	d := waitScale(t, a, "4/4/4 over three hosts", 10*time.Second, spread("host-a", "host-b", "host-c"))
	t.Logf("host-b and host-c joined: partitions spread 4/4/4 %v after both served", d.Round(time.Millisecond))
	if resp, err := http.Get("http://" + a.addr + httpapi.ScalePath); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("GET /scale of host-a: %s", body)
	}
	// Each host's /metrics: its own partitions, and the task hub's
	// recommendation.
	for _, p := range []*proc{a, b, cc} {
		waitMetrics(t, p, fmt.Sprintf(`netherite_host_partitions_running{host=%q} 4`, p.name), `netherite_recommended_hosts `)
	}

	// host-b stops gracefully: its partitions run elsewhere within 2 s.
	s, _ := scaleOf(a)
	bParts := hostOf(s, "host-b")
	exited := b.terminate()
	d = waitScale(t, a, "host-b's partitions elsewhere after its graceful stop", 2*time.Second, movedFrom("host-b", bParts))
	t.Logf("graceful stop of host-b: its partitions %v ran elsewhere %v after SIGTERM", bParts, d.Round(time.Millisecond))
	if err := <-exited; err != nil {
		t.Errorf("host-b's graceful stop: %v\n%s", err, b.logs)
	}
	waitScale(t, a, "6/6 over two hosts", 10*time.Second, spread("host-a", "host-c"))

	// host-c is killed: its partitions run elsewhere within the lease + 5 s.
	s, _ = scaleOf(a)
	cParts := hostOf(s, "host-c")
	killAt := time.Now()
	cc.kill()
	waitScale(t, a, "host-c's partitions elsewhere after SIGKILL", elLease+5*time.Second, movedFrom("host-c", cParts))
	t.Logf("SIGKILL of host-c: its partitions %v ran elsewhere %v later (lease %v)", cParts, time.Since(killAt).Round(time.Millisecond), elLease)

	// host-c restarts: it gets its share back.
	restartAt := time.Now()
	cc.start()
	waitScale(t, a, "host-c back with its share", 30*time.Second, spread("host-a", "host-c"))
	t.Logf("host-c restarted: 6/6 again %v after it was started", time.Since(restartAt).Round(time.Millisecond))

	// The status command reads the same record from storage.
	out.Reset()
	errb.Reset()
	if code := run(ctx, append([]string{"taskhub", "status", "-json"}, common...), &out, &errb); code != 0 {
		t.Fatalf("taskhub status: exit %d: %s", code, errb.String())
	}
	var st httpapi.ScaleStatus
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil || len(st.Partitions) != elPartitions {
		t.Fatalf("taskhub status -json: %v\n%s", err, out.String())
	}

	stopLoad()
	load.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		name := acked[id]
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads(), durable.WithHistory())
		if err != nil {
			t.Fatalf("acknowledged %s (%s): %v\nhost-a:\n%s", id, name, err, a.logs)
		}
		if s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("acknowledged %s (%s): %s %v", id, name, s.RuntimeStatus, s.Failure)
		}
		want := `"Hello Ann"`
		if name == samples.Transfer {
			want = "true"
		}
		if string(s.Output) != want {
			t.Fatalf("%s (%s): output %s, want %s", id, name, s.Output, want)
		}
		checkOnce(t, id, s)
	}
	total := 0
	for i := 0; i < elAccounts; i++ {
		m, err := c.GetEntity(ctx, elAccount(i), true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		if err := m.ReadState(&bal); err != nil {
			t.Fatal(err)
		}
		total += bal
	}
	if total != elAccounts*elFunds {
		t.Fatalf("bank total %d, want %d", total, elAccounts*elFunds)
	}
	t.Logf("%d acknowledged orchestrations completed exactly once across hosts joining, stopping, dying and returning; bank total conserved", len(ids))
	cc.stop()
	a.stop()
}
