package azstorage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// instanceRow is an instance's row in the Instances table, which status
// queries and listings read (they never read history).
type instanceRow struct {
	ID               string
	Name, Version    string
	ExecutionID      string
	Status           core.RuntimeStatus
	CreatedAt        time.Time
	LastUpdatedAt    time.Time
	ScheduledStartAt time.Time
	Parent           string
	Tags             map[string]string
	Input, Output    []byte
	CustomStatus     []byte
	Failure          *core.FailureDetails
	// Entities: their state is the row's Input.
	IsEntity     bool
	EntityExists bool
	LockedBy     string
	QueueLength  int
	etag         azcore.ETag
}

// payloadProps sets a payload property inline, or in a blob if large.
func (b *Backend) payloadProps(ctx context.Context, props map[string]any, name, blobName string, v []byte) error {
	if len(v) > maxInlineProperty {
		if err := b.putBlob(ctx, blobName, v); err != nil {
			return err
		}
		props[name+"Blob"] = blobName
		props[name] = aztables.EDMBinary(nil)
		return nil
	}
	props[name] = aztables.EDMBinary(v)
	props[name+"Blob"] = ""
	return nil
}

func (b *Backend) readPayload(ctx context.Context, props map[string]any, name string) ([]byte, error) {
	if n, _ := props[name+"Blob"].(string); n != "" {
		return b.getBlob(ctx, n)
	}
	v, _ := props[name].(aztables.EDMBinary)
	if len(v) == 0 {
		return nil, nil
	}
	return []byte(v), nil
}

// rowEntity encodes the fields of r that a writer sets. With full, the
// whole row (input, tags...) as written at creation; otherwise only the
// progress fields, merged into the existing row.
func (b *Backend) rowEntity(ctx context.Context, r *instanceRow, full bool) ([]byte, error) {
	pk := escapeKey(r.ID)
	props := map[string]any{
		"ExecutionId":     r.ExecutionID,
		"RuntimeStatus":   r.Status.String(),
		"LastUpdatedTime": nanos(r.LastUpdatedAt),
	}
	blob := func(what string) string { return fmt.Sprintf("%s/instance-%s-%s.gz", pk, r.ExecutionID, what) }
	if err := b.payloadProps(ctx, props, "Output", blob("output"), r.Output); err != nil {
		return nil, err
	}
	if err := b.payloadProps(ctx, props, "CustomStatus", blob("custom"), r.CustomStatus); err != nil {
		return nil, err
	}
	var failure []byte
	if r.Failure != nil {
		var err error
		if failure, err = core.MarshalFailureDetails(r.Failure); err != nil {
			return nil, err
		}
	}
	props["Failure"] = aztables.EDMBinary(failure)
	if r.IsEntity || full {
		if err := b.payloadProps(ctx, props, "Input", blob("input"), r.Input); err != nil {
			return nil, err
		}
	}
	if r.IsEntity {
		props["IsEntity"] = true
		props["EntityExists"] = r.EntityExists
		props["LockedBy"] = r.LockedBy
		props["QueueLength"] = int32(r.QueueLength)
		props["Name"] = r.Name
	}
	if full {
		tags, _ := json.Marshal(r.Tags)
		props["Name"], props["Version"], props["ParentInstanceId"] = r.Name, r.Version, r.Parent
		props["Tags"] = string(tags)
		props["CreatedTime"] = nanos(r.CreatedAt)
		props["IsEntity"] = r.IsEntity
		props["ScheduledStartTime"] = nanos(r.ScheduledStartAt)
	}
	return json.Marshal(aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: pk, RowKey: ""}, Properties: props})
}

// putInstance writes r: the whole row (replacing any) if full, else a
// merge of its progress fields.
func (b *Backend) putInstance(ctx context.Context, r *instanceRow, full bool) error {
	raw, err := b.rowEntity(ctx, r, full)
	if err != nil {
		return fmt.Errorf("instance row of %s: %w", r.ID, err)
	}
	mode := aztables.UpdateModeMerge
	if full {
		mode = aztables.UpdateModeReplace
	}
	if _, err := b.instances.UpsertEntity(ctx, raw, &aztables.UpsertEntityOptions{UpdateMode: mode}); err != nil {
		return fmt.Errorf("write instance row of %s: %w", r.ID, err)
	}
	b.notify(r.ID, r.Status)
	return nil
}

// getInstance reads an instance row; nil if there is none.
func (b *Backend) getInstance(ctx context.Context, id string, payloads bool) (*instanceRow, error) {
	resp, err := b.instances.GetEntity(ctx, escapeKey(id), "", nil)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read instance row of %s: %w", id, err)
	}
	var e aztables.EDMEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return nil, fmt.Errorf("read instance row of %s: %w", id, err)
	}
	r, err := b.decodeRow(ctx, e, payloads)
	if err != nil {
		return nil, err
	}
	r.etag = resp.ETag
	return r, nil
}

func (b *Backend) decodeRow(ctx context.Context, e aztables.EDMEntity, payloads bool) (*instanceRow, error) {
	p := e.Properties
	r := &instanceRow{ID: unescapeKey(e.PartitionKey), etag: azcore.ETag(e.ETag)}
	r.Name, _ = p["Name"].(string)
	r.Version, _ = p["Version"].(string)
	r.ExecutionID, _ = p["ExecutionId"].(string)
	r.Parent, _ = p["ParentInstanceId"].(string)
	if s, _ := p["RuntimeStatus"].(string); s != "" {
		st, err := core.ParseRuntimeStatus(s)
		if err != nil {
			return nil, fmt.Errorf("instance row of %s: %w", r.ID, err)
		}
		r.Status = st
	}
	tm := func(k string) time.Time {
		if n := propInt(p[k]); n != 0 {
			return time.Unix(0, n).UTC()
		}
		return time.Time{}
	}
	r.CreatedAt, r.LastUpdatedAt, r.ScheduledStartAt = tm("CreatedTime"), tm("LastUpdatedTime"), tm("ScheduledStartTime")
	if s, _ := p["Tags"].(string); s != "" && s != "null" {
		_ = json.Unmarshal([]byte(s), &r.Tags)
	}
	r.IsEntity, _ = p["IsEntity"].(bool)
	r.EntityExists, _ = p["EntityExists"].(bool)
	r.LockedBy, _ = p["LockedBy"].(string)
	r.QueueLength = int(propInt(p["QueueLength"]))
	if f, _ := p["Failure"].(aztables.EDMBinary); len(f) > 0 {
		fd, err := core.UnmarshalFailureDetails(f)
		if err != nil {
			return nil, fmt.Errorf("instance row of %s: %w", r.ID, err)
		}
		r.Failure = fd
	}
	if payloads {
		var err error
		if r.Input, err = b.readPayload(ctx, p, "Input"); err != nil {
			return nil, err
		}
		if r.Output, err = b.readPayload(ctx, p, "Output"); err != nil {
			return nil, err
		}
		if r.CustomStatus, err = b.readPayload(ctx, p, "CustomStatus"); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// nanos stores a time as Unix nanoseconds: the table service's DateTime
// keeps only 100 ns ticks, and clients compare times exactly.
func nanos(t time.Time) aztables.EDMInt64 {
	if t.IsZero() {
		return 0
	}
	return aztables.EDMInt64(t.UnixNano())
}

func (b *Backend) toStatus(r *instanceRow, payloads bool) *durable.OrchestrationStatus {
	s := &durable.OrchestrationStatus{InstanceID: r.ID, ExecutionID: r.ExecutionID, Name: r.Name, Version: r.Version,
		RuntimeStatus: r.Status, CreatedAt: r.CreatedAt, LastUpdatedAt: r.LastUpdatedAt,
		ScheduledStartAt: r.ScheduledStartAt, ParentInstanceID: r.Parent, Tags: r.Tags, Converter: b.conv}
	if r.Status == core.StatusFailed {
		s.Failure = r.Failure
	}
	if payloads {
		s.Input, s.Output, s.CustomStatus = r.Input, r.Output, r.CustomStatus
	}
	return s
}
