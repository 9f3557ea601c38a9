package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/netherite-go/netherite/faster"
)

// Names of the task hub layout (DESIGN.md §5):
//
//	container <hub>-storage
//	  taskhubparameters.json
//	  <hub GUID>/pNN/commit-lease                  lease blob; its content is commit-log.meta
//	  <hub GUID>/pNN/commit-log/commit-log.NNNNNN  commit log segments (page blobs)
//	  <hub GUID>/pNN/store/store.NNNNNN            KV log segments (page blobs)
//	  <hub GUID>/pNN/store/...                     KV checkpoint documents (block blobs)
//	  <hub GUID>/pNN/last-checkpoint.json, ...     other partition documents (block blobs)
//	  <hub GUID>/loadmonitor/monitor-lease         the load monitor's lease blob; its content is its record (monitor.go)
const (
	TaskHubParametersBlob = "taskhubparameters.json"
	ContainerSuffix       = "-storage"
	LeaseBlob             = "commit-lease"
	CommitLogMetaDocument = "commit-log.meta"
	CommitLogFolder       = "commit-log"
	StoreFolder           = "store"
)

// ContainerName returns the container of a task hub: "<hub>-storage",
// lower-cased, checked against the container naming rules.
func ContainerName(hub string) (string, error) {
	if hub == "" {
		return "", errors.New("blobstore: empty task hub name")
	}
	name := strings.ToLower(hub) + ContainerSuffix
	if err := ValidateContainerName(name); err != nil {
		return "", fmt.Errorf("blobstore: task hub name %q cannot name a container (%q): %w", hub, name, errors.Unwrap(err))
	}
	return name, nil
}

// errContainerRule wraps the broken rule, for ContainerName to reuse.
type errContainerRule struct{ name, rule string }

func (e *errContainerRule) Error() string {
	return fmt.Sprintf("blobstore: invalid container name %q: %s", e.name, e.rule)
}
func (e *errContainerRule) Unwrap() error { return errors.New(e.rule) }

// ValidateContainerName checks the Azure container naming rules: 3 to 63
// characters, lower-case letters, digits and hyphens, starting and ending
// with a letter or digit, no two hyphens in a row.
func ValidateContainerName(name string) error {
	rule := ""
	switch {
	case len(name) < 3 || len(name) > 63:
		rule = fmt.Sprintf("it has %d characters; a container name has 3 to 63", len(name))
	case name[0] == '-' || name[len(name)-1] == '-':
		rule = "it must start and end with a letter or digit"
	case strings.Contains(name, "--"):
		rule = "it must not contain two hyphens in a row"
	default:
		for _, c := range name {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				rule = fmt.Sprintf("character %q is not allowed (only lower-case letters, digits and hyphens)", c)
				break
			}
		}
	}
	if rule != "" {
		return &errContainerRule{name, rule}
	}
	return nil
}

// TaskHubContainer returns the container of a task hub (no I/O).
func (a *Account) TaskHubContainer(hub string) (*Container, error) {
	name, err := ContainerName(hub)
	if err != nil {
		return nil, err
	}
	return a.Container(name), nil
}

// CreateTaskHubParameters creates the container if needed and writes
// taskhubparameters.json if it does not exist yet: the first writer wins
// (If-None-Match: *). It returns the document now stored and whether this
// call created it; a loser gets the winner's document.
func CreateTaskHubParameters(ctx context.Context, c *Container, data []byte) (stored []byte, created bool, err error) {
	if err := c.CreateIfNotExists(ctx); err != nil {
		return nil, false, err
	}
	client := c.client.NewBlockBlobClient(TaskHubParametersBlob)
	exists := false
	_, err = c.acct.retry.doTracked(ctx, nil, func(ctx context.Context) error {
		_, err := upload(ctx, client, data, &blockblob.UploadOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
			exists = true
			return nil
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("blobstore: create %s/%s: %w", c.name, TaskHubParametersBlob, err)
	}
	if !exists {
		return bytes.Clone(data), true, nil
	}
	stored, err = ReadTaskHubParameters(ctx, c)
	if err != nil {
		return nil, false, err
	}
	// An earlier attempt of this call may have been the one that created
	// it (the document carries a fresh GUID, so equal means ours).
	return stored, bytes.Equal(stored, data), nil
}

// ReadTaskHubParameters reads taskhubparameters.json; a missing one (or a
// missing container) gives an error wrapping faster.ErrNotExist.
func ReadTaskHubParameters(ctx context.Context, c *Container) ([]byte, error) {
	m := &BlobMeta{c: c, retry: c.acct.retry}
	data, _, err := m.download(c.client.NewBlockBlobClient(TaskHubParametersBlob))
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, fmt.Errorf("blobstore: read %s/%s: %w", c.name, TaskHubParametersBlob, faster.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: read %s/%s: %w", c.name, TaskHubParametersBlob, short(err))
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// PartitionPrefix returns the folder of a partition: "<hub GUID>/pNN/".
func PartitionPrefix(hubGUID string, partition int) string {
	return fmt.Sprintf("%s/p%02d/", hubGUID, partition)
}

// PartitionOptions configure OpenPartition.
type PartitionOptions struct {
	Lease          LeaseOptions
	SegmentSize    int64 // of both devices (default 64 MiB)
	MaxConcurrency int   // per device (default 16)
}

// Partition is one partition's storage on blobs, in the shape the
// partitions package takes (partitions.OpenDurableStore(name, LogDevice,
// Meta, StoreOptions{KVDevice: KVDevice, ...})), everything fenced by the
// partition lease.
type Partition struct {
	Index     int
	Prefix    string // "<hub GUID>/pNN/"
	Lease     *Lease
	LogDevice *PageBlobDevice // commit-log/commit-log.NNNNNN
	KVDevice  *PageBlobDevice // store/store.NNNNNN
	// Meta holds the partition's documents under Prefix; the commit log's
	// "commit-log.meta" is the content of the lease blob.
	Meta *BlobMeta
}

// OpenPartition acquires the lease of a partition (waiting, as long as
// ctx allows, for another owner to release it or for it to expire) and
// returns its devices and metadata store.
func OpenPartition(ctx context.Context, c *Container, hubGUID string, index int, opts PartitionOptions) (*Partition, error) {
	if hubGUID == "" || strings.ContainsAny(hubGUID, "/\\") || index < 0 {
		return nil, fmt.Errorf("blobstore: partition %d of task hub %q in %s: invalid task hub GUID or partition index", index, hubGUID, c.name)
	}
	prefix := PartitionPrefix(hubGUID, index)
	l, err := AcquireLease(ctx, c, prefix+LeaseBlob, opts.Lease)
	if err != nil {
		return nil, fmt.Errorf("blobstore: partition %d: %w", index, err)
	}
	p := &Partition{Index: index, Prefix: prefix, Lease: l}
	dopts := DeviceOptions{SegmentSize: opts.SegmentSize, MaxConcurrency: opts.MaxConcurrency, Lease: l}
	if p.LogDevice, err = NewPageBlobDevice(c, prefix+CommitLogFolder+"/"+CommitLogFolder, dopts); err == nil {
		if p.KVDevice, err = NewPageBlobDevice(c, prefix+StoreFolder+"/"+StoreFolder, dopts); err == nil {
			p.Meta, err = NewBlobMeta(c, prefix, MetaOptions{Lease: l, LeaseDocument: CommitLogMetaDocument})
		}
	}
	if err != nil {
		l.Release()
		return nil, fmt.Errorf("blobstore: partition %d: %w", index, err)
	}
	return p, nil
}

// Close closes the devices (closing them again, as the store that used
// them does, is no error) and releases the lease.
func (p *Partition) Close() error {
	p.LogDevice.Close()
	p.KVDevice.Close()
	return p.Lease.Release()
}

// Abandon closes the devices and abandons the lease without releasing it
// (Lease.Abandon), as a host that dies would: the next owner gets the
// partition when the lease expires. For tests that kill hosts.
func (p *Partition) Abandon() {
	p.Lease.Abandon()
	p.LogDevice.Close()
	p.KVDevice.Close()
}
