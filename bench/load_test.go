package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/durable"
)

// fakeClock only moves forward, when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// An engine that answers nothing until the whole schedule was issued:
// the open loop must issue every op anyway (no slot waits for an answer),
// and op i's latency counts from its intended start, so it is at least
// the time from there to the last op's intended start.
func TestOpenLoopLatencyFromIntendedStart(t *testing.T) {
	const n, rate = 100, 1000.0 // 1 ms apart: the last op is due 99 ms in; more than any slot pool of 64
	interval := time.Second / time.Duration(rate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	issued := 0
	all := make(chan struct{})
	slow := func(ctx context.Context, i int, acked func()) error {
		mu.Lock()
		if issued++; issued == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			acked()
			return nil
		case <-ctx.Done():
			return fail("wait", ctx.Err())
		}
	}
	l := &openLoop{n: n, rate: rate}
	rec, t0 := l.run(ctx, slow)
	st := rec.stats()
	if st.Failed != 0 || st.Completed != n {
		t.Fatalf("completed %d failed %d (%v): the loop waited for answers before issuing", st.Completed, st.Failed, st.Errors)
	}
	res := &Result{Mode: modeOpen, OfferedPerS: rate}
	st.fill(res, t0)
	// Sorted from slowest: the k-th slowest waited at least (n-1-k) intervals.
	for _, p := range []float64{100, 50} {
		got := percentile(st.Lat, p)
		rank := int(math.Ceil(p/100*n)) - 1 // nearest rank, ascending
		want := ms(time.Duration(rank) * interval)
		if got < want {
			t.Errorf("p%v latency %.1f ms < %.1f ms: measured from when the op ran, not its intended start", p, got, want)
		}
	}
	if res.MaxMs < ms(time.Duration(n-1)*interval) {
		t.Errorf("max latency %.1f ms, want at least %.1f ms", res.MaxMs, ms(time.Duration(n-1)*interval))
	}
}

// A harness that falls behind its schedule (a GC pause, a busy CPU) shows
// up in the latency of the ops it issued late, though they answer at once.
func TestOpenLoopIssueLagCounts(t *testing.T) {
	clk := newFakeClock()
	const n, rate = 20, 100.0 // 10 ms apart
	interval := time.Second / time.Duration(rate)
	var t0 time.Time
	l := &openLoop{n: n, rate: rate, now: clk.now}
	l.sleepUntil = func(ctx context.Context, due time.Time) error {
		clk.advanceTo(due)
		if t0.IsZero() {
			t0 = due
		}
		if due.Equal(l.due(t0, 5)) {
			clk.advanceTo(due.Add(50 * time.Millisecond)) // op 5 is issued 50 ms late
		}
		return ctx.Err()
	}
	instant := func(ctx context.Context, i int, acked func()) error { acked(); return nil }
	rec, start := l.run(context.Background(), instant)
	st := rec.stats()
	res := &Result{Mode: modeOpen, OfferedPerS: rate}
	st.fill(res, start)
	if res.MaxMs < 50 || res.MaxIssueLagMs < 50 {
		t.Fatalf("max latency %.1f ms, issue lag %.1f ms; want both >= 50 ms", res.MaxMs, res.MaxIssueLagMs)
	}
	// Ops 5..9 were due before op 5 went out: 50, 40, 30, 20, 10 ms late.
	late := 0
	for _, d := range st.Lat {
		if d >= interval {
			late++
		}
	}
	if late < 5 {
		t.Fatalf("%d ops at least %v late, want 5: %v", late, interval, st.Lat)
	}
}

// The achieved rate is the offered one when every start is acknowledged
// on time, and half of it when the engine acknowledges at half the pace.
func TestOpenLoopAchievedRate(t *testing.T) {
	const n, rate = 10, 100.0
	interval := time.Second / time.Duration(rate)
	for _, tc := range []struct {
		name  string
		slow  bool
		want  float64
		loose float64
	}{
		{"on time", false, rate, 1e-6},
		{"half pace", true, float64(n) / ((2*n - 1) * 0.01), 1e-6},
	} {
		clk := newFakeClock()
		l := &openLoop{n: n, rate: rate, now: clk.now,
			sleepUntil: func(ctx context.Context, due time.Time) error { clk.advanceTo(due); return nil }}
		t0 := clk.now()
		rec, start := l.run(context.Background(), func(ctx context.Context, i int, acked func()) error {
			if tc.slow {
				clk.advanceTo(t0.Add(time.Duration(2*i) * interval)) // ack i at 2i intervals
			}
			acked()
			return nil
		})
		res := &Result{Mode: modeOpen, OfferedPerS: rate}
		rec.stats().fill(res, start)
		if math.Abs(res.AchievedPerS-tc.want) > tc.loose {
			t.Errorf("%s: achieved %.3f/s, want %.3f/s", tc.name, res.AchievedPerS, tc.want)
		}
	}
}

func TestPercentileKeepsEverySample(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 10; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]float64{50: 5, 90: 9, 99: 10, 100: 10, 0: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v of 1..10 ms = %v, want %v", p, got, want)
		}
	}
	// Zero latencies are samples, not missing values.
	if got := percentile([]time.Duration{0, 0, 0, 10 * time.Millisecond}, 50); got != 0 {
		t.Errorf("p50 of 0,0,0,10ms = %v, want 0", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

// Failed ops are counted by kind, in both loops, and never become
// latency samples.
func TestFailuresCountedByKind(t *testing.T) {
	o := func(ctx context.Context, i int, acked func()) error {
		switch i % 4 {
		case 0:
			return fail("start", fmt.Errorf("partition 3: %w", durable.ErrInstanceExists))
		case 1:
			acked()
			return &failure{kind: "status: Failed", err: errors.New("boom")}
		case 2:
			acked()
			return fail("wait", context.DeadlineExceeded)
		}
		acked()
		return nil
	}
	clk := newFakeClock()
	open := &openLoop{n: 40, rate: 1000, now: clk.now,
		sleepUntil: func(ctx context.Context, due time.Time) error { clk.advanceTo(due); return nil }}
	for name, run := range map[string]func() (*recorder, time.Time){
		"open":   func() (*recorder, time.Time) { return open.run(context.Background(), o) },
		"closed": func() (*recorder, time.Time) { return (&closedLoop{n: 40, inFlight: 3}).run(context.Background(), o) },
	} {
		rec, t0 := run()
		res := &Result{}
		rec.stats().fill(res, t0)
		want := map[string]int{"start: instance exists": 10, "status: Failed": 10, "wait: timeout": 10}
		if res.Completed != 10 || res.Failed != 30 || fmt.Sprint(res.Errors) != fmt.Sprint(want) || res.FirstError == "" {
			t.Errorf("%s: completed %d failed %d errors %v first %q; want 10, 30, %v", name, res.Completed, res.Failed, res.Errors, res.FirstError, want)
		}
		if n := len(rec.stats().Lat); n != 10 {
			t.Errorf("%s: %d latency samples for 10 completed", name, n)
		}
	}
}

// Ops that the schedule never issued (the run was canceled) count as
// failed, so that completed + failed is always n.
func TestOpenLoopCountsUnissued(t *testing.T) {
	clk := newFakeClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	l := &openLoop{n: 30, rate: 100, now: clk.now, sleepUntil: func(ctx context.Context, due time.Time) error {
		if calls++; calls == 13 {
			cancel()
		}
		clk.advanceTo(due)
		return ctx.Err()
	}}
	rec, _ := l.run(ctx, func(ctx context.Context, i int, acked func()) error { acked(); return nil })
	st := rec.stats()
	if st.Completed != 12 || st.Failed != 18 || st.Errors["start: canceled"] != 18 {
		t.Fatalf("completed %d failed %d errors %v; want 12, 18 canceled", st.Completed, st.Failed, st.Errors)
	}
}

// The closed loop never has more than its cap in flight.
func TestClosedLoopCap(t *testing.T) {
	var mu sync.Mutex
	cur, peak := 0, 0
	rec, _ := (&closedLoop{n: 200, inFlight: 7}).run(context.Background(), func(ctx context.Context, i int, acked func()) error {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(100 * time.Microsecond) // overlap, not synchronization
		mu.Lock()
		cur--
		mu.Unlock()
		return nil
	})
	if st := rec.stats(); st.Completed != 200 || peak > 7 {
		t.Fatalf("completed %d, peak in flight %d (cap 7)", st.Completed, peak)
	}
}
