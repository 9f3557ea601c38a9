package netherite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// PartitionState is what a host is doing with a partition.
type PartitionState string

const (
	// PartitionOK: the partition runs on this host.
	PartitionOK PartitionState = "ok"
	// PartitionRecovering: the host owns the partition (its lock or lease)
	// and is recovering it from storage, at start or after a failure.
	PartitionRecovering PartitionState = "recovering"
	// PartitionFailed: the partition failed; the host restarts it after a
	// backoff, unless the failure cannot be repaired by a restart.
	PartitionFailed PartitionState = "failed"
	// PartitionNotOwned: the host does not run the partition: it is not in
	// Options.Partitions, the host has stopped, or the lease was lost and
	// the host waits to take it back; with Options.Elastic, the partition
	// is placed on another host, or placed here and waiting for its
	// previous owner to let it go.
	PartitionNotOwned PartitionState = "not owned"
)

// PartitionStatus reports one partition of the task hub.
type PartitionStatus struct {
	Partition int
	State     PartitionState
	// Err is the last failure: why a failed partition failed, why a
	// recovering one is recovering, why an owned one was lost. Nil for a
	// partition that has never failed.
	Err error
	// Restarts counts the restarts after failures and lease losses.
	Restarts int
	// Since is when the partition entered State.
	Since time.Time
}

// Down reports whether the partition is owned by the host but does not
// run: failed, or recovering.
func (s PartitionStatus) Down() bool {
	return s.State == PartitionFailed || s.State == PartitionRecovering
}

// Restart backoff after a failure: doubling from Options.RestartBackoff up
// to maxRestartBackoff; a run longer than stableRun resets it.
const (
	defaultRestartBackoff = time.Second
	maxRestartBackoff     = 30 * time.Second
	stableRun             = time.Minute
)

// partitionEnv is what every partition manager of a host shares.
type partitionEnv struct {
	opts     Options
	t        transport.Transport
	eh       *eventhubs.Transport // t, when it is Event Hubs
	executor partitions.Executor
	pools    *partitions.Pools
	cursors  *partitions.CursorCache
	store    taskHubStore
	spec     *partitions.SpecMemory
	cache    int64 // state cache bytes of one partition
	// cacheShare, if set, gives the state cache bytes of a partition
	// opened now (elastic: the budget divided by the partitions placed
	// here).
	cacheShare func() int64
	log        *slog.Logger
	// fatal reports a failure that no restart repairs.
	fatal func(partition int, err error)
}

// incarnation is one run of a partition: its storage and the partition.
type incarnation struct {
	storage partitionStorage
	log     partitions.CommitLog
	part    runningPartition
	cancel  context.CancelFunc // stops the partition at once
	lost    <-chan struct{}    // closed when the lease is lost; nil without a lease
	leaseFn func() error       // why the lease was lost
	// fence reports that the partition's Event Hubs receiver was taken
	// over by another owner (nil with other transports).
	fence *fencedTransport
}

// fenced is closed when another host took the partition's input queue.
func (inc *incarnation) fenced() <-chan struct{} {
	if inc.fence == nil {
		return nil
	}
	return inc.fence.lost
}

func (inc *incarnation) closeStorage() error {
	if inc.storage == nil {
		return nil
	}
	return inc.storage.close()
}

// partitionManager runs one partition on its host: it takes the
// partition's storage (lock file or lease), recovers it, runs it, and
// watches the partition and the lease. On a lease loss it stops the
// partition at once; on a failure it restarts it, after a backoff, by
// recovering from storage; on Stop it stops the partition (which
// checkpoints) and releases the storage.
type partitionManager struct {
	index int
	env   *partitionEnv
	log   *slog.Logger

	mu     sync.Mutex
	status PartitionStatus
	cur    *incarnation
	base   [2]int64 // log statistics of earlier incarnations

	ctx     context.Context // ends when the host stops the manager
	cancel  context.CancelFunc
	stopCtx context.Context // Stop's context, for the last stop
	stopErr error
	done    chan struct{}
	// killing: the manager stops as if the process died (tests).
	killing atomic.Bool
	created time.Time
}

func newPartitionManager(env *partitionEnv, index int) *partitionManager {
	ctx, cancel := context.WithCancel(context.Background())
	log := env.log.With(slog.Int("partition", index))
	if env.opts.Elastic {
		log = log.With(slog.String("host", env.opts.HostID)) // partitions move between hosts
	}
	return &partitionManager{index: index, env: env, log: log,
		status: PartitionStatus{Partition: index, State: PartitionRecovering, Since: time.Now()},
		ctx:    ctx, cancel: cancel, done: make(chan struct{}), created: time.Now()}
}

func (m *partitionManager) setState(s PartitionState, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s != m.status.State {
		m.status.Since = time.Now()
	}
	m.status.State = s
	if err != nil {
		m.status.Err = err
	}
}

// Status returns the partition's status.
func (m *partitionManager) Status() PartitionStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// open takes the partition's storage, recovers its state and starts it.
// Whatever it took is released if it fails.
func (m *partitionManager) open(ctx context.Context) (*incarnation, error) {
	e := m.env
	owned := func() { m.setState(PartitionRecovering, nil) }
	cache := e.cache
	if e.cacheShare != nil {
		cache = e.cacheShare()
	}
	// Elastic: the previous owner may be handing the partition over; wait
	// for its release (or its lease's expiry) until the placement moves
	// the partition away (ctx).
	ps, st, err := e.store.openPartition(ctx, m.index, partitionOpen{count: e.opts.PartitionCount, cache: cache,
		lease: e.opts.LeaseDuration, memoryDelay: e.opts.MemoryCommitDelay, owned: owned, wait: e.opts.Elastic})
	if err != nil {
		return nil, err
	}
	inc := &incarnation{storage: ps, log: ps.commitLog()}
	inc.lost, inc.leaseFn = ps.lease()
	t := e.t
	if e.eh != nil {
		// The Event Hubs receiver of this ownership fences out the earlier
		// owners' (see ownerlevel.go).
		level, err := nextOwnerLevel(inc.storage.metaStore(), time.Now())
		if err != nil {
			return nil, errors.Join(fmt.Errorf("netherite: partition %d: %w", m.index, err), inc.closeStorage())
		}
		if ol, ok := any(e.eh).(ownerLeveler); ok {
			ol.SetOwnerLevel(m.index, level)
		}
		inc.fence = newFencedTransport(e.t)
		t = inc.fence
	}
	pctx, cancel := context.WithCancel(context.Background())
	part, err := startPartition(pctx, partitions.Config{
		Partition:        m.index,
		Count:            e.opts.PartitionCount,
		Executor:         e.executor,
		Transport:        t,
		Log:              inc.log,
		Pools:            e.pools,
		Cursors:          e.cursors,
		Speculation:      e.opts.Speculation,
		EntityBatchLimit: e.opts.EntityBatchLimit,
		MaxPayloadBytes:  e.opts.MaxPayloadBytes,
		Logger:           e.opts.Logger,
		Checkpoints:      e.opts.Checkpoints,
	}, st)
	if err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("netherite: partition %d: start: %w", m.index, err), inc.closeStorage())
	}
	inc.part, inc.cancel = part, cancel
	return inc, nil
}

// start opens the partition for the first time (Start's ctx bounds the
// wait for its lease) and then supervises it in the background.
func (m *partitionManager) start(ctx context.Context) error {
	inc, err := m.open(ctx)
	if err != nil {
		m.setState(PartitionNotOwned, err)
		close(m.done)
		return err
	}
	m.install(inc)
	go m.run(inc)
	return nil
}

// startElastic takes the partition in the background (elastic placement):
// the acquire waits for the previous owner until the partition runs, or
// release cancels it.
func (m *partitionManager) startElastic() {
	// Not owned until the lock or lease is taken (then: recovering).
	m.setState(PartitionNotOwned, nil)
	go m.run(nil)
}

// install makes inc the running incarnation.
func (m *partitionManager) install(inc *incarnation) {
	m.mu.Lock()
	m.cur = inc
	m.mu.Unlock()
	m.setState(PartitionOK, nil)
	if m.env.opts.Elastic {
		now := time.Now()
		partitionEvent(m.env.opts.HostID, m.index, "running", now)
		m.log.Info("partition running", slog.Duration("sinceAssigned", now.Sub(m.created)))
	}
}

// run supervises the partition until the host stops it.
func (m *partitionManager) run(inc *incarnation) {
	defer close(m.done)
	backoff := m.env.opts.RestartBackoff
	for {
		if inc == nil {
			var err error
			inc, err = m.open(m.ctx)
			if err != nil {
				if m.ctx.Err() != nil {
					m.setState(PartitionNotOwned, nil)
					return
				}
				m.log.Warn("partition restart failed", slog.Any("error", err), slog.Duration("retryIn", backoff))
				m.setState(PartitionFailed, err)
				if !m.sleep(backoff) {
					m.setState(PartitionNotOwned, nil)
					return
				}
				backoff = min(2*backoff, maxRestartBackoff)
				continue
			}
			m.install(inc)
		}
		started := time.Now()

		var failure error
		leaseLost := false
		select {
		case <-m.ctx.Done():
			if m.killing.Load() {
				// As if the process died: nothing checkpointed, the lease
				// left to expire.
				inc.cancel()
				<-inc.part.Done()
				m.retire(inc)
				if err := inc.storage.abandon(); err != nil {
					m.log.Warn("abandoning the storage of a killed partition", slog.Any("error", err))
				}
				m.setState(PartitionNotOwned, nil)
				return
			}
			// The host stops or the placement moved the partition:
			// stop gracefully (checkpoint), release.
			err := inc.part.Stop(m.stopCtx)
			m.retire(inc)
			m.stopErr = errors.Join(err, inc.closeStorage())
			m.setState(PartitionNotOwned, nil)
			return
		case <-inc.lost:
			// Another host may own the partition now: no more reads,
			// work items or sends from this one.
			inc.cancel()
			<-inc.part.Done()
			leaseLost = true
			failure = fmt.Errorf("netherite: partition %d: %w", m.index, inc.leaseFn())
		case <-inc.fenced():
			// Another host reads the partition's input queue: it owns the
			// partition (its lease may not have expired for this host yet).
			inc.cancel()
			<-inc.part.Done()
			leaseLost = true
			failure = fmt.Errorf("netherite: %w", inc.fence.lostErr())
		case <-inc.part.Done():
			failure = inc.part.Err()
			if failure == nil {
				failure = fmt.Errorf("netherite: partition %d stopped on its own", m.index)
			}
		}
		inc.cancel()
		m.retire(inc)
		if err := inc.closeStorage(); err != nil {
			m.log.Warn("closing the storage of a stopped partition", slog.Any("error", err))
		}
		inc = nil
		if m.ctx.Err() != nil {
			// Stopped by the host while it failed (or by abort).
			m.setState(PartitionNotOwned, nil)
			return
		}
		if leaseLost && m.env.opts.Elastic {
			// The placement decides: if the partition is still placed
			// here, the coordinator starts a new manager, which waits
			// for the lease.
			m.log.Warn("partition lost to another owner (lease or input queue); partition stopped", slog.Any("error", failure))
			m.setState(PartitionNotOwned, failure)
			return
		}
		m.mu.Lock()
		m.status.Restarts++
		m.mu.Unlock()
		if time.Since(started) > stableRun {
			backoff = m.env.opts.RestartBackoff
		}
		wait := backoff
		if leaseLost {
			// Usually another host took the partition over: give it a lease
			// period before trying to take it back.
			m.log.Warn("partition lost to another owner (lease or input queue); partition stopped", slog.Any("error", failure))
			m.setState(PartitionNotOwned, failure)
			wait = max(backoff, m.env.leaseDuration())
		} else if errors.Is(failure, partitions.ErrSpeculationLost) {
			// A rollback (global speculation): at once, no backoff.
			m.log.Warn("partition rolled back; recovering it from storage", slog.Any("error", failure))
			m.setState(PartitionFailed, failure)
			wait = 0
		} else {
			m.log.Error("partition failed; restarting it from storage", slog.Any("error", failure), slog.Duration("after", backoff))
			m.setState(PartitionFailed, failure)
			if permanent := m.env.permanent(failure); permanent != nil {
				m.env.fatal(m.index, permanent)
				<-m.ctx.Done()
				m.setState(PartitionNotOwned, nil)
				return
			}
			backoff = min(2*backoff, maxRestartBackoff)
		}
		if !m.sleep(wait) {
			m.setState(PartitionNotOwned, nil)
			return
		}
	}
}

// retire adds the statistics of a finished incarnation to the totals, and
// closes its Event Hubs receiver (the next one opens with the next
// ownership's owner level). The partition has stopped; its storage (lock
// or lease) is closed or abandoned next.
func (m *partitionManager) retire(inc *incarnation) {
	if m.env.opts.Elastic {
		partitionEvent(m.env.opts.HostID, m.index, "stopped", time.Now())
	}
	if m.env.eh != nil {
		m.env.eh.ReleasePartition(m.index)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := inc.log.(interface{ Stats() (int64, int64) }); ok {
		a, e := s.Stats()
		m.base[0] += a
		m.base[1] += e
	}
	if m.cur == inc {
		m.cur = nil
	}
}

// sleep waits d; false if the host stops meanwhile.
func (m *partitionManager) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.ctx.Done():
		return false
	}
}

// stop stops the partition gracefully and releases its storage.
func (m *partitionManager) stop(ctx context.Context) error {
	m.stopCtx = ctx
	m.cancel()
	<-m.done
	return m.stopErr
}

// release stops the partition gracefully (checkpoint), closes its storage
// (which releases its lock or lease) and ends the manager: the partition
// was placed elsewhere, or the host stops. An acquire still waiting is
// cancelled.
func (m *partitionManager) release(ctx context.Context) error {
	return m.stop(ctx)
}

// kill stops the partition at once, as if the process died: no
// checkpoint, and the lease is not released (tests).
func (m *partitionManager) kill() {
	m.killing.Store(true)
	m.cancel()
	<-m.done
}

// ended reports whether the manager has ended (released, stopped, or, in
// elastic mode, its lease was lost).
func (m *partitionManager) ended() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// running returns the incarnation if the partition runs, else nil.
func (m *partitionManager) running() *incarnation {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.status.State != PartitionOK {
		return nil
	}
	return m.cur
}

// abort stops the partition at once, without a checkpoint, and releases its
// storage (a start that failed elsewhere).
func (m *partitionManager) abort() {
	m.mu.Lock()
	inc := m.cur
	m.mu.Unlock()
	if inc != nil {
		inc.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.stop(ctx)
}

// logStats sums the commit-log statistics of every incarnation.
func (m *partitionManager) logStats() (appends, entries int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	appends, entries = m.base[0], m.base[1]
	if m.cur != nil {
		if s, ok := m.cur.log.(interface{ Stats() (int64, int64) }); ok {
			a, e := s.Stats()
			appends, entries = appends+a, entries+e
		}
	}
	return
}

// commitStats returns the running incarnation's commit-log statistics
// (zero without a durable store).
func (m *partitionManager) commitStats() faster.CommitStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		if s, ok := m.cur.log.(interface{ CommitStats() faster.CommitStats }); ok {
			return s.CommitStats()
		}
	}
	return faster.CommitStats{}
}

// current returns the running incarnation (nil while there is none).
func (m *partitionManager) current() *incarnation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

// stateStats reports the running incarnation's state statistics.
func (m *partitionManager) stateStats() (resident, loads, evictions int64) {
	m.mu.Lock()
	inc := m.cur
	m.mu.Unlock()
	if inc == nil {
		return 0, 0, 0
	}
	return inc.part.StateStats()
}

func (e *partitionEnv) leaseDuration() time.Duration {
	if e.opts.LeaseDuration > 0 {
		return e.opts.LeaseDuration
	}
	return 45 * time.Second
}

// permanent returns an error if failure cannot be repaired by a restart:
// with memory storage the state is gone; a newer storage format stays.
func (e *partitionEnv) permanent(failure error) error {
	if _, inMemory := e.store.(*memoryStore); inMemory {
		return fmt.Errorf("%w (with memory storage a failed partition cannot be recovered)", failure)
	}
	var v *partitions.EncodingVersionError
	if errors.As(failure, &v) {
		return failure
	}
	return nil
}
