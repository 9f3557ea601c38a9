package eventhubs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/eventhubs/emulator"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/transport"
)

func bigBatch(size int) *transport.Packet {
	in := make([]byte, size)
	for i := range in {
		in[i] = byte(i * 7)
	}
	return &transport.Packet{Messages: &transport.MessageBatch{Origin: 1, OriginPos: 10, Messages: []*core.TaskMessage{{
		Target: core.Instance{InstanceID: "big"}, Event: &core.HistoryEvent{Kind: core.EventExecutionStarted, Name: "o", Input: in}}}}}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLargePayload(t *testing.T, blobs BlobStore, count func() int) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 2)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 2, func(o *Options) { o.Blobs = blobs })
	rcv := openTransport(t, tg.ConnectionString, prefix, hubID, 2, func(o *Options) { o.Blobs = blobs })
	big := bigBatch(5 << 20)
	pks := []*transport.Packet{ackPacket(0, 1), big, ackPacket(0, 2)}
	if err := snd.SendToPartition(1, pks...); err != nil {
		t.Fatal(err)
	}
	got, _ := receiveN(t, rcv, 1, 0, 3)
	for i := range pks {
		if !reflect.DeepEqual(got[i].pk, pks[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
	if st := snd.Stats(); st.BlobsSent != 1 {
		t.Fatalf("blobs sent: %+v", st)
	}
	if count() != 1 {
		t.Fatalf("%d blobs stored, want 1", count())
	}
	// Trimming before the big packet keeps its blob; past it deletes it.
	rcv.TrimPartition(1, got[1].pos)
	if err := snd.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a wrong deletion would be quick
	if count() != 1 {
		t.Fatal("trimming before the large packet deleted its blob")
	}
	rcv.TrimPartition(1, got[1].pos+1)
	waitFor(t, "the blob's deletion", func() bool { return count() == 0 })

	// A large response goes to its client; the listener deletes the blob.
	ch, stop, err := rcv.ListenClient("client-big")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp := &transport.Packet{Response: &transport.ClientResponse{RequestID: 5, Status: &transport.InstanceStatus{InstanceID: "big", Output: bytes.Repeat([]byte("x"), 5<<20)}}}
	if err := snd.SendToClient("client-big", resp); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-ch:
		if !reflect.DeepEqual(p, resp) {
			t.Fatal("the large response differs")
		}
	case <-time.After(time.Minute):
		t.Fatal("no large response")
	}
	waitFor(t, "the response blob's deletion", func() bool { return count() == 0 })
}

func TestLargePayloadMemBlobs(t *testing.T) {
	m := NewMemBlobStore()
	testLargePayload(t, m, func() int { return len(m.Names()) })
}

func TestLargePayloadBlobStore(t *testing.T) {
	c := blobtest.Container(t, blobtest.Account(t))
	ps := blobstore.NewPayloadStore(c)
	testLargePayload(t, ps, func() int {
		n := 0
		pager := c.Client().NewListBlobsFlatPager(nil)
		for pager.More() {
			page, err := pager.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range page.Segment.BlobItems {
				if !strings.HasPrefix(*b.Name, blobstore.PayloadPrefix+hubID+"/") {
					t.Fatalf("blob %s is not under payloads/<task hub>/", *b.Name)
				}
				n++
			}
		}
		return n
	})
}

func TestLargePayloadLimits(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	tr := openTransport(t, tg.ConnectionString, prefix, hubID, 1, func(o *Options) { o.MaxPayloadBytes = 2 << 20 })
	err := tr.SendToPartition(0, bigBatch(1<<20+100))
	if err == nil || !strings.Contains(err.Error(), "no blob store") || !strings.Contains(err.Error(), fmt.Sprint(InlineLimit)) {
		t.Fatalf("large packet without a blob store: %v", err)
	}
	tr2 := openTransport(t, tg.ConnectionString, prefix, hubID, 1, func(o *Options) { o.MaxPayloadBytes = 2 << 20; o.Blobs = NewMemBlobStore() })
	err = tr2.SendToPartition(0, bigBatch(3<<20))
	if err == nil || !strings.Contains(err.Error(), "MaxPayloadBytes") {
		t.Fatalf("packet over MaxPayloadBytes: %v", err)
	}
	// Just under the inline limit still travels in an event.
	p := bigBatch(InlineLimit - 200)
	env, _ := encodePacket(hubID, "", p)
	for len(env) < InlineLimit {
		p = bigBatch(len(p.Messages.Messages[0].Event.Input) + InlineLimit - len(env))
		env, _ = encodePacket(hubID, "", p)
	}
	p = bigBatch(len(p.Messages.Messages[0].Event.Input) - (len(env) - InlineLimit))
	if env, _ = encodePacket(hubID, "", p); len(env) != InlineLimit {
		t.Fatalf("could not make a packet of exactly %d bytes (%d)", InlineLimit, len(env))
	}
	if err := tr.SendToPartition(0, p, ackPacket(0, 1)); err != nil {
		t.Fatal(err)
	}
	got, _ := receiveN(t, tr, 0, 0, 2)
	if !reflect.DeepEqual(got[0].pk, p) || tr.Stats().EventsSent != 2 {
		t.Fatalf("packet at the inline limit: stats %+v", tr.Stats())
	}
}

// sameSlotClients returns n client ids on one client partition.
func sameSlotClients(n int) []string {
	var out []string
	want := ClientSlot("client-0")
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("client-%d", i)
		if ClientSlot(id) == want {
			out = append(out, id)
		}
	}
	return out
}

// TestClients: responses reach their client only, among clients sharing
// a client partition, in order; every response sent after ListenClient
// returns arrives, and none sent before it.
func TestClients(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	host1 := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	host2 := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	ids := sameSlotClients(3)
	a, b, c := ids[0], ids[1], ids[2]

	// A response sent (and stored) before c listens is not seen.
	resp := func(id uint64) *transport.Packet {
		return &transport.Packet{Response: &transport.ClientResponse{RequestID: id}}
	}
	if err := snd.SendToClient(c, resp(999)); err != nil {
		t.Fatal(err)
	}
	if err := snd.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	chA, stopA, err := host1.ListenClient(a)
	if err != nil {
		t.Fatal(err)
	}
	defer stopA()
	chB, stopB, err := host1.ListenClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	chC, stopC, err := host2.ListenClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer stopC()
	if _, _, err := host1.ListenClient(a); err == nil {
		t.Fatal("a client listened twice")
	}
	const n = 200
	for i := 1; i <= n; i++ {
		for _, id := range ids {
			if err := snd.SendToClient(id, resp(uint64(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, ch := range map[string]<-chan *transport.Packet{a: chA, b: chB, c: chC} {
		for i := 1; i <= n; i++ {
			select {
			case p := <-ch:
				if p.Response == nil || p.Response.RequestID != uint64(i) {
					t.Fatalf("client %s: response %d is %+v", name, i, p.Response)
				}
			case <-time.After(time.Minute):
				t.Fatalf("client %s: response %d missing", name, i)
			}
		}
	}
	// Nothing else arrives (the sends are flushed, the readers caught up
	// with what host1 read).
	if err := snd.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	for name, ch := range map[string]<-chan *transport.Packet{a: chA, b: chB, c: chC} {
		select {
		case p := <-ch:
			t.Fatalf("client %s got an extra response %+v", name, p.Response)
		default:
		}
	}
	// host2 read the responses of a and b and dropped them.
	if d := host2.Stats().ClientDropped; d != 2*n {
		t.Fatalf("host2 dropped %d responses, want %d", d, 2*n)
	}
	// A client that stops listening gets nothing more; its partition's
	// reader stops when no client is left.
	stopC()
	if _, _, err := host2.ListenClient(c); err != nil {
		t.Fatalf("listening again: %v", err)
	}
}

// TestPositionGone: a position the hub's retention dropped is an error
// wrapping transport.ErrPositionGone, never a silent skip.
func TestPositionGone(t *testing.T) {
	e, err := emulator.Start(context.Background(), emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	prefix := "gone-"
	for _, h := range Names(prefix).All(1) {
		hc := emulator.HubConfig{Name: h.Name, PartitionCount: h.Partitions}
		if h.Name == prefix+PartitionsHub {
			hc.RetentionBytes = 64 << 10
		}
		if err := e.CreateHub(hc); err != nil {
			t.Fatal(err)
		}
	}
	tr := openTransport(t, e.ConnectionString, prefix, hubID, 1, nil)
	// Events of ~20 KiB each: the first ones fall out of the 64 KiB kept.
	for i := 0; i < 10; i++ {
		if err := tr.SendToPartition(0, bigBatch(20<<10)); err != nil {
			t.Fatal(err)
		}
		if err := tr.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err = tr.ReceivePartition(ctx, 0, Position(1, 0))
	if !errors.Is(err, transport.ErrPositionGone) {
		t.Fatalf("reading a dropped event: %v", err)
	}
	t.Logf("dropped: %v", err)
	// The last events are still there.
	if _, _, err := tr.ReceivePartition(ctx, 0, Position(9, 0)); err != nil {
		t.Fatal(err)
	}
	// A position past the end of the hub is no place to wait either.
	if _, _, err := tr.ReceivePartition(ctx, 0, Position(50, 0)); !errors.Is(err, transport.ErrPositionGone) {
		t.Fatalf("reading past the end: %v", err)
	}
}

// TestEpochFencing: a receiver with a higher owner level deposes the
// first, whose ReceivePartition then fails with ErrOwnershipLost, for
// good.
func TestEpochFencing(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 2)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 2, nil)
	old := openTransport(t, tg.ConnectionString, prefix, hubID, 2, func(o *Options) { o.OwnerLevel = 1 })
	neu := openTransport(t, tg.ConnectionString, prefix, hubID, 2, func(o *Options) { o.OwnerLevel = 2 })
	if err := snd.SendToPartition(1, ackPacket(0, 1)); err != nil {
		t.Fatal(err)
	}
	_, next := receiveN(t, old, 1, 0, 1)
	// The old owner waits for more when the new one takes over.
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pks, _, err := old.ReceivePartition(ctx, 1, next)
		if err == nil {
			err = fmt.Errorf("got %d packets", len(pks))
		}
		errc <- err
	}()
	// The new owner starts at the same place.
	if err := snd.SendToPartition(1, ackPacket(0, 2)); err != nil {
		t.Fatal(err)
	}
	got, next2 := receiveN(t, neu, 1, next, 1)
	if got[0].pk.Ack.UpTo != 2 {
		t.Fatalf("new owner got %+v", got[0].pk.Ack)
	}
	err := <-errc
	// The old owner may have read the second packet before it was deposed;
	// then its next call fails.
	if err != nil && strings.HasPrefix(err.Error(), "got ") {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err = old.ReceivePartition(ctx, 1, next2)
	}
	if !errors.Is(err, ErrOwnershipLost) {
		t.Fatalf("old owner: %v", err)
	}
	t.Logf("old owner: %v", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := old.ReceivePartition(ctx, 1, 0); !errors.Is(err, ErrOwnershipLost) {
		t.Fatalf("old owner, next call: %v", err)
	}
	// The other partition of the old owner is not affected.
	if err := snd.SendToPartition(0, ackPacket(1, 1)); err != nil {
		t.Fatal(err)
	}
	receiveN(t, old, 0, 0, 1)
	if err := snd.SendToPartition(1, ackPacket(0, 3)); err != nil {
		t.Fatal(err)
	}
	got, next3 := receiveN(t, neu, 1, next2, 1)
	if got[0].pk.Ack.UpTo != 3 {
		t.Fatalf("new owner got %+v", got[0].pk.Ack)
	}
	// The old host takes the partition back with a higher level: it reads
	// again, and the other is deposed in turn.
	old.SetOwnerLevel(1, 3)
	if err := snd.SendToPartition(1, ackPacket(0, 4)); err != nil {
		t.Fatal(err)
	}
	got, _ = receiveN(t, old, 1, next3, 1)
	if got[0].pk.Ack.UpTo != 4 {
		t.Fatalf("old owner, back, got %+v", got[0].pk.Ack)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	for {
		pks, next, err := neu.ReceivePartition(ctx2, 1, next3)
		if errors.Is(err, ErrOwnershipLost) {
			break
		}
		if err != nil {
			t.Fatalf("deposed new owner: %v", err)
		}
		next3 = next // it may read what arrived before it was deposed
		_ = pks
	}
}

// TestReleaseUnblocksReceive: ReleasePartition ends a receive waiting on
// the partition.
func TestReleaseUnblocksReceive(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	tr := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	errc := make(chan error, 1)
	go func() {
		_, _, err := tr.ReceivePartition(context.Background(), 0, 0)
		errc <- err
	}()
	// Release until the receive returns: a release before the call
	// reaches the reader only drops a reader nobody waits on.
	for {
		tr.ReleasePartition(0)
		select {
		case err := <-errc:
			if !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("released receive: %v", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
