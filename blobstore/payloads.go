package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// PayloadPrefix is the folder of a task hub's container holding the large
// payloads of the Event Hubs transport.
const PayloadPrefix = "payloads/"

// ErrPayloadNotFound is wrapped by PayloadStore.Get for a missing blob.
var ErrPayloadNotFound = errors.New("payload blob not found")

// PayloadStore keeps the packets too large for an Event Hubs event (the
// eventhubs.BlobStore interface) as block blobs under payloads/ in a task
// hub's container. Each Put is one Put Blob (atomic: a reader sees all of
// a payload or none). Requests are retried as every request of the
// account is (RetryOptions).
type PayloadStore struct {
	c *Container
}

// NewPayloadStore returns the payload store of a task hub's container.
func NewPayloadStore(c *Container) *PayloadStore { return &PayloadStore{c: c} }

func (p *PayloadStore) blobName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return "", fmt.Errorf("blobstore: bad payload name %q", name)
	}
	return PayloadPrefix + name, nil
}

// Put writes a payload.
func (p *PayloadStore) Put(ctx context.Context, name string, data []byte) error {
	bn, err := p.blobName(name)
	if err != nil {
		return err
	}
	client := p.c.client.NewBlockBlobClient(bn)
	err = p.c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := client.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: put payload %s in %s: %w", bn, p.c.name, err)
	}
	return nil
}

// Get reads a payload; a missing one is an error wrapping
// ErrPayloadNotFound.
func (p *PayloadStore) Get(ctx context.Context, name string) ([]byte, error) {
	bn, err := p.blobName(name)
	if err != nil {
		return nil, err
	}
	client := p.c.client.NewBlockBlobClient(bn)
	var data []byte
	err = p.c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		resp, err := client.DownloadStream(ctx, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return &permanent{fmt.Errorf("%w: %w", ErrPayloadNotFound, err)}
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blobstore: get payload %s in %s: %w", bn, p.c.name, err)
	}
	return data, nil
}

// Delete deletes a payload; a missing one is no error.
func (p *PayloadStore) Delete(ctx context.Context, name string) error {
	bn, err := p.blobName(name)
	if err != nil {
		return err
	}
	client := p.c.client.NewBlockBlobClient(bn)
	err = p.c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := client.Delete(ctx, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: delete payload %s in %s: %w", bn, p.c.name, err)
	}
	return nil
}

// Sweep deletes the payloads under prefix (e.g. a task hub's id) last
// written before cutoff, and returns how many it deleted. Payloads are
// deleted once applied (or fetched), but a crash between the two leaves
// one behind; a payload older than the hubs' retention cannot be
// referenced by any event left, so a host may sweep with cutoff = now -
// retention.
func (p *PayloadStore) Sweep(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	var old []string
	err := p.c.listBlobs(ctx, PayloadPrefix+prefix, container.ListBlobsInclude{}, func(it *container.BlobItem) {
		if it.Properties != nil && it.Properties.LastModified != nil && it.Properties.LastModified.Before(cutoff) {
			old = append(old, strings.TrimPrefix(*it.Name, PayloadPrefix))
		}
	})
	if err != nil {
		return 0, fmt.Errorf("blobstore: sweep payloads %s in %s: %w", prefix, p.c.name, err)
	}
	for i, name := range old {
		if err := p.Delete(ctx, name); err != nil {
			return i, err
		}
	}
	return len(old), nil
}
