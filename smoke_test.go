package netherite_test

import (
	"context"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

func TestSmokeHello(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := netherite.Start(ctx, netherite.Options{Storage: t.TempDir()}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(ctx)
	c := h.Client()
	id, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	id, _ = c.StartOrchestration(ctx, samples.FanOutFanIn, 1000)
	s, err = c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s %v", s.RuntimeStatus, s.Output, s.Failure)
	id, _ = c.StartOrchestration(ctx, samples.Transfer, samples.TransferRequest{From: "a!1", To: "b!2", Amount: 0})
	s, err = c.WaitForCompletion(ctx, id, durable.WithPayloads())
	t.Logf("%s %s %v %v", s.RuntimeStatus, s.Output, s.Failure, err)
}
