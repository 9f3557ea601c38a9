package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/netherite-go/netherite/faster"
)

// MaxPutPages is the most one Put Page request carries; longer writes are
// split.
const MaxPutPages = 4 << 20

// DeviceOptions configure NewPageBlobDevice. Zero fields take the
// defaults.
type DeviceOptions struct {
	// SectorSize is the alignment of addresses and lengths: a multiple of
	// the page blob page, 512 bytes (default 512).
	SectorSize int
	// SegmentSize is the size of one segment blob, a multiple of
	// SectorSize (default 64 MiB, like the local devices). Page blobs are
	// sparse: an unwritten page costs nothing.
	SegmentSize int64
	// Lease, if set, fences the writes (see the package documentation):
	// they are refused once the lease is lost or overdue, and each write
	// to a segment blob is conditioned on the ETag this device's previous
	// write to it returned, so that a write by anyone else in between is
	// detected (ErrLeaseLost, and the lease is declared lost).
	Lease *Lease
	// MaxConcurrency bounds the requests the device runs at once
	// (default 16).
	MaxConcurrency int
}

// PageBlobDevice is a faster.Device on page blobs: segment n of the
// address space is the page blob "<prefix>.<n, 6 digits>" of SegmentSize
// bytes, created on the first write to it. Reads of never-written space
// (in a missing blob, or pages never written) give zeros.
//
// Flush does nothing: a Put Page is durable (written to all replicas)
// when the service acknowledges it, and WriteAsync calls done only then.
type PageBlobDevice struct {
	c       *Container
	prefix  string
	sector  int
	segSize int64
	lease   *Lease
	retry   RetryOptions
	sem     chan struct{}

	mu       sync.Mutex
	segs     map[int64]*segState
	closed   bool
	ops      sync.WaitGroup
	removeMu sync.Mutex
	listed   bool  // a RemoveSegmentsBelow listed the blobs
	lowWater int64 // once listed: no segment below it exists
}

// segState is what the device knows of one segment blob.
type segState struct {
	mu    sync.Mutex  // creation; with a lease, also serializes writes (each one conditioned on the last ETag)
	ready bool        // the blob exists and etag is valid
	etag  azcore.ETag // as returned by this device's last write or creation
}

// NewPageBlobDevice returns a device whose segment blobs are named
// "<prefix>.NNNNNN" in c. It does no I/O.
func NewPageBlobDevice(c *Container, prefix string, opts DeviceOptions) (*PageBlobDevice, error) {
	if opts.SectorSize == 0 {
		opts.SectorSize = 512
	}
	if opts.SegmentSize == 0 {
		opts.SegmentSize = 64 << 20
	}
	if opts.MaxConcurrency == 0 {
		opts.MaxConcurrency = 16
	}
	name := c.name + "/" + prefix
	switch {
	case prefix == "" || strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/") || len(prefix) > 1000:
		return nil, fmt.Errorf("blobstore: device %q: invalid blob name prefix %q", name, prefix)
	case opts.SectorSize <= 0 || opts.SectorSize%pageblob.PageBytes != 0:
		return nil, fmt.Errorf("blobstore: device %q: sector size %d is not a positive multiple of the page blob page (%d bytes)", name, opts.SectorSize, pageblob.PageBytes)
	case opts.SegmentSize <= 0 || opts.SegmentSize%int64(opts.SectorSize) != 0:
		return nil, fmt.Errorf("blobstore: device %q: segment size %d is not a positive multiple of the sector size %d", name, opts.SegmentSize, opts.SectorSize)
	case opts.MaxConcurrency < 0:
		return nil, fmt.Errorf("blobstore: device %q: MaxConcurrency %d is negative", name, opts.MaxConcurrency)
	}
	return &PageBlobDevice{
		c:       c,
		prefix:  prefix,
		sector:  opts.SectorSize,
		segSize: opts.SegmentSize,
		lease:   opts.Lease,
		retry:   c.acct.retry,
		sem:     make(chan struct{}, opts.MaxConcurrency),
		segs:    make(map[int64]*segState),
	}, nil
}

// Name implements faster.Device: "<container>/<prefix>".
func (d *PageBlobDevice) Name() string { return d.c.name + "/" + d.prefix }

// SectorSize implements faster.Device.
func (d *PageBlobDevice) SectorSize() int { return d.sector }

// SegmentSize implements faster.Device.
func (d *PageBlobDevice) SegmentSize() int64 { return d.segSize }

// SegmentName implements faster.Device: the name of the segment blob
// holding addr.
func (d *PageBlobDevice) SegmentName(addr int64) string { return d.blobName(addr / d.segSize) }

func (d *PageBlobDevice) blobName(seg int64) string { return fmt.Sprintf("%s.%06d", d.prefix, seg) }

func (d *PageBlobDevice) client(seg int64) *pageblob.Client {
	return d.c.client.NewPageBlobClient(d.blobName(seg))
}

func (d *PageBlobDevice) guard() guardFunc {
	if d.lease == nil {
		return nil
	}
	return d.lease.guard
}

// WriteAsync implements faster.Device.
func (d *PageBlobDevice) WriteAsync(addr int64, p []byte, done func(error)) {
	d.start("write", addr, p, done, d.write)
}

// ReadAsync implements faster.Device.
func (d *PageBlobDevice) ReadAsync(addr int64, p []byte, done func(error)) {
	d.start("read", addr, p, done, d.read)
}

func (d *PageBlobDevice) start(op string, addr int64, p []byte, done func(error), run func(int64, []byte) error) {
	if err := d.checkIO(op, addr, len(p)); err != nil {
		go done(err)
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		go done(fmt.Errorf("blobstore: device %q: %s at address %d length %d: %w", d.Name(), op, addr, len(p), faster.ErrClosed))
		return
	}
	d.ops.Add(1)
	d.mu.Unlock()
	go func() {
		var err error
		if len(p) > 0 {
			d.sem <- struct{}{}
			err = run(addr, p)
			<-d.sem
		}
		d.ops.Done()
		done(err)
	}()
}

// checkIO applies the faster.Device rules (the same messages as the
// faster package's devices).
func (d *PageBlobDevice) checkIO(op string, addr int64, n int) error {
	var why string
	switch {
	case addr < 0:
		why = "negative address"
	case addr%int64(d.sector) != 0:
		why = fmt.Sprintf("address is not a multiple of the sector size %d", d.sector)
	case n%d.sector != 0:
		why = fmt.Sprintf("length is not a multiple of the sector size %d", d.sector)
	case n > 0 && addr/d.segSize != (addr+int64(n)-1)/d.segSize:
		why = fmt.Sprintf("crosses the segment boundary at %d (segment size %d)", (addr/d.segSize+1)*d.segSize, d.segSize)
	default:
		return nil
	}
	return fmt.Errorf("blobstore: device %q: %s at address %d length %d: %s", d.Name(), op, addr, n, why)
}

func (d *PageBlobDevice) ioErr(op string, addr int64, n int, seg int64, err error) error {
	return fmt.Errorf("blobstore: device %q: %s at address %d length %d: blob %s/%s: %w", d.Name(), op, addr, n, d.c.name, d.blobName(seg), err)
}

func (d *PageBlobDevice) segment(seg int64) *segState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.segs[seg]
	if s == nil {
		s = &segState{}
		d.segs[seg] = s
	}
	return s
}

func (d *PageBlobDevice) write(addr int64, p []byte) error {
	seg := addr / d.segSize
	s := d.segment(seg)
	s.mu.Lock()
	if err := d.ensureLocked(s, seg); err != nil {
		s.mu.Unlock()
		return d.ioErr("write", addr, len(p), seg, err)
	}
	if d.lease == nil {
		s.mu.Unlock() // without ETag conditions, writes to a segment may run at once
	} else {
		defer s.mu.Unlock()
	}
	off := addr - seg*d.segSize
	for i := 0; i < len(p); i += MaxPutPages {
		chunk := p[i:min(i+MaxPutPages, len(p))]
		if err := d.putPages(s, seg, off+int64(i), chunk); err != nil {
			if errors.Is(err, errSegmentGone) {
				if d.lease == nil {
					s.mu.Lock()
					s.ready = false
					s.mu.Unlock()
				} else {
					s.ready = false
				}
			}
			return d.ioErr("write", addr+int64(i), len(chunk), seg, err)
		}
	}
	return nil
}

// errSegmentGone marks a Put Page to a segment blob deleted meanwhile.
var errSegmentGone = errors.New("the segment blob was deleted")

// errSegmentChanged marks a Put Page rejected on its ETag condition.
var errSegmentChanged = errors.New("ETag condition failed")

// putPages writes one chunk of at most MaxPutPages bytes. With a lease
// the caller holds s.mu.
func (d *PageBlobDevice) putPages(s *segState, seg, off int64, chunk []byte) error {
	return d.putPagesTry(s, seg, off, chunk, false)
}

func (d *PageBlobDevice) putPagesTry(s *segState, seg, off int64, chunk []byte, retried bool) error {
	client := d.client(seg)
	ambiguous, err := d.retry.doTracked(context.Background(), d.guard(), func(ctx context.Context) error {
		var opts *pageblob.UploadPagesOptions
		if d.lease != nil {
			opts = &pageblob.UploadPagesOptions{AccessConditions: &blob.AccessConditions{
				ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(s.etag)}}}
		}
		resp, err := client.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(chunk)),
			blob.HTTPRange{Offset: off, Count: int64(len(chunk))}, opts)
		switch {
		case err == nil:
			if d.lease != nil && resp.ETag != nil {
				s.etag = *resp.ETag
			}
			return nil
		case bloberror.HasCode(err, bloberror.ConditionNotMet):
			return &permanent{fmt.Errorf("%w: %w", errSegmentChanged, short(err))}
		case bloberror.HasCode(err, bloberror.BlobNotFound):
			return &permanent{fmt.Errorf("%w: %w", errSegmentGone, short(err))}
		}
		return err
	})
	if err != nil && !errors.Is(err, errSegmentChanged) {
		if ambiguous && d.lease != nil {
			// An attempt may have been applied: the ETag this device
			// knows may be stale. The next write adopts the blob's.
			s.ready = false
		}
		return err
	}
	if err == nil {
		return nil
	}
	// The blob's ETag is not the one this device last saw. If an earlier
	// attempt of this write may have been applied, that explains it when
	// the pages hold exactly this chunk.
	if ambiguous {
		if etag, ok := d.landed(client, off, chunk); ok {
			s.etag = etag
			return nil
		}
	}
	// Someone else wrote the segment. If the service confirms that this
	// host still holds the partition's lease, that was a stale owner
	// (whose lease was broken or expired) writing past the committed tail
	// before it noticed; its writes are garbage that this owner
	// overwrites, and its next write fails on the ETag this one leaves.
	if !retried && d.lease.Verify() == nil {
		if props, perr := client.GetProperties(context.Background(), nil); perr == nil && props.ETag != nil {
			s.etag = *props.ETag
			return d.putPagesTry(s, seg, off, chunk, true)
		}
	}
	err = fmt.Errorf("%w: the segment blob changed since this device last wrote it (ETag %s): %w", ErrConflict, s.etag, err)
	d.lease.markLost(err)
	return fmt.Errorf("%w: %w", ErrLeaseLost, err)
}

// landed reads the chunk's pages back: if they hold the chunk, it returns
// the blob's current ETag.
func (d *PageBlobDevice) landed(client *pageblob.Client, off int64, chunk []byte) (azcore.ETag, bool) {
	var etag azcore.ETag
	got := make([]byte, len(chunk))
	err := d.retry.do(context.Background(), nil, func(ctx context.Context) error {
		resp, err := client.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: int64(len(chunk))}})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.ETag == nil {
			return &permanent{errors.New("no ETag in the response")}
		}
		etag = *resp.ETag
		_, err = io.ReadFull(resp.Body, got)
		return err
	})
	return etag, err == nil && bytes.Equal(got, chunk)
}

// ensureLocked creates the segment blob if this device has not seen it
// yet (an existing one is adopted: its ETag is read).
func (d *PageBlobDevice) ensureLocked(s *segState, seg int64) error {
	if s.ready {
		return nil
	}
	client := d.client(seg)
	var etag azcore.ETag
	err := d.retry.do(context.Background(), d.guard(), func(ctx context.Context) error {
		resp, err := client.Create(ctx, d.segSize, &pageblob.CreateOptions{AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		if err == nil {
			if resp.ETag != nil {
				etag = *resp.ETag
			}
			return nil
		}
		if !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
			return err
		}
		props, err := client.GetProperties(ctx, nil)
		if err != nil {
			return err
		}
		if props.BlobType == nil || *props.BlobType != blob.BlobTypePageBlob || props.ContentLength == nil || *props.ContentLength != d.segSize {
			kind, size := "?", int64(-1)
			if props.BlobType != nil {
				kind = string(*props.BlobType)
			}
			if props.ContentLength != nil {
				size = *props.ContentLength
			}
			return &permanent{fmt.Errorf("the blob exists as a %s of %d bytes, not a page blob of the segment size %d", kind, size, d.segSize)}
		}
		if props.ETag != nil {
			etag = *props.ETag
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating the segment blob: %w", err)
	}
	s.etag, s.ready = etag, true
	d.mu.Lock()
	if d.listed && seg < d.lowWater {
		d.lowWater = seg
	}
	d.mu.Unlock()
	return nil
}

func (d *PageBlobDevice) read(addr int64, p []byte) error {
	seg := addr / d.segSize
	client := d.client(seg)
	off := addr - seg*d.segSize
	err := d.retry.do(context.Background(), nil, func(ctx context.Context) error {
		resp, err := client.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: int64(len(p))}})
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			clear(p) // never written
			return nil
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.ContentLength != nil && *resp.ContentLength != int64(len(p)) {
			return &permanent{fmt.Errorf("the service returned %d bytes for a range of %d", *resp.ContentLength, len(p))}
		}
		_, err = io.ReadFull(resp.Body, p)
		return err
	})
	if err != nil {
		return d.ioErr("read", addr, len(p), seg, err)
	}
	return nil
}

// Flush implements faster.Device. It does nothing but report ErrClosed
// after Close: a page write is durable once acknowledged, and writes call
// done only after the acknowledgement.
func (d *PageBlobDevice) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("blobstore: device %q: flush: %w", d.Name(), faster.ErrClosed)
	}
	return nil
}

// RemoveSegmentsBelow implements faster.Device: it deletes the segment
// blobs that lie wholly below addr. The first call lists the blobs; later
// ones delete the segments between the previous limit and the new one by
// name. With a lease, deletes are refused once it is lost, and a segment
// this device wrote is deleted only if its ETag is the one it left.
func (d *PageBlobDevice) RemoveSegmentsBelow(addr int64) error {
	d.removeMu.Lock()
	defer d.removeMu.Unlock()
	d.mu.Lock()
	closed, listed, low := d.closed, d.listed, d.lowWater
	d.mu.Unlock()
	if closed {
		return fmt.Errorf("blobstore: device %q: remove segments below %d: %w", d.Name(), addr, faster.ErrClosed)
	}
	if d.lease != nil {
		if err := d.lease.Check(); err != nil {
			return fmt.Errorf("blobstore: device %q: remove segments below %d: %w", d.Name(), addr, err)
		}
	}
	limit := addr / d.segSize // segments < limit lie wholly below addr
	if listed && limit <= low {
		return nil
	}
	var victims []int64
	if listed && limit-low <= 64 {
		for seg := low; seg < limit; seg++ {
			victims = append(victims, seg)
		}
	} else {
		segs, err := d.listSegments()
		if err != nil {
			return fmt.Errorf("blobstore: device %q: remove segments below %d: %w", d.Name(), addr, err)
		}
		for _, seg := range segs {
			if seg < limit {
				victims = append(victims, seg)
			}
		}
	}
	for _, seg := range victims {
		if err := d.deleteSegment(seg); err != nil {
			return fmt.Errorf("blobstore: device %q: remove segments below %d: blob %s/%s: %w", d.Name(), addr, d.c.name, d.blobName(seg), err)
		}
	}
	d.mu.Lock()
	d.listed = true
	d.lowWater = max(d.lowWater, limit)
	d.mu.Unlock()
	return nil
}

func (d *PageBlobDevice) deleteSegment(seg int64) error {
	d.mu.Lock()
	s := d.segs[seg]
	d.mu.Unlock()
	var cond *blob.AccessConditions
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if d.lease != nil && s.ready {
			cond = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(s.etag)}}
		}
	}
	client := d.client(seg)
	ambiguous, err := d.retry.doTracked(context.Background(), d.guard(), func(ctx context.Context) error {
		_, err := client.Delete(ctx, &blob.DeleteOptions{AccessConditions: cond})
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil
		}
		return err
	})
	if bloberror.HasCode(err, bloberror.ConditionNotMet) && !ambiguous {
		err = fmt.Errorf("%w: the segment blob changed since this device last wrote it: %w", ErrConflict, err)
		d.lease.markLost(err)
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	if err != nil {
		return err
	}
	if s != nil {
		s.ready = false
	}
	d.mu.Lock()
	if d.segs[seg] == s {
		delete(d.segs, seg)
	}
	d.mu.Unlock()
	return nil
}

// listSegments returns the segment numbers of the existing segment blobs.
func (d *PageBlobDevice) listSegments() ([]int64, error) {
	var segs []int64
	base := d.prefix + "."
	err := d.c.listBlobs(context.Background(), base, container.ListBlobsInclude{}, func(item *container.BlobItem) {
		rest := strings.TrimPrefix(*item.Name, base)
		if rest == "" || strings.Trim(rest, "0123456789") != "" {
			return
		}
		if seg, err := strconv.ParseInt(rest, 10, 64); err == nil {
			segs = append(segs, seg)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing the segment blobs: %w", err)
	}
	return segs, nil
}

// Close implements faster.Device: it waits for the calls in flight.
// Later calls fail with faster.ErrClosed; closing again is no error.
func (d *PageBlobDevice) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.ops.Wait()
	return nil
}

var _ faster.Device = (*PageBlobDevice)(nil)
