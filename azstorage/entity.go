package azstorage

import (
	"context"
	"errors"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// processEntity runs a batch of requests on an entity and checkpoints it
// like an orchestration episode: outgoing messages, then the state row and
// sentinel (ETag-conditional), then the instance row, then the consumed
// messages are deleted. (DTFx runs entities as orchestrations that
// continue as new with their state; one state row per entity costs the
// same kinds of requests.)
func (b *Backend) processEntity(ctx context.Context, id string, msgs []*received) {
	eid, err := core.ParseEntityID(id)
	if err != nil {
		b.log.Warn("azstorage: message for an invalid entity id dropped", "instance", id, "err", err)
		b.deleteAll(ctx, msgs)
		return
	}
	var consumed []*received
	var events []*core.HistoryEvent
	for _, m := range msgs {
		if b.redelayIfEarly(ctx, m) {
			continue
		}
		consumed = append(consumed, m)
		switch m.msg.Event.Kind {
		case core.EventEntityOperationCalled, core.EventEntityOperationSignaled,
			core.EventEntityLockRequested, core.EventEntityLockReleased:
			events = append(events, m.msg.Event)
		}
	}
	if len(events) == 0 {
		b.deleteAll(ctx, consumed)
		return
	}
	h, err := b.loadHistory(ctx, id)
	if err != nil {
		b.log.Warn("azstorage: load entity", "instance", id, "err", err)
		b.abandonAll(ctx, consumed, outOfOrderDelay)
		return
	}
	var st *core.EntityState
	if len(h.entity) > 0 {
		if st, err = core.UnmarshalEntityState(h.entity); err != nil {
			b.log.Error("azstorage: decode entity state", "instance", id, "err", err)
			b.abandonAll(ctx, consumed, outOfOrderDelay)
			return
		}
	}
	res := b.executor.ExecuteEntity(&durable.EntityBatch{ID: eid, State: st, Messages: events, Now: time.Now()})
	out := outgoing{control: res.Messages}
	if err := b.sendAll(ctx, &out); err != nil {
		b.log.Warn("azstorage: send entity messages", "instance", id, "err", err)
		b.abandonAll(ctx, consumed, outOfOrderDelay)
		return
	}
	var enc []byte
	if res.State != nil {
		if enc, err = core.MarshalEntityState(res.State); err != nil {
			b.log.Error("azstorage: encode entity state", "instance", id, "err", err)
			b.abandonAll(ctx, consumed, outOfOrderDelay)
			return
		}
	}
	if err := b.writeEntity(ctx, id, h, enc); err != nil {
		if errors.Is(err, errConflict) {
			b.stats.conflicts.Add(1)
		} else {
			b.log.Warn("azstorage: write entity", "instance", id, "err", err)
		}
		b.abandonAll(ctx, consumed, outOfOrderDelay)
		return
	}
	b.stats.entityBatches.Add(1)
	row := entityRow(id, eid, res.State)
	if err := b.putInstance(ctx, row, false); err != nil {
		b.log.Warn("azstorage: write entity row", "instance", id, "err", err)
	}
	b.deleteAll(ctx, consumed)
}

func entityRow(id string, eid core.EntityID, st *core.EntityState) *instanceRow {
	row := &instanceRow{ID: id, Name: eid.Name, IsEntity: true, Status: core.StatusRunning, LastUpdatedAt: time.Now().UTC()}
	if st != nil {
		row.EntityExists, row.LockedBy, row.QueueLength = st.Exists, st.LockedBy, len(st.Queue)
		if st.Exists {
			row.Input = st.Value
		}
	}
	return row
}
