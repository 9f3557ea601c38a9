package partitions

import (
	"errors"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// The courier is driven here as the runtime drives it, on a virtual clock.

var errSend = errors.New("send failed")

func batch(dest int, pos, prev uint64) *OutboxBatch {
	return &OutboxBatch{Pos: pos, Dest: dest, Prev: prev, Messages: nil}
}

// sent performs the courier's due sends at now, failing them all if fail,
// and returns the packets per destination partition.
func sent(c *Courier, now time.Time, fail bool) map[int][]*transport.Packet {
	out := map[int][]*transport.Packet{}
	for _, s := range c.Ready(now) {
		var err error
		if fail {
			err = errSend
		} else {
			out[s.Partition] = append(out[s.Partition], s.Packets...)
		}
		c.Result(s, err, now)
	}
	return out
}

func positions(pks []*transport.Packet) (batches []uint64, acks []uint64, resends []uint64) {
	for _, pk := range pks {
		switch {
		case pk.Messages != nil:
			batches = append(batches, pk.Messages.OriginPos)
		case pk.Ack != nil:
			acks = append(acks, pk.Ack.UpTo)
		case pk.Resend != nil:
			resends = append(resends, pk.Resend.After)
		}
	}
	return
}

func TestCourierRetriesFailedSendsWithBackoff(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 0, Count: 2, RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond})
	c.Durable(batch(1, 5, 0), batch(1, 7, 5))
	sent(c, t0, true)
	if got := sent(c, t0.Add(5*time.Millisecond), false); len(got) != 0 {
		t.Fatalf("sent during the backoff: %v", got)
	}
	if next := c.Next(t0.Add(5 * time.Millisecond)); !next.Equal(t0.Add(10 * time.Millisecond)) {
		t.Fatalf("Next = %v, want the end of the backoff", next.Sub(t0))
	}
	sent(c, t0.Add(10*time.Millisecond), true) // backoff 20 ms
	sent(c, t0.Add(30*time.Millisecond), true) // backoff 40 ms
	sent(c, t0.Add(70*time.Millisecond), true) // capped at 40 ms
	if got := sent(c, t0.Add(100*time.Millisecond), false); len(got) != 0 {
		t.Fatal("sent before the capped backoff ended")
	}
	b, _, _ := positions(sent(c, t0.Add(110*time.Millisecond), false)[1])
	if len(b) != 2 || b[0] != 5 || b[1] != 7 {
		t.Fatalf("after the failures, sent %v, want [5 7]", b)
	}
	if st := c.Stats(); st.Failures != 4 {
		t.Fatalf("failures = %d, want 4", st.Failures)
	}
}

func TestCourierResendsUnacknowledgedAndStopsWhenAcked(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 0, Count: 2, ResendAfter: 100 * time.Millisecond})
	c.Durable(batch(1, 5, 0), batch(1, 7, 5))
	sent(c, t0, false)
	if got := sent(c, t0.Add(99*time.Millisecond), false); len(got) != 0 {
		t.Fatal("resent before the timeout")
	}
	b, _, _ := positions(sent(c, t0.Add(100*time.Millisecond), false)[1])
	if len(b) != 2 {
		t.Fatalf("after the timeout, resent %v, want both", b)
	}
	// Nothing acknowledged: the timeout doubles.
	if got := sent(c, t0.Add(250*time.Millisecond), false); len(got) != 0 {
		t.Fatal("resent before the doubled timeout")
	}
	// The ack of a resent batch says nothing of the round trip: the
	// backed-off timeout (200 ms) stays, counted from the ack.
	c.Acked(1, 5, t0.Add(260*time.Millisecond))
	if got := sent(c, t0.Add(459*time.Millisecond), false); len(got) != 0 {
		t.Fatal("resent before the backed-off timeout")
	}
	b, _, _ = positions(sent(c, t0.Add(460*time.Millisecond), false)[1])
	if len(b) != 1 || b[0] != 7 {
		t.Fatalf("after an ack of 5, resent %v, want [7]", b)
	}
	c.Acked(1, 7, t0.Add(470*time.Millisecond))
	if c.Unacked() != 0 || !c.Next(t0.Add(470*time.Millisecond)).IsZero() {
		t.Fatalf("after the last ack: %d unacked, next %v", c.Unacked(), c.Next(t0))
	}
}

func TestCourierResendRequestRewinds(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 0, Count: 2, ResendAfter: time.Hour})
	c.Durable(batch(1, 5, 0), batch(1, 7, 5), batch(1, 9, 7))
	sent(c, t0, false)
	c.ResendRequested(1, 5)
	b, _, _ := positions(sent(c, t0, false)[1])
	if len(b) != 2 || b[0] != 7 || b[1] != 9 {
		t.Fatalf("after a request to resend after 5: %v, want [7 9]", b)
	}
	// Recovery hands the outbox over again: nothing is sent twice.
	c.Durable(batch(1, 5, 0), batch(1, 7, 5), batch(1, 9, 7))
	if got := sent(c, t0, false); len(got) != 0 {
		t.Fatalf("known batches sent again: %v", got)
	}
}

func TestCourierAcksDurableMarksAndReacksDuplicates(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 1, Count: 2, AckDelay: 10 * time.Millisecond})
	c.Duplicate(0, t0)
	if got := sent(c, t0.Add(time.Second), false); len(got) != 0 {
		t.Fatal("acked with nothing durable")
	}
	c.DurableMark(0, 5, t0)
	if got := sent(c, t0.Add(5*time.Millisecond), false); len(got) != 0 {
		t.Fatal("acked before the ack delay")
	}
	_, a, _ := positions(sent(c, t0.Add(10*time.Millisecond), true)[0])
	if len(a) != 0 {
		t.Fatal("a failed ack counted as sent")
	}
	_, a, _ = positions(sent(c, t0.Add(20*time.Millisecond), false)[0])
	if len(a) != 1 || a[0] != 5 {
		t.Fatalf("acks %v, want [5]", a)
	}
	if got := sent(c, t0.Add(time.Second), false); len(got) != 0 {
		t.Fatal("acked twice without a duplicate")
	}
	c.Duplicate(0, t0.Add(time.Second))
	_, a, _ = positions(sent(c, t0.Add(2*time.Second), false)[0])
	if len(a) != 1 || a[0] != 5 {
		t.Fatalf("after a duplicate, acks %v, want [5] again", a)
	}
	if st := c.Stats(); st.Reacks != 1 {
		t.Fatalf("reacks = %d, want 1", st.Reacks)
	}
}

func TestCourierGapRequestsAreSpaced(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 1, Count: 2, ResendAfter: 100 * time.Millisecond})
	c.Gap(0, 5, t0)
	_, _, r := positions(sent(c, t0, false)[0])
	if len(r) != 1 || r[0] != 5 {
		t.Fatalf("resend requests %v, want [5]", r)
	}
	c.Gap(0, 5, t0.Add(50*time.Millisecond))
	if got := sent(c, t0.Add(50*time.Millisecond), false); len(got) != 0 {
		t.Fatal("asked again for the same gap too soon")
	}
	c.Gap(0, 9, t0.Add(60*time.Millisecond)) // a new mark: ask at once
	_, _, r = positions(sent(c, t0.Add(60*time.Millisecond), false)[0])
	if len(r) != 1 || r[0] != 9 {
		t.Fatalf("resend requests %v, want [9]", r)
	}
}

func TestCourierRetriesResponsesThenGivesUp(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 0, Count: 1, ResponseTTL: time.Second, RetryMax: 100 * time.Millisecond})
	c.Respond("a", &transport.ClientResponse{RequestID: 1})
	c.Respond("b", &transport.ClientResponse{RequestID: 2})
	now := t0
	for i := 0; i < 100 && len(c.clients) > 0; i++ {
		for _, s := range c.Ready(now) {
			var err error
			if s.Client == "a" {
				err = errSend // a's queue stays broken
			}
			c.Result(s, err, now)
		}
		now = now.Add(50 * time.Millisecond)
	}
	if len(c.clients) != 0 {
		t.Fatal("responses still queued")
	}
	if st := c.Stats(); st.DroppedResponses != 1 {
		t.Fatalf("dropped %d responses, want 1 (client a's)", st.DroppedResponses)
	}
}

// A receiver whose acks take 300 ms (far above ResendAfter) is not sent
// everything again and again: the timeout follows the round trip.
func TestCourierTimeoutFollowsRoundTrip(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := NewCourier(CourierConfig{Self: 0, Count: 2, ResendAfter: 100 * time.Millisecond})
	const lag = 300 * time.Millisecond
	seen := map[uint64]time.Time{} // first arrival of each batch
	var resentLate int64
	next := uint64(1)
	for now := t0; now.Before(t0.Add(10 * time.Second)); now = now.Add(10 * time.Millisecond) {
		if now.Sub(t0)%(100*time.Millisecond) == 0 {
			c.Durable(batch(1, next, next-1))
			next++
		}
		b, _, _ := positions(sent(c, now, false)[1])
		for _, pos := range b {
			if _, ok := seen[pos]; !ok {
				seen[pos] = now
			}
		}
		// The receiver acks what arrived lag ago, in order.
		var upTo uint64
		for pos := uint64(1); pos < next; pos++ {
			at, ok := seen[pos]
			if !ok || now.Sub(at) < lag {
				break
			}
			upTo = pos
		}
		if upTo > 0 {
			c.Acked(1, upTo, now)
		}
		if now.Equal(t0.Add(5 * time.Second)) {
			resentLate = -c.Stats().Resent
		}
	}
	resentLate += c.Stats().Resent
	if resentLate != 0 {
		t.Fatalf("%d batches resent in the steady state (after 5 s)", resentLate)
	}
}
