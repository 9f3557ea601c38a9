package netherite_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// A graceful stop answers the client requests it took: starts in flight
// while a host stops (and restarts on the same storage) are answered
// without waiting for the client to re-send them (after 1 min here). Answers released by the final checkpoint used to be dropped: the
// checkpoint holds their requests, so the next owner did not answer them.
func TestGracefulStopAnswersInFlight(t *testing.T) {
	t.Cleanup(netherite.SetClientAttemptTimeout(time.Minute))
	// Nor re-sent soon after the move (which would hide a lost answer).
	t.Cleanup(netherite.SetClientMoveRearm([]time.Duration{time.Minute}))
	tr := transport.NewMemory(2)
	defer tr.Close()
	dir := t.TempDir()
	reg := func() *durable.Registry { r := durable.NewRegistry(); samples.Register(r); return r }
	base := netherite.Options{SharedTransport: tr, Storage: dir, PartitionCount: 2, Logger: elasticLogger()}
	co := base
	co.Partitions = []int{} // a client-only host
	ch, err := netherite.Start(context.Background(), co, reg())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop(context.Background())
	const slowAfter = 5 * time.Second
	for round := 0; round < 5; round++ {
		h, err := netherite.Start(context.Background(), base, reg())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slow []string
		var restarted atomic.Bool
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Starts one after the other until the host is back:
				// some are in flight whenever it stops.
				for i := 0; !restarted.Load(); i++ {
					id := fmt.Sprintf("r%d-g%d-%d", round, g, i)
					ctx, cancel := context.WithTimeout(context.Background(), slowAfter)
					_, err := ch.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID(id))
					cancel()
					if err != nil {
						mu.Lock()
						slow = append(slow, fmt.Sprintf("%s: %v", id, err))
						mu.Unlock()
					}
				}
			}()
		}
		// Not a synchronization: only lets some starts be in flight
		// when the host stops (the outcome must hold at any moment).
		time.Sleep(150 * time.Millisecond)
		if err := h.Stop(context.Background()); err != nil {
			t.Errorf("round %d: stop: %v", round, err)
		}
		h2, err := netherite.Start(context.Background(), base, reg())
		if err != nil {
			t.Fatal(err)
		}
		restarted.Store(true)
		wg.Wait()
		h2.Stop(context.Background())
		if len(slow) > 0 {
			t.Errorf("round %d: %d starts unanswered for %v (attempt timeout 1 min): %v", round, len(slow), slowAfter, slow)
		}
	}
}
