package durable_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
)

// run plays a scenario twice, with cached cursors and with full replay at
// every episode, checks that both produce the same histories, and that
// every recorded episode replays from scratch to the same result. It
// returns the cached run's environment.
func run(t *testing.T, r *durable.Registry, setup func(env *durabletest.Env), opts ...durabletest.Option) *durabletest.Env {
	t.Helper()
	var texts [2]string
	var cached *durabletest.Env
	for i, cache := range []bool{true, false} {
		env := durabletest.New(r, append([]durabletest.Option{durabletest.WithCursorCache(cache)}, opts...)...)
		setup(env)
		if err := env.Run(); err != nil {
			t.Fatalf("cache=%v: %v", cache, err)
		}
		if err := env.CheckReplay(); err != nil {
			t.Fatalf("cache=%v: %v", cache, err)
		}
		texts[i] = histories(t, env)
		if cache {
			cached = env
		} else {
			env.Close()
		}
	}
	if texts[0] != texts[1] {
		t.Fatalf("cached and uncached runs differ:\n--- cached\n%s\n--- uncached\n%s", texts[0], texts[1])
	}
	t.Cleanup(cached.Close)
	return cached
}

func histories(t *testing.T, env *durabletest.Env) string {
	var b strings.Builder
	for _, id := range env.Instances() {
		s, err := env.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s %s\n", id, s.RuntimeStatus)
		for _, ev := range s.History {
			b.WriteString(durabletest.EventText(ev))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func status(t *testing.T, env *durabletest.Env, id string) *durable.OrchestrationStatus {
	t.Helper()
	s, err := env.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCompleted[T comparable](t *testing.T, env *durabletest.Env, id string, want T) {
	t.Helper()
	s := status(t, env, id)
	if s.RuntimeStatus != core.StatusCompleted {
		t.Fatalf("%s: status %s, failure %v; want Completed", id, s.RuntimeStatus, s.Failure)
	}
	var got T
	if err := s.ReadOutput(&got); err != nil {
		t.Fatalf("%s: read output %q: %v", id, s.Output, err)
	}
	if got != want {
		t.Fatalf("%s: output %v, want %v", id, got, want)
	}
}

func wantFailed(t *testing.T, env *durabletest.Env, id string, typ string, msgParts ...string) *core.FailureDetails {
	t.Helper()
	s := status(t, env, id)
	if s.RuntimeStatus != core.StatusFailed || s.Failure == nil {
		t.Fatalf("%s: status %s failure %v; want Failed", id, s.RuntimeStatus, s.Failure)
	}
	if typ != "" && s.Failure.Type != typ {
		t.Fatalf("%s: failure type %q (%v), want %q", id, s.Failure.Type, s.Failure, typ)
	}
	for _, p := range msgParts {
		if !strings.Contains(s.Failure.Error(), p) {
			t.Fatalf("%s: failure %q does not mention %q", id, s.Failure.Error(), p)
		}
	}
	return s.Failure
}

func start(t *testing.T, env *durabletest.Env, id, name string, input any) {
	t.Helper()
	if _, err := env.Start(id, name, input); err != nil {
		t.Fatal(err)
	}
}

func TestActivitySequence(t *testing.T) {
	r := durable.NewRegistry()
	hello := durable.RegisterActivity(r, "SayHello", func(ctx durable.ActivityContext, city string) (string, error) {
		return "Hello " + city + "!", nil
	})
	durable.RegisterOrchestrator(r, "Hello", func(ctx durable.OrchestrationContext, _ any) ([]string, error) {
		var out []string
		for _, c := range []string{"Tokyo", "Seattle", "London"} {
			s, err := hello.Call(ctx, c).Get()
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "h", "Hello", nil) })
	s := status(t, env, "h")
	var got []string
	if err := s.ReadOutput(&got); err != nil || strings.Join(got, ",") != "Hello Tokyo!,Hello Seattle!,Hello London!" {
		t.Fatalf("output %q %v (status %s %v)", s.Output, err, s.RuntimeStatus, s.Failure)
	}
	// With the cursor cache no episode after the first replays anything.
	for _, ep := range env.Episodes() {
		if len(ep.History) > 0 && ep.Result.Replayed != 0 {
			t.Fatalf("cached episode replayed %d events", ep.Result.Replayed)
		}
	}
}

func TestFactorialChain(t *testing.T) {
	r := durable.NewRegistry()
	mul := durable.RegisterActivity(r, "Mul", func(ctx durable.ActivityContext, in [2]int) (int, error) { return in[0] * in[1], nil })
	durable.RegisterOrchestrator(r, "Fact", func(ctx durable.OrchestrationContext, n int) (int, error) {
		acc := 1
		for i := 2; i <= n; i++ {
			v, err := mul.Call(ctx, [2]int{acc, i}).Get()
			if err != nil {
				return 0, err
			}
			acc = v
		}
		return acc, nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "f", "Fact", 10) })
	wantCompleted(t, env, "f", 3628800)
}

func TestFanOutFanIn(t *testing.T) {
	r := durable.NewRegistry()
	sq := durable.RegisterActivity(r, "Square", func(ctx durable.ActivityContext, n int) (int, error) { return n * n, nil })
	durable.RegisterOrchestrator(r, "Fan", func(ctx durable.OrchestrationContext, n int) (int, error) {
		var ts []durable.Task
		for i := 1; i <= n; i++ {
			ts = append(ts, sq.Call(ctx, i))
		}
		if err := durable.WhenAll(ts...).Await(nil); err != nil {
			return 0, err
		}
		sum := 0
		for _, tk := range ts {
			v, err := durable.Await[int](tk)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "fan", "Fan", 200) })
	wantCompleted(t, env, "fan", 200*201*401/6)
}

func TestWhenAllEmptyAndFailure(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterActivity(r, "Fail", func(ctx durable.ActivityContext, n int) (int, error) {
		if n == 2 {
			return 0, errors.New("two is bad")
		}
		return n, nil
	})
	durable.RegisterOrchestrator(r, "W", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		if err := durable.WhenAll().Await(nil); err != nil {
			return "", err
		}
		a, b, c := ctx.CallActivity("Fail", 1), ctx.CallActivity("Fail", 2), ctx.CallActivity("Fail", 3)
		err := durable.WhenAll(a, b, c).Await(nil)
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) || tf.Name != "Fail" || !strings.Contains(tf.Failure.Message, "two is bad") {
			return "", fmt.Errorf("unexpected WhenAll error %v", err)
		}
		// Every task is done once WhenAll is, failed or not.
		if !a.Done() || !c.Done() {
			return "", errors.New("WhenAll returned before all tasks were done")
		}
		return "ok", nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "w", "W", nil) })
	wantCompleted(t, env, "w", "ok")
}

func TestTimersAndCurrentTime(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Sleep", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		t0 := ctx.CurrentTime()
		if err := ctx.CreateTimer(time.Hour).Await(nil); err != nil {
			return "", err
		}
		t1 := ctx.CurrentTime()
		if err := ctx.CreateTimerAt(t1.Add(30 * time.Minute)).Await(nil); err != nil {
			return "", err
		}
		return ctx.CurrentTime().Sub(t0).String() + " " + t1.Sub(t0).String(), nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "s", "Sleep", nil) })
	wantCompleted(t, env, "s", "1h30m0s 1h0m0s")
}

func TestExternalEventsBufferedAndAwaited(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Wait", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		// "early" arrives before anyone waits: it is buffered.
		if err := ctx.CreateTimer(time.Minute).Await(nil); err != nil {
			return "", err
		}
		a, err := durable.Await[string](ctx.WaitForExternalEvent("early"))
		if err != nil {
			return "", err
		}
		b, err := durable.Await[string](ctx.WaitForExternalEvent("LATE")) // names are case-insensitive
		if err != nil {
			return "", err
		}
		return a + "+" + b, nil
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "e", "Wait", nil)
		_ = env.RaiseEventAt(time.Second, "e", "early", "A")
		_ = env.RaiseEventAt(time.Hour, "e", "late", "B")
	})
	wantCompleted(t, env, "e", "A+B")
}

// approval races an approval event against a timer, both with WhenAny and
// with WithTimeout.
func approvalRegistry() *durable.Registry {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Approval", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		ev := ctx.WaitForExternalEvent("Approval")
		timer := ctx.CreateTimer(time.Hour)
		var winner int
		if err := durable.WhenAny(ev, timer).Await(&winner); err != nil {
			return "", err
		}
		if winner == 1 {
			return "escalated", nil
		}
		var who string
		if err := ev.Await(&who); err != nil {
			return "", err
		}
		return "approved by " + who, nil
	})
	durable.RegisterOrchestrator(r, "ApprovalTimeout", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		who, err := durable.Await[string](ctx.WaitForExternalEvent("Approval", durable.WithTimeout(time.Hour)))
		if durable.IsTimeout(err) {
			return "timed out", nil
		}
		if err != nil {
			return "", err
		}
		return "approved by " + who, nil
	})
	return r
}

func TestApprovalEventWins(t *testing.T) {
	env := run(t, approvalRegistry(), func(env *durabletest.Env) {
		start(t, env, "a", "Approval", nil)
		start(t, env, "b", "ApprovalTimeout", nil)
		_ = env.RaiseEventAt(10*time.Minute, "a", "Approval", "ann")
		_ = env.RaiseEventAt(10*time.Minute, "b", "Approval", "bob")
	})
	wantCompleted(t, env, "a", "approved by ann")
	wantCompleted(t, env, "b", "approved by bob")
}

func TestApprovalTimerWins(t *testing.T) {
	env := run(t, approvalRegistry(), func(env *durabletest.Env) {
		start(t, env, "a", "Approval", nil)
		start(t, env, "b", "ApprovalTimeout", nil)
		_ = env.RaiseEventAt(2*time.Hour, "a", "Approval", "ann")
		_ = env.RaiseEventAt(2*time.Hour, "b", "Approval", "bob")
	})
	wantCompleted(t, env, "a", "escalated")
	wantCompleted(t, env, "b", "timed out")
}

func TestSubOrchestrations(t *testing.T) {
	r := durable.NewRegistry()
	child := durable.RegisterOrchestrator(r, "Child", func(ctx durable.OrchestrationContext, n int) (int, error) {
		if n < 0 {
			return 0, fmt.Errorf("negative input %d", n)
		}
		return n * 10, nil
	})
	durable.RegisterOrchestrator(r, "Parent", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		var ts []durable.Task
		for i := 0; i < 10; i++ {
			ts = append(ts, child.Call(ctx, i))
		}
		named := child.Call(ctx, 7, durable.WithInstanceID("my-child"))
		if err := durable.WhenAll(append(ts, named)...).Await(nil); err != nil {
			return "", err
		}
		sum := 0
		for _, tk := range ts {
			v, _ := durable.Await[int](tk)
			sum += v
		}
		_, err := child.Call(ctx, -1).Get()
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) || tf.Kind != "sub-orchestration" || !strings.Contains(tf.Failure.Message, "negative input -1") {
			return "", fmt.Errorf("unexpected child failure %v", err)
		}
		return fmt.Sprint(sum), nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "p", "Parent", nil) })
	wantCompleted(t, env, "p", "450")
	wantCompleted(t, env, "my-child", 70)
	// Derived child ids are deterministic and name their parent.
	n := 0
	for _, id := range env.Instances() {
		if strings.HasPrefix(id, "p:") {
			n++
			if s := status(t, env, id); s.ParentInstanceID != "p" {
				t.Fatalf("child %s has parent %q", id, s.ParentInstanceID)
			}
		}
	}
	if n != 11 {
		t.Fatalf("%d derived children, want 11: %v", n, env.Instances())
	}
}

func TestEventConversationBetweenParentAndChild(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Responder", func(ctx durable.OrchestrationContext, parent string) (string, error) {
		q, err := durable.Await[string](ctx.WaitForExternalEvent("question"))
		if err != nil {
			return "", err
		}
		if err := ctx.SendEvent(parent, "answer", "re: "+q); err != nil {
			return "", err
		}
		return "answered", nil
	})
	durable.RegisterOrchestrator(r, "Asker", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		childTask := ctx.CallSubOrchestrator("Responder", ctx.InstanceID(), durable.WithInstanceID("responder"))
		if err := ctx.SendEvent("responder", "question", "ping"); err != nil {
			return "", err
		}
		a, err := durable.Await[string](ctx.WaitForExternalEvent("answer"))
		if err != nil {
			return "", err
		}
		c, err := durable.Await[string](childTask)
		return a + "/" + c, err
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "asker", "Asker", nil) })
	wantCompleted(t, env, "asker", "re: ping/answered")
}

func TestContinueAsNewCarriesEvents(t *testing.T) {
	r := durable.NewRegistry()
	// A counter actor: each execution handles one "add" event and continues
	// as new with the sum; "stop" ends it.
	durable.RegisterOrchestrator(r, "Counter", func(ctx durable.OrchestrationContext, sum int) (int, error) {
		var winner int
		add, stop := ctx.WaitForExternalEvent("add"), ctx.WaitForExternalEvent("stop")
		if err := durable.WhenAny(add, stop).Await(&winner); err != nil {
			return 0, err
		}
		if winner == 1 {
			return sum, nil
		}
		n, err := durable.Await[int](add)
		if err != nil {
			return 0, err
		}
		ctx.ContinueAsNew(sum + n)
		return 0, nil
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "c", "Counter", 0)
		// All arrive in one batch: the first execution consumes one, the
		// rest are carried over execution to execution.
		for i := 1; i <= 5; i++ {
			_ = env.RaiseEventAt(time.Second, "c", "add", i)
		}
		_ = env.RaiseEventAt(time.Minute, "c", "stop", nil)
	})
	wantCompleted(t, env, "c", 15)
	s := status(t, env, "c")
	if s.History[1].Kind != core.EventExecutionStarted || string(s.History[1].Input) != "15" {
		t.Fatalf("last execution should start with input 15: %v", s.History[:2])
	}
}

func TestContinueAsNewDropsEventsWhenAsked(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Once", func(ctx durable.OrchestrationContext, gen int) (string, error) {
		if gen == 0 {
			if err := ctx.WaitForExternalEvent("go").Await(nil); err != nil {
				return "", err
			}
			ctx.ContinueAsNew(1, durable.DropUnprocessedEvents())
			return "", nil
		}
		// The second "go" was dropped, so only the timeout can end this.
		err := ctx.WaitForExternalEvent("go", durable.WithTimeout(time.Minute)).Await(nil)
		if durable.IsTimeout(err) {
			return "dropped", nil
		}
		return "carried", err
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "o", "Once", 0)
		_ = env.RaiseEventAt(time.Second, "o", "go", nil)
		_ = env.RaiseEventAt(time.Second, "o", "go", nil)
	})
	wantCompleted(t, env, "o", "dropped")
}

func TestContinueAsNewThenTimer(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Loop", func(ctx durable.OrchestrationContext, n int) (int, error) {
		if err := ctx.CreateTimer(time.Minute).Await(nil); err != nil {
			return 0, err
		}
		if n < 3 {
			ctx.ContinueAsNew(n + 1)
			return 0, nil
		}
		return n, nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "l", "Loop", 0) })
	wantCompleted(t, env, "l", 3)
	if got := env.Now().Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); got != 4*time.Minute {
		t.Fatalf("virtual time advanced %v, want 4m", got)
	}
}

func TestCustomStatusUUIDAndReplaySafeLogging(t *testing.T) {
	r := durable.NewRegistry()
	logs := &countingHandler{}
	durable.RegisterOrchestrator(r, "U", func(ctx durable.OrchestrationContext, _ any) ([]string, error) {
		a := ctx.NewUUID()
		if err := ctx.SetCustomStatus(map[string]int{"step": 1}); err != nil {
			return nil, err
		}
		logs.log(ctx, "before timer")
		if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
			return nil, err
		}
		b := ctx.NewUUID()
		logs.log(ctx, "after timer")
		_ = ctx.SetCustomStatus(map[string]int{"step": 2})
		return []string{a, b}, nil
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "u", "U", nil) })
	s := status(t, env, "u")
	var ids []string
	if err := s.ReadOutput(&ids); err != nil || len(ids) != 2 || ids[0] == ids[1] || len(ids[0]) != 36 {
		t.Fatalf("uuids %v %v", ids, err)
	}
	var cs map[string]int
	if err := s.ReadCustomStatus(&cs); err != nil || cs["step"] != 2 {
		t.Fatalf("custom status %s %v", s.CustomStatus, err)
	}
	// Without a cursor cache every episode replays the lines before it,
	// yet each line is written once.
	logs.lines = nil
	env = durabletest.New(r, durabletest.WithCursorCache(false))
	start(t, env, "u", "U", nil)
	if err := env.Run(); err != nil {
		t.Fatal(err)
	}
	if logs.lines["before timer"] != 1 || logs.lines["after timer"] != 1 {
		t.Fatalf("log lines %v: each should appear once", logs.lines)
	}
}

func TestRetryWithBackoff(t *testing.T) {
	r := durable.NewRegistry()
	attempts := map[string]int{}
	flaky := durable.RegisterActivity(r, "Flaky", func(ctx durable.ActivityContext, key string) (int, error) {
		attempts[key]++
		if attempts[key] < 4 {
			return 0, fmt.Errorf("attempt %d failed", attempts[key])
		}
		return attempts[key], nil
	})
	policy := durable.RetryPolicy{MaxAttempts: 5, FirstRetryInterval: time.Second, BackoffCoefficient: 2, MaxRetryInterval: 3 * time.Second}
	durable.RegisterOrchestrator(r, "Retry", func(ctx durable.OrchestrationContext, key string) (int, error) {
		return flaky.Call(ctx, key, durable.WithRetry(policy)).Get()
	})
	env := run(t, r, func(env *durabletest.Env) { clear(attempts); start(t, env, "r", "Retry", "r") })
	wantCompleted(t, env, "r", 4)
	// Waits: 1s, 2s, then 4s capped at 3s, as durable timers.
	var waits []time.Duration
	s := status(t, env, "r")
	for _, ev := range s.History {
		if ev.Kind == core.EventTimerCreated {
			waits = append(waits, ev.FireAt.Sub(ev.Timestamp))
		}
	}
	if fmt.Sprint(waits) != "[1s 2s 3s]" {
		t.Fatalf("retry waits %v, want [1s 2s 3s]", waits)
	}
}

func TestRetryGivesUp(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterActivity(r, "AlwaysFails", func(ctx durable.ActivityContext, kind string) (int, error) {
		if kind == "fatal" {
			return 0, errFatal
		}
		return 0, errors.New("transient")
	})
	count := func(env *durabletest.Env, id string) int {
		n := 0
		for _, ev := range status(t, env, id).History {
			if ev.Kind == core.EventTaskScheduled {
				n++
			}
		}
		return n
	}
	durable.RegisterOrchestrator(r, "Attempts", func(ctx durable.OrchestrationContext, p struct {
		Kind    string
		Max     int
		Timeout time.Duration
	}) (int, error) {
		pol := durable.RetryPolicy{MaxAttempts: p.Max, FirstRetryInterval: time.Minute, RetryTimeout: p.Timeout,
			Handle: func(f *core.FailureDetails) bool { return !strings.Contains(f.Message, "fatal") }}
		return durable.Await[int](ctx.CallActivity("AlwaysFails", p.Kind, durable.WithRetry(pol)))
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "max", "Attempts", map[string]any{"Kind": "transient", "Max": 3})
		start(t, env, "pred", "Attempts", map[string]any{"Kind": "fatal", "Max": 3})
		start(t, env, "total", "Attempts", map[string]any{"Kind": "transient", "Max": 100, "Timeout": int64(150 * time.Second)})
	})
	wantFailed(t, env, "max", core.FailureTaskFailed, "transient")
	wantFailed(t, env, "pred", core.FailureTaskFailed, "fatal")
	wantFailed(t, env, "total", core.FailureTaskFailed, "transient")
	if n := count(env, "max"); n != 3 {
		t.Fatalf("max attempts: %d attempts, want 3", n)
	}
	if n := count(env, "pred"); n != 1 {
		t.Fatalf("predicate: %d attempts, want 1", n)
	}
	// Attempts at 0s, 60s, 120s and 180s: the failure at 120s is inside
	// the 150s limit, so it is retried; the one at 180s is not.
	if n := count(env, "total"); n != 4 {
		t.Fatalf("total timeout: %d attempts, want 4", n)
	}
}

var errFatal = errors.New("fatal error")

func TestSubOrchestrationRetry(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "FailsUntil", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		// Derived instance ids differ per attempt; fail the first two.
		if strings.HasSuffix(ctx.InstanceID(), ":0") || strings.HasSuffix(ctx.InstanceID(), ":2") {
			return "", errors.New("not yet")
		}
		return ctx.InstanceID(), nil
	})
	durable.RegisterOrchestrator(r, "P", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		return durable.Await[string](ctx.CallSubOrchestrator("FailsUntil", nil,
			durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, FirstRetryInterval: time.Second})))
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "p", "P", nil) })
	s := status(t, env, "p")
	var out string
	if s.RuntimeStatus != core.StatusCompleted || s.ReadOutput(&out) != nil || !strings.HasSuffix(out, ":4") {
		t.Fatalf("status %s output %s failure %v", s.RuntimeStatus, s.Output, s.Failure)
	}
}

func TestNonDeterminism(t *testing.T) {
	v1 := durable.NewRegistry()
	durable.RegisterActivity(v1, "A", func(ctx durable.ActivityContext, _ any) (int, error) { return 1, nil })
	durable.RegisterActivity(v1, "B", func(ctx durable.ActivityContext, _ any) (int, error) { return 2, nil })
	durable.RegisterOrchestrator(v1, "O", func(ctx durable.OrchestrationContext, _ any) (int, error) {
		if err := ctx.CallActivity("A", nil).Await(nil); err != nil {
			return 0, err
		}
		return durable.Await[int](ctx.CreateTimer(time.Hour))
	})
	env := durabletest.New(v1)
	start(t, env, "o", "O", nil)
	// Run until the timer is pending: history holds A, then the timer.
	if err := env.Run(); err != nil {
		t.Fatal(err)
	}
	hist := status(t, env, "o").History
	cut := 0
	for i, ev := range hist {
		if ev.Kind == core.EventTimerCreated {
			cut = i + 2 // through the OrchestratorCompleted
		}
	}
	hist = hist[:cut]

	cases := []struct {
		name string
		fn   durable.OrchestratorFunc
		want []string
	}{
		{"other activity", func(ctx durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallActivity("B", nil).Await(nil)
		}, []string{"sequence 0", `TaskScheduled (CallActivity("A"))`, `called CallActivity("B")`}},
		{"timer instead of activity", func(ctx durable.OrchestrationContext) (any, error) {
			return nil, ctx.CreateTimer(time.Second).Await(nil)
		}, []string{"sequence 0", "TaskScheduled", "CreateTimer"}},
		{"fewer calls", func(ctx durable.OrchestrationContext) (any, error) {
			return nil, ctx.CallActivity("A", nil).Await(nil)
		}, []string{"TimerCreated", "made no call"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v2 := durable.NewRegistry()
			_ = v2.AddOrchestrator("O", c.fn)
			_ = v2.AddActivity("A", func(durable.ActivityContext) (any, error) { return 1, nil })
			x := durable.NewExecutor(v2, durable.ExecutorOptions{})
			fired := core.NewEvent(core.EventTimerFired, env.Now())
			fired.TaskScheduledID = 1
			res := x.Execute(&durable.Episode{InstanceID: "o", History: hist, NewEvents: []*core.HistoryEvent{fired}})
			if res.Status != core.StatusFailed || res.Failure == nil || res.Failure.Type != core.FailureNonDeterminism {
				t.Fatalf("status %s failure %v, want NonDeterminismError", res.Status, res.Failure)
			}
			for _, w := range c.want {
				if !strings.Contains(res.Failure.Message, w) {
					t.Errorf("message %q does not mention %q", res.Failure.Message, w)
				}
			}
			if len(res.Activities)+len(res.Timers) != 0 {
				t.Errorf("a diverged replay must not schedule work: %v %v", res.Activities, res.Timers)
			}
		})
	}
}

func TestPanicsAndFailures(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterActivity(r, "Boom", func(ctx durable.ActivityContext, _ any) (int, error) {
		var m map[string]int
		m["x"] = 1 // nil map write: a runtime panic
		return 0, nil
	})
	durable.RegisterActivity(r, "Err", func(ctx durable.ActivityContext, _ any) (int, error) {
		return 0, fmt.Errorf("card declined")
	})
	durable.RegisterOrchestrator(r, "Handled", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		err := ctx.CallActivity("Boom", nil).Await(nil)
		var f *core.FailureDetails
		if !errors.As(err, &f) || f.Type != core.FailurePanic || !strings.Contains(f.StackTrace, "scenario_test.go") {
			return "", fmt.Errorf("unexpected %v", err)
		}
		return "handled: " + f.Message, nil
	})
	durable.RegisterOrchestrator(r, "Unhandled", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		return "", ctx.CallActivity("Err", nil).Await(nil)
	})
	durable.RegisterOrchestrator(r, "Panics", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
			return "", err
		}
		panic("orchestrator exploded")
	})
	durable.RegisterOrchestrator(r, "BadInput", func(ctx durable.OrchestrationContext, n int) (int, error) { return n, nil })
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "h", "Handled", nil)
		start(t, env, "u", "Unhandled", nil)
		start(t, env, "p", "Panics", nil)
		start(t, env, "bad", "BadInput", "not a number")
		start(t, env, "unknown", "NoSuchOrchestrator", nil)
		start(t, env, "unknown-act", "Unhandled", nil)
	})
	s := status(t, env, "h")
	if s.RuntimeStatus != core.StatusCompleted || !strings.Contains(string(s.Output), "assignment to entry in nil map") {
		t.Fatalf("handled: %s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	f := wantFailed(t, env, "u", core.FailureTaskFailed, `activity "Err"`, "card declined")
	if f.Inner == nil || f.Inner.Message != "card declined" {
		t.Fatalf("unhandled failure should carry the activity failure as inner: %+v", f)
	}
	f = wantFailed(t, env, "p", core.FailurePanic, "orchestrator exploded")
	if !strings.Contains(f.StackTrace, "scenario_test.go") {
		t.Fatalf("panic stack trace does not show the orchestrator: %s", f.StackTrace)
	}
	wantFailed(t, env, "bad", core.FailureInvalidInput, `orchestrator "BadInput"`)
	wantFailed(t, env, "unknown", core.FailureNotRegistered, `"NoSuchOrchestrator" is not registered`, "BadInput")
}

func TestUnknownActivityAndEntity(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "O", func(ctx durable.OrchestrationContext, what string) (any, error) {
		if what == "activity" {
			return nil, ctx.CallActivity("Nope", nil).Await(nil)
		}
		return nil, ctx.CallEntity(core.NewEntityID("ghost", "1"), "op", nil).Await(nil)
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "a", "O", "activity")
		start(t, env, "e", "O", "entity")
	})
	wantFailed(t, env, "a", "", `activity "Nope" is not registered`)
	wantFailed(t, env, "e", "", `entity "ghost" is not registered`)
}

func TestOptionMisuse(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "O", func(ctx durable.OrchestrationContext, _ any) (any, error) {
		return nil, ctx.CallActivity("X", nil, durable.WithTimeout(time.Second)).Await(nil)
	})
	env := run(t, r, func(env *durabletest.Env) { start(t, env, "o", "O", nil) })
	wantFailed(t, env, "o", "", "option WithTimeout does not apply to CallActivity")
}

func TestSuspendResumeAndTerminate(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Collect", func(ctx durable.OrchestrationContext, n int) ([]string, error) {
		var got []string
		for i := 0; i < n; i++ {
			v, err := durable.Await[string](ctx.WaitForExternalEvent("item"))
			if err != nil {
				return nil, err
			}
			got = append(got, v+"@"+ctx.CurrentTime().Format("15:04"))
		}
		return got, nil
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "s", "Collect", 2)
		env.SuspendAt(time.Minute, "s", "maintenance")
		_ = env.RaiseEventAt(2*time.Minute, "s", "item", "x")
		env.ResumeAt(10*time.Minute, "s", "done")
		_ = env.RaiseEventAt(11*time.Minute, "s", "item", "y")

		start(t, env, "t", "Collect", 2)
		_ = env.TerminateAt(time.Minute, "t", "no longer needed")
		_ = env.RaiseEventAt(2*time.Minute, "t", "item", "late")
	})
	s := status(t, env, "s")
	var got []string
	_ = s.ReadOutput(&got)
	// The event that arrived while suspended was seen only after resume.
	if s.RuntimeStatus != core.StatusCompleted || fmt.Sprint(got) != "[x@00:10 y@00:11]" {
		t.Fatalf("suspend/resume: %s %v %v", s.RuntimeStatus, got, s.Failure)
	}
	ts := status(t, env, "t")
	var reason string
	if ts.RuntimeStatus != core.StatusTerminated || ts.ReadOutput(&reason) != nil || reason != "no longer needed" {
		t.Fatalf("terminate: %s %s", ts.RuntimeStatus, ts.Output)
	}
}

func TestTerminatedChildFailsParentTask(t *testing.T) {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Forever", func(ctx durable.OrchestrationContext, _ any) (any, error) {
		return nil, ctx.WaitForExternalEvent("never").Await(nil)
	})
	durable.RegisterOrchestrator(r, "P", func(ctx durable.OrchestrationContext, _ any) (string, error) {
		err := ctx.CallSubOrchestrator("Forever", nil, durable.WithInstanceID("kid")).Await(nil)
		var f *core.FailureDetails
		if errors.As(err, &f) && f.Type == core.FailureTerminated {
			return "child terminated", nil
		}
		return "", fmt.Errorf("unexpected %v", err)
	})
	env := run(t, r, func(env *durabletest.Env) {
		start(t, env, "p", "P", nil)
		_ = env.TerminateAt(time.Minute, "kid", "stop")
	})
	wantCompleted(t, env, "p", "child terminated")
}

type countingHandler struct{ lines map[string]int }

func (c *countingHandler) log(ctx durable.OrchestrationContext, msg string) {
	if c.lines == nil {
		c.lines = map[string]int{}
	}
	if ctx.Logger().Enabled(context.Background(), slog.LevelInfo) {
		c.lines[msg]++
	}
	ctx.Logger().Info(msg)
}
