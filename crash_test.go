package netherite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/samples"
)

// The crash test runs a mixed workload in a child process and kills it
// with SIGKILL at random moments, many times, each time restarting on the
// same directory. The child records every creation the host acknowledged.
// At the end every acknowledged orchestration must complete exactly once,
// every activity result must be recorded once per task, timers must have
// fired and the bank total must be conserved.
//
// NETHERITE_CRASH_KILLS sets the number of kills (default 20), and
// NETHERITE_CRASH_SPECULATION the speculation mode (none, local or
// global; default: every mode, local with all the kills, the others with
// a quarter of them).

const (
	crashChildEnv    = "NETHERITE_CRASH_CHILD"
	crashRunEnv      = "NETHERITE_CRASH_RUN"
	crashStorageEnv  = "NETHERITE_CRASH_STORAGE"
	crashHubEnv      = "NETHERITE_CRASH_HUB"
	crashSpecEnv     = "NETHERITE_CRASH_SPECULATION"
	crashPartitions  = 4
	crashAccounts    = 8
	crashInitial     = 1000
	crashSleeperName = "CrashSleeper"
)

func crashRegistry() *durable.Registry {
	r := durable.NewRegistry()
	samples.Register(r)
	durable.RegisterOrchestrator(r, crashSleeperName, func(ctx durable.OrchestrationContext, ms int) (string, error) {
		due := ctx.CurrentTime().Add(time.Duration(ms) * time.Millisecond)
		if err := ctx.CreateTimerAt(due).Await(nil); err != nil {
			return "", err
		}
		if ctx.CurrentTime().Before(due) {
			return "", fmt.Errorf("timer fired early: %s < %s", ctx.CurrentTime(), due)
		}
		return "woke", nil
	})
	return r
}

func crashOptions(dir string) netherite.Options {
	o := netherite.Options{Storage: dir, PartitionCount: crashPartitions, StateCacheBytes: 1 << 20,
		Checkpoints: partitions.CheckpointPolicy{Events: 300}}
	o.Speculation, _ = netherite.ParseSpeculation(os.Getenv(crashSpecEnv)) // checked by crashModes
	// On Azure Storage: the account and task hub come from the environment.
	if s := os.Getenv(crashStorageEnv); s != "" {
		o.Storage, o.TaskHub, o.LeaseDuration = s, os.Getenv(crashHubEnv), 15*time.Second
	}
	return o
}

func crashAccount(i int) string { return fmt.Sprintf("acct%d!%d", i, i%crashPartitions) }

// TestCrashChild is the child's workload; it does nothing unless started
// by TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestCrashRecovery")
	}
	run := os.Getenv(crashRunEnv)
	ctx := context.Background()
	h, err := netherite.Start(ctx, crashOptions(dir), crashRegistry())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: start:", err)
		os.Exit(3)
	}
	acks, err := os.OpenFile(filepath.Join(dir, "acknowledged.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		os.Exit(4)
	}
	var mu sync.Mutex
	c := h.Client()
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g) + time.Now().UnixNano()))
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-%d", run, g, i)
				var name string
				var input any
				switch i % 4 {
				case 0:
					name = samples.HelloSequence
				case 1:
					name, input = samples.FanOutFanIn, 20
				case 2:
					name, input = crashSleeperName, 20+rng.Intn(80)
				case 3:
					from := rng.Intn(crashAccounts)
					to := (from + 1 + rng.Intn(crashAccounts-1)) % crashAccounts
					name, input = samples.Transfer, samples.TransferRequest{From: crashAccount(from), To: crashAccount(to), Amount: 1 + rng.Intn(5)}
				}
				if os.Getenv(crashStorageEnv) != "" {
					time.Sleep(20 * time.Millisecond) // keep the backlog small on remote storage
				}
				if _, err := c.StartOrchestration(ctx, name, input, durable.WithStartInstanceID(id)); err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(acks, "%s %s\n", id, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	kills := 20
	if s := os.Getenv("NETHERITE_CRASH_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	for _, m := range crashModes(t, kills) {
		t.Run(m.name, func(t *testing.T) {
			t.Setenv(crashSpecEnv, m.name)
			crashRun(t, m.kills, m.minMs, 500)
		})
	}
}

type crashMode struct {
	name  string
	kills int
	minMs int // the least time a child runs before the kill
}

// crashModes lists the speculation modes to crash in: the one
// NETHERITE_CRASH_SPECULATION names, or all.
func crashModes(t *testing.T, kills int) []crashMode {
	if s := os.Getenv(crashSpecEnv); s != "" {
		if _, err := netherite.ParseSpeculation(s); err != nil {
			t.Fatalf("%s: %v", crashSpecEnv, err)
		}
		return []crashMode{{s, kills, crashMinMs(s)}}
	}
	return []crashMode{{"local", kills, 150}, {"none", max(1, kills/4), 150}, {"global", max(1, kills/2), crashMinMs("global")}}
}

// crashMinMs is how long a child runs at least before it is killed: under
// global speculation, a loaded host acknowledges its first starts later
// (doc/speculation.md, "Durability lag").
func crashMinMs(mode string) int {
	if mode == "global" {
		return 1500
	}
	return 150
}

// TestCrashRecoveryAzurite is the crash test on Azure Storage (Azurite):
// fewer kills, because a killed host keeps its leases until they expire
// (15 s here) and the next run waits for them.
func TestCrashRecoveryAzurite(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	conn := blobtest.Connection(t)
	kills := 3
	if s := os.Getenv("NETHERITE_CRASH_KILLS_AZURITE"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	t.Setenv(crashStorageEnv, conn)
	t.Setenv(crashHubEnv, fmt.Sprintf("crash%d", time.Now().UnixNano()%1e9))
	// Each child first waits for its dead predecessor's leases to expire.
	crashRun(t, kills, 17000, 3000)
}

func crashRun(t *testing.T, kills, minMs, spreadMs int) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Fund the accounts before the crashes start.
	h, err := netherite.Start(ctx, crashOptions(dir), crashRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < crashAccounts; i++ {
		if err := h.Client().SignalEntity(ctx, core.NewEntityID(samples.Account, crashAccount(i)), "deposit", crashInitial); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=10m")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRunEnv+"="+strconv.Itoa(k))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(minMs+rng.Intn(spreadMs)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child did not die by SIGKILL (%v); stderr:\n%s", k, err, stderr.String())
		}
	}

	// Restart once more and let everything finish.
	h, err = netherite.Start(ctx, crashOptions(dir), crashRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	c := h.Client()
	f, err := os.Open(filepath.Join(dir, "acknowledged.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	acked := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id, name, ok := strings.Cut(sc.Text(), " "); ok {
			acked[id] = name
		}
	}
	if len(acked) < kills {
		t.Fatalf("only %d creations acknowledged over %d runs", len(acked), kills)
	}
	want := map[string]string{
		samples.HelloSequence: `["Hello Tokyo!","Hello Seattle!","Hello London!"]`,
		samples.FanOutFanIn:   "2870",
		crashSleeperName:      `"woke"`,
	}
	for id, name := range acked {
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads(), durable.WithHistory())
		if err != nil {
			t.Fatalf("acknowledged %s (%s): %v", id, name, err)
		}
		if s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("acknowledged %s (%s): %s %v", id, name, s.RuntimeStatus, s.Failure)
		}
		if w, ok := want[name]; ok && string(s.Output) != w {
			t.Fatalf("%s (%s): output %s, want %s", id, name, s.Output, w)
		}
		if err := durabletest.CheckExactlyOnce(s.History); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	// Creations a killed child made but did not get to acknowledge run too:
	// a transfer among them moves money while the accounts are summed.
	// Wait until nothing runs.
	for {
		page, err := c.Query(ctx, durable.InstanceQuery{Statuses: []core.RuntimeStatus{core.StatusRunning, core.StatusPending}, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Instances) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instance %s still %s", page.Instances[0].InstanceID, page.Instances[0].RuntimeStatus)
		case <-time.After(100 * time.Millisecond):
		}
	}
	total := 0
	for i := 0; i < crashAccounts; i++ {
		m, err := c.GetEntity(ctx, core.NewEntityID(samples.Account, crashAccount(i)), true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		_ = m.ReadState(&bal)
		total += bal
	}
	if total != crashAccounts*crashInitial {
		t.Fatalf("bank total %d after %d kills, want %d", total, kills, crashAccounts*crashInitial)
	}
	t.Logf("%d kills, %d acknowledged orchestrations all completed exactly once; bank total conserved", kills, len(acked))
}
