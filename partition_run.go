package netherite

import (
	"context"
	"sync"

	"github.com/netherite-go/netherite/partitions"
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
}

// partitionFailuresVisible says whether the partitions package reports a
// fatal error while the partition runs (Done/Err). Until it does, the
// manager sees a partition stop only when it cancels or stops it.
const partitionFailuresVisible = false

// startPartition starts a partition on state; cancelling ctx stops it at
// once.
func startPartition(ctx context.Context, cfg partitions.Config, state *partitions.State) (runningPartition, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := &partitionAdapter{p: partitions.Start(cfg, state), done: make(chan struct{})}
	go func() {
		select {
		case <-ctx.Done():
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			a.stop(stopped)
		case <-a.done:
		}
	}()
	return a, nil
}

// partitionAdapter gives a partition of the partitions API without a
// context the shape of runningPartition.
type partitionAdapter struct {
	p    *partitions.Partition
	once sync.Once
	err  error
	done chan struct{}
}

func (a *partitionAdapter) stop(ctx context.Context) error {
	a.once.Do(func() {
		a.err = a.p.Stop(ctx)
		close(a.done)
	})
	<-a.done
	return a.err
}

func (a *partitionAdapter) Done() <-chan struct{} { return a.done }

func (a *partitionAdapter) Err() error {
	select {
	case <-a.done:
		return a.err
	default:
		return nil
	}
}

func (a *partitionAdapter) Stop(ctx context.Context) error { return a.stop(ctx) }

func (a *partitionAdapter) StateStats() (int64, int64, int64) { return a.p.StateStats() }
func (a *partitionAdapter) SyncLoads() int64                  { return a.p.SyncLoads() }
