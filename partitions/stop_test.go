package partitions

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// Stopping edge cases: the partition must stop (Done) and answer its
// callers whatever its goroutines were doing at that moment.

// quickActivities completes every activity after d.
type quickActivities struct {
	relayExecutor
	d time.Duration
}

func (q quickActivities) ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage {
	time.Sleep(q.d)
	return &core.TaskMessage{Target: core.Instance{InstanceID: m.Target.InstanceID}, Event: core.NewEvent(core.EventTaskCompleted, time.Now())}
}

// gateLog is a commit log whose appends wait for a gate (if set) or take
// a while (delay), and which records what it wrote.
type gateLog struct {
	gate    chan struct{}
	delay   time.Duration
	mu      sync.Mutex
	lastPos uint64
	appends atomic.Int64
}

func (g *gateLog) Append(entries []LogEntry) error {
	if g.gate != nil {
		<-g.gate
	}
	time.Sleep(g.delay)
	g.mu.Lock()
	g.lastPos = entries[len(entries)-1].Pos
	g.mu.Unlock()
	g.appends.Add(1)
	return nil
}

func (g *gateLog) last() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastPos
}

// gateStore is a checkpoint store whose checkpoints wait for a gate.
type gateStore struct {
	MemoryLog
	gate   chan struct{}
	inSave atomic.Int64
}

func (s *gateStore) Mark() int64                           { _, n := s.Stats(); return n }
func (s *gateStore) Snapshot(st *State) (*Snapshot, error) { return &Snapshot{}, nil }
func (s *gateStore) LogBytes() int64                       { _, n := s.Stats(); return n * 100 }
func (s *gateStore) SaveCheckpoint(snap *Snapshot, lastPos, inputPos uint64, mark int64) error {
	s.inSave.Add(1)
	<-s.gate
	return nil
}

func within(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(failAfter):
		t.Fatalf("%s: timed out", what)
	}
}

// A partition cancelled while its log worker is behind (the hand-over
// channel to it is full) stops: its loop used to block forever handing
// one more batch to a log worker that had gone, so Done never closed.
func TestCancelWithLogBackedUpIsDone(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	log := &gateLog{gate: make(chan struct{})}
	cfg := testConfig(tr, 0, 1)
	// One activity at a time, each a millisecond: about one loop turn,
	// one hand-over, each.
	cfg.Executor, cfg.Log, cfg.Pools = quickActivities{d: time.Millisecond}, log, NewPools(1, 1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, cfg, stateWithActivities(0, 1, 5000))
	if err != nil {
		t.Fatal(err)
	}
	// Once the hand-over is full, the loop blocks on it and stops taking
	// in activity results.
	eventually(t, "the loop to block on a full log hand-over", func() (bool, string) {
		return len(p.logCh) == cap(p.logCh) && len(p.intake) >= 3, fmt.Sprint(len(p.logCh), len(p.intake))
	})
	cancel()
	close(log.gate)
	within(t, "Done after cancel", p.Done())
}

// Checkpoint answers when the partition stops under it: a checkpoint
// queued for the writer when the context was cancelled used to be dropped
// unanswered, and Checkpoint waited forever.
func TestCheckpointAnswersWhenStopped(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	store := &gateStore{gate: make(chan struct{})}
	cfg := testConfig(tr, 0, 1)
	cfg.Log, cfg.Checkpoints = store, CheckpointPolicy{Events: 1 << 30, Idle: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	// The writer is busy with one checkpoint...
	p.ckptCh <- &checkpointJob{}
	eventually(t, "the writer to be busy", func() (bool, string) { return store.inSave.Load() == 1, "idle" })
	// ... when a caller's checkpoint queues up behind it.
	answered := make(chan struct{})
	go func() {
		err := p.Checkpoint(context.Background())
		t.Logf("Checkpoint: %v", err)
		close(answered)
	}()
	eventually(t, "the checkpoint to queue up", func() (bool, string) { return len(p.ckptCh) == 1, "not queued" })
	cancel()
	close(store.gate)
	within(t, "Checkpoint after the partition stopped", answered)
	within(t, "Done", p.Done())
}

// A clean Stop without checkpoints leaves everything the partition
// applied in its commit log (replaying the log gives the state Stop left):
// entries not yet written used to be dropped.
func TestStopWritesTheLog(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	log := &gateLog{delay: 2 * time.Millisecond}
	cfg := testConfig(tr, 0, 1)
	cfg.Executor, cfg.Log, cfg.Pools = quickActivities{d: time.Millisecond}, log, NewPools(1, 1, 1)
	p, err := Start(context.Background(), cfg, stateWithActivities(0, 1, 2000))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "appends", func() (bool, string) { return log.appends.Load() > 3, "none" })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := log.last(), p.State().LastPos; got != want {
		t.Fatalf("the log ends at %d, the state at %d", got, want)
	}
}

// Stop retries a failed final checkpoint (while its context lasts): it
// used to log the failure and stop, leaving the next owner the whole log
// to replay.
func TestStopRetriesFinalCheckpoint(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	store := &countingStore{}
	store.failSaves.Store(2)
	cfg := testConfig(tr, 0, 1)
	cfg.Log, cfg.Checkpoints = store, CheckpointPolicy{Events: 1 << 30, Idle: time.Hour}
	p, err := Start(context.Background(), cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.savedPos) != 1 || store.savedPos[0] != p.State().LastPos {
		t.Fatalf("checkpoints saved at %v, want one at %d", store.savedPos, p.State().LastPos)
	}
}
