package netherite_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// requestRecorder is a memory transport that keeps the wait requests
// clients send.
type requestRecorder struct {
	*transport.Memory
	mu    sync.Mutex
	waits []*transport.ClientRequest
}

func (r *requestRecorder) SendToPartition(p int, ps ...*transport.Packet) error {
	r.mu.Lock()
	for _, pk := range ps {
		if q := pk.Request; q != nil && (q.Kind == transport.RequestWaitCompletion || q.Kind == transport.RequestWaitStart) {
			r.waits = append(r.waits, q)
		}
	}
	r.mu.Unlock()
	return r.Memory.SendToPartition(p, ps...)
}

// A client's wait carries its context's deadline, so the partition can
// drop the wait when the client gives up (partitions.TestExpiredWaitersDropped
// shows that it does).
func TestWaitCarriesClientDeadline(t *testing.T) {
	rec := &requestRecorder{Memory: transport.NewMemory(2)}
	defer rec.Close()
	h := startScenarioHost(t, netherite.Options{PartitionCount: 2, Storage: "memory", SharedTransport: rec})
	ctx := testContext(t)
	id := start(t, ctx, h.Client(), samples.HelloSequence, nil, durable.WithStartTime(time.Now().Add(time.Hour)))
	for i := 0; i < 3; i++ {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := h.Client().WaitForCompletion(wctx, id)
		want, _ := wctx.Deadline()
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wait %d: %v, want a timeout", i, err)
		}
		rec.mu.Lock()
		got := rec.waits[len(rec.waits)-1].Deadline
		rec.mu.Unlock()
		if !got.Equal(want) {
			t.Fatalf("wait %d carried deadline %v, want %v", i, got, want)
		}
	}
}
