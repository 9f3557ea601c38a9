// Package integration runs the engine against real services: Azure Storage
// through Azurite (see scripts/azurite). The tests find the account in
// NETHERITE_AZURITE; without it they are skipped with a message, except in
// CI, where they fail.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

// Two hosts contend for the same partitions: only the lease holder runs
// them. When its lease is broken it stops writing, and the other host
// takes over with nothing lost.
func TestLeaseHandover(t *testing.T) {
	conn := blobtest.Connection(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: conn, TaskHub: hubName(t), PartitionCount: 1}
	a := start(t, ctx, opts)
	c := a.Client()
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		wait(t, ctx, c, id)
	}
	// B cannot get the partition while A holds it.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	if b, err := netherite.Start(short, opts, registry()); err == nil {
		b.Stop(context.Background())
		cancelShort()
		t.Fatal("a second host acquired a leased partition")
	}
	cancelShort()

	// Break A's lease: A must stop writing; B takes over.
	acct, err := blobstore.NewAccount(conn)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := acct.TaskHubContainer(opts.TaskHub)
	if err != nil {
		t.Fatal(err)
	}
	if err := blobstore.BreakLease(ctx, cont, blobstore.PartitionPrefix(a.TaskHub().TaskHubGUID, 0)+blobstore.LeaseBlob); err != nil {
		t.Fatal(err)
	}
	b := start(t, ctx, opts)
	defer b.Stop(context.Background())
	// A can no longer make anything durable: its requests fail or time out.
	stale, cancelStale := context.WithTimeout(ctx, 5*time.Second)
	_, staleErr := c.StartOrchestration(stale, samples.HelloSequence, nil, durable.WithStartInstanceID("stale-write"))
	cancelStale()
	a.Stop(context.Background())
	bc := b.Client()
	for _, id := range ids {
		wait(t, ctx, bc, id)
	}
	if staleErr == nil {
		// If A acknowledged it, it must have been durable: B has it.
		if _, err := bc.GetStatus(ctx, "stale-write"); err != nil {
			t.Fatalf("A acknowledged a creation that B cannot see: %v", err)
		}
	}
	id, err := bc.StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait(t, ctx, bc, id)
	fmt.Println("lease handover: A stopped writing; B recovered", len(ids), "instances")
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
