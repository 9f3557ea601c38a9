package netherite_test

import (
	"context"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// With a cache much smaller than the state, instances are evicted and read
// back on demand, and everything survives a restart.
func TestStateLargerThanCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	opts := netherite.Options{Storage: dir, PartitionCount: 4, StateCacheBytes: 256 << 10}
	r := durable.NewRegistry()
	samples.Register(r)
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	ids := make([]string, n)
	for i := range ids {
		if ids[i], err = h.Client().StartOrchestration(ctx, samples.HelloSequence, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		if s, err := h.Client().WaitForCompletion(ctx, id); err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s: %v %v", id, s, err)
		}
	}
	resident, loads, evictions := h.StateStats()
	if evictions == 0 || loads == 0 {
		t.Fatalf("no eviction with a 256 KiB cache: resident %d, loads %d, evictions %d", resident, loads, evictions)
	}
	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	h, err = netherite.Start(ctx, opts, r)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	seen, token := 0, ""
	for {
		page, err := h.Client().Query(ctx, durable.InstanceQuery{PageSize: 97, ContinuationToken: token,
			Statuses: []core.RuntimeStatus{core.StatusCompleted}})
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Instances)
		if token = page.ContinuationToken; token == "" {
			break
		}
	}
	if seen != n {
		t.Fatalf("after restart %d completed instances, want %d", seen, n)
	}
	s, err := h.Client().GetStatus(ctx, ids[n/2], durable.WithPayloads(), durable.WithHistory())
	if err != nil || string(s.Output) != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` || len(s.History) == 0 {
		t.Fatalf("instance after restart: %v %v", s, err)
	}
	t.Logf("resident %d bytes, %d loads, %d evictions", resident, loads, evictions)
}
