package netherite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// TestHostCutFromStorage: a host whose storage calls hang (a network
// partition between it and Azure Storage) stops its partitions when its
// leases lapse, before a second host can take them over at expiry; the
// second host then runs the work the first had accepted and new work,
// and once the first host's network is back it does not take the
// partitions back (they are held).
func TestHostCutFromStorage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for 15 s leases to lapse")
	}
	conn := blobtest.Connection(t)
	hub := blobtest.ContainerName(t)
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
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const count = 2
	tr := transport.NewMemory(count)
	defer tr.Close()
	cutConn, cut := netherite.CutStorage(t, conn)
	start := func(storage string) (*netherite.Host, error) {
		r := durable.NewRegistry()
		samples.Register(r)
		return netherite.Start(ctx, netherite.Options{TaskHub: hub, Storage: storage, SharedTransport: tr,
			PartitionCount: count, LeaseDuration: 15 * time.Second}, r)
	}
	a, err := start(cutConn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	id, err := a.Client().StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := a.Client().WaitForCompletion(ctx, id); err != nil || s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("before the cut: %v %v", s, err)
	}

	cut(true)
	cutAt := time.Now()
	// Work sent while A is cut off: its partitions cannot commit it; B's
	// will (the starts return once B has).
	var ids []string
	startErrs := make(chan error, 4)
	for i := range 4 {
		id := fmt.Sprintf("cut%d", i)
		ids = append(ids, id)
		go func() {
			_, err := a.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID(id))
			startErrs <- err
		}()
	}
	type started struct {
		h   *netherite.Host
		err error
		at  time.Time
	}
	gotB := make(chan started, 1)
	go func() {
		h, err := start(conn)
		gotB <- started{h, err, time.Now()}
	}()

	// A stops its partitions when its leases lapse.
	var stoppedAt time.Time
	for stoppedAt.IsZero() {
		running := 0
		for _, p := range a.Partitions() {
			if p.State == netherite.PartitionOK {
				running++
			}
		}
		if running == 0 {
			stoppedAt = time.Now()
			break
		}
		if time.Since(cutAt) > 20*time.Second {
			t.Fatalf("A still runs %d partitions %v after the cut: %+v", running, time.Since(cutAt), a.Partitions())
		}
		time.Sleep(100 * time.Millisecond)
	}
	rb := <-gotB
	if rb.err != nil {
		t.Fatal(rb.err)
	}
	b := rb.h
	defer b.Stop(context.Background())
	t.Logf("cut: A stopped its partitions after %v; B started after %v; A: %+v",
		stoppedAt.Sub(cutAt).Round(time.Millisecond), rb.at.Sub(cutAt).Round(time.Millisecond), a.Partitions())
	if !stoppedAt.Before(rb.at) {
		t.Fatal("B ran the partitions before A stopped them")
	}
	for _, p := range a.Partitions() {
		if p.Err == nil {
			t.Errorf("partition %d of A stopped without a reason: %+v", p.Partition, p)
		}
	}

	cut(false)
	for range ids {
		if err := <-startErrs; err != nil {
			t.Fatal(err)
		}
	}
	id2, err := b.Client().StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(ids, id2) {
		if s, err := b.Client().WaitForCompletion(ctx, id); err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s after the takeover: %v %v", id, s, err)
		}
	}
	for _, p := range a.Partitions() {
		if p.State == netherite.PartitionOK {
			t.Fatalf("A runs partition %d again while B holds it: %+v", p.Partition, a.Partitions())
		}
	}
}
