package azstorage_test

import (
	"testing"
	"time"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

func TestScheduledStartWithEvent(t *testing.T) {
	r := durable.NewRegistry()
	samples.Register(r)
	b := startBackend(t, testConfig(t, hubName()), r)
	ctx := testCtx(t)
	c := b.Client()
	at := time.Now().Add(500 * time.Millisecond)
	id, err := c.StartOrchestration(ctx, samples.WaitForEvent, nil, durable.WithStartTime(at))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RaiseEvent(ctx, id, "Approval", "early"); err != nil {
		t.Fatal(err)
	}
	s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("completed %v after the start time: %s %s", time.Since(at), s.RuntimeStatus, s.Output)
}
