package azstorage

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// session gathers the messages of one instance that this worker holds;
// one goroutine at a time processes them, in batches.
type session struct {
	id      string
	pending []*received
	queue   int
}

// cachedSession is an extended session: the instance's history, sentinel
// ETag and suspended execution, kept between episodes.
type cachedSession struct {
	h      *history
	cursor *durable.Cursor
	last   time.Time
}

// pollControlQueue dequeues control queue i while its lease is held,
// backing off randomly and exponentially while it is empty.
func (b *Backend) pollControlQueue(ctx context.Context, i int) {
	q := b.control[i]
	bo := newBackoff(minPolling, b.cfg.MaxQueuePollingInterval)
	for ctx.Err() == nil {
		if b.buffered(i) >= controlQueueBufferSize {
			if !sleep(ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		msgs, err := b.dequeue(ctx, q, dequeueBatch)
		if err != nil {
			if ctx.Err() == nil {
				b.log.Warn("azstorage: dequeue control queue", "queue", i, "err", err)
			}
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		if len(msgs) == 0 {
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		for _, m := range msgs {
			b.addToSession(i, m)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// buffered counts the messages of control queue i held in sessions.
func (b *Backend) buffered(i int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.sessions {
		if s.queue == i {
			n += len(s.pending)
		}
	}
	return n
}

func (b *Backend) addToSession(queue int, m *received) {
	id := m.msg.Target.InstanceID
	b.mu.Lock()
	s := b.sessions[id]
	if s != nil {
		s.pending = append(s.pending, m)
		b.mu.Unlock()
		return
	}
	s = &session{id: id, pending: []*received{m}, queue: queue}
	b.sessions[id] = s
	b.mu.Unlock()
	b.inFlight.Add(1)
	go b.runSession(s)
}

// runSession processes a session's messages until none are left.
func (b *Backend) runSession(s *session) {
	defer b.inFlight.Done()
	for {
		b.mu.Lock()
		batch := s.pending
		s.pending = nil
		if len(batch) == 0 {
			delete(b.sessions, s.id)
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		select {
		case b.orchSlots <- struct{}{}:
		case <-b.work.Done():
			b.mu.Lock()
			delete(b.sessions, s.id)
			b.mu.Unlock()
			return // the messages come back after their visibility timeout
		}
		if core.IsEntityInstanceID(s.id) {
			b.processEntity(b.work, s.id, batch)
		} else {
			b.processOrchestration(b.work, s.id, batch)
		}
		<-b.orchSlots
	}
}

// isCompletion reports whether events of this kind answer a scheduling
// event (through TaskScheduledID).
func isCompletion(k core.EventKind) bool {
	switch k {
	case core.EventTaskCompleted, core.EventTaskFailed, core.EventTimerFired,
		core.EventSubOrchestrationCompleted, core.EventSubOrchestrationFailed,
		core.EventEntityOperationCompleted, core.EventEntityOperationFailed, core.EventEntityLockGranted:
		return true
	}
	return false
}

func ended(events []*core.HistoryEvent) bool {
	for i := len(events) - 1; i >= 0; i-- {
		switch events[i].Kind {
		case core.EventExecutionCompleted, core.EventContinuedAsNew:
			return true
		}
	}
	return false
}

func scheduled(events []*core.HistoryEvent, seq int32) bool {
	for _, e := range events {
		if e.Kind.IsScheduling() && e.EventID == seq {
			return true
		}
	}
	return false
}

// outgoing collects the messages of a checkpoint by destination queue.
type outgoing struct {
	activities []*core.TaskMessage
	control    []*core.TaskMessage
}

func (o *outgoing) add(res *durable.EpisodeResult) {
	o.activities = append(o.activities, res.Activities...)
	o.control = append(o.control, res.Timers...)
	o.control = append(o.control, res.Messages...)
}

// sendAll enqueues the outgoing messages: in parallel, as DTFx does,
// except that the messages for one instance go one after the other, in
// order (an orchestration's signals to an entity must arrive in the order
// it sent them).
func (b *Backend) sendAll(ctx context.Context, o *outgoing) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, m := range o.activities {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.send(ctx, b.workItems, m); err != nil {
				fail(err)
			}
		}()
	}
	byTarget := map[string][]*core.TaskMessage{}
	var order []string
	for _, m := range o.control {
		id := m.Target.InstanceID
		if _, ok := byTarget[id]; !ok {
			order = append(order, id)
		}
		byTarget[id] = append(byTarget[id], m)
	}
	for _, id := range order {
		wg.Add(1)
		go func(ms []*core.TaskMessage) {
			defer wg.Done()
			q := b.control[controlQueueOf(ms[0].Target.InstanceID, len(b.control))]
			for _, m := range ms {
				if err := b.send(ctx, q, m); err != nil {
					fail(err)
					return
				}
			}
		}(byTarget[id])
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *Backend) deleteAll(ctx context.Context, msgs []*received) {
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.deleteMessage(ctx, m); err != nil && !isNotFound(err) && ctx.Err() == nil {
				b.log.Warn("azstorage: delete message", "err", err)
			}
		}()
	}
	wg.Wait()
}

func (b *Backend) abandonAll(ctx context.Context, msgs []*received, delay time.Duration) {
	for _, m := range msgs {
		b.abandon(ctx, m, delay)
	}
}

// redelayIfEarly sends a delayed message that came up before it is due
// again, with the rest of its delay; it reports whether it did.
func (b *Backend) redelayIfEarly(ctx context.Context, m *received) bool {
	e := m.msg.Event
	if !dueKind(e.Kind) || e.FireAt.IsZero() || !e.FireAt.After(time.Now().Add(50*time.Millisecond)) {
		return false
	}
	if err := b.send(ctx, b.control[controlQueueOf(m.msg.Target.InstanceID, len(b.control))], m.msg); err != nil {
		b.log.Warn("azstorage: delay message again", "err", err)
		return true // not deleted: it comes back after its visibility timeout
	}
	if err := b.deleteMessage(ctx, m); err != nil && !isNotFound(err) {
		b.log.Warn("azstorage: delete early message", "err", err)
	}
	return true
}

// takeCached returns the extended session of an instance, if any.
func (b *Backend) takeCached(id string) *cachedSession {
	if !b.cfg.ExtendedSessions {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cache[id]
	delete(b.cache, id)
	return c
}

func (b *Backend) putCached(id string, c *cachedSession) {
	c.last = time.Now()
	b.mu.Lock()
	if old := b.cache[id]; old != nil {
		old.cursor.Release()
	}
	b.cache[id] = c
	b.mu.Unlock()
}

// evictSessions drops extended sessions idle for longer than the timeout.
func (b *Backend) evictSessions(ctx context.Context) {
	t := time.NewTicker(b.cfg.ExtendedSessionIdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.mu.Lock()
			for id, c := range b.cache {
				if now.Sub(c.last) > b.cfg.ExtendedSessionIdleTimeout {
					c.cursor.Release()
					delete(b.cache, id)
				}
			}
			b.mu.Unlock()
		}
	}
}

// pollWorkItems runs activities from the work-item queue.
func (b *Backend) pollWorkItems(ctx context.Context) {
	bo := newBackoff(minPolling, b.cfg.MaxQueuePollingInterval)
	for ctx.Err() == nil {
		free := cap(b.actSlots) - len(b.actSlots)
		if free <= 0 {
			if !sleep(ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		msgs, err := b.dequeue(ctx, b.workItems, min(free, dequeueBatch))
		if err != nil || len(msgs) == 0 {
			if err != nil && ctx.Err() == nil {
				b.log.Warn("azstorage: dequeue work items", "err", err)
			}
			if !sleep(ctx, bo.next()) {
				return
			}
			continue
		}
		bo.reset()
		for _, m := range msgs {
			b.actSlots <- struct{}{}
			b.inFlight.Add(1)
			go func() {
				defer b.inFlight.Done()
				defer func() { <-b.actSlots }()
				b.runActivity(m)
			}()
		}
	}
}

// runActivity runs one activity, sends its result to the orchestration's
// control queue, then deletes the work item. A worker that dies in between
// leaves the work item to come back after its visibility timeout: the
// activity runs again (at least once).
func (b *Backend) runActivity(m *received) {
	ctx := b.work
	b.stats.activities.Add(1)
	reply := b.executor.ExecuteActivity(ctx, m.msg)
	if ctx.Err() != nil {
		return
	}
	if err := b.send(ctx, b.control[controlQueueOf(reply.Target.InstanceID, len(b.control))], reply); err != nil {
		b.log.Warn("azstorage: send activity result", "err", err)
		return
	}
	if err := b.deleteMessage(ctx, m); err != nil && !isNotFound(err) {
		b.log.Warn("azstorage: delete work item", "err", err)
	}
}
