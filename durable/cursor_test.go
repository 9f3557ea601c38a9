package durable_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
)

func sequenceRegistry(n int) *durable.Registry {
	r := durable.NewRegistry()
	durable.RegisterActivity(r, "Step", func(ctx durable.ActivityContext, i int) (int, error) { return i + 1, nil })
	durable.RegisterOrchestrator(r, "Seq", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		v := 0
		for i := 0; i < n; i++ {
			var err error
			if v, err = durable.Await[int](ctx.CallActivity("Step", v)); err != nil {
				return 0, err
			}
		}
		return v, nil
	})
	return r
}

// driver steps one orchestration through the executor by hand, running
// its activities, the way an engine does.
type driver struct {
	x       *durable.Executor
	history []*core.HistoryEvent
	cursor  *durable.Cursor
	cache   bool
}

func (d *driver) episode(t testing.TB, events ...*core.HistoryEvent) *durable.EpisodeResult {
	res := d.x.Execute(&durable.Episode{InstanceID: "i", History: d.history, NewEvents: events,
		Now: time.Unix(1700000000, 0), Cursor: d.cursor, KeepCursor: d.cache})
	d.history = append(d.history, res.NewEvents...)
	d.cursor = res.Cursor
	return res
}

func (d *driver) runToEnd(t testing.TB) *durable.EpisodeResult {
	start := core.NewEvent(core.EventExecutionStarted, time.Unix(1700000000, 0))
	start.Name, start.InstanceID, start.ExecutionID = "Seq", "i", "e"
	res := d.episode(t, start)
	for !res.Done() {
		if len(res.Activities) != 1 {
			t.Fatalf("expected one activity, got %v", res.Activities)
		}
		reply := d.x.ExecuteActivity(context.Background(), res.Activities[0])
		res = d.episode(t, reply.Event)
	}
	return res
}

func TestCursorReleaseEndsGoroutine(t *testing.T) {
	r := sequenceRegistry(3)
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	before := runtime.NumGoroutine()
	var cursors []*durable.Cursor
	for i := 0; i < 50; i++ {
		d := &driver{x: x, cache: true}
		start := core.NewEvent(core.EventExecutionStarted, time.Now())
		start.Name, start.ExecutionID = "Seq", "e"
		res := d.episode(t, start)
		if res.Cursor == nil {
			t.Fatal("no cursor kept for a running orchestration")
		}
		cursors = append(cursors, res.Cursor)
	}
	if n := runtime.NumGoroutine(); n < before+50 {
		t.Fatalf("expected 50 suspended executions, goroutines %d -> %d", before, n)
	}
	for _, c := range cursors {
		c.Release()
		c.Release()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines leaked: %d before, %d after release", before, n)
	}
}

func TestCursorDeferredCallsRunOnRelease(t *testing.T) {
	r := durable.NewRegistry()
	deferred := 0
	durable.RegisterOrchestrator(r, "D", func(ctx durable.OrchestrationContext, _ any) (any, error) {
		defer func() {
			deferred++
			// Awaiting in a deferred call during release returns at once.
			_ = ctx.CreateTimer(time.Hour).Await(nil)
		}()
		return nil, ctx.WaitForExternalEvent("x").Await(nil)
	})
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	start := core.NewEvent(core.EventExecutionStarted, time.Now())
	start.Name = "D"
	res := x.Execute(&durable.Episode{InstanceID: "d", NewEvents: []*core.HistoryEvent{start}, KeepCursor: true})
	res.Cursor.Release()
	if deferred != 1 {
		t.Fatalf("deferred calls ran %d times", deferred)
	}
}

func TestCursorThatDoesNotFitIsReplaced(t *testing.T) {
	r := sequenceRegistry(3)
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	d := &driver{x: x, cache: true}
	start := core.NewEvent(core.EventExecutionStarted, time.Now())
	start.Name, start.ExecutionID = "Seq", "e"
	res := d.episode(t, start)
	stale := res.Cursor
	reply := x.ExecuteActivity(context.Background(), res.Activities[0])
	res = d.episode(t, reply.Event)
	if res.Replayed != 0 {
		t.Fatalf("fitting cursor replayed %d events", res.Replayed)
	}
	// Hand the executor the stale cursor of an older history length: it
	// must notice and replay instead.
	if stale.HistoryLength() != -1 {
		t.Fatalf("a cursor passed to Execute is consumed; HistoryLength %d", stale.HistoryLength())
	}
	d2 := &driver{x: x, cache: true, history: d.history[:4]}
	res2 := d2.episode(t, reply.Event)
	res2.Cursor.Release()
	if res2.Replayed != 4 {
		t.Fatalf("replayed %d events, want 4", res2.Replayed)
	}
	d.cursor.Release()
}

func TestCachedAndUncachedGiveIdenticalResults(t *testing.T) {
	r := sequenceRegistry(5)
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	a, b := &driver{x: x, cache: true}, &driver{x: x, cache: false}
	ra, rb := a.runToEnd(t), b.runToEnd(t)
	if durabletest.Summarize(ra) != durabletest.Summarize(rb) || len(a.history) != len(b.history) {
		t.Fatalf("results differ:\n%s\n%s", durabletest.Summarize(ra), durabletest.Summarize(rb))
	}
	for i := range a.history {
		if durabletest.EventText(a.history[i]) != durabletest.EventText(b.history[i]) {
			t.Fatalf("history differs at %d: %s vs %s", i, durabletest.EventText(a.history[i]), durabletest.EventText(b.history[i]))
		}
	}
	if string(ra.Output) != "5" {
		t.Fatalf("output %s", ra.Output)
	}
}

func TestCompletedHistoryRunsNothing(t *testing.T) {
	r := sequenceRegistry(1)
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	d := &driver{x: x}
	d.runToEnd(t)
	res := d.episode(t, core.NewEvent(core.EventEventRaised, time.Now()))
	if res.Status != core.StatusCompleted || len(res.NewEvents) != 0 {
		t.Fatalf("episode after completion: %s %v", res.Status, res.NewEvents)
	}
}

func TestActivityContext(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterActivity(r, "Info", func(ctx durable.ActivityContext, _ any) (string, error) {
		if err := ctx.Context().Err(); err != nil {
			return "", err
		}
		return ctx.InstanceID() + "/" + ctx.Name(), nil
	})
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	ev := core.NewEvent(core.EventTaskScheduled, time.Now())
	ev.Name, ev.EventID = "Info", 3
	m := &core.TaskMessage{Target: core.Instance{InstanceID: "inst", ExecutionID: "e"}, Event: ev}
	reply := x.ExecuteActivity(context.Background(), m)
	if reply.Event.Kind != core.EventTaskCompleted || string(reply.Event.Result) != `"inst/Info"` ||
		reply.Event.TaskScheduledID != 3 || reply.Target.ExecutionID != "e" {
		t.Fatalf("reply %+v %v", reply.Target, durabletest.EventText(reply.Event))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reply = x.ExecuteActivity(ctx, m)
	if reply.Event.Kind != core.EventTaskFailed || !strings.Contains(reply.Event.Failure.Message, "canceled") {
		t.Fatalf("cancelled activity: %v", durabletest.EventText(reply.Event))
	}
}

func TestRegistryErrors(t *testing.T) {
	r := durable.NewRegistry()
	if err := r.AddActivity("", func(durable.ActivityContext) (any, error) { return nil, nil }); err == nil {
		t.Fatal("empty name accepted")
	}
	if err := r.AddActivity("A", nil); err == nil || !strings.Contains(err.Error(), "nil function") {
		t.Fatalf("nil function: %v", err)
	}
	_ = r.AddActivity("A", func(durable.ActivityContext) (any, error) { return nil, nil })
	err := r.AddActivity("A", func(durable.ActivityContext) (any, error) { return nil, nil })
	if err == nil || !strings.Contains(err.Error(), `activity "A": already registered`) {
		t.Fatalf("duplicate: %v", err)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(error).Error(), "already registered") {
			t.Fatalf("typed duplicate registration should panic clearly, got %v", p)
		}
	}()
	durable.RegisterEntity(r, "E", func(durable.EntityContext) error { return nil })
	durable.RegisterEntity(r, "e", func(durable.EntityContext) error { return nil }) // names are case-insensitive
}

// upperConverter stores strings upper-cased, to show the converter is used
// end to end.
type upperConverter struct{ durable.JSONConverter }

func (upperConverter) Marshal(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		v = strings.ToUpper(s)
	}
	return durable.JSONConverter{}.Marshal(v)
}

func TestPluggableConverter(t *testing.T) {
	r := durable.NewRegistry(durable.WithConverter(upperConverter{}))
	durable.RegisterActivity(r, "Echo", func(ctx durable.ActivityContext, s string) (string, error) { return s + "!", nil })
	durable.RegisterOrchestrator(r, "O", func(ctx durable.OrchestrationContext, s string) (string, error) {
		return durable.Await[string](ctx.CallActivity("Echo", s+"-x"))
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "o", "O", "hi") })
	wantCompleted(t, env, "o", "HI-X!")
}

func TestInvalidInstanceIDs(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "O", func(ctx durable.OrchestrationContext, id string) (string, error) {
		if err := ctx.SendEvent(id, "e", nil); err == nil {
			return "", errors.New("bad id accepted by SendEvent")
		}
		if id == "" {
			return "ok", nil // an empty WithInstanceID means "derive one"
		}
		err := ctx.CallSubOrchestrator("O", nil, durable.WithInstanceID(id)).Await(nil)
		if err == nil || !strings.Contains(err.Error(), "invalid instance id") {
			return "", errors.New("bad id accepted by CallSubOrchestrator")
		}
		return "ok", nil
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "a", "O", "")
		start(t, env, "b", "O", "bad\x00id")
		start(t, env, "c", "O", strings.Repeat("x", 300))
	})
	for _, id := range []string{"a", "b", "c"} {
		wantCompleted(t, env, id, "ok")
	}
}
