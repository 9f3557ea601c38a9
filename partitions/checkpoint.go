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
	bytes    int64 // log bytes when it was taken
	done     chan error
}

// maybeCheckpoint starts a checkpoint if the policy (or force) says so.
// The snapshot is encoded here, on the loop, so it is consistent; writing
// it happens in the background while events keep being applied.
func (p *Partition) maybeCheckpoint(force bool, done chan error) {
	if p.ckptStore == nil || p.ckptBusy.Load() || len(p.unapplied) > 0 {
		if done != nil {
			done <- errCheckpointBusy
		}
		return
	}
	changes := p.state.LastPos - p.ckptPos
	pol := p.cfg.Checkpoints
	if !force && time.Now().Before(p.ckptRetryAt) {
		return // the last attempt failed: wait out its backoff
	}
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
	p.flushLog()
	p.toLog(logItem{ckpt: &checkpointJob{snapshot: snap, lastPos: p.state.LastPos, inputPos: p.state.NextInputPos,
		bytes: p.ckptStore.LogBytes(), done: done}})
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
				// Stopped at once: no more storage writes.
				p.reportCheckpoint(job, ckptOutcome{skipped: true, err: ErrStopped})
				return
			}
			err := p.ckptStore.SaveCheckpoint(job.snapshot, job.lastPos, job.inputPos, job.mark)
			if err != nil {
				err = fmt.Errorf("partition %d: checkpoint at %d: %w", p.cfg.Partition, job.lastPos, err)
			}
			p.ckptBusy.Store(false)
			p.reportCheckpoint(job, ckptOutcome{lastPos: job.lastPos, bytes: job.bytes, at: time.Now(), err: err})
		case <-p.ctx.Done():
			return
		}
	}
}

// reportCheckpoint answers whoever asked for a checkpoint, records the
// outcome for CheckpointErr, and hands it to the loop.
func (p *Partition) reportCheckpoint(job *checkpointJob, o ckptOutcome) {
	if !o.skipped {
		p.ckptMu.Lock()
		p.ckptErr = o.err
		if o.err != nil {
			p.ckptFails++
		}
		p.ckptMu.Unlock()
	}
	if job.done != nil {
		job.done <- o.err
	}
	select {
	case p.ckptResults <- o:
	case <-p.ctx.Done():
	}
}

// checkpointEnded takes in the outcome of a checkpoint on the loop: a
// success moves the checkpoint position; a failure leaves it and retries
// after a backoff (the policy stays due, as the position did not move).
func (p *Partition) checkpointEnded(o ckptOutcome) {
	switch {
	case o.skipped:
	case o.err != nil:
		p.ckptBackoff = min(max(2*p.ckptBackoff, 100*time.Millisecond), 30*time.Second)
		p.ckptRetryAt = time.Now().Add(p.ckptBackoff)
		p.log.Error("checkpoint failed; will retry", slog.Duration("backoff", p.ckptBackoff), slog.Any("error", o.err))
	default:
		p.ckptBackoff, p.ckptRetryAt = 0, time.Time{}
		if o.lastPos > p.ckptPos {
			p.ckptPos, p.ckptBytes, p.ckptAt = o.lastPos, o.bytes, o.at
		}
	}
}
