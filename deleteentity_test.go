package netherite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

func TestDeleteEntity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := durable.NewRegistry()
	samples.Register(r)
	h, err := netherite.Start(ctx, netherite.Options{Storage: t.TempDir(), PartitionCount: 2}, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	c := h.Client()
	id := core.NewEntityID(samples.Counter, "doomed")
	if err := c.DeleteEntity(ctx, id); !errors.Is(err, durable.ErrEntityNotFound) {
		t.Fatalf("delete of a missing entity: %v", err)
	}
	if err := c.SignalEntity(ctx, id, "add", 5); err != nil {
		t.Fatal(err)
	}
	for {
		if m, err := c.GetEntity(ctx, id, true); err == nil && string(m.State) == "5" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("entity never got its state")
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.DeleteEntity(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetEntity(ctx, id, true); !errors.Is(err, durable.ErrEntityNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	page, err := c.ListEntities(ctx, durable.EntityQuery{Name: samples.Counter})
	if err != nil || len(page.Entities) != 0 {
		t.Fatalf("list after delete: %v %v", page, err)
	}
}
