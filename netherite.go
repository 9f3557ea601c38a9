// Package netherite is the host: it wires storage, transport, partitions,
// workers and the client together.
//
//	r := durable.NewRegistry()
//	samples.Register(r)
//	host, err := netherite.Start(ctx, netherite.Options{}, r)
//	...
//	id, err := host.Client().StartOrchestration(ctx, "HelloSequence", nil)
//	status, err := host.Client().WaitForCompletion(ctx, id, durable.WithPayloads())
//	...
//	host.Stop(ctx)
package netherite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/netherite-go/netherite/azstorage"
	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// Options configure a host. The zero value is a working embedded host.
type Options struct {
	// TaskHub names the deployment (default "default").
	TaskHub string
	// PartitionCount is the number of partitions, 1 to 32 (default 12).
	PartitionCount int
	// Partitions lists the partitions this host runs; nil means all. Hosts
	// that share a transport each run a disjoint subset.
	Partitions []int
	// Storage is where partition state lives: a local directory (default
	// "./netherite-data/<TaskHub>"); an Azure Storage account, given as a
	// connection string, "UseDevelopmentStorage=true" (Azurite) or an
	// account URL (authenticated with DefaultAzureCredential); or "memory"
	// (state lives and dies with the host).
	Storage string
	// RestartBackoff is the wait before a failed partition is restarted;
	// it doubles for each failure in a row, up to 30 s (default 1 s).
	RestartBackoff time.Duration
	// LeaseDuration is the duration of the partition leases in Azure
	// Storage, 15 s to 60 s (default 45 s); they are renewed after two
	// thirds of it. A host that dies holds its partitions until its leases
	// expire.
	LeaseDuration time.Duration
	// Checkpoints says when partitions checkpoint (defaults: 10,000
	// events, 20 MB of log, or 60 s idle with changes).
	Checkpoints partitions.CheckpointPolicy
	// Transport is "memory": in-process queues. Hosts in one process share
	// queues by passing the same SharedTransport.
	Transport       string
	SharedTransport transport.Transport

	// Concurrency limits of the host (defaults 100, 100, 100).
	MaxConcurrentOrchestrations int
	MaxConcurrentEntities       int
	MaxConcurrentActivities     int

	// MemoryCommitDelay, with "memory" storage, makes every commit take
	// this long, as a storage device would: benchmarks use it to count the
	// commits on a workload's critical path without a disk's noise.
	MemoryCommitDelay time.Duration

	// Speculation says what may happen before a step is durable:
	// SpeculationLocal (the default) applies steps and runs what they
	// start at once, but lets nothing another partition or a client can
	// see leave before the step is durable; SpeculationNone makes every
	// step durable before its effects are applied; SpeculationGlobal also
	// sends messages to other partitions before their step is durable
	// (doc/speculation.md).
	Speculation Speculation
	// PersistStepsFirst is Speculation: SpeculationNone. After Start,
	// Host.Options reports it set exactly when the mode is None.
	//
	// Deprecated: set Speculation.
	PersistStepsFirst bool
	// InstanceCacheBytes bounds the orchestration executions kept in
	// memory between episodes (default 256 MiB; negative disables).
	InstanceCacheBytes int64
	// StateCacheBytes is the memory budget for partition state with local
	// or Azure storage (default 256 MiB). It is divided equally over the
	// partitions this host runs; each share goes half to decoded instances
	// and half to the instance store's in-memory pages, and state beyond it
	// is read back from storage when needed. It does not bound instances
	// changed since the last checkpoint (dirty ones stay in memory until a
	// checkpoint writes them, so a burst of writes can exceed it), nor the
	// executions kept by InstanceCacheBytes, queued messages, outboxes or
	// log buffers. With "memory" storage all state is in memory and it has
	// no effect.
	StateCacheBytes int64
	// MaxPayloadBytes bounds inputs, outputs and event payloads (default
	// 16 MiB).
	MaxPayloadBytes int
	// EntityBatchLimit bounds the operations one entity work item runs
	// (default 1000).
	EntityBatchLimit int

	// Backend selects the engine behind the same SDK and Client:
	// "netherite" (the default) or "azstorage", the Azure Storage
	// baseline (DurableTask.AzureStorage's design: control queues, a
	// work-item queue, History and Instances tables), which needs Storage
	// to be an Azure Storage account. It exists to be measured against.
	Backend string
	// AzureStorage tunes the "azstorage" backend; ignored otherwise.
	AzureStorage AzureStorageOptions

	// Logger receives host and user log lines; slog.Default() if nil.
	Logger *slog.Logger
}

// AzureStorageOptions tune the "azstorage" backend. Their defaults are
// Durable Functions' defaults for the Azure Storage provider.
type AzureStorageOptions struct {
	// ControlQueues is the number of control queues, 1 to 16 (default 4).
	ControlQueues int
	// MaxQueuePollingInterval bounds the random exponential back-off of
	// idle queue polling (default 30 s).
	MaxQueuePollingInterval time.Duration
	// ExtendedSessions keeps orchestrations in memory between episodes
	// (default off).
	ExtendedSessions bool
}

// The backends.
const (
	BackendNetherite = "netherite"
	BackendAzStorage = "azstorage"
)

// Speculation is a speculation mode (Options.Speculation).
type Speculation = partitions.Speculation

// The speculation modes.
const (
	SpeculationLocal  = partitions.SpeculationLocal
	SpeculationNone   = partitions.SpeculationNone
	SpeculationGlobal = partitions.SpeculationGlobal
)

// ParseSpeculation reads a mode's name: "none", "local" (or "") or
// "global".
func ParseSpeculation(name string) (Speculation, error) { return partitions.ParseSpeculation(name) }

// Defaults.
const (
	DefaultPartitionCount  = 12
	MaxPartitionCount      = 32
	DefaultMaxPayloadBytes = 16 << 20
	DefaultCacheBytes      = 256 << 20
)

func (o *Options) normalize() error {
	if o.TaskHub == "" {
		o.TaskHub = "default"
	}
	if o.PartitionCount < 0 || o.PartitionCount > MaxPartitionCount {
		return fmt.Errorf("netherite: Options.PartitionCount must be between 1 and %d, got %d", MaxPartitionCount, o.PartitionCount)
	}
	switch o.Storage {
	case "memory":
	case "":
		o.Storage = filepath.Join("netherite-data", o.TaskHub)
	default:
		if strings.Contains(o.Storage, "://") && !strings.HasPrefix(o.Storage, "https://") && !strings.HasPrefix(o.Storage, "http://") &&
			!strings.Contains(o.Storage, "=") {
			return fmt.Errorf("netherite: Options.Storage %s: want a directory, \"memory\", an Azure Storage connection string, "+
				"UseDevelopmentStorage=true, or an account URL", RedactStorage(o.Storage))
		}
	}
	switch {
	case o.PersistStepsFirst && o.Speculation != SpeculationNone && o.Speculation != SpeculationLocal:
		return fmt.Errorf("netherite: Options.PersistStepsFirst contradicts Options.Speculation %v", o.Speculation)
	case o.PersistStepsFirst:
		o.Speculation = SpeculationNone
	case o.Speculation < SpeculationLocal || o.Speculation > SpeculationGlobal:
		return fmt.Errorf("netherite: invalid Options.Speculation %v", o.Speculation)
	}
	o.PersistStepsFirst = o.Speculation == SpeculationNone
	if o.LeaseDuration != 0 && (o.LeaseDuration < 15*time.Second || o.LeaseDuration > 60*time.Second) {
		return fmt.Errorf("netherite: Options.LeaseDuration must be between 15s and 60s, got %v", o.LeaseDuration)
	}
	if o.LeaseDuration != 0 && !isAzureStorage(o.Storage) {
		return fmt.Errorf("netherite: Options.LeaseDuration applies to Azure Storage only; storage %s has no leases", RedactStorage(o.Storage))
	}
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"MaxConcurrentOrchestrations", int64(o.MaxConcurrentOrchestrations)},
		{"MaxConcurrentEntities", int64(o.MaxConcurrentEntities)},
		{"MaxConcurrentActivities", int64(o.MaxConcurrentActivities)},
		{"MaxPayloadBytes", int64(o.MaxPayloadBytes)},
		{"EntityBatchLimit", int64(o.EntityBatchLimit)},
		{"StateCacheBytes", o.StateCacheBytes},
		{"RestartBackoff", int64(o.RestartBackoff)},
	} {
		if c.v < 0 {
			return fmt.Errorf("netherite: Options.%s must not be negative (0 means the default), got %d", c.name, c.v)
		}
	}
	seen := map[int]bool{}
	for _, p := range o.Partitions {
		if seen[p] {
			return fmt.Errorf("netherite: Options.Partitions lists partition %d twice", p)
		}
		seen[p] = true
	}
	if o.Storage == "memory" && o.PartitionCount == 0 {
		o.PartitionCount = DefaultPartitionCount
	}
	switch o.Backend {
	case "", BackendNetherite:
		o.Backend = BackendNetherite
	case BackendAzStorage:
		return o.checkAzStorage()
	default:
		return fmt.Errorf("netherite: unknown Options.Backend %q (want %q or %q)", o.Backend, BackendNetherite, BackendAzStorage)
	}
	switch o.Transport {
	case "", "memory":
		o.Transport = "memory"
	default:
		return fmt.Errorf("netherite: unknown Options.Transport %q (this build supports \"memory\")", o.Transport)
	}
	return nil
}

// checkPlacement checks the options that need the final partition count.
func (o *Options) checkPlacement() error {
	if o.SharedTransport != nil && o.SharedTransport.PartitionCount() != o.PartitionCount {
		return fmt.Errorf("netherite: Options.SharedTransport has %d partitions, Options.PartitionCount is %d",
			o.SharedTransport.PartitionCount(), o.PartitionCount)
	}
	for _, p := range o.Partitions {
		if p < 0 || p >= o.PartitionCount {
			return fmt.Errorf("netherite: Options.Partitions lists %d, outside 0..%d", p, o.PartitionCount-1)
		}
	}
	if o.Partitions != nil && len(o.Partitions) < o.PartitionCount && o.SharedTransport == nil {
		return fmt.Errorf("netherite: Options.Partitions runs %d of the %d partitions, which needs Options.SharedTransport "+
			"(the transport shared with the hosts that run the others); without it requests for the others are never answered",
			len(o.Partitions), o.PartitionCount)
	}
	return nil
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxConcurrentOrchestrations, 100)
	def(&o.MaxConcurrentEntities, 100)
	def(&o.MaxConcurrentActivities, 100)
	def(&o.MaxPayloadBytes, DefaultMaxPayloadBytes)
	def(&o.EntityBatchLimit, 1000)
	if o.InstanceCacheBytes == 0 {
		o.InstanceCacheBytes = DefaultCacheBytes
	}
	if o.RestartBackoff == 0 {
		o.RestartBackoff = defaultRestartBackoff
	}
	if o.StateCacheBytes <= 0 {
		o.StateCacheBytes = DefaultCacheBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Host runs partitions and a client. Each partition it owns runs under a
// partition manager, which restarts it after a failure and stops it when
// its lease is lost (see Partitions).
type Host struct {
	opts         Options
	t            transport.Transport
	ownTransport *transport.Memory
	cursors      *partitions.CursorCache
	hub          *TaskHubParameters
	blobAccount  *blobstore.Account
	managers     []*partitionManager
	owned        map[int]*partitionManager
	client       *client
	executor     *durable.Executor
	registry     *durable.Registry
	// az is the Azure Storage baseline backend, when Options.Backend is
	// "azstorage" (then no partitions, transport or client of ours run).
	az *azstorage.Backend

	stopOnce sync.Once
	stopErr  error
	doneOnce sync.Once
	done     chan struct{}
	errMu    sync.Mutex
	err      error
}

// Start starts a host that runs the functions of r. It returns once every
// partition it owns runs; ctx bounds that wait (for leases held by another
// host, too). A start that fails releases whatever it took.
func Start(ctx context.Context, opts Options, r *durable.Registry) (*Host, error) {
	if r == nil {
		return nil, errors.New("netherite: Start needs a registry")
	}
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	opts.defaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := &Host{opts: opts, registry: r, done: make(chan struct{}), owned: map[int]*partitionManager{}}
	if opts.Backend == BackendAzStorage {
		return h.startAzStorage(ctx)
	}
	var blobHub *blobTaskHub
	switch {
	case opts.Storage == "memory":
	case isAzureStorage(opts.Storage):
		var err error
		if blobHub, err = openBlobTaskHub(ctx, opts.Storage, opts.TaskHub, opts.PartitionCount); err != nil {
			return nil, err
		}
		h.hub, h.blobAccount = blobHub.params, blobHub.account
	default:
		hub, err := openTaskHub(opts.Storage, opts.TaskHub, opts.PartitionCount)
		if err != nil {
			return nil, err
		}
		h.hub = hub
	}
	if h.hub != nil {
		opts.PartitionCount = h.hub.PartitionCount
		h.opts.PartitionCount = h.hub.PartitionCount
	}
	if err := opts.checkPlacement(); err != nil {
		return nil, err
	}
	if opts.SharedTransport != nil {
		h.t = opts.SharedTransport
	} else {
		h.ownTransport = transport.NewMemory(opts.PartitionCount)
		h.t = h.ownTransport
	}
	h.executor = durable.NewExecutor(r, durable.ExecutorOptions{Logger: opts.Logger})
	h.cursors = partitions.NewCursorCache(opts.InstanceCacheBytes)
	list := opts.Partitions
	if list == nil {
		for i := 0; i < opts.PartitionCount; i++ {
			list = append(list, i)
		}
	}
	env := &partitionEnv{
		opts:     opts,
		t:        h.t,
		executor: WorkExecutor(h.executor),
		pools:    partitions.NewPools(opts.MaxConcurrentOrchestrations, opts.MaxConcurrentEntities, opts.MaxConcurrentActivities),
		cursors:  h.cursors,
		hub:      h.hub,
		blobHub:  blobHub,
		log:      opts.Logger,
		fatal:    h.fail,
	}
	if len(list) > 0 {
		// The budget is shared by the partitions this host runs.
		env.cache = opts.StateCacheBytes / int64(len(list))
	}
	// Open (and recover) the partitions in parallel.
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for k, i := range list {
		m := newPartitionManager(env, i)
		h.managers = append(h.managers, m)
		h.owned[i] = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = m.start(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		h.abort()
		return nil, err
	}
	c, err := newClient(h.t, opts, r.Converter())
	if err != nil {
		h.abort()
		return nil, err
	}
	h.client = c
	opts.Logger.Debug("netherite host started", slog.String("taskHub", opts.TaskHub),
		slog.Int("partitions", opts.PartitionCount), slog.Any("owned", list), slog.String("storage", RedactStorage(opts.Storage)))
	return h, nil
}

// abort undoes a start that failed: partitions stop at once, storage,
// locks and leases are released.
func (h *Host) abort() {
	var wg sync.WaitGroup
	for _, m := range h.managers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.abort()
		}()
	}
	wg.Wait()
	h.cursors.Clear()
	if h.ownTransport != nil {
		h.ownTransport.Close()
	}
}

// Client returns the host's client.
func (h *Host) Client() durable.Client {
	if h.az != nil {
		return h.az.Client()
	}
	return h.client
}

// Options returns the host's options with defaults filled in.
func (h *Host) Options() Options { return h.opts }

// Partitions reports every partition of the task hub: those this host runs
// (ok, recovering or failed) and the others (not owned).
func (h *Host) Partitions() []PartitionStatus {
	if h.az != nil {
		return nil
	}
	out := make([]PartitionStatus, h.opts.PartitionCount)
	for i := range out {
		if m := h.owned[i]; m != nil {
			out[i] = m.Status()
		} else {
			out[i] = PartitionStatus{Partition: i, State: PartitionNotOwned}
		}
	}
	return out
}

// Done is closed when the host has stopped (Stop returned), or when one of
// its partitions failed in a way that no restart repairs (see Err); the
// host then still runs its other partitions until Stop.
func (h *Host) Done() <-chan struct{} { return h.done }

// Err returns the failure that closed Done: nil while the host runs and
// after a clean Stop.
func (h *Host) Err() error {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	return h.err
}

// fail records a failure of a partition that no restart repairs.
func (h *Host) fail(partition int, err error) {
	h.errMu.Lock()
	if h.err == nil {
		h.err = fmt.Errorf("netherite: partition %d failed for good: %w", partition, err)
	}
	h.errMu.Unlock()
	h.doneOnce.Do(func() { close(h.done) })
}

// Stats reports storage activity: commit-log writes and events logged.
func (h *Host) Stats() (logWrites, eventsLogged int64) {
	for _, m := range h.managers {
		a, e := m.logStats()
		logWrites += a
		eventsLogged += e
	}
	return
}

// StateStats sums the partitions' state-memory statistics: bytes of
// instances resident, instances read back from storage, and evicted.
func (h *Host) StateStats() (resident, loads, evictions int64) {
	for _, m := range h.managers {
		r, l, e := m.stateStats()
		resident, loads, evictions = resident+r, loads+l, evictions+e
	}
	return
}

// SyncLoads sums the instances the partitions read from storage
// synchronously on their event loops (zero: loads are prefetched).
func (h *Host) SyncLoads() int64 {
	var n int64
	for _, m := range h.managers {
		if inc := m.current(); inc != nil {
			n += inc.part.SyncLoads()
		}
	}
	return n
}

// StorageRequests counts the HTTP requests made to Azure Storage (0 with
// other storage).
func (h *Host) StorageRequests() int64 {
	if h.az != nil {
		return h.az.Stats().Requests()
	}
	if h.blobAccount == nil {
		return 0
	}
	return h.blobAccount.Requests()
}

// TaskHub returns the task hub's parameters (nil with memory storage).
func (h *Host) TaskHub() *TaskHubParameters { return h.hub }

// Stop stops the host gracefully: running work items finish (until ctx is
// done), partitions stop and checkpoint, their storage and leases are
// released, cached executions are released.
func (h *Host) Stop(ctx context.Context) error {
	h.stopOnce.Do(func() {
		if h.az != nil {
			h.stopErr = h.az.Stop(ctx)
			h.doneOnce.Do(func() { close(h.done) })
			return
		}
		var wg sync.WaitGroup
		errs := make([]error, len(h.managers))
		for k, m := range h.managers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = m.stop(ctx)
			}()
		}
		wg.Wait()
		h.stopErr = errors.Join(errs...)
		h.client.close()
		h.cursors.Clear()
		if h.ownTransport != nil {
			h.ownTransport.Close()
		}
		h.doneOnce.Do(func() { close(h.done) })
	})
	return h.stopErr
}

// RedactStorage returns Options.Storage fit for logs and output: the
// values of AccountKey, SharedAccessSignature and any other key or
// signature in a connection string, and the query (a SAS) of an account
// URL, are replaced by "REDACTED".
func RedactStorage(s string) string {
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") {
		if u, err := url.Parse(s); err == nil {
			if u.RawQuery != "" {
				u.RawQuery = "REDACTED"
			}
			if u.User != nil {
				u.User = url.User("REDACTED")
			}
			return u.String()
		}
		return "(an account URL that does not parse)"
	}
	if !strings.Contains(s, "=") {
		return s // a directory or "memory"
	}
	parts := strings.Split(s, ";")
	for i, part := range parts {
		k, _, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch key := strings.ToLower(strings.TrimSpace(k)); {
		case key == "accountname", key == "defaultendpointsprotocol", key == "endpointsuffix",
			key == "usedevelopmentstorage", key == "developmentstorageproxyuri",
			strings.HasSuffix(key, "endpoint") && !strings.Contains(part, "?"):
		default:
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, ";")
}

// Replayed reports the commit log that recovery replayed when this host
// opened its partitions: events applied after the checkpoints, and their
// bytes (0 with memory storage).
func (h *Host) Replayed() (events, bytes int64) {
	for _, m := range h.managers {
		if inc := m.current(); inc != nil && inc.storage != nil {
			e, b := inc.storage.durableStore().Replayed()
			events, bytes = events+e, bytes+b
		}
	}
	return events, bytes
}
