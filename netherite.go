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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netherite-go/netherite/azstorage"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// Options configure a host. The zero value is a working embedded host.
type Options struct {
	// TaskHub names the deployment (default "default").
	TaskHub string
	// PartitionCount is the number of partitions, 1 to 32 (default 12).
	PartitionCount int
	// Partitions lists the partitions this host runs; nil means all, an
	// empty (non-nil) list none (a client-only host). Hosts that share a
	// transport (Event Hubs, or one SharedTransport) each run a disjoint
	// subset; placement is static (Elastic places them instead).
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
	// Transport is how partitions and clients exchange messages: "memory"
	// (the default), in-process queues, which hosts in one process share
	// by passing the same SharedTransport; or an Event Hubs connection
	// string ("Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=..."
	// for Azure, or the emulator's with UseDevelopmentEmulator=true), or a
	// namespace's host name ("myns.servicebus.windows.net", signed in with
	// DefaultAzureCredential), which lets hosts in separate processes and
	// machines share the task hub.
	// The Event Hubs transport needs storage that every host reaches: Azure
	// Storage, or a directory for processes on one machine ("memory" storage
	// is refused). Its hubs are made by CreateTaskHub (`netherite taskhub
	// create -transport ...`).
	Transport       string
	SharedTransport transport.Transport
	// EventHubsPrefix is put before the Event Hubs hub names (partitions,
	// clients0..3, loadmonitor), so that several task hubs can share one
	// namespace.
	EventHubsPrefix string
	// EventHubsAdminURL is the admin API of the Event Hubs emulator (as
	// scripts/eventhubs/start.sh prints in NETHERITE_EVENTHUBS_ADMIN), through
	// which hubs are created and deleted. Leave it empty on Azure: there the
	// namespace's endpoint is used, with the connection string's key.
	EventHubsAdminURL string

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

	// Elastic places the partitions over the hosts that share the task
	// hub, by the load monitor (DESIGN.md §7): hosts join and leave, and
	// partitions follow. It needs a transport that every host shares
	// (Options.SharedTransport, or Event Hubs) and storage that every host
	// reaches (a directory or Azure Storage); Options.Partitions must be
	// nil, and the "azstorage" backend has no elastic mode.
	Elastic bool
	// HostID names the host to the load monitor (default
	// "<hostname>-<pid>-<4 random hex digits>"). Every host of a task hub
	// needs its own.
	HostID string
	// LoadReportInterval is how often an elastic host reports its load
	// and its liveness to the load monitor (default 2 s, at least 10 ms).
	LoadReportInterval time.Duration
	// HostTimeout: an elastic host that has not reported for this long is
	// dead, and its partitions are placed elsewhere (default 10 s; at least
	// two LoadReportIntervals).
	HostTimeout time.Duration

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
	if o.Storage == "" {
		o.Storage = filepath.Join("netherite-data", o.TaskHub)
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
	if err := o.normalizeElastic(); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, p := range o.Partitions {
		if seen[p] {
			return fmt.Errorf("netherite: Options.Partitions lists partition %d twice", p)
		}
		seen[p] = true
	}
	switch o.Backend {
	case "", BackendNetherite:
		o.Backend = BackendNetherite
	case BackendAzStorage:
		return o.checkAzStorage()
	default:
		return fmt.Errorf("netherite: unknown Options.Backend %q (want %q or %q)", o.Backend, BackendNetherite, BackendAzStorage)
	}
	return nil
}

// parse normalizes the options and parses the storage and the transport:
// the one place that reads Options.Storage and Options.Transport.
func (o *Options) parse() (taskHubStore, transportSpec, error) {
	if err := o.normalize(); err != nil {
		return nil, nil, err
	}
	store, err := parseStorage(o.Storage)
	if err != nil {
		return nil, nil, err
	}
	setStoreLeaseDuration(store, o.LeaseDuration)
	tspec, err := parseTransport(o)
	if err != nil {
		return nil, nil, err
	}
	if o.LeaseDuration != 0 && !store.leases() {
		return nil, nil, fmt.Errorf("netherite: Options.LeaseDuration applies to Azure Storage only; storage %s has no leases", store)
	}
	if _, inMemory := store.(*memoryStore); inMemory && o.PartitionCount == 0 {
		o.PartitionCount = DefaultPartitionCount
	}
	if o.Elastic {
		if !tspec.crossProcess() {
			return nil, nil, fmt.Errorf("netherite: Options.Elastic needs a transport that every host of the task hub shares: " +
				"Options.SharedTransport (hosts in one process) or an Event Hubs Options.Transport")
		}
		if !store.shared() {
			return nil, nil, noMonitorStore(store)
		}
	}
	if tspec.crossProcess() && o.SharedTransport == nil && !store.shared() {
		return nil, nil, fmt.Errorf("netherite: the %s transport needs storage that every host of the task hub reaches "+
			"(Azure Storage, or a directory for host processes on one machine); %s storage lives and dies with one host", tspec, store)
	}
	return store, tspec, nil
}

// TransportMemory is Options.Transport for in-process queues.
const TransportMemory = "memory"

// IsEventHubsConnection reports whether s names an Event Hubs namespace:
// a connection string (with an Endpoint=sb://... part), or a namespace's
// host name ("sb://myns.servicebus.windows.net" or
// "myns.servicebus.windows.net"), signed in with DefaultAzureCredential.
func IsEventHubsConnection(s string) bool {
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "Endpoint") && strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "sb://") {
			return true
		}
	}
	host := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(s), "sb://"), "/")
	return !strings.ContainsAny(host, "=;/ ") && strings.Count(host, ".") >= 2 && strings.Contains(host, ".servicebus.")
}

// RedactTransport returns Options.Transport fit for logs and output: the
// values of SharedAccessKey, SharedAccessSignature and any other key are
// replaced by "REDACTED"; the endpoint and entity path stay.
func RedactTransport(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	parts := strings.Split(s, ";")
	for i, part := range parts {
		k, _, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint", "entitypath", "sharedaccesskeyname", "usedevelopmentemulator":
		default:
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, ";")
}

// checkPlacement checks the options that need the final partition count.
func (o *Options) checkPlacement(tspec transportSpec) error {
	if o.SharedTransport != nil && o.SharedTransport.PartitionCount() != o.PartitionCount {
		return fmt.Errorf("netherite: Options.SharedTransport has %d partitions, Options.PartitionCount is %d",
			o.SharedTransport.PartitionCount(), o.PartitionCount)
	}
	for _, p := range o.Partitions {
		if p < 0 || p >= o.PartitionCount {
			return fmt.Errorf("netherite: Options.Partitions lists %d, outside 0..%d", p, o.PartitionCount-1)
		}
	}
	if o.Partitions != nil && len(o.Partitions) < o.PartitionCount && !tspec.crossProcess() {
		return fmt.Errorf("netherite: Options.Partitions runs %d of the %d partitions, which needs Options.SharedTransport "+
			"(the transport shared with the hosts that run the others) or an Event Hubs Options.Transport; "+
			"without either, requests for the others are never answered",
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
	opts    Options
	t       transport.Transport
	closeT  func() error         // closes t
	eh      *eventhubs.Transport // t, when it is Event Hubs
	cursors *partitions.CursorCache
	hub     *TaskHubParameters
	store   taskHubStore
	env     *partitionEnv
	// mu guards managers and owned, which change while an elastic host
	// runs.
	mu sync.Mutex
	// managers are the partition managers the host started (an elastic
	// host forgets the ended ones, keeping their statistics in retired);
	// owned the newest of each partition.
	managers []*partitionManager
	owned    map[int]*partitionManager
	// retired sums the log statistics of the elastic host's managers that
	// ended and were forgotten (a host that lives long sees many moves).
	retired [2]int64
	// coord places the partitions of an elastic host (nil otherwise).
	coord    *coordinator
	client   *client
	executor *durable.Executor
	registry *durable.Registry
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
// host, too). A start that fails releases whatever it took. An elastic
// host returns once it has joined the task hub (its first load report is
// sent): its partitions start as the load monitor places them.
func Start(ctx context.Context, opts Options, r *durable.Registry) (*Host, error) {
	if r == nil {
		return nil, errors.New("netherite: Start needs a registry")
	}
	store, tspec, err := opts.parse()
	if err != nil {
		return nil, err
	}
	if testWrapStore != nil {
		store = testWrapStore(store)
	}
	opts.defaults()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := &Host{opts: opts, registry: r, done: make(chan struct{}), owned: map[int]*partitionManager{}, store: store}
	if opts.Backend == BackendAzStorage {
		return h.startAzStorage(ctx)
	}
	if h.hub, err = store.openTaskHub(ctx, opts.TaskHub, opts.PartitionCount); err != nil {
		return nil, err
	}
	if h.hub != nil {
		opts.PartitionCount = h.hub.PartitionCount
		h.opts.PartitionCount = h.hub.PartitionCount
	}
	if err := opts.checkPlacement(tspec); err != nil {
		return nil, err
	}
	if h.t, h.closeT, err = tspec.open(ctx, opts, h.hub, store); err != nil {
		return nil, err
	}
	h.eh, _ = h.t.(*eventhubs.Transport)
	h.executor = durable.NewExecutor(r, durable.ExecutorOptions{Logger: opts.Logger})
	h.cursors = partitions.NewCursorCache(opts.InstanceCacheBytes)
	list := opts.Partitions
	if opts.Elastic {
		list = []int{} // the load monitor places them
	} else if list == nil {
		for i := 0; i < opts.PartitionCount; i++ {
			list = append(list, i)
		}
	}
	env := &partitionEnv{
		opts:     opts,
		t:        h.t,
		eh:       h.eh,
		executor: WorkExecutor(h.executor),
		pools:    partitions.NewPools(opts.MaxConcurrentOrchestrations, opts.MaxConcurrentEntities, opts.MaxConcurrentActivities),
		cursors:  h.cursors,
		store:    store,
		spec:     partitions.NewSpecMemory(),
		log:      opts.Logger,
		fatal:    h.fail,
	}
	if len(list) > 0 {
		// The budget is shared by the partitions this host runs.
		env.cache = opts.StateCacheBytes / int64(len(list))
	}
	h.env = env
	var ms monitorStore
	if opts.Elastic {
		if ms, err = store.monitor(); err != nil {
			h.closeT()
			return nil, err
		}
		env.cacheShare = func() int64 { return opts.StateCacheBytes / int64(max(1, h.coord.placedHere())) }
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
	if opts.Elastic {
		h.coord = newCoordinator(h, ms)
		c.onPlacement(h.coord.placement)
		if err := h.coord.start(); err != nil {
			c.close()
			h.abort()
			return nil, err
		}
	}
	opts.Logger.Debug("netherite host started", slog.String("taskHub", opts.TaskHub),
		slog.Int("partitions", opts.PartitionCount), slog.Any("owned", list), slog.String("storage", RedactStorage(opts.Storage)),
		slog.String("transport", RedactTransport(opts.Transport)))
	return h, nil
}

// testWrapStore, set only by tests, wraps the storage of the hosts
// started (to inject faults).
var testWrapStore func(taskHubStore) taskHubStore

// abort undoes a start that failed: partitions stop at once, storage,
// locks and leases are released.
func (h *Host) abort() {
	var wg sync.WaitGroup
	for _, m := range h.allManagers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.abort()
		}()
	}
	wg.Wait()
	h.cursors.Clear()
	h.closeT()
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
	h.mu.Lock()
	defer h.mu.Unlock()
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
	h.mu.Lock()
	logWrites, eventsLogged = h.retired[0], h.retired[1]
	h.mu.Unlock()
	for _, m := range h.allManagers() {
		a, e := m.logStats()
		logWrites += a
		eventsLogged += e
	}
	return
}

// CommitStats sums the commit-log statistics of the partitions running
// now (commits, bytes, flush and commit time histograms); zero in memory.
func (h *Host) CommitStats() faster.CommitStats {
	var st faster.CommitStats
	for _, m := range h.allManagers() {
		st.Merge(m.commitStats())
	}
	return st
}

// StateStats sums the partitions' state-memory statistics: bytes of
// instances resident, instances read back from storage, and evicted.
func (h *Host) StateStats() (resident, loads, evictions int64) {
	for _, m := range h.allManagers() {
		r, l, e := m.stateStats()
		resident, loads, evictions = resident+r, loads+l, evictions+e
	}
	return
}

// SyncLoads sums the instances the partitions read from storage
// synchronously on their event loops (zero: loads are prefetched).
func (h *Host) SyncLoads() int64 {
	var n int64
	for _, m := range h.allManagers() {
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
	return h.store.requests()
}

// TaskHub returns the task hub's parameters (nil with memory storage).
func (h *Host) TaskHub() *TaskHubParameters { return h.hub }

// Stop stops the host gracefully: running work items finish (until ctx is
// done), partitions stop and checkpoint, their storage and leases are
// released, cached executions are released. An elastic host first tells
// the load monitor that it stops, releases its partitions in parallel (the
// hosts they are placed on take them at once), and gives the load
// monitor's lease up last.
func (h *Host) Stop(ctx context.Context) error {
	h.stopOnce.Do(func() {
		if h.az != nil {
			h.stopErr = h.az.Stop(ctx)
			h.doneOnce.Do(func() { close(h.done) })
			return
		}
		if h.coord != nil {
			h.stopErr = h.coord.stop(ctx)
		}
		var wg sync.WaitGroup
		managers := h.allManagers()
		if h.coord != nil {
			managers = nil // released by the coordinator
		}
		errs := make([]error, len(managers))
		for k, m := range managers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = m.stop(ctx)
			}()
		}
		wg.Wait()
		h.stopErr = errors.Join(h.stopErr, errors.Join(errs...))
		h.client.close()
		h.cursors.Clear()
		if err := h.closeT(); err != nil {
			h.stopErr = errors.Join(h.stopErr, fmt.Errorf("netherite: close the transport: %w", err))
		}
		h.doneOnce.Do(func() { close(h.done) })
	})
	return h.stopErr
}

// allManagers returns every partition manager the host started.
func (h *Host) allManagers() []*partitionManager {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.managers)
}

// newManager makes the manager of partition p (elastic: placed here).
func (h *Host) newManager(p int) *partitionManager {
	m := newPartitionManager(h.env, p)
	h.mu.Lock()
	h.managers = append(h.managers, m)
	h.owned[p] = m
	h.mu.Unlock()
	return m
}

// disown forgets partition p's manager m once it has ended (elastic: the
// partition was released, or its lease lost), unless a newer manager took
// its place; its statistics are kept.
func (h *Host) disown(p int, m *partitionManager) {
	if !m.ended() {
		return
	}
	a, e := m.logStats() // final: the manager has ended
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.owned[p] == m {
		delete(h.owned, p)
	}
	if i := slices.Index(h.managers, m); i >= 0 {
		h.managers = slices.Delete(h.managers, i, i+1)
		h.retired[0] += a
		h.retired[1] += e
	}
}

// kill stops the host at once, as if its process died: partitions stop
// without a checkpoint, leases are not released, an elastic host sends no
// goodbye report (tests).
func (h *Host) kill() {
	h.stopOnce.Do(func() {
		if h.coord != nil {
			h.coord.kill()
		}
		var wg sync.WaitGroup
		for _, m := range h.allManagers() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.kill()
			}()
		}
		wg.Wait()
		h.client.close()
		h.cursors.Clear()
		h.closeT()
		h.doneOnce.Do(func() { close(h.done) })
	})
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
	for _, m := range h.allManagers() {
		if inc := m.current(); inc != nil && inc.storage.durableStore() != nil {
			e, b := inc.storage.durableStore().Replayed()
			events, bytes = events+e, bytes+b
		}
	}
	return events, bytes
}
