package netherite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// An elastic acquire waits while another host holds the partition, and
// release cancels it at once (the placement moved the partition away
// before it was taken); the holder keeps running it.
func TestElasticAcquireCancelled(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	h, err := Start(context.Background(), Options{Elastic: true, HostID: "a", SharedTransport: tr, Storage: t.TempDir(),
		PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for h.Partitions()[0].State != PartitionOK {
		if time.Now().After(deadline) {
			t.Fatalf("partition 0 not running: %+v", h.Partitions()[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A second manager of partition 0 (as another host's would be): its
	// acquire waits on the lock the first one holds.
	m := newPartitionManager(h.env, 0)
	m.startElastic()
	time.Sleep(300 * time.Millisecond) // several lock polls
	if s := m.Status(); s.State == PartitionOK || m.ended() {
		t.Fatalf("second manager took a held partition: %+v (ended %v)", s, m.ended())
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.release(ctx); err != nil {
		t.Fatalf("release of a waiting acquire: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("release of a waiting acquire took %v", took)
	}
	if !m.ended() || m.Status().State != PartitionNotOwned {
		t.Fatalf("after release: ended %v, %+v", m.ended(), m.Status())
	}
	if s := h.Partitions()[0]; s.State != PartitionOK {
		t.Fatalf("the holder lost partition 0: %+v", s)
	}
}

// lossyStore loses the lease of partition 0 once, on demand.
type lossyStore struct {
	taskHubStore
	mu    sync.Mutex
	opens int
	lose  chan struct{}
}

type lossyPartition struct {
	partitionStorage
	lost <-chan struct{}
}

func (p *lossyPartition) lease() (<-chan struct{}, func() error) {
	return p.lost, func() error { return errors.New("test: lease lost") }
}

func (s *lossyStore) openPartition(ctx context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error) {
	ps, st, err := s.taskHubStore.openPartition(ctx, i, o)
	if err != nil || i != 0 {
		return ps, st, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if s.opens == 1 {
		return &lossyPartition{partitionStorage: ps, lost: s.lose}, st, nil
	}
	return ps, st, nil
}

// In elastic mode a lost lease ends the partition's manager; the
// placement decides: still placed here, the partition is taken again by a
// new manager.
func TestElasticLeaseLostPlacementDecides(t *testing.T) {
	ls := &lossyStore{lose: make(chan struct{})}
	testWrapStore = func(s taskHubStore) taskHubStore { ls.taskHubStore = s; return ls }
	defer func() { testWrapStore = nil }()
	tr := transport.NewMemory(2)
	defer tr.Close()
	h, err := Start(context.Background(), Options{Elastic: true, HostID: "a", SharedTransport: tr, Storage: t.TempDir(),
		PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	waitState := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: partition 0 is %+v", what, h.Partitions()[0])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitState("first run", func() bool { return h.Partitions()[0].State == PartitionOK })
	h.mu.Lock()
	first := h.owned[0]
	h.mu.Unlock()
	close(ls.lose)
	select {
	case <-first.done: // the manager ended on the lost lease
	case <-time.After(10 * time.Second):
		t.Fatalf("the manager did not end when its lease was lost: %+v", first.Status())
	}
	if s := first.Status(); s.State != PartitionNotOwned || s.Err == nil || s.Restarts != 0 {
		t.Fatalf("manager after its lease was lost: %+v", s)
	}
	waitState("taken again", func() bool {
		h.mu.Lock()
		m := h.owned[0]
		h.mu.Unlock()
		return m != nil && m != first && m.Status().State == PartitionOK
	})
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.opens != 2 {
		t.Fatalf("partition 0 opened %d times, want 2", ls.opens)
	}
}

// cuttableStore cuts a host from its storage on demand: the record cannot
// be read, the partitions' leases are lost, opens hang; heal ends it.
type cuttableStore struct {
	taskHubStore
	cutCh  chan struct{}
	healCh chan struct{}
}

func (s *cuttableStore) isCut() bool {
	select {
	case <-s.healCh:
		return false
	default:
	}
	select {
	case <-s.cutCh:
		return true
	default:
		return false
	}
}

func (s *cuttableStore) monitor() (monitorStore, error) {
	ms, err := s.taskHubStore.monitor()
	if err != nil {
		return nil, err
	}
	return &cuttableMonitor{monitorStore: ms, s: s}, nil
}

type cuttableMonitor struct {
	monitorStore
	s *cuttableStore
}

func (m *cuttableMonitor) readRecord(ctx context.Context) (*loadmonitor.Record, error) {
	if m.s.isCut() {
		return nil, errors.New("test: storage unreachable")
	}
	return m.monitorStore.readRecord(ctx)
}

func (s *cuttableStore) openPartition(ctx context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error) {
	if s.isCut() {
		select {
		case <-s.healCh:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	ps, st, err := s.taskHubStore.openPartition(ctx, i, o)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-s.healCh:
		return ps, st, nil
	default:
		return &lossyPartition{partitionStorage: ps, lost: s.cutCh}, st, nil
	}
}

// An elastic host cut off from the task hub's storage leaves the
// placement (its partitions go to the other hosts) and rejoins once it
// reaches storage again.
func TestElasticHostCutFromStorage(t *testing.T) {
	tr := transport.NewMemory(4)
	defer tr.Close()
	dir := t.TempDir()
	opts := func(id string) Options {
		return Options{Elastic: true, HostID: id, SharedTransport: tr, Storage: dir, PartitionCount: 4,
			LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	running := func(h *Host) int {
		n := 0
		for _, s := range h.Partitions() {
			if s.State == PartitionOK {
				n++
			}
		}
		return n
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b, err := Start(context.Background(), opts("b"), durable.NewRegistry()) // b runs the monitor
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	waitFor("b runs all", 10*time.Second, func() bool { return running(b) == 4 })
	cs := &cuttableStore{cutCh: make(chan struct{}), healCh: make(chan struct{})}
	testWrapStore = func(s taskHubStore) taskHubStore { cs.taskHubStore = s; return cs }
	a, err := Start(context.Background(), opts("a"), durable.NewRegistry())
	testWrapStore = nil
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	waitFor("2/2", 10*time.Second, func() bool { return running(a) == 2 && running(b) == 2 })

	close(cs.cutCh)
	cutAt := time.Now()
	waitFor("a's partitions on b", time.Second+5*time.Second, func() bool { return running(a) == 0 && running(b) == 4 })
	t.Logf("cut host's partitions moved after %v", time.Since(cutAt).Round(time.Millisecond))
	rec, err := b.Scale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range rec.Hosts {
		if h.ID == "a" && h.Live {
			t.Fatalf("the cut host is live in the record: %+v", rec.Hosts)
		}
	}

	close(cs.healCh)
	waitFor("a back", 10*time.Second, func() bool { return running(a) == 2 && running(b) == 2 })
}

// An elastic host forgets the managers of partitions that moved away (a
// long-lived host sees many moves), and keeps their statistics.
func TestElasticMovesForgetEndedManagers(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	h := startOneElasticHost(t, tr)
	defer h.Stop(context.Background())
	waitPartition0(t, h, "first run", PartitionOK)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := h.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID("stats!0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Client().WaitForCompletion(ctx, id); err != nil {
		t.Fatal(err)
	}
	writes, events := h.Stats()
	if writes == 0 || events == 0 {
		t.Fatalf("no log statistics after an orchestration: %d writes, %d events", writes, events)
	}
	// Versions far above the monitor's: these placements win.
	for i := range 10 {
		v := uint64(1_000_000 + 2*i)
		h.coord.offer(v, []string{"elsewhere", "a"})
		waitPartition0(t, h, fmt.Sprintf("move %d away", i), PartitionNotOwned)
		h.coord.offer(v+1, []string{"a", "a"})
		waitPartition0(t, h, fmt.Sprintf("move %d back", i), PartitionOK)
	}
	if n := len(h.allManagers()); n > 3 {
		t.Errorf("%d partition managers kept after 10 moves of one partition of 2, want at most 3", n)
	}
	if w, e := h.Stats(); w < writes || e < events {
		t.Errorf("statistics went back after the moves: %d writes, %d events; before %d, %d", w, e, writes, events)
	}
}

// afterStop records the log lines a host writes after its Stop returned.
type afterStop struct {
	slog.Handler
	mu      sync.Mutex
	stopped bool
	late    []string
}

func (a *afterStop) Handle(ctx context.Context, r slog.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		a.late = append(a.late, r.Message)
	}
	return nil
}

func (a *afterStop) WithAttrs([]slog.Attr) slog.Handler { return a }
func (a *afterStop) WithGroup(string) slog.Handler      { return a }

// Stop returns only once the releases under way have ended: nothing of
// the host runs (or logs) after it.
func TestElasticStopWaitsForReleases(t *testing.T) {
	tr := transport.NewMemory(4)
	defer tr.Close()
	for i := range 5 {
		as := &afterStop{Handler: slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})}
		h, err := Start(context.Background(), Options{Elastic: true, HostID: fmt.Sprintf("a%d", i), SharedTransport: tr,
			Storage: t.TempDir(), PartitionCount: 4, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
			Logger: slog.New(as)}, durable.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for h.Partitions()[3].State != PartitionOK {
			if time.Now().After(deadline) {
				t.Fatalf("not running: %+v", h.Partitions())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Move every partition away, and stop while they are released.
		h.coord.offer(1_000_000, []string{"x", "x", "x", "x"})
		for {
			h.coord.mu.Lock()
			n := len(h.coord.leaving)
			h.coord.mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err := h.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		as.mu.Lock()
		as.stopped = true
		as.mu.Unlock()
		time.Sleep(100 * time.Millisecond) // what still runs would log now
		as.mu.Lock()
		late := slices.Clone(as.late)
		as.mu.Unlock()
		if len(late) > 0 {
			t.Fatalf("the host logged after Stop returned: %q", late)
		}
	}
}

// otherFormatStore's load monitor record is of a format this build does
// not read (another netherite version wrote it).
type otherFormatStore struct{ taskHubStore }

func (s *otherFormatStore) monitor() (monitorStore, error) {
	ms, err := s.taskHubStore.monitor()
	if err != nil {
		return nil, err
	}
	return otherFormatMonitor{ms}, nil
}

type otherFormatMonitor struct{ monitorStore }

func (otherFormatMonitor) readRecord(context.Context) (*loadmonitor.Record, error) {
	return nil, fmt.Errorf("netherite: the load monitor's record: %w 99 (this build reads %d)",
		loadmonitor.ErrFormatVersion, loadmonitor.FormatVersion)
}

// A host that reads a record of another format reached its storage: it
// does not leave the placement as if it were cut off.
func TestElasticOtherRecordFormatIsNotCut(t *testing.T) {
	testWrapStore = func(s taskHubStore) taskHubStore { return &otherFormatStore{s} }
	defer func() { testWrapStore = nil }()
	tr := transport.NewMemory(2)
	defer tr.Close()
	h, err := Start(context.Background(), Options{Elastic: true, HostID: "a", SharedTransport: tr, Storage: t.TempDir(),
		PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	c := h.coord
	c.mu.Lock()
	c.storageOK = time.Now().Add(-2 * c.timeout) // the record has been unreadable for long
	c.mu.Unlock()
	c.poll()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		t.Fatal("a host that reads a record of another format left the placement as if cut off from storage")
	}
}

// messages records the messages logged at Error.
type messages struct {
	slog.Handler
	mu   sync.Mutex
	errs []string
}

func (m *messages) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		m.mu.Lock()
		m.errs = append(m.errs, r.Message)
		m.mu.Unlock()
	}
	return nil
}

func (m *messages) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m *messages) WithGroup(string) slog.Handler      { return m }

func (m *messages) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.errs)
}

func (m *messages) has(sub string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.errs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Two hosts given the same HostID are told (the load monitor takes them
// for one host).
func TestElasticDuplicateHostID(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	dir := t.TempDir()
	logs := &messages{Handler: slog.NewTextHandler(io.Discard, nil)}
	for range 2 {
		h, err := Start(context.Background(), Options{Elastic: true, HostID: "twin", SharedTransport: tr, Storage: dir,
			PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
			Logger: slog.New(logs)}, durable.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop(context.Background())
	}
	deadline := time.Now().Add(15 * time.Second)
	for !logs.has("Options.HostID") {
		if time.Now().After(deadline) {
			t.Fatalf("two hosts with one id ran 15 s, and neither said so; errors logged: %q", logs.all())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A host restarted with its id (Options.HostID set) is not taken for a
// twin: the record's entry of its previous process is replaced by its
// own reports.
func TestElasticRestartSameHostIDIsNotTwin(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	dir := t.TempDir()
	logs := &messages{Handler: slog.NewTextHandler(io.Discard, nil)}
	opts := Options{Elastic: true, HostID: "same", SharedTransport: tr, Storage: dir,
		PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second, Logger: slog.New(logs)}
	first, err := Start(context.Background(), opts, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for first.Partitions()[1].State != PartitionOK {
		if time.Now().After(deadline) {
			t.Fatalf("first: %+v", first.Partitions())
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.kill()
	second, err := Start(context.Background(), opts, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop(context.Background())
	// Polls over three host timeouts (the check starts after one).
	for range 3 {
		c := second.coord
		for start := time.Now(); time.Since(start) < time.Second; {
			c.poll()
			time.Sleep(100 * time.Millisecond)
		}
	}
	if logs.has("Options.HostID") {
		t.Fatalf("a restarted host was taken for a twin: %q", logs.all())
	}
}

// A request in flight when its partition moves is sent again soon after
// the move, not an attempt timeout later: the partition may have taken it
// in and stopped before its answer went out.
func TestElasticRequestResentAfterMove(t *testing.T) {
	old := clientAttemptTimeout
	clientAttemptTimeout = time.Minute
	defer func() { clientAttemptTimeout = old }()
	mem := transport.NewMemory(2)
	defer mem.Close()
	var dropped sync.Once
	var drops atomic.Int32
	tr := transport.NewFaulty(mem, transport.FaultConfig{Clients: true, Script: func(dest int, pk *transport.Packet) transport.Fault {
		fault := transport.FaultNone
		if dest == -1 && pk.Response != nil {
			dropped.Do(func() { fault = transport.FaultDrop; drops.Add(1) }) // the first answer is lost
		}
		return fault
	}})
	h := startOneElasticHost(t, tr)
	defer h.Stop(context.Background())
	// The placement is given here (the faulty transport has no load
	// monitor queue); versions far above any monitor's.
	h.coord.offer(1_000_000, []string{"a", "a"})
	waitPartition0(t, h, "placed", PartitionOK)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := make(chan error, 1)
	go func() {
		_, err := h.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID("moved!0"))
		started <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for drops.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the start's answer never went out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The partition moves away and back.
	h.coord.offer(1_000_001, []string{"b", "a"})
	waitPartition0(t, h, "moved away", PartitionNotOwned)
	h.coord.offer(1_000_002, []string{"a", "a"})
	begin := time.Now()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("answered %v after the partition came back", time.Since(begin).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("a start whose answer was lost in a move was not answered within 15 s of the move (attempt timeout 1 min)")
	}
}

// A wait sent just after its partition moved (so perhaps to the old owner
// as it stops, which forgets it) is re-armed 1, 3 and 8 s later, not only
// after clientWaitRearm (30 s).
func TestElasticWaitSentDuringMoveRearmed(t *testing.T) {
	mem := transport.NewMemory(2)
	defer mem.Close()
	var lost sync.Once
	var drops atomic.Int32
	var dropWaits atomic.Bool
	tr := transport.NewFaulty(mem, transport.FaultConfig{Clients: true, Script: func(dest int, pk *transport.Packet) transport.Fault {
		fault := transport.FaultNone
		if dest == 0 && dropWaits.Load() && pk.Request != nil && pk.Request.Kind == transport.RequestWaitCompletion {
			lost.Do(func() { fault = transport.FaultDrop; drops.Add(1) }) // the first wait is lost in the move
		}
		return fault
	}})
	h := startOneElasticHost(t, tr)
	defer h.Stop(context.Background())
	h.coord.offer(1_000_000, []string{"a", "a"})
	waitPartition0(t, h, "placed", PartitionOK)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := "waiter!0"
	c := h.Client()
	if _, err := c.StartOrchestration(ctx, samples.WaitForEvent, nil, durable.WithStartInstanceID(id)); err != nil {
		t.Fatal(err)
	}
	// The partition moves away and back; then the wait is sent, and lost.
	h.coord.offer(1_000_001, []string{"b", "a"})
	waitPartition0(t, h, "moved away", PartitionNotOwned)
	h.coord.offer(1_000_002, []string{"a", "a"})
	waitPartition0(t, h, "back", PartitionOK)
	dropWaits.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitForCompletion(ctx, id)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for drops.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the wait was never sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.RaiseEvent(ctx, id, "Approval", "approved"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a wait lost just after its partition moved was not re-armed within 10 s")
	}
}

// startOneElasticHost starts elastic host "a" alone on tr: 2 partitions in
// a fresh directory, 100 ms load reports. The caller stops it.
func startOneElasticHost(t *testing.T, tr transport.Transport) *Host {
	t.Helper()
	r := durable.NewRegistry()
	samples.Register(r)
	h, err := Start(context.Background(), Options{Elastic: true, HostID: "a", SharedTransport: tr, Storage: t.TempDir(),
		PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitPartition0 waits (10 s at most) until h's partition 0 is in state want.
func waitPartition0(t *testing.T, h *Host, what string, want PartitionState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Partitions()[0].State != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: partition 0 is %+v, want %s", what, h.Partitions()[0], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
