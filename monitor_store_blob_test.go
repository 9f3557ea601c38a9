package netherite

import (
	"bytes"
	"context"
	"errors"
	"io"
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
// partition. With late, a request sent while cut reaches the service when
// the connection is restored even if its sender gave up on it meanwhile,
// as a request stuck in the network may.
type cutTransport struct {
	client *http.Client
	late   bool
	mu     sync.Mutex
	cut    chan struct{} // non-nil while cut; closed when restored
	held   sync.WaitGroup
	// landed counts the late requests the service answered, by status.
	landed map[int]int
}

func (c *cutTransport) Do(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	cut := c.cut
	if cut != nil && c.late {
		c.held.Add(1)
	}
	c.mu.Unlock()
	if cut == nil {
		return c.client.Do(req)
	}
	if !c.late {
		select {
		case <-cut:
			return c.client.Do(req)
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	// The request is in the network: it lands once the connection is
	// restored, whether or not its sender still waits. Its body is read
	// here at once, before the sender can give up on it.
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			c.held.Done()
			return nil, err
		}
		req.Body.Close()
	}
	late := req.Clone(context.WithoutCancel(req.Context()))
	late.Body = io.NopCloser(bytes.NewReader(body))
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		defer c.held.Done()
		<-cut
		resp, err := c.client.Do(late)
		if err == nil {
			c.mu.Lock()
			if c.landed == nil {
				c.landed = map[int]int{}
			}
			c.landed[resp.StatusCode]++
			c.mu.Unlock()
			// The sender reads it if it still waits; else it is dropped.
			buf, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(buf))
		}
		got <- result{resp, err}
	}()
	select {
	case r := <-got:
		return r.resp, r.err
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
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

// TestMonitorBlobExpiry: a host killed while holding the load monitor and
// a partition (abandon: the leases are not released, not renewed) keeps
// them until they expire (15 s); then the waiting host takes both over;
// the abandoned holder's writes fail at once.
func TestMonitorBlobExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 15 s lease to expire")
	}
	t.Parallel()
	conn, hub := blobTestHub(t)
	sa, sb := openBlobHub(t, conn, hub, nil), openBlobHub(t, conn, hub, nil)
	ma, mb := blobMonitorOf(t, sa), blobMonitorOf(t, sb)
	ctx := context.Background()
	// The service starts a lease's clock when the acquire arrives: after
	// these.
	monitorFrom := time.Now()
	la, err := ma.acquireMonitor(ctx, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	partitionFrom := time.Now()
	pa, err := openTestPartition(ctx, sa, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.writeRecord(ctx, testMonitorRecord(1, "host-a")); err != nil {
		t.Fatal(err)
	}
	if err := pa.metaStore().WriteFile("owner.json", []byte("A")); err != nil {
		t.Fatal(err)
	}
	got := acquireMonitorAsync(mb, "host-b", 40*time.Second)
	gotP := openPartitionAsync(sb, true, 40*time.Second)
	metaA := pa.metaStore()
	if err := abandonMonitor(la); err != nil {
		t.Fatal(err)
	}
	if err := pa.abandon(); err != nil {
		t.Fatal(err)
	}
	if err := la.writeRecord(ctx, testMonitorRecord(9, "host-a")); !errors.Is(err, errMonitorLeaseLost) {
		t.Fatalf("write after abandon: %v", err)
	}
	if err := metaA.WriteFile("owner.json", []byte("A2")); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("partition write after abandon: %v", err)
	}
	r, rp := <-got, <-gotP
	if r.err != nil || rp.err != nil {
		t.Fatalf("monitor %v; partition %v", r.err, rp.err)
	}
	defer r.v.release()
	defer rp.v.close()
	waited, waitedP := r.at.Sub(monitorFrom), rp.at.Sub(partitionFrom)
	t.Logf("taken over after the killed holder acquired them (lease %v): monitor lease %v, partition %v", testLease, waited, waitedP)
	if waited < testLease-time.Second || waitedP < testLease-time.Second {
		t.Fatalf("taken over after %v / %v; an abandoned lease lasts %v", waited, waitedP, testLease)
	}
	if b, err := rp.v.metaStore().ReadFile("owner.json"); err != nil || string(b) != "A" {
		t.Fatalf("new owner reads %q, %v", b, err)
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

	from := time.Now() // A's leases start after this
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
	if rp.at.Sub(from) < testLease-time.Second || rm.at.Sub(from) < testLease-time.Second {
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

// TestNetworkPartitionLateWritesBlob: writes host A sent while cut off
// from storage reach the service only after host B took the partition and
// the load monitor over and wrote (as requests stuck in a network may):
// the service refuses every one of them, so B's state stands: the
// monitor's record and the commit point (conditioned on the leases), a
// document (its ETag, fenced by B's read) and a log page (its segment's
// ETag).
func TestNetworkPartitionLateWritesBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for 15 s leases to lapse")
	}
	t.Parallel()
	conn, hub := blobTestHub(t)
	net := &cutTransport{client: &http.Client{}, late: true}
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
	// A page blob device fenced like the partition's (the partition's own
	// log must stay valid for B's recovery).
	device := func(ps partitionStorage) *blobstore.PageBlobDevice {
		bp := ps.(*blobPartition)
		d, err := blobstore.NewPageBlobDevice(bp.blobs.Lease.Container(), bp.blobs.Prefix+"late/late", blobstore.DeviceOptions{Lease: bp.blobs.Lease})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	devA := device(pa)
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, devA.SectorSize()) }
	if err := la.writeRecord(ctx, testMonitorRecord(1, "host-a")); err != nil {
		t.Fatal(err)
	}
	metaA := pa.metaStore()
	if err := metaA.WriteFile("owner.json", []byte("A")); err != nil {
		t.Fatal(err)
	}
	// The commit point as A's log wrote it (recovery parses it).
	tailA, err := metaA.ReadFile("commit-log.meta")
	if err != nil {
		t.Fatal(err)
	}
	if err := writePage(devA, 0, page('A')); err != nil {
		t.Fatal(err)
	}

	gotP := openPartitionAsync(sb, true, 40*time.Second)
	gotM := acquireMonitorAsync(blobMonitorOf(t, sb), "host-b", 40*time.Second)
	net.setCut(true)
	// A goes on writing: every request hangs in the network; A gives up
	// on them when its leases' guard passes.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() { errs <- la.writeRecord(ctx, testMonitorRecord(2, "host-a")) })
	wg.Go(func() { errs <- metaA.WriteFile("owner.json", []byte("A late")) })
	wg.Go(func() { errs <- metaA.WriteFile("commit-log.meta", tailA) })
	wg.Go(func() { errs <- writePage(devA, 0, page('a')) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("a write of A succeeded while it was cut off")
		}
	}

	rp, rm := <-gotP, <-gotM
	if rp.err != nil || rm.err != nil {
		t.Fatalf("host B: partition %v; monitor %v", rp.err, rm.err)
	}
	defer rp.v.close()
	defer rm.v.release()
	recB := testMonitorRecord(3, "host-b")
	if err := rm.v.writeRecord(ctx, recB); err != nil {
		t.Fatal(err)
	}
	metaB := rp.v.metaStore()
	if got, err := metaB.ReadFile("owner.json"); err != nil || string(got) != "A" {
		t.Fatalf("B reads owner.json = %q, %v", got, err)
	}
	if err := metaB.WriteFile("owner.json", []byte("B")); err != nil {
		t.Fatal(err)
	}
	// B's log wrote its own commit point when it opened (a new epoch).
	tailB, err := metaB.ReadFile("commit-log.meta")
	if err != nil || bytes.Equal(tailB, tailA) {
		t.Fatalf("B's commit point %q (A's %q), %v", tailB, tailA, err)
	}
	devB := device(rp.v)
	got := make([]byte, devB.SectorSize())
	if err := readPage(devB, 0, got); err != nil || !bytes.Equal(got, page('A')) {
		t.Fatalf("B reads page %q..., %v", got[:4], err)
	}
	if err := writePage(devB, 0, page('B')); err != nil {
		t.Fatal(err)
	}

	// The network delivers A's stuck requests now.
	net.setCut(false)
	net.held.Wait()
	net.mu.Lock()
	t.Logf("A's late requests answered by the service, by status: %v", net.landed)
	refused := 0
	for status, n := range net.landed {
		if status < 400 {
			t.Errorf("%d late requests of A were accepted (status %d)", n, status)
		}
		refused += n
	}
	net.mu.Unlock()
	if refused == 0 {
		t.Fatal("no late request of A reached the service and was refused: the test proves nothing")
	}
	if rec, err := blobMonitorOf(t, sb).readRecord(ctx); err != nil || !reflect.DeepEqual(rec, recB) {
		t.Fatalf("record after A's late writes: %+v, %v", rec, err)
	}
	fresh := openBlobHub(t, conn, hub, nil) // reads without any cache
	mon, _ := blobMonitorOf(t, fresh).readRecord(ctx)
	if !reflect.DeepEqual(mon, recB) {
		t.Fatalf("record read afresh: %+v", mon)
	}
	for name, want := range map[string][]byte{"owner.json": []byte("B"), "commit-log.meta": tailB} {
		if got, err := metaB.ReadFile(name); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after A's late writes %s = %q, %v; want %q", name, got, err, want)
		}
	}
	if err := readPage(devB, 0, got); err != nil || !bytes.Equal(got, page('B')) {
		t.Fatalf("after A's late writes the page is %q..., %v", got[:4], err)
	}
}

func writePage(d *blobstore.PageBlobDevice, addr int64, p []byte) error {
	ch := make(chan error, 1)
	d.WriteAsync(addr, p, func(err error) { ch <- err })
	return <-ch
}

func readPage(d *blobstore.PageBlobDevice, addr int64, p []byte) error {
	ch := make(chan error, 1)
	d.ReadAsync(addr, p, func(err error) { ch <- err })
	return <-ch
}
