package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/netherite-go/netherite/faster"
)

// leaseDocKey is the metadata key on the lease blob that says its content
// is the lease document (its value is the document's name); without it
// the document does not exist.
const leaseDocKey = "netheritedocument"

// fenceKey is the metadata key a fencing read sets on a document (the
// value is the reader's lease id; see ReadFile).
const fenceKey = "netheritefence"

// maxSinglePut is the largest document written with one Put Blob; larger
// ones are staged in blocks and committed with one Put Block List (also
// atomic).
const maxSinglePut = 256 << 20

// MetaOptions configure NewBlobMeta.
type MetaOptions struct {
	// Lease, if set, fences the writes: they are refused once the lease
	// is lost or overdue (ErrLeaseLost).
	Lease *Lease
	// LeaseDocument names the one document stored as the content of the
	// lease blob (for the partition: "commit-log.meta", the commit log's
	// committed tail); its writes are conditioned on the lease id, so the
	// service rejects a stale owner's. Needs Lease.
	LeaseDocument string
}

// BlobMeta is a faster.MetaStore on block blobs: document NAME is the
// block blob "<prefix>NAME". Each write is one Put Blob (or one Put Block
// List), so readers see the old or the new content, never a mix.
//
// Writes are conditioned on ETags against lost updates: a document this
// store has read or written is replaced only if it still has the ETag
// this store last saw (If-Match), one it found missing or removed is
// created only if still missing (If-None-Match: *), and one it has not
// seen is written unconditionally. A failed condition is ErrConflict
// (with a lease also ErrLeaseLost, and the lease is declared lost). With
// a lease, the first read of a document also fences it: the ETag is
// changed right after the read (Set Blob Metadata, conditioned on the
// ETag read), so that a previous owner cannot replace what this one has
// read.
//
// List skips blobs that are not block blobs (the page blobs of the
// devices may share the prefix) and the lease blob (it reports the lease
// document instead, when present).
type BlobMeta struct {
	c        *Container
	prefix   string
	lease    *Lease
	leaseDoc string
	leaseRel string // the lease blob's name relative to prefix, if under it (reserved)
	retry    RetryOptions

	mu   sync.Mutex
	docs map[string]*docState
}

type docState struct {
	mu   sync.Mutex // serializes this store's operations on the document
	refs int        // guarded by BlobMeta.mu
	seen docSeen
	etag azcore.ETag // when seen == docPresent
	// removed: this store removed it; forget it when unused.
	removed bool
}

type docSeen int

const (
	docUnknown docSeen = iota
	docPresent
	docAbsent
)

// NewBlobMeta returns a metadata store on the blobs of c whose names start
// with prefix (a "folder": "" or ending with "/"; a missing slash is
// added). It does no I/O.
func NewBlobMeta(c *Container, prefix string, opts MetaOptions) (*BlobMeta, error) {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "//") {
		return nil, fmt.Errorf("blobstore: meta store %s/%s: invalid prefix", c.name, prefix)
	}
	m := &BlobMeta{c: c, prefix: prefix, lease: opts.Lease, leaseDoc: opts.LeaseDocument, retry: c.acct.retry, docs: map[string]*docState{}}
	if m.leaseDoc != "" {
		if m.lease == nil {
			return nil, fmt.Errorf("blobstore: meta store %s: LeaseDocument %q needs a Lease", m.where(), m.leaseDoc)
		}
		if err := m.checkName(m.leaseDoc); err != nil {
			return nil, err
		}
	}
	if m.lease != nil && m.lease.c.name == c.name {
		if rel, ok := strings.CutPrefix(m.lease.name, prefix); ok {
			m.leaseRel = rel
			if rel == m.leaseDoc {
				return nil, fmt.Errorf("blobstore: meta store %s: LeaseDocument %q is the lease blob's own name", m.where(), m.leaseDoc)
			}
		}
	}
	return m, nil
}

// Fenced implements faster.FencedMeta: the lease document's writes are
// conditioned on the lease, so the commit log makes it its commit point
// (see the package documentation).
func (m *BlobMeta) Fenced(name string) bool { return m.leaseDoc != "" && name == m.leaseDoc }

var _ faster.FencedMeta = (*BlobMeta)(nil)

func (m *BlobMeta) where() string { return m.c.name + "/" + m.prefix }

// Prefix returns the blob name prefix of the documents.
func (m *BlobMeta) Prefix() string { return m.prefix }

// checkName applies the faster.MetaStore name rule (the one of
// faster.MemoryMeta and faster.DirMeta): slash-separated, no empty, "."
// or "..", or dot-led elements, no backslash or NUL.
func (m *BlobMeta) checkName(name string) error {
	bad := name == "" || strings.ContainsAny(name, "\\\x00") || len(m.prefix)+len(name) > 1024
	if !bad {
		for _, elem := range strings.Split(name, "/") {
			if elem == "" || elem[0] == '.' {
				bad = true
				break
			}
		}
	}
	if bad {
		return fmt.Errorf("blobstore: meta store %s: invalid document name %q", m.where(), name)
	}
	if m.leaseRel != "" && name == m.leaseRel {
		return fmt.Errorf("blobstore: meta store %s: document name %q is reserved for the lease blob", m.where(), name)
	}
	return nil
}

func (m *BlobMeta) guard() guardFunc {
	if m.lease == nil {
		return nil
	}
	return m.lease.guard
}

// acquire returns the document's state, locked.
func (m *BlobMeta) acquire(name string) *docState {
	m.mu.Lock()
	ds := m.docs[name]
	if ds == nil {
		ds = &docState{}
		m.docs[name] = ds
	}
	ds.refs++
	m.mu.Unlock()
	ds.mu.Lock()
	return ds
}

// release unlocks the state. What is known of a document this store
// removed is dropped when unused (the names of removed checkpoints would
// pile up otherwise); one found missing by a read stays known missing.
func (m *BlobMeta) release(name string, ds *docState) {
	forget := ds.seen == docUnknown || ds.removed
	ds.mu.Unlock()
	m.mu.Lock()
	ds.refs--
	if ds.refs == 0 && forget && m.docs[name] == ds {
		delete(m.docs, name)
	}
	m.mu.Unlock()
}

// errDocChanged marks a write rejected on its ETag condition.
var errDocChanged = errors.New("ETag condition failed")

// WriteFile implements faster.MetaStore.
func (m *BlobMeta) WriteFile(name string, data []byte) error {
	if err := m.checkName(name); err != nil {
		return err
	}
	if name == m.leaseDoc {
		if err := m.writeLeaseDoc(context.Background(), data, true); err != nil {
			return fmt.Errorf("blobstore: meta store %s: write %q (lease blob %s): %w", m.where(), name, m.lease.name, err)
		}
		return nil
	}
	ds := m.acquire(name)
	defer m.release(name, ds)
	var cond *blob.AccessConditions
	switch ds.seen {
	case docPresent:
		cond = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(ds.etag)}}
	case docAbsent:
		cond = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}
	}
	client := m.c.client.NewBlockBlobClient(m.prefix + name)
	ambiguous, err := m.retry.doTracked(context.Background(), m.guard(), func(ctx context.Context) error {
		etag, err := upload(ctx, client, data, &blockblob.UploadOptions{AccessConditions: cond})
		switch {
		case err == nil:
			ds.seen, ds.etag, ds.removed = docPresent, etag, false
			return nil
		case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists):
			return &permanent{fmt.Errorf("%w: %w", errDocChanged, short(err))}
		}
		return err
	})
	if err != nil && errors.Is(err, errDocChanged) {
		if ambiguous { // an earlier attempt may have written it
			if got, etag, rerr := m.download(client); rerr == nil && bytes.Equal(got, data) {
				ds.seen, ds.etag, ds.removed = docPresent, etag, false
				return nil
			}
		}
		err = m.conflict(err)
	}
	if err != nil {
		ds.seen = docUnknown
		return fmt.Errorf("blobstore: meta store %s: write %q: %w", m.where(), name, err)
	}
	return nil
}

// conflict reports a failed ETag condition.
func (m *BlobMeta) conflict(err error) error {
	err = fmt.Errorf("%w: the document changed since this store last read or wrote it: %w", ErrConflict, err)
	if m.lease != nil {
		m.lease.markLost(err)
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return err
}

// upload writes a block blob in one Put Blob, or for large data in
// blocks committed by one Put Block List; both replace the blob
// atomically and apply opts' conditions.
func upload(ctx context.Context, client *blockblob.Client, data []byte, opts *blockblob.UploadOptions) (azcore.ETag, error) {
	if len(data) <= maxSinglePut {
		resp, err := client.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), opts)
		if err != nil || resp.ETag == nil {
			return "", err
		}
		return *resp.ETag, nil
	}
	bo := &blockblob.UploadBufferOptions{BlockSize: 64 << 20, Concurrency: 4, Metadata: opts.Metadata, AccessConditions: opts.AccessConditions}
	resp, err := client.UploadBuffer(ctx, data, bo)
	if err != nil || resp.ETag == nil {
		return "", err
	}
	return *resp.ETag, nil
}

// download reads a whole blob with retries.
func (m *BlobMeta) download(client *blockblob.Client) ([]byte, azcore.ETag, error) {
	var data []byte
	var etag azcore.ETag
	err := m.retry.do(context.Background(), nil, func(ctx context.Context) error {
		resp, err := client.DownloadStream(ctx, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err = io.ReadAll(resp.Body)
		if resp.ETag != nil {
			etag = *resp.ETag
		}
		return err
	})
	return data, etag, err
}

// ReadFile implements faster.MetaStore; a missing document gives an error
// wrapping faster.ErrNotExist.
func (m *BlobMeta) ReadFile(name string) ([]byte, error) {
	if err := m.checkName(name); err != nil {
		return nil, err
	}
	if name == m.leaseDoc {
		data, ok, err := m.readLeaseDoc()
		if err != nil {
			return nil, fmt.Errorf("blobstore: meta store %s: read %q (lease blob %s): %w", m.where(), name, m.lease.name, err)
		}
		if !ok {
			return nil, fmt.Errorf("blobstore: meta store %s: read %q (lease blob %s): %w", m.where(), name, m.lease.name, faster.ErrNotExist)
		}
		return data, nil
	}
	ds := m.acquire(name)
	defer m.release(name, ds)
	client := m.c.client.NewBlockBlobClient(m.prefix + name)
	// With a lease, the first read of a document fences it: its ETag is
	// changed at once (Set Blob Metadata, conditioned on the ETag read),
	// so that a write by a previous owner that read or wrote it before is
	// rejected from now on, and one that came before is what was read.
	// Once the lease is lost there is nothing to fence (writes are refused).
	fence := m.lease != nil && ds.seen != docPresent && m.lease.Check() == nil
	for attempt := 1; ; attempt++ {
		data, etag, err := m.download(client)
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			ds.seen, ds.removed = docAbsent, false
			return nil, fmt.Errorf("blobstore: meta store %s: read %q: %w", m.where(), name, faster.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: meta store %s: read %q: %w", m.where(), name, short(err))
		}
		if data == nil {
			data = []byte{}
		}
		if fence {
			etag, err = m.fence(client, etag)
			if errors.Is(err, errDocChanged) && attempt < 4 {
				continue // written between the read and the fence: read again
			}
			if bloberror.HasCode(err, bloberror.BlobNotFound) && attempt < 4 {
				continue
			}
			if errors.Is(err, ErrLeaseLost) {
				ds.seen = docUnknown // lost meanwhile: the read stands, writes are refused
				return data, nil
			}
			if errors.Is(err, errDocChanged) {
				err = m.conflict(err)
			}
			if err != nil {
				ds.seen = docUnknown
				return nil, fmt.Errorf("blobstore: meta store %s: read %q: fencing it: %w", m.where(), name, err)
			}
		}
		ds.seen, ds.etag, ds.removed = docPresent, etag, false
		return data, nil
	}
}

// fence changes a document's ETag if it is still etag, returning the new
// one.
func (m *BlobMeta) fence(client *blockblob.Client, etag azcore.ETag) (azcore.ETag, error) {
	var newTag azcore.ETag
	err := m.retry.do(context.Background(), m.guard(), func(ctx context.Context) error {
		resp, err := client.SetMetadata(ctx, map[string]*string{fenceKey: to.Ptr(m.lease.ID())}, &blob.SetMetadataOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(etag)}}})
		switch {
		case err == nil:
			if resp.ETag == nil {
				return &permanent{errors.New("Set Blob Metadata returned no ETag")}
			}
			newTag = *resp.ETag
			return nil
		case bloberror.HasCode(err, bloberror.ConditionNotMet):
			// Also when an earlier attempt was applied: reading again
			// sorts it out.
			return &permanent{fmt.Errorf("%w: %w", errDocChanged, short(err))}
		case bloberror.HasCode(err, bloberror.BlobNotFound):
			return &permanent{short(err)}
		}
		return err
	})
	return newTag, err
}

// Remove implements faster.MetaStore; removing a missing document is no
// error. A document this store has seen is deleted only if unchanged.
func (m *BlobMeta) Remove(name string) error {
	if err := m.checkName(name); err != nil {
		return err
	}
	if name == m.leaseDoc {
		if err := m.writeLeaseDoc(context.Background(), nil, false); err != nil {
			return fmt.Errorf("blobstore: meta store %s: remove %q (lease blob %s): %w", m.where(), name, m.lease.name, err)
		}
		return nil
	}
	ds := m.acquire(name)
	defer m.release(name, ds)
	var cond *blob.AccessConditions
	if ds.seen == docPresent {
		cond = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(ds.etag)}}
	}
	client := m.c.client.NewBlockBlobClient(m.prefix + name)
	_, err := m.retry.doTracked(context.Background(), m.guard(), func(ctx context.Context) error {
		_, err := client.Delete(ctx, &blob.DeleteOptions{AccessConditions: cond})
		switch {
		case err == nil, bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound):
			return nil
		case bloberror.HasCode(err, bloberror.ConditionNotMet):
			return &permanent{fmt.Errorf("%w: %w", errDocChanged, short(err))}
		}
		return err
	})
	if errors.Is(err, errDocChanged) {
		// A delete applied by an earlier attempt would give BlobNotFound,
		// not this: the blob exists with another ETag.
		err = m.conflict(err)
	}
	if err != nil {
		ds.seen = docUnknown
		return fmt.Errorf("blobstore: meta store %s: remove %q: %w", m.where(), name, err)
	}
	ds.seen, ds.removed = docAbsent, true
	return nil
}

// List implements faster.MetaStore.
func (m *BlobMeta) List(prefix string) ([]string, error) {
	var names []string
	err := m.c.listBlobs(context.Background(), m.prefix+prefix, container.ListBlobsInclude{}, func(item *container.BlobItem) {
		if item.Properties != nil && item.Properties.BlobType != nil && *item.Properties.BlobType != blob.BlobTypeBlockBlob {
			return
		}
		rel := strings.TrimPrefix(*item.Name, m.prefix)
		if m.leaseRel != "" && rel == m.leaseRel {
			return
		}
		if m.checkName(rel) != nil {
			return
		}
		names = append(names, rel)
	})
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return nil, fmt.Errorf("blobstore: meta store %s: list %q: %w", m.where(), prefix, short(err))
	}
	if m.leaseDoc != "" && strings.HasPrefix(m.leaseDoc, prefix) {
		ok, err := m.leaseDocExists()
		if err != nil {
			return nil, fmt.Errorf("blobstore: meta store %s: list %q: lease blob %s: %w", m.where(), prefix, m.lease.name, err)
		}
		if ok {
			names = append(names, m.leaseDoc)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// writeLeaseDoc replaces the lease blob's content, conditioned on the
// lease id: the document (present) or nothing (removed).
func (m *BlobMeta) writeLeaseDoc(ctx context.Context, data []byte, present bool) error {
	opts := &blockblob.UploadOptions{AccessConditions: &blob.AccessConditions{LeaseAccessConditions: m.lease.leaseConditions()}}
	if present {
		opts.Metadata = map[string]*string{leaseDocKey: to.Ptr(m.leaseDoc)}
	} else {
		data = nil
	}
	return m.retry.do(ctx, m.guard(), func(ctx context.Context) error {
		_, err := upload(ctx, m.lease.blob, data, opts)
		if isLeaseErr(err) {
			err = fmt.Errorf("the service rejected a write conditioned on lease %s: %w", m.lease.ID(), short(err))
			m.lease.markLost(err)
			return &permanent{fmt.Errorf("%w: %w", ErrLeaseLost, err)}
		}
		return err
	})
}

func (m *BlobMeta) readLeaseDoc() ([]byte, bool, error) {
	var data []byte
	var ok bool
	err := m.retry.do(context.Background(), nil, func(ctx context.Context) error {
		resp, err := m.lease.blob.DownloadStream(ctx, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			ok = false
			return nil
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		ok = m.isLeaseDoc(resp.Metadata)
		data, err = io.ReadAll(resp.Body)
		return err
	})
	if data == nil {
		data = []byte{}
	}
	return data, ok, short(err)
}

func (m *BlobMeta) leaseDocExists() (bool, error) {
	var ok bool
	err := m.retry.do(context.Background(), nil, func(ctx context.Context) error {
		props, err := m.lease.blob.GetProperties(ctx, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			ok = false
			return nil
		}
		if err != nil {
			return err
		}
		ok = m.isLeaseDoc(props.Metadata)
		return nil
	})
	return ok, short(err)
}

func (m *BlobMeta) isLeaseDoc(md map[string]*string) bool {
	for k, v := range md {
		if strings.EqualFold(k, leaseDocKey) && v != nil && *v == m.leaseDoc {
			return true
		}
	}
	return false
}

var _ faster.MetaStore = (*BlobMeta)(nil)
