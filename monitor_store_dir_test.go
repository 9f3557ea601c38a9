package netherite

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

// testMonitorRecord is a record with every field set (times in UTC, no
// monotonic reading: what comes back from storage).
func testMonitorRecord(version uint64, monitor string) *loadmonitor.Record {
	at := time.Date(2026, 12, 1, 2, 30, 0, 123456789, time.UTC)
	return &loadmonitor.Record{
		Version: version, Monitor: monitor, Updated: at,
		Owners: []string{monitor, "host-b", ""},
		Hosts: []loadmonitor.HostInfo{
			{ID: monitor, ClientID: "c-a", LastReport: at.Add(-time.Second), Live: true, Running: []int{0}},
			{ID: "host-b", ClientID: "c-b", LastReport: at.Add(-20 * time.Second), Stopping: true, Running: []int{1, 2}},
		},
		Loads: []transport.PartitionLoad{
			{Partition: 0, WorkItems: 3, Activities: 4, Timers: 5, NextTimer: at.Add(time.Minute), Outbox: 6, InputLag: 7,
				Events: 8, CacheBytes: 9, Instances: 10, Latency: "ILMH"},
			{Partition: 1, Latency: "I"},
			{Partition: 2},
		},
		Recommendation: loadmonitor.Recommendation{Hosts: 2, Reason: "backlog"},
		Position:       42,
	}
}

// openDirHub opens (creating) a task hub in dir, as one host does.
func openDirHub(t *testing.T, dir string, partitions int) *dirStore {
	t.Helper()
	d := &dirStore{dir: dir}
	if _, err := d.openTaskHub(context.Background(), "hub", partitions); err != nil {
		t.Fatal(err)
	}
	return d
}

func dirMonitorOf(t *testing.T, d *dirStore) monitorStore {
	t.Helper()
	m, err := d.monitor()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMonitorDirFlockPerOpen: flock locks belong to open files, so two
// opens of one lock file conflict inside one process (the in-process
// tests with several hosts rely on it); closing one lets the other in.
func TestMonitorDirFlockPerOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	a, err := lockPath(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := lockPath(context.Background(), path, 0); !errors.Is(err, errLockBusy) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("second open of a held lock file in one process: %v", err)
	}
	a.Close()
	b, err := lockPath(context.Background(), path, 0)
	if err != nil {
		t.Fatalf("after the holder closed it: %v", err)
	}
	b.Close()
}

// TestMonitorDirLease: two hosts contend for a directory's load monitor;
// one holds it, the other waits and takes it within a poll of its
// release; only the holder writes; records round-trip; a released holder
// is refused with errMonitorLeaseLost.
func TestMonitorDirLease(t *testing.T) {
	dir := t.TempDir()
	ma := dirMonitorOf(t, openDirHub(t, dir, 3))
	mb := dirMonitorOf(t, openDirHub(t, dir, 3))
	ctx := context.Background()

	if rec, err := mb.readRecord(ctx); rec != nil || err != nil {
		t.Fatalf("record before any write: %+v, %v", rec, err)
	}
	la, err := ma.acquireMonitor(ctx, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
	_, err = mb.acquireMonitor(short, "host-b")
	cancel()
	if !errors.Is(err, errLockBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second host while the first holds the monitor: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(ma.(*dirMonitor).dir, monitorLockName)); strings.TrimSpace(string(got)) != "host-a" {
		t.Fatalf("lock file names %q, want host-a", got)
	}

	recA := testMonitorRecord(1, "host-a")
	if err := la.writeRecord(ctx, recA); err != nil {
		t.Fatal(err)
	}
	if got, err := mb.readRecord(ctx); err != nil || !reflect.DeepEqual(got, recA) {
		t.Fatalf("record read back:\n%+v, %v\nwant\n%+v", got, err, recA)
	}
	select {
	case <-la.lost():
		t.Fatal("a held directory lock reports lost")
	default:
	}

	type result struct {
		l   monitorLease
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l, err := mb.acquireMonitor(ctx, "host-b")
		got <- result{l, err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond) // b is polling
	released := time.Now()
	if err := la.release(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("waiting host after the release: %v", r.err)
	}
	handover := r.at.Sub(released)
	t.Logf("directory monitor lock handover: %v", handover)
	if handover > 2*time.Second {
		t.Fatalf("handover took %v (poll every %v)", handover, monitorLockPoll)
	}
	if err := la.writeRecord(ctx, testMonitorRecord(9, "host-a")); !errors.Is(err, errMonitorLeaseLost) {
		t.Fatalf("write after release: %v", err)
	}
	recB := testMonitorRecord(2, "host-b")
	if err := r.l.writeRecord(ctx, recB); err != nil {
		t.Fatal(err)
	}
	if got, err := ma.readRecord(ctx); err != nil || !reflect.DeepEqual(got, recB) {
		t.Fatalf("record after handover: %+v, %v", got, err)
	}
	// Abandoning (a killed host) drops the lock as well.
	if err := abandonMonitor(r.l); err != nil {
		t.Fatal(err)
	}
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	lc, err := ma.acquireMonitor(short, "host-c")
	if err != nil {
		t.Fatalf("after the holder was abandoned: %v", err)
	}
	if err := r.l.writeRecord(ctx, recA); !errors.Is(err, errMonitorLeaseLost) {
		t.Fatalf("write after abandon: %v", err)
	}
	lc.release()
}

// TestMonitorDirCorruptRecord: a record that does not decode is an error,
// not an empty record.
func TestMonitorDirCorruptRecord(t *testing.T) {
	d := openDirHub(t, t.TempDir(), 1)
	m := dirMonitorOf(t, d)
	if err := os.MkdirAll(m.(*dirMonitor).dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.(*dirMonitor).dir, monitorRecordName), []byte("\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rec, err := m.readRecord(context.Background()); err == nil {
		t.Fatalf("corrupt record read as %+v", rec)
	}
}

// TestMonitorDirNeedsHub: the store must know the task hub.
func TestMonitorDirNeedsHub(t *testing.T) {
	if _, err := (&dirStore{dir: t.TempDir()}).monitor(); err == nil {
		t.Fatal("monitor() without a task hub")
	}
	// taskHubInfo suffices (a status reader creates nothing).
	dir := t.TempDir()
	openDirHub(t, dir, 1)
	d := &dirStore{dir: dir}
	if _, err := d.taskHubInfo(context.Background(), "hub"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.monitor(); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if _, err := (&dirStore{dir: missing}).taskHubInfo(context.Background(), "hub"); err == nil {
		t.Fatal("task hub info of a missing directory")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("taskHubInfo created %s: %v", missing, err)
	}
}

// TestMonitorDirDeleteTaskHub: deleting a task hub is refused while a host
// runs its load monitor, and works once it released it.
func TestMonitorDirDeleteTaskHub(t *testing.T) {
	dir := t.TempDir()
	d := openDirHub(t, dir, 2)
	l, err := dirMonitorOf(t, d).acquireMonitor(context.Background(), "host-a")
	if err != nil {
		t.Fatal(err)
	}
	p := d.hub
	if err := d.deleteTaskHub(context.Background(), p); err == nil || !strings.Contains(err.Error(), "load monitor") {
		t.Fatalf("delete while the monitor is held: %v", err)
	}
	l.release()
	if err := d.deleteTaskHub(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, p.TaskHubGUID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("task hub directory left: %v", err)
	}
}

func openDirPartition(ctx context.Context, d *dirStore, i int, wait bool) (partitionStorage, error) {
	ps, _, err := d.openPartition(ctx, i, partitionOpen{count: d.hub.PartitionCount, cache: 4 << 20, owned: func() {}, wait: wait})
	return ps, err
}

// TestPartitionOpenWaitDir: without wait, opening a partition another host
// holds fails at once; with wait it is acquired within a poll of the
// holder's close, or of its abandon (a killed host); a wait ends with ctx.
func TestPartitionOpenWaitDir(t *testing.T) {
	dir := t.TempDir()
	a, b := openDirHub(t, dir, 2), openDirHub(t, dir, 2)
	ctx := context.Background()
	pa, err := openDirPartition(ctx, a, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := openDirPartition(ctx, b, 1, false); err == nil || !strings.Contains(err.Error(), "in use by another host") {
		t.Fatalf("open of a held partition without wait: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("open without wait took %v", d)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = openDirPartition(short, b, 1, true)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting open whose ctx ends: %v", err)
	}

	handover := func(giveUp func() error) time.Duration {
		t.Helper()
		type result struct {
			ps  partitionStorage
			err error
			at  time.Time
		}
		got := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			ps, err := openDirPartition(ctx, b, 1, true)
			got <- result{ps, err, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond)
		at := time.Now()
		if err := giveUp(); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatalf("waiting open: %v", r.err)
		}
		pa = r.ps
		return r.at.Sub(at)
	}
	d1 := handover(pa.close)
	// b holds it now; a waits and takes it back when b "dies".
	a, b = b, a
	d2 := handover(pa.abandon)
	t.Logf("partition lock handover: close %v, abandon %v", d1, d2)
	if d1 > 3*time.Second || d2 > 3*time.Second {
		t.Fatalf("handover took %v / %v (poll every %v)", d1, d2, lockPollEvery)
	}
	pa.close()
}

// TestPartitionAbandonDirWritesNothing: an abandoned partition writes no
// more documents (a killed process writes nothing), and its lock is free
// for the next owner.
func TestPartitionAbandonDirWritesNothing(t *testing.T) {
	dir := t.TempDir()
	d := openDirHub(t, dir, 1)
	ctx := context.Background()
	ps, err := openDirPartition(ctx, d, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	meta := ps.metaStore()
	if err := ps.abandon(); err != nil {
		t.Fatal(err)
	}
	if err := meta.WriteFile("after-abandon.json", []byte("x")); err == nil {
		t.Fatal("an abandoned partition's metadata store wrote")
	}
	if names, _ := meta.List("after"); len(names) != 0 {
		t.Fatalf("documents written after abandon: %v", names)
	}
	ps2, err := openDirPartition(ctx, openDirHub(t, dir, 1), 0, false)
	if err != nil {
		t.Fatalf("reopen after abandon: %v", err)
	}
	ps2.close()
}

// BenchmarkPartitionHandoverDir: a partition's storage moves between two
// hosts sharing a directory: the owner closes it while the other waits in
// openPartition (partitionOpen.wait); the time from the close's start to
// the new owner having opened and recovered it (storage only).
func BenchmarkPartitionHandoverDir(b *testing.B) {
	dir := b.TempDir()
	stores := []*dirStore{{dir: dir}, {dir: dir}}
	for _, s := range stores {
		if _, err := s.openTaskHub(context.Background(), "hub", 1); err != nil {
			b.Fatal(err)
		}
	}
	held, err := openDirPartition(context.Background(), stores[0], 0, false)
	if err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := openPartitionAsync(stores[(i+1)%2], true, time.Minute)
		time.Sleep(rand.N(100 * time.Millisecond)) // the waiter polls: at a random phase
		at := time.Now()
		if err := held.close(); err != nil {
			b.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			b.Fatal(r.err)
		}
		ds = append(ds, r.at.Sub(at))
		held = r.v
	}
	b.StopTimer()
	held.close()
	handoverStats(b, ds)
}
