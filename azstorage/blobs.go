package azstorage

import (
	"bytes"
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// putBlob stores a gzipped payload in the large-messages container.
func (b *Backend) putBlob(ctx context.Context, name string, body []byte) error {
	_, err := b.clients.blobs.UploadBuffer(ctx, b.largeContainer, name, gzipBytes(body), nil)
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", name, err)
	}
	return nil
}

func (b *Backend) getBlob(ctx context.Context, name string) ([]byte, error) {
	r, err := b.clients.blobs.DownloadStream(ctx, b.largeContainer, name, nil)
	if err != nil {
		return nil, fmt.Errorf("download blob %s: %w", name, err)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("download blob %s: %w", name, err)
	}
	return gunzipBytes(buf.Bytes())
}

// deleteBlobs deletes the large payloads of an instance (names under
// prefix).
func (b *Backend) deleteBlobs(ctx context.Context, prefix string) error {
	pager := b.clients.blobs.NewListBlobsFlatPager(b.largeContainer, &container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list blobs %s: %w", prefix, err)
		}
		for _, it := range page.Segment.BlobItems {
			if _, err := b.clients.blobs.DeleteBlob(ctx, b.largeContainer, *it.Name, nil); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete blob %s: %w", *it.Name, err)
			}
		}
	}
	return nil
}
