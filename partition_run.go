package netherite

import (
	"context"
	"time"

	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// runningPartition is what the partition manager needs of a running
// partition. startPartition is the one place that knows how the partitions
// package starts one.
type runningPartition interface {
	// Done is closed when the partition has stopped: by Stop, by the
	// cancellation of its context, or by a fatal error.
	Done() <-chan struct{}
	// Err is the fatal error that stopped the partition (nil while it runs
	// and after a clean Stop).
	Err() error
	// Stop stops the partition gracefully and checkpoints it.
	Stop(ctx context.Context) error
	StateStats() (resident, loads, evictions int64)
	SyncLoads() int64
	// LoadSample measures the partition's load for the load monitor
	// (elastic hosts); each call ends a report period.
	LoadSample(now time.Time) transport.PartitionLoad
}

// startPartition starts a partition on state; cancelling ctx stops it at
// once. (It returns the interface only when Start succeeds: a nil
// *partitions.Partition in an interface would not be nil.)
func startPartition(ctx context.Context, cfg partitions.Config, state *partitions.State) (runningPartition, error) {
	p, err := partitions.Start(ctx, cfg, state)
	if err != nil {
		return nil, err
	}
	return p, nil
}
