package netherite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/netherite-go/netherite/durable"
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

// openTaskHub creates the task hub in dir, or checks the one there.
// partitionCount 0 adopts the hub's count.
func openTaskHub(dir, name string, partitionCount int) (*TaskHubParameters, error) {
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
}

func openLocalPartition(dir string, hub *TaskHubParameters, i int, cacheBytes int64) (*localPartition, *partitions.State, error) {
	pdir := filepath.Join(dir, hub.TaskHubGUID, fmt.Sprintf("p%02d", i))
	for _, sub := range []string{"commit-log", "store"} {
		if err := os.MkdirAll(filepath.Join(pdir, sub), 0o755); err != nil {
			return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(pdir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("netherite: partition %d in %s is in use by another host (%v)", i, pdir, err)
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
	meta, err := faster.NewDirMeta(pdir)
	if err != nil {
		dev.Close()
		lock.Close()
		return nil, nil, fmt.Errorf("netherite: partition %d: %w", i, err)
	}
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
	return &localPartition{store: store, lock: lock}, st, nil
}

// storeOptions gives half a partition's share of the cache to decoded
// instances and half to the instance store's log pages.
func storeOptions(kv faster.Device, cacheBytes int64) partitions.StoreOptions {
	return partitions.StoreOptions{KVDevice: kv, KVMemoryBytes: max(cacheBytes/2, 1<<20), ResidentBytes: cacheBytes / 2}
}

// partitionStorage is one partition's storage: local or in blobs.
type partitionStorage interface {
	durableStore() *partitions.DurableStore
	close() error
}

func (l *localPartition) durableStore() *partitions.DurableStore { return l.store }

func (l *localPartition) close() error {
	err := l.store.Close()
	l.lock.Close()
	return err
}

// CreateTaskHub creates the task hub that opts describe (a no-op if it
// exists with the same parameters) and returns its parameters.
func CreateTaskHub(ctx context.Context, opts Options) (*TaskHubParameters, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if opts.Storage == "memory" {
		return nil, errors.New("netherite: a memory task hub exists only inside a running host")
	}
	if isAzureStorage(opts.Storage) {
		hub, err := openBlobTaskHub(ctx, opts.Storage, opts.TaskHub, opts.PartitionCount)
		if err != nil {
			return nil, err
		}
		return hub.params, nil
	}
	return openTaskHub(opts.Storage, opts.TaskHub, opts.PartitionCount)
}

// TaskHubInfo returns the parameters of an existing task hub.
func TaskHubInfo(ctx context.Context, opts Options) (*TaskHubParameters, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if opts.Storage == "memory" {
		return nil, errors.New("netherite: a memory task hub exists only inside a running host")
	}
	if isAzureStorage(opts.Storage) {
		return blobTaskHubInfo(ctx, opts.Storage, opts.TaskHub)
	}
	meta, err := faster.NewDirMeta(opts.Storage)
	if err != nil {
		return nil, err
	}
	b, err := meta.ReadFile(taskHubParametersName)
	if err != nil {
		if errors.Is(err, faster.ErrNotExist) {
			return nil, fmt.Errorf("netherite: no task hub in %s", opts.Storage)
		}
		return nil, err
	}
	return checkTaskHubParameters(b, opts.TaskHub, 0, opts.Storage)
}

// DeleteTaskHub deletes a task hub and all its state. It fails while a
// host runs any of its partitions.
func DeleteTaskHub(ctx context.Context, opts Options) error {
	p, err := TaskHubInfo(ctx, opts)
	if err != nil {
		return err
	}
	if isAzureStorage(opts.Storage) {
		return deleteBlobTaskHub(ctx, opts.Storage, p)
	}
	// Take every partition's lock, so no host runs while we delete.
	var locks []*os.File
	defer func() {
		for _, l := range locks {
			l.Close()
		}
	}()
	for i := 0; i < p.PartitionCount; i++ {
		pdir := filepath.Join(opts.Storage, p.TaskHubGUID, fmt.Sprintf("p%02d", i))
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
	if err := os.RemoveAll(filepath.Join(opts.Storage, p.TaskHubGUID)); err != nil {
		return err
	}
	return os.Remove(filepath.Join(opts.Storage, taskHubParametersName))
}
