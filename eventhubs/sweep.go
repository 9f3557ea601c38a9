package eventhubs

import (
	"context"
	"time"
)

// Sweeping. Blobs of large packets are deleted when their packets are
// trimmed (partitions) or fetched (responses); the blobs of packets
// nobody reads — a crash between apply and trim, a client that left, a
// transport closed with deletes queued — stay. An event older than the
// hubs' retention is gone from the hub, so no reader can ask for its blob
// any more: a blob last written before now - retention - margin can go.
//
// One host sweeps: the one whose transport reads partition 0 (there is
// always one while the task hub runs; two for a moment during a handover
// do no harm, a sweep is idempotent). It sweeps once soon after it takes
// partition 0, then every SweepInterval while it keeps it.

const (
	// DefaultPayloadRetention is the longest retention of Event Hubs
	// Standard (CreateHubs makes hubs with 1 day): hubs kept longer
	// (Premium, Dedicated) need Options.PayloadRetention set.
	DefaultPayloadRetention = 7 * 24 * time.Hour
	// DefaultSweepInterval is how often the owner of partition 0 sweeps.
	DefaultSweepInterval = time.Hour
	// sweepMargin covers the time between a blob's write and its event's
	// enqueue (send retries), and clock skew with the storage service.
	sweepMargin = time.Hour
	// sweepCheckEvery bounds how long after taking partition 0 a host
	// sweeps for the first time.
	sweepCheckEvery = time.Minute
)

// Sweeper is a BlobStore that can delete the blobs under a prefix last
// written before a cutoff (DirBlobStore, blobstore.PayloadStore).
type Sweeper interface {
	Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error)
}

// sweepPrefix is the folder of this task hub's blobs (named
// <task hub id>/<destination>/<uuid> by the sender).
func (t *Transport) sweepPrefix() string { return t.o.TaskHubID + "/" }

// sweepCutoff is the write time before which a blob can be referenced by
// no event left in the hubs.
func (t *Transport) sweepCutoff(now time.Time) time.Time {
	return now.Add(-t.o.PayloadRetention - sweepMargin)
}

// ownsPartitionZero reports whether this transport reads partition 0 and
// was not deposed there.
func (t *Transport) ownsPartitionZero() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.readers[0]
	return r != nil && !r.deposed.Load()
}

// sweeper sweeps while this transport owns partition 0.
func (t *Transport) sweeper(s Sweeper) {
	defer t.wg.Done()
	check := min(t.o.SweepInterval, sweepCheckEvery)
	var last time.Time // of the last sweep; zero: none since partition 0 was taken
	for sleep(t.ctx, check) {
		if !t.ownsPartitionZero() {
			last = time.Time{}
			continue
		}
		now := time.Now()
		if !last.IsZero() && now.Sub(last) < t.o.SweepInterval {
			continue
		}
		last = now
		ctx, cancel := context.WithTimeout(t.ctx, 10*time.Minute)
		n, err := s.Sweep(ctx, t.sweepPrefix(), t.sweepCutoff(now))
		cancel()
		t.st.blobsSwept.Add(int64(n))
		t.st.sweeps.Add(1)
		switch {
		case err != nil && t.ctx.Err() == nil:
			t.log.Warn("sweeping old large payloads failed (retried at the next sweep)", "deleted", n, "error", err)
		case n > 0:
			t.log.Info("swept large payloads no event references any more", "deleted", n,
				"written before", t.sweepCutoff(now).Format(time.RFC3339))
		}
	}
}
