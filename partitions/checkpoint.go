package partitions

import (
	"fmt"
	"log/slog"
	"time"
)

// CheckpointStore is a commit log that also keeps checkpoints: snapshots
// of the partition state that cover the log up to a mark, after which the
// log before the mark can be dropped.
type CheckpointStore interface {
	CommitLog
	// Mark is the log position after everything appended so far. Only the
	// log worker calls it, between appends.
	Mark() int64
	// Snapshot captures the state for a checkpoint. It runs on the
	// partition's loop, so the state does not change meanwhile; it must do
	// no storage I/O (SaveCheckpoint writes).
	Snapshot(s *State) (*Snapshot, error)
	// SaveCheckpoint durably records snap as the state after the event at
	// lastPos (having read the input queue up to inputPos), covering the
	// log up to mark, and then truncates the log before mark. It runs in
	// the background.
	SaveCheckpoint(snap *Snapshot, lastPos, inputPos uint64, mark int64) error
	// LogBytes counts the bytes appended so far, for the checkpoint
	// policy. Safe for concurrent use.
	LogBytes() int64
}

// CheckpointPolicy says when a partition takes a checkpoint: after this
// many events or bytes of log since the last one, or when it has been idle
// this long with changes. Zero fields take the defaults (10,000 events,
// 20 MB, 60 s).
type CheckpointPolicy struct {
	Events int
	Bytes  int64
	Idle   time.Duration
}

func (c *CheckpointPolicy) normalize() {
	if c.Events <= 0 {
		c.Events = 10000
	}
	if c.Bytes <= 0 {
		c.Bytes = 20 << 20
	}
	if c.Idle <= 0 {
		c.Idle = 60 * time.Second
	}
}

// Snapshot is a captured partition state: the encoded state (without its
// instances when they live in a key-value store) and the instances with
// work to do.
type Snapshot struct {
	State   []byte
	Pending []string
	// flush holds the changed instances for the KV, if there is one.
	flush *dirtyFlush
}

type checkpointJob struct {
	snapshot *Snapshot
	lastPos  uint64
	inputPos uint64
	mark     int64
	done     chan error
	// What the policy counted from before this checkpoint, restored if it
	// fails.
	prevPos   uint64
	prevBytes int64
}

// ckptResult is a checkpoint's outcome, for the loop.
type ckptResult struct {
	job *checkpointJob
	err error
}

// Checkpoint failures are retried with backoff; this many in a row fail
// the partition (its log grows without bound otherwise).
const (
	ckptRetryMin    = 100 * time.Millisecond
	ckptRetryMax    = 30 * time.Second
	ckptMaxFailures = 8
)

// maybeCheckpoint starts a checkpoint if the policy (or force) says so.
// The snapshot is encoded here, on the loop, so it is consistent; writing
// it happens in the background while events keep being applied.
func (p *Partition) maybeCheckpoint(force bool, done chan error) {
	if p.ckptStore == nil {
		if done != nil {
			done <- nil // nothing to checkpoint
		}
		return
	}
	if p.deps.Pending() > 0 {
		// With unconfirmed speculative batches applied, the state
		// depends on steps that may yet be lost: not now.
		if done != nil {
			done <- errSpeculationPending
		}
		return
	}
	if p.ckptBusy.Load() || len(p.unapplied) > 0 {
		if done != nil {
			done <- errCheckpointBusy
		}
		return
	}
	if !force && time.Now().Before(p.ckptRetryAt) {
		return // backing off after a failure
	}
	changes := p.state.LastPos - p.ckptPos
	pol := p.cfg.Checkpoints
	due := force ||
		changes >= uint64(pol.Events) ||
		p.ckptStore.LogBytes()-p.ckptBytes >= pol.Bytes ||
		(p.state.overBudget() && time.Since(p.ckptAt) >= 500*time.Millisecond) ||
		(changes > 0 && time.Since(p.lastEvent) >= pol.Idle)
	if !due || (changes == 0 && !force) {
		if done != nil {
			done <- nil
		}
		return
	}
	t0 := time.Now()
	snap, err := p.ckptStore.Snapshot(p.state)
	if err != nil {
		p.log.Error("checkpoint: encode state", slog.Any("error", err))
		if done != nil {
			done <- err
		}
		return
	}
	p.ckptBusy.Store(true)
	job := &checkpointJob{snapshot: snap, lastPos: p.state.LastPos, inputPos: p.state.NextInputPos, done: done,
		prevPos: p.ckptPos, prevBytes: p.ckptBytes}
	p.ckptPos, p.ckptBytes, p.ckptAt = p.state.LastPos, p.ckptStore.LogBytes(), time.Now()
	p.flushLog()
	p.toLog(logItem{ckpt: job})
	p.log.Debug("checkpoint started", slog.Uint64("pos", p.state.LastPos), slog.Int("bytes", len(snap.State)),
		slog.Duration("encode", time.Since(t0)))
}

// checkpointer writes checkpoints handed over by the log worker.
func (p *Partition) checkpointer() {
	defer close(p.ckptDone)
	for {
		select {
		case job := <-p.ckptCh:
			if p.ctx.Err() != nil {
				if job.done != nil {
					job.done <- ErrStopped
				}
				return // cancelled: no checkpoint
			}
			err := p.ckptStore.SaveCheckpoint(job.snapshot, job.lastPos, job.inputPos, job.mark)
			select {
			case p.ckptResults <- ckptResult{job: job, err: err}:
			case <-p.ctx.Done():
			}
			p.ckptBusy.Store(false)
			if job.done != nil {
				job.done <- err
			}
		case <-p.ctx.Done():
			return
		}
	}
}

// checkpointDone takes a checkpoint's outcome on the loop. A failed one
// does not count: the policy's position goes back, and the next attempt
// waits for a backoff; failing again and again fails the partition.
func (p *Partition) checkpointDone(r ckptResult) {
	if r.err == nil {
		p.ckptFails, p.ckptRetryAt = 0, time.Time{}
		return
	}
	if r.err == errCheckpointBusy {
		// Skipped, not failed: count from where the last one was.
		if p.ckptPos == r.job.lastPos {
			p.ckptPos, p.ckptBytes = r.job.prevPos, r.job.prevBytes
		}
		return
	}
	p.ckptFailures.Add(1)
	p.ckptFails++
	if p.ckptPos == r.job.lastPos {
		p.ckptPos, p.ckptBytes = r.job.prevPos, r.job.prevBytes
	}
	backoff := ckptRetryMin << min(p.ckptFails-1, 10)
	backoff = min(backoff, ckptRetryMax)
	p.ckptRetryAt = time.Now().Add(backoff)
	p.log.Error("checkpoint failed; retrying", slog.Uint64("pos", r.job.lastPos), slog.Int("failures", p.ckptFails),
		slog.Duration("retryIn", backoff), slog.Any("error", r.err))
	if p.ckptFails >= ckptMaxFailures {
		p.fail(fmt.Errorf("partition %d: checkpoint failed %d times in a row: %w", p.cfg.Partition, p.ckptFails, r.err))
		p.cancel()
	}
}
