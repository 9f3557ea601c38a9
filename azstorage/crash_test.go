package azstorage_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/azstorage"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// The crash test runs orchestrations in a child worker process and
// SIGKILLs it at random moments, then lets a fresh worker finish. Every
// orchestration whose start the client acknowledged must complete with the
// right output. Activities may run more than once (the baseline's
// documented at-least-once semantics): the duplicates are counted, not
// failed.

const (
	crashDirEnv = "AZS_CRASH_DIR"
	crashHubEnv = "AZS_CRASH_HUB"
	crashGenEnv = "AZS_CRASH_GEN"
	crashChain  = "CrashChain"
	crashStep   = "CrashStep"
)

func crashRegistry(dir string) *durable.Registry {
	r := durable.NewRegistry()
	step := durable.RegisterActivity(r, crashStep, func(ctx durable.ActivityContext, n int) (int, error) {
		f, err := os.OpenFile(filepath.Join(dir, "activities"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, "%s %d\n", ctx.InstanceID(), ctx.TaskID()); err != nil {
			return 0, err
		}
		return n + 1, nil
	})
	durable.RegisterOrchestrator(r, crashChain, func(ctx durable.OrchestrationContext, n int) (int, error) {
		for i := 0; i < 3; i++ {
			v, err := step.Call(ctx, n).Get()
			if err != nil {
				return 0, err
			}
			n = v
		}
		if err := ctx.CreateTimer(500 * time.Millisecond).Await(nil); err != nil {
			return 0, err
		}
		return n, nil
	})
	return r
}

func crashConfig(t *testing.T, hub string) azstorage.Config {
	c := testConfig(t, hub)
	// Messages a killed worker held come back after 3 s instead of 5
	// minutes; its leases expire after the minimum 15 s.
	c.VisibilityTimeout = 3 * time.Second
	c.LeaseRenewInterval = 5 * time.Second
	return c
}

// TestCrashChild is the child's workload; it does nothing unless started
// by TestCrashRecovery.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestCrashRecovery")
	}
	b := startBackend(t, crashConfig(t, os.Getenv(crashHubEnv)), crashRegistry(dir))
	acks, err := os.OpenFile(filepath.Join(dir, "acked"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; ; i++ {
		id := fmt.Sprintf("crash-%s-%d", os.Getenv(crashGenEnv), i)
		if _, err := b.Client().StartOrchestration(ctx, crashChain, i, durable.WithStartInstanceID(id)); err != nil {
			t.Logf("start %s: %v", id, err)
			continue
		}
		fmt.Fprintf(acks, "%s %d\n", id, i)
		_ = acks.Sync()
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills workers and waits for their leases to expire (about a minute)")
	}
	conn := connection(t)
	dir, hub := t.TempDir(), hubName()
	const kills = 2
	for gen := 0; gen < kills; gen++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashHubEnv+"="+hub, fmt.Sprintf("%s=%d", crashGenEnv, gen),
			"NETHERITE_AZURITE="+conn)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(2000+rand.IntN(2000)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	acked := map[string]int{}
	readLines(t, filepath.Join(dir, "acked"), func(f []string) {
		var n int
		fmt.Sscan(f[1], &n)
		acked[f[0]] = n
	})
	if len(acked) == 0 {
		t.Fatal("the children acknowledged no orchestration")
	}
	// A fresh worker finishes the work, once the dead workers' leases
	// expire.
	b := startBackend(t, crashConfig(t, hub), crashRegistry(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for id, n := range acked {
		s, err := b.Client().WaitForCompletion(ctx, id, durable.WithPayloads())
		if err != nil {
			// Say where it stopped: its status and history.
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, serr := b.Client().GetStatus(sctx, id, durable.WithPayloads(), durable.WithHistory())
			if serr != nil {
				t.Fatalf("%s: %v (status: %v)", id, err, serr)
			}
			var h []string
			for _, e := range st.History {
				h = append(h, fmt.Sprintf("%s#%d/%d", e.Kind, e.EventID, e.TaskScheduledID))
			}
			t.Fatalf("%s: %v; it is %s, history %v", id, err, st.RuntimeStatus, h)
		}
		var out int
		if s.RuntimeStatus != core.StatusCompleted || s.ReadOutput(&out) != nil || out != n+3 {
			t.Fatalf("%s: %s output %s failure %v, want %d", id, s.RuntimeStatus, s.Output, s.Failure, n+3)
		}
	}
	runs := map[string]int{}
	readLines(t, filepath.Join(dir, "activities"), func(f []string) { runs[f[0]+" "+f[1]]++ })
	dups := 0
	for id := range acked {
		for task := 0; task < 3; task++ {
			// The task ids of the three calls are their sequence numbers.
			n := runs[fmt.Sprintf("%s %d", id, task)]
			if n == 0 {
				t.Errorf("%s: activity %d never ran, yet the orchestration completed", id, task)
			}
			dups += max(n-1, 0)
		}
	}
	t.Logf("%d kills, %d acknowledged orchestrations completed; %d duplicate activity executions (allowed: at least once)",
		kills, len(acked), dups)
}

func readLines(t *testing.T, path string, fn func([]string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 {
			fn(fs)
		}
	}
}
