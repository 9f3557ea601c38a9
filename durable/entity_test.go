package durable_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
)

// counter is the classic counter entity.
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
		if d < 0 {
			return fmt.Errorf("cannot add a negative amount %d", d)
		}
		n += d
	case "reset":
		n = 0
	case "get":
		return ctx.Return(n)
	case "delete":
		ctx.DeleteState()
		return nil
	case "boom":
		_ = ctx.SetState(-999) // rolled back by the panic
		panic("counter exploded")
	default:
		return fmt.Errorf("unknown operation %q", ctx.Operation())
	}
	return ctx.SetState(n)
}

// account is a bank account entity for transfers.
func account(ctx durable.EntityContext) error {
	var bal int
	_ = ctx.GetState(&bal)
	switch ctx.Operation() {
	case "get":
		return ctx.Return(bal)
	case "deposit":
		var d int
		if err := ctx.GetInput(&d); err != nil {
			return err
		}
		if bal+d < 0 {
			return errors.New("insufficient funds")
		}
		return ctx.SetState(bal + d)
	}
	return fmt.Errorf("unknown operation %q", ctx.Operation())
}

func TestEntityBatchWithFailingOperation(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Counter", counter)
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	id := core.NewEntityID("Counter", "k")
	op := func(name string, input string, caller string) *core.HistoryEvent {
		kind := core.EventEntityOperationSignaled
		var p *core.ParentInstance
		if caller != "" {
			kind = core.EventEntityOperationCalled
			p = &core.ParentInstance{InstanceID: caller, ExecutionID: "e1", TaskScheduledID: 7}
		}
		e := core.NewEvent(kind, time.Time{})
		e.Name, e.Input, e.Parent, e.RequestID = name, []byte(input), p, name+input
		return e
	}
	res := x.ExecuteEntity(&durable.EntityBatch{ID: id, Messages: []*core.HistoryEvent{
		op("add", "5", ""),
		op("add", "-3", "orch"), // fails: only its own change is rolled back
		op("boom", "", "orch"),  // panics: rolled back
		op("add", `"x"`, ""),    // bad input
		op("add", "2", ""),
		op("get", "", "orch"),
	}})
	if res.State == nil || string(res.State.Value) != "7" {
		t.Fatalf("state %v, want 7", res.State)
	}
	var fails []string
	for _, o := range res.Operations {
		if o.Failure != nil {
			fails = append(fails, o.Operation+":"+o.Failure.Type)
		}
	}
	if got := strings.Join(fails, ","); got != "add:*errors.errorString,boom:panic,add:InvalidInputError" {
		t.Fatalf("failures %s", got)
	}
	// The callers got one response each: a failure, a failure, a result.
	var replies []string
	for _, m := range res.Messages {
		if m.Target.InstanceID != "orch" || m.Target.ExecutionID != "e1" || m.Event.TaskScheduledID != 7 {
			t.Fatalf("reply to wrong place: %+v %v", m.Target, m.Event)
		}
		replies = append(replies, m.Event.Kind.String()+string(m.Event.Result))
	}
	if got := strings.Join(replies, ","); got != "EntityOperationFailed,EntityOperationFailed,EntityOperationCompleted7" {
		t.Fatalf("replies %s", got)
	}

	// Deleting the state deletes the entity.
	res = x.ExecuteEntity(&durable.EntityBatch{ID: id, State: res.State, Messages: []*core.HistoryEvent{op("delete", "", "")}})
	if res.State != nil {
		t.Fatalf("deleted entity still has a record: %+v", res.State)
	}
}

func TestEntitiesFromOrchestrationsAndEntities(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Counter", counter)
	// Relay forwards its input to a counter and starts an orchestration.
	durable.RegisterEntity(r, "Relay", func(ctx durable.EntityContext) error {
		var n int
		if err := ctx.GetInput(&n); err != nil {
			return err
		}
		if err := ctx.SignalEntity(core.NewEntityID("counter", "relayed"), "add", n); err != nil {
			return err
		}
		_, err := ctx.StartOrchestration("Reader", "reader", nil)
		return err
	})
	durable.RegisterOrchestrator(r, "Reader", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		return durable.Await[int](ctx.CallEntity(core.NewEntityID("counter", "relayed"), "get", nil))
	})
	durable.RegisterOrchestrator(r, "UseCounter", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		c := core.NewEntityID("Counter", "c1")
		for i := 1; i <= 3; i++ {
			if err := ctx.SignalEntity(c, "add", i); err != nil {
				return "", err
			}
		}
		// Operations from one sender run in order: the signals before the call.
		v, err := durable.Await[int](ctx.CallEntity(c, "get", nil))
		if err != nil {
			return "", err
		}
		_, err = durable.Await[int](ctx.CallEntity(c, "add", -1))
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) || !strings.Contains(tf.Failure.Message, "negative amount") {
			return "", fmt.Errorf("unexpected %v", err)
		}
		if err := ctx.SignalEntity(core.NewEntityID("relay", "r"), "go", 42); err != nil {
			return "", err
		}
		// A delayed signal arrives after the timer.
		if err := ctx.SignalEntity(c, "add", 100, durable.WithSignalTime(ctx.CurrentTime().Add(time.Hour))); err != nil {
			return "", err
		}
		return fmt.Sprint(v), nil
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "u", "UseCounter", nil)
		_ = env.SignalEntityAt(0, core.NewEntityID("counter", "client"), "add", 9)
	})
	wantCompleted(t, env, "u", "6")
	wantCompleted(t, env, "reader", 42)
	for key, want := range map[string]int{"c1": 106, "client": 9, "relayed": 42} {
		var n int
		ok, err := env.ReadEntityState(core.NewEntityID("counter", key), &n)
		if !ok || err != nil || n != want {
			t.Errorf("counter %s = %d (%v %v), want %d", key, n, ok, err, want)
		}
	}
}

func TestCriticalSectionTransfers(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Account", account)
	type transfer struct {
		From, To string
		Amount   int
	}
	durable.RegisterOrchestrator(r, "Transfer", func(ctx durable.OrchestrationContext, tr transfer) (bool, error) {
		from, to := core.NewEntityID("account", tr.From), core.NewEntityID("account", tr.To)
		// Lock in the "wrong" order: the SDK sorts.
		cs, err := ctx.LockEntities(to, from)
		if err != nil {
			return false, err
		}
		defer cs.Release()
		if in, ids := ctx.InCriticalSection(); !in || len(ids) != 2 || ids[0] != from && tr.From < tr.To {
			return false, fmt.Errorf("critical section %v %v", in, ids)
		}
		bal, err := durable.Await[int](ctx.CallEntity(from, "get", nil))
		if err != nil {
			return false, err
		}
		if bal < tr.Amount {
			return false, nil
		}
		if err := durable.WhenAll(
			ctx.CallEntity(from, "deposit", -tr.Amount),
			ctx.CallEntity(to, "deposit", tr.Amount)).Await(nil); err != nil {
			return false, err
		}
		return true, nil
	})
	env := run(t, r, func(env *durabletest.Env) {
		for _, a := range []string{"a", "b", "c"} {
			_ = env.SignalEntityAt(0, core.NewEntityID("account", a), "deposit", 100)
		}
		pairs := [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"b", "a"}, {"a", "c"}, {"c", "b"}}
		for i := 0; i < 30; i++ {
			p := pairs[i%len(pairs)]
			_, _ = env.StartAt(time.Second, fmt.Sprintf("t%02d", i), "Transfer", transfer{p[0], p[1], 10 + i})
		}
	})
	total := 0
	for _, a := range []string{"a", "b", "c"} {
		var n int
		if _, err := env.ReadEntityState(core.NewEntityID("account", a), &n); err != nil {
			t.Fatal(err)
		}
		if st := env.EntityState(core.NewEntityID("account", a)); st.LockedBy != "" || len(st.Queue) != 0 {
			t.Fatalf("account %s still locked by %q with %d queued", a, st.LockedBy, len(st.Queue))
		}
		total += n
	}
	if total != 300 {
		t.Fatalf("total balance %d, want 300", total)
	}
	for i := 0; i < 30; i++ {
		s := status(t, env, fmt.Sprintf("t%02d", i))
		if s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("transfer %d: %s %v", i, s.RuntimeStatus, s.Failure)
		}
	}
}

func TestLockOrderAndQueueing(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Counter", counter)
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	ids := []core.EntityID{core.NewEntityID("counter", "b"), core.NewEntityID("counter", "a"), core.NewEntityID("counter", "c")}

	// The lock request goes to the first entity in sorted order.
	var res *durable.EpisodeResult
	durable.RegisterOrchestrator(r, "L", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		cs, err := ctx.LockEntities(ids...)
		if err != nil {
			return 0, err
		}
		defer cs.Release()
		return durable.Await[int](ctx.CallEntity(ids[1], "get", nil))
	})
	start := core.NewEvent(core.EventExecutionStarted, time.Time{})
	start.Name, start.ExecutionID = "L", "x1"
	res = x.Execute(&durable.Episode{InstanceID: "L", NewEvents: []*core.HistoryEvent{start}})
	if len(res.Messages) != 1 || res.Messages[0].Target.InstanceID != "@counter@a" ||
		fmt.Sprint(res.Messages[0].Event.LockSet) != "[@counter@a @counter@b @counter@c]" {
		t.Fatalf("lock request %v", res.Messages)
	}
	req := res.Messages[0].Event

	// Entity a grants and forwards to b; a signal from a client meanwhile waits.
	signal := core.NewEvent(core.EventEntityOperationSignaled, time.Time{})
	signal.Name, signal.Input = "add", []byte("1")
	er := x.ExecuteEntity(&durable.EntityBatch{ID: ids[1], Messages: []*core.HistoryEvent{req, signal}})
	if er.State.LockedBy != "L" || len(er.State.Queue) != 1 || len(er.Operations) != 0 {
		t.Fatalf("entity a after lock: %+v ops %v", er.State, er.Operations)
	}
	if len(er.Messages) != 1 || er.Messages[0].Target.InstanceID != "@counter@b" || er.Messages[0].Event.LockPosition != 1 {
		t.Fatalf("forward %v", er.Messages)
	}
	// The holder's release runs the queued signal.
	rel := core.NewEvent(core.EventEntityLockReleased, time.Time{})
	rel.Parent = &core.ParentInstance{InstanceID: "L"}
	er = x.ExecuteEntity(&durable.EntityBatch{ID: ids[1], State: er.State, Messages: []*core.HistoryEvent{rel}})
	if er.State.LockedBy != "" || len(er.State.Queue) != 0 || string(er.State.Value) != "1" {
		t.Fatalf("entity a after release: %+v", er.State)
	}
	// A release from someone who does not hold the lock is ignored.
	locked := &core.EntityState{LockedBy: "other"}
	er = x.ExecuteEntity(&durable.EntityBatch{ID: ids[1], State: locked, Messages: []*core.HistoryEvent{rel}})
	if er.State.LockedBy != "other" {
		t.Fatalf("stale release unlocked the entity")
	}
}

func TestCriticalSectionRules(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Counter", counter)
	durable.RegisterOrchestrator(r, "Child", func(ctx durable.OrchestrationContext, _ any) (int, error) { return 1, nil })
	a, b, c := core.NewEntityID("counter", "a"), core.NewEntityID("counter", "b"), core.NewEntityID("counter", "c")
	durable.RegisterOrchestrator(r, "Rules", func(ctx durable.OrchestrationContext, _ any) ([]string, error) {
		cs, err := ctx.LockEntities(a, b)
		if err != nil {
			return nil, err
		}
		var broken []string
		note := func(err error) {
			var f *core.FailureDetails
			if errors.As(err, &f) && f.Type == core.FailureLockingRules {
				broken = append(broken, f.Message)
			} else {
				broken = append(broken, fmt.Sprintf("NOT A RULE ERROR: %v", err))
			}
		}
		_, err = ctx.LockEntities(c)
		note(err)
		note(ctx.CallSubOrchestrator("Child", nil).Await(nil))
		note(ctx.CallEntity(c, "get", nil).Await(nil))
		note(ctx.SignalEntity(a, "add", 1))
		// Allowed: calls to locked entities, signals to others.
		if err := ctx.CallEntity(a, "add", 1).Await(nil); err != nil {
			return nil, err
		}
		if err := ctx.SignalEntity(c, "add", 1); err != nil {
			return nil, err
		}
		cs.Release()
		cs.Release() // twice is harmless
		// After release everything is allowed again.
		if err := ctx.CallSubOrchestrator("Child", nil).Await(nil); err != nil {
			return nil, err
		}
		// An orchestration that ends while holding locks releases them.
		if _, err := ctx.LockEntities(c); err != nil {
			return nil, err
		}
		return broken, nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "r", "Rules", nil) })
	s := status(t, env, "r")
	var broken []string
	if err := s.ReadOutput(&broken); err != nil || s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("%s %v %v", s.RuntimeStatus, s.Failure, err)
	}
	wants := []string{"nested critical sections", "sub-orchestrator", "does not lock it", "inside a critical section that locks it"}
	if len(broken) != len(wants) {
		t.Fatalf("rule errors %q", broken)
	}
	for i, w := range wants {
		if !strings.Contains(broken[i], w) {
			t.Errorf("rule error %d %q does not mention %q", i, broken[i], w)
		}
	}
	for _, id := range []core.EntityID{a, b, c} {
		if st := env.EntityState(id); st != nil && st.LockedBy != "" {
			t.Errorf("%s still locked by %s", id, st.LockedBy)
		}
	}
}

func TestEntityInvalidIDs(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Bad", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		err := ctx.CallEntity(core.EntityID{Name: "", Key: "k"}, "op", nil).Await(nil)
		if err == nil || !strings.Contains(err.Error(), "empty entity name") {
			return "", fmt.Errorf("unexpected %v", err)
		}
		if _, err := ctx.LockEntities(); err == nil {
			return "", errors.New("empty lock set accepted")
		}
		return "ok", nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "b", "Bad", nil) })
	wantCompleted(t, env, "b", "ok")
}
