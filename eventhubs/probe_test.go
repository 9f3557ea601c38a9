package eventhubs

import (
	"context"
	"testing"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/transport"
)

// TestUnreadWork: the probe of a partition's queue counts requests and
// message batches at or after a position, not acknowledgements or another
// task hub's packets, looks at no more than its limit, and fails rather
// than disturbs while a host's receiver holds the partition.
func TestUnreadWork(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 2)
	noSweep := func(o *Options) { o.SweepInterval = -1 }
	snd := openTransport(t, tg.ConnectionString, prefix, "hub-a", 2, nil)
	probe := openTransport(t, tg.ConnectionString, prefix, "hub-a", 2, noSweep)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	count := func(tr *Transport, from uint64, limit int) int {
		t.Helper()
		n, err := tr.UnreadWork(ctx, 1, from, limit)
		if err != nil {
			t.Fatalf("UnreadWork(1, %d, %d): %v", from, limit, err)
		}
		return n
	}
	unread := func(from uint64, limit int) int { t.Helper(); return count(probe, from, limit) }
	waitCount := func(tr *Transport, want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := tr.UnreadWork(ctx, 1, 0, 64)
			if err == nil && n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d unread (error %v), want %d, not within 30 s", n, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if n := unread(0, 64); n != 0 {
		t.Fatalf("empty queue: %d unread", n)
	}
	request := &transport.Packet{Request: &transport.ClientRequest{Kind: transport.RequestCreate, ClientID: "c", RequestID: 1, InstanceID: "x"}}
	if err := snd.SendToPartition(1, ackPacket(0, 1), ackPacket(0, 2)); err != nil {
		t.Fatal(err)
	}
	if err := snd.SendToPartition(1, request, &transport.Packet{Messages: &transport.MessageBatch{Origin: 0, OriginPos: 1}}); err != nil {
		t.Fatal(err)
	}
	waitCount(probe, 2)

	// Another task hub's request is work for that hub only.
	other := openTransport(t, tg.ConnectionString, prefix, "hub-b", 2, nil)
	otherProbe := openTransport(t, tg.ConnectionString, prefix, "hub-b", 2, noSweep)
	if err := other.SendToPartition(1, request); err != nil {
		t.Fatal(err)
	}
	waitCount(otherProbe, 1)
	if n := unread(0, 64); n != 2 {
		t.Errorf("with another hub's request: %d unread, want 2", n)
	}
	if n := unread(0, 3); n != 1 {
		t.Errorf("limit 3 (two acks and the request): %d unread, want 1", n)
	}
	if n := unread(0, 2); n != 0 {
		t.Errorf("limit 2 (two acks): %d unread, want 0", n)
	}

	// A host reads the queue; while it holds the partition, a probe that
	// must read is refused (or times out), and does not disturb it.
	rcv := openTransport(t, tg.ConnectionString, prefix, "hub-a", 2, func(o *Options) { o.OwnerLevel = 1 })
	got, next := receiveN(t, rcv, 1, 0, 4)
	if got[2].pk.Request == nil || got[3].pk.Messages == nil {
		t.Fatalf("packets 3 and 4 are %+v and %+v, want the request and the batch", got[2].pk, got[3].pk)
	}
	if n, err := probe.UnreadWork(ctx, 1, got[2].pos, 64); err == nil {
		t.Errorf("probe while a host holds the partition: %d unread and no error", n)
	}
	if err := snd.SendToPartition(1, ackPacket(0, 3)); err != nil {
		t.Fatal(err)
	}
	if more, _ := receiveN(t, rcv, 1, next, 1); more[0].pk.Ack == nil {
		t.Errorf("the host's next packet is %+v, want the ack", more[0].pk)
	}
	rcv.Close()

	// Once it let go, positions tell what no host has read.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := probe.UnreadWork(ctx, 1, got[2].pos, 64)
		if err == nil {
			if n != 2 {
				t.Errorf("from the request: %d unread, want 2", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe after the host let go: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := unread(got[3].pos, 64); n != 1 {
		t.Errorf("from the batch: %d unread, want 1", n)
	}
	if n := unread(next, 64); n != 0 {
		t.Errorf("after the batch (another hub's request, an ack): %d unread, want 0", n)
	}
}
