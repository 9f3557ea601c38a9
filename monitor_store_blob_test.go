package netherite

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
)

// cutTransport sends requests over HTTP until cut: then every request
// hangs until the connection is restored (and then goes through, if its
// context still allows) or its context ends, as across a network
// partition.
type cutTransport struct {
	client *http.Client
	mu     sync.Mutex
	cut    chan struct{} // non-nil while cut; closed when restored
}

func (c *cutTransport) Do(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut != nil {
		select {
		case <-cut:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return c.client.Do(req)
}

func (c *cutTransport) setCut(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case on && c.cut == nil:
		c.cut = make(chan struct{})
	case !on && c.cut != nil:
		close(c.cut)
		c.cut = nil
	}
}

const testLease = 15 * time.Second

// blobTestHub returns a fresh task hub name in the test account (its
// container is deleted when the test ends).
func blobTestHub(t *testing.T) (conn, hub string) {
	t.Helper()
	conn = blobtest.Connection(t)
	hub = blobtest.ContainerName(t)
	t.Cleanup(func() {
		acct, err := blobstore.NewAccount(conn)
		if err != nil {
			t.Error(err)
			return
		}
		c, _ := acct.TaskHubContainer(hub)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Delete(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return conn, hub
}

// openBlobHub opens the task hub as one host does (with transport, if
// not nil), with 15 s leases.
func openBlobHub(t *testing.T, conn, hub string, transport *cutTransport) *blobStore {
	t.Helper()
	b := &blobStore{connection: conn, leaseDuration: testLease}
	if transport != nil {
		b.acct = &blobstore.AccountOptions{Transport: transport}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.openTaskHub(ctx, hub, 1); err != nil {
		t.Fatal(err)
	}
	return b
}

func blobMonitorOf(t testing.TB, b *blobStore) monitorStore {
	t.Helper()
	m, err := b.monitor()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type acquired[T any] struct {
	v   T
	err error
	at  time.Time
}

// acquireMonitorAsync acquires m's lease in the background, for up to d.
func acquireMonitorAsync(m monitorStore, host string, d time.Duration) chan acquired[monitorLease] {
	ch := make(chan acquired[monitorLease], 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		l, err := m.acquireMonitor(ctx, host)
		ch <- acquired[monitorLease]{l, err, time.Now()}
	}()
	return ch
}

func openPartitionAsync(s taskHubStore, wait bool, d time.Duration) chan acquired[partitionStorage] {
	ch := make(chan acquired[partitionStorage], 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		ps, err := openTestPartition(ctx, s, wait)
		ch <- acquired[partitionStorage]{ps, err, time.Now()}
	}()
	return ch
}

func openTestPartition(ctx context.Context, s taskHubStore, wait bool) (partitionStorage, error) {
	ps, _, err := s.openPartition(ctx, 0, partitionOpen{count: 1, cache: 4 << 20, lease: testLease, owned: func() {}, wait: wait})
	return ps, err
}

// TestMonitorBlobLease: two hosts contend for the load monitor's lease;
// one holds it; the other, waiting, takes it within a poll of its release;
// records round-trip; the released holder's writes fail with
// errMonitorLeaseLost; deleting the task hub is refused while a host holds
// the monitor.
func TestMonitorBlobLease(t *testing.T) {
	t.Parallel()
	conn, hub := blobTestHub(t)
	ma := blobMonitorOf(t, openBlobHub(t, conn, hub, nil))
	sb := openBlobHub(t, conn, hub, nil)
	mb := blobMonitorOf(t, sb)
	ctx := context.Background()

	if rec, err := mb.readRecord(ctx); rec != nil || err != nil {
		t.Fatalf("record before any write: %+v, %v", rec, err)
	}
	la, err := ma.acquireMonitor(ctx, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	// The lease blob exists now, without a record.
	if rec, err := mb.readRecord(ctx); rec != nil || err != nil {
		t.Fatalf("record before any write (lease blob created): %+v, %v", rec, err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = mb.acquireMonitor(short, "host-b")
	cancel()
	if err == nil || !strings.Contains(err.Error(), "held by another owner") {
		t.Fatalf("second host while the first holds the monitor: %v", err)
	}
	recA := testMonitorRecord(1, "host-a")
	if err := la.writeRecord(ctx, recA); err != nil {
		t.Fatal(err)
	}
	if got, err := mb.readRecord(ctx); err != nil || !reflect.DeepEqual(got, recA) {
		t.Fatalf("record read back:\n%+v, %v\nwant\n%+v", got, err, recA)
	}

	got := acquireMonitorAsync(mb, "host-b", 20*time.Second)
	time.Sleep(500 * time.Millisecond) // b polls
	released := time.Now()
	if err := la.release(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("waiting host after the release: %v", r.err)
	}
	t.Logf("monitor lease handover after release: %v", r.at.Sub(released))
	if d := r.at.Sub(released); d > 3*time.Second {
		t.Fatalf("handover took %v (poll every %v)", d, monitorLeasePoll)
	}
	if err := la.writeRecord(ctx, testMonitorRecord(9, "host-a")); !errors.Is(err, errMonitorLeaseLost) {
		t.Fatalf("write after release: %v", err)
	}
	recB := testMonitorRecord(2, "host-b")
	if err := r.v.writeRecord(ctx, recB); err != nil {
		t.Fatal(err)
	}
	if got, err := ma.readRecord(ctx); err != nil || !reflect.DeepEqual(got, recB) {
		t.Fatalf("record after handover: %+v, %v", got, err)
	}
	if err := sb.deleteTaskHub(ctx, sb.hub.params); err == nil || !strings.Contains(err.Error(), "load monitor") {
		t.Fatalf("delete while a host holds the monitor: %v", err)
	}
	if err := r.v.release(); err != nil {
		t.Fatal(err)
	}
	if err := sb.deleteTaskHub(ctx, sb.hub.params); err != nil {
		t.Fatalf("delete once released: %v", err)
	}
}

// TestMonitorBlobExpiry: a holder that stops renewing (a killed host:
// abandon) keeps the lease until it expires (15 s); then the waiting host
// takes it over; the abandoned holder's writes fail.
func TestMonitorBlobExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 15 s lease to expire")
	}
	t.Parallel()
	conn, hub := blobTestHub(t)
	ma := blobMonitorOf(t, openBlobHub(t, conn, hub, nil))
	mb := blobMonitorOf(t, openBlobHub(t, conn, hub, nil))
	ctx := context.Background()
	la, err := ma.acquireMonitor(ctx, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	acquiredAt := time.Now()
	if err := la.writeRecord(ctx, testMonitorRecord(1, "host-a")); err != nil {
		t.Fatal(err)
	}
	got := acquireMonitorAsync(mb, "host-b", 40*time.Second)
	if err := abandonMonitor(la); err != nil {
		t.Fatal(err)
	}
	if err := la.writeRecord(ctx, testMonitorRecord(9, "host-a")); !errors.Is(err, errMonitorLeaseLost) {
		t.Fatalf("write after abandon: %v", err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.v.release()
	waited := r.at.Sub(acquiredAt)
	t.Logf("monitor lease taken over %v after the abandoned holder acquired it (lease %v)", waited, testLease)
	if waited < testLease-time.Second {
		t.Fatalf("taken over after %v; an abandoned lease lasts %v", waited, testLease)
	}
	recB := testMonitorRecord(2, "host-b")
	if err := r.v.writeRecord(ctx, recB); err != nil {
		t.Fatal(err)
	}
	if got, err := ma.readRecord(ctx); err != nil || !reflect.DeepEqual(got, recB) {
		t.Fatalf("record after takeover: %+v, %v", got, err)
	}
}

// TestPartitionOpenWaitBlob: a partition closed gracefully releases its
// lease: a host waiting for it (partitionOpen.wait) gets it within a poll.
func TestPartitionOpenWaitBlob(t *testing.T) {
	t.Parallel()
	conn, hub := blobTestHub(t)
	sa, sb := openBlobHub(t, conn, hub, nil), openBlobHub(t, conn, hub, nil)
	ctx := context.Background()
	pa, err := openTestPartition(ctx, sa, false)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = openTestPartition(short, sb, true)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting open whose ctx ends: %v", err)
	}
	if err := pa.metaStore().WriteFile("a.json", []byte("A")); err != nil {
		t.Fatal(err)
	}
	got := openPartitionAsync(sb, true, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	closed := time.Now()
	if err := pa.close(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.v.close()
	t.Logf("partition lease handover after close: %v", r.at.Sub(closed))
	if d := r.at.Sub(closed); d > 3*time.Second {
		t.Fatalf("handover took %v (poll every %v)", d, waitLeasePoll)
	}
	if b, err := r.v.metaStore().ReadFile("a.json"); err != nil || string(b) != "A" {
		t.Fatalf("new owner reads %q, %v", b, err)
	}
}

// TestNetworkPartitionBlob: host A runs a partition and the load monitor;
// its storage calls are then blocked. Its leases lapse: lost() and the
// partition's lease channel close (the manager stops the partition, the
// coordinator the monitor) before host B, waiting, gets both leases at
// expiry and writes. Once A's network is back, its writes are refused.
func TestNetworkPartitionBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for 15 s leases to lapse")
	}
	t.Parallel()
	conn, hub := blobTestHub(t)
	net := &cutTransport{client: &http.Client{}}
	sa := openBlobHub(t, conn, hub, net)
	sb := openBlobHub(t, conn, hub, nil)
	ctx := context.Background()

	pa, err := openTestPartition(ctx, sa, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.close()
	la, err := blobMonitorOf(t, sa).acquireMonitor(ctx, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	defer la.release()
	held := time.Now() // both leases were acquired (or renewed) before this
	if err := la.writeRecord(ctx, testMonitorRecord(1, "host-a")); err != nil {
		t.Fatal(err)
	}
	if err := pa.metaStore().WriteFile("owner.json", []byte("A")); err != nil {
		t.Fatal(err)
	}

	gotP := openPartitionAsync(sb, true, 40*time.Second)
	mb := blobMonitorOf(t, sb)
	gotM := acquireMonitorAsync(mb, "host-b", 40*time.Second)

	net.setCut(true)
	cutAt := time.Now()
	partLost, _ := pa.lease()
	lost := func(ch <-chan struct{}, what string) time.Time {
		select {
		case <-ch:
			return time.Now()
		case <-time.After(testLease + 5*time.Second):
			t.Fatalf("%s: not lost %v after the network was cut", what, time.Since(cutAt))
			return time.Time{}
		}
	}
	partLostAt := lost(partLost, "partition lease")
	monLostAt := lost(la.lost(), "monitor lease")
	rp, rm := <-gotP, <-gotM
	if rp.err != nil || rm.err != nil {
		t.Fatalf("host B: partition %v; monitor %v", rp.err, rm.err)
	}
	defer rp.v.close()
	defer rm.v.release()
	t.Logf("network cut: A lost the partition lease after %v and the monitor lease after %v; B got them after %v and %v",
		partLostAt.Sub(cutAt).Round(time.Millisecond), monLostAt.Sub(cutAt).Round(time.Millisecond),
		rp.at.Sub(cutAt).Round(time.Millisecond), rm.at.Sub(cutAt).Round(time.Millisecond))
	// Safety: A gave up before B could take over.
	if !partLostAt.Before(rp.at) || !monLostAt.Before(rm.at) {
		t.Fatalf("B acquired before A noticed its loss")
	}
	if rp.at.Sub(held) < testLease-time.Second || rm.at.Sub(held) < testLease-time.Second {
		t.Fatalf("B acquired before A's leases could expire")
	}

	// B writes as owner.
	recB := testMonitorRecord(2, "host-b")
	if err := rm.v.writeRecord(ctx, recB); err != nil {
		t.Fatal(err)
	}
	if b, err := rp.v.metaStore().ReadFile("owner.json"); err != nil || string(b) != "A" {
		t.Fatalf("B reads %q, %v", b, err)
	}
	if err := rp.v.metaStore().WriteFile("owner.json", []byte("B")); err != nil {
		t.Fatal(err)
	}

	// A's network comes back: its writes are refused.
	net.setCut(false)
	if err := la.writeRecord(ctx, testMonitorRecord(3, "host-a")); !errors.Is(err, errMonitorLeaseLost) {
		t.Fatalf("A's record write after the partition: %v", err)
	}
	if err := pa.metaStore().WriteFile("owner.json", []byte("A2")); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("A's document write after the partition: %v", err)
	}
	if err := pa.metaStore().WriteFile("commit-log.meta", []byte("A's tail")); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("A's commit after the partition: %v", err)
	}
	if got, err := blobMonitorOf(t, sa).readRecord(ctx); err != nil || !reflect.DeepEqual(got, recB) {
		t.Fatalf("record after A's attempts: %+v, %v", got, err)
	}
	if b, err := rp.v.metaStore().ReadFile("owner.json"); err != nil || string(b) != "B" {
		t.Fatalf("document after A's attempts: %q, %v", b, err)
	}
}

// handoverStats reports the median and the worst of the handovers.
func handoverStats(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkMonitorHandover: the load monitor's lease moves between two
// hosts: the holder releases it while the other waits in acquireMonitor;
// the time from the release's start to the waiter holding it.
func BenchmarkMonitorHandover(b *testing.B) {
	conn := blobtest.Connection(b)
	hub := blobtest.ContainerName(b)
	stores := []monitorStore{blobMonitorOf(b, openBlobHubB(b, conn, hub)), blobMonitorOf(b, openBlobHubB(b, conn, hub))}
	defer deleteHubB(b, conn, hub)
	held, err := stores[0].acquireMonitor(context.Background(), "h0")
	if err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := acquireMonitorAsync(stores[(i+1)%2], "h", time.Minute)
		time.Sleep(rand.N(300 * time.Millisecond)) // the waiter polls: at a random phase
		at := time.Now()
		if err := held.release(); err != nil {
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
	held.release()
	handoverStats(b, ds)
}

// BenchmarkPartitionHandover: a partition's storage moves between two
// hosts: the owner closes it gracefully while the other waits in
// openPartition (partitionOpen.wait); the time from the close's start to
// the new owner having recovered it (a small partition: storage only).
func BenchmarkPartitionHandover(b *testing.B) {
	conn := blobtest.Connection(b)
	hub := blobtest.ContainerName(b)
	stores := []taskHubStore{openBlobHubB(b, conn, hub), openBlobHubB(b, conn, hub)}
	defer deleteHubB(b, conn, hub)
	held, err := openTestPartition(context.Background(), stores[0], false)
	if err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got := openPartitionAsync(stores[(i+1)%2], true, time.Minute)
		time.Sleep(rand.N(300 * time.Millisecond))
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

func openBlobHubB(b *testing.B, conn, hub string) *blobStore {
	s := &blobStore{connection: conn, leaseDuration: testLease}
	if _, err := s.openTaskHub(context.Background(), hub, 1); err != nil {
		b.Fatal(err)
	}
	return s
}

func deleteHubB(b *testing.B, conn, hub string) {
	acct, err := blobstore.NewAccount(conn)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := acct.TaskHubContainer(hub)
	c.Delete(context.Background())
}
