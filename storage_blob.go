package netherite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

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
	hub        *blobTaskHub // after openTaskHub (or taskHubInfo)
	// leaseDuration is Options.LeaseDuration (0: the default), for the
	// load monitor's lease (setStoreLeaseDuration).
	leaseDuration time.Duration
	// acct, if set, tunes the account (tests inject a transport that can
	// cut the host off from storage).
	acct *blobstore.AccountOptions
}

// testBlobTransport, set only by tests, gives the HTTP transport of the
// accounts opened for a connection string (nil: the SDK's), so that a
// test can cut one host off from storage (storage_export_test.go).
var testBlobTransport atomic.Pointer[func(connection string) policy.Transporter]

func (b *blobStore) newAccount() (*blobstore.Account, error) {
	if b.acct != nil {
		return blobstore.NewAccount(b.connection, *b.acct)
	}
	if hook := testBlobTransport.Load(); hook != nil {
		if tr := (*hook)(b.connection); tr != nil {
			return blobstore.NewAccount(b.connection, blobstore.AccountOptions{Transport: tr})
		}
	}
	return blobstore.NewAccount(b.connection)
}

func (b *blobStore) String() string { return RedactStorage(b.connection) }
func (b *blobStore) shared() bool   { return true }
func (b *blobStore) leases() bool   { return true }

func (b *blobStore) openTaskHub(ctx context.Context, name string, partitionCount int) (*TaskHubParameters, error) {
	acct, err := b.newAccount()
	if err != nil {
		return nil, fmt.Errorf("netherite: storage: %w", err)
	}
	hub, err := openBlobTaskHub(ctx, acct, name, partitionCount)
	if err != nil {
		return nil, err
	}
	b.hub = hub
	return hub.params, nil
}

// taskHubInfo reads the parameters of an existing task hub; then monitor()
// reads its load monitor's record (without creating anything).
func (b *blobStore) taskHubInfo(ctx context.Context, name string) (*TaskHubParameters, error) {
	acct, err := b.newAccount()
	if err != nil {
		return nil, fmt.Errorf("netherite: storage: %w", err)
	}
	hub, err := blobTaskHubInfo(ctx, acct, name)
	if err != nil {
		return nil, err
	}
	if b.hub == nil {
		b.hub = hub
	}
	return hub.params, nil
}

func (b *blobStore) deleteTaskHub(ctx context.Context, p *TaskHubParameters) error {
	acct, err := b.newAccount()
	if err != nil {
		return fmt.Errorf("netherite: storage: %w", err)
	}
	return deleteBlobTaskHub(ctx, acct, p)
}

// waitLeasePoll: an opener waiting for a partition another host hands
// over (partitionOpen.wait) polls its lease this often, so that a
// released lease changes hands at once; each poll is a request (waiting
// for a dead host's lease to expire costs duration/poll of them). The load
// monitor's candidates: monitorLeasePoll.
const waitLeasePoll = 150 * time.Millisecond

func (b *blobStore) openPartition(ctx context.Context, i int, o partitionOpen) (partitionStorage, *partitions.State, error) {
	lopts := leaseOptions(o.lease)
	if o.wait {
		lopts.PollEvery = waitLeasePoll
	}
	bp, st, err := openBlobPartition(ctx, b.hub, i, o.cache, lopts, o.owned)
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
func openBlobTaskHub(ctx context.Context, acct *blobstore.Account, name string, partitionCount int) (*blobTaskHub, error) {
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

// leaseOptions are the options of a lease of duration d (0: the
// blobstore defaults): renewed every 2/3 of it, given up as lost after 8/9
// of it without a renewal.
func leaseOptions(d time.Duration) blobstore.LeaseOptions {
	if d <= 0 {
		return blobstore.LeaseOptions{}
	}
	return blobstore.LeaseOptions{Duration: d, RenewEvery: d * 2 / 3, Guard: d * 8 / 9}
}

// openBlobPartition acquires the partition's lease (then calls owned, if
// not nil), opens its storage and recovers its state.
func openBlobPartition(ctx context.Context, hub *blobTaskHub, i int, cacheBytes int64, lopts blobstore.LeaseOptions, owned func()) (*blobPartition, *partitions.State, error) {
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

// close closes the storage and releases the lease: another host waiting
// for the partition gets it at its next poll.
func (b *blobPartition) close() error {
	return errors.Join(b.store.Close(), b.blobs.Close())
}

// abandon stops renewing the lease without releasing it (a dead host's
// lease expires), and closes the storage: with the lease abandoned, its
// closing writes are refused.
func (b *blobPartition) abandon() error {
	b.blobs.Abandon()
	b.store.Close()
	return nil
}

// blobTaskHubInfo reads the parameters of a task hub in Azure Storage.
func blobTaskHubInfo(ctx context.Context, acct *blobstore.Account, name string) (*blobTaskHub, error) {
	c, err := acct.TaskHubContainer(name)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: %w", name, err)
	}
	b, err := blobstore.ReadTaskHubParameters(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("netherite: task hub %q: %w", name, err)
	}
	p, err := checkTaskHubParameters(b, name, 0, acct.Endpoint()+"/"+c.Name())
	if err != nil {
		return nil, err
	}
	return &blobTaskHub{account: acct, container: c, params: p}, nil
}

// deleteBlobTaskHub deletes the task hub's container, with every blob in
// it. It fails while a host holds any of the hub's partition leases, or
// the load monitor's.
func deleteBlobTaskHub(ctx context.Context, acct *blobstore.Account, p *TaskHubParameters) error {
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
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	l, err := blobstore.AcquireLease(short, c, blobstore.MonitorPrefix(p.TaskHubGUID)+blobstore.MonitorLeaseBlob, blobstore.LeaseOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("netherite: task hub %q: a host runs its load monitor; stop it first (%v)", p.TaskHubName, err)
	}
	leases = append(leases, l)
	if err := c.Delete(ctx); err != nil {
		return fmt.Errorf("netherite: delete task hub %q: %w", p.TaskHubName, err)
	}
	return nil
}
