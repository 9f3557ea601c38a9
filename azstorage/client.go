package azstorage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// Client implements durable.Client over the task hub's queues and
// tables: starts and events are messages on the instance's control queue,
// status comes from the Instances table, waits poll it.
type Client struct{ b *Backend }

var _ durable.Client = (*Client)(nil)

// Waits poll the instance row, as DTFx's client does, with a random
// exponential back-off between waitPollMin and waitPollMax. When this
// process also runs a worker, its checkpoints wake the waits at once and
// the polling (which then only catches other workers' checkpoints) runs
// between waitPollMinLocal and waitPollMaxLocal, so that many waiting clients do not load the
// storage account.
const (
	waitPollMin      = 20 * time.Millisecond
	waitPollMax      = time.Second
	waitPollMinLocal = time.Second
	waitPollMaxLocal = 5 * time.Second
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("azstorage: %w: %s", durable.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func checkID(id string) error {
	if err := core.ValidateInstanceID(id); err != nil {
		return fmt.Errorf("azstorage: %w: %w", durable.ErrInvalidArgument, err)
	}
	return nil
}

func (c *Client) payload(what string, v any) ([]byte, error) {
	b, err := durable.EncodeClientPayload(c.b.conv, what, v, c.b.cfg.MaxPayloadBytes)
	if err != nil {
		return nil, fmt.Errorf("azstorage: %w", err)
	}
	return b, nil
}

func (c *Client) sendTo(ctx context.Context, m *core.TaskMessage) error {
	q := c.b.control[controlQueueOf(m.Target.InstanceID, len(c.b.control))]
	if err := c.b.send(ctx, q, m); err != nil {
		return fmt.Errorf("azstorage: %w", err)
	}
	return nil
}

func (c *Client) StartOrchestration(ctx context.Context, name string, input any, opts ...durable.StartOption) (string, error) {
	o := durable.CollectStartOptions(opts)
	if name == "" {
		return "", invalid("StartOrchestration: empty orchestrator name")
	}
	id := o.InstanceID
	if id == "" {
		id = durable.NewUUID()
	}
	if err := checkID(id); err != nil {
		return "", err
	}
	if core.IsEntityInstanceID(id) {
		return "", invalid("instance id %q is reserved for entities (it starts with '@')", id)
	}
	in, err := c.payload(fmt.Sprintf("input of orchestration %q", name), input)
	if err != nil {
		return "", err
	}
	old, err := c.b.getInstance(ctx, id, false)
	if err != nil {
		return "", fmt.Errorf("azstorage: %w", err)
	}
	if old != nil && !old.IsEntity {
		running := !old.Status.IsTerminal()
		switch o.Reuse {
		case durable.ReuseError:
			return "", fmt.Errorf("azstorage: %w: instance %s already exists (%s)", durable.ErrInstanceExists, id, old.Status)
		case durable.ReuseIfEnded:
			if running {
				return "", fmt.Errorf("azstorage: %w: instance %s already exists and is %s", durable.ErrInstanceExists, id, old.Status)
			}
		case durable.ReuseIgnore:
			if running {
				return id, nil
			}
		}
	}
	now := time.Now().UTC()
	start := core.NewEvent(core.EventExecutionStarted, now)
	start.Name, start.Input, start.InstanceID, start.ExecutionID = name, in, id, durable.NewUUID()
	start.Tags, start.Version = o.Tags, o.Version
	row := &instanceRow{ID: id, Name: name, Version: o.Version, ExecutionID: start.ExecutionID, Status: core.StatusPending,
		CreatedAt: now, LastUpdatedAt: now, Tags: o.Tags, Input: in}
	if !o.StartAt.IsZero() {
		start.FireAt = o.StartAt.UTC()
		row.ScheduledStartAt = start.FireAt
	}
	// The row first (DTFx writes the Pending row, then the message).
	if err := c.b.putInstance(ctx, row, true); err != nil {
		return "", fmt.Errorf("azstorage: %w", err)
	}
	// Once the row is written the start must follow, even if the caller
	// gives up now: a Pending row without its start would never run.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := c.sendTo(sctx, &core.TaskMessage{Target: core.Instance{InstanceID: id, ExecutionID: start.ExecutionID}, Event: start}); err != nil {
		return "", err
	}
	return id, nil
}

func (c *Client) GetStatus(ctx context.Context, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	o := durable.CollectStatusOptions(opts)
	r, err := c.b.getInstance(ctx, id, o.Payloads)
	if err != nil {
		return nil, fmt.Errorf("azstorage: %w", err)
	}
	if r == nil || r.IsEntity {
		return nil, fmt.Errorf("azstorage: %w: no instance %s", durable.ErrInstanceNotFound, id)
	}
	s := c.b.toStatus(r, o.Payloads)
	if o.History {
		h, err := c.b.loadHistory(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("azstorage: %w", err)
		}
		if h.executionID == r.ExecutionID {
			s.History = h.events
		}
	}
	return s, nil
}

func (c *Client) wait(ctx context.Context, id string, done func(core.RuntimeStatus) bool, opts []durable.StatusOption) (*durable.OrchestrationStatus, error) {
	bo := newBackoff(waitPollMin, waitPollMax)
	if !c.b.cfg.ClientOnly {
		bo = newBackoff(waitPollMinLocal, waitPollMaxLocal)
	}
	ch := c.b.watch(id)
	defer c.b.unwatch(id, ch)
	for {
		// Poll the row without payloads (large ones are blobs); read them
		// once the wait is over.
		s, err := c.GetStatus(ctx, id)
		if err != nil {
			return nil, err
		}
		if done(s.RuntimeStatus) {
			if len(opts) == 0 {
				return s, nil
			}
			return c.GetStatus(ctx, id, opts...)
		}
		t := time.NewTimer(bo.next())
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case st := <-ch:
				if done(st) {
					t.Stop()
					break wait // read the row that satisfies the wait
				}
			case <-t.C:
				break wait
			}
		}
	}
}

func (c *Client) WaitForStart(ctx context.Context, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	return c.wait(ctx, id, func(s core.RuntimeStatus) bool { return s != core.StatusPending }, opts)
}

func (c *Client) WaitForCompletion(ctx context.Context, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	return c.wait(ctx, id, func(s core.RuntimeStatus) bool { return s.IsTerminal() }, opts)
}

// instanceEvent sends an event to a running instance.
func (c *Client) instanceEvent(ctx context.Context, id string, ev *core.HistoryEvent, terminate bool) error {
	if err := checkID(id); err != nil {
		return err
	}
	r, err := c.b.getInstance(ctx, id, false)
	if err != nil {
		return fmt.Errorf("azstorage: %w", err)
	}
	if r == nil || r.IsEntity {
		return fmt.Errorf("azstorage: %w: no instance %s", durable.ErrInstanceNotFound, id)
	}
	if r.Status.IsTerminal() {
		if terminate {
			return nil // terminating an ended instance does nothing
		}
		return fmt.Errorf("azstorage: %w: instance %s is %s", durable.ErrNotRunning, id, r.Status)
	}
	if terminate && r.Status == core.StatusPending && r.ScheduledStartAt.After(time.Now()) {
		// Never started: it ends now, and its start is dropped when due.
		r.Status, r.Output, r.LastUpdatedAt = core.StatusTerminated, ev.Input, time.Now().UTC()
		if err := c.b.putInstance(ctx, r, false); err != nil {
			return fmt.Errorf("azstorage: %w", err)
		}
		return nil
	}
	return c.sendTo(ctx, &core.TaskMessage{Target: core.Instance{InstanceID: id}, Event: ev})
}

func (c *Client) RaiseEvent(ctx context.Context, id, name string, payload any) error {
	if name == "" {
		return invalid("RaiseEvent: empty event name")
	}
	b, err := c.payload(fmt.Sprintf("payload of event %q", name), payload)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventEventRaised, time.Now().UTC())
	ev.Name, ev.Input = name, b
	return c.instanceEvent(ctx, id, ev, false)
}

func (c *Client) Terminate(ctx context.Context, id string, reason any, opts ...durable.TerminateOption) error {
	o := durable.CollectTerminateOptions(opts)
	b, err := c.payload("termination reason", reason)
	if err != nil {
		return err
	}
	var children []string
	if o.Recursive {
		if children, err = c.children(ctx, id, true); err != nil {
			return err
		}
	}
	ev := core.NewEvent(core.EventExecutionTerminated, time.Now().UTC())
	ev.Input = b
	if reason != nil {
		ev.Reason = fmt.Sprint(reason)
	}
	if err := c.instanceEvent(ctx, id, ev, true); err != nil {
		return err
	}
	for _, child := range children {
		if err := c.Terminate(ctx, child, reason, opts...); err != nil && !errors.Is(err, durable.ErrInstanceNotFound) {
			return fmt.Errorf("terminate sub-orchestration %s: %w", child, err)
		}
	}
	return nil
}

// children lists the sub-orchestrations an instance created (only those
// still running, if running is set).
func (c *Client) children(ctx context.Context, id string, running bool) ([]string, error) {
	s, err := c.GetStatus(ctx, id, durable.WithHistory())
	if err != nil {
		return nil, err
	}
	return durable.SubOrchestrationIDs(s.History, running), nil
}

func (c *Client) Suspend(ctx context.Context, id, reason string) error {
	ev := core.NewEvent(core.EventExecutionSuspended, time.Now().UTC())
	ev.Reason = reason
	return c.instanceEvent(ctx, id, ev, false)
}

func (c *Client) Resume(ctx context.Context, id, reason string) error {
	ev := core.NewEvent(core.EventExecutionResumed, time.Now().UTC())
	ev.Reason = reason
	return c.instanceEvent(ctx, id, ev, false)
}

func (c *Client) Purge(ctx context.Context, id string, opts ...durable.PurgeOption) (int, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	o := durable.CollectPurgeOptions(opts)
	r, err := c.b.getInstance(ctx, id, false)
	if err != nil {
		return 0, fmt.Errorf("azstorage: %w", err)
	}
	if r == nil || r.IsEntity {
		return 0, nil
	}
	if !r.Status.IsTerminal() {
		return 0, fmt.Errorf("azstorage: purge %s: %w: it is %s; only ended instances can be purged", id, durable.ErrStillRunning, r.Status)
	}
	n := 0
	if o.Recursive {
		children, err := c.children(ctx, id, false)
		if err != nil {
			return 0, err
		}
		for _, child := range children {
			k, err := c.Purge(ctx, child, opts...)
			if err != nil {
				return n, fmt.Errorf("purge sub-orchestration %s: %w", child, err)
			}
			n += k
		}
	}
	if err := c.b.purge(ctx, id); err != nil {
		return n, fmt.Errorf("azstorage: %w", err)
	}
	return n + 1, nil
}

// purge deletes an instance's history, row and blobs.
func (b *Backend) purge(ctx context.Context, id string) error {
	if err := b.deleteHistory(ctx, id); err != nil {
		return err
	}
	if _, err := b.instances.DeleteEntity(ctx, escapeKey(id), "", nil); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete instance row of %s: %w", id, err)
	}
	return nil
}

func (c *Client) PurgeWhere(ctx context.Context, f durable.PurgeFilter) (int, error) {
	for _, s := range f.Statuses {
		if !s.IsTerminal() {
			return 0, invalid("PurgeWhere: status %s is not final; only ended instances can be purged", s)
		}
	}
	statuses := f.Statuses
	if len(statuses) == 0 {
		statuses = []core.RuntimeStatus{core.StatusCompleted, core.StatusFailed, core.StatusCanceled, core.StatusTerminated}
	}
	n := 0
	q := durable.InstanceQuery{CreatedFrom: f.CreatedFrom, CreatedTo: f.CreatedTo, Statuses: statuses, PageSize: 1000}
	for {
		page, err := c.Query(ctx, q)
		if err != nil {
			return n, err
		}
		for _, s := range page.Instances {
			if err := c.b.purge(ctx, s.InstanceID); err != nil {
				return n, fmt.Errorf("azstorage: %w", err)
			}
			n++
		}
		if page.ContinuationToken == "" {
			return n, nil
		}
		q.ContinuationToken = page.ContinuationToken
	}
}

func encodeToken(last string) string { return durable.ContinuationToken(last) }

func decodeToken(tok string) (string, error) {
	last, err := durable.ParseContinuationToken(tok)
	if err != nil {
		return "", fmt.Errorf("azstorage: %w", err)
	}
	return last, nil
}

// listRows lists Instances rows whose key is after `after`, matching
// filter (an OData expression) and keep, up to size rows; more reports
// whether there are further rows.
func (b *Backend) listRows(ctx context.Context, after, filter string, payloads bool, size int, keep func(*instanceRow) bool) (rows []*instanceRow, more bool, err error) {
	conds := []string{}
	if after != "" {
		conds = append(conds, "PartitionKey gt "+odataString(after))
	}
	if filter != "" {
		conds = append(conds, filter)
	}
	var opts aztables.ListEntitiesOptions
	if len(conds) > 0 {
		opts.Filter = to.Ptr(strings.Join(conds, " and "))
	}
	pager := b.instances.NewListEntitiesPager(&opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("list instances: %w", err)
		}
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, false, fmt.Errorf("list instances: %w", err)
			}
			r, err := b.decodeRow(ctx, e, false)
			if err != nil {
				return nil, false, err
			}
			if !keep(r) {
				continue
			}
			if len(rows) == size {
				return rows, true, nil
			}
			if payloads {
				if r, err = b.decodeRow(ctx, e, true); err != nil {
					return nil, false, err
				}
			}
			rows = append(rows, r)
		}
	}
	return rows, false, nil
}

func (c *Client) Query(ctx context.Context, q durable.InstanceQuery) (*durable.InstancePage, error) {
	after, err := decodeToken(q.ContinuationToken)
	if err != nil {
		return nil, err
	}
	size := q.PageSize
	if size <= 0 {
		size = 100
	}
	filter := ""
	if p := q.InstanceIDPrefix; p != "" {
		ep := escapeKey(p)
		filter = "PartitionKey ge " + odataString(ep) + " and PartitionKey lt " + odataString(ep+"\U0010FFFF")
	}
	rows, more, err := c.b.listRows(ctx, after, filter, q.WithPayloads, size, func(r *instanceRow) bool {
		if r.IsEntity || !strings.HasPrefix(r.ID, q.InstanceIDPrefix) {
			return false
		}
		if !q.CreatedFrom.IsZero() && r.CreatedAt.Before(q.CreatedFrom) {
			return false
		}
		if !q.CreatedTo.IsZero() && !r.CreatedAt.Before(q.CreatedTo) {
			return false
		}
		return len(q.Statuses) == 0 || slices.Contains(q.Statuses, r.Status)
	})
	if err != nil {
		return nil, fmt.Errorf("azstorage: %w", err)
	}
	page := &durable.InstancePage{}
	for _, r := range rows {
		page.Instances = append(page.Instances, c.b.toStatus(r, q.WithPayloads))
	}
	if more && len(rows) > 0 {
		page.ContinuationToken = encodeToken(escapeKey(rows[len(rows)-1].ID))
	}
	return page, nil
}

func (c *Client) SignalEntity(ctx context.Context, id core.EntityID, op string, input any, opts ...durable.CallOption) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("azstorage: SignalEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	if op == "" {
		return invalid("SignalEntity: empty operation name")
	}
	var at time.Time
	if len(opts) > 0 {
		var err error
		if at, err = durable.SignalTime(opts); err != nil {
			return fmt.Errorf("azstorage: SignalEntity: %w: %w", durable.ErrInvalidArgument, err)
		}
	}
	b, err := c.payload(fmt.Sprintf("input of operation %q on %s", op, id), input)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventEntityOperationSignaled, time.Now().UTC())
	ev.Name, ev.Input, ev.InstanceID, ev.RequestID = op, b, id.String(), durable.NewUUID()
	if !at.IsZero() {
		ev.FireAt = at.UTC()
	}
	return c.sendTo(ctx, &core.TaskMessage{Target: core.Instance{InstanceID: id.String()}, Event: ev})
}

func (c *Client) toEntity(r *instanceRow, withState bool) *durable.EntityMetadata {
	id, _ := core.ParseEntityID(r.ID)
	m := &durable.EntityMetadata{ID: id, LastUpdatedAt: r.LastUpdatedAt, LockedBy: r.LockedBy, QueueLength: r.QueueLength,
		Converter: c.b.conv}
	if withState {
		m.State = r.Input
	}
	return m
}

func (c *Client) GetEntity(ctx context.Context, id core.EntityID, includeState bool) (*durable.EntityMetadata, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("azstorage: GetEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	r, err := c.b.getInstance(ctx, id.String(), includeState)
	if err != nil {
		return nil, fmt.Errorf("azstorage: %w", err)
	}
	if r == nil || !r.IsEntity || !r.EntityExists {
		return nil, fmt.Errorf("azstorage: %w: %s", durable.ErrEntityNotFound, id)
	}
	return c.toEntity(r, includeState), nil
}

func (c *Client) ListEntities(ctx context.Context, q durable.EntityQuery) (*durable.EntityPage, error) {
	after, err := decodeToken(q.ContinuationToken)
	if err != nil {
		return nil, err
	}
	size := q.PageSize
	if size <= 0 {
		size = 100
	}
	prefix := "@"
	if q.Name != "" {
		prefix = "@" + core.NewEntityID(q.Name, "").Name + "@" + q.KeyPrefix
	}
	ep := escapeKey(prefix)
	filter := "PartitionKey ge " + odataString(ep) + " and PartitionKey lt " + odataString(ep+"\U0010FFFF")
	rows, more, err := c.b.listRows(ctx, after, filter, q.IncludeState, size, func(r *instanceRow) bool {
		if !r.IsEntity || !r.EntityExists || !strings.HasPrefix(r.ID, prefix) {
			return false
		}
		if q.Name == "" && q.KeyPrefix != "" {
			id, err := core.ParseEntityID(r.ID)
			if err != nil || !strings.HasPrefix(id.Key, q.KeyPrefix) {
				return false
			}
		}
		if !q.LastUpdatedFrom.IsZero() && r.LastUpdatedAt.Before(q.LastUpdatedFrom) {
			return false
		}
		return q.LastUpdatedTo.IsZero() || r.LastUpdatedAt.Before(q.LastUpdatedTo)
	})
	if err != nil {
		return nil, fmt.Errorf("azstorage: %w", err)
	}
	page := &durable.EntityPage{}
	for _, r := range rows {
		page.Entities = append(page.Entities, c.toEntity(r, q.IncludeState))
	}
	if more && len(rows) > 0 {
		page.ContinuationToken = encodeToken(escapeKey(rows[len(rows)-1].ID))
	}
	return page, nil
}

// DeleteEntity deletes an entity's state with an ETag-conditional write of
// its state row, as an operation calling DeleteState would; its lock and
// queued requests stay.
func (c *Client) DeleteEntity(ctx context.Context, id core.EntityID) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("azstorage: DeleteEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	for {
		h, err := c.b.loadHistory(ctx, id.String())
		if err != nil {
			return fmt.Errorf("azstorage: %w", err)
		}
		var st *core.EntityState
		if len(h.entity) > 0 {
			if st, err = core.UnmarshalEntityState(h.entity); err != nil {
				return fmt.Errorf("azstorage: %w", err)
			}
		}
		if st == nil || !st.Exists {
			return fmt.Errorf("azstorage: %w: %s", durable.ErrEntityNotFound, id)
		}
		st.Exists, st.Value = false, nil
		var enc []byte
		if !st.IsEmpty() {
			if enc, err = core.MarshalEntityState(st); err != nil {
				return fmt.Errorf("azstorage: %w", err)
			}
		}
		err = c.b.writeEntity(ctx, id.String(), h, enc)
		if errors.Is(err, errConflict) {
			continue // an entity batch wrote first: read again
		}
		if err != nil {
			return fmt.Errorf("azstorage: %w", err)
		}
		return c.b.putInstance(ctx, entityRow(id.String(), id, st), false)
	}
}
