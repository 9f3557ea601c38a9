package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
)

// moveTimeout bounds one move of the handover benchmark.
const moveTimeout = time.Minute

// RunHandover runs the graceful handover benchmark (see HandoverConfig).
func RunHandover(ctx context.Context, cfg HandoverConfig) (*HandoverResult, error) {
	if cfg.Instances <= 0 {
		cfg.Instances = 10_000
	}
	if cfg.Moves <= 0 {
		cfg.Moves = 100
	}
	if cfg.Storage == "memory" {
		return nil, fmt.Errorf(`bench handover: hosts must share storage: a directory or Azure Storage, not "memory"`)
	}
	if cfg.Storage == "" {
		dir, err := os.MkdirTemp("", "netherite-handover-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Storage = dir
	}
	ec := ElasticConfig{Partitions: 1, Storage: cfg.Storage, Transport: cfg.Transport, EventHubsPrefix: cfg.EventHubsPrefix,
		EventHubsAdminURL: cfg.EventHubsAdminURL, ReportInterval: cfg.ReportInterval, HostTimeout: cfg.HostTimeout}
	base, cleanup, err := elasticOptions(&ec, "handover")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	r := durable.NewRegistry()
	Register(r)
	hs := &hostSet{base: base, r: r, t0: time.Now()} // no line per host start: 100 moves
	defer hs.stopAll()
	res := &HandoverResult{Instances: cfg.Instances}
	t0 := time.Now()

	// The instances: completed orchestrations, all in the one partition.
	a, err := hs.start(ctx, time.Now())
	if err != nil {
		return nil, fmt.Errorf("bench handover: first host: %w", err)
	}
	if err := within(ctx, 2*time.Minute, func(ctx context.Context) error { return waitRunning(ctx, a, 1) }); err != nil {
		return nil, fmt.Errorf("bench handover: first host never ran the partition: %w", err)
	}
	rec, _ := (&closedLoop{n: cfg.Instances, inFlight: 512}).run(ctx, orchestrationOp(a.Client(), "BenchInline", newProgress(cfg.Progress, cfg.Instances)))
	if st := rec.stats(); st.Failed > 0 || st.Completed != cfg.Instances {
		return nil, fmt.Errorf("bench handover: of %d instances %d completed, %d failed (%s): %v", cfg.Instances, st.Completed, st.Failed, ErrorsLine(st.Errors), st.First)
	}
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	b, err := hs.start(ctx, time.Now())
	if err != nil {
		return nil, fmt.Errorf("bench handover: second host: %w", err)
	}
	if err := within(ctx, 2*time.Minute, func(ctx context.Context) error { return waitLive(ctx, a, a.ID(), b.ID()) }); err != nil {
		return nil, fmt.Errorf("bench handover: the load monitor never saw both hosts: %w", err)
	}
	res.SetupSeconds = time.Since(t0).Seconds()
	if cfg.BeforeMoves != nil {
		cfg.BeforeMoves()
	}
	for i := 0; i < cfg.Moves; i++ {
		d, stop, err := hs.move(ctx)
		if err != nil {
			res.summarize()
			return res, fmt.Errorf("bench handover: move %d: %w", i+1, err)
		}
		res.Moves, res.stops = append(res.Moves, d), append(res.stops, stop)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "\rmove %d/%d: %.1fms", i+1, cfg.Moves, ms(d))
		}
	}
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	res.summarize()
	return res, nil
}

// within runs f with a context bounded by d.
func within(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
}

// waitLive waits until the load monitor's record, as h reads it, has
// every host of ids live.
func waitLive(ctx context.Context, h *netherite.Host, ids ...string) error {
	return poll(ctx, 20*time.Millisecond, func() bool {
		rec, err := h.Scale(ctx)
		if err != nil || rec == nil {
			return false
		}
		live := map[string]bool{}
		for _, hi := range rec.Hosts {
			live[hi.ID] = hi.Live
		}
		for _, id := range ids {
			if !live[id] {
				return false
			}
		}
		return true
	})
}

// move stops the host that runs partition 0 (of the two running) and
// times from the Stop call until the other one runs it; then it starts a
// new host in place of the stopped one and waits until the load monitor
// counts it live. It returns the handover time and the Stop call's.
func (s *hostSet) move(ctx context.Context) (handover, stopTook time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, moveTimeout)
	defer cancel()
	var owner, other *netherite.Host
	err = poll(ctx, time.Millisecond, func() bool {
		s.mu.Lock()
		hosts := append([]*netherite.Host(nil), s.hosts...)
		s.mu.Unlock()
		owner, other = nil, nil
		for _, h := range hosts {
			if h.Partitions()[0].State == netherite.PartitionOK {
				if owner != nil {
					return false // two say so: wait until one does
				}
				owner = h
			} else {
				other = h
			}
		}
		return owner != nil && other != nil && len(hosts) == 2
	})
	if err != nil {
		return 0, 0, fmt.Errorf("no single host runs the partition: %w", err)
	}
	stopped := make(chan error, 1)
	t := time.Now()
	go func() { stopped <- s.stop(owner) }()
	err = poll(ctx, time.Millisecond, func() bool { return other.Partitions()[0].State == netherite.PartitionOK })
	handover = time.Since(t)
	stopErr := <-stopped
	stopTook = s.lastEvent().Took
	if err != nil {
		return 0, 0, fmt.Errorf("%s never ran the partition after %s stopped: %w", other.ID(), owner.ID(), err)
	}
	if stopErr != nil {
		return 0, 0, fmt.Errorf("stop %s: %w", owner.ID(), stopErr)
	}
	h, err := s.start(ctx, time.Now())
	if err != nil {
		return 0, 0, fmt.Errorf("restart: %w", err)
	}
	if err := waitLive(ctx, other, h.ID()); err != nil {
		return 0, 0, fmt.Errorf("the load monitor never saw %s: %w", h.ID(), err)
	}
	return handover, stopTook, nil
}

// lastEvent is the newest host event.
func (s *hostSet) lastEvent() HostEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evs[len(s.evs)-1]
}
