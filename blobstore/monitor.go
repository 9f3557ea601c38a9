package blobstore

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/netherite-go/netherite/faster"
)

// The load monitor's blobs, next to the partitions' folders:
//
//	<hub GUID>/loadmonitor/monitor-lease   lease blob of the load monitor (a singleton: the
//	                                       host holding it runs the monitor); its content is
//	                                       the monitor's record, written conditioned on the lease
const (
	MonitorFolder         = "loadmonitor"
	MonitorLeaseBlob      = "monitor-lease"
	MonitorRecordDocument = "record"
)

// MonitorPrefix returns the folder of the load monitor: "<hub GUID>/loadmonitor/".
func MonitorPrefix(hubGUID string) string { return hubGUID + "/" + MonitorFolder + "/" }

// Monitor is this host's hold on a task hub's load monitor: its lease,
// renewed in the background, and the record it alone may write. The
// record is the lease blob's content (as the commit log's metadata is a
// partition's), so that the service itself rejects a write by a host
// whose lease has expired or was taken over.
type Monitor struct {
	Lease *Lease
	meta  *BlobMeta
}

// AcquireMonitor acquires the load monitor's lease of the task hub
// hubGUID in c, waiting (polling every opts.PollEvery) while another host
// holds it, for as long as ctx allows.
func AcquireMonitor(ctx context.Context, c *Container, hubGUID string, opts LeaseOptions) (*Monitor, error) {
	if hubGUID == "" || strings.ContainsAny(hubGUID, "/\\") {
		return nil, fmt.Errorf("blobstore: load monitor of task hub %q in %s: invalid task hub GUID", hubGUID, c.name)
	}
	prefix := MonitorPrefix(hubGUID)
	l, err := AcquireLease(ctx, c, prefix+MonitorLeaseBlob, opts)
	if err != nil {
		return nil, fmt.Errorf("blobstore: load monitor: %w", err)
	}
	m, err := NewBlobMeta(c, prefix, MetaOptions{Lease: l, LeaseDocument: MonitorRecordDocument})
	if err != nil {
		l.Release()
		return nil, fmt.Errorf("blobstore: load monitor: %w", err)
	}
	return &Monitor{Lease: l, meta: m}, nil
}

// WriteRecord replaces the record, conditioned on the lease: once the
// lease is lost, released or abandoned (or the service says another owner
// holds it) it fails, wrapping ErrLeaseLost.
func (m *Monitor) WriteRecord(ctx context.Context, data []byte) error {
	if err := m.meta.writeLeaseDoc(ctx, data, true); err != nil {
		return fmt.Errorf("blobstore: load monitor: write the record (%s/%s): %w", m.Lease.c.name, m.Lease.name, err)
	}
	return nil
}

// Release releases the lease, so that another host takes the monitor at
// once.
func (m *Monitor) Release() error { return m.Lease.Release() }

// ReadMonitorRecord reads the load monitor's record of task hub hubGUID
// (no lease needed); one never written (or a missing container) gives an
// error wrapping faster.ErrNotExist.
func ReadMonitorRecord(ctx context.Context, c *Container, hubGUID string) ([]byte, error) {
	name := MonitorPrefix(hubGUID) + MonitorLeaseBlob
	client := c.client.NewBlockBlobClient(name)
	var data []byte
	var found bool
	err := c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		resp, err := client.DownloadStream(ctx, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// The lease blob is created empty by the first acquire; the
		// metadata says a record was written.
		found = false
		for k, v := range resp.Metadata {
			if strings.EqualFold(k, leaseDocKey) && v != nil && *v == MonitorRecordDocument {
				found = true
			}
		}
		data, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blobstore: read the load monitor's record %s/%s: %w", c.name, name, short(err))
	}
	if !found {
		return nil, fmt.Errorf("blobstore: read the load monitor's record %s/%s: %w", c.name, name, faster.ErrNotExist)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}
