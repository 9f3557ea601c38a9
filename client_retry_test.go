package netherite_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// TestClientRetriesAreDeduplicated runs a client over a network that
// fails its sends, duplicates its update requests and loses the first
// answer to each: the client re-sends with the same request id, and the
// partitions apply each request once and answer every copy alike. So no
// create reports "exists" for its own retry, and every signal counts once.
func TestClientRetriesAreDeduplicated(t *testing.T) {
	defer netherite.SetClientAttemptTimeout(100 * time.Millisecond)()
	var mu sync.Mutex
	kinds := map[uint64]transport.RequestKind{} // one client: request ids are unique
	answered := map[uint64]int{}
	failed := map[uint64]bool{}
	var dups, drops, fails int
	m := transport.NewMemory(4)
	defer m.Close()
	f := transport.NewFaulty(m, transport.FaultConfig{Clients: true, Script: func(dest int, pk *transport.Packet) transport.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r := pk.Request; r != nil && r.Kind.IsUpdate() {
			kinds[r.RequestID] = r.Kind
			if !failed[r.RequestID] && r.RequestID%3 == 0 {
				failed[r.RequestID] = true
				fails++
				return transport.FaultFail
			}
			dups++
			return transport.FaultDuplicate
		}
		if r := pk.Response; r != nil && kinds[r.RequestID].IsUpdate() {
			answered[r.RequestID]++
			if answered[r.RequestID] == 1 {
				drops++
				return transport.FaultDrop
			}
		}
		return transport.FaultDeliver
	}})
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	h := startScenarioHost(t, netherite.Options{Storage: "memory", PartitionCount: 4, SharedTransport: f})
	c := h.Client()
	const n = 12
	counter := core.NewEntityID(samples.Counter, "retries")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("retry-%d!%d", i, i%4)
		if _, err := c.StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID(id)); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		if err := c.SignalEntity(ctx, counter, "add", 1); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
	}
	for i := 0; i < n; i++ {
		st := waitDone(t, ctx, c, fmt.Sprintf("retry-%d!%d", i, i%4))
		if st.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s is %s", st.InstanceID, st.RuntimeStatus)
		}
	}
	// The counter is read until it has seen every signal (they are
	// one-way); a signal applied twice shows as a total above n.
	var got int
	for {
		e, err := c.GetEntity(ctx, counter, true)
		if err == nil {
			if err := e.ReadState(&got); err != nil {
				t.Fatal(err)
			}
			if got >= n {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("counter is %d, want %d", got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if got != n {
		t.Fatalf("counter is %d after %d signals: a retried signal was applied twice", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if fails == 0 || dups == 0 || drops < 2*n {
		t.Fatalf("the network injected too little: %d failed sends, %d duplicates, %d lost answers", fails, dups, drops)
	}
	t.Logf("%d failed sends, %d duplicated requests, %d lost answers", fails, dups, drops)
}
