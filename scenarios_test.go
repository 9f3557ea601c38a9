package netherite_test

// End-to-end scenarios: every scenario runs against a fresh in-process host
// with memory storage, once with 1 partition and once with 12, through the
// public durable.Client only. Every subtest is bounded by scenarioTimeout,
// so that a hang fails instead of blocking the run.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// scenarioTimeout bounds every subtest, so that a hang fails instead of
// blocking the run. It is no performance bound: on Azurite, under the race
// detector, with the other packages' tests on the same two cores, a 5 MiB
// payload's round trip has taken over 20 s.
const scenarioTimeout = 60 * time.Second

// Names of the test functions.
const (
	oHelloInline         = "S_HelloInline"
	oHelloActivity       = "S_HelloActivity"
	oFactorial           = "S_Factorial"
	aMultiply            = "S_Multiply"
	oSubFanOut           = "S_SubFanOut"
	oSubChild            = "S_SubChild"
	oConvParent          = "S_ConvParent"
	oConvChild           = "S_ConvChild"
	oGenerations         = "S_Generations"
	oCounterActor        = "S_CounterActor"
	oApproval            = "S_Approval"
	oEcho                = "S_Echo"
	aEcho                = "S_EchoActivity"
	aFail                = "S_FailActivity"
	aPanic               = "S_PanicActivity"
	aFlaky               = "S_FlakyActivity"
	oHandled             = "S_HandledFailures"
	oUnhandled           = "S_UnhandledFailure"
	oFail                = "S_Fail"
	oPanic               = "S_Panic"
	oSubFail             = "S_SubFailure"
	oRetry               = "S_Retry"
	oWaitEvent           = "S_WaitEvent"
	oObserveTime         = "S_ObserveTime"
	oParentWithChild     = "S_ParentWithChild"
	oCollect             = "S_Collect"
	oSignalFromOrch      = "S_SignalFromOrch"
	eForwarder           = "S_Forwarder"
	oCallUnknownActivity = "S_CallUnknownActivity"
	oBigOutput           = "S_BigOutput"
	oChildrenThenWait    = "S_ChildrenThenWait"
)

// appError is a user error type, so failure details have a known Type.
type appError struct {
	Code int
	Msg  string
}

func (e *appError) Error() string { return fmt.Sprintf("app error %d: %s", e.Code, e.Msg) }

const appErrorType = "*netherite_test.appError"

type convInput struct {
	Parent string `json:"parent"`
	Rounds int    `json:"rounds"`
}

type convOutput struct {
	Hello    string `json:"hello"`
	Replies  []int  `json:"replies"`
	ChildSum int    `json:"childSum"`
}

type genState struct {
	Gen   int      `json:"gen"`
	Trail []string `json:"trail"`
	// TimerOK is false if a timer completed before its due time.
	TimerOK bool `json:"timerOk"`
}

type failureOut struct {
	Kind         string `json:"kind"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Message      string `json:"message"`
	NonRetriable bool   `json:"nonRetriable"`
}

type flakyInput struct {
	Key       string `json:"key"`
	FailTimes int    `json:"failTimes"`
	Attempts  int    `json:"attempts"`
}

type fwdInput struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

type startInput struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// flakyCalls counts calls of the flaky activity per key.
var flakyCalls sync.Map // string -> *atomic.Int32

// scenarioRegistry registers the samples and every test function.
func scenarioRegistry() *durable.Registry {
	r := durable.NewRegistry()
	samples.Register(r)

	durable.RegisterOrchestrator(r, oHelloInline, func(ctx durable.OrchestrationContext, name string) (string, error) {
		return "Hello, " + name + "!", nil
	})
	durable.RegisterOrchestrator(r, oHelloActivity, func(ctx durable.OrchestrationContext, city string) (string, error) {
		return durable.Await[string](ctx.CallActivity(samples.SayHello, city))
	})

	multiply := durable.RegisterActivity(r, aMultiply, func(ctx durable.ActivityContext, in [2]int) (int, error) {
		return in[0] * in[1], nil
	})
	durable.RegisterOrchestrator(r, oFactorial, func(ctx durable.OrchestrationContext, n int) (int, error) {
		acc := 1
		for i := 2; i <= n; i++ {
			v, err := multiply.Call(ctx, [2]int{acc, i}).Get()
			if err != nil {
				return 0, err
			}
			acc = v
		}
		return acc, nil
	})

	durable.RegisterOrchestrator(r, oSubChild, func(ctx durable.OrchestrationContext, i int) (string, error) {
		sq, err := multiply.Call(ctx, [2]int{i, i}).Get()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d:%d", i, sq), nil
	})
	durable.RegisterOrchestrator(r, oSubFanOut, func(ctx durable.OrchestrationContext, n int) ([]string, error) {
		tasks := make([]durable.Task, n)
		for i := range tasks {
			tasks[i] = ctx.CallSubOrchestrator(oSubChild, i)
		}
		out := make([]string, n)
		for i, t := range tasks {
			v, err := durable.Await[string](t)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	})

	durable.RegisterOrchestrator(r, oConvParent, func(ctx durable.OrchestrationContext, rounds int) (convOutput, error) {
		var out convOutput
		childID := ctx.InstanceID() + "-child"
		child := ctx.CallSubOrchestrator(oConvChild, convInput{Parent: ctx.InstanceID(), Rounds: rounds},
			durable.WithInstanceID(childID))
		hello, err := durable.Await[string](ctx.WaitForExternalEvent("hello"))
		if err != nil {
			return out, err
		}
		out.Hello = hello
		for i := 1; i <= rounds; i++ {
			if err := ctx.SendEvent(childID, "ping", i); err != nil {
				return out, err
			}
			pong, err := durable.Await[int](ctx.WaitForExternalEvent("pong"))
			if err != nil {
				return out, err
			}
			out.Replies = append(out.Replies, pong)
		}
		out.ChildSum, err = durable.Await[int](child)
		return out, err
	})
	durable.RegisterOrchestrator(r, oConvChild, func(ctx durable.OrchestrationContext, in convInput) (int, error) {
		if err := ctx.SendEvent(in.Parent, "hello", "hi from "+ctx.InstanceID()); err != nil {
			return 0, err
		}
		sum := 0
		for i := 0; i < in.Rounds; i++ {
			ping, err := durable.Await[int](ctx.WaitForExternalEvent("ping"))
			if err != nil {
				return 0, err
			}
			sum += ping
			if err := ctx.SendEvent(in.Parent, "pong", ping*10); err != nil {
				return 0, err
			}
		}
		return sum, nil
	})

	durable.RegisterOrchestrator(r, oGenerations, func(ctx durable.OrchestrationContext, st genState) (genState, error) {
		before := ctx.CurrentTime()
		if err := ctx.CreateTimer(10 * time.Millisecond).Await(nil); err != nil {
			return st, err
		}
		if ctx.CurrentTime().Before(before.Add(10 * time.Millisecond)) {
			st.TimerOK = false
		}
		st.Trail = append(st.Trail, ctx.ExecutionID())
		if st.Gen < 3 {
			ctx.ContinueAsNew(genState{Gen: st.Gen + 1, Trail: st.Trail, TimerOK: st.TimerOK})
			return genState{}, nil
		}
		return st, nil
	})

	durable.RegisterOrchestrator(r, oCounterActor, func(ctx durable.OrchestrationContext, sum int) (int, error) {
		add := ctx.WaitForExternalEvent("add")
		stop := ctx.WaitForExternalEvent("stop")
		var winner int
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

	durable.RegisterOrchestrator(r, oApproval, func(ctx durable.OrchestrationContext, timeoutMs int) (string, error) {
		ev := ctx.WaitForExternalEvent("Approval")
		timer := ctx.CreateTimer(time.Duration(timeoutMs) * time.Millisecond)
		var winner int
		if err := durable.WhenAny(ev, timer).Await(&winner); err != nil {
			return "", err
		}
		if winner == 0 {
			who, err := durable.Await[string](ev)
			if err != nil {
				return "", err
			}
			return "approved by " + who, nil
		}
		return "escalated", nil
	})

	echo := durable.RegisterActivity(r, aEcho, func(ctx durable.ActivityContext, s string) (string, error) { return s, nil })
	durable.RegisterOrchestrator(r, oEcho, func(ctx durable.OrchestrationContext, s string) (string, error) {
		return echo.Call(ctx, s).Get()
	})

	durable.RegisterActivity(r, aFail, func(ctx durable.ActivityContext, msg string) (string, error) {
		return "", &appError{Code: 42, Msg: msg}
	})
	durable.RegisterActivity(r, aPanic, func(ctx durable.ActivityContext, msg string) (string, error) {
		panic("kaboom: " + msg)
	})
	durable.RegisterActivity(r, aFlaky, func(ctx durable.ActivityContext, in flakyInput) (int, error) {
		v, _ := flakyCalls.LoadOrStore(in.Key, new(atomic.Int32))
		n := int(v.(*atomic.Int32).Add(1))
		if n <= in.FailTimes {
			return 0, fmt.Errorf("attempt %d failed", n)
		}
		return n, nil
	})
	describe := func(err error) failureOut {
		var tf *durable.TaskFailedError
		if !errors.As(err, &tf) {
			return failureOut{Type: "not a TaskFailedError", Message: fmt.Sprint(err)}
		}
		return failureOut{Kind: tf.Kind, Name: tf.Name, Type: tf.Failure.Type, Message: tf.Failure.Message,
			NonRetriable: tf.Failure.NonRetriable}
	}
	durable.RegisterOrchestrator(r, oHandled, func(ctx durable.OrchestrationContext, _ any) ([]failureOut, error) {
		e1 := ctx.CallActivity(aFail, "handled").Await(nil)
		e2 := ctx.CallActivity(aPanic, "handled").Await(nil)
		return []failureOut{describe(e1), describe(e2)}, nil
	})
	durable.RegisterOrchestrator(r, oUnhandled, func(ctx durable.OrchestrationContext, _ any) (any, error) {
		return nil, ctx.CallActivity(aFail, "unhandled").Await(nil)
	})
	durable.RegisterOrchestrator(r, oFail, func(ctx durable.OrchestrationContext, msg string) (any, error) {
		return nil, &appError{Code: 7, Msg: msg}
	})
	durable.RegisterOrchestrator(r, oPanic, func(ctx durable.OrchestrationContext, _ any) (any, error) {
		panic("orchestrator exploded")
	})
	durable.RegisterOrchestrator(r, oSubFail, func(ctx durable.OrchestrationContext, _ any) (any, error) {
		if err := ctx.CallSubOrchestrator(oFail, "child says no").Await(nil); err != nil {
			return nil, fmt.Errorf("child failed: %w", err)
		}
		return "unexpected success", nil
	})
	durable.RegisterOrchestrator(r, oRetry, func(ctx durable.OrchestrationContext, in flakyInput) (int, error) {
		return durable.Await[int](ctx.CallActivity(aFlaky, in, durable.WithRetry(durable.RetryPolicy{
			MaxAttempts: in.Attempts, FirstRetryInterval: 5 * time.Millisecond, BackoffCoefficient: 2})))
	})

	durable.RegisterOrchestrator(r, oWaitEvent, func(ctx durable.OrchestrationContext, _ any) (string, error) {
		return durable.Await[string](ctx.WaitForExternalEvent("go"))
	})
	durable.RegisterOrchestrator(r, oObserveTime, func(ctx durable.OrchestrationContext, _ any) (time.Time, error) {
		return ctx.CurrentTime(), nil
	})
	// oParentWithChild starts a chain of sub-orchestrations with the given
	// ids, the last of which waits for the event "go".
	durable.RegisterOrchestrator(r, oParentWithChild, func(ctx durable.OrchestrationContext, chain []string) (string, error) {
		if len(chain) == 0 {
			return "", errors.New("empty chain")
		}
		if len(chain) == 1 {
			return durable.Await[string](ctx.CallSubOrchestrator(oWaitEvent, nil, durable.WithInstanceID(chain[0])))
		}
		return durable.Await[string](ctx.CallSubOrchestrator(oParentWithChild, chain[1:], durable.WithInstanceID(chain[0])))
	})
	durable.RegisterOrchestrator(r, oCollect, func(ctx durable.OrchestrationContext, n int) ([]string, error) {
		if err := ctx.SetCustomStatus(0); err != nil {
			return nil, err
		}
		var items []string
		for len(items) < n {
			s, err := durable.Await[string](ctx.WaitForExternalEvent("item"))
			if err != nil {
				return nil, err
			}
			items = append(items, s)
			if err := ctx.SetCustomStatus(len(items)); err != nil {
				return nil, err
			}
		}
		return items, nil
	})

	durable.RegisterOrchestrator(r, oSignalFromOrch, func(ctx durable.OrchestrationContext, key string) (int, error) {
		id := core.NewEntityID(samples.Counter, key)
		if err := ctx.SignalEntity(id, "add", 3); err != nil {
			return 0, err
		}
		if err := ctx.SignalEntity(id, "add", 4); err != nil {
			return 0, err
		}
		return durable.Await[int](ctx.CallEntity(id, "get", nil))
	})
	durable.RegisterEntity(r, eForwarder, func(ctx durable.EntityContext) error {
		var count int
		if err := ctx.GetState(&count); err != nil {
			return err
		}
		switch ctx.Operation() {
		case "forward":
			var in fwdInput
			if err := ctx.GetInput(&in); err != nil {
				return err
			}
			if err := ctx.SignalEntity(core.NewEntityID(samples.Counter, in.Key), "add", in.N); err != nil {
				return err
			}
		case "start":
			var in startInput
			if err := ctx.GetInput(&in); err != nil {
				return err
			}
			if _, err := ctx.StartOrchestration(oHelloInline, in.ID, in.Name); err != nil {
				return err
			}
		default:
			return fmt.Errorf("forwarder: unknown operation %q", ctx.Operation())
		}
		return ctx.SetState(count + 1)
	})

	durable.RegisterOrchestrator(r, oCallUnknownActivity, func(ctx durable.OrchestrationContext, _ any) (failureOut, error) {
		return describe(ctx.CallActivity("NoSuchActivity", nil).Await(nil)), nil
	})
	durable.RegisterOrchestrator(r, oChildrenThenWait, func(ctx durable.OrchestrationContext, n int) (string, error) {
		for i := 0; i < n; i++ {
			if err := ctx.CallSubOrchestrator(oSubChild, i).Await(nil); err != nil {
				return "", err
			}
		}
		return durable.Await[string](ctx.WaitForExternalEvent("go"))
	})
	durable.RegisterOrchestrator(r, oBigOutput, func(ctx durable.OrchestrationContext, n int) (string, error) {
		return strings.Repeat("x", n), nil
	})
	return r
}

// --- harness ---

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startScenarioHost starts a host with its own transport and the scenario
// registry, and stops it when the test ends.
func startScenarioHost(t *testing.T, opts netherite.Options) *netherite.Host {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	h, err := netherite.Start(ctx, opts, scenarioRegistry())
	if err != nil {
		t.Fatalf("start host: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stop host: %v", err)
		}
		// Storage is read off the partitions' loops (prefetch).
		if n := h.SyncLoads(); n != 0 {
			t.Errorf("%d instances were loaded synchronously on a partition's loop", n)
		}
	})
	return h
}

// forEachPartitionCountOpts runs fn as subtests on hosts with 1 and with 12
// partitions, with memory, local-directory and Azure Storage (Azurite)
// storage, each host with opts otherwise.
func forEachPartitionCountOpts(t *testing.T, opts netherite.Options, fn func(t *testing.T, c durable.Client, h *netherite.Host)) {
	t.Helper()
	for _, storage := range []string{"memory", "disk", "azurite"} {
		for _, n := range []int{1, 12} {
			t.Run(fmt.Sprintf("%s/partitions=%d", storage, n), func(t *testing.T) {
				o := opts
				o.PartitionCount = n
				switch storage {
				case "memory":
					o.Storage = "memory"
				case "disk":
					// A small cache, so instances are evicted and read back.
					o.Storage, o.StateCacheBytes = t.TempDir(), 2<<20
				case "azurite":
					// Page blobs in Azurite (skipped unless configured;
					// required in CI), a fresh task hub per test.
					o.Storage = blobtest.Connection(t)
					o.TaskHub = fmt.Sprintf("sc%d", time.Now().UnixNano()%1e12)
				}
				h := startScenarioHost(t, o)
				fn(t, h.Client(), h)
			})
		}
	}
	for _, b := range scenarioBackends {
		t.Run(fmt.Sprintf("%s/partitions=%d", b.name, b.partitions), func(t *testing.T) {
			o := opts
			o.PartitionCount = b.partitions
			b.setup(t, &o)
			h := startScenarioHost(t, o)
			fn(t, h.Client(), h)
		})
	}
}

// scenarioBackends are further setups every scenario runs on, added by
// other files (scenarios_faulty_test.go).
var scenarioBackends []scenarioBackend

type scenarioBackend struct {
	name       string
	partitions int
	setup      func(t *testing.T, o *netherite.Options)
}

// forEachPartitionCount runs fn as subtests on hosts with 1 and with 12
// partitions.
func forEachPartitionCount(t *testing.T, fn func(t *testing.T, c durable.Client, h *netherite.Host)) {
	t.Helper()
	forEachPartitionCountOpts(t, netherite.Options{}, fn)
}

// testContext is a context that ends with the test or after scenarioTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, ctx context.Context, c durable.Client, name string, input any, opts ...durable.StartOption) string {
	t.Helper()
	id, err := c.StartOrchestration(ctx, name, input, opts...)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return id
}

func startWithID(t *testing.T, ctx context.Context, c durable.Client, id, name string, input any, opts ...durable.StartOption) {
	t.Helper()
	got := start(t, ctx, c, name, input, append([]durable.StartOption{durable.WithStartInstanceID(id)}, opts...)...)
	if got != id {
		t.Fatalf("start %s: got instance id %q, want %q", name, got, id)
	}
}

func waitDone(t *testing.T, ctx context.Context, c durable.Client, id string) *durable.OrchestrationStatus {
	t.Helper()
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatalf("wait for %s: %v", id, err)
	}
	return s
}

func waitStarted(t *testing.T, ctx context.Context, c durable.Client, id string) *durable.OrchestrationStatus {
	t.Helper()
	s, err := c.WaitForStart(ctx, id)
	if err != nil {
		t.Fatalf("wait for start of %s: %v", id, err)
	}
	return s
}

func getStatus(t *testing.T, ctx context.Context, c durable.Client, id string) *durable.OrchestrationStatus {
	t.Helper()
	s, err := c.GetStatus(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatalf("status of %s: %v", id, err)
	}
	return s
}

func describeStatus(s *durable.OrchestrationStatus) string {
	return fmt.Sprintf("%s is %s (output %.200s, failure %v)", s.InstanceID, s.RuntimeStatus, s.Output, s.Failure)
}

func wantStatus(t *testing.T, s *durable.OrchestrationStatus, want core.RuntimeStatus) {
	t.Helper()
	if s.RuntimeStatus != want {
		t.Fatalf("%s; want %s", describeStatus(s), want)
	}
}

// completedOutput checks that s is Completed and decodes its output.
func completedOutput[T any](t *testing.T, s *durable.OrchestrationStatus) T {
	t.Helper()
	wantStatus(t, s, core.StatusCompleted)
	var v T
	if err := s.ReadOutput(&v); err != nil {
		t.Fatalf("%s: decode output %.200q: %v", s.InstanceID, s.Output, err)
	}
	return v
}

// run starts an orchestration, waits for it and returns its output; it
// must complete.
func run[T any](t *testing.T, ctx context.Context, c durable.Client, name string, input any, opts ...durable.StartOption) T {
	t.Helper()
	return completedOutput[T](t, waitDone(t, ctx, c, start(t, ctx, c, name, input, opts...)))
}

// eventually polls cond until it holds or ctx ends.
func eventually(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, detail := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s (last seen: %s)", what, detail)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

func wantErrContains(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want one mentioning %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %q does not mention %q", what, err, p)
		}
	}
}

// entityInt reads an entity whose state is an int; exists is false if it
// does not exist.
func entityInt(ctx context.Context, c durable.Client, id core.EntityID) (v int, exists bool, err error) {
	m, err := c.GetEntity(ctx, id, true)
	if errors.Is(err, durable.ErrEntityNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if err := m.ReadState(&v); err != nil {
		return 0, true, err
	}
	return v, true, nil
}

func waitEntityValue(t *testing.T, ctx context.Context, c durable.Client, id core.EntityID, want int) {
	t.Helper()
	eventually(t, ctx, fmt.Sprintf("%s = %d", id, want), func() (bool, string) {
		v, ok, err := entityInt(ctx, c, id)
		if err != nil {
			t.Fatalf("get entity %s: %v", id, err)
		}
		return ok && v == want, fmt.Sprintf("exists=%v value=%d", ok, v)
	})
}

// --- 1. hello world ---

func TestScenarioHello(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		if got := run[string](t, ctx, c, oHelloInline, "World"); got != "Hello, World!" {
			t.Errorf("inline: got %q", got)
		}
		if got := run[string](t, ctx, c, oHelloActivity, "Oslo"); got != "Hello Oslo!" {
			t.Errorf("activity: got %q", got)
		}
		got := run[[]string](t, ctx, c, samples.HelloSequence, nil)
		if want := []string{"Hello Tokyo!", "Hello Seattle!", "Hello London!"}; !slices.Equal(got, want) {
			t.Errorf("sequence: got %q, want %q", got, want)
		}
		// The status carries the name and input.
		id := start(t, ctx, c, oHelloInline, "Status")
		s := waitDone(t, ctx, c, id)
		if s.Name != oHelloInline || string(s.Input) != `"Status"` || string(s.Output) != `"Hello, Status!"` {
			t.Errorf("status: name %q input %s output %s", s.Name, s.Input, s.Output)
		}
		if s.ExecutionID == "" || s.CreatedAt.IsZero() || s.LastUpdatedAt.Before(s.CreatedAt) {
			t.Errorf("status: execution %q created %v updated %v", s.ExecutionID, s.CreatedAt, s.LastUpdatedAt)
		}
	})
}

// --- 2. activity chain ---

func TestScenarioActivityChain(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		if got := run[int](t, ctx, c, oFactorial, 10); got != 3628800 {
			t.Errorf("10! = %d, want 3628800", got)
		}
	})
}

// --- 3. fan-out/fan-in of activities ---

func TestScenarioFanOutFanIn(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		n := 1000
		if h.Options().Backend == netherite.BackendAzStorage {
			// Each activity costs the baseline about four queue requests,
			// and Azurite's queue service answers some 150 a second on
			// this machine: 1,000 would not fit the scenario timeout
			// (bench compare measures the full fan-out).
			n = 100
		}
		want := n * (n + 1) * (2*n + 1) / 6
		if got := run[int](t, ctx, c, samples.FanOutFanIn, n); got != want {
			t.Errorf("sum of squares 1..%d = %d, want %d", n, got, want)
		}
	})
}

// --- 4. fan-out of sub-orchestrations ---

func TestScenarioSubOrchestrationFanOut(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		id := start(t, ctx, c, oSubFanOut, 10)
		got := completedOutput[[]string](t, waitDone(t, ctx, c, id))
		var want []string
		for i := 0; i < 10; i++ {
			want = append(want, fmt.Sprintf("%d:%d", i, i*i))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		// The children are instances of their own, with the parent recorded.
		page, err := c.Query(ctx, durable.InstanceQuery{InstanceIDPrefix: id + ":"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Instances) != 10 {
			t.Fatalf("query children: got %d instances, want 10", len(page.Instances))
		}
		for _, s := range page.Instances {
			if s.RuntimeStatus != core.StatusCompleted || s.ParentInstanceID != id || s.Name != oSubChild {
				t.Errorf("child %s: status %s parent %q name %q", s.InstanceID, s.RuntimeStatus, s.ParentInstanceID, s.Name)
			}
		}
	})
}

// --- 5. event conversation between parent and child ---

func TestScenarioEventConversation(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		id := start(t, ctx, c, oConvParent, 3)
		got := completedOutput[convOutput](t, waitDone(t, ctx, c, id))
		if want := "hi from " + id + "-child"; got.Hello != want {
			t.Errorf("hello: got %q, want %q", got.Hello, want)
		}
		if !slices.Equal(got.Replies, []int{10, 20, 30}) {
			t.Errorf("replies: got %v, want [10 20 30]", got.Replies)
		}
		if got.ChildSum != 6 {
			t.Errorf("child sum: got %d, want 6", got.ChildSum)
		}
		child := getStatus(t, ctx, c, id+"-child")
		wantStatus(t, child, core.StatusCompleted)
		if child.ParentInstanceID != id {
			t.Errorf("child parent: got %q, want %q", child.ParentInstanceID, id)
		}
	})
}

// --- 6. continue-as-new with timers ---

func TestScenarioContinueAsNewTimer(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		id := start(t, ctx, c, oGenerations, genState{Gen: 1, TimerOK: true})
		s := waitDone(t, ctx, c, id)
		got := completedOutput[genState](t, s)
		if got.Gen != 3 || len(got.Trail) != 3 {
			t.Fatalf("got generation %d with trail %q, want generation 3 with 3 execution ids", got.Gen, got.Trail)
		}
		if !got.TimerOK {
			t.Errorf("a 10ms timer completed before its due time (CurrentTime did not advance by 10ms)")
		}
		if got.Trail[0] == got.Trail[1] || got.Trail[1] == got.Trail[2] || got.Trail[0] == got.Trail[2] {
			t.Errorf("execution ids are not distinct: %q", got.Trail)
		}
		if s.ExecutionID != got.Trail[2] {
			t.Errorf("status execution id %q, want the last generation's %q", s.ExecutionID, got.Trail[2])
		}
		var in genState
		if err := s.ReadInput(&in); err != nil || in.Gen != 3 {
			t.Errorf("status input: %s (%v), want generation 3's input", s.Input, err)
		}
	})
}

// --- 7. counter actor: continue-as-new and external events ---

func TestScenarioCounterActor(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		id := start(t, ctx, c, oCounterActor, 0)
		want := 0
		for i := 1; i <= 10; i++ {
			if err := c.RaiseEvent(ctx, id, "add", i); err != nil {
				t.Fatalf("raise add %d: %v", i, err)
			}
			want += i
		}
		if err := c.RaiseEvent(ctx, id, "stop", nil); err != nil {
			t.Fatalf("raise stop: %v", err)
		}
		if got := completedOutput[int](t, waitDone(t, ctx, c, id)); got != want {
			t.Errorf("counter actor: got %d, want %d", got, want)
		}

		// Adds raised concurrently, while generations turn over.
		id = start(t, ctx, c, oCounterActor, 0)
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = c.RaiseEvent(ctx, id, "add", i+1)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("raise add %d: %v", i+1, err)
			}
		}
		if err := c.RaiseEvent(ctx, id, "stop", nil); err != nil {
			t.Fatalf("raise stop: %v", err)
		}
		if got := completedOutput[int](t, waitDone(t, ctx, c, id)); got != 20*21/2 {
			t.Errorf("counter actor with concurrent adds: got %d, want %d", got, 20*21/2)
		}
	})
}

// --- 8. approval: timer vs event ---

func TestScenarioApproval(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		approved := start(t, ctx, c, oApproval, 2000)
		escalated := start(t, ctx, c, oApproval, 100)
		waitStarted(t, ctx, c, approved)
		if err := c.RaiseEvent(ctx, approved, "approval", "alice"); err != nil { // names are case-insensitive
			t.Fatal(err)
		}
		if got := completedOutput[string](t, waitDone(t, ctx, c, approved)); got != "approved by alice" {
			t.Errorf("with event: got %q, want %q", got, "approved by alice")
		}
		if got := completedOutput[string](t, waitDone(t, ctx, c, escalated)); got != "escalated" {
			t.Errorf("without event: got %q, want %q", got, "escalated")
		}
		// The sample: WaitForEvent returns the raw payload of the event.
		id := start(t, ctx, c, samples.WaitForEvent, nil)
		waitStarted(t, ctx, c, id)
		if err := c.RaiseEvent(ctx, id, "Approval", map[string]int{"ok": 1}); err != nil {
			t.Fatal(err)
		}
		if s := waitDone(t, ctx, c, id); s.RuntimeStatus != core.StatusCompleted || string(s.Output) != `{"ok":1}` {
			t.Errorf("sample WaitForEvent: %s", describeStatus(s))
		}
	})
}

// --- 9. large payloads ---

func TestScenarioLargePayloads(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		raw := make([]byte, 5<<20*3/4) // base64 makes it 5 MiB
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		big := base64.StdEncoding.EncodeToString(raw)
		if len(big) < 5<<20 {
			t.Fatalf("test bug: payload is %d bytes", len(big))
		}
		id := start(t, ctx, c, oEcho, big)
		s := waitDone(t, ctx, c, id)
		got := completedOutput[string](t, s)
		if got != big {
			t.Fatalf("output differs from input: %d bytes vs %d", len(got), len(big))
		}
		var in string
		if err := s.ReadInput(&in); err != nil || in != big {
			t.Fatalf("status input differs from the input sent (%d bytes, %v)", len(in), err)
		}
	})
}

// --- 10. failures and their details ---

func TestScenarioFailures(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)

		// Handled activity failures: the orchestration sees the details.
		got := run[[]failureOut](t, ctx, c, oHandled, nil)
		if len(got) != 2 {
			t.Fatalf("handled: got %+v", got)
		}
		if f := got[0]; f.Kind != "activity" || f.Name != aFail || f.Type != appErrorType || f.Message != "app error 42: handled" {
			t.Errorf("handled error: got %+v", f)
		}
		if f := got[1]; f.Kind != "activity" || f.Name != aPanic || f.Type != core.FailurePanic || !strings.Contains(f.Message, "kaboom: handled") {
			t.Errorf("handled panic: got %+v", f)
		}

		// Unhandled activity failure: the orchestration fails with the
		// activity's failure as inner failure.
		s := waitDone(t, ctx, c, start(t, ctx, c, oUnhandled, nil))
		wantStatus(t, s, core.StatusFailed)
		f := s.Failure
		if f == nil || f.Type != core.FailureTaskFailed || !strings.Contains(f.Message, aFail) {
			t.Fatalf("unhandled: failure %+v, want a %s naming %s", f, core.FailureTaskFailed, aFail)
		}
		if f.Inner == nil || f.Inner.Type != appErrorType || f.Inner.Message != "app error 42: unhandled" {
			t.Errorf("unhandled: inner failure %+v, want %s %q", f.Inner, appErrorType, "app error 42: unhandled")
		}

		// An orchestration that returns an error.
		s = waitDone(t, ctx, c, start(t, ctx, c, oFail, "no way"))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || s.Failure.Type != appErrorType || s.Failure.Message != "app error 7: no way" {
			t.Errorf("orchestration error: failure %+v", s.Failure)
		}
		if len(s.Output) != 0 {
			t.Errorf("failed orchestration has output %s", s.Output)
		}

		// An orchestration that panics.
		s = waitDone(t, ctx, c, start(t, ctx, c, oPanic, nil))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || s.Failure.Type != core.FailurePanic || !strings.Contains(s.Failure.Message, "orchestrator exploded") {
			t.Errorf("orchestration panic: failure %+v", s.Failure)
		}

		// A failed sub-orchestration, wrapped by its parent.
		s = waitDone(t, ctx, c, start(t, ctx, c, oSubFail, nil))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || !strings.HasPrefix(s.Failure.Message, "child failed: ") {
			t.Fatalf("sub-orchestration failure: %+v", s.Failure)
		}
		if in := s.Failure.Inner; in == nil || in.Type != appErrorType || in.Message != "app error 7: child says no" {
			t.Errorf("sub-orchestration failure: inner %+v, want the child's %s", in, appErrorType)
		}

		// Retries: succeeds at the third attempt; fails after the last.
		key := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
		if n := run[int](t, ctx, c, oRetry, flakyInput{Key: key + "-ok", FailTimes: 2, Attempts: 5}); n != 3 {
			t.Errorf("retry: succeeded at attempt %d, want 3", n)
		}
		s = waitDone(t, ctx, c, start(t, ctx, c, oRetry, flakyInput{Key: key + "-fail", FailTimes: 100, Attempts: 3}))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || s.Failure.Inner == nil || s.Failure.Inner.Message != "attempt 3 failed" {
			t.Errorf("retry exhausted: failure %+v, want inner %q", s.Failure, "attempt 3 failed")
		}
	})
}

// --- 11. recreating instances and id-reuse policies ---

func TestScenarioRecreate(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		recreate := func(id string, first *durable.OrchestrationStatus) {
			t.Helper()
			startWithID(t, ctx, c, id, oHelloInline, "again")
			s := waitDone(t, ctx, c, id)
			if got := completedOutput[string](t, s); got != "Hello, again!" {
				t.Errorf("%s recreated: output %q", id, got)
			}
			if s.ExecutionID == first.ExecutionID {
				t.Errorf("%s recreated from %s: same execution id %s", id, first.RuntimeStatus, s.ExecutionID)
			}
			if s.Name != oHelloInline {
				t.Errorf("%s recreated: name %q", id, s.Name)
			}
		}

		// Completed.
		startWithID(t, ctx, c, "completed", oHelloInline, "first")
		first := waitDone(t, ctx, c, "completed")
		wantStatus(t, first, core.StatusCompleted)
		recreate("completed", first)

		// Failed.
		startWithID(t, ctx, c, "failed", oFail, "x")
		first = waitDone(t, ctx, c, "failed")
		wantStatus(t, first, core.StatusFailed)
		recreate("failed", first)

		// Terminated.
		startWithID(t, ctx, c, "terminated", oWaitEvent, nil)
		waitStarted(t, ctx, c, "terminated")
		if err := c.Terminate(ctx, "terminated", "enough"); err != nil {
			t.Fatal(err)
		}
		first = waitDone(t, ctx, c, "terminated")
		wantStatus(t, first, core.StatusTerminated)
		recreate("terminated", first)

		// Running: refused by default and under ReuseError, ignored under
		// ReuseIgnore, replaced under ReuseTerminate.
		startWithID(t, ctx, c, "running", oWaitEvent, nil)
		first = waitStarted(t, ctx, c, "running")
		wantStatus(t, first, core.StatusRunning)
		_, err := c.StartOrchestration(ctx, oHelloInline, "x", durable.WithStartInstanceID("running"))
		wantErrIs(t, "start over a running instance (default policy)", err, durable.ErrInstanceExists)
		_, err = c.StartOrchestration(ctx, oHelloInline, "x", durable.WithStartInstanceID("running"),
			durable.WithIDReusePolicy(durable.ReuseError))
		wantErrIs(t, "start over a running instance (ReuseError)", err, durable.ErrInstanceExists)
		got, err := c.StartOrchestration(ctx, oHelloInline, "x", durable.WithStartInstanceID("running"),
			durable.WithIDReusePolicy(durable.ReuseIgnore))
		if err != nil || got != "running" {
			t.Fatalf("start over a running instance (ReuseIgnore): id %q, error %v; want no error", got, err)
		}
		s := getStatus(t, ctx, c, "running")
		if s.RuntimeStatus != core.StatusRunning || s.ExecutionID != first.ExecutionID || s.Name != oWaitEvent {
			t.Fatalf("ReuseIgnore replaced the running instance: %s, execution %s (was %s), name %q",
				describeStatus(s), s.ExecutionID, first.ExecutionID, s.Name)
		}
		startWithID(t, ctx, c, "running", oHelloInline, "replacement", durable.WithIDReusePolicy(durable.ReuseTerminate))
		s = waitDone(t, ctx, c, "running")
		if got := completedOutput[string](t, s); got != "Hello, replacement!" || s.ExecutionID == first.ExecutionID {
			t.Errorf("ReuseTerminate: output %q, execution %s (was %s)", got, s.ExecutionID, first.ExecutionID)
		}
		// The replaced execution does not come back to life.
		if err := c.RaiseEvent(ctx, "running", "go", "zombie"); !errors.Is(err, durable.ErrNotRunning) {
			t.Errorf("raise on the replacement (completed): got %v, want ErrNotRunning", err)
		}
		if s2 := getStatus(t, ctx, c, "running"); s2.ExecutionID != s.ExecutionID || string(s2.Output) != string(s.Output) {
			t.Errorf("after replacement: %s, execution %s", describeStatus(s2), s2.ExecutionID)
		}

		// ReuseError refuses ended instances too.
		_, err = c.StartOrchestration(ctx, oHelloInline, "x", durable.WithStartInstanceID("completed"),
			durable.WithIDReusePolicy(durable.ReuseError))
		wantErrIs(t, "start over a completed instance (ReuseError)", err, durable.ErrInstanceExists)
		// ReuseIgnore replaces an ended instance.
		before := getStatus(t, ctx, c, "completed")
		startWithID(t, ctx, c, "completed", oHelloInline, "ignored", durable.WithIDReusePolicy(durable.ReuseIgnore))
		s = waitDone(t, ctx, c, "completed")
		if got := completedOutput[string](t, s); got != "Hello, ignored!" || s.ExecutionID == before.ExecutionID {
			t.Errorf("ReuseIgnore on a completed instance: output %q, execution %s (was %s)", got, s.ExecutionID, before.ExecutionID)
		}
	})
}

// --- 12. scheduled start ---

func TestScenarioScheduledStart(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		at := time.Now().Add(300 * time.Millisecond).UTC()
		id := start(t, ctx, c, oObserveTime, nil, durable.WithStartTime(at))
		s := getStatus(t, ctx, c, id)
		if time.Now().Before(at) {
			// Only meaningful while the start time is ahead.
			wantStatus(t, s, core.StatusPending)
		}
		if !s.ScheduledStartAt.Equal(at) {
			t.Errorf("ScheduledStartAt = %v, want %v", s.ScheduledStartAt, at)
		}
		started := waitStarted(t, ctx, c, id)
		if now := time.Now(); now.Before(at) {
			t.Errorf("WaitForStart returned at %v (%s), before the scheduled start %v", now, started.RuntimeStatus, at)
		}
		if started.RuntimeStatus == core.StatusPending {
			t.Errorf("WaitForStart returned a Pending instance")
		}
		observed := completedOutput[time.Time](t, waitDone(t, ctx, c, id))
		if observed.Before(at) {
			t.Errorf("the orchestration ran at %v (ctx.CurrentTime), before its scheduled start %v", observed, at)
		}

		// Before the start time, a scheduled instance can be terminated (it
		// then never runs), receive events (buffered until it waits for
		// them), and be suspended and resumed. All three use one start
		// time, so that the waits overlap; it leaves time for five client
		// calls to be answered first, also on a slow transport (Event Hubs
		// under the race detector).
		at = time.Now().Add(2 * time.Second)
		cancelled := start(t, ctx, c, oObserveTime, nil, durable.WithStartTime(at))
		early := start(t, ctx, c, oWaitEvent, nil, durable.WithStartTime(at))
		held := start(t, ctx, c, oObserveTime, nil, durable.WithStartTime(at))
		if err := c.Terminate(ctx, cancelled, "cancelled"); err != nil {
			t.Fatal(err)
		}
		if err := c.RaiseEvent(ctx, early, "go", "early bird"); err != nil {
			t.Fatalf("raise on a scheduled instance: %v", err)
		}
		if err := c.Suspend(ctx, held, "not yet"); err != nil {
			t.Fatalf("suspend a scheduled instance: %v", err)
		}
		if err := c.Resume(ctx, held, "ok"); err != nil {
			t.Fatalf("resume a scheduled instance: %v", err)
		}
		wantStatus(t, waitDone(t, ctx, c, cancelled), core.StatusTerminated)

		// A scheduled start runs within milliseconds of its time; two
		// seconds of grace only keep a lost start from blocking the run.
		grace, cancel := context.WithTimeout(ctx, time.Until(at)+2*time.Second)
		defer cancel()
		lost := func(what, id string, err error) {
			t.Helper()
			st, _ := c.GetStatus(ctx, id, durable.WithHistory())
			if st == nil {
				t.Errorf("%s: the instance never ran (%v)", what, err)
				return
			}
			var hist []string
			for _, e := range st.History {
				hist = append(hist, e.Kind.String())
			}
			t.Errorf("%s: the instance never ran (%v; status %s, history %v)", what, err, st.RuntimeStatus, hist)
		}
		if s, err := c.WaitForCompletion(grace, early, durable.WithPayloads()); err != nil {
			lost("an event raised before the scheduled start", early, err)
		} else if got := completedOutput[string](t, s); got != "early bird" {
			t.Errorf("an event raised before the scheduled start: output %q, want %q", got, "early bird")
		}
		if s, err := c.WaitForCompletion(grace, held, durable.WithPayloads()); err != nil {
			lost("suspend and resume before the scheduled start", held, err)
		} else if got := completedOutput[time.Time](t, s); got.Before(at) {
			t.Errorf("suspend and resume before the scheduled start: ran at %v, before %v", got, at)
		}
		time.Sleep(time.Until(at) + 50*time.Millisecond)
		wantStatus(t, getStatus(t, ctx, c, cancelled), core.StatusTerminated)

		// A start time in the past starts at once.
		if got := run[time.Time](t, ctx, c, oObserveTime, nil, durable.WithStartTime(time.Now().Add(-time.Hour))); got.IsZero() {
			t.Errorf("past start time: zero time observed")
		}
	})
}

// --- 13. terminate ---

func TestScenarioTerminate(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)

		id := start(t, ctx, c, oWaitEvent, nil)
		waitStarted(t, ctx, c, id)
		if err := c.Terminate(ctx, id, "stop now"); err != nil {
			t.Fatal(err)
		}
		s := waitDone(t, ctx, c, id)
		wantStatus(t, s, core.StatusTerminated)
		if string(s.Output) != `"stop now"` {
			t.Errorf("termination reason: output %s, want %q", s.Output, `"stop now"`)
		}

		waitChildRunning := func(child string) {
			t.Helper()
			eventually(t, ctx, child+" running", func() (bool, string) {
				s, err := c.GetStatus(ctx, child)
				if errors.Is(err, durable.ErrInstanceNotFound) {
					return false, "not found"
				}
				if err != nil {
					t.Fatalf("status of %s: %v", child, err)
				}
				return s.RuntimeStatus == core.StatusRunning, s.RuntimeStatus.String()
			})
		}

		// Recursive: the waiting child is terminated too.
		parent, child := "rec-parent", "rec-parent-child"
		startWithID(t, ctx, c, parent, oParentWithChild, []string{child})
		waitChildRunning(child)
		if err := c.Terminate(ctx, parent, "cleanup", durable.WithRecursiveTerminate()); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, waitDone(t, ctx, c, parent), core.StatusTerminated)
		cs := waitDone(t, ctx, c, child)
		wantStatus(t, cs, core.StatusTerminated)
		if string(cs.Output) != `"cleanup"` {
			t.Errorf("child termination reason: %s", cs.Output)
		}

		// Recursive over three levels, placed on different partitions.
		chain := []string{"deep-1!1", "deep-2!2", "deep-3!3"}
		startWithID(t, ctx, c, "deep-0!0", oParentWithChild, chain)
		waitChildRunning(chain[2])
		if err := c.Terminate(ctx, "deep-0!0", "deep cleanup", durable.WithRecursiveTerminate()); err != nil {
			t.Fatal(err)
		}
		for _, id := range append([]string{"deep-0!0"}, chain...) {
			wantStatus(t, waitDone(t, ctx, c, id), core.StatusTerminated)
		}

		// Not recursive: the child keeps running, and can finish alone.
		parent, child = "flat-parent", "flat-parent-child"
		startWithID(t, ctx, c, parent, oParentWithChild, []string{child})
		waitChildRunning(child)
		if err := c.Terminate(ctx, parent, "parent only"); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, waitDone(t, ctx, c, parent), core.StatusTerminated)
		wantStatus(t, getStatus(t, ctx, c, child), core.StatusRunning)
		if err := c.RaiseEvent(ctx, child, "go", "done alone"); err != nil {
			t.Fatal(err)
		}
		if got := completedOutput[string](t, waitDone(t, ctx, c, child)); got != "done alone" {
			t.Errorf("child after parent terminated: %q", got)
		}
		wantStatus(t, getStatus(t, ctx, c, parent), core.StatusTerminated)

		// Terminating an ended instance does nothing.
		done := start(t, ctx, c, oHelloInline, "ended")
		before := waitDone(t, ctx, c, done)
		if err := c.Terminate(ctx, done, "too late"); err != nil {
			t.Fatalf("terminate a completed instance: %v", err)
		}
		after := getStatus(t, ctx, c, done)
		if after.RuntimeStatus != core.StatusCompleted || string(after.Output) != string(before.Output) {
			t.Errorf("terminate changed a completed instance: %s", describeStatus(after))
		}
		if err := c.Terminate(ctx, id, "again"); err != nil {
			t.Fatalf("terminate a terminated instance: %v", err)
		}
		if s := getStatus(t, ctx, c, id); string(s.Output) != `"stop now"` {
			t.Errorf("second terminate changed the reason: %s", s.Output)
		}
	})
}

// --- 14. suspend and resume ---

func TestScenarioSuspendResume(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		id := start(t, ctx, c, oCollect, 3)
		waitStarted(t, ctx, c, id)
		if err := c.RaiseEvent(ctx, id, "item", "a"); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "first item processed", func() (bool, string) {
			s := getStatus(t, ctx, c, id)
			return string(s.CustomStatus) == "1", string(s.CustomStatus)
		})
		if err := c.Suspend(ctx, id, "pause"); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "Suspended", func() (bool, string) {
			s := getStatus(t, ctx, c, id)
			return s.RuntimeStatus == core.StatusSuspended, s.RuntimeStatus.String()
		})
		for _, item := range []string{"b", "c"} {
			if err := c.RaiseEvent(ctx, id, "item", item); err != nil {
				t.Fatalf("raise while suspended: %v", err)
			}
		}
		// Give the engine every chance to (wrongly) process the events.
		time.Sleep(200 * time.Millisecond)
		s := getStatus(t, ctx, c, id)
		if s.RuntimeStatus != core.StatusSuspended || string(s.CustomStatus) != "1" {
			t.Fatalf("while suspended: %s, custom status %s; want Suspended with 1 item processed",
				describeStatus(s), s.CustomStatus)
		}
		if err := c.Resume(ctx, id, "go on"); err != nil {
			t.Fatal(err)
		}
		got := completedOutput[[]string](t, waitDone(t, ctx, c, id))
		if !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("after resume: got %q, want [a b c]", got)
		}
		wantErrIs(t, "suspend a completed instance", c.Suspend(ctx, id, "late"), durable.ErrNotRunning)
		wantErrIs(t, "resume a completed instance", c.Resume(ctx, id, "late"), durable.ErrNotRunning)

		// A timer that fires while suspended takes effect only after resume.
		id = start(t, ctx, c, oApproval, 300)
		waitStarted(t, ctx, c, id)
		if err := c.Suspend(ctx, id, "hold the timer"); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "Suspended", func() (bool, string) {
			s := getStatus(t, ctx, c, id)
			return s.RuntimeStatus == core.StatusSuspended, describeStatus(s)
		})
		time.Sleep(500 * time.Millisecond)
		wantStatus(t, getStatus(t, ctx, c, id), core.StatusSuspended)
		if err := c.Resume(ctx, id, "release"); err != nil {
			t.Fatal(err)
		}
		if got := completedOutput[string](t, waitDone(t, ctx, c, id)); got != "escalated" {
			t.Errorf("timer while suspended: output %q, want escalated", got)
		}

		// A suspended instance can be terminated.
		id = start(t, ctx, c, oCollect, 1)
		waitStarted(t, ctx, c, id)
		if err := c.Suspend(ctx, id, "pause"); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "Suspended", func() (bool, string) {
			s := getStatus(t, ctx, c, id)
			return s.RuntimeStatus == core.StatusSuspended, s.RuntimeStatus.String()
		})
		if err := c.Terminate(ctx, id, "stop"); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, waitDone(t, ctx, c, id), core.StatusTerminated)
	})
}

// --- 15. purge ---

func TestScenarioPurge(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)

		id := start(t, ctx, c, oHelloInline, "purge me")
		waitDone(t, ctx, c, id)
		n, err := c.Purge(ctx, id)
		if err != nil || n != 1 {
			t.Fatalf("purge: %d, %v; want 1", n, err)
		}
		_, err = c.GetStatus(ctx, id)
		wantErrIs(t, "status of a purged instance", err, durable.ErrInstanceNotFound)
		if n, err := c.Purge(ctx, id); err != nil || n != 0 {
			t.Errorf("purge again: %d, %v; want 0, nil", n, err)
		}

		// Recursive purge deletes the sub-orchestrations too.
		parent := start(t, ctx, c, oSubFanOut, 3)
		waitDone(t, ctx, c, parent)
		if n, err := c.Purge(ctx, parent, durable.WithRecursivePurge()); err != nil || n != 4 {
			t.Errorf("recursive purge: %d, %v; want 4", n, err)
		}
		if page, err := c.Query(ctx, durable.InstanceQuery{InstanceIDPrefix: parent}); err != nil || len(page.Instances) != 0 {
			t.Errorf("after recursive purge: %d instances left (%v)", len(page.Instances), err)
		}

		// A refused recursive purge of a running parent leaves its
		// (completed) children alone.
		busy := start(t, ctx, c, oChildrenThenWait, 2)
		eventually(t, ctx, "children of "+busy+" completed", func() (bool, string) {
			page, err := c.Query(ctx, durable.InstanceQuery{InstanceIDPrefix: busy + ":",
				Statuses: []core.RuntimeStatus{core.StatusCompleted}})
			if err != nil {
				t.Fatal(err)
			}
			return len(page.Instances) == 2, fmt.Sprintf("%d completed children", len(page.Instances))
		})
		if n, err := c.Purge(ctx, busy, durable.WithRecursivePurge()); err == nil {
			t.Errorf("recursive purge of a running instance: %d, no error; want an error", n)
		} else if n != 0 {
			t.Errorf("recursive purge of a running instance failed (%v) but reports %d instances deleted", err, n)
		}
		if page, err := c.Query(ctx, durable.InstanceQuery{InstanceIDPrefix: busy}); err != nil || len(page.Instances) != 3 {
			t.Errorf("after a refused recursive purge of running %s: %d of its 3 instances left (%v); want all 3",
				busy, len(page.Instances), err)
		}
		if err := c.RaiseEvent(ctx, busy, "go", "done"); err != nil {
			t.Fatal(err)
		}
		waitDone(t, ctx, c, busy)
		if n, err := c.Purge(ctx, busy, durable.WithRecursivePurge()); err != nil || n < 1 {
			t.Errorf("recursive purge after completion: %d, %v", n, err)
		}

		// A purged id can be used again.
		startWithID(t, ctx, c, id, oHelloInline, "reborn")
		if got := completedOutput[string](t, waitDone(t, ctx, c, id)); got != "Hello, reborn!" {
			t.Errorf("start after purge: %q", got)
		}
		if n, err := c.Purge(ctx, id); err != nil || n != 1 {
			t.Errorf("purge the reborn instance: %d, %v", n, err)
		}

		running := start(t, ctx, c, oWaitEvent, nil)
		waitStarted(t, ctx, c, running)
		if n, err := c.Purge(ctx, running); !errors.Is(err, durable.ErrStillRunning) || n != 0 {
			t.Fatalf("purge of a running instance: %d, %v; want ErrStillRunning", n, err)
		}
		wantStatus(t, getStatus(t, ctx, c, running), core.StatusRunning)

		// PurgeWhere by time range and status.
		var early []string
		for i := 0; i < 3; i++ {
			early = append(early, start(t, ctx, c, oHelloInline, "early"))
		}
		for _, id := range early {
			waitDone(t, ctx, c, id)
		}
		time.Sleep(5 * time.Millisecond)
		mid := time.Now()
		time.Sleep(5 * time.Millisecond)
		var lateOK, lateFailed []string
		for i := 0; i < 4; i++ {
			lateOK = append(lateOK, start(t, ctx, c, oHelloInline, "late"))
		}
		for i := 0; i < 2; i++ {
			lateFailed = append(lateFailed, start(t, ctx, c, oFail, "late"))
		}
		lateRunning := start(t, ctx, c, oWaitEvent, nil)
		for _, id := range append(slices.Clone(lateOK), lateFailed...) {
			waitDone(t, ctx, c, id)
		}
		waitStarted(t, ctx, c, lateRunning)

		exists := func(id string) bool {
			_, err := c.GetStatus(ctx, id)
			if err != nil && !errors.Is(err, durable.ErrInstanceNotFound) {
				t.Fatalf("status of %s: %v", id, err)
			}
			return err == nil
		}
		checkExist := func(when string, ids []string, want bool) {
			t.Helper()
			for _, id := range ids {
				if exists(id) != want {
					t.Errorf("%s: %s exists = %v, want %v", when, id, !want, want)
				}
			}
		}

		_, err = c.PurgeWhere(ctx, durable.PurgeFilter{Statuses: []core.RuntimeStatus{core.StatusRunning}})
		if err == nil {
			t.Errorf("PurgeWhere with status Running: want an error")
		}

		n, err = c.PurgeWhere(ctx, durable.PurgeFilter{CreatedFrom: mid, Statuses: []core.RuntimeStatus{core.StatusCompleted}})
		if err != nil || n != len(lateOK) {
			t.Errorf("PurgeWhere(late, Completed): %d, %v; want %d", n, err, len(lateOK))
		}
		checkExist("after PurgeWhere(late, Completed)", lateOK, false)
		checkExist("after PurgeWhere(late, Completed)", append(append(slices.Clone(early), lateFailed...), lateRunning, running), true)

		n, err = c.PurgeWhere(ctx, durable.PurgeFilter{CreatedTo: mid})
		if err != nil || n != len(early) {
			t.Errorf("PurgeWhere(early): %d, %v; want %d", n, err, len(early))
		}
		checkExist("after PurgeWhere(early)", early, false)
		checkExist("after PurgeWhere(early)", append(slices.Clone(lateFailed), lateRunning, running), true)

		n, err = c.PurgeWhere(ctx, durable.PurgeFilter{})
		if err != nil || n != len(lateFailed) {
			t.Errorf("PurgeWhere(all ended): %d, %v; want %d", n, err, len(lateFailed))
		}
		checkExist("after PurgeWhere(all ended)", lateFailed, false)
		checkExist("after PurgeWhere(all ended)", []string{lateRunning, running}, true)

		page, err := c.Query(ctx, durable.InstanceQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, s := range page.Instances {
			left = append(left, s.InstanceID)
		}
		want := []string{lateRunning, running}
		sort.Strings(want)
		if !slices.Equal(left, want) {
			t.Errorf("instances left: %q, want %q", left, want)
		}
	})
}

// --- 16. queries with filters and paging ---

// queryAll follows continuation tokens and checks the pages.
func queryAll(t *testing.T, ctx context.Context, c durable.Client, q durable.InstanceQuery) []*durable.OrchestrationStatus {
	t.Helper()
	var all []*durable.OrchestrationStatus
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatalf("query %+v: more than 100 pages", q)
		}
		page, err := c.Query(ctx, q)
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		if q.PageSize > 0 && len(page.Instances) > q.PageSize {
			t.Fatalf("query: page of %d instances, page size %d", len(page.Instances), q.PageSize)
		}
		if len(page.Instances) == 0 && page.ContinuationToken != "" {
			t.Fatalf("query: empty page with a continuation token")
		}
		for _, s := range page.Instances {
			if seen[s.InstanceID] {
				t.Fatalf("query: %s returned twice", s.InstanceID)
			}
			seen[s.InstanceID] = true
			if len(all) > 0 && all[len(all)-1].InstanceID > s.InstanceID {
				t.Errorf("query: %s after %s (not in id order)", s.InstanceID, all[len(all)-1].InstanceID)
			}
			all = append(all, s)
		}
		if page.ContinuationToken == "" {
			return all
		}
		q.ContinuationToken = page.ContinuationToken
	}
}

func ids(ss []*durable.OrchestrationStatus) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.InstanceID)
	}
	return out
}

func TestScenarioQuery(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		var others, done, waiting []string
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("other-%02d", i)
			startWithID(t, ctx, c, id, oHelloInline, id)
			others = append(others, id)
		}
		for _, id := range others {
			waitDone(t, ctx, c, id)
		}
		time.Sleep(5 * time.Millisecond)
		t0 := time.Now()
		time.Sleep(5 * time.Millisecond)
		for i := 0; i < 10; i++ {
			id := fmt.Sprintf("q-a-%02d", i)
			startWithID(t, ctx, c, id, oHelloInline, id)
			done = append(done, id)
		}
		for _, id := range done {
			waitDone(t, ctx, c, id)
		}
		time.Sleep(5 * time.Millisecond)
		t1 := time.Now()
		time.Sleep(5 * time.Millisecond)
		for i := 0; i < 15; i++ {
			id := fmt.Sprintf("q-b-%02d", i)
			startWithID(t, ctx, c, id, oWaitEvent, nil)
			waiting = append(waiting, id)
		}
		for _, id := range waiting {
			waitStarted(t, ctx, c, id)
		}
		all := append(slices.Clone(done), waiting...)

		check := func(what string, q durable.InstanceQuery, want []string) []*durable.OrchestrationStatus {
			t.Helper()
			got := queryAll(t, ctx, c, q)
			if !slices.Equal(ids(got), want) {
				t.Errorf("%s: got %d instances %q, want %d %q", what, len(got), ids(got), len(want), want)
			}
			return got
		}
		got := check("prefix q-", durable.InstanceQuery{InstanceIDPrefix: "q-", PageSize: 7}, all)
		for _, s := range got {
			want := core.StatusCompleted
			if strings.HasPrefix(s.InstanceID, "q-b-") {
				want = core.StatusRunning
			}
			if s.RuntimeStatus != want {
				t.Errorf("query: %s is %s, want %s", s.InstanceID, s.RuntimeStatus, want)
			}
			if len(s.Input) != 0 {
				t.Errorf("query without payloads returned input for %s", s.InstanceID)
			}
		}
		check("everything", durable.InstanceQuery{PageSize: 7}, append(slices.Clone(others), all...))
		check("Running", durable.InstanceQuery{Statuses: []core.RuntimeStatus{core.StatusRunning}, PageSize: 7}, waiting)
		check("q- Completed", durable.InstanceQuery{InstanceIDPrefix: "q-", PageSize: 7,
			Statuses: []core.RuntimeStatus{core.StatusCompleted}}, done)
		check("Completed or Running", durable.InstanceQuery{PageSize: 4,
			Statuses: []core.RuntimeStatus{core.StatusCompleted, core.StatusRunning}}, append(slices.Clone(others), all...))
		check("Failed", durable.InstanceQuery{Statuses: []core.RuntimeStatus{core.StatusFailed}}, nil)
		check("created from t1", durable.InstanceQuery{CreatedFrom: t1, PageSize: 7}, waiting)
		check("created in [t0, t1)", durable.InstanceQuery{CreatedFrom: t0, CreatedTo: t1, PageSize: 3}, done)
		check("created before t0", durable.InstanceQuery{CreatedTo: t0, PageSize: 2}, others)
		check("prefix q-b- from t0", durable.InstanceQuery{InstanceIDPrefix: "q-b-", CreatedFrom: t0, PageSize: 7}, waiting)
		check("no match", durable.InstanceQuery{InstanceIDPrefix: "zzz"}, nil)
		check("page size 1", durable.InstanceQuery{InstanceIDPrefix: "q-a-", PageSize: 1}, done)

		withPayloads := queryAll(t, ctx, c, durable.InstanceQuery{InstanceIDPrefix: "q-a-", PageSize: 7, WithPayloads: true})
		for _, s := range withPayloads {
			if string(s.Input) != `"`+s.InstanceID+`"` || string(s.Output) != `"Hello, `+s.InstanceID+`!"` {
				t.Errorf("query with payloads: %s input %s output %s", s.InstanceID, s.Input, s.Output)
			}
		}
	})
}

// --- 17. entities ---

func TestScenarioEntities(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		counter := func(key string) core.EntityID { return core.NewEntityID(samples.Counter, key) }

		// Signals from the client.
		c1 := counter("c1")
		_, err := c.GetEntity(ctx, c1, true)
		wantErrIs(t, "get an entity that does not exist yet", err, durable.ErrEntityNotFound)
		for _, d := range []int{5, 7, -2} {
			if err := c.SignalEntity(ctx, c1, "add", d); err != nil {
				t.Fatal(err)
			}
		}
		waitEntityValue(t, ctx, c, c1, 10)
		m, err := c.GetEntity(ctx, c1, false)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != c1 || len(m.State) != 0 || m.LastUpdatedAt.IsZero() {
			t.Errorf("GetEntity without state: id %v state %s updated %v", m.ID, m.State, m.LastUpdatedAt)
		}
		// An entity name is case-insensitive.
		if v, ok, err := entityInt(ctx, c, core.NewEntityID("COUNTER", "c1")); err != nil || !ok || v != 10 {
			t.Errorf("GetEntity(COUNTER/c1): %d, %v, %v", v, ok, err)
		}
		// Keys are not.
		_, err = c.GetEntity(ctx, counter("C1"), true)
		wantErrIs(t, "get an entity with another key", err, durable.ErrEntityNotFound)

		// Delete.
		if err := c.SignalEntity(ctx, c1, "delete", nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "c1 deleted", func() (bool, string) {
			v, ok, err := entityInt(ctx, c, c1)
			if err != nil {
				t.Fatal(err)
			}
			return !ok, fmt.Sprintf("exists with %d", v)
		})
		// A deleted entity starts over.
		if err := c.SignalEntity(ctx, c1, "add", 1); err != nil {
			t.Fatal(err)
		}
		waitEntityValue(t, ctx, c, c1, 1)

		// Signals and calls from an orchestration.
		if got := run[int](t, ctx, c, oSignalFromOrch, "c2"); got != 7 {
			t.Errorf("signal then call from an orchestration: get returned %d, want 7", got)
		}
		waitEntityValue(t, ctx, c, counter("c2"), 7)

		// An entity that signals another entity.
		fwd := core.NewEntityID(eForwarder, "f1")
		for i := 1; i <= 4; i++ {
			if err := c.SignalEntity(ctx, fwd, "forward", fwdInput{Key: "c3", N: i}); err != nil {
				t.Fatal(err)
			}
		}
		waitEntityValue(t, ctx, c, counter("c3"), 10)
		waitEntityValue(t, ctx, c, fwd, 4)

		// An entity that starts an orchestration.
		if err := c.SignalEntity(ctx, fwd, "start", startInput{ID: "from-entity", Name: "entity"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "orchestration started by an entity", func() (bool, string) {
			s, err := c.GetStatus(ctx, "from-entity", durable.WithPayloads())
			if errors.Is(err, durable.ErrInstanceNotFound) {
				return false, "not found"
			}
			if err != nil {
				t.Fatal(err)
			}
			return s.RuntimeStatus == core.StatusCompleted && string(s.Output) == `"Hello, entity!"`, describeStatus(s)
		})

		// A failing operation leaves the state alone.
		if err := c.SignalEntity(ctx, counter("c2"), "no-such-op", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.SignalEntity(ctx, counter("c2"), "add", 1); err != nil {
			t.Fatal(err)
		}
		waitEntityValue(t, ctx, c, counter("c2"), 8)

		// Delayed signal.
		at := time.Now().Add(100 * time.Millisecond)
		if err := c.SignalEntity(ctx, counter("late"), "add", 5, durable.WithSignalTime(at)); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := entityInt(ctx, c, counter("late")); ok && time.Now().Before(at) {
			t.Errorf("a delayed signal was delivered before its time")
		}
		waitEntityValue(t, ctx, c, counter("late"), 5)
		if time.Now().Before(at) {
			t.Errorf("a delayed signal was delivered before its time")
		}

		// ListEntities with a name filter and paging.
		var listKeys []string
		for i := 0; i < 12; i++ {
			key := fmt.Sprintf("lst-%02d", i)
			listKeys = append(listKeys, key)
			if err := c.SignalEntity(ctx, counter(key), "add", i+1); err != nil {
				t.Fatal(err)
			}
		}
		for i, key := range listKeys {
			waitEntityValue(t, ctx, c, counter(key), i+1)
		}
		listAll := func(q durable.EntityQuery) []*durable.EntityMetadata {
			t.Helper()
			var all []*durable.EntityMetadata
			seen := map[string]bool{}
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatalf("ListEntities %+v: more than 100 pages", q)
				}
				page, err := c.ListEntities(ctx, q)
				if err != nil {
					t.Fatalf("ListEntities %+v: %v", q, err)
				}
				if q.PageSize > 0 && len(page.Entities) > q.PageSize {
					t.Fatalf("ListEntities: page of %d, page size %d", len(page.Entities), q.PageSize)
				}
				for _, e := range page.Entities {
					if seen[e.ID.String()] {
						t.Fatalf("ListEntities: %s returned twice", e.ID)
					}
					seen[e.ID.String()] = true
					all = append(all, e)
				}
				if page.ContinuationToken == "" {
					return all
				}
				q.ContinuationToken = page.ContinuationToken
			}
		}
		keys := func(es []*durable.EntityMetadata) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.ID.Key)
			}
			return out
		}
		got := listAll(durable.EntityQuery{Name: samples.Counter, KeyPrefix: "lst-", PageSize: 5, IncludeState: true})
		if !slices.Equal(keys(got), listKeys) {
			t.Errorf("ListEntities(Counter, lst-): got %q, want %q", keys(got), listKeys)
		}
		for i, e := range got {
			var v int
			if err := e.ReadState(&v); err != nil || v != i+1 || e.ID.Name != "counter" {
				t.Errorf("ListEntities: %s state %s (%v), want %d", e.ID, e.State, err, i+1)
			}
		}
		wantCounters := append([]string{"c1", "c2", "c3", "late"}, listKeys...)
		sort.Strings(wantCounters)
		if got := keys(listAll(durable.EntityQuery{Name: "Counter", PageSize: 3})); !slices.Equal(got, wantCounters) {
			t.Errorf("ListEntities(Counter): got %q, want %q", got, wantCounters)
		}
		if got := listAll(durable.EntityQuery{Name: eForwarder, PageSize: 3}); len(got) != 1 || got[0].ID != fwd {
			t.Errorf("ListEntities(%s): got %q, want [f1]", eForwarder, keys(got))
		}
		if got := listAll(durable.EntityQuery{PageSize: 4}); len(got) != len(wantCounters)+1 {
			t.Errorf("ListEntities(): got %d entities, want %d", len(got), len(wantCounters)+1)
		}
		if got := listAll(durable.EntityQuery{Name: "nosuchentity"}); len(got) != 0 {
			t.Errorf("ListEntities(nosuchentity): got %q", keys(got))
		}
	})
}

// --- 18. critical sections: bank transfers ---

func TestScenarioBankTransfers(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		const accounts, initial = 5, 1000
		transfers := 50
		if h.Options().Backend == netherite.BackendAzStorage {
			// Transfers on one account are serialized by its lock, and each
			// takes the baseline some eight queue hops of about 150 ms on
			// Azurite: 50 would not fit the scenario timeout.
			transfers = 20
		}
		acct := func(i int) string { return fmt.Sprintf("acct-%d!%d", i, i) }
		eid := func(i int) core.EntityID { return core.NewEntityID(samples.Account, acct(i)) }
		for i := 0; i < accounts; i++ {
			if err := c.SignalEntity(ctx, eid(i), "deposit", initial); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < accounts; i++ {
			waitEntityValue(t, ctx, c, eid(i), initial)
		}

		rng := rand.New(rand.NewPCG(7, 11))
		reqs := make([]samples.TransferRequest, transfers)
		for i := range reqs {
			from := rng.IntN(accounts)
			to := (from + 1 + rng.IntN(accounts-1)) % accounts
			reqs[i] = samples.TransferRequest{From: acct(from), To: acct(to), Amount: 1 + rng.IntN(400)}
		}
		results := make([]*durable.OrchestrationStatus, transfers)
		errs := make([]error, transfers)
		var wg sync.WaitGroup
		for i := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := c.StartOrchestration(ctx, samples.Transfer, reqs[i],
					durable.WithStartInstanceID(fmt.Sprintf("tx-%02d!%d", i, i)))
				if err == nil {
					results[i], err = c.WaitForCompletion(ctx, id, durable.WithPayloads())
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		balance := make([]int, accounts)
		for i := range balance {
			balance[i] = initial
		}
		index := func(name string) int {
			var a, b int
			if _, err := fmt.Sscanf(name, "acct-%d!%d", &a, &b); err != nil {
				t.Fatalf("test bug: %q", name)
			}
			return a
		}
		moved := 0
		for i, s := range results {
			if errs[i] != nil {
				t.Fatalf("transfer %d: %v", i, errs[i])
			}
			ok := completedOutput[bool](t, s)
			if ok {
				moved++
				balance[index(reqs[i].From)] -= reqs[i].Amount
				balance[index(reqs[i].To)] += reqs[i].Amount
			}
		}
		if moved == 0 {
			t.Errorf("no transfer succeeded")
		}
		t.Logf("%d of %d transfers moved money", moved, transfers)
		total := 0
		for i := 0; i < accounts; i++ {
			v, ok, err := entityInt(ctx, c, eid(i))
			if err != nil || !ok {
				t.Fatalf("account %s: %v, exists %v", acct(i), err, ok)
			}
			total += v
			if v < 0 {
				t.Errorf("account %s is negative: %d", acct(i), v)
			}
			if v != balance[i] {
				t.Errorf("account %s: balance %d, want %d from the %d successful transfers", acct(i), v, balance[i], moved)
			}
		}
		if total != accounts*initial {
			t.Errorf("total %d, want %d: money was created or destroyed", total, accounts*initial)
		}
		// Every lock is released eventually.
		for i := 0; i < accounts; i++ {
			eventually(t, ctx, acct(i)+" unlocked", func() (bool, string) {
				m, err := c.GetEntity(ctx, eid(i), false)
				if err != nil {
					t.Fatal(err)
				}
				return m.LockedBy == "" && m.QueueLength == 0, fmt.Sprintf("locked by %q, queue %d", m.LockedBy, m.QueueLength)
			})
		}
	})
}

// --- 19. many concurrent orchestrations of mixed kinds ---

func TestScenarioManyConcurrent(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		n := 200
		if h.Options().Backend == netherite.BackendAzStorage {
			// The baseline needs some 40 storage requests per orchestration
			// and Azurite serves about 150 a second on a shared machine:
			// 200 would not fit the scenario timeout.
			n = 64
		}
		type job struct {
			name  string
			input any
			check func(s *durable.OrchestrationStatus) error
		}
		eq := func(want string) func(s *durable.OrchestrationStatus) error {
			return func(s *durable.OrchestrationStatus) error {
				if s.RuntimeStatus != core.StatusCompleted || string(s.Output) != want {
					return fmt.Errorf("%s; want output %s", describeStatus(s), want)
				}
				return nil
			}
		}
		kinds := []func(i int) job{
			func(i int) job { return job{oHelloInline, fmt.Sprint(i), eq(fmt.Sprintf(`"Hello, %d!"`, i))} },
			func(i int) job {
				return job{samples.HelloSequence, nil, eq(`["Hello Tokyo!","Hello Seattle!","Hello London!"]`)}
			},
			func(i int) job { return job{oFactorial, 6, eq("720")} },
			func(i int) job { return job{samples.FanOutFanIn, 10, eq("385")} },
			func(i int) job { return job{oSubFanOut, 2, eq(`["0:0","1:1"]`)} },
			func(i int) job {
				return job{oConvParent, 2, func(s *durable.OrchestrationStatus) error {
					var out convOutput
					if s.RuntimeStatus != core.StatusCompleted || s.ReadOutput(&out) != nil ||
						out.Hello != "hi from "+s.InstanceID+"-child" || !slices.Equal(out.Replies, []int{10, 20}) || out.ChildSum != 3 {
						return fmt.Errorf("%s; want a completed conversation", describeStatus(s))
					}
					return nil
				}}
			},
			func(i int) job { return job{oCounterActor, 0, nil} }, // fed by events below
			func(i int) job { return job{oApproval, 20, eq(`"escalated"`)} },
		}
		jobs := make([]job, n)
		for i := range jobs {
			jobs[i] = kinds[i%len(kinds)](i)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, err := c.StartOrchestration(ctx, jobs[i].name, jobs[i].input)
				if err != nil {
					errs[i] = err
					return
				}
				if jobs[i].check == nil {
					// The counter actor: three adds and a stop.
					for _, n := range []int{i, 1, 2} {
						if err := c.RaiseEvent(ctx, id, "add", n); err != nil {
							errs[i] = err
							return
						}
					}
					if err := c.RaiseEvent(ctx, id, "stop", nil); err != nil {
						errs[i] = err
						return
					}
					jobs[i].check = eq(fmt.Sprint(i + 3))
				}
				s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
				if err != nil {
					errs[i] = err
					return
				}
				errs[i] = jobs[i].check(s)
			}()
		}
		wg.Wait()
		failed := 0
		for i, err := range errs {
			if err != nil {
				failed++
				if failed <= 5 {
					t.Errorf("job %d (%s): %v", i, jobs[i].name, err)
				}
			}
		}
		if failed > 0 {
			t.Errorf("%d of %d jobs failed", failed, n)
		}
	})
}

// --- 20. bad input ---

func TestScenarioBadInput(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)

		// Unknown orchestrator: the instance fails with a message naming it.
		s := waitDone(t, ctx, c, start(t, ctx, c, "NoSuchOrchestrator", nil))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || s.Failure.Type != core.FailureNotRegistered || !strings.Contains(s.Failure.Message, "NoSuchOrchestrator") {
			t.Errorf("unknown orchestrator: failure %+v", s.Failure)
		}

		// Unknown activity: a task failure the orchestration sees.
		f := run[failureOut](t, ctx, c, oCallUnknownActivity, nil)
		if f.Type != core.FailureNotRegistered || !strings.Contains(f.Message, "NoSuchActivity") || !f.NonRetriable {
			t.Errorf("unknown activity: failure %+v", f)
		}

		// Input that does not decode into the orchestrator's type.
		s = waitDone(t, ctx, c, start(t, ctx, c, oFactorial, "not a number"))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || s.Failure.Type != core.FailureInvalidInput {
			t.Errorf("input of the wrong type: failure %+v", s.Failure)
		}

		// Invalid JSON input.
		_, err := c.StartOrchestration(ctx, oHelloInline, durable.RawPayload("{bad"))
		wantErrContains(t, "invalid JSON input", err, "JSON")
		target := start(t, ctx, c, oWaitEvent, nil)
		wantErrContains(t, "invalid JSON event payload", c.RaiseEvent(ctx, target, "go", durable.RawPayload("{bad")), "JSON")
		wantErrContains(t, "invalid JSON signal input",
			c.SignalEntity(ctx, core.NewEntityID(samples.Counter, "j"), "add", durable.RawPayload("{bad")), "JSON")
		if err := c.Terminate(ctx, target, nil); err != nil {
			t.Fatal(err)
		}
		_, err = c.StartOrchestration(ctx, oHelloInline, func() {})
		if err == nil {
			t.Errorf("unencodable input: want an error")
		}

		// Invalid instance ids.
		badIDs := map[string]string{
			"empty":             "",
			"300 bytes":         strings.Repeat("x", 300),
			"control character": "bad\x00id",
			"newline":           "bad\nid",
			"not UTF-8":         "bad\xffid",
		}
		for what, id := range badIDs {
			if id != "" {
				_, err := c.StartOrchestration(ctx, oHelloInline, "x", durable.WithStartInstanceID(id))
				wantErrContains(t, "start with "+what+" id", err, "invalid instance id")
			}
			_, err := c.GetStatus(ctx, id)
			wantErrContains(t, "status with "+what+" id", err, "invalid instance id")
			err = c.RaiseEvent(ctx, id, "e", nil)
			wantErrContains(t, "raise with "+what+" id", err, "invalid instance id")
			err = c.Terminate(ctx, id, nil)
			wantErrContains(t, "terminate with "+what+" id", err, "invalid instance id")
			_, err = c.WaitForCompletion(ctx, id)
			wantErrContains(t, "wait with "+what+" id", err, "invalid instance id")
			_, err = c.Purge(ctx, id)
			wantErrContains(t, "purge with "+what+" id", err, "invalid instance id")
		}
		_, err = c.StartOrchestration(ctx, oHelloInline, "x", durable.WithStartInstanceID("@counter@x"))
		if err == nil {
			t.Errorf("start with an entity id: want an error")
		}
		if _, err := c.StartOrchestration(ctx, "", nil); err == nil {
			t.Errorf("start with an empty name: want an error")
		}

		// Instances that do not exist.
		const ghost = "no-such-instance"
		_, err = c.GetStatus(ctx, ghost)
		wantErrIs(t, "GetStatus of a missing instance", err, durable.ErrInstanceNotFound)
		wantErrIs(t, "RaiseEvent on a missing instance", c.RaiseEvent(ctx, ghost, "e", 1), durable.ErrInstanceNotFound)
		wantErrIs(t, "Terminate of a missing instance", c.Terminate(ctx, ghost, "x"), durable.ErrInstanceNotFound)
		wantErrIs(t, "Suspend of a missing instance", c.Suspend(ctx, ghost, "x"), durable.ErrInstanceNotFound)
		wantErrIs(t, "Resume of a missing instance", c.Resume(ctx, ghost, "x"), durable.ErrInstanceNotFound)
		_, err = c.WaitForCompletion(ctx, ghost)
		wantErrIs(t, "WaitForCompletion of a missing instance", err, durable.ErrInstanceNotFound)
		_, err = c.WaitForStart(ctx, ghost)
		wantErrIs(t, "WaitForStart of a missing instance", err, durable.ErrInstanceNotFound)
		if n, err := c.Purge(ctx, ghost); err != nil || n != 0 {
			t.Errorf("Purge of a missing instance: %d, %v; want 0, nil", n, err)
		}

		// An entity is not an orchestration instance.
		if err := c.SignalEntity(ctx, core.NewEntityID(samples.Counter, "e"), "add", 1); err != nil {
			t.Fatal(err)
		}
		waitEntityValue(t, ctx, c, core.NewEntityID(samples.Counter, "e"), 1)
		_, err = c.GetStatus(ctx, "@counter@e")
		wantErrIs(t, "GetStatus of an entity", err, durable.ErrInstanceNotFound)
		if err := c.SignalEntity(ctx, core.EntityID{Name: "", Key: "k"}, "add", 1); err == nil {
			t.Errorf("SignalEntity with an empty entity name: want an error")
		}
		if err := c.SignalEntity(ctx, core.NewEntityID(samples.Counter, "e"), "", 1); err == nil {
			t.Errorf("SignalEntity with an empty operation: want an error")
		}

		// Raising an event on a completed instance.
		id := start(t, ctx, c, oHelloInline, "done")
		waitDone(t, ctx, c, id)
		wantErrIs(t, "RaiseEvent on a completed instance", c.RaiseEvent(ctx, id, "e", 1), durable.ErrNotRunning)
		if err := c.RaiseEvent(ctx, id, "", 1); err == nil {
			t.Errorf("RaiseEvent with an empty name: want an error")
		}

		// After all that the host still works.
		if got := run[string](t, ctx, c, oHelloInline, "still here"); got != "Hello, still here!" {
			t.Errorf("hello after bad input: %q", got)
		}
	})
}

func TestScenarioPayloadLimit(t *testing.T) {
	const limit = 1024
	forEachPartitionCountOpts(t, netherite.Options{MaxPayloadBytes: limit}, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)
		big := strings.Repeat("y", 2*limit)

		_, err := c.StartOrchestration(ctx, oHelloInline, big)
		wantErrContains(t, "start with an input over the limit", err, "payload limit")

		id := start(t, ctx, c, oWaitEvent, nil)
		waitStarted(t, ctx, c, id)
		wantErrContains(t, "raise with a payload over the limit", c.RaiseEvent(ctx, id, "go", big), "payload limit")
		wantErrContains(t, "signal with an input over the limit",
			c.SignalEntity(ctx, core.NewEntityID(samples.Counter, "x"), "add", big), "payload limit")
		// The instance is unharmed.
		if err := c.RaiseEvent(ctx, id, "go", "small"); err != nil {
			t.Fatal(err)
		}
		if got := completedOutput[string](t, waitDone(t, ctx, c, id)); got != "small" {
			t.Errorf("after a refused event: output %q", got)
		}

		// An output over the limit fails the orchestration.
		s := waitDone(t, ctx, c, start(t, ctx, c, oBigOutput, 2*limit))
		wantStatus(t, s, core.StatusFailed)
		if s.Failure == nil || !strings.Contains(s.Failure.Message, "payload limit") {
			t.Errorf("output over the limit: failure %+v", s.Failure)
		}
		// Just under the limit is fine.
		if got := run[string](t, ctx, c, oBigOutput, limit-10); len(got) != limit-10 {
			t.Errorf("output under the limit: %d bytes", len(got))
		}
		if got := run[string](t, ctx, c, oHelloInline, "ok"); got != "Hello, ok!" {
			t.Errorf("hello: %q", got)
		}
	})
}

// --- 21. waits ---

func TestScenarioWaits(t *testing.T) {
	forEachPartitionCount(t, func(t *testing.T, c durable.Client, h *netherite.Host) {
		ctx := testContext(t)

		id := start(t, ctx, c, oWaitEvent, nil)
		s := waitStarted(t, ctx, c, id)
		if s.RuntimeStatus != core.StatusRunning {
			t.Errorf("WaitForStart: %s, want Running", s.RuntimeStatus)
		}

		// A done instance counts as started.
		done := start(t, ctx, c, oHelloInline, "w")
		waitDone(t, ctx, c, done)
		if s := waitStarted(t, ctx, c, done); s.RuntimeStatus != core.StatusCompleted {
			t.Errorf("WaitForStart of a completed instance: %s", s.RuntimeStatus)
		}
		if s, err := c.WaitForStart(ctx, done, durable.WithPayloads()); err != nil || string(s.Output) != `"Hello, w!"` {
			t.Errorf("WaitForStart with payloads: %v, %v", s, err)
		}

		// A cancelled context.
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.WaitForCompletion(cancelled, id)
		wantErrIs(t, "WaitForCompletion with a cancelled context", err, context.Canceled)
		// A short timeout.
		short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel2()
		_, err = c.WaitForCompletion(short, id)
		wantErrIs(t, "WaitForCompletion with a short timeout", err, context.DeadlineExceeded)

		// The instance and the client are fine afterwards.
		if err := c.RaiseEvent(ctx, id, "go", "finally"); err != nil {
			t.Fatal(err)
		}
		if got := completedOutput[string](t, waitDone(t, ctx, c, id)); got != "finally" {
			t.Errorf("output %q", got)
		}

		// Several waiters on one instance are all answered.
		id = start(t, ctx, c, oWaitEvent, nil)
		waitStarted(t, ctx, c, id)
		var wg sync.WaitGroup
		outs := make([]string, 5)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
				if err != nil {
					outs[i] = err.Error()
					return
				}
				outs[i] = string(s.Output)
			}()
		}
		time.Sleep(20 * time.Millisecond)
		if err := c.RaiseEvent(ctx, id, "go", "all"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i, o := range outs {
			if o != `"all"` {
				t.Errorf("waiter %d: %s", i, o)
			}
		}
	})
}
