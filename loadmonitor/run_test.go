package loadmonitor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// runHarness runs Run over a memory transport, keeping the records it
// writes.
type runHarness struct {
	t   *testing.T
	mem *transport.Memory

	mu      sync.Mutex
	records []*Record
	fail    error // Write returns it once set
	wrote   chan struct{}

	tick   time.Duration
	cancel context.CancelFunc
	done   chan error
}

func startRun(t *testing.T, partitions int, prev *Record) *runHarness {
	return startRunTick(t, partitions, prev, 20*time.Millisecond)
}

func startRunTick(t *testing.T, partitions int, prev *Record, tick time.Duration) *runHarness {
	t.Helper()
	h := &runHarness{t: t, mem: transport.NewMemory(partitions), wrote: make(chan struct{}, 1), tick: tick}
	t.Cleanup(h.mem.Close)
	h.start(partitions, prev)
	return h
}

func (h *runHarness) start(partitions int, prev *Record) {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	cfg := RunConfig{
		Monitor: Config{Partitions: partitions, Self: "mon", HostTimeout: 2 * time.Second},
		Prev:    prev,
		Receive: h.mem.ReceiveLoadMonitor,
		Write: func(ctx context.Context, rec *Record) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.fail != nil {
				return h.fail
			}
			h.records = append(h.records, rec)
			select {
			case h.wrote <- struct{}{}:
			default:
			}
			return nil
		},
		Send: func(clientID string, u *transport.PlacementUpdate) error {
			return h.mem.SendToClient(clientID, &transport.Packet{Placement: u})
		},
		Tick:   h.tick,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	done, finished := make(chan error, 1), make(chan struct{})
	h.done = done
	go func() {
		done <- Run(ctx, cfg)
		close(finished)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-finished
	})
}

func (h *runHarness) report(r *transport.LoadReport) {
	h.t.Helper()
	if err := h.mem.SendToLoadMonitor(&transport.Packet{Load: r}); err != nil {
		h.t.Fatal(err)
	}
}

// waitRecord waits (generously: the condition, not the time, is tested)
// for a written record that satisfies ok.
func (h *runHarness) waitRecord(what string, ok func(*Record) bool) *Record {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		h.mu.Lock()
		for _, r := range h.records {
			if ok(r) {
				h.mu.Unlock()
				return r
			}
		}
		h.mu.Unlock()
		select {
		case <-h.wrote:
		case err := <-h.done:
			h.t.Fatalf("waiting for %s: Run returned %v", what, err)
		case <-deadline:
			h.t.Fatalf("no record with %s", what)
		}
	}
}

func listen(t *testing.T, mem *transport.Memory, client string) <-chan *transport.Packet {
	t.Helper()
	ch, stop, err := mem.ListenClient(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return ch
}

// waitPlacement waits for a placement that satisfies ok.
func waitPlacement(t *testing.T, ch <-chan *transport.Packet, what string, ok func(*transport.PlacementUpdate) bool) *transport.PlacementUpdate {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case p := <-ch:
			if p.Placement != nil && ok(p.Placement) {
				return p.Placement
			}
		case <-deadline:
			t.Fatalf("no placement with %s", what)
		}
	}
}

func count(owners []string, host string) int {
	n := 0
	for _, o := range owners {
		if o == host {
			n++
		}
	}
	return n
}

func TestRunPlacesAndFollowsHosts(t *testing.T) {
	h := startRun(t, 6, nil)
	ca := listen(t, h.mem, "client-a")
	cb := listen(t, h.mem, "client-b")
	h.report(&transport.LoadReport{Host: "a", ClientID: "client-a", At: time.Now()})
	u := waitPlacement(t, ca, "all on a", func(u *transport.PlacementUpdate) bool { return count(u.Owners, "a") == 6 })
	if u.Monitor != "mon" {
		t.Fatalf("placement from monitor %q", u.Monitor)
	}
	h.report(&transport.LoadReport{Host: "b", ClientID: "client-b", At: time.Now()})
	split := func(u *transport.PlacementUpdate) bool { return count(u.Owners, "a") == 3 && count(u.Owners, "b") == 3 }
	ub := waitPlacement(t, cb, "3/3 at b", split)
	ua := waitPlacement(t, ca, "3/3 at a", split)
	if ua.Version != ub.Version || !slices.Equal(ua.Owners, ub.Owners) {
		t.Fatalf("a and b got different placements: %+v %+v", ua, ub)
	}
	h.waitRecord("the 3/3 placement", func(r *Record) bool {
		return r.Version == ub.Version && slices.Equal(r.Owners, ub.Owners)
	})

	// b stops: a gets everything, in a new version.
	h.report(&transport.LoadReport{Host: "b", ClientID: "client-b", At: time.Now(), Stopping: true})
	waitPlacement(t, ca, "all on a again", func(u *transport.PlacementUpdate) bool {
		return count(u.Owners, "a") == 6 && u.Version > ub.Version
	})
}

func TestRunDecidesAtOnceOnJoinAndStop(t *testing.T) {
	// With a tick of an hour, only the immediate decisions on a new host
	// and on a stopping host can deliver these placements.
	h := startRunTick(t, 4, nil, time.Hour)
	ca := listen(t, h.mem, "client-a")
	cb := listen(t, h.mem, "client-b")
	h.report(&transport.LoadReport{Host: "a", ClientID: "client-a", At: time.Now()})
	waitPlacement(t, ca, "all on a", func(u *transport.PlacementUpdate) bool { return count(u.Owners, "a") == 4 })
	h.report(&transport.LoadReport{Host: "b", ClientID: "client-b", At: time.Now()})
	u := waitPlacement(t, cb, "2/2", func(u *transport.PlacementUpdate) bool { return count(u.Owners, "b") == 2 })
	h.report(&transport.LoadReport{Host: "a", ClientID: "client-a", At: time.Now(), Stopping: true})
	waitPlacement(t, cb, "all on b", func(v *transport.PlacementUpdate) bool {
		return count(v.Owners, "b") == 4 && v.Version > u.Version
	})
}

func TestRunResendsPlacement(t *testing.T) {
	// The first placement is sent before the client listens (dropped):
	// the resend every tick delivers it.
	h := startRun(t, 2, nil)
	h.report(&transport.LoadReport{Host: "a", ClientID: "client-a", At: time.Now()})
	r := h.waitRecord("a placement", func(r *Record) bool { return r.Version > 0 })
	ca := listen(t, h.mem, "client-a")
	waitPlacement(t, ca, "the resent placement", func(u *transport.PlacementUpdate) bool {
		return u.Version == r.Version && slices.Equal(u.Owners, r.Owners)
	})
}

func TestRunRecordsPositionAndLoads(t *testing.T) {
	h := startRun(t, 2, nil)
	h.report(&transport.LoadReport{Host: "a", ClientID: "client-a", At: time.Now(),
		Partitions: []transport.PartitionLoad{{Partition: 1, WorkItems: 7, Latency: "LLM"}}})
	r := h.waitRecord("the load of partition 1", func(r *Record) bool { return r.Loads[1].WorkItems == 7 })
	if r.Position != 1 {
		t.Fatalf("position %d after one report, want 1", r.Position)
	}
	if len(r.Hosts) != 1 || r.Hosts[0].ID != "a" || !r.Hosts[0].Live || !slices.Equal(r.Hosts[0].Running, []int{1}) {
		t.Fatalf("hosts %+v", r.Hosts)
	}

	// A monitor resuming from this record reads on from its position: a
	// report of a host "old" before it is not seen again.
	h.cancel()
	if err := <-h.done; err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	h.mu.Lock()
	h.records = nil
	h.mu.Unlock()
	h.report(&transport.LoadReport{Host: "c", ClientID: "client-c", At: time.Now()})
	h.start(2, r)
	got := h.waitRecord("c's report", func(r *Record) bool {
		return slices.ContainsFunc(r.Hosts, func(x HostInfo) bool { return x.ID == "c" })
	})
	if got.Position != 2 {
		t.Fatalf("position %d, want 2", got.Position)
	}
	if got.Version < r.Version {
		t.Fatalf("version went back from %d to %d", r.Version, got.Version)
	}
	for _, x := range got.Hosts {
		if x.ID == "a" && !x.Live {
			// a was live in the record: it stays live for a host timeout.
			t.Fatalf("a is not live right after the monitor resumed: %+v", got.Hosts)
		}
	}
}

func TestRunReturnsWriteError(t *testing.T) {
	h := startRun(t, 2, nil)
	h.waitRecord("the first record", func(*Record) bool { return true })
	lost := errors.New("lease lost")
	h.mu.Lock()
	h.fail = lost
	h.mu.Unlock()
	h.report(&transport.LoadReport{Host: "a", ClientID: "client-a", At: time.Now()})
	select {
	case err := <-h.done:
		if !errors.Is(err, lost) {
			t.Fatalf("Run returned %v, want the write error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after Write failed")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	err := Run(context.Background(), RunConfig{Monitor: Config{Partitions: 0, Self: "m"},
		Receive: func(context.Context, uint64) ([]*transport.Packet, uint64, error) { return nil, 0, nil },
		Write:   func(context.Context, *Record) error { return nil },
		Send:    func(string, *transport.PlacementUpdate) error { return nil }})
	if err == nil {
		t.Fatal("Run accepted 0 partitions")
	}
}
