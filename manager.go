package netherite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	// the host waits to take it back.
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
	executor partitions.Executor
	pools    *partitions.Pools
	cursors  *partitions.CursorCache
	hub      *TaskHubParameters // local storage
	blobHub  *blobTaskHub       // Azure Storage
	cache    int64              // state cache bytes of one partition
	log      *slog.Logger
	// fatal reports a failure that no restart repairs.
	fatal func(partition int, err error)
}

// incarnation is one run of a partition: its storage and the partition.
type incarnation struct {
	storage partitionStorage // nil with memory storage
	log     partitions.CommitLog
	part    runningPartition
	cancel  context.CancelFunc // stops the partition at once
	lost    <-chan struct{}    // closed when the lease is lost; nil without a lease
	leaseFn func() error       // why the lease was lost
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
}

func newPartitionManager(env *partitionEnv, index int) *partitionManager {
	ctx, cancel := context.WithCancel(context.Background())
	return &partitionManager{index: index, env: env, log: env.log.With(slog.Int("partition", index)),
		status: PartitionStatus{Partition: index, State: PartitionRecovering, Since: time.Now()},
		ctx:    ctx, cancel: cancel, done: make(chan struct{})}
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
	inc := &incarnation{}
	var st *partitions.State
	switch {
	case e.opts.Storage == "memory":
		inc.log, st = &partitions.MemoryLog{Delay: e.opts.MemoryCommitDelay}, partitions.NewState(m.index, e.opts.PartitionCount)
		owned()
	case e.blobHub != nil:
		bp, s, err := openBlobPartition(ctx, e.blobHub, m.index, e.cache, e.opts.LeaseDuration, owned)
		if err != nil {
			return nil, err
		}
		inc.storage, inc.log, st = bp, bp.store, s
		inc.lost, inc.leaseFn = bp.blobs.Lease.Lost(), bp.blobs.Lease.Err
	default:
		lp, s, err := openLocalPartition(e.opts.Storage, e.hub, m.index, e.cache)
		if err != nil {
			return nil, err
		}
		owned()
		inc.storage, inc.log, st = lp, lp.store, s
	}
	pctx, cancel := context.WithCancel(context.Background())
	part, err := startPartition(pctx, partitions.Config{
		Partition:        m.index,
		Count:            e.opts.PartitionCount,
		Executor:         e.executor,
		Transport:        e.t,
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

// install makes inc the running incarnation.
func (m *partitionManager) install(inc *incarnation) {
	m.mu.Lock()
	m.cur = inc
	m.mu.Unlock()
	m.setState(PartitionOK, nil)
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
			// The host stops: stop gracefully (checkpoint), release.
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
			m.log.Warn("partition lease lost; partition stopped", slog.Any("error", failure))
			m.setState(PartitionNotOwned, failure)
			wait = max(backoff, m.env.leaseDuration())
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

// retire adds the statistics of a finished incarnation to the totals.
func (m *partitionManager) retire(inc *incarnation) {
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
	if e.opts.Storage == "memory" {
		return fmt.Errorf("%w (with memory storage a failed partition cannot be recovered)", failure)
	}
	var v *partitions.EncodingVersionError
	if errors.As(failure, &v) {
		return failure
	}
	return nil
}
