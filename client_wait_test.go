package netherite_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/transport"
)

// recordingTransport records the client requests sent to partitions.
type recordingTransport struct {
	transport.Transport
	mu   sync.Mutex
	reqs []*transport.ClientRequest
}

func (r *recordingTransport) SendToPartition(p int, pkts ...*transport.Packet) error {
	r.mu.Lock()
	for _, pk := range pkts {
		if pk.Request != nil {
			r.reqs = append(r.reqs, pk.Request)
		}
	}
	r.mu.Unlock()
	return r.Transport.SendToPartition(p, pkts...)
}

// Polls that give up (as HTTP polls with a timeout do) tell the partition
// when they stop waiting: the wait carries the caller's deadline, and a
// cancel follows when the caller's context ends, so the partition drops
// the wait instead of keeping it forever.
func TestGivenUpWaitsAreWithdrawn(t *testing.T) {
	mem := transport.NewMemory(2)
	defer mem.Close()
	rec := &recordingTransport{Transport: mem}
	h := startScenarioHost(t, netherite.Options{Storage: "memory", PartitionCount: 2, SharedTransport: rec})
	ctx := testContext(t)
	id := start(t, ctx, h.Client(), oWaitEvent, nil) // waits for an event that never comes
	const polls = 20
	for i := 0; i < polls; i++ {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		_, err := h.Client().WaitForCompletion(pctx, id)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("poll %d: %v, want a timeout", i, err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	waits, cancels := map[uint64]bool{}, map[uint64]bool{}
	for _, r := range rec.reqs {
		switch r.Kind {
		case transport.RequestWaitCompletion:
			if r.Deadline.IsZero() {
				t.Errorf("wait %d carries no deadline", r.RequestID)
			}
			waits[r.RequestID] = true
		case transport.RequestCancel:
			cancels[r.RequestID] = true
		}
	}
	if len(waits) != polls {
		t.Fatalf("%d waits sent, want %d", len(waits), polls)
	}
	for id := range waits {
		if !cancels[id] {
			t.Errorf("wait %d was not withdrawn", id)
		}
	}
}
