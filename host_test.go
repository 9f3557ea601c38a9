package netherite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartLogsNoAccountKey: a host on Azure Storage, logging at debug
// level, never writes the account key.
func TestStartLogsNoAccountKey(t *testing.T) {
	conn := blobtest.Connection(t)
	var key string
	for _, part := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(k, "AccountKey") {
			key = v
		}
	}
	if key == "" {
		t.Skip("the test account's connection string has no AccountKey")
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: fmt.Sprintf("keylog%d", time.Now().UnixNano()%1e12), PartitionCount: 2, Logger: logger}
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	id, err := h.Client().StartOrchestration(ctx, "HelloSequence", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := h.Client().WaitForCompletion(ctx, id); err != nil || s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("%v %v", s, err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
		t.Error(err)
	}
	out := logs.String()
	if !strings.Contains(out, "host started") {
		t.Fatalf("the start was not logged:\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Fatalf("the logs contain the account key:\n%s", out)
	}
}

// startHello starts n HelloSequence orchestrations and returns their ids.
func startHello(t *testing.T, ctx context.Context, c durable.Client, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		id, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func waitCompleted(t *testing.T, ctx context.Context, c durable.Client, ids []string) {
	t.Helper()
	for _, id := range ids {
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
		if err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s: %v %v", id, s, err)
		}
	}
}

// waitPartition waits until partition p of h satisfies ok.
func waitPartition(t *testing.T, ctx context.Context, h *netherite.Host, p int, ok func(netherite.PartitionStatus) bool) netherite.PartitionStatus {
	t.Helper()
	for {
		s := h.Partitions()[p]
		if ok(s) {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("partition %d: %+v", p, s)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// A partition whose commit log fails is restarted from storage, and the
// workload completes.
func TestPartitionRestartAfterCommitFailure(t *testing.T) {
	var mu sync.Mutex
	var devices []*faster.FaultDevice
	netherite.SetTestLogDevice(func(p int, d faster.Device) faster.Device {
		if p != 0 {
			return d
		}
		fd := faster.NewFaultDevice(d)
		mu.Lock()
		defer mu.Unlock()
		if len(devices) == 0 {
			// The first incarnation's 5th commit-log write fails.
			fd.FailAt(faster.FaultWrite, 5, errors.New("injected commit-log failure"))
		}
		devices = append(devices, fd)
		return fd
	})
	defer netherite.SetTestLogDevice(nil)
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := netherite.Start(ctx, netherite.Options{Storage: t.TempDir(), PartitionCount: 2, RestartBackoff: 300 * time.Millisecond}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	// Watch partition 0 as /healthz does: down (503) while it is failed and
	// recovering, then ok (200) again.
	var seenDown, okAfterDown atomic.Bool
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for watchCtx.Err() == nil {
			s := h.Partitions()[0]
			if s.Down() {
				seenDown.Store(true)
			} else if s.State == netherite.PartitionOK && seenDown.Load() {
				okAfterDown.Store(true)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	ids := startHello(t, ctx, h.Client(), 40)
	waitCompleted(t, ctx, h.Client(), ids)
	waitPartition(t, ctx, h, 0, func(netherite.PartitionStatus) bool { return okAfterDown.Load() })
	stopWatch()
	<-watched
	s := waitPartition(t, ctx, h, 0, func(s netherite.PartitionStatus) bool { return s.State == netherite.PartitionOK })
	if s.Restarts < 1 || s.Err == nil || !strings.Contains(s.Err.Error(), "injected commit-log failure") {
		t.Fatalf("partition 0: %+v; want a restart after the injected failure", s)
	}
	mu.Lock()
	opened := len(devices)
	mu.Unlock()
	if opened < 2 {
		t.Fatalf("partition 0's storage was opened %d times; want a recovery", opened)
	}
	if p1 := h.Partitions()[1]; p1.State != netherite.PartitionOK || p1.Restarts != 0 {
		t.Fatalf("partition 1: %+v", p1)
	}
	select {
	case <-h.Done():
		t.Fatalf("the host is done: %v", h.Err())
	default:
	}
}

// A start that fails halfway (one partition is held by another host)
// releases the locks or leases of the partitions it took, so a later start
// gets them at once.
func TestFailedStartReleasesStorage(t *testing.T) {
	for _, storage := range []string{"disk", "azurite"} {
		t.Run(storage, func(t *testing.T) {
			opts := netherite.Options{PartitionCount: 4}
			switch storage {
			case "disk":
				opts.Storage = t.TempDir()
			case "azurite":
				opts.Storage = blobtest.Connection(t)
				opts.TaskHub = fmt.Sprintf("failstart%d", time.Now().UnixNano()%1e12)
				opts.LeaseDuration = 60 * time.Second
			}
			r := durable.NewRegistry()
			samples.Register(r)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// B holds partition 2.
			bo := opts
			bo.Partitions, bo.SharedTransport = []int{2}, transport.NewMemory(4)
			b, err := netherite.Start(ctx, bo, r)
			if err != nil {
				t.Fatal(err)
			}
			short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
			a, err := netherite.Start(short, opts, r)
			cancelShort()
			if err == nil {
				a.Stop(context.Background())
				b.Stop(context.Background())
				t.Fatal("a host started a partition that another host holds")
			}
			if !strings.Contains(err.Error(), "partition 2") {
				t.Errorf("the failed start does not name partition 2: %v", err)
			}
			if err := b.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			// Every partition is free again at once: no lease expiry wait.
			short, cancelShort = context.WithTimeout(ctx, 15*time.Second)
			defer cancelShort()
			c, err := netherite.Start(short, opts, r)
			if err != nil {
				t.Fatalf("the failed start leaked storage: %v", err)
			}
			ids := startHello(t, ctx, c.Client(), 4)
			waitCompleted(t, ctx, c.Client(), ids)
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if storage == "azurite" {
				if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// Losing its lease stops a partition at once: no more storage writes, no
// more answers, while the client keeps sending; the lease error is
// reported; and nothing the host acknowledged is lost.
func TestLeaseLossStopsPartition(t *testing.T) {
	conn := blobtest.Connection(t)
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: fmt.Sprintf("leaseloss%d", time.Now().UnixNano()%1e12),
		PartitionCount: 1, LeaseDuration: 15 * time.Second}
	mem := transport.NewMemory(1)
	defer mem.Close()
	counted := &countingTransport{Transport: mem}
	ao := opts
	ao.SharedTransport = counted
	a, err := netherite.Start(ctx, ao, r)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	// Load: starts keep coming while the lease is broken.
	var mu sync.Mutex
	var acked []string
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for loadCtx.Err() == nil {
			one, cancel := context.WithTimeout(loadCtx, 2*time.Second)
			id, err := a.Client().StartOrchestration(one, samples.HelloSequence, nil)
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}
	}()
	defer func() { stopLoad(); <-loadDone }()
	waitPartition(t, ctx, a, 0, func(netherite.PartitionStatus) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	blobtest.BreakPartitionLease(t, ctx, conn, opts.TaskHub, a.TaskHub().TaskHubGUID, 0)
	lostCtx, cancelLost := context.WithTimeout(ctx, 10*time.Second)
	s := waitPartition(t, lostCtx, a, 0, func(s netherite.PartitionStatus) bool { return s.State == netherite.PartitionNotOwned })
	cancelLost()
	if !errors.Is(s.Err, blobstore.ErrLeaseLost) {
		t.Fatalf("partition 0 lost its lease with %v; want an error wrapping blobstore.ErrLeaseLost", s.Err)
	}
	// From now on (the host waits a lease period before trying to take the
	// partition back) it neither writes, reads its queue, nor sends.
	requests := a.StorageRequests()
	reads, sends := counted.reads.Load(), counted.sends.Load()
	one, cancelOne := context.WithTimeout(ctx, 2*time.Second)
	_, err = a.Client().StartOrchestration(one, samples.HelloSequence, nil)
	cancelOne()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a start on the host that lost the partition: %v; want no answer", err)
	}
	if n := a.StorageRequests(); n != requests {
		t.Fatalf("the host made %d storage requests after losing its lease", n-requests)
	}
	if r, s := counted.reads.Load(), counted.sends.Load(); r != reads || s != sends {
		t.Fatalf("after losing its lease the partition read its queue %d times and sent %d packets", r-reads, s-sends)
	}
	stopLoad()
	<-loadDone
	a.Stop(context.Background())
	// Every start the host acknowledged was durable: another host has it.
	b, err := netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	waitCompleted(t, ctx, b.Client(), ids)
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
		t.Error(err)
	}
}

// countingTransport counts what partitions do with a transport: reads of
// their queues, and packets they send (everything but client requests).
type countingTransport struct {
	transport.Transport
	reads, sends atomic.Int64
}

func (c *countingTransport) ReceivePartition(ctx context.Context, p int, from uint64) ([]*transport.Packet, uint64, error) {
	c.reads.Add(1)
	return c.Transport.ReceivePartition(ctx, p, from)
}

func (c *countingTransport) SendToPartition(p int, packets ...*transport.Packet) error {
	for _, pk := range packets {
		if pk.Request == nil {
			c.sends.Add(1)
		}
	}
	return c.Transport.SendToPartition(p, packets...)
}

func (c *countingTransport) SendToClient(id string, packets ...*transport.Packet) error {
	c.sends.Add(int64(len(packets)))
	return c.Transport.SendToClient(id, packets...)
}

// A host that lost a lease nobody else took takes it back after a lease
// period, recovers the partition from storage, and goes on: what it
// acknowledged before completes, and new work runs.
func TestLeaseLostThenRetaken(t *testing.T) {
	conn := blobtest.Connection(t)
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: fmt.Sprintf("retake%d", time.Now().UnixNano()%1e12),
		PartitionCount: 1, LeaseDuration: 15 * time.Second}
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	before := startHello(t, ctx, h.Client(), 10)
	blobtest.BreakPartitionLease(t, ctx, conn, opts.TaskHub, h.TaskHub().TaskHubGUID, 0)
	// Without load the loss shows at the next write or renewal (at most
	// two thirds of the lease).
	s := waitPartition(t, ctx, h, 0, func(s netherite.PartitionStatus) bool { return s.State == netherite.PartitionNotOwned })
	if !errors.Is(s.Err, blobstore.ErrLeaseLost) {
		t.Fatalf("lost with %v", s.Err)
	}
	s = waitPartition(t, ctx, h, 0, func(s netherite.PartitionStatus) bool { return s.State == netherite.PartitionOK })
	if s.Restarts != 1 {
		t.Fatalf("back with %+v; want one restart", s)
	}
	waitCompleted(t, ctx, h.Client(), before)
	waitCompleted(t, ctx, h.Client(), startHello(t, ctx, h.Client(), 10))
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
		t.Error(err)
	}
}

// Done is closed by Stop, with no error after a clean stop; every
// partition is then not owned.
func TestHostDoneAfterStop(t *testing.T) {
	h, err := netherite.Start(context.Background(), netherite.Options{Storage: t.TempDir(), PartitionCount: 2}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range h.Partitions() {
		if s.State != netherite.PartitionOK || s.Down() {
			t.Fatalf("after Start: %+v", s)
		}
	}
	select {
	case <-h.Done():
		t.Fatal("Done before Stop")
	default:
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	default:
		t.Fatal("Done still open after Stop")
	}
	if h.Err() != nil {
		t.Fatalf("Err after a clean stop: %v", h.Err())
	}
	for _, s := range h.Partitions() {
		if s.State != netherite.PartitionNotOwned {
			t.Fatalf("after Stop: %+v", s)
		}
	}
}
