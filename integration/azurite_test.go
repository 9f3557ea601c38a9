// Package integration runs the engine against real services: Azure Storage
// through Azurite (see scripts/azurite). The tests find the account in
// NETHERITE_AZURITE; without it they are skipped with a message, except in
// CI, where they fail.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

func TestMain(m *testing.M) { blobtest.Main(m) }

// hubName returns a fresh task hub name, so tests do not share state.
func hubName(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "it" + hex.EncodeToString(b)
}

func registry() *durable.Registry {
	r := durable.NewRegistry()
	samples.Register(r)
	return r
}

func start(t *testing.T, ctx context.Context, opts netherite.Options) *netherite.Host {
	t.Helper()
	h, err := netherite.Start(ctx, opts, registry())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func wait(t *testing.T, ctx context.Context, c durable.Client, id string) *durable.OrchestrationStatus {
	t.Helper()
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	if s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("%s: %s %v", id, s.RuntimeStatus, s.Failure)
	}
	return s
}

// The scenarios run on page blobs, and the state survives a restart.
func TestScenariosOnAzurite(t *testing.T) {
	conn := blobtest.Connection(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: hubName(t), PartitionCount: 4}
	h := start(t, ctx, opts)
	c := h.Client()
	hello, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := wait(t, ctx, c, hello); string(s.Output) != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` {
		t.Fatalf("hello: %s", s.Output)
	}
	fan, _ := c.StartOrchestration(ctx, samples.FanOutFanIn, 200)
	if s := wait(t, ctx, c, fan); string(s.Output) != "2686700" {
		t.Fatalf("fan-out: %s", s.Output)
	}
	accounts := []string{"a!0", "b!1", "c!2", "d!3"}
	for _, a := range accounts {
		if err := c.SignalEntity(ctx, core.NewEntityID(samples.Account, a), "deposit", 100); err != nil {
			t.Fatal(err)
		}
	}
	var transfers []string
	for i := 0; i < 20; i++ {
		id, err := c.StartOrchestration(ctx, samples.Transfer, samples.TransferRequest{From: accounts[i%4], To: accounts[(i+1)%4], Amount: 7})
		if err != nil {
			t.Fatal(err)
		}
		transfers = append(transfers, id)
	}
	for _, id := range transfers {
		wait(t, ctx, c, id)
	}
	waiting, _ := c.StartOrchestration(ctx, samples.WaitForEvent, nil, durable.WithStartInstanceID("waiter"))
	if _, err := c.WaitForStart(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Restart: everything is still there, and the waiter continues.
	h = start(t, ctx, opts)
	defer h.Stop(context.Background())
	c = h.Client()
	if s := wait(t, ctx, c, hello); string(s.Output) != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` {
		t.Fatalf("hello after restart: %s", s.Output)
	}
	total := 0
	for _, a := range accounts {
		m, err := c.GetEntity(ctx, core.NewEntityID(samples.Account, a), true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		_ = m.ReadState(&bal)
		total += bal
	}
	if total != 400 {
		t.Fatalf("bank total %d after restart, want 400", total)
	}
	if err := c.RaiseEvent(ctx, "waiter", "Approval", "yes"); err != nil {
		t.Fatal(err)
	}
	if s := wait(t, ctx, c, "waiter"); string(s.Output) != `"yes"` {
		t.Fatalf("waiter: %s", s.Output)
	}
	if p := h.TaskHub(); p == nil || p.PartitionCount != 4 {
		t.Fatalf("task hub parameters %+v", p)
	}
	// Another partition count is refused.
	if _, err := netherite.Start(ctx, netherite.Options{Storage: conn, TaskHub: opts.TaskHub, PartitionCount: 8}, registry()); err == nil {
		t.Fatal("a second start with another partition count was accepted")
	}
}

// Two hosts contend for the same partition under load: only the lease
// holder runs it. When its lease is broken it stops at once, reporting the
// fencing error (blobstore.ErrLeaseLost); the other host takes over with
// nothing lost: every start the first host acknowledged completes.
func TestLeaseHandover(t *testing.T) {
	conn := blobtest.Connection(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: hubName(t), PartitionCount: 1, LeaseDuration: 15 * time.Second}
	a := start(t, ctx, opts)
	defer a.Stop(context.Background())
	c := a.Client()

	// Load on A: orchestrations keep starting through the handover.
	var mu sync.Mutex
	var acked []string
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for loadCtx.Err() == nil {
			one, cancel := context.WithTimeout(loadCtx, 2*time.Second)
			id, err := c.StartOrchestration(one, samples.HelloSequence, nil)
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}
	}()
	defer func() { stopLoad(); <-loadDone }()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for ackedCount() < 20 {
		if ctx.Err() != nil {
			t.Fatal("no load on A")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// B cannot get the partition while A holds it: it waits for the lease.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	b, err := netherite.Start(short, opts, registry())
	cancelShort()
	if err == nil {
		b.Stop(context.Background())
		t.Fatal("a second host acquired a leased partition")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "held by another owner") {
		t.Fatalf("B's start failed with %v; want it to wait for the lease held by A", err)
	}

	// Break A's lease: A stops at once with the fencing error; B takes over.
	blobtest.BreakPartitionLease(t, ctx, conn, opts.TaskHub, a.TaskHub().TaskHubGUID, 0)
	var lost netherite.PartitionStatus
	for deadline := time.Now().Add(10 * time.Second); ; {
		lost = a.Partitions()[0]
		if lost.State == netherite.PartitionNotOwned || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if lost.State != netherite.PartitionNotOwned || !errors.Is(lost.Err, blobstore.ErrLeaseLost) {
		t.Fatalf("A after the break: %+v; want not owned, with an error wrapping blobstore.ErrLeaseLost", lost)
	}
	b = start(t, ctx, opts)
	defer b.Stop(context.Background())
	if s := b.Partitions()[0]; s.State != netherite.PartitionOK {
		t.Fatalf("B: %+v", s)
	}
	// A can no longer make anything durable: its requests go unanswered.
	stale, cancelStale := context.WithTimeout(ctx, 3*time.Second)
	_, staleErr := c.StartOrchestration(stale, samples.HelloSequence, nil, durable.WithStartInstanceID("stale-write"))
	cancelStale()
	if !errors.Is(staleErr, context.DeadlineExceeded) {
		t.Fatalf("a start on A after it lost the lease: %v; want no answer", staleErr)
	}
	stopLoad()
	<-loadDone
	a.Stop(context.Background())
	if _, err := b.Client().GetStatus(ctx, "stale-write"); err == nil {
		t.Fatal("B sees an instance that A created after losing its lease")
	}
	// Everything A acknowledged was durable: it completes on B.
	bc := b.Client()
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	for _, id := range ids {
		wait(t, ctx, bc, id)
	}
	id, err := bc.StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, bc, id)
	t.Logf("lease handover under load: A stopped with %v; B completed the %d starts A acknowledged", lost.Err, len(ids))
}

func TestTaskHubCommandsOnAzurite(t *testing.T) {
	conn := blobtest.Connection(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: hubName(t), PartitionCount: 2}
	p, err := netherite.CreateTaskHub(ctx, opts)
	if err != nil || p.PartitionCount != 2 {
		t.Fatalf("create: %+v %v", p, err)
	}
	info, err := netherite.TaskHubInfo(ctx, opts)
	if err != nil || info.TaskHubGUID != p.TaskHubGUID {
		t.Fatalf("info: %+v %v", info, err)
	}
	h := start(t, ctx, opts)
	if err := netherite.DeleteTaskHub(ctx, opts); err == nil {
		t.Fatal("deleted a task hub while a host runs it")
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := netherite.DeleteTaskHub(ctx, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := netherite.TaskHubInfo(ctx, opts); err == nil {
		t.Fatal("task hub still there after delete")
	}
}
