package azstorage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/netherite-go/netherite/core"
)

// Table limits: a binary property holds at most 64 KiB; one transaction
// at most 100 entities and 4 MiB.
const (
	maxInlineProperty = 60 * 1024
	maxBatchEntities  = 100
	maxBatchBytes     = 4 << 20
	sentinelRowKey    = "sentinel"
	entityRowKey      = "state"
)

var errConflict = errors.New("azstorage: history was changed by another worker (ETag mismatch)")

func rowKey(seq int) string { return fmt.Sprintf("%016X", seq) }

// history is an instance's current execution as stored in the History
// table.
type history struct {
	events      []*core.HistoryEvent
	executionID string
	// etag is the sentinel row's; empty if the instance has no history.
	etag azcore.ETag
	// checkpointAt is the sentinel's CheckpointCompletedTimestamp.
	checkpointAt time.Time
	// entity is an entity's encoded state (its "state" row).
	entity []byte
}

func isStatus(err error, codes ...int) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, c := range codes {
		if re.StatusCode == c {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	return isStatus(err, 404) || bloberror.HasCode(err, bloberror.BlobNotFound)
}

func odataString(s string) string {
	return "'" + stringsReplaceQuote(s) + "'"
}

func stringsReplaceQuote(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'', '\'')
		} else {
			out = append(out, s[i])
		}
	}
	return string(out)
}

// loadHistory reads an instance's history rows and sentinel.
func (b *Backend) loadHistory(ctx context.Context, instanceID string) (*history, error) {
	b.stats.historyLoads.Add(1)
	pk := escapeKey(instanceID)
	pager := b.history.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr("PartitionKey eq " + odataString(pk))})
	h := &history{}
	rows := map[int]aztables.EDMEntity{}
	count := -1
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("load history of %s: %w", instanceID, err)
		}
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("load history of %s: %w", instanceID, err)
			}
			if e.RowKey == sentinelRowKey {
				h.etag = azcore.ETag(e.ETag)
				h.executionID, _ = e.Properties["ExecutionId"].(string)
				if t, ok := e.Properties["CheckpointCompletedTimestamp"].(aztables.EDMDateTime); ok {
					h.checkpointAt = time.Time(t)
				}
				count = int(propInt(e.Properties["Count"]))
				continue
			}
			if e.RowKey == entityRowKey {
				if h.entity, err = b.readPayload(ctx, e.Properties, "State"); err != nil {
					return nil, fmt.Errorf("load entity %s: %w", instanceID, err)
				}
				continue
			}
			seq, err := strconv.ParseInt(e.RowKey, 16, 64)
			if err != nil {
				continue
			}
			rows[int(seq)] = e
		}
	}
	for i := 0; i < count; i++ {
		e, ok := rows[i]
		if !ok {
			return nil, fmt.Errorf("load history of %s: row %d of %d is missing", instanceID, i, count)
		}
		ev, err := b.decodeEventRow(ctx, e)
		if err != nil {
			return nil, fmt.Errorf("load history of %s: row %d: %w", instanceID, i, err)
		}
		h.events = append(h.events, ev)
	}
	return h, nil
}

func propInt(v any) int64 {
	switch x := v.(type) {
	case aztables.EDMInt64:
		return int64(x)
	case int32:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

func (b *Backend) decodeEventRow(ctx context.Context, e aztables.EDMEntity) (*core.HistoryEvent, error) {
	var body []byte
	if name, ok := e.Properties["EventBlob"].(string); ok && name != "" {
		var err error
		if body, err = b.getBlob(ctx, name); err != nil {
			return nil, err
		}
	} else {
		bin, _ := e.Properties["Event"].(aztables.EDMBinary)
		body = bin
	}
	return core.UnmarshalHistoryEvent(body)
}

// writeEntity checkpoints an entity: its state row and the sentinel, in
// one transaction conditional on the sentinel's ETag.
func (b *Backend) writeEntity(ctx context.Context, id string, h *history, state []byte) error {
	pk := escapeKey(id)
	props := map[string]any{}
	if err := b.payloadProps(ctx, props, "State", fmt.Sprintf("%s/entity-%d.gz", pk, time.Now().UnixNano()), state); err != nil {
		return err
	}
	raw, err := json.Marshal(aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: pk, RowKey: entityRowKey}, Properties: props})
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	last, err := h.sentinelAction(pk, "", 0, now)
	if err != nil {
		return err
	}
	actions := []aztables.TransactionAction{{ActionType: aztables.TransactionTypeInsertReplace, Entity: raw}, last}
	if _, err := b.history.SubmitTransaction(ctx, actions, nil); err != nil {
		if batchConflict(err) {
			return errConflict
		}
		return fmt.Errorf("write entity %s: %w", id, err)
	}
	h.etag, h.checkpointAt = "", now
	return nil
}

// writeHistory checkpoints an instance's history: rows from index `from`
// of events (earlier ones are stored already), then the sentinel,
// conditional on h.etag (or created if h has none). Rows go first and the
// sentinel, which carries the count readers trust, last: a checkpoint that
// loses the ETag race leaves only rows beyond the count, which readers
// ignore and the winner overwrites. It returns errConflict if another
// worker checkpointed the instance since h was read.
func (b *Backend) writeHistory(ctx context.Context, instanceID string, h *history, events []*core.HistoryEvent, from int) error {
	pk := escapeKey(instanceID)
	var actions []aztables.TransactionAction
	var sizes []int
	for i := from; i < len(events); i++ {
		body, err := core.MarshalHistoryEvent(events[i])
		if err != nil {
			return fmt.Errorf("encode history event %d of %s: %w", i, instanceID, err)
		}
		props := map[string]any{"ExecutionId": h.executionID, "EventType": events[i].Kind.String()}
		if len(body) > maxInlineProperty {
			name := fmt.Sprintf("%s/history-%s-%d.gz", pk, h.executionID, i)
			if err := b.putBlob(ctx, name, body); err != nil {
				return fmt.Errorf("history event %d of %s: %w", i, instanceID, err)
			}
			props["EventBlob"] = name
		} else {
			props["Event"] = aztables.EDMBinary(body)
		}
		raw, err := json.Marshal(aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: pk, RowKey: rowKey(i)}, Properties: props})
		if err != nil {
			return err
		}
		actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeInsertReplace, Entity: raw})
		sizes = append(sizes, len(raw)+200)
	}
	now := time.Now().UTC()
	last, err := h.sentinelAction(pk, h.executionID, len(events), now)
	if err != nil {
		return err
	}
	actions = append(actions, last)
	sizes = append(sizes, len(last.Entity)+200)
	for _, r := range batches(sizes, maxBatchEntities, maxBatchBytes) {
		if _, err := b.history.SubmitTransaction(ctx, actions[r[0]:r[1]], nil); err != nil {
			if r[1] == len(actions) && batchConflict(err) {
				return errConflict
			}
			return fmt.Errorf("write history of %s: %w", instanceID, err)
		}
	}
	// The new ETag is not returned by a batch: read it back only when the
	// session is kept in memory (extended sessions).
	h.etag, h.checkpointAt = "", now
	return nil
}

// batchConflict reports whether a failed transaction failed on the
// sentinel's condition (the only action that can: rows are upserts). The
// service answers a failed batch with 202 and the failing action's status
// inside the multipart body.
func batchConflict(err error) bool {
	if isStatus(err, 409, 412) {
		return true
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	msg := err.Error()
	for _, code := range []string{string(aztables.UpdateConditionNotSatisfied), string(aztables.EntityAlreadyExists),
		"HTTP/1.1 409", "HTTP/1.1 412"} {
		if strings.Contains(msg, code) {
			return true
		}
	}
	return false
}

// sentinelETag reads the sentinel row's ETag (after a checkpoint, for an
// extended session).
func (b *Backend) sentinelETag(ctx context.Context, instanceID string) (azcore.ETag, error) {
	r, err := b.history.GetEntity(ctx, escapeKey(instanceID), sentinelRowKey, nil)
	if err != nil {
		return "", err
	}
	return r.ETag, nil
}

// deleteHistory deletes every row (and blob) of an instance.
func (b *Backend) deleteHistory(ctx context.Context, instanceID string) error {
	pk := escapeKey(instanceID)
	pager := b.history.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr("PartitionKey eq " + odataString(pk)),
		Select: to.Ptr("PartitionKey,RowKey")})
	var keys []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("purge history of %s: %w", instanceID, err)
		}
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := json.Unmarshal(raw, &e); err == nil {
				keys = append(keys, e.RowKey)
			}
		}
	}
	sizes := make([]int, len(keys))
	for _, r := range batches(sizes, maxBatchEntities, maxBatchBytes) {
		var actions []aztables.TransactionAction
		for _, k := range keys[r[0]:r[1]] {
			raw, _ := json.Marshal(aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: pk, RowKey: k}})
			actions = append(actions, aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: raw,
				IfMatch: to.Ptr(azcore.ETagAny)})
		}
		if _, err := b.history.SubmitTransaction(ctx, actions, nil); err != nil && !isNotFound(err) {
			return fmt.Errorf("purge history of %s: %w", instanceID, err)
		}
	}
	return b.deleteBlobs(ctx, pk+"/")
}

// sentinelAction writes the sentinel row of partition key pk, carrying
// the execution and event count readers trust and the checkpoint time now:
// added if h has no ETag (a new instance or entity), else replaced
// conditional on it.
func (h *history) sentinelAction(pk, executionID string, count int, now time.Time) (aztables.TransactionAction, error) {
	sentinel, err := json.Marshal(aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: pk, RowKey: sentinelRowKey},
		Properties: map[string]any{"ExecutionId": executionID, "Count": aztables.EDMInt64(count),
			"CheckpointCompletedTimestamp": aztables.EDMDateTime(now)}})
	if err != nil {
		return aztables.TransactionAction{}, err
	}
	if h.etag == "" {
		return aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: sentinel}, nil
	}
	etag := h.etag
	return aztables.TransactionAction{ActionType: aztables.TransactionTypeUpdateReplace, Entity: sentinel, IfMatch: &etag}, nil
}
