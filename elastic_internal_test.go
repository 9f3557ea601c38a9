package netherite

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/transport"
)

// An elastic acquire waits while another host holds the partition, and
// release cancels it at once (the placement moved the partition away
// before it was taken); the holder keeps running it.
func TestElasticAcquireCancelled(t *testing.T) {
	tr := transport.NewMemory(2)
	defer tr.Close()
	h, err := Start(context.Background(), Options{Elastic: true, HostID: "a", SharedTransport: tr, Storage: t.TempDir(),
		PartitionCount: 2, LoadReportInterval: 100 * time.Millisecond, HostTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for h.Partitions()[0].State != PartitionOK {
		if time.Now().After(deadline) {
			t.Fatalf("partition 0 not running: %+v", h.Partitions()[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A second manager of partition 0 (as another host's would be): its
	// acquire waits on the lock the first one holds.
	m := newPartitionManager(h.env, 0)
	m.startElastic()
	time.Sleep(300 * time.Millisecond) // several lock polls
	if s := m.Status(); s.State == PartitionOK || m.ended() {
		t.Fatalf("second manager took a held partition: %+v (ended %v)", s, m.ended())
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.release(ctx); err != nil {
		t.Fatalf("release of a waiting acquire: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("release of a waiting acquire took %v", took)
	}
	if !m.ended() || m.Status().State != PartitionNotOwned {
		t.Fatalf("after release: ended %v, %+v", m.ended(), m.Status())
	}
	if s := h.Partitions()[0]; s.State != PartitionOK {
		t.Fatalf("the holder lost partition 0: %+v", s)
	}
}
