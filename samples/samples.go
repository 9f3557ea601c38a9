// Package samples holds the sample orchestrations, activities and entities
// that `netherite demo` and `netherite serve` run, and that the README
// shows: a hello sequence, a fan-out/fan-in, an approval that waits for an
// event, a counter entity and bank transfers under entity locks.
package samples

import (
	"fmt"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// Names of the sample functions.
const (
	HelloSequence = "HelloSequence"
	SayHello      = "SayHello"
	FanOutFanIn   = "FanOutFanIn"
	Square        = "Square"
	WaitForEvent  = "WaitForEvent"
	Counter       = "Counter"
	Account       = "Account"
	Transfer      = "Transfer"
)

// TransferRequest moves Amount from one account entity to another.
type TransferRequest struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int    `json:"amount"`
}

// Register adds every sample to r.
func Register(r *durable.Registry) {
	sayHello := durable.RegisterActivity(r, SayHello, func(ctx durable.ActivityContext, city string) (string, error) {
		return "Hello " + city + "!", nil
	})
	durable.RegisterOrchestrator(r, HelloSequence, func(ctx durable.OrchestrationContext, _ any) ([]string, error) {
		var out []string
		for _, city := range []string{"Tokyo", "Seattle", "London"} {
			s, err := sayHello.Call(ctx, city).Get()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})

	square := durable.RegisterActivity(r, Square, func(ctx durable.ActivityContext, n int) (int, error) { return n * n, nil })
	durable.RegisterOrchestrator(r, FanOutFanIn, func(ctx durable.OrchestrationContext, n int) (int, error) {
		if n < 0 {
			return 0, fmt.Errorf("n must not be negative, got %d", n)
		}
		tasks := make([]durable.Task, n)
		for i := range tasks {
			tasks[i] = square.Call(ctx, i+1)
		}
		if err := durable.WhenAll(tasks...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, t := range tasks {
			v, err := durable.Await[int](t)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})

	durable.RegisterOrchestrator(r, WaitForEvent, func(ctx durable.OrchestrationContext, _ any) (durable.RawPayload, error) {
		var payload durable.RawPayload
		err := ctx.WaitForExternalEvent("Approval").Await(&payload)
		return payload, err
	})

	durable.RegisterEntity(r, Counter, counter)
	durable.RegisterEntity(r, Account, account)
	durable.RegisterOrchestrator(r, Transfer, transfer)
}

// counter supports add (int), reset and get.
func counter(ctx durable.EntityContext) error {
	var n int
	if err := ctx.GetState(&n); err != nil {
		return err
	}
	switch ctx.Operation() {
	case "add":
		var d int
		if err := ctx.GetInput(&d); err != nil {
			return err
		}
		return ctx.SetState(n + d)
	case "reset":
		return ctx.SetState(0)
	case "get":
		return ctx.Return(n)
	case "delete":
		ctx.DeleteState()
		return nil
	}
	return fmt.Errorf("counter: unknown operation %q (want add, reset, get or delete)", ctx.Operation())
}

// account holds a balance: deposit (int, may be negative but never below
// zero) and get.
func account(ctx durable.EntityContext) error {
	var balance int
	if err := ctx.GetState(&balance); err != nil {
		return err
	}
	switch ctx.Operation() {
	case "deposit":
		var d int
		if err := ctx.GetInput(&d); err != nil {
			return err
		}
		if balance+d < 0 {
			return fmt.Errorf("account %s: insufficient funds: balance %d, withdrawal %d", ctx.ID().Key, balance, -d)
		}
		return ctx.SetState(balance + d)
	case "get":
		return ctx.Return(balance)
	}
	return fmt.Errorf("account: unknown operation %q (want deposit or get)", ctx.Operation())
}

// transfer locks both accounts, checks the balance and moves the money:
// no other transfer can interleave, so the total is conserved.
func transfer(ctx durable.OrchestrationContext, req TransferRequest) (bool, error) {
	if req.Amount <= 0 || req.From == req.To {
		return false, fmt.Errorf("invalid transfer %+v", req)
	}
	from, to := core.NewEntityID(Account, req.From), core.NewEntityID(Account, req.To)
	lock, err := ctx.LockEntities(from, to)
	if err != nil {
		return false, err
	}
	defer lock.Release()
	balance, err := durable.Await[int](ctx.CallEntity(from, "get", nil))
	if err != nil {
		return false, err
	}
	if balance < req.Amount {
		return false, nil
	}
	if err := ctx.CallEntity(from, "deposit", -req.Amount).Await(nil); err != nil {
		return false, err
	}
	if err := ctx.CallEntity(to, "deposit", req.Amount).Await(nil); err != nil {
		return false, err
	}
	return true, nil
}
