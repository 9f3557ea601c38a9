package eventhubs

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/transport"
)

const hubID = "8d1c7a52-5b7e-4c39-9a53-3f3c8e0c1d11"

// TestRoundTripEveryPacket sends every packet kind from one host to
// another, in order, and resumes a third reader exactly after the last
// position the second one read.
func TestRoundTripEveryPacket(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 3)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 3, nil)
	rcv := openTransport(t, tg.ConnectionString, prefix, hubID, 3, func(o *Options) { o.OwnerLevel = 1 })

	pks := samplePackets()
	// Several sends, so that the packets span events.
	for i := 0; i < len(pks); i += 5 {
		if err := snd.SendToPartition(1, pks[i:min(i+5, len(pks))]...); err != nil {
			t.Fatal(err)
		}
	}
	got, next := receiveN(t, rcv, 1, 0, len(pks))
	for i := range pks {
		if !reflect.DeepEqual(got[i].pk, pks[i]) {
			t.Fatalf("packet %d differs:\n got %#v\nwant %#v", i, got[i].pk, pks[i])
		}
	}
	// More packets; a new reader resumes after the middle one.
	var more []*transport.Packet
	for i := 0; i < 20; i++ {
		more = append(more, ackPacket(i, uint64(1000+i)))
		if err := snd.SendToPartition(1, more[i]); err != nil {
			t.Fatal(err)
		}
	}
	got2, end := receiveN(t, rcv, 1, next, len(more))
	for i := range more {
		if !reflect.DeepEqual(got2[i].pk, more[i]) {
			t.Fatalf("packet %d of the second round differs", i)
		}
	}
	rcv.Close()
	for _, cut := range []int{0, 7, 19} {
		resume := got2[cut].pos + 1
		r2 := openTransport(t, tg.ConnectionString, prefix, hubID, 3, func(o *Options) { o.OwnerLevel = int64(2 + cut) })
		rest, _ := receiveN(t, r2, 1, resume, len(more)-cut-1)
		for i, p := range rest {
			if !reflect.DeepEqual(p.pk, more[cut+1+i]) {
				t.Fatalf("resumed after packet %d: packet %d is %+v, want %+v", cut, i, p.pk.Ack, more[cut+1+i].Ack)
			}
		}
		expectNothing(t, r2, 1, end)
		r2.Close()
	}
	st := snd.Stats()
	if st.PacketsSent != int64(len(pks)+len(more)) || st.SendRetries != 0 {
		t.Fatalf("sender stats: %+v", st)
	}
	// Nothing went to the other partitions.
	r3 := openTransport(t, tg.ConnectionString, prefix, hubID, 3, nil)
	expectNothing(t, r3, 0, 0)
	expectNothing(t, r3, 2, 0)
}

// TestBatching: many small packets sent at once travel in few events.
func TestBatching(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	rcv := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	const n = 5000
	for i := 0; i < n; i++ {
		if err := snd.SendToPartition(0, ackPacket(i%7, uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := receiveN(t, rcv, 0, 0, n)
	for i, p := range got {
		if p.pk.Ack == nil || p.pk.Ack.UpTo != uint64(i+1) {
			t.Fatalf("packet %d: %+v", i, p.pk)
		}
	}
	// How many packets share an event depends on how fast sends complete
	// while the loop above queues (about 15 to 50 a batch on a quiet
	// machine, 15 on a loaded one under -race): the bound only proves that
	// packets queued together are packed together (without batching there
	// would be one event per packet).
	st := snd.Stats()
	if st.PacketsSent != n || st.EventsSent > n/4 {
		t.Fatalf("%d packets went in %d events (%d batches); want at most %d events", st.PacketsSent, st.EventsSent, st.BatchesSent, n/4)
	}
	if rs := rcv.Stats(); rs.PacketsReceived != n || rs.EventsReceived != st.EventsSent {
		t.Fatalf("receiver stats %+v, sender %+v", rs, st)
	}
	t.Logf("%d packets in %d events, %d batches (%.1f packets/event)", st.PacketsSent, st.EventsSent, st.BatchesSent, st.PacketsPerEvent())
}

// TestStrayTaskHubDropped: packets of another task hub on the same hubs
// are dropped and counted.
func TestStrayTaskHubDropped(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	other := openTransport(t, tg.ConnectionString, prefix, "00000000-0000-0000-0000-000000000000", 1, nil)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	rcv := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	if err := snd.SendToPartition(0, ackPacket(1, 1)); err != nil {
		t.Fatal(err)
	}
	got, next := receiveN(t, rcv, 0, 0, 1)
	if err := other.SendToPartition(0, ackPacket(9, 9), ackPacket(9, 10)); err != nil {
		t.Fatal(err)
	}
	other.Close() // flushes
	if err := snd.SendToPartition(0, ackPacket(1, 2)); err != nil {
		t.Fatal(err)
	}
	got2, _ := receiveN(t, rcv, 0, next, 1)
	if got[0].pk.Ack.UpTo != 1 || got2[0].pk.Ack.UpTo != 2 {
		t.Fatalf("got %+v then %+v", got[0].pk.Ack, got2[0].pk.Ack)
	}
	if st := rcv.Stats(); st.StraysDropped != 2 {
		t.Fatalf("strays dropped: %d, want 2", st.StraysDropped)
	}
}

// TestOpenChecksHubs: a missing hub, or one with the wrong partition
// count, is an error naming it.
func TestOpenChecksHubs(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Open(ctx, Options{Connection: tg.ConnectionString, HubPrefix: prefix, TaskHubID: hubID, PartitionCount: 3})
	if err == nil || !strings.Contains(err.Error(), prefix+"partitions") || !strings.Contains(err.Error(), "2 partitions, want 3") {
		t.Fatalf("wrong partition count: %v", err)
	}
	_, err = Open(ctx, Options{Connection: tg.ConnectionString, HubPrefix: "nosuch-", TaskHubID: hubID, PartitionCount: 2})
	if err == nil || !strings.Contains(err.Error(), "nosuch-partitions") {
		t.Fatalf("missing hubs: %v", err)
	}
}

func TestClosed(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	tr := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	done := make(chan error, 1)
	go func() {
		_, _, err := tr.ReceivePartition(context.Background(), 0, 0)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block (not needed for correctness)
	tr.Close()
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("blocked receive after Close: %v", err)
	}
	if err := tr.SendToPartition(0, ackPacket(0, 1)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
}

func TestLoadMonitorQueue(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	rcv := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	var want []*transport.Packet
	for i := 0; i < 10; i++ {
		p := &transport.Packet{Load: &transport.LoadReport{Host: "h", Partitions: []transport.PartitionLoad{{Partition: i, WorkItems: i}}, At: time.Unix(1700000000, 0).UTC()}}
		want = append(want, p)
		if err := snd.SendToLoadMonitor(p); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []*transport.Packet
	for from := uint64(0); len(got) < len(want); {
		pks, next, err := rcv.ReceiveLoadMonitor(ctx, from)
		if err != nil {
			t.Fatal(err)
		}
		got, from = append(got, pks...), next
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("load reports differ: %+v", got)
	}
	// Nothing went to the partitions.
	expectNothing(t, rcv, 0, 0)
}

// A load monitor resuming from a position the hub no longer has (here: a
// position past the end, as after the hubs were recreated) goes on from
// the end of the queue instead of failing for ever.
func TestLoadMonitorSkipsGonePosition(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 1)
	snd := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	rcv := openTransport(t, tg.ConnectionString, prefix, hubID, 1, nil)
	report := func(host string) *transport.Packet {
		return &transport.Packet{Load: &transport.LoadReport{Host: host, At: time.Unix(1700000000, 0).UTC()}}
	}
	if err := snd.SendToLoadMonitor(report("old")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Wait until the first report is in the hub.
	if _, _, err := rcv.ReceiveLoadMonitor(ctx, 0); err != nil {
		t.Fatal(err)
	}
	pks, next, err := rcv.ReceiveLoadMonitor(ctx, Position(1000, 0))
	if err != nil || len(pks) != 0 {
		t.Fatalf("from a gone position: %d packets, %v; want none and no error", len(pks), err)
	}
	if next != Position(1, 0) {
		t.Fatalf("from a gone position: next %d, want the end of the queue %d", next, Position(1, 0))
	}
	if err := snd.SendToLoadMonitor(report("new")); err != nil {
		t.Fatal(err)
	}
	pks, _, err = rcv.ReceiveLoadMonitor(ctx, next)
	if err != nil || len(pks) != 1 || pks[0].Load.Host != "new" {
		t.Fatalf("after skipping: %v, %v; want the new report", pks, err)
	}
}
