package partitions

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// exStep is one step of an exchange script: an input, then the sends a
// Tick at the script's clock returns (rendered), each reported as sent
// (or failed, if fail is set).
type exStep struct {
	do   func(e *exchange)
	at   time.Duration // clock of the Tick, from the start
	fail bool          // the sends of this Tick fail
	want string        // rendered sends, "" for none
}

var exT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func renderSends(ss []Send) string {
	var parts []string
	for _, s := range ss {
		var xs []string
		for _, b := range s.Batches {
			xs = append(xs, fmt.Sprintf("b%d/%d", b.Pos, b.Prev))
		}
		if s.Ack != nil {
			xs = append(xs, fmt.Sprintf("ack%d", s.Ack.UpTo))
		}
		if s.Resend != nil {
			xs = append(xs, fmt.Sprintf("resend%d", s.Resend.After))
		}
		parts = append(parts, fmt.Sprintf("%d:[%s]", s.Dest, strings.Join(xs, " ")))
	}
	return strings.Join(parts, " ")
}

func ob(pos uint64, dest int, prev uint64) *OutboxBatch {
	return &OutboxBatch{Pos: pos, Dest: dest, Prev: prev}
}

func TestExchange(t *testing.T) {
	cfg := exchangeConfig{AckInterval: 50 * time.Millisecond, ResendTimeout: time.Second, MaxResend: 4 * time.Second,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}
	ms := time.Millisecond
	cases := []struct {
		name    string
		durable uint64
		marks   map[int]DedupMark
		steps   []exStep
	}{
		{name: "batches wait for durability, then go once", steps: []exStep{
			{do: func(e *exchange) { e.OnOutbox([]*OutboxBatch{ob(1, 2, 0), ob(1, 3, 0)}) }, want: ""},
			{do: func(e *exchange) { e.OnOutbox([]*OutboxBatch{ob(2, 2, 1)}) }, want: ""},
			{do: func(e *exchange) { e.OnDurable(1) }, want: "2:[b1/0] 3:[b1/0]"},
			{at: 10 * ms, want: ""},
			{do: func(e *exchange) { e.OnDurable(2) }, at: 10 * ms, want: "2:[b2/1]"},
		}},
		{name: "a failed send is retried with backoff, then the batch goes", steps: []exStep{
			{do: func(e *exchange) { e.OnOutbox([]*OutboxBatch{ob(1, 2, 0)}); e.OnDurable(1) }, fail: true, want: "2:[b1/0]"},
			{at: 5 * ms, want: ""},                      // backing off (10 ms)
			{at: 10 * ms, fail: true, want: "2:[b1/0]"}, // fails again: 20 ms
			{at: 25 * ms, want: ""},
			{at: 30 * ms, want: "2:[b1/0]"},
			{at: 40 * ms, want: ""},
		}},
		{name: "no ack: resent after the timeout, which doubles; an ack stops it", steps: []exStep{
			{do: func(e *exchange) { e.OnOutbox([]*OutboxBatch{ob(1, 2, 0), ob(3, 2, 1)}); e.OnDurable(3) }, want: "2:[b1/0 b3/1]"},
			{at: 999 * ms, want: ""},
			{at: 1000 * ms, want: "2:[b1/0 b3/1]"},
			{at: 2999 * ms, want: ""},
			{at: 3000 * ms, want: "2:[b1/0 b3/1]"},
			{do: func(e *exchange) { e.OnAck(2, 1) }, at: 3100 * ms, want: ""},
			{at: 4099 * ms, want: ""},
			{at: 4100 * ms, want: "2:[b3/1]"}, // timeout back to 1 s after progress
			{do: func(e *exchange) { e.OnAck(2, 3) }, at: 4200 * ms, want: ""},
			{at: 60 * time.Second, want: ""},
		}},
		{name: "a resend request sends the batches after its mark again", steps: []exStep{
			{do: func(e *exchange) {
				e.OnOutbox([]*OutboxBatch{ob(1, 2, 0), ob(4, 2, 1), ob(6, 2, 4)})
				e.OnDurable(6)
			}, want: "2:[b1/0 b4/1 b6/4]"},
			{do: func(e *exchange) { e.OnResendRequest(2, 1) }, at: 5 * ms, want: "2:[b4/1 b6/4]"},
			{do: func(e *exchange) { e.OnResendRequest(2, 6) }, at: 6 * ms, want: ""},
		}},
		{name: "acks carry the durable mark only, at most every interval", steps: []exStep{
			{do: func(e *exchange) { e.OnApplied(5, 1, 40) }, want: ""}, // not durable yet
			{do: func(e *exchange) { e.OnDurable(5) }, want: "1:[ack40]"},
			{do: func(e *exchange) { e.OnApplied(6, 1, 41); e.OnDurable(6) }, at: 10 * ms, want: ""},
			{at: 50 * ms, want: "1:[ack41]"},
			{at: 200 * ms, want: ""},
		}},
		{name: "a failed ack is retried", steps: []exStep{
			{do: func(e *exchange) { e.OnApplied(5, 1, 40); e.OnDurable(5) }, fail: true, want: "1:[ack40]"},
			{at: 50 * ms, want: "1:[ack40]"},
			{at: 100 * ms, want: ""},
		}},
		{name: "a duplicate is acknowledged again", steps: []exStep{
			{do: func(e *exchange) { e.OnApplied(5, 1, 40); e.OnDurable(5) }, want: "1:[ack40]"},
			{at: 100 * ms, want: ""},
			{do: func(e *exchange) { e.OnDuplicate(1) }, at: 200 * ms, want: "1:[ack40]"},
			{at: 300 * ms, want: ""},
		}},
		{name: "after recovery every origin's mark is acknowledged", durable: 9,
			marks: map[int]DedupMark{0: {Pos: 7}, 3: {Pos: 12, Sub: 1}, 4: {}}, steps: []exStep{
				{want: "0:[ack7] 3:[ack12]"},
				{at: 100 * ms, want: ""},
			}},
		{name: "a gap asks for a resend once per timeout", steps: []exStep{
			{do: func(e *exchange) { e.OnGap(1, 30) }, want: "1:[resend30]"},
			{do: func(e *exchange) { e.OnGap(1, 30) }, at: 100 * ms, want: ""},
			{do: func(e *exchange) { e.OnGap(1, 30) }, at: 1000 * ms, want: "1:[resend30]"},
			{do: func(e *exchange) { e.OnApplied(10, 1, 35); e.OnDurable(10); e.OnGap(1, 35) }, at: 1100 * ms, want: "1:[ack35 resend35]"},
		}},
		{name: "recovery re-lists the outbox: nothing doubles", durable: 5, steps: []exStep{
			{do: func(e *exchange) { e.OnOutbox([]*OutboxBatch{ob(2, 1, 0), ob(5, 1, 2)}) }, want: "1:[b2/0 b5/2]"},
			{do: func(e *exchange) { e.OnOutbox([]*OutboxBatch{ob(2, 1, 0), ob(5, 1, 2), ob(6, 1, 5)}); e.OnDurable(6) },
				at: 10 * ms, want: "1:[b6/5]"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newExchange(0, cfg, c.durable, c.marks)
			for i, st := range c.steps {
				if st.do != nil {
					st.do(e)
				}
				now := exT0.Add(st.at)
				sends := e.Tick(now)
				if got := renderSends(sends); got != st.want {
					t.Fatalf("step %d at %v: sends %q, want %q", i, st.at, got, st.want)
				}
				var err error
				if st.fail {
					err = errors.New("injected")
				}
				for _, s := range sends {
					e.OnSent(s, err, now)
				}
			}
		})
	}
}

func TestExchangeChunksAndUnacked(t *testing.T) {
	e := newExchange(0, exchangeConfig{MaxBatchesPerSend: 2}, 0, nil)
	e.OnOutbox([]*OutboxBatch{ob(1, 1, 0), ob(2, 1, 1), ob(3, 1, 2), ob(4, 2, 0)})
	if n := e.Unacked(); n != 4 {
		t.Fatalf("unacked %d, want 4", n)
	}
	if got := renderSends(e.Tick(exT0)); got != "" {
		t.Fatalf("before durability: %q", got)
	}
	e.OnDurable(4)
	var got []string
	for i := 0; i < 4; i++ {
		ss := e.Tick(exT0)
		got = append(got, renderSends(ss))
		for _, s := range ss {
			e.OnSent(s, nil, exT0)
		}
	}
	if want := "1:[b1/0 b2/1] 2:[b4/0]|1:[b3/2]||"; strings.Join(got, "|") != want {
		t.Fatalf("chunks %q, want %q", strings.Join(got, "|"), want)
	}
	e.OnAck(1, 3)
	e.OnAck(2, 4)
	if n := e.Unacked(); n != 0 {
		t.Fatalf("unacked after acks %d, want 0", n)
	}
	if next := e.Next(exT0); !next.IsZero() {
		t.Fatalf("Next with nothing due: %v", next)
	}
}

func TestExchangeNext(t *testing.T) {
	e := newExchange(0, exchangeConfig{ResendTimeout: time.Second, MinBackoff: 10 * time.Millisecond}, 0, nil)
	if next := e.Next(exT0); !next.IsZero() {
		t.Fatalf("idle Next %v", next)
	}
	e.OnOutbox([]*OutboxBatch{ob(1, 1, 0)})
	e.OnDurable(1)
	if next := e.Next(exT0); !next.Equal(exT0) {
		t.Fatalf("Next with a batch due %v, want now", next)
	}
	for _, s := range e.Tick(exT0) {
		e.OnSent(s, errors.New("x"), exT0)
	}
	if next := e.Next(exT0); !next.Equal(exT0.Add(10 * time.Millisecond)) {
		t.Fatalf("Next in backoff %v, want +10ms", next.Sub(exT0))
	}
	at := exT0.Add(10 * time.Millisecond)
	for _, s := range e.Tick(at) {
		e.OnSent(s, nil, at)
	}
	if next := e.Next(at); !next.Equal(at.Add(time.Second)) {
		t.Fatalf("Next awaiting an ack %v, want the resend timeout", next.Sub(at))
	}
}
