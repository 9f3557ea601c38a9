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

func testConfig(tr transport.Transport, p, n int) Config {
	return Config{Partition: p, Count: n, Executor: relayExecutor{}, Transport: tr,
		Pools: NewPools(4, 4, 4), Cursors: NewCursorCache(-1)}
}

func TestStartValidatesConfig(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	cases := []struct {
		field string
		edit  func(c *Config, s **State)
	}{
		{"Config.Count", func(c *Config, s **State) { c.Count = 0 }},
		{"Config.Partition", func(c *Config, s **State) { c.Partition = 2 }},
		{"Config.Executor", func(c *Config, s **State) { c.Executor = nil }},
		{"Config.Transport", func(c *Config, s **State) { c.Transport = nil }},
		{"Config.Transport has 2 partitions", func(c *Config, s **State) { c.Count = 3; *s = NewState(0, 3) }},
		{"Config.Pools", func(c *Config, s **State) { c.Pools = nil }},
		{"state is nil", func(c *Config, s **State) { *s = nil }},
		{"state is of partition 1", func(c *Config, s **State) { *s = NewState(1, 2) }},
		{"Config.EntityBatchLimit", func(c *Config, s **State) { c.EntityBatchLimit = -1 }},
	}
	for _, tc := range cases {
		cfg, st := testConfig(tr, 0, 2), NewState(0, 2)
		tc.edit(&cfg, &st)
		p, err := Start(context.Background(), cfg, st)
		if err == nil {
			p.Stop(context.Background())
			t.Errorf("%s: started", tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name it", tc.field, err)
		}
	}
}

// Cancelling Start's context (lease loss) stops the partition at once: it
// reads, logs and sends nothing more, and does not checkpoint.
func TestCancelStopsAtOnce(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	log := &countingStore{}
	cfg := testConfig(tr, 0, 1)
	cfg.Log = log
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, mem: tr, states: []*State{nil}}
	resp, closeFn, _ := tr.ListenClient("test")
	defer closeFn()
	c.resp = resp
	c.signal("@sink@k!0", "1")
	c.waitSink("@sink@k!0", "1")
	cancel()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the context was cancelled")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err after a cancellation: %v", err)
	}
	_, before := log.Stats()
	c.signal("@sink@k!0", "2")
	time.Sleep(50 * time.Millisecond) // a stopped partition would have logged it by now
	if _, after := log.Stats(); after != before {
		t.Fatalf("logged %d entries after the cancellation", after-before)
	}
	if n := log.saves.Load(); n != 0 {
		t.Fatalf("%d checkpoints after a cancellation", n)
	}
}

// blockingActivities blocks every activity until its context is cancelled,
// counting starts.
type blockingActivities struct {
	relayExecutor
	started atomic.Int64
}

func (b *blockingActivities) ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage {
	b.started.Add(1)
	<-ctx.Done()
	return &core.TaskMessage{Target: core.Instance{InstanceID: m.Target.InstanceID}, Event: core.NewEvent(core.EventTaskCompleted, time.Now())}
}

func stateWithActivities(p, n, activities int) *State {
	st := NewState(p, n)
	for i := 1; i <= activities; i++ {
		e := core.NewEvent(core.EventTaskScheduled, time.Now())
		e.Name = "A"
		st.Activities[uint64(i)] = &core.TaskMessage{Target: core.Instance{InstanceID: fmt.Sprintf("o%d!%d", i, p)}, Event: e}
	}
	st.NextActivityID = uint64(activities)
	return st
}

// Stop does not run the queued activities (it used to run the whole
// backlog): they stay in the state for the next owner, and the running
// ones are cancelled.
func TestStopCancelsQueuedActivities(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	x := &blockingActivities{}
	cfg := testConfig(tr, 0, 1)
	cfg.Executor, cfg.Pools = x, NewPools(4, 4, 2)
	st := stateWithActivities(0, 1, 10000)
	p, err := Start(context.Background(), cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "two activities run", func() (bool, string) {
		n := x.started.Load()
		return n == 2, fmt.Sprint(n)
	})
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := x.started.Load(); n != 2 {
		t.Fatalf("%d activities started, want the 2 that were running", n)
	}
	if n := len(st.Activities); n != 10000 {
		t.Fatalf("%d activities left in the state, want all 10000", n)
	}
}

// BenchmarkStop12x10000Activities: 12 partitions with 10,000 queued
// activities between them (each pool slot busy) stop.
func BenchmarkStop12x10000Activities(b *testing.B) {
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		tr := transport.NewMemory(12)
		x := &blockingActivities{}
		pools := NewPools(100, 100, 100)
		var parts []*Partition
		for i := 0; i < 12; i++ {
			cfg := testConfig(tr, i, 12)
			cfg.Executor, cfg.Pools = x, pools
			p, err := Start(context.Background(), cfg, stateWithActivities(i, 12, 10000/12))
			if err != nil {
				b.Fatal(err)
			}
			parts = append(parts, p)
		}
		for x.started.Load() < 100 {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		for _, p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.Stop(context.Background())
			}()
		}
		wg.Wait()
		b.StopTimer()
		tr.Close()
	}
}

// countingStore is a commit log and checkpoint store in memory whose
// first failSaves checkpoints fail.
type countingStore struct {
	MemoryLog
	failSaves atomic.Int64
	saves     atomic.Int64
	mu        sync.Mutex
	savedPos  []uint64
}

func (s *countingStore) Mark() int64                           { _, n := s.Stats(); return n }
func (s *countingStore) Snapshot(st *State) (*Snapshot, error) { return &Snapshot{}, nil }
func (s *countingStore) LogBytes() int64                       { _, n := s.Stats(); return n * 100 }
func (s *countingStore) SaveCheckpoint(snap *Snapshot, lastPos, inputPos uint64, mark int64) error {
	if s.failSaves.Add(-1) >= 0 {
		return errors.New("injected checkpoint failure")
	}
	s.saves.Add(1)
	s.mu.Lock()
	s.savedPos = append(s.savedPos, lastPos)
	s.mu.Unlock()
	return nil
}

// A failed checkpoint used to be only logged, with the policy's position
// advanced, so it was not retried until new events came. Now it is
// counted and retried without new events.
func TestFailedCheckpointIsRetried(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	store := &countingStore{}
	store.failSaves.Store(1)
	cfg := testConfig(tr, 0, 1)
	cfg.Log, cfg.Checkpoints = store, CheckpointPolicy{Events: 1}
	p, err := Start(context.Background(), cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	// The policy asks for a checkpoint after the first event
	// (RecoveryCompleted); it fails, and no further event comes.
	eventually(t, "the failure is counted", func() (bool, string) {
		n := p.CheckpointFailures()
		return n == 1, fmt.Sprint(n)
	})
	eventually(t, "the checkpoint is retried", func() (bool, string) {
		return store.saves.Load() > 0, "no checkpoint saved"
	})
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.savedPos[0] != 1 {
		t.Fatalf("the retried checkpoint is at %d, want 1", store.savedPos[0])
	}
}

// Waits of clients that gave up used to stay forever: HTTP polls with a
// timeout grew the waiter map without bound.
func TestWaitersGoAwayWithTheirClients(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	p, err := Start(context.Background(), testConfig(tr, 0, 1), NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	// An instance that stays pending: its start is an hour away.
	start := core.NewEvent(core.EventExecutionStarted, time.Now())
	start.Name, start.ExecutionID, start.FireAt = "O", "e1", time.Now().Add(time.Hour)
	send := func(r *transport.ClientRequest) {
		r.ClientID = "test"
		if err := tr.SendToPartition(0, &transport.Packet{Request: r}); err != nil {
			t.Fatal(err)
		}
	}
	send(&transport.ClientRequest{Kind: transport.RequestCreate, RequestID: 1, InstanceID: "later", Event: start})
	const polls = 300
	for i := 0; i < polls; i++ {
		send(&transport.ClientRequest{Kind: transport.RequestWaitStart, RequestID: uint64(100 + i), InstanceID: "later",
			Deadline: time.Now().Add(100 * time.Millisecond)})
	}
	for i := 0; i < polls; i++ {
		send(&transport.ClientRequest{Kind: transport.RequestWaitCompletion, RequestID: uint64(1000 + i), InstanceID: "later"})
	}
	eventually(t, "the waits are registered", func() (bool, string) {
		n := p.Waiters()
		return n >= polls, fmt.Sprint(n)
	})
	for i := 0; i < polls; i++ {
		send(&transport.ClientRequest{Kind: transport.RequestCancel, RequestID: uint64(1000 + i), InstanceID: "later"})
	}
	eventually(t, "the waits expire or are cancelled", func() (bool, string) {
		n := p.Waiters()
		return n == 0, fmt.Sprint(n)
	})
}

// failingLog fails every append.
type failingLog struct{}

func (failingLog) Append(entries []LogEntry) error { return errors.New("injected commit failure") }

// A partition whose commit log failed used to stay dead, unnoticed: now
// Done is closed and Err says why.
func TestCommitErrorEndsPartitionWithErr(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	cfg := testConfig(tr, 0, 1)
	cfg.Log = failingLog{} // the first append (RecoveryCompleted) fails
	p, err := Start(context.Background(), cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a failed commit did not stop the partition")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "injected commit failure") {
		t.Fatalf("Err = %v, want the commit failure", err)
	}
	if err := p.Stop(context.Background()); err == nil {
		t.Fatal("Stop of a failed partition returned nil")
	}
}

// A queue position that is gone (trimmed, expired) would skip packets: the
// partition fails loudly instead of reading on.
func TestPositionGoneFailsPartition(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	for i := 0; i < 3; i++ {
		_ = tr.SendToPartition(0, &transport.Packet{Ack: &transport.Ack{From: 0, UpTo: 1}})
	}
	if _, _, err := tr.ReceivePartition(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	tr.TrimPartition(0, 2)
	p, err := Start(context.Background(), testConfig(tr, 0, 1), NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("reading a gone position did not stop the partition")
	}
	if err := p.Err(); !errors.Is(err, transport.ErrPositionGone) {
		t.Fatalf("Err = %v, want ErrPositionGone", err)
	}
}
