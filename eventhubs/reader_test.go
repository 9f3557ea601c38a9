package eventhubs

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/netherite-go/netherite/transport"
)

// White-box tests of the reader's position logic, fed events directly
// (no emulator).

func fakeReader(t *testing.T, nextSeq int64) (*reader, chan pumped) {
	tr := &Transport{o: Options{TaskHubID: hubID, PartitionCount: 1}, log: slog.New(slog.DiscardHandler),
		names: Names(""), readers: map[int]*reader{}, blobRefs: map[int][]blobAt{}}
	tr.ctx, tr.cancel = context.WithCancel(context.Background())
	t.Cleanup(tr.cancel)
	ch := make(chan pumped, 16)
	done := make(chan struct{})
	close(done)
	r := &reader{t: tr, hub: tr.names.Partitions, what: "partition 0", pc: &azeventhubs.PartitionClient{},
		stopPump: func() {}, pumpDone: done, ch: ch, nextSeq: nextSeq, marks: senderMarks{}, released: make(chan struct{})}
	return r, ch
}

// event builds an event body from envelopes (nil: a stray, "bad": garbage).
func event(t *testing.T, seq int64, sender string, senderSeq uint64, pks ...*transport.Packet) pumped {
	var body []byte
	for _, p := range pks {
		var env []byte
		var err error
		switch {
		case p == nil:
			env, err = encodePacket("another-hub", "", ackPacket(9, 9))
		case p.Ack != nil && p.Ack.From == -1:
			env = []byte{0xff, 0xff, 0xff}
		default:
			env, err = encodePacket(hubID, "", p)
		}
		if err != nil {
			t.Fatal(err)
		}
		body = appendToBody(body, env)
	}
	if sender != "" {
		body = appendSender(body, []byte(sender), senderSeq)
	}
	return pumped{ev: &azeventhubs.ReceivedEventData{EventData: azeventhubs.EventData{Body: body}, SequenceNumber: seq}}
}

type step struct {
	from    uint64
	upTos   []uint64 // Ack.UpTo of the packets returned
	next    uint64
	goneErr bool
}

func run(t *testing.T, r *reader, steps []step) {
	t.Helper()
	for i, s := range steps {
		pks, next, err := r.receive(context.Background(), s.from)
		if s.goneErr {
			if !errors.Is(err, transport.ErrPositionGone) {
				t.Fatalf("step %d: want ErrPositionGone, got %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d (from %d): %v", i, s.from, err)
		}
		var got []uint64
		for _, p := range pks {
			got = append(got, p.Ack.UpTo)
		}
		if len(got) != len(s.upTos) || next != s.next {
			t.Fatalf("step %d (from %v): got %v next %v, want %v next %v", i, pos(s.from), got, pos(next), s.upTos, pos(s.next))
		}
		for j := range got {
			if got[j] != s.upTos[j] {
				t.Fatalf("step %d: got %v, want %v", i, got, s.upTos)
			}
		}
	}
}

func pos(p uint64) [2]int64 { s, i := SplitPosition(p); return [2]int64{s, int64(i)} }

func TestReaderMixedEvent(t *testing.T) {
	r, ch := fakeReader(t, 5)
	bad := &transport.Packet{Ack: &transport.Ack{From: -1}}
	ch <- event(t, 5, "s", 1, ackPacket(0, 1), nil, ackPacket(0, 3), ackPacket(0, 4), bad, ackPacket(0, 6))
	ch <- event(t, 6, "s", 2, ackPacket(0, 7))
	run(t, r, []step{
		{Position(5, 0), []uint64{1}, Position(5, 1), false},
		{Position(5, 1), nil, Position(5, 2), false},
		{Position(5, 2), []uint64{3, 4}, Position(5, 4), false},
		{Position(5, 4), nil, Position(5, 5), false},
		{Position(5, 5), []uint64{6}, Position(6, 0), false},
		// Re-reading inside the current event is served from it.
		{Position(5, 3), []uint64{4}, Position(5, 4), false},
		// The position after the event's last packet reads as the next event's first.
		{Position(5, 6), nil, Position(6, 0), false},
		{Position(6, 0), []uint64{7}, Position(7, 0), false},
	})
	if st := r.t.Stats(); st.StraysDropped != 1 || st.Undecodable != 1 || st.PacketsReceived != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReaderDuplicateEvent(t *testing.T) {
	r, ch := fakeReader(t, 0)
	ch <- event(t, 0, "s", 1, ackPacket(0, 1))
	ch <- event(t, 1, "s", 1, ackPacket(0, 1)) // stored twice
	ch <- event(t, 2, "t", 1, ackPacket(1, 1)) // another sender
	ch <- event(t, 3, "s", 2, ackPacket(0, 2))
	run(t, r, []step{
		{0, []uint64{1}, Position(1, 0), false},
		{Position(1, 0), nil, Position(2, 0), false},
		{Position(2, 0), []uint64{1}, Position(3, 0), false},
		{Position(3, 0), []uint64{2}, Position(4, 0), false},
	})
	if st := r.t.Stats(); st.Duplicates != 1 {
		t.Fatalf("duplicates %d", st.Duplicates)
	}
}

func TestReaderFirstEventLater(t *testing.T) {
	r, ch := fakeReader(t, 5)
	ch <- event(t, 7, "s", 1, ackPacket(0, 1))
	run(t, r, []step{{Position(5, 0), nil, 0, true}})
	if r.pc != nil {
		t.Fatal("the receiver stayed open after a gap")
	}
}
