package netherite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// TestSmokeHello runs the samples on a host with local storage and checks
// their results.
func TestSmokeHello(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := netherite.Start(ctx, netherite.Options{Storage: t.TempDir()}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	c := h.Client()
	run := func(name string, input any) *durable.OrchestrationStatus {
		t.Helper()
		id, err := c.StartOrchestration(ctx, name, input)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := run(samples.HelloSequence, nil); s.RuntimeStatus != core.StatusCompleted ||
		string(s.Output) != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` {
		t.Errorf("HelloSequence: %s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	// The sum of the squares of 1..1000.
	if s := run(samples.FanOutFanIn, 1000); s.RuntimeStatus != core.StatusCompleted || string(s.Output) != "333833500" {
		t.Errorf("FanOutFanIn: %s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	// A transfer of nothing is refused by the orchestration.
	if s := run(samples.Transfer, samples.TransferRequest{From: "a!1", To: "b!2", Amount: 0}); s.RuntimeStatus != core.StatusFailed ||
		s.Failure == nil || !strings.Contains(s.Failure.Message, "invalid transfer") {
		t.Errorf("Transfer of 0: %s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	// A real one moves money between two partitions.
	a, b := core.NewEntityID(samples.Account, "a!1"), core.NewEntityID(samples.Account, "b!2")
	if err := c.SignalEntity(ctx, a, "deposit", 100); err != nil {
		t.Fatal(err)
	}
	if s := run(samples.Transfer, samples.TransferRequest{From: "a!1", To: "b!2", Amount: 30}); s.RuntimeStatus != core.StatusCompleted || string(s.Output) != "true" {
		t.Errorf("Transfer of 30: %s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	}
	for id, want := range map[core.EntityID]int{a: 70, b: 30} {
		m, err := c.GetEntity(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		if err := m.ReadState(&bal); err != nil || bal != want {
			t.Errorf("%s: balance %d (%v), want %d", id, bal, err, want)
		}
	}
}
