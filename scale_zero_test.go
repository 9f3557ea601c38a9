package netherite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/loadmonitor"
)

// Scale to zero and back: once the task hub is idle the recommendation is
// 0 hosts, and it stays 0 after the last host stopped; then, with no host
// running, a client's request and a timer coming due each bring it back to
// 1 (TaskHubStatus, which is what a platform asks), and a host started on
// that word does the work. The horizon of timers is shortened to 4 s.

func TestScaleToZero(t *testing.T) {
	scaleToZero(t, newElasticHub(t))
}

func TestScaleToZeroEventHubs(t *testing.T) {
	if testing.Short() {
		t.Skip("Event Hubs emulator test skipped in -short mode")
	}
	scaleToZero(t, newElasticHubOnEventHubs(t, "zero"))
}

const zeroHorizon = 4 * time.Second

func scaleToZero(t *testing.T, e *elasticHub) {
	t.Cleanup(netherite.TuneMonitor(func(c *loadmonitor.Config) { c.TimerHorizon = zeroHorizon }))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	status := func() loadmonitor.Recommendation {
		t.Helper()
		o := e.options("probe")
		rec, err := netherite.TaskHubStatus(ctx, o)
		if err != nil {
			t.Fatalf("TaskHubStatus: %v", err)
		}
		return rec.Recommendation
	}
	waitStatus := func(what string, within time.Duration, ok func(loadmonitor.Recommendation) bool) loadmonitor.Recommendation {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			asked := time.Now()
			r := status()
			if ok(r) {
				t.Logf("%s: %d (%s); TaskHubStatus took %v", what, r.Hosts, r.Reason, time.Since(asked).Round(time.Millisecond))
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; recommendation %d (%s)", what, within, r.Hosts, r.Reason)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	zero := func(r loadmonitor.Recommendation) bool { return r.Hosts == 0 }
	stop := func(h *netherite.Host) {
		t.Helper()
		if err := h.Stop(ctx); err != nil {
			t.Fatalf("stop %s: %v", h.ID(), err)
		}
		// Past the host timeout no monitor vouches for the record.
		time.Sleep(elasticTimeout + 200*time.Millisecond)
	}
	complete := func(c durable.Client, id string) string {
		t.Helper()
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
		if err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s: %v %+v", id, err, s)
		}
		return string(s.Output)
	}

	c := e.client()
	a := e.start("a")
	id, err := c.StartOrchestration(ctx, "Hello5", nil)
	if err != nil {
		t.Fatal(err)
	}
	complete(c, id)
	waitStatus("idle with a host", 20*time.Second, zero)
	stop(a)
	// No host: idle it stays, the acknowledgements that partitions
	// exchanged while stopping notwithstanding.
	for range 5 {
		if r := status(); r.Hosts != 0 {
			t.Fatalf("no host, nothing to do: recommendation %d (%s), want 0", r.Hosts, r.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A request while no host runs: 1 host. It is answered once one runs.
	started := make(chan error, 1)
	const waiting = "zero-request"
	go func() {
		_, err := c.StartOrchestration(ctx, "Hello5", nil, durable.WithStartInstanceID(waiting))
		started <- err
	}()
	r := waitStatus("a request with no host", 10*time.Second, func(r loadmonitor.Recommendation) bool { return r.Hosts == 1 })
	if !strings.Contains(r.Reason, "unread requests or messages") {
		t.Errorf("reason %q does not name the unread request", r.Reason)
	}
	b := e.start("b")
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", waiting, err)
	}
	complete(c, waiting)
	// Let b's partitions catch up with their queues (they re-read what a
	// answered but did not make durable, such as a wait). A partition
	// that has not read its queue yet looks idle (on Event Hubs nothing
	// tells it what is there), and 5 idle periods are only 1 s here (10 s
	// at the default report interval); idle too early, b would stop with
	// input unread, which Wake would rightly see as work.
	time.Sleep(3 * time.Second)

	// A timer due in 20 s: idle (the timer is beyond the horizon), so 0,
	// also once b stopped; 1 once the timer is due within the horizon.
	const sleeper = "zero-sleeper"
	sleepStart := time.Now()
	if _, err := c.StartOrchestration(ctx, "ZeroSleeper", 20, durable.WithStartInstanceID(sleeper)); err != nil {
		t.Fatal(err)
	}
	due := sleepStart.Add(20 * time.Second)
	waitStatus("a timer beyond the horizon", 10*time.Second, zero)
	stop(b)
	if r := status(); time.Until(due) > zeroHorizon+time.Second && r.Hosts != 0 {
		t.Fatalf("no host, the timer due in %v: recommendation %d (%s), want 0", time.Until(due).Round(time.Millisecond), r.Hosts, r.Reason)
	}
	r = waitStatus("the timer comes due", 25*time.Second, func(r loadmonitor.Recommendation) bool { return r.Hosts == 1 })
	if !strings.Contains(r.Reason, "has a timer due") {
		t.Errorf("reason %q does not name the timer", r.Reason)
	}
	if early := time.Until(due) - zeroHorizon; early > time.Second {
		t.Errorf("woke %v before the timer was within the horizon", early)
	}
	e.start("d")
	if out := complete(c, sleeper); out != `"woke"` {
		t.Errorf("sleeper output %s, want \"woke\"", out)
	}
}
