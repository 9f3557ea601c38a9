package netherite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions"
)

// StorageFormatVersion is the version of the persisted formats this build
// reads and writes.
const StorageFormatVersion = 1

// TaskHubParameters describe a task hub; they are recorded in
// taskhubparameters.json when the hub is created and checked at every
// start.
type TaskHubParameters struct {
	TaskHubName    string    `json:"taskHubName"`
	TaskHubGUID    string    `json:"taskHubGuid"`
	PartitionCount int       `json:"partitionCount"`
	FormatVersion  int       `json:"formatVersion"`
	CreatedAt      time.Time `json:"createdAt"`
}

const taskHubParametersName = "taskhubparameters.json"

// Local directory layout (mirrors the blob layout of DESIGN.md §5):
//
//	<dir>/taskhubparameters.json
//	<dir>/<task hub GUID>/LOADMONITOR               held by the host that runs the load monitor
//	<dir>/<task hub GUID>/loadmonitor.record        the load monitor's record (monitor_store_dir.go)
//	<dir>/<task hub GUID>/pNN/LOCK                  held while a host runs the partition
//	<dir>/<task hub GUID>/pNN/commit-log/commit-log.NNNNNN
//	<dir>/<task hub GUID>/pNN/commit-log.meta       log begin, a committed tail and epoch (log format 2: written at
//	                                                open, segment switches, checkpoints and close; commits put
//	                                                their commit records in the log, see faster/commitlog.go)
//	<dir>/<task hub GUID>/pNN/store/store.NNNNNN     the instances (hybrid-log KV)
//	<dir>/<task hub GUID>/pNN/store/...             KV checkpoints: index and latest record
const (
	localSectorSize  = 512
	localSegmentSize = 64 << 20
)

// dirStore keeps task hubs in a local directory. Host processes on one
// machine share it (each partition is held under a lock file).
type dirStore struct {
	dir string
	hub *TaskHubParameters // after openTaskHub
}

func (d *dirStore) String() string  { return d.dir }
func (d *dirStore) shared() bool    { return true }
func (d *dirStore) leases() bool    { return false }
func (d *dirStore) requests() int64 { return 0 }

func (d *dirStore) openTaskHub(_ context.Context, name string, partitionCount int) (*TaskHubParameters, error) {
	p, err := openDirTaskHub(d.dir, name, partitionCount)
	d.hub = p
	return p, err
}

func (d *dirStore) openPartition(ctx context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error) {
	lp, st, err := openLocalPartition(ctx, d.dir, d.hub, i, o.cache, o.wait)
	if err != nil {
		return nil, nil, err
	}
	o.owned()
	return lp, st, nil
}

// payloads keeps large payloads under <dir>/payloads (their names start
// with the task hub's GUID).
func (d *dirStore) payloads() (eventhubs.BlobStore, error) {
	return eventhubs.DirBlobStore{Dir: filepath.Join(d.dir, "payloads")}, nil
}

// taskHubInfo reads the parameters of the task hub in the directory; then
// monitor() reads its load monitor's record (without creating anything).
func (d *dirStore) taskHubInfo(_ context.Context, name string) (*TaskHubParameters, error) {
	if _, err := os.Stat(d.dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("netherite: no task hub in %s", d.dir)
		}
		return nil, err
	}
	meta, err := faster.NewDirMeta(d.dir)
	if err != nil {
		return nil, err
	}
	b, err := meta.ReadFile(taskHubParametersName)
	if err != nil {
		if errors.Is(err, faster.ErrNotExist) {
			return nil, fmt.Errorf("netherite: no task hub in %s", d.dir)
		}
		return nil, err
	}
	p, err := checkTaskHubParameters(b, name, 0, d.dir)
	if err == nil && d.hub == nil {
		d.hub = p
	}
	return p, err
}

// deleteTaskHub takes every partition's lock and the load monitor's, so
// that no host runs while it deletes (a host that holds only the load
// monitor still uses the task hub).
func (d *dirStore) deleteTaskHub(_ context.Context, p *TaskHubParameters) error {
	var locks []*os.File
	defer func() {
		for _, l := range locks {
			l.Close()
		}
	}()
	if l, err := os.OpenFile(filepath.Join(d.dir, p.TaskHubGUID, monitorLockName), os.O_RDWR, 0); err == nil {
		locks = append(locks, l)
		if err := lockFile(l); err != nil {
			return fmt.Errorf("netherite: task hub %q: a host runs its load monitor; stop it first", p.TaskHubName)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := 0; i < p.PartitionCount; i++ {
		pdir := filepath.Join(d.dir, p.TaskHubGUID, fmt.Sprintf("p%02d", i))
		l, err := os.OpenFile(filepath.Join(pdir, "LOCK"), os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		locks = append(locks, l)
		if err := lockFile(l); err != nil {
			return fmt.Errorf("netherite: task hub %q: partition %d is in use by a host; stop it first", p.TaskHubName, i)
		}
	}
	if err := os.RemoveAll(filepath.Join(d.dir, p.TaskHubGUID)); err != nil {
		return err
	}
	return os.Remove(filepath.Join(d.dir, taskHubParametersName))
}

// openDirTaskHub creates the task hub in dir, or checks the one there.
// partitionCount 0 adopts the hub's count.
func openDirTaskHub(dir, name string, partitionCount int) (*TaskHubParameters, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("netherite: storage directory %s: %w", dir, err)
	}
	meta, err := faster.NewDirMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("netherite: storage directory %s: %w", dir, err)
	}
	b, err := meta.ReadFile(taskHubParametersName)
	if errors.Is(err, faster.ErrNotExist) {
		if partitionCount == 0 {
			partitionCount = DefaultPartitionCount
		}
		p := &TaskHubParameters{TaskHubName: name, TaskHubGUID: durable.NewUUID(), PartitionCount: partitionCount,
			FormatVersion: StorageFormatVersion, CreatedAt: time.Now().UTC()}
		b, _ := json.MarshalIndent(p, "", "  ")
		if err := meta.WriteFile(taskHubParametersName, b); err != nil {
			return nil, fmt.Errorf("netherite: create task hub %q in %s: %w", name, dir, err)
		}
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub in %s: %w", dir, err)
	}
	return checkTaskHubParameters(b, name, partitionCount, dir)
}

// testLogDevice, set only by tests, wraps the commit-log device of every
// partition opened (to inject faults).
var testLogDevice func(partition int, d faster.Device) faster.Device

// localPartition is one partition's storage in a local directory.
type localPartition struct {
	store *partitions.DurableStore
	lock  *os.File
	meta  *abandonableMeta
}

// lockPollEvery is how often an opener waiting for a partition another
// host hands over (partitionOpen.wait) tries its lock file again: a
// local open and flock, cheap, and the handover's main delay.
const lockPollEvery = 20 * time.Millisecond

// errLockBusy is wrapped when another host (or another open in this
// process: flock locks belong to open files) holds a lock file.
var errLockBusy = errors.New("held by another host")

// lockPath opens (creating) and locks the lock file path. If another
// holds it, it fails at once wrapping errLockBusy, or with poll > 0 tries
// again every poll until it gets it or ctx ends. The lock lasts until the
// file is closed, or the process ends.
func lockPath(ctx context.Context, path string, poll time.Duration) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		lerr := lockFile(f)
		if lerr == nil {
			return f, nil
		}
		// Reopened each time: a deleted and recreated file is a new lock.
		f.Close()
		if poll <= 0 {
			return nil, fmt.Errorf("%w (%v)", errLockBusy, lerr)
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w; gave up waiting for its release: %w", errLockBusy, ctx.Err())
		case <-t.C:
		}
	}
}

func openLocalPartition(ctx context.Context, dir string, hub *TaskHubParameters, i int, cacheBytes int64, wait bool) (*localPartition, *partitions.State, error) {
	pdir := filepath.Join(dir, hub.TaskHubGUID, fmt.Sprintf("p%02d", i))
	for _, sub := range []string{"commit-log", "store"} {
		if err := os.MkdirAll(filepath.Join(pdir, sub), 0o755); err != nil {
			return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
		}
	}
	var poll time.Duration
	if wait {
		poll = lockPollEvery
	}
	lock, err := lockPath(ctx, filepath.Join(pdir, "LOCK"), poll)
	if errors.Is(err, errLockBusy) {
		return nil, nil, fmt.Errorf("netherite: partition %d in %s is in use by another host: %w", i, pdir, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
	}
	var dev faster.Device
	dev, err = faster.NewFileDevice(filepath.Join(pdir, "commit-log"), "commit-log", localSectorSize, localSegmentSize)
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
	}
	if testLogDevice != nil {
		dev = testLogDevice(i, dev)
	}
	dm, err := faster.NewDirMeta(pdir)
	if err != nil {
		dev.Close()
		lock.Close()
		return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
	}
	meta := &abandonableMeta{MetaStore: dm}
	kvDev, err := faster.NewFileDevice(filepath.Join(pdir, "store"), "store", localSectorSize, localSegmentSize)
	if err != nil {
		dev.Close()
		lock.Close()
		return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
	}
	store, err := partitions.OpenDurableStore(fmt.Sprintf("partition %d", i), dev, meta, storeOptions(kvDev, cacheBytes))
	if err != nil {
		dev.Close()
		kvDev.Close()
		lock.Close()
		return nil, nil, err
	}
	st, err := store.Recover(i, hub.PartitionCount)
	if err != nil {
		store.Close()
		lock.Close()
		return nil, nil, err
	}
	return &localPartition{store: store, lock: lock, meta: meta}, st, nil
}

// storeOptions gives half a partition's share of the cache to decoded
// instances and half to the instance store's log pages.
func storeOptions(kv faster.Device, cacheBytes int64) partitions.StoreOptions {
	return partitions.StoreOptions{KVDevice: kv, KVMemoryBytes: max(cacheBytes/2, 1<<20), ResidentBytes: cacheBytes / 2}
}

func (l *localPartition) commitLog() partitions.CommitLog        { return l.store }
func (l *localPartition) durableStore() *partitions.DurableStore { return l.store }
func (l *localPartition) metaStore() faster.MetaStore            { return l.meta }
func (l *localPartition) lease() (<-chan struct{}, func() error) { return nil, nil }

func (l *localPartition) close() error {
	err := l.store.Close()
	l.lock.Close()
	return err
}

// abandon closes the partition's files as a process that dies would: its
// documents are no longer written (the commit log's closing metadata
// neither), then the lock goes, as the OS drops a dead process's flocks.
func (l *localPartition) abandon() error {
	l.meta.abandoned.Store(true)
	l.store.Close() // its closing write is refused: a dead process makes none
	l.lock.Close()
	return nil
}

// abandonableMeta is a partition's metadata store that refuses writes
// once the partition is abandoned (a killed host writes nothing more).
type abandonableMeta struct {
	faster.MetaStore
	abandoned atomic.Bool
}

var errAbandoned = errors.New("netherite: partition storage abandoned (host killed)")

func (m *abandonableMeta) WriteFile(name string, data []byte) error {
	if m.abandoned.Load() {
		return errAbandoned
	}
	return m.MetaStore.WriteFile(name, data)
}

func (m *abandonableMeta) Remove(name string) error {
	if m.abandoned.Load() {
		return errAbandoned
	}
	return m.MetaStore.Remove(name)
}

// CreateTaskHub creates the task hub that opts describe (a no-op if it
// exists with the same parameters) and returns its parameters. With the
// Event Hubs transport it also creates the hubs (or checks the ones
// there).
func CreateTaskHub(ctx context.Context, opts Options) (*TaskHubParameters, error) {
	store, tspec, err := opts.parse()
	if err != nil {
		return nil, err
	}
	if _, ok := store.(*memoryStore); ok {
		return nil, errMemoryTaskHub
	}
	p, err := store.openTaskHub(ctx, opts.TaskHub, opts.PartitionCount)
	if err != nil {
		return nil, err
	}
	if err := tspec.createHubs(ctx, opts, p.PartitionCount); err != nil {
		return nil, err
	}
	return p, nil
}

// TaskHubInfo returns the parameters of an existing task hub.
func TaskHubInfo(ctx context.Context, opts Options) (*TaskHubParameters, error) {
	store, _, err := opts.parse()
	if err != nil {
		return nil, err
	}
	return store.taskHubInfo(ctx, opts.TaskHub)
}

// DeleteTaskHub deletes a task hub and all its state, and with the Event
// Hubs transport its hubs. It fails while a host runs any of its
// partitions or its load monitor (elastic hosts: stop them first; a
// killed host's leases must expire).
func DeleteTaskHub(ctx context.Context, opts Options) error {
	store, tspec, err := opts.parse()
	if err != nil {
		return err
	}
	p, err := store.taskHubInfo(ctx, opts.TaskHub)
	if err != nil {
		return err
	}
	if err := store.deleteTaskHub(ctx, p); err != nil {
		return err
	}
	return tspec.deleteHubs(ctx, opts)
}
