package durable_test

// Regression tests for defects found in review of the executor.

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
)

// 1. Terminating an instance runs the function's deferred code before
// endEpisode, and calls made there are emitted as new actions.
func TestTerminateEmitsDeferredCalls(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterActivity(r, "Cleanup", func(ctx durable.ActivityContext, _ any) (string, error) { return "cleaned", nil })
	durable.RegisterOrchestrator(r, "O", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		defer ctx.CallActivity("Cleanup", nil)
		defer ctx.SendEvent("other", "bye", nil)
		return durable.Await[string](ctx.WaitForExternalEvent("never"))
	})
	env := durabletest.New(r)
	start(t, env, "o", "O", nil)
	_ = env.TerminateAt(time.Minute, "o", "stop")
	if err := env.Run(); err != nil {
		t.Fatal(err)
	}
	s := status(t, env, "o")
	for _, ev := range s.History {
		t.Log(durabletest.EventText(ev))
	}
	for _, ev := range s.History {
		if ev.Kind == core.EventTaskScheduled || ev.Kind == core.EventEventSent {
			t.Errorf("terminated instance recorded %s after termination", ev.Kind)
		}
	}
}

// 2. A release from an orchestration whose lock request is still queued is
// ignored; the queued request is later granted to the dead orchestration.
func TestTerminatedWaiterLocksEntityForever(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Counter", counter)
	e := core.NewEntityID("counter", "x")
	durable.RegisterOrchestrator(r, "Hold", func(ctx durable.OrchestrationContext, d time.Duration) (int, error) {
		cs, err := ctx.LockEntities(e)
		if err != nil {
			return 0, err
		}
		defer cs.Release()
		if err := ctx.CreateTimer(d).Await(nil); err != nil {
			return 0, err
		}
		return 1, nil
	})
	env := durabletest.New(r)
	start(t, env, "a", "Hold", time.Hour)
	_, _ = env.StartAt(time.Second, "b", "Hold", time.Minute)
	_ = env.TerminateAt(time.Minute, "b", "stop")
	_ = env.SignalEntityAt(2*time.Hour, e, "add", 5)
	if err := env.Run(); err != nil {
		t.Fatal(err)
	}
	if a, b := status(t, env, "a").RuntimeStatus, status(t, env, "b").RuntimeStatus; a != core.StatusCompleted || b != core.StatusTerminated {
		t.Fatalf("a=%s b=%s, want Completed and Terminated", a, b)
	}
	st := env.EntityState(e)
	if st == nil {
		t.Fatal("the entity has no state: the signal after the locks was never processed")
	}
	if st.LockedBy != "" || len(st.Queue) != 0 {
		t.Errorf("entity locked forever by %q, %d requests stuck in queue", st.LockedBy, len(st.Queue))
	}
	// The signal sent after both critical sections ran.
	var n int
	if ok, err := env.ReadEntityState(e, &n); !ok || err != nil || n != 5 {
		t.Errorf("entity state %d (exists %v, %v), want 5", n, ok, err)
	}
}

// 3. WhenAll() with no tasks has no orchestration; Await(&out) derefs nil.
func TestWhenAllEmptyAwaitOut(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "W", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		var x int
		if err := durable.WhenAll().Await(&x); err != nil {
			return "", err
		}
		return "ok", nil
	})
	env := durabletest.New(r)
	start(t, env, "w", "W", nil)
	_ = env.Run()
	s := status(t, env, "w")
	if s.RuntimeStatus != core.StatusCompleted {
		t.Errorf("status %s: %v", s.RuntimeStatus, s.Failure)
	}
}

var _ = fmt.Sprint

// Event delivered while suspended after the timer that makes the function
// ContinueAsNew: it is carried over to the next generation, as it is
// without suspension (where it arrives after the ContinueAsNew).
func TestSuspendedCarryOver(t *testing.T) {
	for _, suspend := range []bool{false, true} {
		r := durable.NewRegistry()
		durable.RegisterOrchestrator(r, "C", func(ctx durable.OrchestrationContext, gen int) (string, error) {
			if gen == 1 {
				return durable.Await[string](ctx.WaitForExternalEvent("x", durable.WithTimeout(time.Hour)))
			}
			_ = ctx.WaitForExternalEvent("x") // not awaited
			_ = ctx.CreateTimer(time.Minute).Await(nil)
			ctx.ContinueAsNew(1)
			return "", nil
		})
		env := durabletest.New(r)
		start(t, env, "c", "C", 0)
		if suspend {
			// The timer (1m) and the event (1m1s) both arrive while
			// suspended, and are delivered together at the resume.
			env.SuspendAt(30*time.Second, "c", "")
			env.ResumeAt(5*time.Minute, "c", "")
		}
		_ = env.RaiseEventAt(time.Minute+time.Second, "c", "x", "payload")
		if err := env.Run(); err != nil {
			t.Fatal(err)
		}
		// A lost event would end generation 1 by its one-hour timeout.
		s := status(t, env, "c")
		if s.RuntimeStatus != core.StatusCompleted || string(s.Output) != `"payload"` {
			t.Errorf("suspend=%v: %s output %s failure %v; want Completed with \"payload\"", suspend, s.RuntimeStatus, s.Output, s.Failure)
		}
	}
}

// Retry: a failure at or after RetryTimeout since the first attempt is
// final (as in DTFx: the elapsed time is checked when an attempt fails,
// the next delay is not added).
func TestRetryTimeoutSemantics(t *testing.T) {
	for _, c := range []struct {
		first    time.Duration
		attempts int
		end      time.Duration
	}{
		// 0s, 10s, 30s fail within 60s and are retried; 70s is final.
		{10 * time.Second, 4, 70 * time.Second},
		// 0s, 20s fail within 60s; the failure at exactly 60s is final.
		{20 * time.Second, 3, 60 * time.Second},
	} {
		r := durable.NewRegistry()
		var at []time.Duration
		var t0 time.Time
		durable.RegisterActivity(r, "F", func(ctx durable.ActivityContext, _ any) (int, error) { return 0, errors.New("fail") })
		durable.RegisterOrchestrator(r, "R", func(ctx durable.OrchestrationContext, _ any) (int, error) {
			if !ctx.IsReplaying() && t0.IsZero() {
				t0 = ctx.CurrentTime()
			}
			n, err := durable.Await[int](ctx.CallActivity("F", nil, durable.WithRetry(durable.RetryPolicy{
				MaxAttempts: 10, FirstRetryInterval: c.first, BackoffCoefficient: 2, RetryTimeout: 60 * time.Second})))
			at = append(at, ctx.CurrentTime().Sub(t0))
			return n, err
		})
		env := durabletest.New(r)
		start(t, env, "r", "R", nil)
		if err := env.Run(); err != nil {
			t.Fatal(err)
		}
		s := status(t, env, "r")
		if s.RuntimeStatus != core.StatusFailed || s.Failure == nil || !strings.Contains(s.Failure.Message, "fail") {
			t.Fatalf("first=%v: %s %v, want Failed with the activity's error", c.first, s.RuntimeStatus, s.Failure)
		}
		var attempts int
		for _, ev := range s.History {
			if ev.Kind == core.EventTaskScheduled {
				attempts++
			}
		}
		if attempts != c.attempts {
			t.Errorf("first=%v: %d attempts, want %d", c.first, attempts, c.attempts)
		}
		if len(at) == 0 || at[len(at)-1] != c.end {
			t.Errorf("first=%v: gave up at %v, want %v", c.first, at, c.end)
		}
	}
}

// Awaiting a task of another orchestration hangs both goroutines instead
// of panicking with the intended message.
func TestForeignTaskAwait(t *testing.T) {
	r := durable.NewRegistry()
	var shared durable.Task
	durable.RegisterOrchestrator(r, "A", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		shared = ctx.CreateTimer(time.Hour)
		return 0, shared.Await(nil)
	})
	durable.RegisterOrchestrator(r, "B", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		return 0, shared.Await(nil)
	})
	x := durable.NewExecutor(r, durable.ExecutorOptions{})
	st := func(name string) *core.HistoryEvent {
		e := core.NewEvent(core.EventExecutionStarted, time.Time{})
		e.Name, e.ExecutionID = name, name+"1"
		return e
	}
	resA := x.Execute(&durable.Episode{InstanceID: "a", NewEvents: []*core.HistoryEvent{st("A")}, KeepCursor: true})
	defer resA.Cursor.Release()
	done := make(chan *durable.EpisodeResult, 1)
	go func() { done <- x.Execute(&durable.Episode{InstanceID: "b", NewEvents: []*core.HistoryEvent{st("B")}}) }()
	select {
	case res := <-done:
		if res.Status != core.StatusFailed || res.Failure == nil || !strings.Contains(res.Failure.Message, "awaited outside its orchestration") {
			t.Errorf("B: %s %v; want a failure naming the misuse", res.Status, res.Failure)
		}
	case <-time.After(time.Second):
		t.Errorf("Execute of B hung (goroutines: %d)", runtime.NumGoroutine())
	}
}

func TestMixedCachedVsUncached(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterEntity(r, "Counter", counter)
	calls := map[string]int{}
	durable.RegisterActivity(r, "Flaky", func(ctx durable.ActivityContext, k string) (string, error) {
		calls[k]++
		if calls[k]%3 != 0 {
			return "", errors.New("flaky")
		}
		return k, nil
	})
	durable.RegisterOrchestrator(r, "M", func(ctx durable.OrchestrationContext, gen int) (string, error) {
		e := core.NewEntityID("counter", "m")
		rt := ctx.CallActivity("Flaky", ctx.NewUUID(), durable.WithRetry(durable.RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Minute, BackoffCoefficient: 2}))
		ev := ctx.WaitForExternalEvent("go", durable.WithTimeout(30*time.Minute))
		var w int
		if err := durable.WhenAny(rt, ev).Await(&w); err != nil {
			return "", err
		}
		cs, err := ctx.LockEntities(e)
		if err != nil {
			return "", err
		}
		if err := ctx.CallEntity(e, "add", 1).Await(nil); err != nil {
			return "", err
		}
		if gen < 2 {
			ctx.ContinueAsNew(gen + 1)
			return "", nil
		}
		cs.Release()
		_ = durable.WhenAll(rt, ev).Await(nil)
		return "done", nil
	})
	run(t, r, func(env *durabletest.Env) {
		start(t, env, "m", "M", 0)
		env.SuspendAt(90*time.Second, "m", "")
		_ = env.RaiseEventAt(100*time.Second, "m", "go", 1)
		_ = env.RaiseEventAt(100*time.Second, "m", "go", 2)
		env.ResumeAt(200*time.Second, "m", "")
		_ = env.RaiseEventAt(300*time.Second, "m", "go", 3)
	})
}

func TestDeferredLogOnRelease(t *testing.T) {
	for _, cache := range []bool{true, false} {
		r := durable.NewRegistry()
		logs := &countingHandler{}
		notReplaying := 0
		durable.RegisterOrchestrator(r, "D", func(ctx durable.OrchestrationContext, _ any) (int, error) {
			defer func() {
				logs.log(ctx, "done")
				if !ctx.IsReplaying() {
					notReplaying++
				}
			}()
			for i := 0; i < 3; i++ {
				if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
					return 0, err
				}
			}
			return 1, nil
		})
		env := durabletest.New(r, durabletest.WithCursorCache(cache))
		start(t, env, "d", "D", nil)
		if err := env.Run(); err != nil {
			t.Fatal(err)
		}
		env.Close()
		if logs.lines["done"] != 1 || notReplaying != 1 {
			t.Errorf("cache=%v: deferred log line written %d times, !IsReplaying seen %d times; want 1", cache, logs.lines["done"], notReplaying)
		}
	}
}
