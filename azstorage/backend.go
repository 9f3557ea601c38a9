package azstorage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// Config configures a backend. Zero fields take Durable Functions'
// defaults for the Azure Storage provider.
type Config struct {
	// Storage is an Azure Storage connection string, or
	// "UseDevelopmentStorage=true" for Azurite on its default ports.
	Storage string
	// TaskHub names the queues, tables and containers (default "default").
	TaskHub string
	// ControlQueues is the number of control queues (partitions), 1 to 16
	// (default 4).
	ControlQueues int
	// MaxQueuePollingInterval bounds the random exponential back-off of
	// idle polling (default 30 s).
	MaxQueuePollingInterval time.Duration
	// ExtendedSessions keeps an orchestration's history and execution in
	// memory between episodes while its control queue stays leased
	// (default off).
	ExtendedSessions bool
	// ExtendedSessionIdleTimeout evicts an idle extended session (default
	// 30 s).
	ExtendedSessionIdleTimeout time.Duration
	// Concurrency limits of this worker (defaults 100 and 100).
	MaxConcurrentOrchestrations int
	MaxConcurrentActivities     int
	// MaxPayloadBytes bounds client payloads (default 16 MiB).
	MaxPayloadBytes int
	// LeaseDuration of the control-queue blob leases (default 30 s, 15 s to
	// 60 s), renewed every LeaseRenewInterval (default 10 s); balancing
	// runs every LeaseAcquireInterval (default 10 s).
	LeaseDuration        time.Duration
	LeaseRenewInterval   time.Duration
	LeaseAcquireInterval time.Duration
	// VisibilityTimeout of dequeued messages (default 5 minutes): a worker
	// that dies holding messages delays them this long.
	VisibilityTimeout time.Duration
	// WorkerID names this worker in lease blobs (default a new UUID).
	WorkerID string
	// ClientOnly starts no worker: no leases, no polling; only the client.
	ClientOnly bool
	Logger     *slog.Logger
}

const (
	defaultControlQueues   = 4
	defaultMaxPolling      = 30 * time.Second
	minPolling             = 10 * time.Millisecond
	defaultLeaseDuration   = 30 * time.Second
	defaultLeaseRenew      = 10 * time.Second
	defaultVisibility      = 5 * time.Minute
	dequeueBatch           = 32
	controlQueueBufferSize = 256
)

func (c *Config) normalize() error {
	if c.TaskHub == "" {
		c.TaskHub = "default"
	}
	if err := checkHubName(c.TaskHub); err != nil {
		return err
	}
	if c.ControlQueues == 0 {
		c.ControlQueues = defaultControlQueues
	}
	if c.ControlQueues < 1 || c.ControlQueues > 16 {
		return fmt.Errorf("azstorage: ControlQueues must be between 1 and 16, got %d", c.ControlQueues)
	}
	if c.MaxQueuePollingInterval < 0 {
		return fmt.Errorf("azstorage: MaxQueuePollingInterval must not be negative, got %v", c.MaxQueuePollingInterval)
	}
	if c.MaxQueuePollingInterval == 0 {
		c.MaxQueuePollingInterval = defaultMaxPolling
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = defaultLeaseDuration
	}
	if c.LeaseDuration < 15*time.Second || c.LeaseDuration > 60*time.Second {
		return fmt.Errorf("azstorage: LeaseDuration must be between 15s and 60s, got %v", c.LeaseDuration)
	}
	if c.LeaseRenewInterval == 0 {
		c.LeaseRenewInterval = defaultLeaseRenew
	}
	if c.LeaseAcquireInterval == 0 {
		c.LeaseAcquireInterval = defaultLeaseRenew
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = defaultVisibility
	}
	if c.VisibilityTimeout < time.Second {
		return fmt.Errorf("azstorage: VisibilityTimeout must be at least 1s, got %v", c.VisibilityTimeout)
	}
	if c.ExtendedSessionIdleTimeout == 0 {
		c.ExtendedSessionIdleTimeout = 30 * time.Second
	}
	if c.MaxConcurrentOrchestrations <= 0 {
		c.MaxConcurrentOrchestrations = 100
	}
	if c.MaxConcurrentActivities <= 0 {
		c.MaxConcurrentActivities = 100
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = 16 << 20
	}
	if c.WorkerID == "" {
		c.WorkerID = durable.NewUUID()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Backend is one worker of a task hub (and its client).
type Backend struct {
	cfg      Config
	log      *slog.Logger
	clients  *clients
	executor *durable.Executor
	conv     durable.Converter

	control        []*azqueue.QueueClient
	workItems      *azqueue.QueueClient
	history        *aztables.Client
	instances      *aztables.Client
	largeContainer string

	orchSlots chan struct{}
	actSlots  chan struct{}

	mu       sync.Mutex
	watchers map[string][]chan core.RuntimeStatus
	sessions map[string]*session
	cache    map[string]*cachedSession

	leases *leaseManager
	client *Client

	stats struct {
		episodes, entityBatches, activities, conflicts, outOfOrder, historyLoads atomic.Int64
	}

	ctx      context.Context // cancelled by Stop: ends polling
	cancel   context.CancelFunc
	work     context.Context // cancelled when Stop gives up waiting
	stopWork context.CancelFunc
	wg       sync.WaitGroup // lease manager and work-item polling
	pollers  sync.WaitGroup // control-queue polling, started by the lease manager
	inFlight sync.WaitGroup // work items
	stopOnce sync.Once
}

// Start creates the task hub's queues, tables and containers if needed and
// starts a worker that runs the functions of r (unless cfg.ClientOnly).
func Start(ctx context.Context, cfg Config, r *durable.Registry) (*Backend, error) {
	if r == nil {
		return nil, errors.New("azstorage: Start needs a registry")
	}
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	ep, err := parseConnection(cfg.Storage)
	if err != nil {
		return nil, err
	}
	cl, err := newClients(ep)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, clients: cl, conv: r.Converter(),
		executor:  durable.NewExecutor(r, durable.ExecutorOptions{Logger: cfg.Logger}),
		orchSlots: make(chan struct{}, cfg.MaxConcurrentOrchestrations),
		actSlots:  make(chan struct{}, cfg.MaxConcurrentActivities),
		sessions:  map[string]*session{}, cache: map[string]*cachedSession{}, watchers: map[string][]chan core.RuntimeStatus{},
	}
	hub := cfg.TaskHub
	lower := toLower(hub)
	for i := 0; i < cfg.ControlQueues; i++ {
		b.control = append(b.control, cl.queues.NewQueueClient(controlQueueName(lower, i)))
	}
	b.workItems = cl.queues.NewQueueClient(workItemQueueName(lower))
	b.history = cl.tables.NewClient(historyTableName(hub))
	b.instances = cl.tables.NewClient(instancesTableName(hub))
	b.largeContainer = largeMessageContainer(lower)
	if err := b.createResources(ctx); err != nil {
		return nil, err
	}
	b.client = &Client{b: b}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.work, b.stopWork = context.WithCancel(context.Background())
	if cfg.ClientOnly {
		return b, nil
	}
	b.leases = newLeaseManager(b, leaseContainer(lower))
	if err := b.leases.init(ctx); err != nil {
		return nil, err
	}
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.leases.run(b.ctx)
	}()
	go func() {
		defer b.wg.Done()
		b.pollWorkItems(b.ctx)
	}()
	if cfg.ExtendedSessions {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.evictSessions(b.ctx)
		}()
	}
	return b, nil
}

func toLower(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c >= 'A' && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}

// createResources creates what the task hub needs, tolerating what exists.
func (b *Backend) createResources(ctx context.Context) error {
	for _, q := range append(append([]*azqueue.QueueClient{}, b.control...), b.workItems) {
		if _, err := q.Create(ctx, nil); err != nil && !isStatus(err, 409) {
			return fmt.Errorf("azstorage: create queue %s: %w", q.URL(), err)
		}
	}
	for _, t := range []*aztables.Client{b.history, b.instances} {
		if _, err := t.CreateTable(ctx, nil); err != nil && !isStatus(err, 409) {
			return fmt.Errorf("azstorage: create table: %w", err)
		}
	}
	if _, err := b.clients.blobs.CreateContainer(ctx, b.largeContainer, nil); err != nil && !isStatus(err, 409) {
		return fmt.Errorf("azstorage: create container %s: %w", b.largeContainer, err)
	}
	return nil
}

// Client returns the backend's durable.Client.
func (b *Backend) Client() durable.Client { return b.client }

// WorkerID names this worker in the lease blobs.
func (b *Backend) WorkerID() string { return b.cfg.WorkerID }

// OwnedControlQueues lists the control queues this worker holds leases on.
func (b *Backend) OwnedControlQueues() []int {
	if b.leases == nil {
		return nil
	}
	return b.leases.owned()
}

// Stats returns the request and work counters.
func (b *Backend) Stats() Stats {
	c := b.clients.count
	return Stats{
		QueueReads: c[queueRead].Load(), QueueWrites: c[queueWrite].Load(),
		TableReads: c[tableRead].Load(), TableWrites: c[tableWrite].Load(),
		BlobReads: c[blobRead].Load(), BlobWrites: c[blobWrite].Load(),
		Episodes: b.stats.episodes.Load(), EntityBatches: b.stats.entityBatches.Load(),
		Activities: b.stats.activities.Load(), Conflicts: b.stats.conflicts.Load(), OutOfOrder: b.stats.outOfOrder.Load(),
		HistoryLoads: b.stats.historyLoads.Load(),
	}
}

// Stop stops polling, waits (until ctx is done) for the work items in
// flight to checkpoint, and releases the leases, so that another worker
// takes the control queues at once.
func (b *Backend) Stop(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
		// No poller may start a session once the wait for them begins.
		b.pollers.Wait()
		done := make(chan struct{})
		go func() {
			b.inFlight.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			b.stopWork()
			<-done
			err = fmt.Errorf("azstorage: stop: work items still running: %w", ctx.Err())
		}
		b.stopWork()
		if b.leases != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			b.leases.releaseAll(rctx)
			cancel()
		}
		b.mu.Lock()
		for id, c := range b.cache {
			c.cursor.Release()
			delete(b.cache, id)
		}
		b.mu.Unlock()
	})
	return err
}

// watch returns a channel that receives the status of every write of
// the instance row of id by this process (a checkpoint of this worker, or
// a client write), until unwatch.
func (b *Backend) watch(id string) chan core.RuntimeStatus {
	ch := make(chan core.RuntimeStatus, 64)
	b.mu.Lock()
	b.watchers[id] = append(b.watchers[id], ch)
	b.mu.Unlock()
	return ch
}

func (b *Backend) unwatch(id string, ch chan core.RuntimeStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.watchers[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(b.watchers, id)
	} else {
		b.watchers[id] = ws
	}
}

func (b *Backend) notify(id string, st core.RuntimeStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.watchers[id] {
		select {
		case ch <- st:
		default: // a full channel: the waiter's polling catches up
		}
	}
}
