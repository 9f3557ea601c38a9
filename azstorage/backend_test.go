package azstorage_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/azstorage"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

func TestMain(m *testing.M) { blobtest.Main(m) }

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// connection returns the test account, which must have queue and table
// endpoints: an Azurite started by an older scripts/azurite/start.sh (blob
// only) skips, or fails in CI.
func connection(t testing.TB) string {
	t.Helper()
	s := blobtest.Connection(t)
	if strings.Contains(s, "BlobEndpoint=") && !strings.Contains(s, "QueueEndpoint=") {
		msg := "NETHERITE_AZURITE names no QueueEndpoint: azstorage needs Azurite's queue and table services; " +
			"restart Azurite with scripts/azurite/start.sh, which starts all three"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIP: " + msg)
	}
	return s
}

// hubName returns a fresh task hub name per test.
func hubName() string { return fmt.Sprintf("t%d", time.Now().UnixNano()%1e13) }

// testConfig is a worker with short polling and leases, for tests only.
func testConfig(t *testing.T, hub string) azstorage.Config {
	return azstorage.Config{Storage: connection(t), TaskHub: hub, MaxQueuePollingInterval: 50 * time.Millisecond,
		LeaseDuration: 15 * time.Second, LeaseRenewInterval: 2 * time.Second, LeaseAcquireInterval: 500 * time.Millisecond,
		Logger: testLogger()}
}

func startBackend(t *testing.T, cfg azstorage.Config, r *durable.Registry) *azstorage.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := azstorage.Start(ctx, cfg, r)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHelloSequence(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	b := startBackend(t, testConfig(t, hubName()), r)
	ctx := testCtx(t)
	c := b.Client()
	id, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads(), durable.WithHistory())
	if err != nil {
		t.Fatal(err)
	}
	if s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("status %s, failure %v", s.RuntimeStatus, s.Failure)
	}
	var out []string
	if err := s.ReadOutput(&out); err != nil || len(out) != 3 {
		t.Fatalf("output %s: %v", s.Output, err)
	}
	st := b.Stats()
	t.Logf("output %v; %d history events; stats %+v (requests %d)", out, len(s.History), st, st.Requests())
	if st.Episodes < 4 || st.Activities != 3 {
		t.Fatalf("stats %+v: want at least 4 episodes and 3 activities", st)
	}
}

func TestFanOut(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	b := startBackend(t, testConfig(t, hubName()), r)
	ctx := testCtx(t)
	c := b.Client()
	const n = 200 // each activity costs about four queue requests; Azurite serves ~150 a second
	begin := time.Now()
	id, err := c.StartOrchestration(ctx, samples.FanOutFanIn, n)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatalf("%v; stats %+v", err, b.Stats())
	}
	var sum int
	if err := s.ReadOutput(&sum); err != nil || sum != n*(n+1)*(2*n+1)/6 {
		t.Fatalf("status %s output %s failure %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	t.Logf("fan-out of %d in %v; stats %+v", n, time.Since(begin), b.Stats())
}

// TestLeaseStealing: a second worker steals half of the control queues
// from the first, both then process orchestrations, and when one stops
// the other takes its queues back.
func TestLeaseStealing(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	hub := hubName()
	cfgA, cfgB := testConfig(t, hub), testConfig(t, hub)
	cfgA.WorkerID, cfgB.WorkerID = "worker-a", "worker-b"
	a := startBackend(t, cfgA, r)
	ctx := testCtx(t)
	waitFor(t, ctx, "worker a owns all 4 control queues", func() bool { return len(a.OwnedControlQueues()) == 4 })

	bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := azstorage.Start(bctx, cfgB, r)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the queues balanced 2/2", func() bool {
		qa, qb := a.OwnedControlQueues(), b.OwnedControlQueues()
		if len(qa) != 2 || len(qb) != 2 {
			return false
		}
		for _, q := range qa {
			for _, p := range qb {
				if p == q {
					return false
				}
			}
		}
		return true
	})
	t.Logf("a owns %v, b owns %v", a.OwnedControlQueues(), b.OwnedControlQueues())

	// Orchestrations land on both workers' queues and complete.
	var ids []string
	for i := 0; i < 8; i++ {
		id, err := a.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID(fmt.Sprintf("steal-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		s, err := b.Client().WaitForCompletion(ctx, id)
		if err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s: %v %v", id, s, err)
		}
	}
	if a.Stats().Episodes == 0 || b.Stats().Episodes == 0 {
		t.Errorf("episodes: a %d, b %d; want both workers to run some", a.Stats().Episodes, b.Stats().Episodes)
	}

	// b stops gracefully (releasing its leases): a takes all back.
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "worker a owns all 4 again", func() bool { return len(a.OwnedControlQueues()) == 4 })
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestExtendedSessions: with extended sessions an orchestration's history
// is read once; without, once per episode.
func TestExtendedSessions(t *testing.T) {
	for _, extended := range []bool{false, true} {
		t.Run(fmt.Sprintf("extended=%v", extended), func(t *testing.T) {
			r := durable.NewRegistry()
			samples.Register(r)
			cfg := testConfig(t, hubName())
			cfg.ExtendedSessions = extended
			b := startBackend(t, cfg, r)
			ctx := testCtx(t)
			id, err := b.Client().StartOrchestration(ctx, samples.HelloSequence, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := b.Client().WaitForCompletion(ctx, id, durable.WithPayloads())
			if err != nil || s.RuntimeStatus != core.StatusCompleted {
				t.Fatalf("%v %v", s, err)
			}
			st := b.Stats()
			want := st.Episodes // one load per episode
			if extended {
				want = 1 // only the first episode's (empty) history
			}
			if st.HistoryLoads != want {
				t.Errorf("%d history loads for %d episodes, want %d", st.HistoryLoads, st.Episodes, want)
			}
		})
	}
}
