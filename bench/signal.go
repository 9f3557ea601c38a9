package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// DefaultEntities is the number of counter entities of entity-signal.
const DefaultEntities = 64

// Samples are the raw figures of a run, for plots: the latency of each
// completed unit, and when each completed (from the run's start).
type Samples struct {
	Latencies []time.Duration
	Done      []time.Duration
}

func newSamples(st stats, t0 time.Time) *Samples {
	s := &Samples{Latencies: st.Lat, Done: make([]time.Duration, len(st.DoneAt))}
	for i, t := range st.DoneAt {
		s.Done[i] = t.Sub(t0)
	}
	return s
}

// runEntitySignal sends n "add 1" signals, spread round-robin over the
// counter entities, with at most the closed loop's cap of sends in
// flight, and reads the counters back until they hold every signal. A
// signal completes when a read shows its entity's count covering it, so
// completion is measured on the entities themselves, not on the sends.
// Each counter is read until it is complete, with a back-off while it
// does not move, so that the reads stay few next to the signals.
func runEntitySignal(ctx context.Context, c durable.Client, cfg Config, res *Result, prog *progress) (*recorder, time.Time, error) {
	ents := cfg.Entities
	if ents <= 0 {
		ents = DefaultEntities
	}
	ents = min(ents, cfg.N)
	// Keys are fresh per run so that a reused task hub cannot mix runs.
	run := time.Now().UnixNano() % 1e9
	id := func(e int) core.EntityID { return core.NewEntityID("BenchAccount", fmt.Sprintf("ctr%d-%d", run, e)) }
	want := make([]int, ents)
	for i := 0; i < cfg.N; i++ {
		want[i%ents]++
	}
	res.Mode, res.LatencyFrom, res.InFlightCap = modeClosed, "", inFlightCap(cfg)
	rec := newRecorder(nil)
	t0 := time.Now()
	// Send.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		sem := make(chan struct{}, max(1, res.InFlightCap))
		var wg sync.WaitGroup
		defer wg.Wait()
		for i := 0; i < cfg.N; i++ {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				rec.fail(fail("signal", ctx.Err()), cfg.N-i) // never sent: counted, not dropped
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := c.SignalEntity(ctx, id(i%ents), "add", 1); err != nil {
					rec.fail(fail("signal", err), 1)
					return
				}
				rec.acked()
			}()
		}
	}()
	// Read back until every counter holds its signals, or the sends are
	// over with failures and nothing moved for a while (what failed to
	// send is never processed).
	seen := make([]int, ents)
	processed, pending := 0, ents
	wait := 10 * time.Millisecond
	lastMove := time.Now()
	for pending > 0 {
		for e := 0; e < ents && ctx.Err() == nil; e++ {
			if seen[e] >= want[e] {
				continue
			}
			m, err := c.GetEntity(ctx, id(e), true)
			if err != nil {
				continue // not created yet (no signal processed), or ctx done
			}
			var n int
			if err := m.ReadState(&n); err != nil {
				return rec, t0, fmt.Errorf("entity-signal: read %v: %w", id(e), err)
			}
			for ; seen[e] < n && seen[e] < want[e]; seen[e]++ {
				rec.okUntimed()
				prog.add()
				processed++
				lastMove = time.Now()
				wait = 10 * time.Millisecond
			}
			if seen[e] >= want[e] {
				pending--
			}
		}
		if pending == 0 {
			break
		}
		select {
		case <-sent:
			if f := rec.stats().Failed; f > 0 && (processed+f >= cfg.N || time.Since(lastMove) > 5*time.Second) {
				<-sent
				return rec, t0, nil
			}
		default:
		}
		wait = min(2*wait, time.Second)
		if err := sleepUntil(ctx, time.Now().Add(wait)); err != nil {
			<-sent
			rec.fail(fail("processed", err), max(0, cfg.N-processed-rec.stats().Failed))
			return rec, t0, nil
		}
	}
	<-sent
	return rec, t0, nil
}
