package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/faster"
)

func isLost(l *blobstore.Lease) bool {
	select {
	case <-l.Lost():
		return true
	default:
		return false
	}
}

// breakWithSDK breaks a lease at once, with the SDK directly (as an
// operator would).
func breakWithSDK(t *testing.T, c *blobstore.Container, name string) {
	t.Helper()
	lc, err := lease.NewBlobClient(c.Client().NewBlobClient(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.BreakLease(context.Background(), &lease.BlobBreakOptions{BreakPeriod: to.Ptr(int32(0))}); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseContention: while one owner holds the lease nobody else gets
// it; when it is released, exactly one of several contenders does, and
// only that one writes.
func TestLeaseContention(t *testing.T) {
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	const name = "hub/p00/commit-lease"
	first, err := blobstore.AcquireLease(context.Background(), c, name, blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	_, err = blobstore.AcquireLease(ctx, c, name, blobstore.LeaseOptions{PollEvery: 100 * time.Millisecond})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "held by another owner") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second owner: %v", err)
	}

	// Contenders wait; the holder releases; one of them wins.
	var (
		wg      sync.WaitGroup
		winners atomic.Int32
		mu      sync.Mutex
		writer  string
	)
	start := make(chan struct{})
	for i := range 5 {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			l, err := blobstore.AcquireLease(ctx, c, name, blobstore.LeaseOptions{PollEvery: 100 * time.Millisecond})
			if err != nil {
				if !strings.Contains(err.Error(), "held by another owner") {
					t.Errorf("contender %d: %v", i, err)
				}
				return
			}
			winners.Add(1)
			m, _ := blobstore.NewBlobMeta(c, "hub/p00/", blobstore.MetaOptions{Lease: l, LeaseDocument: "commit-log.meta"})
			id := string(rune('A' + i))
			if err := m.WriteFile("commit-log.meta", []byte(id)); err != nil {
				t.Errorf("winner %d: %v", i, err)
			}
			mu.Lock()
			writer = id
			mu.Unlock()
			// Hold it until the others have given up: their deadlines are
			// this one's, give or take; released at that very moment, a
			// contender's last poll could be granted just as it gives up.
			<-ctx.Done()
			time.Sleep(500 * time.Millisecond)
			l.Release()
		})
	}
	close(start)
	time.Sleep(300 * time.Millisecond)
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := winners.Load(); n != 1 {
		t.Fatalf("%d contenders acquired the lease", n)
	}
	l, err := blobstore.AcquireLease(context.Background(), c, name, blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	m, _ := blobstore.NewBlobMeta(c, "hub/p00/", blobstore.MetaOptions{Lease: l, LeaseDocument: "commit-log.meta"})
	if got, err := m.ReadFile("commit-log.meta"); err != nil || string(got) != writer {
		t.Fatalf("lease document %q, %v; the winner wrote %q", got, err, writer)
	}
}

// TestLeaseBroken: after an operator breaks the lease, the old owner's
// commit is rejected by the service (the commit metadata is written to
// the lease blob conditioned on the lease id), the lease is lost, and the
// old owner's devices and metadata store refuse to write. A new owner
// recovers everything committed.
func TestLeaseBroken(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	const guid = "0f8fad5b-d9cb-469f-a165-70867728950e"
	ctx := context.Background()
	popts := blobstore.PartitionOptions{SegmentSize: 64 << 10}
	pa, err := blobstore.OpenPartition(ctx, c, guid, 2, popts)
	if err != nil {
		t.Fatal(err)
	}
	la, err := faster.OpenLog(faster.LogOptions{Name: "A", Device: pa.LogDevice, Meta: pa.Meta, MetaName: blobstore.CommitLogMetaDocument})
	if err != nil {
		t.Fatal(err)
	}
	var committed [][]byte
	for i := range 20 {
		p := pattern(uint64(i), 100+i*37)
		la.Append(p)
		committed = append(committed, p)
	}
	if err := la.Commit(); err != nil {
		t.Fatal(err)
	}

	breakWithSDK(t, c, pa.Lease.Blob())

	la.Append([]byte("after the break"))
	err = la.Commit()
	if !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("commit after the break: %v", err)
	}
	t.Logf("commit after the break: %v", err)
	if !isLost(pa.Lease) {
		t.Fatal("Lost() not closed")
	}
	for _, d := range []*blobstore.PageBlobDevice{pa.LogDevice, pa.KVDevice} {
		if err := wait(d.WriteAsync, 0, make([]byte, 512)); !errors.Is(err, blobstore.ErrLeaseLost) {
			t.Fatalf("device write after the loss: %v", err)
		}
		if err := d.RemoveSegmentsBelow(1 << 30); !errors.Is(err, blobstore.ErrLeaseLost) {
			t.Fatalf("segment removal after the loss: %v", err)
		}
	}
	for _, doc := range []string{"commit-log.meta", "last-checkpoint.json"} {
		if err := pa.Meta.WriteFile(doc, []byte("{}")); !errors.Is(err, blobstore.ErrLeaseLost) {
			t.Fatalf("meta write of %s after the loss: %v", doc, err)
		}
	}
	// Reads still work (nothing to fence).
	if _, err := pa.Meta.ReadFile("commit-log.meta"); err != nil {
		t.Fatal(err)
	}

	// A new owner gets the lease at once (broken) and recovers the log.
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pb, err := blobstore.OpenPartition(ctx2, c, guid, 2, popts)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	lb, err := faster.OpenLog(faster.LogOptions{Name: "B", Device: pb.LogDevice, Meta: pb.Meta, MetaName: blobstore.CommitLogMetaDocument})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	if err := lb.Scan(lb.Begin(), func(_ int64, p []byte) error { got = append(got, bytes.Clone(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	// The failed commit's outcome is unknown: its record may be there.
	if len(got) < len(committed) || len(got) > len(committed)+1 {
		t.Fatalf("new owner recovered %d records; %d were committed", len(got), len(committed))
	}
	for i := range committed {
		if !bytes.Equal(got[i], committed[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	lb.Append([]byte("B was here"))
	if err := lb.Commit(); err != nil {
		t.Fatal(err)
	}
	la.Close()
	if err := pa.Close(); err != nil {
		t.Fatalf("closing the old owner: %v", err)
	}
	lb.Close()
}

// TestLeaseBrokenSegmentConflict: the old owner does not know yet that
// its lease was broken and taken; its next write to a segment the new
// owner has written fails on the segment's ETag (ErrLeaseLost), and the
// new owner's data is intact. Renewal failure alone also loses the lease.
func TestLeaseBrokenSegmentConflict(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	const name = "h/p01/commit-lease"
	la, err := blobstore.AcquireLease(context.Background(), c, name, blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	da, _ := blobstore.NewPageBlobDevice(c, "h/p01/store/store", blobstore.DeviceOptions{SegmentSize: 1 << 20, Lease: la})
	mustWrite(t, da, 0, pattern(1, 4096))

	breakWithSDK(t, c, name)
	lb, err := blobstore.AcquireLease(context.Background(), c, name, blobstore.LeaseOptions{RenewEvery: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release()
	db, _ := blobstore.NewPageBlobDevice(c, "h/p01/store/store", blobstore.DeviceOptions{SegmentSize: 1 << 20, Lease: lb})
	newData := pattern(2, 8192)
	mustWrite(t, db, 4096, newData)

	err = wait(da.WriteAsync, 4096, pattern(3, 512))
	if !errors.Is(err, blobstore.ErrLeaseLost) || !errors.Is(err, blobstore.ErrConflict) || !strings.Contains(err.Error(), "h/p01/store/store.000000") {
		t.Fatalf("stale owner's write: %v", err)
	}
	t.Logf("stale owner's write: %v", err)
	if !isLost(la) {
		t.Fatal("the conflict did not lose the lease")
	}
	if got := mustRead(t, db, 4096, 8192); !bytes.Equal(got, newData) {
		t.Fatal("the new owner's data was overwritten")
	}
	if err := lb.Check(); err != nil {
		t.Fatal(err)
	}

	// The new owner's lease is broken too: its next renewal (every 300
	// ms) is rejected and Lost fires without any write.
	breakWithSDK(t, c, name)
	select {
	case <-lb.Lost():
		t.Logf("lost: %v", lb.Err())
	case <-time.After(5 * time.Second):
		t.Fatal("renewal of a broken lease did not lose it")
	}
	if err := wait(db.WriteAsync, 0, make([]byte, 512)); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("write after the loss: %v", err)
	}
}

// TestLeaseGuard: a host whose renewals do not succeed within Guard
// stops writing (before the service's expiry), and Lost fires.
func TestLeaseGuard(t *testing.T) {
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	start := time.Now()
	l, err := blobstore.AcquireLease(context.Background(), c, "g/commit-lease", blobstore.LeaseOptions{
		Duration: 15 * time.Second, RenewEvery: 10 * time.Second, Guard: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	d, _ := blobstore.NewPageBlobDevice(c, "g/dev", blobstore.DeviceOptions{SegmentSize: 1 << 20, Lease: l})
	mustWrite(t, d, 0, make([]byte, 512))
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost did not fire")
	}
	if e := time.Since(start); e < 500*time.Millisecond || e > 3*time.Second {
		t.Errorf("lost after %v; guard 500ms", e)
	}
	if err := l.Check(); !errors.Is(err, blobstore.ErrLeaseLost) || !strings.Contains(err.Error(), "not renewed for") {
		t.Fatalf("Check: %v", err)
	}
	before := a.Requests()
	if err := wait(d.WriteAsync, 0, make([]byte, 512)); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("write after the guard: %v", err)
	}
	if n := a.Requests() - before; n != 0 {
		t.Fatalf("a refused write sent %d requests", n)
	}
}

// TestLeaseRenewal: renewals keep the lease; Release lets another owner
// in at once and stops this one's writes.
func TestLeaseRenewal(t *testing.T) {
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	l, err := blobstore.AcquireLease(context.Background(), c, "r/commit-lease", blobstore.LeaseOptions{
		Duration: 15 * time.Second, RenewEvery: 200 * time.Millisecond, Guard: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := blobstore.NewBlobMeta(c, "r", blobstore.MetaOptions{Lease: l, LeaseDocument: "commit-log.meta"})
	for range 5 {
		time.Sleep(500 * time.Millisecond)
		if err := m.WriteFile("commit-log.meta", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Check(); err != nil || isLost(l) {
		t.Fatalf("lease lost while renewed: %v", err)
	}
	if n := l.Renewals(); n < 8 {
		t.Fatalf("%d renewals in 2.5 s every 200 ms", n)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("commit-log.meta", []byte("y")); !errors.Is(err, blobstore.ErrLeaseLost) || !strings.Contains(err.Error(), "released") {
		t.Fatalf("write after Release: %v", err)
	}
	if isLost(l) {
		t.Fatal("Release closed Lost")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l2, err := blobstore.AcquireLease(ctx, c, "r/commit-lease", blobstore.LeaseOptions{})
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// TestLeaseExpiry: a host that stops renewing (hangs) stops writing
// before its lease expires; a new owner waiting for the lease gets it
// when it expires (15 s, the shortest Azure allows).
func TestLeaseExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 15 s lease to expire")
	}
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	start := time.Now()
	la, err := blobstore.AcquireLease(context.Background(), c, "e/commit-lease", blobstore.LeaseOptions{Duration: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()
	blobstore.StopRenewals(la)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	lb, err := blobstore.AcquireLease(ctx, c, "e/commit-lease", blobstore.LeaseOptions{PollEvery: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release()
	waited := time.Since(start)
	if waited < 14*time.Second {
		t.Fatalf("the new owner got the lease after %v; the old one's lasts 15 s", waited)
	}
	if err := la.Check(); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("the old owner may still write when the new one gets the lease: %v", err)
	}
	t.Logf("new owner after %v; old owner: %v", waited.Round(time.Millisecond), la.Err())
}

// TestLeaseTakeoverFencesDocuments: an old owner that has not noticed a
// takeover cannot replace a document the new owner has read (the read
// fenced it), nor commit (the lease blob).
func TestLeaseTakeoverFencesDocuments(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	ctx := context.Background()
	const guid = "5a1e6b3c-0000-4000-8000-000000000001"
	pa, err := blobstore.OpenPartition(ctx, c, guid, 0, blobstore.PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	if err := pa.Meta.WriteFile("store/last-checkpoint.json", []byte("A1")); err != nil {
		t.Fatal(err)
	}
	if err := pa.Meta.WriteFile("commit-log.meta", []byte("tail A1")); err != nil {
		t.Fatal(err)
	}
	breakWithSDK(t, c, pa.Lease.Blob())
	pb, err := blobstore.OpenPartition(ctx, c, guid, 0, blobstore.PartitionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	if got, err := pb.Meta.ReadFile("store/last-checkpoint.json"); err != nil || string(got) != "A1" {
		t.Fatalf("new owner reads %q, %v", got, err)
	}
	if got, err := pb.Meta.ReadFile("commit-log.meta"); err != nil || string(got) != "tail A1" {
		t.Fatalf("new owner reads %q, %v", got, err)
	}
	// The old owner still believes it holds the lease.
	if err := pa.Lease.Check(); err != nil {
		t.Fatal(err)
	}
	err = pa.Meta.WriteFile("store/last-checkpoint.json", []byte("A2"))
	if !errors.Is(err, blobstore.ErrConflict) || !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("old owner's write of a fenced document: %v", err)
	}
	if !isLost(pa.Lease) {
		t.Fatal("old owner's lease not declared lost")
	}
	if got, _ := pb.Meta.ReadFile("store/last-checkpoint.json"); string(got) != "A1" {
		t.Fatalf("document now %q", got)
	}
	if err := pb.Meta.WriteFile("store/last-checkpoint.json", []byte("B1")); err != nil {
		t.Fatal(err)
	}
	if err := pb.Meta.WriteFile("commit-log.meta", []byte("tail B1")); err != nil {
		t.Fatal(err)
	}
}
