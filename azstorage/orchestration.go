package azstorage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// outOfOrderDelay is how long a message that overtook its checkpoint stays
// invisible before it is tried again.
const outOfOrderDelay = time.Second

// maxOutOfOrderDequeues is how many times a response that overtook its
// checkpoint is put back before it is delivered anyway (DTFx: 5).
const maxOutOfOrderDequeues = 5

// maxInlineContinues bounds the continue-as-new executions one work item
// runs; after that the next start goes through the control queue.
const maxInlineContinues = 20

// processOrchestration runs one episode of an orchestration over a batch
// of its messages and checkpoints it: outgoing messages first, then the
// history rows and sentinel (ETag-conditional), then the instance row,
// then the consumed messages are deleted.
func (b *Backend) processOrchestration(ctx context.Context, id string, msgs []*received) {
	var h *history
	var cursor *durable.Cursor
	if c := b.takeCached(id); c != nil {
		h, cursor = c.h, c.cursor
	} else {
		var err error
		if h, err = b.loadHistory(ctx, id); err != nil {
			b.log.Warn("azstorage: load history", "instance", id, "err", err)
			b.abandonAll(ctx, msgs, outOfOrderDelay)
			return
		}
	}
	release := func() { cursor.Release() }

	var consumed, retry []*received
	retryDelay := outOfOrderDelay
	var events []*core.HistoryEvent
	var out outgoing
	fresh := false // a new execution starts in this batch
	var start *core.HistoryEvent
	var instRow *instanceRow
	rowRead := false
	readRow := func() *instanceRow {
		if !rowRead {
			rowRead = true
			r, err := b.getInstance(ctx, id, false)
			if err != nil {
				b.log.Warn("azstorage: read instance row", "instance", id, "err", err)
			}
			instRow = r
		}
		return instRow
	}
	current := func() string { return h.executionID }
	live := func() bool { return (len(h.events) > 0 || fresh) && !ended(h.events) }
	undeliverable := func(m *core.TaskMessage) {
		for _, r := range core.UndeliverableReply(m) {
			out.control = append(out.control, r)
		}
	}

	// Starts first: a message that came in the same batch as the start
	// of its instance is not held back for it.
	slices.SortStableFunc(msgs, func(x, y *received) int {
		return cmpBool(y.msg.Event.Kind == core.EventExecutionStarted, x.msg.Event.Kind == core.EventExecutionStarted)
	})
	for _, m := range msgs {
		if b.redelayIfEarly(ctx, m) {
			continue
		}
		e := m.msg.Event
		switch {
		case e.Kind == core.EventExecutionStarted:
			switch {
			case e.ExecutionID == current() && (len(h.events) > 0 || fresh):
				consumed = append(consumed, m) // a duplicate
			case e.Parent != nil && live() && !ended(events):
				// A sub-orchestration whose id is taken by a running instance.
				reply := core.NewEvent(core.EventSubOrchestrationFailed, time.Now().UTC())
				reply.TaskScheduledID = e.Parent.TaskScheduledID
				reply.Failure = &core.FailureDetails{Type: "InstanceExists",
					Message: "cannot start sub-orchestration " + id + ": an instance with that id is running"}
				out.control = append(out.control, &core.TaskMessage{Target: core.Instance{InstanceID: e.Parent.InstanceID,
					ExecutionID: e.Parent.ExecutionID}, Event: reply})
				consumed = append(consumed, m)
			default:
				if !e.FireAt.IsZero() || e.Parent == nil {
					// A client's start: the instance row says whether it is
					// still wanted (the client may have terminated a
					// scheduled start, or replaced the instance since).
					if r := readRow(); r != nil && r.ExecutionID != e.ExecutionID {
						consumed = append(consumed, m)
						continue
					} else if r != nil && r.Status.IsTerminal() && e.Parent == nil {
						consumed = append(consumed, m)
						continue
					}
				}
				// A new execution replaces the current one.
				cursor.Release()
				cursor = nil
				h = &history{executionID: e.ExecutionID, etag: h.etag, checkpointAt: h.checkpointAt}
				fresh, start = true, e
				events = []*core.HistoryEvent{e}
				consumed = append(consumed, m)
			}
		case !live():
			if len(h.events) == 0 && !fresh {
				// No execution yet: a message that overtook the start of
				// its instance waits for it; one for an instance that does
				// not exist is dropped, as in DTFx.
				if r := readRow(); r != nil && !r.IsEntity && !r.Status.IsTerminal() {
					retry = append(retry, m)
					if d := time.Until(r.ScheduledStartAt); d > retryDelay {
						retryDelay = d // the start is not due before then
					}
					continue
				}
			}
			undeliverable(m.msg)
			consumed = append(consumed, m)
		case m.msg.Target.ExecutionID != "" && m.msg.Target.ExecutionID != current():
			undeliverable(m.msg) // for an earlier execution
			consumed = append(consumed, m)
		case isCompletion(e.Kind) && !scheduled(h.events, e.TaskScheduledID) && !scheduled(events, e.TaskScheduledID) &&
			m.env.Sent.After(h.checkpointAt) && m.dequeues <= maxOutOfOrderDequeues:
			// The response overtook the checkpoint that scheduled its
			// task (messages are sent before history is written): try
			// again later. After a few tries it is taken as it is (a
			// zombie: the executor ignores a response to nothing).
			b.stats.outOfOrder.Add(1)
			retry = append(retry, m)
		default:
			events = append(events, e)
			consumed = append(consumed, m)
		}
	}
	if len(retry) > 0 {
		b.abandonAll(ctx, retry, retryDelay)
	}
	if len(events) == 0 {
		if ended(h.events) {
			b.repairEndedRow(ctx, id, h)
		}
		b.finish(ctx, id, h, cursor, &out, consumed)
		return
	}

	from := len(h.events)
	if fresh {
		from = 0
	}
	res := b.executor.Execute(&durable.Episode{InstanceID: id, History: h.events, NewEvents: events, Now: time.Now(),
		Cursor: cursor, KeepCursor: b.cfg.ExtendedSessions})
	cursor = res.Cursor
	out.add(res)
	all := append(h.events[:len(h.events):len(h.events)], res.NewEvents...)
	final := res
	for n := 0; final.ContinueAsNew != nil; n++ {
		c := final.ContinueAsNew
		if n == maxInlineContinues {
			out.control = append(out.control, &core.TaskMessage{Target: core.Instance{InstanceID: id,
				ExecutionID: c.Start.ExecutionID}, Event: c.Start})
			for _, e := range c.CarryOver {
				out.control = append(out.control, &core.TaskMessage{Target: core.Instance{InstanceID: id,
					ExecutionID: c.Start.ExecutionID}, Event: e})
			}
			break
		}
		// The next execution runs in this work item, with fresh history.
		cursor.Release()
		cursor = nil
		h = &history{executionID: c.Start.ExecutionID, etag: h.etag, checkpointAt: h.checkpointAt}
		from, start = 0, c.Start
		next := append([]*core.HistoryEvent{c.Start}, c.CarryOver...)
		final = b.executor.Execute(&durable.Episode{InstanceID: id, NewEvents: next, Now: time.Now(),
			KeepCursor: b.cfg.ExtendedSessions})
		cursor = final.Cursor
		out.add(final)
		all = final.NewEvents
	}
	b.checkSizes(id, final, all)

	// 1. Outgoing messages.
	if err := b.sendAll(ctx, &out); err != nil {
		b.log.Warn("azstorage: send messages", "instance", id, "err", err)
		release()
		b.abandonAll(ctx, consumed, outOfOrderDelay)
		return
	}
	// 2. History, conditional on the sentinel's ETag.
	if err := b.writeHistory(ctx, id, h, all, from); err != nil {
		cursor.Release()
		if errors.Is(err, errConflict) {
			b.stats.conflicts.Add(1)
			b.log.Info("azstorage: checkpoint conflict; messages retried", "instance", id)
		} else {
			b.log.Warn("azstorage: write history", "instance", id, "err", err)
		}
		b.abandonAll(ctx, consumed, outOfOrderDelay)
		return
	}
	h.events = all
	b.stats.episodes.Add(1)
	// 3. The instance row.
	row := &instanceRow{ID: id, ExecutionID: h.executionID, Status: final.Status, LastUpdatedAt: time.Now().UTC(),
		CustomStatus: final.CustomStatus}
	if final.Status.IsTerminal() {
		row.Output, row.Failure = final.Output, final.Failure
	}
	// A new execution writes the whole row, unless its client wrote it
	// already (then the progress fields are merged into it, keeping the
	// client's input, a large one's blob included).
	full := start != nil && (instRow == nil || instRow.ExecutionID != start.ExecutionID)
	if full {
		row.Name, row.Version, row.Input, row.Tags = start.Name, start.Version, start.Input, start.Tags
		row.CreatedAt = start.Timestamp.UTC()
		if r := instRow; r != nil && r.ExecutionID == start.ExecutionID && !r.CreatedAt.IsZero() {
			row.CreatedAt = r.CreatedAt
		}
		if start.Parent != nil {
			row.Parent = start.Parent.InstanceID
		}
		if !start.FireAt.IsZero() {
			row.ScheduledStartAt = start.FireAt
		}
	}
	if err := b.putInstance(ctx, row, full); err != nil {
		b.log.Warn("azstorage: write instance row", "instance", id, "err", err)
	}
	// 4. The consumed messages.
	b.deleteAll(ctx, consumed)
	if b.cfg.ExtendedSessions && cursor != nil && !final.Done() {
		if etag, err := b.sentinelETag(ctx, id); err == nil {
			h.etag = etag
			b.putCached(id, &cachedSession{h: h, cursor: cursor})
			return
		}
	}
	cursor.Release()
}

// repairEndedRow completes the checkpoint of a worker that died after
// writing an ended history (step 2) but before the instance row (step 3):
// the messages it had not deleted come back to the ended instance, and
// the row, still running, is rewritten from the history's completion.
func (b *Backend) repairEndedRow(ctx context.Context, id string, h *history) {
	var done *core.HistoryEvent
	for i := len(h.events) - 1; i >= 0 && done == nil; i-- {
		if h.events[i].Kind == core.EventExecutionCompleted {
			done = h.events[i]
		}
	}
	if done == nil {
		return // continued as new: the next execution writes the row
	}
	r, err := b.getInstance(ctx, id, true)
	if err != nil {
		b.log.Warn("azstorage: read instance row", "instance", id, "err", err)
		return
	}
	if r == nil || r.ExecutionID != h.executionID || r.Status.IsTerminal() {
		return
	}
	row := &instanceRow{ID: id, ExecutionID: h.executionID, Status: done.Status, LastUpdatedAt: time.Now().UTC(),
		CustomStatus: r.CustomStatus, Output: done.Result, Failure: done.Failure}
	if err := b.putInstance(ctx, row, false); err != nil {
		b.log.Warn("azstorage: repair instance row", "instance", id, "err", err)
		return
	}
	b.log.Info("azstorage: instance row repaired from its ended history", "instance", id, "status", done.Status)
}

// finish completes a work item that ran no episode: it sends what it must
// and deletes the messages it consumed.
func (b *Backend) finish(ctx context.Context, id string, h *history, cursor *durable.Cursor, out *outgoing, consumed []*received) {
	if err := b.sendAll(ctx, out); err != nil {
		b.log.Warn("azstorage: send messages", "instance", id, "err", err)
		cursor.Release()
		b.abandonAll(ctx, consumed, outOfOrderDelay)
		return
	}
	b.deleteAll(ctx, consumed)
	if b.cfg.ExtendedSessions && cursor != nil && h.etag != "" {
		b.putCached(id, &cachedSession{h: h, cursor: cursor})
		return
	}
	cursor.Release()
}

// checkSizes fails an orchestration whose output is over the payload
// limit, rather than storing it.
func (b *Backend) checkSizes(id string, res *durable.EpisodeResult, all []*core.HistoryEvent) {
	limit := b.cfg.MaxPayloadBytes
	if len(res.CustomStatus) > limit {
		res.CustomStatus = nil
	}
	if len(res.Output) <= limit || res.Status != core.StatusCompleted {
		return
	}
	res.Status, res.Output = core.StatusFailed, nil
	res.Failure = &core.FailureDetails{Type: "PayloadTooLarge",
		Message: fmt.Sprintf("output of orchestration %s is over the payload limit of %d bytes", id, limit)}
	for _, e := range all {
		if e.Kind == core.EventExecutionCompleted {
			e.Status, e.Result, e.Failure = res.Status, nil, res.Failure
		}
	}
	for _, m := range res.Messages {
		if m.Event.Kind == core.EventSubOrchestrationCompleted {
			m.Event.Kind, m.Event.Result, m.Event.Failure = core.EventSubOrchestrationFailed, nil, res.Failure
		}
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
