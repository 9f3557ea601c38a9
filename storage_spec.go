package netherite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions"
)

// taskHubStore is one kind of storage for task hubs. Options.Storage is
// parsed into one once (parseStorage), and the host asks it, not the
// string: a new kind of storage is one new implementation of this
// interface (storage_memory.go, storage.go for directories, storage_blob.go
// for Azure Storage) and a case in parseStorage.
type taskHubStore interface {
	// String describes the storage for logs and errors, without secrets.
	String() string
	// shared reports whether host processes other than this one reach
	// the same task hub through it.
	shared() bool
	// leases reports whether partitions are held under expiring leases
	// (Options.LeaseDuration applies).
	leases() bool
	// openTaskHub creates the task hub (first writer wins) or checks the
	// one there; partitionCount 0 adopts its count. Memory storage has no
	// parameters (nil).
	openTaskHub(ctx context.Context, name string, partitionCount int) (*TaskHubParameters, error)
	// taskHubInfo reads the parameters of an existing task hub.
	taskHubInfo(ctx context.Context, name string) (*TaskHubParameters, error)
	// deleteTaskHub deletes a task hub's state; it fails while a host runs
	// any of its partitions, or holds its load monitor's lease or lock.
	deleteTaskHub(ctx context.Context, p *TaskHubParameters) error
	// openPartition takes partition i of the task hub opened by
	// openTaskHub (its lock or lease; then it calls owned), opens its
	// storage and recovers its state.
	openPartition(ctx context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error)
	// payloads keeps the transport's large payloads.
	payloads() (eventhubs.BlobStore, error)
	// requests counts the requests made to a storage service (0 for local
	// storage).
	requests() int64
	// monitor is where the load monitor keeps its lease and record, for
	// the task hub opened by openTaskHub (an error for memory storage).
	monitor() (monitorStore, error)
}

// partitionOpen is what opening a partition's storage needs besides the
// partition number.
type partitionOpen struct {
	count int           // the task hub's partitions
	cache int64         // state cache bytes of the partition
	lease time.Duration // lease duration (0: the default)
	// memoryDelay makes every commit of a memory log take this long
	// (Options.MemoryCommitDelay).
	memoryDelay time.Duration
	owned       func() // called once the partition's lock or lease is held
	// wait: if another host holds the partition, retry (every few hundred
	// milliseconds) until it is released or expires, or ctx ends, instead
	// of failing at once (elastic placement: the previous owner is handing
	// it over).
	wait bool
}

// partitionStorage is one partition's storage, held by one host.
type partitionStorage interface {
	// commitLog is the partition's commit log (with checkpoints, if
	// durable).
	commitLog() partitions.CommitLog
	// durableStore is the partition's durable store (nil in memory).
	durableStore() *partitions.DurableStore
	// metaStore holds the partition's small documents, written only by
	// its owner.
	metaStore() faster.MetaStore
	// lease returns a channel closed when the partition's lease is lost,
	// and why (nil without a lease).
	lease() (lost <-chan struct{}, why func() error)
	// close closes the storage gracefully and releases the lock or lease,
	// so that another host opening the partition gets it at once.
	close() error
	// abandon closes the storage as if this process died (test-only kills,
	// h.kill): nothing more is written (no closing metadata), and a blob
	// lease is not released but stops being renewed, so another host gets
	// the partition only when it expires; a directory lock is dropped, as
	// the OS drops a dead process's locks.
	abandon() error
}

// parseStorage parses Options.Storage (already defaulted by normalize).
func parseStorage(s string) (taskHubStore, error) {
	switch {
	case s == "memory":
		return &memoryStore{}, nil
	case isAzureStorage(s):
		return &blobStore{connection: s}, nil
	case strings.Contains(s, "://"): // a URL, but not of an account
		return nil, fmt.Errorf("netherite: Options.Storage %s: want a directory, \"memory\", an Azure Storage connection string, "+
			"UseDevelopmentStorage=true, or an account URL", RedactStorage(s))
	case s == "":
		return nil, errors.New("netherite: no storage") // normalize gives a default directory
	}
	return &dirStore{dir: filepath.Clean(s)}, nil
}

// memoryStore keeps partition state in the host's memory: it lives and
// dies with the host.
type memoryStore struct{}

func (*memoryStore) String() string { return "memory" }
func (*memoryStore) shared() bool   { return false }
func (*memoryStore) leases() bool   { return false }

func (*memoryStore) openTaskHub(context.Context, string, int) (*TaskHubParameters, error) {
	return nil, nil
}

var errMemoryTaskHub = errors.New("netherite: a memory task hub exists only inside a running host")

func (*memoryStore) taskHubInfo(context.Context, string) (*TaskHubParameters, error) {
	return nil, errMemoryTaskHub
}

func (*memoryStore) deleteTaskHub(context.Context, *TaskHubParameters) error { return errMemoryTaskHub }

func (*memoryStore) openPartition(_ context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error) {
	o.owned()
	return &memoryPartition{log: partitions.MemoryLog{Delay: o.memoryDelay}, meta: faster.NewMemoryMeta()}, partitions.NewState(i, o.count), nil
}

func (*memoryStore) payloads() (eventhubs.BlobStore, error) {
	return nil, errors.New("netherite: memory storage keeps no payloads for other hosts")
}

func (*memoryStore) requests() int64 { return 0 }

// memoryPartition is a partition whose log is in memory: a failed
// partition cannot be recovered.
type memoryPartition struct {
	log  partitions.MemoryLog
	meta *faster.MemoryMeta
}

func (m *memoryPartition) commitLog() partitions.CommitLog        { return &m.log }
func (m *memoryPartition) durableStore() *partitions.DurableStore { return nil }
func (m *memoryPartition) metaStore() faster.MetaStore            { return m.meta }
func (m *memoryPartition) close() error                           { return nil }
func (m *memoryPartition) abandon() error                         { return nil }
func (m *memoryPartition) lease() (<-chan struct{}, func() error) { return nil, nil }

func (m *memoryStore) monitor() (monitorStore, error) { return nil, noMonitorStore(m) }

// setStoreLeaseDuration tells the storage Options.LeaseDuration (0: the
// default), for the leases it takes besides the partitions' (the load
// monitor's). Options.parse calls it.
func setStoreLeaseDuration(s taskHubStore, d time.Duration) {
	if b, ok := s.(*blobStore); ok {
		b.leaseDuration = d
	}
}
