package netherite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// With a tiny cache on disk nearly every step touches an instance that was
// evicted: orchestrations (activity results, timers), entities and lock
// grants between partitions all find their instances loaded in the
// background, never on a partition's loop, and the results are right.
func TestNoSyncLoadsWithTinyCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := netherite.Options{Storage: t.TempDir(), PartitionCount: 3, StateCacheBytes: 96 << 10, Logger: testLogger()}
	r := durable.NewRegistry()
	samples.Register(r)
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	c := h.Client()
	const hellos, accounts, initial, transfers = 300, 6, 100, 40
	acct := func(i int) core.EntityID { return core.NewEntityID(samples.Account, fmt.Sprintf("a%d", i)) }
	for i := range accounts {
		if err := c.SignalEntity(ctx, acct(i), "deposit", initial); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*hellos+transfers)
	runHellos := func(from int) {
		for i := from; i < from+hellos; i++ {
			wg.Go(func() {
				id, err := c.StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID(fmt.Sprint("hello-", i)))
				if err == nil {
					var s *durable.OrchestrationStatus
					s, err = c.WaitForCompletion(ctx, id, durable.WithPayloads())
					if err == nil && (s.RuntimeStatus != core.StatusCompleted || string(s.Output) != `["Hello Tokyo!","Hello Seattle!","Hello London!"]`) {
						err = fmt.Errorf("%s: %s %s", id, s.RuntimeStatus, s.Output)
					}
				}
				errs <- err
			})
		}
	}
	// The first hellos end before mid; a purge-by-filter removes them.
	runHellos(0)
	wg.Wait()
	mid := time.Now()
	runHellos(hellos)
	for i := range transfers {
		wg.Go(func() {
			req := samples.TransferRequest{From: fmt.Sprint("a", i%accounts), To: fmt.Sprint("a", (i+1+i/accounts)%accounts), Amount: 7}
			if req.From == req.To {
				req.To = fmt.Sprint("a", (i+1)%accounts)
			}
			id, err := c.StartOrchestration(ctx, samples.Transfer, req)
			if err == nil {
				var s *durable.OrchestrationStatus
				s, err = c.WaitForCompletion(ctx, id)
				if err == nil && s.RuntimeStatus != core.StatusCompleted {
					err = fmt.Errorf("transfer %s: %s", id, s.RuntimeStatus)
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i := range accounts {
		var m *durable.EntityMetadata
		for {
			if m, err = c.GetEntity(ctx, acct(i), true); err != nil {
				t.Fatal(err)
			}
			if m.LockedBy == "" && m.QueueLength == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var v int
		if err := json.Unmarshal(m.State, &v); err != nil {
			t.Fatalf("account %d state %q: %v", i, m.State, err)
		}
		total += v
	}
	if total != accounts*initial {
		t.Errorf("accounts hold %d in total, want %d", total, accounts*initial)
	}
	// Pages of queries, entity listings and a purge by filter read
	// evicted instances in the background.
	countHellos := func() int {
		seen, token := 0, ""
		for {
			page, err := c.Query(ctx, durable.InstanceQuery{InstanceIDPrefix: "hello-", PageSize: 37, ContinuationToken: token,
				Statuses: []core.RuntimeStatus{core.StatusCompleted}})
			if err != nil {
				t.Fatal(err)
			}
			seen += len(page.Instances)
			if token = page.ContinuationToken; token == "" {
				return seen
			}
		}
	}
	if n := countHellos(); n != 2*hellos {
		t.Fatalf("query found %d completed hellos, want %d", n, 2*hellos)
	}
	ents, err := c.ListEntities(ctx, durable.EntityQuery{Name: samples.Account, PageSize: 4})
	if err != nil || len(ents.Entities) != 4 || ents.ContinuationToken == "" {
		t.Fatalf("first page of accounts: %v, %v", ents, err)
	}
	n, err := c.PurgeWhere(ctx, durable.PurgeFilter{CreatedTo: mid, Statuses: []core.RuntimeStatus{core.StatusCompleted}})
	if err != nil || n != hellos {
		t.Fatalf("purge of the hellos created before the middle: %d, %v; want %d", n, err, hellos)
	}
	if n := countHellos(); n != hellos {
		t.Fatalf("after the purge the query found %d completed hellos, want %d", n, hellos)
	}
	_, loads, evictions := h.StateStats()
	syncLoads := h.SyncLoads()
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if loads == 0 || evictions == 0 {
		t.Fatalf("the cache was big enough: %d loads, %d evictions", loads, evictions)
	}
	if syncLoads != 0 {
		t.Fatalf("%d instances were loaded synchronously on a partition's loop (%d in the background)", syncLoads, loads)
	}
	t.Logf("%d loads in the background, %d evictions", loads, evictions)
}
