package partitions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// mustStart starts a partition that the test stops at its end (if it has
// not stopped by then).
func mustStart(t testing.TB, cfg Config, st *State) *Partition {
	t.Helper()
	p, err := Start(context.Background(), cfg, st)
	if err != nil {
		t.Fatalf("start partition %d: %v", cfg.Partition, err)
	}
	return p
}

// sleepExecutor runs activities that take d (or until their context is
// cancelled) and counts them.
type sleepExecutor struct {
	d           time.Duration
	started     atomic.Int64
	ran         atomic.Int64 // ran to the end
	interrupted atomic.Int64 // saw their context cancelled
}

func (x *sleepExecutor) ExecuteOrchestration(*OrchestrationWork) *OrchestrationOutcome {
	return &OrchestrationOutcome{Status: core.StatusRunning}
}

func (x *sleepExecutor) ExecuteEntity(_ core.EntityID, st *core.EntityState, _ []*core.HistoryEvent, _ time.Time) (*core.EntityState, []*core.TaskMessage) {
	return st, nil
}

func (x *sleepExecutor) ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage {
	x.started.Add(1)
	t := time.NewTimer(x.d)
	defer t.Stop()
	select {
	case <-t.C:
		x.ran.Add(1)
	case <-ctx.Done():
		x.interrupted.Add(1)
	}
	reply := core.NewEvent(core.EventTaskCompleted, time.Now())
	return &core.TaskMessage{Target: m.Target, Event: reply}
}

// stateWithActivities returns partition p's state with n queued activities
// (for an instance that does not exist: their replies are dropped).
func stateWithActivities(p, count, n int) *State {
	st := NewState(p, count)
	for i := 1; i <= n; i++ {
		st.Activities[uint64(i)] = &core.TaskMessage{Target: core.Instance{InstanceID: fmt.Sprintf("gone!%d", p)},
			Event: core.NewEvent(core.EventTaskScheduled, t0)}
	}
	st.NextActivityID = uint64(n) + 1
	return st
}

// fakeStore is a CheckpointStore in memory whose checkpoints can fail or
// block.
type fakeStore struct {
	MemoryLog
	mu        sync.Mutex
	failSaves int           // the next saves that fail
	block     chan struct{} // saves wait for it, if set
	inSave    atomic.Int64
	saves     atomic.Int64 // that succeeded
	attempts  atomic.Int64
	lastPos   atomic.Uint64
}

func (f *fakeStore) Mark() int64 { _, n := f.Stats(); return n }

func (f *fakeStore) Snapshot(s *State) (*Snapshot, error) { return &Snapshot{State: []byte("s")}, nil }

func (f *fakeStore) LogBytes() int64 { _, n := f.Stats(); return 100 * n }

func (f *fakeStore) SaveCheckpoint(snap *Snapshot, lastPos, inputPos uint64, mark int64) error {
	f.attempts.Add(1)
	f.mu.Lock()
	block := f.block
	fail := f.failSaves > 0
	if fail {
		f.failSaves--
	}
	f.mu.Unlock()
	if block != nil {
		f.inSave.Add(1)
		<-block
		f.inSave.Add(-1)
	}
	if fail {
		return errors.New("injected: device full")
	}
	f.saves.Add(1)
	f.lastPos.Store(lastPos)
	return nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestStartValidatesConfig(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	good := func() Config {
		return Config{Partition: 1, Count: 2, Executor: &sleepExecutor{}, Transport: tr, Pools: NewPools(1, 1, 1)}
	}
	cases := []struct {
		change func(c *Config, st **State)
		want   string
	}{
		{func(c *Config, _ **State) { c.Count = 0 }, "Config.Count"},
		{func(c *Config, _ **State) { c.Partition = 2 }, "Config.Partition"},
		{func(c *Config, _ **State) { c.Partition = -1 }, "Config.Partition"},
		{func(c *Config, _ **State) { c.Executor = nil }, "Config.Executor"},
		{func(c *Config, _ **State) { c.Transport = nil }, "Config.Transport"},
		{func(c *Config, _ **State) { c.Transport = transport.NewMemory(3) }, "Config.Transport"},
		{func(c *Config, _ **State) { c.Pools = nil }, "Config.Pools"},
		{func(c *Config, _ **State) { c.Pools = &Pools{} }, "Config.Pools"},
		{func(c *Config, _ **State) { c.MaxPayloadBytes = -1 }, "Config.MaxPayloadBytes"},
		{func(c *Config, _ **State) { c.EntityBatchLimit = -1 }, "Config.EntityBatchLimit"},
		{func(_ *Config, st **State) { *st = nil }, "no state"},
		{func(_ *Config, st **State) { *st = NewState(0, 2) }, "state is of partition 0"},
	}
	for _, c := range cases {
		cfg, st := good(), NewState(1, 2)
		c.change(&cfg, &st)
		p, err := Start(context.Background(), cfg, st)
		if err == nil {
			_ = p.Stop(context.Background())
			t.Errorf("%s: started, want an error", c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %q does not name %s", err, c.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, good(), NewState(1, 2)); !errors.Is(err, context.Canceled) {
		t.Errorf("start with a cancelled context: %v", err)
	}
	p, err := Start(context.Background(), good(), NewState(1, 2))
	if err != nil {
		t.Fatalf("a good config: %v", err)
	}
	if err := p.Stop(context.Background()); err != nil || p.Err() != nil {
		t.Fatalf("clean stop: %v, Err %v", err, p.Err())
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

// Cancelling Start's context stops the partition at once: running
// activities see their context cancelled, nothing more is logged or
// checkpointed, and Err says why.
func TestCancelStopsAtOnce(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	x := &sleepExecutor{d: time.Hour}
	store := &fakeStore{}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, Config{Partition: 0, Count: 1, Executor: x, Transport: tr, Log: store, Pools: NewPools(4, 4, 4),
		Checkpoints: CheckpointPolicy{Events: 1 << 30, Idle: time.Hour}}, stateWithActivities(0, 1, 10))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "activities to run", func() bool { return x.started.Load() == 4 })
	if p.Err() != nil {
		t.Fatalf("Err while running: %v", p.Err())
	}
	cancel()
	select {
	case <-p.Done():
	case <-time.After(failAfter):
		t.Fatal("Done not closed after the context was cancelled")
	}
	if err := p.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after cancel: %v, want context.Canceled", err)
	}
	appends, _ := store.Stats()
	// Every goroutine that logs or checkpoints has ended: nothing more.
	if err := tr.SendToPartition(0, &transport.Packet{Request: &transport.ClientRequest{Kind: transport.RequestStatus,
		ClientID: "c", RequestID: 1, InstanceID: "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatalf("Stop after cancel: %v", err)
	}
	if a, _ := store.Stats(); a != appends || store.attempts.Load() != 0 {
		t.Fatalf("after cancel: %d more appends, %d checkpoints", a-appends, store.attempts.Load())
	}
	waitFor(t, "running activities to see the cancellation", func() bool { return x.interrupted.Load() == 4 })
	if p.Err() == nil {
		t.Fatal("Stop after a cancel made Err nil")
	}
}

// startQueued starts 12 partitions sharing an activity pool of the given
// size, with 10,000 queued activities of 20 ms in all, and waits until
// some run.
func startQueued(t testing.TB, pool int) ([]*Partition, *sleepExecutor, *transport.Memory) {
	return startQueuedCtx(context.Background(), t, pool, 20*time.Millisecond)
}

func startQueuedCtx(ctx context.Context, t testing.TB, pool int, d time.Duration) ([]*Partition, *sleepExecutor, *transport.Memory) {
	const count, total = 12, 10000
	tr := transport.NewMemory(count)
	x := &sleepExecutor{d: d}
	pools := NewPools(100, 100, pool)
	var parts []*Partition
	for i := 0; i < count; i++ {
		n := total / count
		if i < total%count {
			n++
		}
		p, err := Start(ctx, Config{Partition: i, Count: count, Executor: x, Transport: tr, Pools: pools,
			Log: &fakeStore{}}, stateWithActivities(i, count, n))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	waitFor(t, "activities to start", func() bool { return x.started.Load() > 0 })
	return parts, x, tr
}

func stopAll(t testing.TB, parts []*Partition) {
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), failAfter)
			defer cancel()
			if err := p.Stop(ctx); err != nil {
				t.Errorf("stop: %v", err)
			}
		}()
	}
	wg.Wait()
}

// Stop cancels queued activities instead of running them; they stay in
// the state (and its checkpoint) for the next owner.
func TestStopCancelsQueuedActivities(t *testing.T) {
	// A pool of 16 would take 12.5 s for the backlog: Stop must not.
	parts, x, tr := startQueued(t, 16)
	defer tr.Close()
	t0 := time.Now()
	stopAll(t, parts)
	t.Logf("Stop took %v (no timing assertion: see BenchmarkStopWithQueuedActivities)", time.Since(t0))
	ran := x.ran.Load()
	left, cancelled := 0, int64(0)
	for _, p := range parts {
		left += len(p.State().Activities)
		cancelled += p.ActivitiesCancelled()
		if p.Err() != nil {
			t.Fatalf("Err after a clean Stop: %v", p.Err())
		}
	}
	t.Logf("of 10000 activities %d ran, %d were cancelled, %d are left for the next owner", ran, cancelled, left)
	if ran >= 10000 || left == 0 {
		t.Fatalf("Stop ran the backlog: %d of 10000 ran, %d left", ran, left)
	}
	if int64(left)+ran < 10000 {
		t.Fatalf("activities lost: %d ran, %d left", ran, left)
	}
	if cancelled == 0 {
		t.Fatalf("no activity was cancelled")
	}
	for _, p := range parts {
		if store := p.cfg.Log.(*fakeStore); store.saves.Load() != 1 {
			t.Fatalf("partition %d: %d checkpoints on Stop, want 1", p.cfg.Partition, store.saves.Load())
		}
	}
}

// BenchmarkStopWithQueuedActivities times Stop of 12 partitions with
// 10,000 queued 20 ms activities (issue 9: well under 1 s).
func BenchmarkStopWithQueuedActivities(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		parts, _, tr := startQueued(b, 100) // the host's default
		b.StartTimer()
		stopAll(b, parts)
		b.StopTimer()
		tr.Close()
	}
}

// A failed checkpoint is reported, does not move the checkpoint position,
// and is retried with backoff until it succeeds.
func TestFailedCheckpointRetried(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	store := &fakeStore{failSaves: 2}
	p := mustStart(t, Config{Partition: 0, Count: 1, Executor: &sleepExecutor{}, Transport: tr, Log: store,
		Pools: NewPools(1, 1, 1), Checkpoints: CheckpointPolicy{Events: 1, Idle: time.Hour}}, NewState(0, 1))
	defer p.Stop(context.Background())
	waitFor(t, "the first attempt to fail", func() bool { err, n := p.CheckpointErr(); return err != nil && n == 1 })
	if err, _ := p.CheckpointErr(); !strings.Contains(err.Error(), "device full") {
		t.Fatalf("reported %v", err)
	}
	// The recovery event made the one change; no event follows, so only a
	// retry can take the checkpoint.
	waitFor(t, "a retry to succeed", func() bool { return store.saves.Load() == 1 })
	if err, n := p.CheckpointErr(); err != nil || n != 2 {
		t.Fatalf("after the retry: %v, %d failures", err, n)
	}
	if pos := store.lastPos.Load(); pos != 1 {
		t.Fatalf("checkpoint covers %d, want 1", pos)
	}
}

// A checkpoint asked for while one is still being written is answered
// (busy: Checkpoint tries again) rather than left waiting forever.
func TestCheckpointSkipAnswers(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	store := &fakeStore{block: make(chan struct{})}
	p := mustStart(t, Config{Partition: 0, Count: 1, Executor: &sleepExecutor{}, Transport: tr, Log: store,
		Pools: NewPools(1, 1, 1), Checkpoints: CheckpointPolicy{Events: 1 << 30, Idle: time.Hour}}, NewState(0, 1))
	defer p.Stop(context.Background())
	// One checkpoint being written, one more queued for the writer.
	p.ckptCh <- &checkpointJob{}
	waitFor(t, "the writer to block", func() bool { return store.inSave.Load() == 1 })
	p.ckptCh <- &checkpointJob{}
	done := make(chan error, 1)
	go func() { done <- p.Checkpoint(context.Background()) }()
	waitFor(t, "a checkpoint to be skipped", func() bool { return p.stats.ckptSkipped.Load() > 0 })
	close(store.block)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Checkpoint: %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Checkpoint never answered after a skipped checkpoint")
	}
}

// Waits whose client gave up (their deadline passed) are dropped, so that
// polling with timeouts does not grow the waiters.
func TestExpiredWaitersDropped(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	resp, closeResp, err := tr.ListenClient("c")
	if err != nil {
		t.Fatal(err)
	}
	defer closeResp()
	p := mustStart(t, Config{Partition: 0, Count: 1, Executor: &sleepExecutor{}, Transport: tr,
		Pools: NewPools(1, 1, 1)}, NewState(0, 1))
	defer p.Stop(context.Background())
	// An instance that waits for a start a day away.
	start := core.NewEvent(core.EventExecutionStarted, time.Now())
	start.Name, start.InstanceID, start.ExecutionID = "O", "late", "e1"
	start.FireAt = time.Now().Add(24 * time.Hour)
	send := func(req *transport.ClientRequest) {
		req.ClientID, req.Timestamp = "c", time.Now()
		if err := tr.SendToPartition(0, &transport.Packet{Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	send(&transport.ClientRequest{Kind: transport.RequestCreate, RequestID: 1, InstanceID: "late", Event: start})
	select {
	case pk := <-resp:
		if pk.Response.Error != "" {
			t.Fatalf("create: %s", pk.Response.Error)
		}
	case <-time.After(failAfter):
		t.Fatal("no answer to create")
	}
	id := uint64(1)
	for round := 0; round < 3; round++ {
		for i := 0; i < 50; i++ {
			id++
			kind := transport.RequestWaitCompletion
			if i%2 == 0 {
				kind = transport.RequestWaitStart
			}
			send(&transport.ClientRequest{Kind: kind, RequestID: id, InstanceID: "late",
				Deadline: time.Now().Add(time.Second)})
		}
		waitFor(t, "the waits to be registered", func() bool { return p.Waiters() == 50 })
		waitFor(t, "expired waiters to go", func() bool { return p.Waiters() == 0 })
	}
	// A wait without a deadline stays.
	id++
	send(&transport.ClientRequest{Kind: transport.RequestWaitCompletion, RequestID: id, InstanceID: "late"})
	waitFor(t, "the wait without deadline", func() bool { return p.Waiters() == 1 })
}

// Cancelling partitions in full flight (activities completing, the log
// busy) stops each at once: Done closes.
func TestCancelUnderLoadIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	parts, x, tr := startQueuedCtx(ctx, t, 100, time.Millisecond)
	defer tr.Close()
	waitFor(t, "activities to complete", func() bool { return x.ran.Load() > 500 })
	cancel()
	before := make([]int64, len(parts))
	for i, p := range parts {
		before[i] = p.cfg.Log.(*fakeStore).attempts.Load()
	}
	for i, p := range parts {
		select {
		case <-p.Done():
		case <-time.After(failAfter):
			t.Fatalf("partition %d: Done not closed after cancel", p.cfg.Partition)
		}
		if !errors.Is(p.Err(), context.Canceled) {
			t.Fatalf("partition %d: Err %v", p.cfg.Partition, p.Err())
		}
		// (One already being written when the context was cancelled may
		// end; none starts.)
		if n := p.cfg.Log.(*fakeStore).attempts.Load(); n > before[i]+1 {
			t.Fatalf("partition %d: %d checkpoints after cancel", p.cfg.Partition, n-before[i])
		}
	}
}
