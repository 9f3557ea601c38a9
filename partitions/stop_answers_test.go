package partitions

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// heldLog is a checkpoint store whose appends wait for a gate once hold
// is set, and which tells when a checkpoint snapshot is taken (on the
// loop).
type heldLog struct {
	MemoryLog
	hold    atomic.Bool
	gate    chan struct{}
	waiting atomic.Int64
	snapped chan struct{}
	// saveAfter, if set, holds the checkpoint's save until it closes.
	saveAfter chan struct{}
}

func (s *heldLog) Append(entries []LogEntry) error {
	if s.hold.Load() {
		s.waiting.Add(1)
		<-s.gate
	}
	return s.MemoryLog.Append(entries)
}
func (s *heldLog) Mark() int64     { _, n := s.Stats(); return n }
func (s *heldLog) LogBytes() int64 { _, n := s.Stats(); return n * 100 }
func (s *heldLog) Snapshot(st *State) (*Snapshot, error) {
	select {
	case s.snapped <- struct{}{}:
	default:
	}
	return &Snapshot{}, nil
}
func (s *heldLog) SaveCheckpoint(snap *Snapshot, lastPos, inputPos uint64, mark int64) error {
	if s.saveAfter != nil {
		select {
		case <-s.saveAfter:
		case <-time.After(failAfter):
		}
	}
	return nil
}

// trimHold is a transport whose TrimPartition (called by the loop when a
// position becomes durable, after the release of responses and before
// they are sent) holds the loop, once armed, until the partition is
// cancelled or has more intake: so the final durable position is taken
// just before Stop cancels.
type trimHold struct {
	*transport.Memory
	armed atomic.Bool
	held  chan struct{} // closed when the hold starts
	p     atomic.Pointer[Partition]
}

func (h *trimHold) TrimPartition(part int, upTo uint64) {
	if p := h.p.Load(); p != nil && h.armed.CompareAndSwap(true, false) {
		close(h.held)
		deadline := time.Now().Add(failAfter)
		for p.ctx.Err() == nil && len(p.intake) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	h.Memory.TrimPartition(part, upTo)
}

// A client request that becomes durable with the final checkpoint of a
// graceful Stop is answered before the partition stops: its answer used
// to be released after the cancel, when the loop sends nothing, and the
// client waited for its attempt timeout to re-send (the checkpoint holds
// the request, so the next owner does not answer it).
func TestStopSendsAnswersReleasedAtTheEnd(t *testing.T) {
	mem := transport.NewMemory(1)
	defer mem.Close()
	tr := &trimHold{Memory: mem, held: make(chan struct{})}
	resp, unlisten, err := mem.ListenClient("c")
	if err != nil {
		t.Fatal(err)
	}
	defer unlisten()
	// The checkpoint is saved once the loop is held (so Stop goes on
	// only then).
	store := &heldLog{gate: make(chan struct{}), snapped: make(chan struct{}, 1), saveAfter: tr.held}
	cfg := testConfig(tr, 0, 1)
	cfg.Log, cfg.Checkpoints = store, CheckpointPolicy{Events: 1 << 30, Bytes: 1 << 40, Idle: time.Hour}
	p, err := Start(context.Background(), cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	tr.p.Store(p)
	store.hold.Store(true)
	// A start whose instance waits an hour: no work item, one answer.
	id := idsOn(0, 1, 1)[0]
	if err := mem.SendToPartition(0, createPacket(id, 1, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the request's entry to reach the log", func() (bool, string) { return store.waiting.Load() > 0, "not yet" })
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(ctx) }()
	// The final checkpoint is taken on the loop; then the log makes the
	// request durable, and the loop is held right after releasing its
	// answer, until Stop has its checkpoint.
	select {
	case <-store.snapped:
	case <-time.After(failAfter):
		t.Fatal("no final checkpoint")
	}
	tr.armed.Store(true)
	close(store.gate)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("Stop did not return")
	}
	select {
	case pk := <-resp:
		if pk.Response == nil || pk.Response.RequestID != 1 {
			t.Fatalf("got %+v, want the answer to request 1", pk)
		}
	default:
		t.Fatal("Stop returned without sending the answer to a request its checkpoint holds")
	}
}
