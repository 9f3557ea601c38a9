package azstorage

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/netherite-go/netherite/durable"
)

// leaseManager balances the control queues over the workers with blob
// leases (DTFx's partition manager): one blob per control queue in
// <hub>-leases, leased for LeaseDuration and renewed every
// LeaseRenewInterval. The blob's metadata names the owner and its lease id,
// so that a worker below its fair share (control queues / workers seen)
// can steal a lease from the worker with the most: it changes the lease to
// its own id, and the old owner learns it when its next renewal fails.
type leaseManager struct {
	b         *Backend
	container string
	blobs     []*blockblob.Client

	mu   sync.Mutex
	mine map[int]*ownedQueue
}

type ownedQueue struct {
	id     string // our lease id
	cancel context.CancelFunc
	done   chan struct{}
}

func newLeaseManager(b *Backend, container string) *leaseManager {
	m := &leaseManager{b: b, container: container, mine: map[int]*ownedQueue{}}
	cc := b.clients.blobs.ServiceClient().NewContainerClient(container)
	for i := range b.control {
		m.blobs = append(m.blobs, cc.NewBlockBlobClient(fmt.Sprintf("control-%02d", i)))
	}
	return m
}

// init creates the container and lease blobs if needed.
func (m *leaseManager) init(ctx context.Context) error {
	if _, err := m.b.clients.blobs.CreateContainer(ctx, m.container, nil); err != nil && !isStatus(err, 409) {
		return fmt.Errorf("azstorage: create container %s: %w", m.container, err)
	}
	for i, bc := range m.blobs {
		_, err := bc.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		if err != nil && !isStatus(err, 409, 412) {
			return fmt.Errorf("azstorage: create lease blob %d: %w", i, err)
		}
	}
	return nil
}

func (m *leaseManager) owned() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for i := range m.mine {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

type leaseInfo struct {
	leased bool
	owner  string
	token  string
}

func (m *leaseManager) read(ctx context.Context, i int) (leaseInfo, error) {
	p, err := m.blobs[i].GetProperties(ctx, nil)
	if err != nil {
		return leaseInfo{}, err
	}
	var li leaseInfo
	li.leased = p.LeaseState != nil && string(*p.LeaseState) == "leased"
	for k, v := range p.Metadata {
		if v == nil {
			continue
		}
		switch toLower(k) {
		case "owner":
			li.owner = *v
		case "token":
			li.token = *v
		}
	}
	return li, nil
}

// run renews, acquires and steals leases until ctx ends.
func (m *leaseManager) run(ctx context.Context) {
	m.balance(ctx)
	renew := time.NewTicker(m.b.cfg.LeaseRenewInterval)
	defer renew.Stop()
	acquire := time.NewTicker(m.b.cfg.LeaseAcquireInterval)
	defer acquire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			m.renew(ctx)
		case <-acquire.C:
			m.balance(ctx)
		}
	}
}

func (m *leaseManager) renew(ctx context.Context) {
	m.mu.Lock()
	ids := map[int]string{}
	for i, o := range m.mine {
		ids[i] = o.id
	}
	m.mu.Unlock()
	for i, id := range ids {
		lc, err := lease.NewBlobClient(m.blobs[i], &lease.BlobClientOptions{LeaseID: to.Ptr(id)})
		if err == nil {
			_, err = lc.RenewLease(ctx, nil)
		}
		if err != nil && ctx.Err() == nil {
			m.b.log.Info("azstorage: lost control queue lease", "queue", i, "worker", m.b.cfg.WorkerID, "err", err)
			m.drop(i)
		}
	}
}

// balance takes free leases up to the fair share, then steals one.
func (m *leaseManager) balance(ctx context.Context) {
	infos := make([]leaseInfo, len(m.blobs))
	for i := range m.blobs {
		li, err := m.read(ctx, i)
		if err != nil {
			if ctx.Err() == nil {
				m.b.log.Warn("azstorage: read lease", "queue", i, "err", err)
			}
			return
		}
		infos[i] = li
	}
	me := m.b.cfg.WorkerID
	counts := map[string]int{me: 0}
	for _, li := range infos {
		if li.leased && li.owner != "" {
			counts[li.owner]++
		}
	}
	target := (len(m.blobs) + len(counts) - 1) / len(counts)
	for i, li := range infos {
		if counts[me] >= target {
			break
		}
		if li.leased {
			continue
		}
		if m.acquire(ctx, i, "") {
			counts[me]++
		}
	}
	if counts[me] >= target {
		return
	}
	// Steal one lease from the worker with the most, if it has more than
	// its share.
	victim, most := "", target
	for w, n := range counts {
		if w != me && n > most {
			victim, most = w, n
		}
	}
	if victim == "" {
		return
	}
	for i, li := range infos {
		if li.leased && li.owner == victim && li.token != "" {
			m.acquire(ctx, i, li.token)
			return
		}
	}
}

// acquire takes lease i (stealing it from token if set) and starts
// processing its control queue.
func (m *leaseManager) acquire(ctx context.Context, i int, token string) bool {
	id := durable.NewUUID()
	var err error
	if token == "" {
		var lc *lease.BlobClient
		if lc, err = lease.NewBlobClient(m.blobs[i], &lease.BlobClientOptions{LeaseID: to.Ptr(id)}); err == nil {
			_, err = lc.AcquireLease(ctx, int32(m.b.cfg.LeaseDuration/time.Second), nil)
		}
	} else {
		var lc *lease.BlobClient
		if lc, err = lease.NewBlobClient(m.blobs[i], &lease.BlobClientOptions{LeaseID: to.Ptr(token)}); err == nil {
			_, err = lc.ChangeLease(ctx, id, nil)
		}
	}
	if err != nil {
		return false // someone else was faster
	}
	_, err = m.blobs[i].SetMetadata(ctx, map[string]*string{"owner": to.Ptr(m.b.cfg.WorkerID), "token": to.Ptr(id)},
		&blob.SetMetadataOptions{AccessConditions: &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: to.Ptr(id)}}})
	if err != nil {
		m.b.log.Warn("azstorage: write lease owner", "queue", i, "err", err)
	}
	qctx, cancel := context.WithCancel(ctx)
	o := &ownedQueue{id: id, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.mine[i] = o
	m.mu.Unlock()
	m.b.log.Debug("azstorage: acquired control queue", "queue", i, "worker", m.b.cfg.WorkerID, "stolen", token != "")
	m.b.pollers.Add(1)
	go func() {
		defer m.b.pollers.Done()
		defer close(o.done)
		m.b.pollControlQueue(qctx, i)
	}()
	return true
}

// drop stops processing control queue i (its lease is lost).
func (m *leaseManager) drop(i int) *ownedQueue {
	m.mu.Lock()
	o := m.mine[i]
	delete(m.mine, i)
	m.mu.Unlock()
	if o != nil {
		o.cancel()
	}
	return o
}

// releaseAll stops every control queue and releases its lease.
func (m *leaseManager) releaseAll(ctx context.Context) {
	for _, i := range m.owned() {
		o := m.drop(i)
		if o == nil {
			continue
		}
		<-o.done
		if lc, err := lease.NewBlobClient(m.blobs[i], &lease.BlobClientOptions{LeaseID: to.Ptr(o.id)}); err == nil {
			_, _ = lc.ReleaseLease(ctx, nil)
		}
	}
}
