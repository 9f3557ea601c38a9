package loadmonitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// RunConfig is what Run needs: the monitor's configuration, the stored
// record, and the I/O around it.
type RunConfig struct {
	Monitor Config
	// Prev is the stored record to resume from (its Position too); nil:
	// fresh.
	Prev *Record
	// Receive reads the load-monitor queue from a position: the packets
	// and the position after them (transport: ReceiveLoadMonitor). Errors
	// are retried every Tick; one wrapping transport.ErrPositionGone would
	// be retried forever, so an adapter should continue from the oldest
	// position the queue still has instead (lost history is harmless for
	// load reports).
	Receive func(ctx context.Context, from uint64) ([]*transport.Packet, uint64, error)
	// Write persists a record; it fails once the monitor's lease is lost,
	// and then Run returns its error.
	Write func(ctx context.Context, rec *Record) error
	// Send delivers a placement to a host's client, best effort.
	Send func(clientID string, u *transport.PlacementUpdate) error
	// Tick is the period of decisions, writes and re-sends (default 1 s).
	Tick time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnRecord, if set, sees each record written.
	OnRecord func(*Record)
}

type received struct {
	packets []*transport.Packet
	next    uint64
}

// Run is the load monitor: it applies the reports of the load-monitor
// queue, decides at once when a host joins, returns or stops and every
// Tick otherwise, writes the record when it changed (so at least every
// Tick while hosts report), and sends the placement to every live host
// when it changed and again every Tick (updates can be lost). It returns
// nil when ctx ends, or Write's error.
func Run(ctx context.Context, cfg RunConfig) error {
	if cfg.Receive == nil || cfg.Write == nil || cfg.Send == nil {
		return fmt.Errorf("loadmonitor: run: Receive, Write and Send are required")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "loadmonitor", "monitor", cfg.Monitor.Self)
	m, err := New(cfg.Monitor, cfg.Prev)
	if err != nil {
		return err
	}
	from := m.position

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	in := make(chan received, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		receive(rctx, cfg, log, from, in)
	}()

	r := &runner{cfg: cfg, m: m, log: log}
	if err := r.step(ctx, false); err != nil {
		return err
	}
	ticker := time.NewTicker(cfg.Tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-in:
			for _, p := range b.packets {
				if p != nil && p.Load != nil {
					m.Observe(p.Load, cfg.Now())
				}
			}
			m.Advance(b.next)
			if m.Pending() {
				if err := r.step(ctx, false); err != nil {
					return err
				}
			}
		case <-ticker.C:
			if err := r.step(ctx, true); err != nil {
				return err
			}
		}
	}
}

// receive feeds the queue's packets to Run until ctx ends; errors are
// logged and retried a Tick later.
func receive(ctx context.Context, cfg RunConfig, log *slog.Logger, from uint64, in chan<- received) {
	for {
		packets, next, err := cfg.Receive(ctx, from)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, transport.ErrPositionGone) {
			// Retrying cannot help: the transport must continue past
			// history it no longer has (harmless for load reports).
			log.Error("load monitor queue: the position to read from is gone; no reports are applied until the transport skips ahead", "from", from, "err", err)
		} else if err != nil {
			log.Warn("load monitor queue: receive failed; retrying", "from", from, "err", err)
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(cfg.Tick):
			}
			continue
		}
		if next == from && len(packets) == 0 {
			continue
		}
		select {
		case in <- received{packets: packets, next: next}:
		case <-ctx.Done():
			return
		}
		from = next
	}
}

type runner struct {
	cfg     RunConfig
	m       *Monitor
	log     *slog.Logger
	written *Record // the last record written (nil: none yet)
}

// step decides, writes the record if it differs from the last one written
// (apart from Updated), and sends the placement when it changed, or on a
// tick (resend) to every live host.
func (r *runner) step(ctx context.Context, tick bool) error {
	rec, changed := r.m.Decide(r.cfg.Now())
	if r.written == nil || !sameRecord(rec, r.written) {
		if err := r.cfg.Write(ctx, rec); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("loadmonitor: write record version %d: %w", rec.Version, err)
		}
		r.written = rec
		if r.cfg.OnRecord != nil {
			r.cfg.OnRecord(rec)
		}
	}
	if changed {
		r.log.Info("placement changed", "version", rec.Version, "owners", rec.Owners,
			"recommendation", rec.Recommendation.Hosts, "reason", rec.Recommendation.Reason)
	}
	if !changed && !tick {
		return nil
	}
	u := &transport.PlacementUpdate{Version: rec.Version, Owners: rec.Owners, Monitor: rec.Monitor}
	for _, h := range rec.Hosts {
		if !h.Live || h.ClientID == "" {
			continue
		}
		if err := r.cfg.Send(h.ClientID, u); err != nil {
			r.log.Debug("placement not delivered; the next tick resends it", "host", h.ID, "err", err)
		}
	}
	return nil
}

// sameRecord compares records apart from Updated (written only when
// something else changed).
func sameRecord(a, b *Record) bool {
	x, y := *a, *b
	x.Updated, y.Updated = time.Time{}, time.Time{}
	return reflect.DeepEqual(&x, &y)
}
