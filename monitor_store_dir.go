package netherite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/loadmonitor"
)

// The load monitor of a task hub in a directory:
//
//	<dir>/<task hub GUID>/LOADMONITOR         lock file (flock) of the host running the monitor; it
//	                                          holds that host's id, for people
//	<dir>/<task hub GUID>/loadmonitor.record  the record, replaced atomically (temp file, fsync,
//	                                          rename, fsync of the directory: faster.DirMeta)
const (
	monitorLockName   = "LOADMONITOR"
	monitorRecordName = "loadmonitor.record"
)

// monitor returns the load monitor's store of the task hub opened by
// openTaskHub (or read by taskHubInfo).
func (d *dirStore) monitor() (monitorStore, error) {
	if d.hub == nil {
		return nil, fmt.Errorf("netherite: %s: the load monitor's store needs the task hub opened first", d.dir)
	}
	return &dirMonitor{dir: filepath.Join(d.dir, d.hub.TaskHubGUID)}, nil
}

// dirMonitor keeps the load monitor's lock and record in the task hub's
// directory. Host processes on one machine share it; so do several hosts
// in one process (flock locks belong to open files, so two opens of the
// lock file conflict even in one process).
type dirMonitor struct {
	dir string // <dir>/<task hub GUID>
}

// monitorLockPoll is how often a host waiting for the load monitor's
// lock file tries it (every host but the holder waits, all the time).
const monitorLockPoll = 100 * time.Millisecond

// acquireMonitor takes the lock file, trying again every monitorLockPoll
// while another host holds it. The lock is never lost while held: the
// process holding it lives (the OS drops the lock of one that dies).
func (m *dirMonitor) acquireMonitor(ctx context.Context, hostID string) (monitorLease, error) {
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("netherite: load monitor: %w", err)
	}
	f, err := lockPath(ctx, filepath.Join(m.dir, monitorLockName), monitorLockPoll)
	if err != nil {
		return nil, fmt.Errorf("netherite: load monitor lock in %s: %w", m.dir, err)
	}
	// Who holds it, for people looking (best effort: the lock is what counts).
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(hostID+"\n"), 0)
	}
	meta, err := faster.NewDirMeta(m.dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("netherite: load monitor: %w", err)
	}
	return &dirMonitorLease{lock: f, meta: meta, never: make(chan struct{})}, nil
}

// readRecord reads the record; nil, nil if none was written.
func (m *dirMonitor) readRecord(context.Context) (*loadmonitor.Record, error) {
	b, err := os.ReadFile(filepath.Join(m.dir, monitorRecordName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netherite: read the load monitor's record: %w", err)
	}
	rec, err := decodeMonitorRecord(b)
	if err != nil {
		return nil, fmt.Errorf("netherite: the load monitor's record %s: %w", filepath.Join(m.dir, monitorRecordName), err)
	}
	return rec, nil
}

// dirMonitorLease is a held load monitor lock file.
type dirMonitorLease struct {
	meta  *faster.DirMeta
	never chan struct{} // lost: a held flock is not lost

	mu   sync.Mutex
	lock *os.File // nil once released
	why  string
}

func (l *dirMonitorLease) lost() <-chan struct{} { return l.never }

// writeRecord replaces the record; it fails, wrapping errMonitorLeaseLost,
// once the lock is released (or abandoned). The lock is held during the
// write, so that the next holder writes after it.
func (l *dirMonitorLease) writeRecord(_ context.Context, rec *loadmonitor.Record) error {
	b, err := encodeMonitorRecord(rec)
	if err != nil {
		return fmt.Errorf("netherite: load monitor: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		return fmt.Errorf("%w: the lock was %s", errMonitorLeaseLost, l.why)
	}
	if err := l.meta.WriteFile(monitorRecordName, b); err != nil {
		return fmt.Errorf("netherite: load monitor: %w", err)
	}
	return nil
}

// release unlocks: a host waiting in acquireMonitor takes it within
// monitorLockPoll.
func (l *dirMonitorLease) release() error { return l.drop("released") }

// abandon is release for a killed host: a dead process's lock is dropped
// by the OS just the same.
func (l *dirMonitorLease) abandon() error { return l.drop("abandoned") }

func (l *dirMonitorLease) drop(why string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lock == nil {
		return nil
	}
	err := l.lock.Close()
	l.lock, l.why = nil, why
	if err != nil {
		return fmt.Errorf("netherite: load monitor: unlock: %w", err)
	}
	return nil
}
