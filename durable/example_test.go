package durable_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
)

type Order struct {
	ID    string
	Items []string
}

type Receipt struct {
	OrderID string
	Total   int
}

// This example writes an orchestration with an activity and an entity,
// and runs it on the in-memory test engine, which drives the same replay
// executor the real engine uses.
func Example() {
	r := durable.NewRegistry()

	// Activities are plain typed functions.
	charge := durable.RegisterActivity(r, "Charge", func(ctx durable.ActivityContext, o Order) (Receipt, error) {
		return Receipt{OrderID: o.ID, Total: 10 * len(o.Items)}, nil
	})

	// Entities are small actors with durable state.
	durable.RegisterEntity(r, "Sales", func(ctx durable.EntityContext) error {
		var total int
		_ = ctx.GetState(&total)
		switch ctx.Operation() {
		case "add":
			var n int
			if err := ctx.GetInput(&n); err != nil {
				return err
			}
			return ctx.SetState(total + n)
		case "get":
			return ctx.Return(total)
		}
		return fmt.Errorf("unknown operation %q", ctx.Operation())
	})

	// Orchestrations call them through the context; every step is durable.
	durable.RegisterOrchestrator(r, "Checkout", func(ctx durable.OrchestrationContext, o Order) (string, error) {
		receipt, err := charge.Call(ctx, o, durable.WithRetry(durable.RetryPolicy{
			MaxAttempts: 3, FirstRetryInterval: time.Second})).Get()
		if err != nil {
			return "", err
		}
		sales := core.NewEntityID("Sales", "2026")
		if err := ctx.SignalEntity(sales, "add", receipt.Total); err != nil {
			return "", err
		}
		// Wait for shipping, but not forever.
		tracking, err := durable.Await[string](ctx.WaitForExternalEvent("Shipped", durable.WithTimeout(72*time.Hour)))
		if durable.IsTimeout(err) {
			return "not shipped in time", nil
		}
		return fmt.Sprintf("order %s: charged %d, tracking %s", receipt.OrderID, receipt.Total, strings.ToUpper(tracking)), err
	})

	env := durabletest.New(r)
	defer env.Close()
	_, _ = env.Start("order-1", "Checkout", Order{ID: "1", Items: []string{"tea", "cups"}})
	_ = env.RaiseEventAt(time.Hour, "order-1", "Shipped", "zx-42")
	if err := env.Run(); err != nil {
		fmt.Println(err)
		return
	}
	status, _ := env.Status("order-1")
	var out string
	_ = status.ReadOutput(&out)
	var sales int
	_, _ = env.ReadEntityState(core.NewEntityID("Sales", "2026"), &sales)
	fmt.Println(status.RuntimeStatus, out)
	fmt.Println("sales:", sales)
	// Output:
	// Completed order 1: charged 20, tracking ZX-42
	// sales: 20
}
