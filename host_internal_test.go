package netherite

import (
	"context"
	"testing"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/transport"
)

// StateCacheBytes is shared by the partitions the host runs, not by all
// the partitions of the task hub.
func TestStateCacheDividedOverOwnedPartitions(t *testing.T) {
	tr := transport.NewMemory(4)
	defer tr.Close()
	for _, c := range []struct {
		owned []int
		want  int64
	}{
		{[]int{1}, 8 << 20},
		{[]int{0, 3}, 4 << 20},
		{nil, 2 << 20},
	} {
		o := Options{Storage: t.TempDir(), PartitionCount: 4, Partitions: c.owned, StateCacheBytes: 8 << 20}
		if c.owned != nil {
			o.SharedTransport = tr
		}
		h, err := Start(context.Background(), o, durable.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h.managers {
			if m.env.cache != c.want {
				t.Errorf("owning %v: partition %d has a cache of %d bytes, want %d", c.owned, m.index, m.env.cache, c.want)
			}
		}
		if err := h.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
