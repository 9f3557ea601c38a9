package azstorage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// TestEndedRowRepaired: a worker that dies after writing an ended history
// (checkpoint step 2) but before the instance row (step 3) leaves the row
// running; the next message for the instance (the dead worker's
// undeleted ones come back) makes the row say how it ended.
func TestEndedRowRepaired(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Echo", func(ctx durable.OrchestrationContext, in string) (string, error) {
		return in + "!", nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(ctx, Config{Storage: queueConnection(t), TaskHub: fmt.Sprintf("r%d", time.Now().UnixNano()%1e13),
		MaxQueuePollingInterval: 50 * time.Millisecond, LeaseDuration: 15 * time.Second,
		LeaseRenewInterval: 2 * time.Second, LeaseAcquireInterval: 500 * time.Millisecond}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	c := b.Client()
	id, err := c.StartOrchestration(ctx, "Echo", "hi")
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.WaitForCompletion(ctx, id)
	if err != nil || s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("first run: %v %v", s, err)
	}
	// The row as the dead worker left it: still running.
	if err := b.putInstance(ctx, &instanceRow{ID: id, ExecutionID: s.ExecutionID, Status: core.StatusRunning,
		LastUpdatedAt: time.Now().UTC()}, false); err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "late", nil); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	s, err = c.WaitForCompletion(wctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatalf("the row was not repaired: %v", err)
	}
	if s.RuntimeStatus != core.StatusCompleted || string(s.Output) != `"hi!"` {
		t.Fatalf("repaired row: %s output %s, want Completed \"hi!\"", s.RuntimeStatus, s.Output)
	}
}
