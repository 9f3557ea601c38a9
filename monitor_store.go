package netherite

import (
	"context"
	"errors"
	"fmt"

	"github.com/netherite-go/netherite/loadmonitor"
)

// monitorStore keeps the load monitor's lease and its record in the task
// hub's storage, next to the partitions (taskHubStore.monitor).
type monitorStore interface {
	// acquireMonitor returns once this host holds the load monitor's lease
	// (a lock file in a directory, a blob lease in Azure Storage), or ctx
	// ends. While another host holds it, it retries every few hundred
	// milliseconds, so that a released lease is taken over at once.
	acquireMonitor(ctx context.Context, hostID string) (monitorLease, error)
	// readRecord reads the newest record; nil, nil if none was written.
	readRecord(ctx context.Context) (*loadmonitor.Record, error)
}

// monitorLease is this host's hold on the load monitor.
type monitorLease interface {
	// lost is closed when the lease is lost: a renewal failed, or it could
	// not be renewed before it may have expired.
	lost() <-chan struct{}
	// writeRecord stores rec (loadmonitor.Marshal). It fails, wrapping
	// errMonitorLeaseLost, once the lease is lost: only the holder writes.
	writeRecord(ctx context.Context, rec *loadmonitor.Record) error
	// release gives the lease up, so that another host takes it at once.
	release() error
}

// errMonitorLeaseLost is wrapped by writes of a host that lost the load
// monitor's lease.
var errMonitorLeaseLost = errors.New("netherite: load monitor lease lost")

// errNoMonitor: memory storage lives in one host; elastic placement needs
// storage every host reaches.
func noMonitorStore(s taskHubStore) error {
	return fmt.Errorf("netherite: elastic placement needs storage that every host of the task hub reaches "+
		"(Azure Storage, or a directory); %s storage lives and dies with one host", s)
}

// abandonMonitor gives up l as a killed host would (test-only kills,
// h.kill): a blob lease is not released but stops being renewed, so the
// next holder gets it when it expires; a directory lock is dropped, as the
// OS drops a dead process's. A lease that cannot be abandoned is released.
func abandonMonitor(l monitorLease) error {
	if a, ok := l.(interface{ abandon() error }); ok {
		return a.abandon()
	}
	return l.release()
}

// encodeMonitorRecord and decodeMonitorRecord are the record's bytes in
// storage: loadmonitor's versioned format.
func encodeMonitorRecord(rec *loadmonitor.Record) ([]byte, error) {
	if rec == nil {
		return nil, errors.New("netherite: load monitor: no record to write")
	}
	return loadmonitor.Marshal(rec)
}

func decodeMonitorRecord(b []byte) (*loadmonitor.Record, error) {
	return loadmonitor.Unmarshal(b)
}
