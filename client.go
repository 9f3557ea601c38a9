package netherite

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// client implements durable.Client over the transport: each call is a
// request to the partition of the instance (or to every partition, for
// queries), answered on the client's response queue.
type client struct {
	id         string
	t          transport.Transport
	count      int
	conv       durable.Converter
	maxPayload int

	nextReq atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan *transport.ClientResponse
	closeFn func()
	closed  chan struct{}
	once    sync.Once
	// placement, if set, receives the load monitor's placement updates
	// (elastic hosts).
	placement atomic.Pointer[func(*transport.PlacementUpdate)]
	// rearm: partitions may move to other hosts (a shared transport), and
	// a partition forgets its waiting clients when it stops; so waits are
	// re-armed (see clientWaitRearm).
	rearm   bool
	movesMu sync.Mutex
	moves   map[int]chan struct{} // closed when partition p moved
	movedAt map[int]time.Time     // when partition p last moved
}

var _ durable.Client = (*client)(nil)

func newClient(t transport.Transport, opts Options, conv durable.Converter) (*client, error) {
	c := &client{
		id: durable.NewUUID(), t: t, count: opts.PartitionCount, conv: conv, maxPayload: opts.MaxPayloadBytes,
		pending: map[uint64]chan *transport.ClientResponse{}, closed: make(chan struct{}),
		rearm: opts.Elastic || opts.SharedTransport != nil || IsEventHubsConnection(opts.Transport), moves: map[int]chan struct{}{}, movedAt: map[int]time.Time{},
	}
	ch, closeFn, err := t.ListenClient(c.id)
	if err != nil {
		return nil, fmt.Errorf("netherite: client: %w", err)
	}
	c.closeFn = closeFn
	go c.dispatch(ch)
	return c, nil
}

func (c *client) dispatch(ch <-chan *transport.Packet) {
	for {
		select {
		case pk := <-ch:
			if pk.Placement != nil {
				if f := c.placement.Load(); f != nil {
					(*f)(pk.Placement)
				}
				continue
			}
			if pk.Response == nil {
				continue
			}
			c.mu.Lock()
			w := c.pending[pk.Response.RequestID]
			delete(c.pending, pk.Response.RequestID)
			c.mu.Unlock()
			if w != nil {
				w <- pk.Response
			}
		case <-c.closed:
			return
		}
	}
}

// moved tells the waits on partition p that it moves to another host: they
// are re-armed soon, on the new owner.
func (c *client) moved(p int) {
	c.movesMu.Lock()
	defer c.movesMu.Unlock()
	c.movedAt[p] = time.Now()
	if ch := c.moves[p]; ch != nil {
		close(ch)
		delete(c.moves, p)
	}
}

// movedChan is closed when partition p next moves.
func (c *client) movedChan(p int) <-chan struct{} {
	c.movesMu.Lock()
	defer c.movesMu.Unlock()
	ch := c.moves[p]
	if ch == nil {
		ch = make(chan struct{})
		c.moves[p] = ch
	}
	return ch
}

// movingSteps returns the re-arm (or re-send) delays for a request sent
// now to partition p: clientMoveRearm if p moved less than their sum ago
// (the request may reach the old owner as it stops, and be forgotten),
// else none.
func (c *client) movingSteps(p int) []time.Duration {
	c.movesMu.Lock()
	at, ok := c.movedAt[p]
	c.movesMu.Unlock()
	var window time.Duration
	for _, d := range clientMoveRearm {
		window += d
	}
	if ok && time.Since(at) < window {
		return clientMoveRearm
	}
	return nil
}

// onPlacement hooks the client's listener: the placement updates sent to
// this client go to f.
func (c *client) onPlacement(f func(*transport.PlacementUpdate)) { c.placement.Store(&f) }

func (c *client) close() {
	c.once.Do(func() {
		close(c.closed)
		c.closeFn()
	})
}

var errClientClosed = errors.New("netherite: client is closed (host stopped)")

// Client requests are retried with the same request id (partitions
// deduplicate update requests by client and request id, DESIGN §4.6): a
// send that fails is retried with backoff, and a request that gets no
// answer within its attempt timeout is sent again, the timeout doubling
// each time, until ctx ends. Waits (for start or completion) are only
// re-sent after a failed send: they may rightly take long.
//
// A partition keeps its waiting clients in memory only: when it stops (it
// moved to another host, or failed and recovered), they are gone. So where
// partitions can move, a client re-arms each wait (a cancel and the same
// wait again, in one send, so that the partition keeps one) every
// clientWaitRearm, and clientMoveRearm after it hears the partition moved;
// any other request in flight is sent again at the same times after a move
// (the old owner may have taken it in and stopped before it answered).
var (
	clientWaitRearm         = 30 * time.Second
	clientMoveRearm         = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second}
	clientAttemptTimeout    = 10 * time.Second
	clientAttemptTimeoutMax = 2 * time.Minute
	clientSendRetryMin      = 50 * time.Millisecond
	clientSendRetryMax      = 5 * time.Second
)

// register stamps a request with the client's ids and returns the channel
// its answer comes on.
func (c *client) register(req *transport.ClientRequest) (chan *transport.ClientResponse, error) {
	select {
	case <-c.closed:
		return nil, errClientClosed
	default:
	}
	req.ClientID = c.id
	req.RequestID = c.nextReq.Add(1)
	req.Timestamp = time.Now().UTC()
	w := make(chan *transport.ClientResponse, 1)
	c.mu.Lock()
	c.pending[req.RequestID] = w
	c.mu.Unlock()
	return w, nil
}

// send sends a request to a partition, retrying failed sends with backoff
// until ctx ends or the transport is closed.
func (c *client) send(ctx context.Context, partition int, req *transport.ClientRequest) error {
	backoff := clientSendRetryMin
	for {
		err := c.t.SendToPartition(partition, &transport.Packet{Request: req})
		if err == nil {
			return nil
		}
		if errors.Is(err, transport.ErrClosed) {
			return fmt.Errorf("netherite: send %s request: %w", req.Kind, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("netherite: send %s request: %w (last error: %w)", req.Kind, ctx.Err(), err)
		case <-c.closed:
			t.Stop()
			return errClientClosed
		}
		backoff = min(2*backoff, clientSendRetryMax)
	}
}

func (c *client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func isWait(k transport.RequestKind) bool {
	return k == transport.RequestWaitStart || k == transport.RequestWaitCompletion
}

// start registers and sends a request; await then waits for its answer.
func (c *client) start(ctx context.Context, partition int, req *transport.ClientRequest) (chan *transport.ClientResponse, error) {
	w, err := c.register(req)
	if err != nil {
		return nil, err
	}
	if err := c.send(ctx, partition, req); err != nil {
		c.forget(req.RequestID)
		return nil, err
	}
	return w, nil
}

// await waits for the answer to a request sent by start, sending it again
// (same request id) when an attempt times out.
func (c *client) await(ctx context.Context, partition int, req *transport.ClientRequest, w chan *transport.ClientResponse) (*transport.ClientResponse, error) {
	attempt := clientAttemptTimeout
	var rearmC <-chan time.Time
	var movedC <-chan struct{}
	var steps []time.Duration // the next re-arm or re-send delays after a move
	var next func()           // arms the timer for the next re-arm or re-send
	if isWait(req.Kind) && c.rearm {
		rearm := time.NewTimer(clientWaitRearm)
		defer rearm.Stop()
		rearmC, movedC = rearm.C, c.movedChan(partition)
		next = func() {
			d := clientWaitRearm
			if len(steps) > 0 {
				d, steps = steps[0], steps[1:]
			}
			rearm.Reset(d)
		}
		if steps = c.movingSteps(partition); steps != nil {
			next() // sent while its partition moves
		}
		for {
			select {
			case r := <-w:
				return r, responseError(r)
			case <-ctx.Done():
				c.forget(req.RequestID)
				return nil, ctx.Err()
			case <-c.closed:
				return nil, errClientClosed
			case <-movedC:
				movedC = c.movedChan(partition)
				steps = clientMoveRearm
				next()
			case <-rearmC:
				cancel := &transport.ClientRequest{Kind: transport.RequestCancel, ClientID: c.id, RequestID: req.RequestID, InstanceID: req.InstanceID}
				if err := c.t.SendToPartition(partition, &transport.Packet{Request: cancel}, &transport.Packet{Request: req}); errors.Is(err, transport.ErrClosed) {
					c.forget(req.RequestID)
					return nil, fmt.Errorf("netherite: re-arm %s request: %w", req.Kind, err)
				}
				next()
			}
		}
	}
	var timeout <-chan time.Time
	if !isWait(req.Kind) {
		timer := time.NewTimer(attempt)
		defer timer.Stop()
		timeout = timer.C
		next = func() {
			d := attempt
			if len(steps) > 0 {
				d, steps = steps[0], steps[1:]
			}
			timer.Reset(d)
		}
		if c.rearm {
			// A partition that moves may have taken the request in and
			// stopped before it answered: sent again soon after the move
			// (the partition deduplicates it), not an attempt timeout later.
			movedC = c.movedChan(partition)
			if steps = c.movingSteps(partition); steps != nil {
				next() // sent while its partition moves
			}
		}
	}
	for {
		select {
		case r := <-w:
			return r, responseError(r)
		case <-ctx.Done():
			c.forget(req.RequestID)
			return nil, ctx.Err()
		case <-c.closed:
			return nil, errClientClosed
		case <-movedC:
			movedC = c.movedChan(partition)
			steps = clientMoveRearm
			next()
		case <-timeout:
			if len(steps) == 0 {
				attempt = min(2*attempt, clientAttemptTimeoutMax)
			}
			if err := c.send(ctx, partition, req); err != nil {
				c.forget(req.RequestID)
				return nil, err
			}
			next()
		}
	}
}

func (c *client) call(ctx context.Context, partition int, req *transport.ClientRequest) (*transport.ClientResponse, error) {
	if d, ok := ctx.Deadline(); ok {
		req.Deadline = d.UTC() // the partition drops a wait past it
	}
	w, err := c.start(ctx, partition, req)
	if err != nil {
		return nil, err
	}
	r, err := c.await(ctx, partition, req, w)
	if r == nil && err != nil && isWait(req.Kind) {
		// Gave up (or closed): the partition need not keep the wait.
		_ = c.t.SendToPartition(partition, &transport.Packet{Request: &transport.ClientRequest{Kind: transport.RequestCancel,
			ClientID: c.id, RequestID: req.RequestID, InstanceID: req.InstanceID}})
	}
	return r, err
}

// fanOut sends a copy of req to every partition and gathers the responses.
func (c *client) fanOut(ctx context.Context, build func() *transport.ClientRequest) ([]*transport.ClientResponse, error) {
	reqs := make([]*transport.ClientRequest, c.count)
	chans := make([]chan *transport.ClientResponse, c.count)
	for p := 0; p < c.count; p++ {
		reqs[p] = build()
		w, err := c.start(ctx, p, reqs[p])
		if err != nil {
			for q := 0; q < p; q++ {
				c.forget(reqs[q].RequestID)
			}
			return nil, err
		}
		chans[p] = w
	}
	out := make([]*transport.ClientResponse, c.count)
	for p := range chans {
		r, err := c.await(ctx, p, reqs[p], chans[p])
		if err != nil {
			for q := p + 1; q < c.count; q++ {
				c.forget(reqs[q].RequestID)
			}
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		out[p] = r
	}
	return out, nil
}

func responseError(r *transport.ClientResponse) error {
	switch r.ErrorCode {
	case transport.CodeNone:
		if r.Error != "" {
			return errors.New(r.Error)
		}
		return nil
	case transport.CodeNotFound:
		return fmt.Errorf("%w: %s", durable.ErrInstanceNotFound, r.Error)
	case transport.CodeExists:
		return fmt.Errorf("%w: %s", durable.ErrInstanceExists, r.Error)
	case transport.CodeNotRunning:
		return fmt.Errorf("%w: %s", durable.ErrNotRunning, r.Error)
	case transport.CodeRunning:
		return fmt.Errorf("%w: %s", durable.ErrStillRunning, r.Error)
	}
	return errors.New(r.Error)
}

func (c *client) partitionOf(id string) int { return partitions.PartitionOf(id, c.count) }

// payload encodes a value and checks it against the payload limit.
func (c *client) payload(what string, v any) ([]byte, error) {
	b, err := durable.EncodeClientPayload(c.conv, what, v, c.maxPayload)
	if err != nil {
		return nil, fmt.Errorf("netherite: %w", err)
	}
	return b, nil
}

func checkID(id string) error {
	if err := core.ValidateInstanceID(id); err != nil {
		return fmt.Errorf("netherite: %w: %w", durable.ErrInvalidArgument, err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("netherite: %w: %s", durable.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

func (c *client) StartOrchestration(ctx context.Context, name string, input any, opts ...durable.StartOption) (string, error) {
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
	start := core.NewEvent(core.EventExecutionStarted, time.Now().UTC())
	start.Name, start.Input, start.InstanceID, start.ExecutionID = name, in, id, durable.NewUUID()
	start.Tags, start.Version = o.Tags, o.Version
	if !o.StartAt.IsZero() {
		start.FireAt = o.StartAt.UTC()
	}
	_, err = c.call(ctx, c.partitionOf(id), &transport.ClientRequest{Kind: transport.RequestCreate,
		InstanceID: id, Event: start, Reuse: transport.ReusePolicy(o.Reuse)})
	if err != nil {
		return "", err
	}
	return id, nil
}

func (c *client) status(ctx context.Context, kind transport.RequestKind, id string, opts []durable.StatusOption) (*durable.OrchestrationStatus, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	o := durable.CollectStatusOptions(opts)
	r, err := c.call(ctx, c.partitionOf(id), &transport.ClientRequest{Kind: kind, InstanceID: id,
		IncludePayloads: o.Payloads, IncludeHistory: o.History})
	if err != nil {
		return nil, err
	}
	return c.convertStatus(r.Status), nil
}

func (c *client) convertStatus(s *transport.InstanceStatus) *durable.OrchestrationStatus {
	if s == nil {
		return nil
	}
	return &durable.OrchestrationStatus{
		InstanceID: s.InstanceID, ExecutionID: s.ExecutionID, Name: s.Name, Version: s.Version,
		RuntimeStatus: s.Status, CreatedAt: s.CreatedAt, LastUpdatedAt: s.LastUpdatedAt,
		ScheduledStartAt: s.ScheduledStartAt, ParentInstanceID: s.ParentInstanceID, Tags: s.Tags,
		Input: s.Input, Output: s.Output, CustomStatus: s.CustomStatus, Failure: s.Failure,
		History: s.History, Converter: c.conv,
	}
}

func (c *client) GetStatus(ctx context.Context, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	return c.status(ctx, transport.RequestStatus, id, opts)
}

func (c *client) WaitForStart(ctx context.Context, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	return c.status(ctx, transport.RequestWaitStart, id, opts)
}

func (c *client) WaitForCompletion(ctx context.Context, id string, opts ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	return c.status(ctx, transport.RequestWaitCompletion, id, opts)
}

func (c *client) instanceEvent(ctx context.Context, kind transport.RequestKind, id string, ev *core.HistoryEvent) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := c.call(ctx, c.partitionOf(id), &transport.ClientRequest{Kind: kind, InstanceID: id, Event: ev})
	return err
}

func (c *client) RaiseEvent(ctx context.Context, id, name string, payload any) error {
	if name == "" {
		return invalid("RaiseEvent: empty event name")
	}
	b, err := c.payload(fmt.Sprintf("payload of event %q", name), payload)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventEventRaised, time.Now().UTC())
	ev.Name, ev.Input = name, b
	return c.instanceEvent(ctx, transport.RequestRaiseEvent, id, ev)
}

func (c *client) Terminate(ctx context.Context, id string, reason any, opts ...durable.TerminateOption) error {
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
	if err := c.instanceEvent(ctx, transport.RequestTerminate, id, ev); err != nil {
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
func (c *client) children(ctx context.Context, id string, running bool) ([]string, error) {
	s, err := c.GetStatus(ctx, id, durable.WithHistory())
	if err != nil {
		return nil, err
	}
	return durable.SubOrchestrationIDs(s.History, running), nil
}

func (c *client) Suspend(ctx context.Context, id, reason string) error {
	ev := core.NewEvent(core.EventExecutionSuspended, time.Now().UTC())
	ev.Reason = reason
	return c.instanceEvent(ctx, transport.RequestSuspend, id, ev)
}

func (c *client) Resume(ctx context.Context, id, reason string) error {
	ev := core.NewEvent(core.EventExecutionResumed, time.Now().UTC())
	ev.Reason = reason
	return c.instanceEvent(ctx, transport.RequestResume, id, ev)
}

func (c *client) Purge(ctx context.Context, id string, opts ...durable.PurgeOption) (int, error) {
	if err := checkID(id); err != nil {
		return 0, err
	}
	o := durable.CollectPurgeOptions(opts)
	n := 0
	if o.Recursive {
		s, err := c.GetStatus(ctx, id)
		if err != nil {
			if errors.Is(err, durable.ErrInstanceNotFound) {
				return 0, nil
			}
			return 0, err
		}
		if !s.RuntimeStatus.IsTerminal() {
			// Refuse before touching the children.
			return 0, fmt.Errorf("netherite: purge %s: %w: it is %s; only ended instances can be purged",
				id, durable.ErrStillRunning, s.RuntimeStatus)
		}
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
	r, err := c.call(ctx, c.partitionOf(id), &transport.ClientRequest{Kind: transport.RequestPurge, InstanceID: id})
	if err != nil {
		return n, err
	}
	return n + r.Count, nil
}

func (c *client) PurgeWhere(ctx context.Context, f durable.PurgeFilter) (int, error) {
	for _, s := range f.Statuses {
		if !s.IsTerminal() {
			return 0, invalid("PurgeWhere: status %s is not final; only ended instances can be purged", s)
		}
	}
	rs, err := c.fanOut(ctx, func() *transport.ClientRequest {
		return &transport.ClientRequest{Kind: transport.RequestPurgeWhere, Filter: &transport.Filter{
			CreatedFrom: f.CreatedFrom, CreatedTo: f.CreatedTo, Statuses: f.Statuses}}
	})
	n := 0
	for _, r := range rs {
		n += r.Count
	}
	return n, err
}

func encodeToken(last string) string { return durable.ContinuationToken(last) }

func decodeToken(tok string) (string, error) {
	last, err := durable.ParseContinuationToken(tok)
	if err != nil {
		return "", fmt.Errorf("netherite: %w", err)
	}
	return last, nil
}

func (c *client) Query(ctx context.Context, q durable.InstanceQuery) (*durable.InstancePage, error) {
	after, err := decodeToken(q.ContinuationToken)
	if err != nil {
		return nil, err
	}
	size := q.PageSize
	if size <= 0 {
		size = 100
	}
	rs, err := c.fanOut(ctx, func() *transport.ClientRequest {
		return &transport.ClientRequest{Kind: transport.RequestQuery, IncludePayloads: q.WithPayloads,
			Filter: &transport.Filter{InstanceIDPrefix: q.InstanceIDPrefix, CreatedFrom: q.CreatedFrom,
				CreatedTo: q.CreatedTo, Statuses: q.Statuses, After: after, PageSize: size}}
	})
	if err != nil {
		return nil, err
	}
	var all []*transport.InstanceStatus
	more := false
	for _, r := range rs {
		all = append(all, r.Instances...)
		more = more || r.More
	}
	sort.Slice(all, func(i, j int) bool { return all[i].InstanceID < all[j].InstanceID })
	if len(all) > size {
		all, more = all[:size], true
	}
	page := &durable.InstancePage{}
	for _, s := range all {
		page.Instances = append(page.Instances, c.convertStatus(s))
	}
	if more && len(all) > 0 {
		page.ContinuationToken = encodeToken(all[len(all)-1].InstanceID)
	}
	return page, nil
}

func (c *client) SignalEntity(ctx context.Context, id core.EntityID, op string, input any, opts ...durable.CallOption) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("netherite: SignalEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	if op == "" {
		return invalid("SignalEntity: empty operation name")
	}
	if len(opts) > 0 {
		return c.signalWithOptions(ctx, id, op, input, opts)
	}
	return c.signal(ctx, id, op, input, time.Time{})
}

func (c *client) signalWithOptions(ctx context.Context, id core.EntityID, op string, input any, opts []durable.CallOption) error {
	at, err := durable.SignalTime(opts)
	if err != nil {
		return fmt.Errorf("netherite: SignalEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	return c.signal(ctx, id, op, input, at)
}

func (c *client) signal(ctx context.Context, id core.EntityID, op string, input any, at time.Time) error {
	b, err := c.payload(fmt.Sprintf("input of operation %q on %s", op, id), input)
	if err != nil {
		return err
	}
	ev := core.NewEvent(core.EventEntityOperationSignaled, time.Now().UTC())
	ev.Name, ev.Input, ev.InstanceID, ev.RequestID = op, b, id.String(), durable.NewUUID()
	if !at.IsZero() {
		ev.FireAt = at.UTC()
	}
	_, err = c.call(ctx, c.partitionOf(id.String()), &transport.ClientRequest{Kind: transport.RequestSignalEntity,
		InstanceID: id.String(), Event: ev})
	return err
}

func (c *client) GetEntity(ctx context.Context, id core.EntityID, includeState bool) (*durable.EntityMetadata, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("netherite: GetEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	r, err := c.call(ctx, c.partitionOf(id.String()), &transport.ClientRequest{Kind: transport.RequestGetEntity,
		InstanceID: id.String(), IncludePayloads: includeState})
	if err != nil {
		if errors.Is(err, durable.ErrInstanceNotFound) {
			return nil, fmt.Errorf("%w: %s", durable.ErrEntityNotFound, id)
		}
		return nil, err
	}
	return c.convertEntity(r.Entities[0]), nil
}

func (c *client) convertEntity(e *transport.EntityStatus) *durable.EntityMetadata {
	return &durable.EntityMetadata{ID: e.ID, LastUpdatedAt: e.LastUpdatedAt, LockedBy: e.LockedBy,
		QueueLength: e.QueueLength, State: e.State, Converter: c.conv}
}

func (c *client) ListEntities(ctx context.Context, q durable.EntityQuery) (*durable.EntityPage, error) {
	after, err := decodeToken(q.ContinuationToken)
	if err != nil {
		return nil, err
	}
	size := q.PageSize
	if size <= 0 {
		size = 100
	}
	name := q.Name
	if name != "" {
		name = core.NewEntityID(name, "").Name
	}
	rs, err := c.fanOut(ctx, func() *transport.ClientRequest {
		return &transport.ClientRequest{Kind: transport.RequestListEntities, IncludePayloads: q.IncludeState,
			Filter: &transport.Filter{EntityName: name, InstanceIDPrefix: q.KeyPrefix, CreatedFrom: q.LastUpdatedFrom,
				CreatedTo: q.LastUpdatedTo, After: after, PageSize: size}}
	})
	if err != nil {
		return nil, err
	}
	var all []*transport.EntityStatus
	more := false
	for _, r := range rs {
		all = append(all, r.Entities...)
		more = more || r.More
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID.String() < all[j].ID.String() })
	if len(all) > size {
		all, more = all[:size], true
	}
	page := &durable.EntityPage{}
	for _, e := range all {
		page.Entities = append(page.Entities, c.convertEntity(e))
	}
	if more && len(all) > 0 {
		page.ContinuationToken = encodeToken(all[len(all)-1].ID.String())
	}
	return page, nil
}

func (c *client) DeleteEntity(ctx context.Context, id core.EntityID) error {
	if err := id.Validate(); err != nil {
		return fmt.Errorf("netherite: DeleteEntity: %w: %w", durable.ErrInvalidArgument, err)
	}
	_, err := c.call(ctx, c.partitionOf(id.String()), &transport.ClientRequest{Kind: transport.RequestDeleteEntity,
		InstanceID: id.String()})
	if errors.Is(err, durable.ErrInstanceNotFound) {
		return fmt.Errorf("%w: %s", durable.ErrEntityNotFound, id)
	}
	return err
}
