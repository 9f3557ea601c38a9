package eventhubs

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator"
	"github.com/netherite-go/netherite/transport"
)

// TestFaults streams packets to a partition and responses to a client
// while the emulator rejects sends (server busy), detaches links, closes
// and drops connections and restarts (with its data on disk): everything
// arrives, in order, once.
func TestFaults(t *testing.T) {
	e, err := emulator.Start(context.Background(), emulator.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	m, err := NewManagement(e.ConnectionString, e.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := CreateHubs(ctx, m, "f-", 2); err != nil {
		t.Fatal(err)
	}
	snd := openTransport(t, e.ConnectionString, "f-", hubID, 2, nil)
	rcv := openTransport(t, e.ConnectionString, "f-", hubID, 2, func(o *Options) { o.OwnerLevel = 1 })
	responses, stop, err := rcv.ListenClient("client-f")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	const n = 3000
	var sent atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			for {
				err := snd.SendToPartition(1, ackPacket(0, uint64(i)))
				if err == nil {
					break
				}
				t.Errorf("send %d: %v", i, err)
				return
			}
			if err := snd.SendToClient("client-f", &transport.Packet{Response: &transport.ClientResponse{RequestID: uint64(i)}}); err != nil {
				t.Errorf("send response %d: %v", i, err)
				return
			}
			sent.Store(int64(i))
			if i%20 == 0 {
				time.Sleep(2 * time.Millisecond) // spread the stream over the faults
			}
		}
	}()

	var got atomic.Int64
	var order []uint64
	var lastPos uint64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		from := uint64(0)
		for got.Load() < n {
			pks, next, err := rcv.ReceivePartition(ctx, 1, from)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue // transient: the runtime retries the same way
			}
			for _, p := range pks {
				order = append(order, p.Ack.UpTo)
				got.Add(1)
			}
			from = next
		}
		lastPos = from
	}()

	step := func(at int64, what string, fault func()) {
		waitFor(t, what, func() bool { return got.Load() >= at })
		t.Logf("%s at %d received, %d sent", what, got.Load(), sent.Load())
		fault()
	}
	step(n/10, "reject sends", func() { e.RejectSends(3, "") })
	step(n/5, "detach links", func() { e.DetachLinks(nil, "") })
	step(2*n/5, "close connections", func() { e.CloseConnections("") })
	step(3*n/5, "drop connections", func() { e.DropConnections() })
	step(4*n/5, "restart", func() {
		if err := e.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	})
	wg.Wait()
	select {
	case <-recvDone:
	case <-ctx.Done():
		t.Fatalf("received %d of %d packets", got.Load(), n)
	}
	for i, v := range order {
		if v != uint64(i+1) {
			t.Fatalf("packet %d is %d (lost or duplicated)", i+1, v)
		}
	}
	for i := 1; i <= n; i++ {
		select {
		case p := <-responses:
			if p.Response.RequestID != uint64(i) {
				t.Fatalf("response %d is %d", i, p.Response.RequestID)
			}
		case <-ctx.Done():
			t.Fatalf("response %d missing", i)
		}
	}
	// Three deliveries were rejected; the SDK retries a busy server up to
	// twice itself (retryOptions), so the transport's own retries number
	// one to three.
	if st := snd.Stats(); st.SendRetries < 1 {
		t.Fatalf("the rejected sends were not retried: %+v", st)
	}
	t.Logf("sender %+v", snd.Stats())
	t.Logf("receiver %+v", rcv.Stats())

	// A new host resumes from scratch and from the middle: the hub kept
	// everything across the restart.
	rcv.Close()
	r2 := openTransport(t, e.ConnectionString, "f-", hubID, 2, func(o *Options) { o.OwnerLevel = 2 })
	all, end := receiveN(t, r2, 1, 0, n)
	for i, p := range all {
		if p.pk.Ack.UpTo != uint64(i+1) {
			t.Fatalf("re-read packet %d is %d", i+1, p.pk.Ack.UpTo)
		}
	}
	if end != lastPos {
		t.Fatalf("re-read ends at %d, the first read at %d", end, lastPos)
	}
	expectNothing(t, r2, 1, end)
}

// TestQueueFull: while the network is stuck, sends queue up to a bound,
// then fail at once (the courier retries them), and never block.
func TestQueueFull(t *testing.T) {
	e, err := emulator.Start(context.Background(), emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	m, err := NewManagement(e.ConnectionString, e.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreateHubs(ctx, m, "q-", 1); err != nil {
		t.Fatal(err)
	}
	tr := openTransport(t, e.ConnectionString, "q-", hubID, 1, nil)
	tr.queueLimit = 256 << 10
	e.SetSendDelay(5 * time.Second)
	var full error
	start := time.Now()
	for i := 0; i < 1000 && full == nil; i++ {
		full = tr.SendToPartition(0, bigBatch(1<<10))
	}
	if full == nil || !strings.Contains(full.Error(), "queue full") {
		t.Fatalf("sending 1 MB to a stuck destination with a 256 KiB queue: %v", full)
	}
	if el := time.Since(start); el > 3*time.Second { // a blocked send would wait for the 5 s delay
		t.Fatalf("sends blocked for %v", el)
	}
	e.SetSendDelay(0)
	// The queue drains and sends are accepted again.
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.SendToPartition(0, ackPacket(0, 1)); err != nil {
		t.Fatal(err)
	}
}
