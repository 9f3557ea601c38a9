package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/netherite-go/netherite/durable"
)

// An op is one unit of work of a workload (start an orchestration and
// wait for it). It calls acked once the start was acknowledged, so that
// the harness can tell the achieved start rate. A failure should be a
// *failure (see fail) so that it is counted under its kind.
type op func(ctx context.Context, i int, acked func()) error

// failure is an op's error together with its kind for the JSON
// ("start: timeout", "status: Failed", ...).
type failure struct {
	kind string
	err  error
}

func (f *failure) Error() string { return f.kind + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// fail classifies err, which happened in phase ("start", "wait", ...).
func fail(phase string, err error) error {
	return &failure{kind: phase + ": " + errorKind(err), err: err}
}

// errorKind names an error by what it means, never by its text, so
// that the kinds stay few (no instance ids).
func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, durable.ErrInstanceNotFound):
		return "instance not found"
	case errors.Is(err, durable.ErrInstanceExists):
		return "instance exists"
	case errors.Is(err, durable.ErrInvalidArgument):
		return "invalid argument"
	case errors.Is(err, durable.ErrNotRunning):
		return "not running"
	}
	return "error"
}

// recorder collects the outcomes of ops; safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration // of the timed ops that succeeded
	doneAt   []time.Time     // when each op that succeeded completed
	untimed  int             // ops that succeeded without a latency sample
	errs     map[string]int
	first    error
	failed   int
	acks     int
	lastAck  time.Time
	lastDone time.Time
	maxLag   time.Duration
	now      func() time.Time
}

func newRecorder(now func() time.Time) *recorder {
	if now == nil {
		now = time.Now
	}
	return &recorder{errs: map[string]int{}, now: now}
}

func (r *recorder) acked() {
	t := r.now()
	r.mu.Lock()
	r.acks++
	if t.After(r.lastAck) {
		r.lastAck = t
	}
	r.mu.Unlock()
}

func (r *recorder) ok(d time.Duration) {
	t := r.now()
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.doneAt = append(r.doneAt, t)
	if t.After(r.lastDone) {
		r.lastDone = t
	}
	r.mu.Unlock()
}

// okUntimed counts an op that succeeded without a latency sample.
func (r *recorder) okUntimed() {
	t := r.now()
	r.mu.Lock()
	r.untimed++
	r.doneAt = append(r.doneAt, t)
	r.mu.Unlock()
}

// fail counts n ops that failed with err.
func (r *recorder) fail(err error, n int) {
	kind := "error: " + errorKind(err)
	var f *failure
	if errors.As(err, &f) {
		kind = f.kind
	}
	r.mu.Lock()
	r.failed += n
	r.errs[kind] += n
	if r.first == nil {
		r.first = err
	}
	r.mu.Unlock()
}

func (r *recorder) lag(d time.Duration) {
	r.mu.Lock()
	r.maxLag = max(r.maxLag, d)
	r.mu.Unlock()
}

// stats is what a recorder saw.
type stats struct {
	Completed, Failed, Acks int
	Errors                  map[string]int
	First                   error
	Lat                     []time.Duration
	DoneAt                  []time.Time
	LastAck, LastDone       time.Time
	MaxLag                  time.Duration
}

func (r *recorder) stats() stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := make(map[string]int, len(r.errs))
	for k, v := range r.errs {
		errs[k] = v
	}
	return stats{Completed: len(r.lat) + r.untimed, Failed: r.failed, Acks: r.acks, Errors: errs, First: r.first,
		Lat: append([]time.Duration(nil), r.lat...), DoneAt: append([]time.Time(nil), r.doneAt...), LastAck: r.lastAck, LastDone: r.lastDone, MaxLag: r.maxLag}
}

// openLoop runs n ops on a fixed schedule: op i is due at t0 + i/rate,
// whatever happened to the ops before it, and its latency is measured
// from that intended start. A harness or engine that falls behind thus
// shows up in the latency (no coordinated omission): nothing waits for a
// free slot.
type openLoop struct {
	n    int
	rate float64 // ops per second
	// start, if set, is the schedule's origin (default: when run begins),
	// so that a caller can line other events up with it.
	start time.Time
	// now and sleepUntil default to the wall clock; tests replace them.
	now        func() time.Time
	sleepUntil func(ctx context.Context, t time.Time) error
}

// due is op i's intended start.
func (l *openLoop) due(t0 time.Time, i int) time.Time {
	return t0.Add(time.Duration(float64(i) * float64(time.Second) / l.rate))
}

func (l *openLoop) run(ctx context.Context, o op) (*recorder, time.Time) {
	now, sleep := l.now, l.sleepUntil
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepUntil
	}
	rec := newRecorder(now)
	var wg sync.WaitGroup
	t0 := now()
	if !l.start.IsZero() {
		t0 = l.start
	}
	for i := 0; i < l.n; i++ {
		due := l.due(t0, i)
		if err := sleep(ctx, due); err != nil {
			rec.fail(fail("start", err), l.n-i) // never issued: counted, not dropped
			break
		}
		rec.lag(now().Sub(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := o(ctx, i, rec.acked); err != nil {
				rec.fail(err, 1)
				return
			}
			rec.ok(now().Sub(due))
		}()
	}
	wg.Wait()
	return rec, t0
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closedLoop runs n ops with at most inFlight at a time (all at once if
// inFlight >= n); an op's latency is measured from its own start, after
// it got a slot. It measures throughput, not latency under a given load.
type closedLoop struct {
	n, inFlight int
}

func (l *closedLoop) run(ctx context.Context, o op) (*recorder, time.Time) {
	rec := newRecorder(nil)
	sem := make(chan struct{}, max(1, min(l.inFlight, l.n)))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < l.n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			rec.fail(fail("start", ctx.Err()), l.n-i)
			wg.Wait()
			return rec, t0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			if err := o(ctx, i, rec.acked); err != nil {
				rec.fail(err, 1)
				return
			}
			rec.ok(time.Since(start))
		}()
	}
	wg.Wait()
	return rec, t0
}

// fill puts a recorder's figures into res: counts, failures by kind,
// latency percentiles, and for an open loop the achieved start rate.
func (s stats) fill(res *Result, t0 time.Time) {
	res.Completed, res.Failed, res.Errors = s.Completed, s.Failed, s.Errors
	if s.First != nil {
		res.FirstError = s.First.Error()
	}
	res.P50Ms, res.P90Ms, res.P99Ms = percentile(s.Lat, 50), percentile(s.Lat, 90), percentile(s.Lat, 99)
	res.MaxMs = percentile(s.Lat, 100)
	if res.Mode == modeOpen {
		// Each start holds one slot of the schedule (1/rate): on time,
		// n starts take n slots and the achieved rate is the offered one.
		if span := s.LastAck.Sub(t0).Seconds() + 1/res.OfferedPerS; s.Acks > 0 && res.OfferedPerS > 0 {
			res.AchievedPerS = float64(s.Acks) / span
		}
		res.MaxIssueLagMs = ms(s.MaxLag)
	}
}

// percentile is the p-th percentile (nearest rank) of d in milliseconds,
// 0 for no samples. Every sample counts, zero durations too.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	xs := append([]time.Duration(nil), d...)
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	i = max(0, min(i, len(xs)-1))
	return ms(xs[i])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ErrorsLine formats failures by kind (Result.Errors) for people.
func ErrorsLine(errs map[string]int) string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, errs[k])
	}
	return strings.Join(parts, ", ")
}
