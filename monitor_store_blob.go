package netherite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/loadmonitor"
)

// monitor returns the load monitor's store of the task hub opened by
// openTaskHub (or read by taskHubInfo): a blob lease on
// <hub GUID>/loadmonitor/monitor-lease, whose content is the record
// (blobstore.AcquireMonitor).
func (b *blobStore) monitor() (monitorStore, error) {
	if b.hub == nil {
		return nil, fmt.Errorf("netherite: %s: the load monitor's store needs the task hub opened first", b)
	}
	lopts := leaseOptions(b.leaseDuration)
	lopts.PollEvery = monitorLeasePoll
	return &blobMonitor{hub: b.hub, lease: lopts}, nil
}

// monitorLeasePoll is how often a host waiting for the load monitor's
// lease tries it: a released lease changes hands within it. Every host but
// the holder waits, all the time, so each costs one lease request per poll;
// a second keeps that cheap, and a monitor that is away for a second
// changes nothing for the partitions, which keep running where they are.
const monitorLeasePoll = time.Second

// blobMonitor keeps the load monitor's lease and record in the task hub's
// container.
type blobMonitor struct {
	hub   *blobTaskHub
	lease blobstore.LeaseOptions
}

// acquireMonitor acquires the lease, polling every monitorLeasePoll while
// another host holds it: a released lease changes hands at once, an
// abandoned one when it expires.
func (m *blobMonitor) acquireMonitor(ctx context.Context, hostID string) (monitorLease, error) {
	mon, err := blobstore.AcquireMonitor(ctx, m.hub.container, m.hub.params.TaskHubGUID, m.lease)
	if err != nil {
		return nil, fmt.Errorf("netherite: host %s: %w", hostID, err)
	}
	return &blobMonitorLease{mon: mon}, nil
}

// readRecord reads the record; nil, nil if none was written.
func (m *blobMonitor) readRecord(ctx context.Context) (*loadmonitor.Record, error) {
	b, err := blobstore.ReadMonitorRecord(ctx, m.hub.container, m.hub.params.TaskHubGUID)
	if errors.Is(err, faster.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netherite: %w", err)
	}
	rec, err := decodeMonitorRecord(b)
	if err != nil {
		return nil, fmt.Errorf("netherite: the load monitor's record in %s: %w", m.hub.container.Name(), err)
	}
	return rec, nil
}

// blobMonitorLease is a held load monitor lease.
type blobMonitorLease struct {
	mon *blobstore.Monitor
}

func (l *blobMonitorLease) lost() <-chan struct{} { return l.mon.Lease.Lost() }

// writeRecord writes the record conditioned on the lease: refused here
// once the lease is lost, released or overdue, and by the service if
// another host holds it.
func (l *blobMonitorLease) writeRecord(ctx context.Context, rec *loadmonitor.Record) error {
	b, err := encodeMonitorRecord(rec)
	if err != nil {
		return fmt.Errorf("netherite: load monitor: %w", err)
	}
	err = l.mon.WriteRecord(ctx, b)
	if errors.Is(err, blobstore.ErrLeaseLost) {
		return fmt.Errorf("%w: %w", errMonitorLeaseLost, err)
	}
	if err != nil {
		return fmt.Errorf("netherite: %w", err)
	}
	return nil
}

func (l *blobMonitorLease) release() error { return l.mon.Release() }

// abandon stops renewing the lease without releasing it (h.kill): another
// host gets it when it expires.
func (l *blobMonitorLease) abandon() error {
	l.mon.Lease.Abandon()
	return nil
}
