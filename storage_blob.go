package netherite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions"
)

// isAzureStorage reports whether Options.Storage names an Azure Storage
// account (a connection string, Azurite's development storage, or an
// account URL) rather than a local directory.
func isAzureStorage(s string) bool {
	return strings.Contains(s, "AccountName=") || strings.Contains(s, "BlobEndpoint=") ||
		strings.HasPrefix(s, "UseDevelopmentStorage=") || strings.HasPrefix(s, "https://") ||
		strings.HasPrefix(s, "http://")
}

// blobStore keeps task hubs in an Azure Storage account: each in the
// container <taskhub>-storage, each partition under a blob lease.
type blobStore struct {
	connection string
	hub        *blobTaskHub // after openTaskHub
}

func (b *blobStore) String() string { return RedactStorage(b.connection) }
func (b *blobStore) shared() bool   { return true }
func (b *blobStore) leases() bool   { return true }

func (b *blobStore) openTaskHub(ctx context.Context, name string, partitionCount int) (*TaskHubParameters, error) {
	hub, err := openBlobTaskHub(ctx, b.connection, name, partitionCount)
	if err != nil {
		return nil, err
	}
	b.hub = hub
	return hub.params, nil
}

func (b *blobStore) taskHubInfo(ctx context.Context, name string) (*TaskHubParameters, error) {
	return blobTaskHubInfo(ctx, b.connection, name)
}

func (b *blobStore) deleteTaskHub(ctx context.Context, p *TaskHubParameters) error {
	return deleteBlobTaskHub(ctx, b.connection, p)
}

func (b *blobStore) openPartition(ctx context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error) {
	bp, st, err := openBlobPartition(ctx, b.hub, i, o.cache, o.lease, o.owned)
	if err != nil {
		return nil, nil, err
	}
	return bp, st, nil
}

func (b *blobStore) payloads() (eventhubs.BlobStore, error) {
	return blobstore.NewPayloadStore(b.hub.container), nil
}

func (b *blobStore) requests() int64 {
	if b.hub == nil {
		return 0
	}
	return b.hub.account.Requests()
}

// blobTaskHub is a task hub in an Azure Storage account.
type blobTaskHub struct {
	account   *blobstore.Account
	container *blobstore.Container
	params    *TaskHubParameters
}

// openBlobTaskHub creates the task hub's container and parameters (first
// writer wins), or checks the ones there. partitionCount 0 adopts the
// hub's count.
func openBlobTaskHub(ctx context.Context, connection, name string, partitionCount int) (*blobTaskHub, error) {
	acct, err := blobstore.NewAccount(connection)
	if err != nil {
		return nil, fmt.Errorf("netherite: storage: %w", err)
	}
	c, err := acct.TaskHubContainer(name)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: %w", name, err)
	}
	count := partitionCount
	if count == 0 {
		count = DefaultPartitionCount
	}
	mine, _ := json.MarshalIndent(&TaskHubParameters{TaskHubName: name, TaskHubGUID: durable.NewUUID(),
		PartitionCount: count, FormatVersion: StorageFormatVersion, CreatedAt: time.Now().UTC()}, "", "  ")
	stored, _, err := blobstore.CreateTaskHubParameters(ctx, c, mine)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: %w", name, err)
	}
	p, err := checkTaskHubParameters(stored, name, partitionCount, acct.Endpoint()+"/"+c.Name())
	if err != nil {
		return nil, err
	}
	return &blobTaskHub{account: acct, container: c, params: p}, nil
}

// checkTaskHubParameters parses and checks a taskhubparameters.json.
func checkTaskHubParameters(b []byte, name string, partitionCount int, where string) (*TaskHubParameters, error) {
	var p TaskHubParameters
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("netherite: %s in %s is not valid: %w", taskHubParametersName, where, err)
	}
	switch {
	case p.FormatVersion != StorageFormatVersion:
		return nil, fmt.Errorf("netherite: task hub %q in %s has storage format %d; this build reads format %d",
			p.TaskHubName, where, p.FormatVersion, StorageFormatVersion)
	case partitionCount != 0 && p.PartitionCount != partitionCount:
		return nil, fmt.Errorf("netherite: task hub %q in %s has %d partitions, but Options.PartitionCount is %d (the count is fixed when a hub is created)",
			p.TaskHubName, where, p.PartitionCount, partitionCount)
	case p.TaskHubName != name:
		return nil, fmt.Errorf("netherite: %s holds task hub %q, not %q", where, p.TaskHubName, name)
	case p.PartitionCount < 1 || p.PartitionCount > MaxPartitionCount:
		return nil, fmt.Errorf("netherite: task hub %q in %s has an invalid partition count %d", p.TaskHubName, where, p.PartitionCount)
	}
	return &p, nil
}

// blobPartition is one partition's storage in page blobs, under its lease.
type blobPartition struct {
	blobs *blobstore.Partition
	store *partitions.DurableStore
}

// openBlobPartition acquires the partition's lease (then calls owned, if
// not nil), opens its storage and recovers its state.
func openBlobPartition(ctx context.Context, hub *blobTaskHub, i int, cacheBytes int64, lease time.Duration, owned func()) (*blobPartition, *partitions.State, error) {
	var lopts blobstore.LeaseOptions
	if lease > 0 {
		lopts = blobstore.LeaseOptions{Duration: lease, RenewEvery: lease * 2 / 3, Guard: lease * 8 / 9}
	}
	bp, err := blobstore.OpenPartition(ctx, hub.container, hub.params.TaskHubGUID, i, blobstore.PartitionOptions{Lease: lopts})
	if err != nil {
		return nil, nil, fmt.Errorf("netherite: %w", err)
	}
	if owned != nil {
		owned()
	}
	var logDev faster.Device = bp.LogDevice
	if testLogDevice != nil {
		logDev = testLogDevice(i, logDev)
	}
	store, err := partitions.OpenDurableStore(fmt.Sprintf("partition %d", i), logDev, bp.Meta, storeOptions(bp.KVDevice, cacheBytes))
	if err != nil {
		bp.Close()
		return nil, nil, err
	}
	st, err := store.Recover(i, hub.params.PartitionCount)
	if err != nil {
		store.Close()
		bp.Close()
		return nil, nil, err
	}
	return &blobPartition{blobs: bp, store: store}, st, nil
}

func (b *blobPartition) commitLog() partitions.CommitLog        { return b.store }
func (b *blobPartition) durableStore() *partitions.DurableStore { return b.store }
func (b *blobPartition) metaStore() faster.MetaStore            { return b.blobs.Meta }
func (b *blobPartition) lease() (<-chan struct{}, func() error) {
	return b.blobs.Lease.Lost(), b.blobs.Lease.Err
}

func (b *blobPartition) close() error {
	return errors.Join(b.store.Close(), b.blobs.Close())
}

// blobTaskHubInfo reads the parameters of a task hub in Azure Storage.
func blobTaskHubInfo(ctx context.Context, connection, name string) (*TaskHubParameters, error) {
	acct, err := blobstore.NewAccount(connection)
	if err != nil {
		return nil, fmt.Errorf("netherite: storage: %w", err)
	}
	c, err := acct.TaskHubContainer(name)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: %w", name, err)
	}
	b, err := blobstore.ReadTaskHubParameters(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: %w", name, err)
	}
	return checkTaskHubParameters(b, name, 0, acct.Endpoint()+"/"+c.Name())
}

// deleteBlobTaskHub deletes the task hub's container, with every blob in
// it. It fails while a host holds any of the hub's partition leases.
func deleteBlobTaskHub(ctx context.Context, connection string, p *TaskHubParameters) error {
	acct, err := blobstore.NewAccount(connection)
	if err != nil {
		return fmt.Errorf("netherite: storage: %w", err)
	}
	c, err := acct.TaskHubContainer(p.TaskHubName)
	if err != nil {
		return err
	}
	// Taking every lease proves that no host runs the hub.
	var leases []*blobstore.Lease
	defer func() {
		for _, l := range leases {
			l.Release()
		}
	}()
	for i := 0; i < p.PartitionCount; i++ {
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		l, err := blobstore.AcquireLease(short, c, blobstore.PartitionPrefix(p.TaskHubGUID, i)+blobstore.LeaseBlob, blobstore.LeaseOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("netherite: task hub %q: partition %d is in use by a host; stop it first (%v)", p.TaskHubName, i, err)
		}
		leases = append(leases, l)
	}
	if err := c.Delete(ctx); err != nil {
		return fmt.Errorf("netherite: delete task hub %q: %w", p.TaskHubName, err)
	}
	return nil
}

// monitor: not yet implemented for Azure Storage.
func (b *blobStore) monitor() (monitorStore, error) {
	return nil, errors.New("netherite: the load monitor is not implemented for Azure Storage yet")
}
