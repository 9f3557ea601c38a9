package partitions

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// A table of Courier scripts: each step feeds inputs, then calls Ready at
// its time and reports every send as done (or failed); the sends are
// rendered as "dest:[b<pos>/<prev> ack<upTo> resend<after>]" or
// "client:<n responses>".

type courierStep struct {
	at   time.Duration // since the start
	do   func(c *Courier, now time.Time)
	fail bool   // the sends of this step fail
	want string // rendered sends ("" for none)
	next string // if set: Next at this step (after the sends), as an offset, or "none"
}

var courierT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func renderCourierSends(ss []Send) string {
	var parts []string
	for _, s := range ss {
		if s.Client != "" {
			parts = append(parts, fmt.Sprintf("%s:%d", s.Client, len(s.Packets)))
			continue
		}
		var xs []string
		for _, pk := range s.Packets {
			switch {
			case pk.Messages != nil:
				xs = append(xs, fmt.Sprintf("b%d/%d", pk.Messages.OriginPos, pk.Messages.Prev))
			case pk.Ack != nil:
				xs = append(xs, fmt.Sprintf("ack%d", pk.Ack.UpTo))
			case pk.Resend != nil:
				xs = append(xs, fmt.Sprintf("resend%d", pk.Resend.After))
			}
		}
		parts = append(parts, fmt.Sprintf("%d:[%s]", s.Partition, strings.Join(xs, " ")))
	}
	return strings.Join(parts, " ")
}

func cb(pos uint64, dest int, prev uint64) *OutboxBatch {
	return &OutboxBatch{Pos: pos, Dest: dest, Prev: prev}
}

func TestCourierTable(t *testing.T) {
	ms := time.Millisecond
	cfg := CourierConfig{Self: 0, Count: 3, AckDelay: 20 * ms, ResendAfter: 250 * ms, MaxResendAfter: time.Second,
		RetryMin: 10 * ms, RetryMax: 40 * ms, ResponseTTL: time.Second}
	cases := []struct {
		name  string
		steps []courierStep
	}{
		{"durable batches go at once, in order, once", []courierStep{
			{do: func(c *Courier, _ time.Time) { c.Durable(cb(1, 1, 0), cb(1, 2, 0), cb(4, 1, 1)) }, want: "1:[b1/0 b4/1] 2:[b1/0]"},
			{at: 10 * ms, want: ""},
			{at: 10 * ms, do: func(c *Courier, _ time.Time) { c.Durable(cb(6, 1, 4)) }, want: "1:[b6/4]"},
		}},
		{"a failed send is retried with backoff", []courierStep{
			{do: func(c *Courier, _ time.Time) { c.Durable(cb(1, 1, 0)) }, fail: true, want: "1:[b1/0]", next: "10ms"},
			{at: 5 * ms, want: ""},
			{at: 10 * ms, fail: true, want: "1:[b1/0]", next: "30ms"},
			{at: 29 * ms, want: ""},
			{at: 30 * ms, want: "1:[b1/0]", next: "280ms"},
			{at: 40 * ms, want: ""},
		}},
		{"unacknowledged batches are resent after the timeout, which doubles; an ack of resent batches restarts it, backed off (no round-trip sample)", []courierStep{
			{do: func(c *Courier, _ time.Time) { c.Durable(cb(1, 1, 0), cb(3, 1, 1)) }, want: "1:[b1/0 b3/1]", next: "250ms"},
			{at: 249 * ms, want: ""},
			{at: 250 * ms, want: "1:[b1/0 b3/1]", next: "750ms"},
			{at: 749 * ms, want: ""},
			{at: 750 * ms, want: "1:[b1/0 b3/1]"},
			{at: 800 * ms, do: func(c *Courier, now time.Time) { c.Acked(1, 1, now) }, want: "", next: "1.8s"},
			{at: 1800 * ms, want: "1:[b3/1]"},
			{at: 1850 * ms, do: func(c *Courier, now time.Time) { c.Acked(1, 3, now) }, want: "", next: "none"},
		}},
		{"a resend request rewinds to the receiver's mark", []courierStep{
			{do: func(c *Courier, _ time.Time) { c.Durable(cb(1, 1, 0), cb(4, 1, 1), cb(6, 1, 4)) }, want: "1:[b1/0 b4/1 b6/4]"},
			{at: 5 * ms, do: func(c *Courier, _ time.Time) { c.ResendRequested(1, 1) }, want: "1:[b4/1 b6/4]"},
			{at: 6 * ms, do: func(c *Courier, _ time.Time) { c.ResendRequested(1, 6) }, want: ""},
		}},
		{"acks carry the durable mark after the ack delay; a failed ack is retried", []courierStep{
			{do: func(c *Courier, now time.Time) { c.DurableMark(2, 40, now) }, want: "", next: "20ms"},
			{at: 20 * ms, fail: true, want: "2:[ack40]"},
			{at: 25 * ms, do: func(c *Courier, now time.Time) { c.DurableMark(2, 41, now) }, want: ""},
			{at: 30 * ms, want: "2:[ack41]", next: "none"},
		}},
		{"a duplicate is acknowledged again", []courierStep{
			{do: func(c *Courier, now time.Time) { c.DurableMark(1, 7, now) }, want: ""},
			{at: 20 * ms, want: "1:[ack7]"},
			{at: 100 * ms, do: func(c *Courier, now time.Time) { c.Duplicate(1, now) }, want: ""},
			{at: 120 * ms, want: "1:[ack7]", next: "none"},
		}},
		{"a gap asks for a resend once per ResendAfter", []courierStep{
			{do: func(c *Courier, now time.Time) { c.Gap(2, 30, now) }, want: "2:[resend30]"},
			{at: 100 * ms, do: func(c *Courier, now time.Time) { c.Gap(2, 30, now) }, want: ""},
			{at: 250 * ms, do: func(c *Courier, now time.Time) { c.Gap(2, 30, now) }, want: "2:[resend30]"},
			{at: 260 * ms, do: func(c *Courier, now time.Time) { c.Gap(2, 35, now) }, want: "2:[resend35]"},
		}},
		{"the outbox handed over again after recovery does not double", []courierStep{
			{do: func(c *Courier, _ time.Time) { c.Durable(cb(2, 1, 0), cb(5, 1, 2)) }, want: "1:[b2/0 b5/2]"},
			{at: 10 * ms, do: func(c *Courier, _ time.Time) { c.Durable(cb(2, 1, 0), cb(5, 1, 2), cb(7, 1, 5)) }, want: "1:[b7/5]"},
		}},
		{"responses are retried, then dropped after their TTL", []courierStep{
			{do: func(c *Courier, _ time.Time) {
				c.Respond("c", &transport.ClientResponse{RequestID: 1})
				c.Respond("c", &transport.ClientResponse{RequestID: 2})
			}, fail: true, want: "c:2", next: "10ms"},
			{at: 10 * ms, fail: true, want: "c:2"},
			{at: 1010 * ms, fail: true, want: "c:2", next: "none"},
		}},
		// While a destination fails, a resend timer that fell due must not
		// wake the partition before the backoff ends: Ready sends nothing
		// until then (it used to make Next "now" again and again).
		{"a due resend waits for the backoff", []courierStep{
			{do: func(c *Courier, _ time.Time) { c.Durable(cb(1, 1, 0)) }, want: "1:[b1/0]"},
			{at: 225 * ms, do: func(c *Courier, now time.Time) { c.DurableMark(1, 9, now) }, want: ""},
			{at: 245 * ms, fail: true, want: "1:[ack9]", next: "255ms"},
			{at: 250 * ms, want: "", next: "255ms"},
			{at: 255 * ms, want: "1:[b1/0 ack9]", next: "755ms"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCourier(cfg)
			for i, st := range tc.steps {
				now := courierT0.Add(st.at)
				if st.do != nil {
					st.do(c, now)
				}
				sends := c.Ready(now)
				if got := renderCourierSends(sends); got != st.want {
					t.Fatalf("step %d at %v: sends %q, want %q", i, st.at, got, st.want)
				}
				var err error
				if st.fail {
					err = errors.New("injected")
				}
				for _, s := range sends {
					c.Result(s, err, now)
				}
				if st.next != "" {
					got := "none"
					if n := c.Next(now); !n.IsZero() {
						got = n.Sub(courierT0).String()
					}
					if got != st.next {
						t.Fatalf("step %d at %v: Next %s, want %s", i, st.at, got, st.next)
					}
				}
			}
		})
	}
}
