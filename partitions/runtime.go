package partitions

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// Pools bound the work a host runs at once, across its partitions.
type Pools struct {
	Orchestrations chan struct{}
	Entities       chan struct{}
	Activities     chan struct{}
}

// NewPools returns pools with the given limits (at least 1 each).
func NewPools(orchestrations, entities, activities int) *Pools {
	m := func(n int) chan struct{} {
		if n < 1 {
			n = 1
		}
		return make(chan struct{}, n)
	}
	return &Pools{Orchestrations: m(orchestrations), Entities: m(entities), Activities: m(activities)}
}

// Config configures a partition runtime.
type Config struct {
	Partition int
	Count     int
	Executor  Executor
	Transport transport.Transport
	Log       CommitLog
	Pools     *Pools
	Cursors   *CursorCache
	// Speculation says what may happen before a step is durable
	// (default SpeculationLocal).
	Speculation Speculation
	// PersistStepsFirst is SpeculationNone.
	//
	// Deprecated: set Speculation.
	PersistStepsFirst bool
	// CoalesceWindow is how long the log may hold events back while work
	// items they started are running, so that one commit covers an event
	// and the step it caused (default 1 ms; negative: never hold). See
	// doc/hops.md.
	CoalesceWindow time.Duration
	// EntityBatchLimit caps the operations of one entity work item.
	EntityBatchLimit int
	// MaxPayloadBytes caps orchestration outputs and custom status; larger
	// ones fail the orchestration.
	MaxPayloadBytes int
	// SpecMemory keeps what partitions learnt of each other's
	// incarnations across their restarts (global speculation; one per
	// host; nil: none).
	SpecMemory *SpecMemory
	// Courier tunes acks, resends and send retries (Self and Count are
	// set from Partition and Count).
	Courier CourierConfig
	// Checkpoints says when to checkpoint (if Log is a CheckpointStore).
	Checkpoints CheckpointPolicy
	Logger      *slog.Logger
}

// Partition runs one partition: it reads its input queue, logs and
// applies update events in order, runs work items, fires timers, and sends
// what the state machine produces once it is durable.
type Partition struct {
	cfg   Config
	state *State
	log   *slog.Logger

	intake chan intakeItem
	logCh  chan logItem
	ckptCh chan *checkpointJob

	durableMu  sync.Mutex
	durableMsg durableMark
	durableSig chan struct{}

	// Owned by the loop goroutine.
	pos        uint64 // last assigned commit position
	durablePos uint64
	logBuf     []LogEntry
	inputSeen  uint64
	unapplied  []LogEntry
	ready      map[string]bool
	readyList  []string
	busy       map[string]bool
	running    map[uint64]bool // activities started
	unsent     []*OutboxBatch
	responses  []pendingResponse
	waiters    map[string][]waiter
	received   []receivedMark
	courier    *Courier
	deps       *SpecDeps // speculative batches applied, not yet confirmed
	// incarnation tells this run of the partition from others in the
	// host's cursor cache: generation numbers repeat after a rollback or
	// a restart, and a work item of a stopped run may still put its
	// cursor (of steps that were lost) after the next run began.
	incarnation uint64
	// quarantine, after a rollback, is the input position to read up to
	// (with no speculative batch unsettled) before sending speculatively
	// again (0: none).
	quarantine uint64
	sendTimer  *time.Timer
	// holding lists the work items started while events waited in logBuf:
	// the log holds those events back (at most CoalesceWindow from
	// holdSince) until the items' results join them in one commit.
	holding    map[string]bool
	holdSince  time.Time
	flushTimer *time.Timer
	sendFails  int
	timers     *timerQueue
	draining   bool
	inFlight   sync.WaitGroup

	stats struct{ resident, loads, evictions, syncLoads, parked, outbox, waiters atomic.Int64 }
	// loadStats feeds LoadSample (load.go).
	loadStats loadStats
	pf        *prefetcher // nil without a backing store

	ckptStore CheckpointStore
	ckptBusy  atomic.Bool
	ckptPos   uint64
	ckptBytes int64
	ckptAt    time.Time
	ckptDone  chan struct{}
	lastEvent time.Time

	cancel  context.CancelFunc
	ctx     context.Context
	done    chan struct{}
	logDone chan struct{}
	// stopping is closed by Stop: queued activities and work items give
	// up their turn, running activities see their context cancelled.
	stopping     chan struct{}
	stopOnce     sync.Once
	actCtx       context.Context
	actCancel    context.CancelFunc
	stopped      chan struct{} // closed when every goroutine has ended (Done)
	ckptResults  chan ckptResult
	ckptFails    int // consecutive checkpoint failures
	ckptRetryAt  time.Time
	ckptFailures atomic.Int64
	failMu       sync.Mutex
	failed       error // first fatal error; guarded by failMu
}

type intakeItem struct {
	update Event
	read   *transport.ClientRequest
	// inputPos is the queue position after this item, for trimming.
	inputPos uint64
	// drain stops the start of new work; drained, if set, is closed once
	// the loop has taken it (no work item or activity starts after that).
	drain   bool
	drained chan struct{}
	// checkpoint asks for a checkpoint now; the result goes to the channel.
	checkpoint chan error
	// resend is another partition's request to resend (not logged).
	resend *transport.ResendRequest
	// specEpoch tags a speculative batch (update is its MessagesReceived).
	specEpoch uint64
	// confirm is another partition's confirmation (not logged).
	confirm *transport.Confirm
	// flushed is closed once everything logged so far is written.
	flushed chan struct{}
	// released is closed once what the log made durable so far has been
	// released and sent (Stop's last step before it cancels the loop).
	released chan struct{}
	// at is when the item was handed to the loop (its wait is measured
	// for the latency trend).
	at time.Time
}

type durableMark struct {
	pos      uint64
	inputPos uint64
}

type pendingResponse struct {
	pos  uint64
	resp Response
}

type waiter struct {
	kind transport.RequestKind
	req  *transport.ClientRequest
}

type receivedMark struct {
	commitPos uint64
	origin    int
	originPos uint64
}

// Start runs a partition on state (a new or recovered one). Cancelling ctx
// stops it at once: no more reads, work items, activities, sends or log
// writes, and no checkpoint (the host does so when it loses the lease).
// Stop stops it gracefully; Done and Err report when and why it stopped.
func Start(ctx context.Context, cfg Config, state *State) (*Partition, error) {
	if err := cfg.validate(state); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("partition %d: start: %w", cfg.Partition, err)
	}
	if cfg.EntityBatchLimit <= 0 {
		cfg.EntityBatchLimit = 1000
	}
	if cfg.PersistStepsFirst {
		cfg.Speculation, cfg.PersistStepsFirst = SpeculationNone, false
	}
	if cfg.CoalesceWindow == 0 {
		cfg.CoalesceWindow = time.Millisecond
	}
	cfg.Courier.Self, cfg.Courier.Count = cfg.Partition, cfg.Count
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Log == nil {
		cfg.Log = &MemoryLog{}
	}
	cfg.Checkpoints.normalize()
	ctx, cancel := context.WithCancel(ctx)
	actCtx, actCancel := context.WithCancel(ctx)
	p := &Partition{
		stopping:    make(chan struct{}),
		actCtx:      actCtx,
		actCancel:   actCancel,
		stopped:     make(chan struct{}),
		ckptResults: make(chan ckptResult, 4), // room for the skip path, which the loop may wait on
		cfg:         cfg,
		state:       state,
		log:         cfg.Logger.With(slog.Int("partition", cfg.Partition)),
		intake:      make(chan intakeItem, 4096),
		logCh:       make(chan logItem, 256),
		ckptCh:      make(chan *checkpointJob, 1),
		durableSig:  make(chan struct{}, 1),
		pos:         state.LastPos,
		durablePos:  state.LastPos,
		inputSeen:   state.NextInputPos,
		ckptPos:     state.LastPos,
		lastEvent:   time.Now(),
		ready:       map[string]bool{},
		busy:        map[string]bool{},
		running:     map[uint64]bool{},
		waiters:     map[string][]waiter{},
		courier:     NewCourier(cfg.Courier),
		deps:        NewSpecDeps(state.Learnt, cfg.SpecMemory.Get(cfg.Partition)),
		quarantine:  cfg.SpecMemory.Quarantine(cfg.Partition),
		incarnation: runs.Add(1),
		sendTimer:   time.NewTimer(time.Hour),
		flushTimer:  time.NewTimer(time.Hour),
		holding:     map[string]bool{},
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
		logDone:     make(chan struct{}),
	}
	p.timers = newTimerQueue(p.submitTimers)
	p.loadStats.init(state.NextInputPos)
	p.courier.SetEpochs(state.Epochs)
	p.courier.SetDurable(state.LastPos)
	// The recovered dedup marks are durable: acknowledge them again, in
	// case the acks were lost with the previous owner.
	for origin, m := range state.Dedup {
		p.courier.DurableMark(origin, m.Pos, time.Now())
	}
	state.GoLive()
	p.pf = newPrefetcher(state)
	p.ckptStore, _ = cfg.Log.(CheckpointStore)
	if p.ckptStore != nil {
		p.ckptDone = make(chan struct{})
		go p.checkpointer()
	}
	go p.logWorker()
	go p.loop()
	go func() {
		<-p.done
		<-p.logDone
		if p.ckptDone != nil {
			<-p.ckptDone
		}
		p.actCancel()
		p.timers.stop()
		close(p.stopped)
	}()
	// The first event restarts what was volatile.
	p.put(intakeItem{update: &RecoveryCompleted{Learnt: Learnt(cfg.SpecMemory.Get(cfg.Partition))}})
	go p.receive(state.NextInputPos)
	return p, nil
}

// validate checks a configuration, naming the field at fault.
func (cfg *Config) validate(state *State) error {
	switch {
	case cfg.Count < 1:
		return fmt.Errorf("partitions: Config.Count must be at least 1, got %d", cfg.Count)
	case cfg.Partition < 0 || cfg.Partition >= cfg.Count:
		return fmt.Errorf("partitions: Config.Partition must be in 0..%d, got %d", cfg.Count-1, cfg.Partition)
	case cfg.Executor == nil:
		return fmt.Errorf("partitions: partition %d: Config.Executor is nil", cfg.Partition)
	case cfg.Transport == nil:
		return fmt.Errorf("partitions: partition %d: Config.Transport is nil", cfg.Partition)
	case cfg.Transport.PartitionCount() != cfg.Count:
		return fmt.Errorf("partitions: partition %d: Config.Transport has %d partitions, Config.Count is %d",
			cfg.Partition, cfg.Transport.PartitionCount(), cfg.Count)
	case cfg.Pools == nil:
		return fmt.Errorf("partitions: partition %d: Config.Pools is nil", cfg.Partition)
	case state == nil:
		return fmt.Errorf("partitions: partition %d: state is nil", cfg.Partition)
	case state.Partition != cfg.Partition || state.Count != cfg.Count:
		return fmt.Errorf("partitions: state is of partition %d of %d, Config says partition %d of %d",
			state.Partition, state.Count, cfg.Partition, cfg.Count)
	case cfg.PersistStepsFirst && cfg.Speculation != SpeculationLocal && cfg.Speculation != SpeculationNone:
		return fmt.Errorf("partitions: partition %d: Config.PersistStepsFirst contradicts Config.Speculation %v", cfg.Partition, cfg.Speculation)
	case !cfg.Speculation.valid():
		return fmt.Errorf("partitions: partition %d: invalid Config.Speculation %v", cfg.Partition, cfg.Speculation)
	case cfg.Speculation == SpeculationGlobal && !carriesSpeculation(cfg.Transport):
		return fmt.Errorf("partitions: partition %d: Config.Speculation global needs a transport that carries speculative batches (%T does not say it does)", cfg.Partition, cfg.Transport)
	case cfg.EntityBatchLimit < 0:
		return fmt.Errorf("partitions: partition %d: Config.EntityBatchLimit is negative (%d)", cfg.Partition, cfg.EntityBatchLimit)
	case cfg.MaxPayloadBytes < 0:
		return fmt.Errorf("partitions: partition %d: Config.MaxPayloadBytes is negative (%d)", cfg.Partition, cfg.MaxPayloadBytes)
	}
	return nil
}

// Done is closed when the partition has stopped, for any reason: Stop,
// the cancellation of Start's context, or a fatal error (see Err).
func (p *Partition) Done() <-chan struct{} { return p.stopped }

// Err returns the fatal error that stopped the partition: nil while it
// runs and after a clean Stop or a cancellation.
func (p *Partition) Err() error {
	select {
	case <-p.stopped:
		return p.failure()
	default:
		return nil
	}
}

// CheckpointFailures counts the checkpoints that failed. Safe for
// concurrent use.
func (p *Partition) CheckpointFailures() int64 { return p.ckptFailures.Load() }

// StateStats reports the bytes of instances resident in memory, and how
// many were read back from storage and evicted so far. Safe for
// concurrent use.
func (p *Partition) StateStats() (resident, loads, evictions int64) {
	return p.stats.resident.Load(), p.stats.loads.Load(), p.stats.evictions.Load()
}

// SyncLoads counts the instances read from storage synchronously on the
// partition's loop; prefetching keeps it at zero. Safe for concurrent use.
func (p *Partition) SyncLoads() int64 { return p.stats.syncLoads.Load() }

// OutboxLen returns the number of batches in the outbox (not yet
// acknowledged by their destination). Safe for concurrent use.
func (p *Partition) OutboxLen() int { return int(p.stats.outbox.Load()) }

// State returns the partition's state. Only for tests, after Stop.
func (p *Partition) State() *State { return p.state }

func (p *Partition) put(it intakeItem) bool {
	if it.at.IsZero() {
		it.at = time.Now()
	}
	select {
	case p.intake <- it:
		return true
	case <-p.done:
		return false
	}
}

// receive reads the input queue and turns packets into events.
func (p *Partition) receive(from uint64) {
	var fails int
	var backoff time.Duration
	for {
		pkts, next, err := p.cfg.Transport.ReceivePartition(p.ctx, p.cfg.Partition, from)
		if err != nil {
			switch {
			case p.ctx.Err() != nil || errors.Is(err, transport.ErrClosed):
				return
			case errors.Is(err, transport.ErrPositionGone):
				// Reading on would skip packets: exactly-once is lost.
				p.log.Error("input queue position is gone; stopping partition", slog.Uint64("position", from), slog.Any("error", err))
				p.fail(fmt.Errorf("partition %d: receive at input position %d: %w", p.cfg.Partition, from, err))
				p.cancel()
				return
			}
			fails++
			backoff = min(max(2*backoff, 10*time.Millisecond), 2*time.Second)
			if fails%5 == 0 {
				p.log.Warn("receive failed; retrying", slog.Int("failures", fails), slog.Duration("backoff", backoff), slog.Any("error", err))
			}
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		fails, backoff = 0, 0
		for i, pk := range pkts {
			it := intakeItem{inputPos: from + uint64(i) + 1}
			switch {
			case pk.Request != nil && !pk.Request.Kind.IsUpdate():
				it.read = pk.Request
			case pk.Request != nil:
				it.update = &ClientRequestReceived{InputPos: it.inputPos, Request: pk.Request}
			case pk.Messages != nil:
				it.update = &MessagesReceived{InputPos: it.inputPos, Batch: pk.Messages}
				it.specEpoch = pk.SpecEpoch
			case pk.Confirm != nil:
				it.confirm = pk.Confirm
			case pk.Ack != nil:
				it.update = &AckReceived{InputPos: it.inputPos, Ack: pk.Ack}
			case pk.Resend != nil:
				it.resend = pk.Resend
			default:
				continue
			}
			if !p.put(it) {
				return
			}
			p.loadStats.readPos.Store(it.inputPos)
		}
		from = next
	}
}

func (p *Partition) loop() {
	defer close(p.done)
	defer p.sendTimer.Stop()
	defer p.flushTimer.Stop()
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for {
		select {
		case it := <-p.intake:
			p.arrive(it)
		drain:
			for n := 0; n < 4096; n++ {
				select {
				case it = <-p.intake:
					p.arrive(it)
				default:
					break drain
				}
			}
			p.maybeCheckpoint(false, nil)
		case r := <-p.loadResults():
			p.loaded(r)
		case <-p.durableSig:
			p.applyDurable()
		case <-p.sendTimer.C:
		case <-p.flushTimer.C:
		case r := <-p.ckptResults:
			p.checkpointDone(r)
		case <-idle.C:
			p.expireWaiters(time.Now())
			p.maybeCheckpoint(false, nil)
		case <-p.loadStats.refresh:
			p.refreshLoad(time.Now())
		case <-p.ctx.Done():
			return
		}
		if p.ctx.Err() != nil {
			return // cancelled meanwhile: no new work, no sends
		}
		p.dispatch()
		p.flushLogSoon()
		p.courier.WaitOn(p.deps.Waiting(), time.Now())
		p.pump()
		p.state.Evict(p.busy)
		res, loads, evicts := p.state.BackingStats()
		p.stats.resident.Store(res)
		p.stats.loads.Store(loads)
		p.stats.evictions.Store(evicts)
		p.stats.syncLoads.Store(p.state.SyncLoads())
		p.stats.parked.Store(p.pf.count())
		p.stats.outbox.Store(int64(len(p.state.Outbox)))
		p.publishLoad()
		if err := p.state.BackingErr(); err != nil && p.failure() == nil {
			p.log.Error("reading partition state failed; stopping partition", slog.Any("error", err))
			p.fail(fmt.Errorf("partition %d: %w", p.cfg.Partition, err))
			p.cancel()
			return
		}
	}
}

func (p *Partition) handle(it intakeItem) {
	if p.draining && it.update != nil && it.inputPos > 0 {
		// A stopping partition applies no more input: what it did not
		// apply stays in its queue (not trimmed) for the next owner,
		// which answers it. Applied now, it could become durable after
		// Stop's last release of answers, and its answer be lost.
		return
	}
	if it.inputPos > p.inputSeen {
		p.inputSeen = it.inputPos
	}
	if it.update != nil || it.read != nil {
		// Processed: it counts, and so does its wait (internal items
		// such as checkpoint requests do not).
		p.loadStats.handled++
		if !it.at.IsZero() {
			p.loadStats.waited(time.Since(it.at))
		}
	}
	switch {
	case it.drain:
		p.draining = true
		if it.drained != nil {
			close(it.drained)
		}
	case it.checkpoint != nil:
		p.flushLog()
		p.maybeCheckpoint(true, it.checkpoint)
	case it.flushed != nil:
		p.flushLog()
		p.toLog(logItem{flushed: it.flushed})
	case it.released != nil:
		// The durable signal may still be waiting for the loop: take
		// the position the log worker reached, so that what it
		// released leaves before Stop cancels (the loop sends nothing
		// once cancelled). Same release as on the signal: only the
		// moment differs, not what is applied.
		p.applyDurable()
		p.pump()
		close(it.released)
	case it.read != nil:
		p.read(it.read)
	case it.resend != nil:
		p.courier.ResendRequested(it.resend.From, it.resend.After)
	case it.confirm != nil:
		p.learn(it.confirm)
	case it.update != nil:
		if mr, ok := it.update.(*MessagesReceived); ok && it.specEpoch != 0 &&
			!p.deps.Admit(p.pos+1, mr.Batch.Origin, it.specEpoch, mr.Batch.OriginPos) {
			// Its step was lost with its origin's incarnation: as if
			// never sent (the origin sends what replaced it).
			return
		}
		p.lastEvent = time.Now()
		p.pos++
		e := LogEntry{Pos: p.pos, At: time.Now(), Event: it.update}
		p.logBuf = append(p.logBuf, e)
		if p.cfg.Speculation == SpeculationNone {
			p.unapplied = append(p.unapplied, e)
		} else {
			p.apply(e)
		}
	}
}

// flushLog hands the events waiting in logBuf to the log worker now, up
// to the first speculative batch not yet confirmed by its origin
// (doc/speculation.md).
func (p *Partition) flushLog() {
	if len(p.holding) > 0 {
		clear(p.holding)
		p.holdSince = time.Time{}
	}
	n := len(p.logBuf)
	if limit := p.deps.Limit(); n > 0 && p.logBuf[n-1].Pos > limit {
		n = sort.Search(n, func(i int) bool { return p.logBuf[i].Pos > limit })
	}
	if n == 0 {
		return
	}
	p.toLog(logItem{entries: p.logBuf[:n:n]})
	p.logBuf = append([]LogEntry(nil), p.logBuf[n:]...)
}

// learn takes another partition's confirmation: it may settle speculative
// batches applied here (their entries may then be logged), or show that
// one of their steps was lost, and then the partition rolls back: it
// fails, and its host recovers it from storage, whose state depends on no
// step that was not durable.
func (p *Partition) learn(c *transport.Confirm) {
	if c.Want {
		p.courier.ConfirmWanted(c.From)
	}
	lost := p.deps.Learn(c)
	p.cfg.SpecMemory.Put(p.cfg.Partition, p.deps.Known())
	if lost == "" {
		return
	}
	p.log.Warn("a speculative step this partition applied was lost; rolling back to the durable state", slog.String("dependency", lost))
	p.cfg.SpecMemory.RolledBack(p.cfg.Partition, p.inputSeen)
	p.fail(fmt.Errorf("partition %d: %w: %s", p.cfg.Partition, ErrSpeculationLost, lost))
	p.cancel()
}

// runs numbers the partition runs of the process.
var runs atomic.Uint64

// cursorGen is the cursor cache's generation for a session generation of
// this run.
func (p *Partition) cursorGen(gen uint64) uint64 { return gen ^ p.incarnation<<40 }

// speculating reports whether new batches may leave before their step is
// durable: under global speculation, once this incarnation's start is
// durable (so that its number is never reused), with nothing older
// waiting, and not in quarantine after a rollback.
func (p *Partition) speculating() bool {
	if p.cfg.Speculation != SpeculationGlobal || p.durablePos < p.state.Epoch() || len(p.unsent) > 0 {
		return false
	}
	if p.quarantine > 0 {
		if p.state.NextInputPos < p.quarantine || p.deps.Pending() > 0 {
			return false
		}
		p.quarantine = 0
	}
	return true
}

// ErrSpeculationLost is the error of a partition that rolled back because
// a speculative step it applied was lost by its origin.
var ErrSpeculationLost = errors.New("speculative step lost")

// flushLogSoon flushes the log unless work items started by the waiting
// events are still running and the coalescing window has not passed: their
// results then go into the same commit, so a message that crosses
// partitions waits for one commit at the receiver instead of two (the
// receipt's, then the step's). Holding back costs nothing on that path:
// what the step sends waits for the step's commit anyway.
func (p *Partition) flushLogSoon() {
	if len(p.logBuf) == 0 {
		return
	}
	if len(p.holding) > 0 {
		if wait := p.cfg.CoalesceWindow - time.Since(p.holdSince); wait > 0 {
			if !p.flushTimer.Stop() {
				select {
				case <-p.flushTimer.C:
				default:
				}
			}
			p.flushTimer.Reset(wait)
			return
		}
	}
	p.flushLog()
}

// hold notes that the work item of id started while events wait in
// logBuf (see flushLogSoon).
func (p *Partition) hold(id string) {
	if p.cfg.CoalesceWindow < 0 || p.cfg.Speculation == SpeculationNone || len(p.logBuf) == 0 {
		return
	}
	if len(p.holding) == 0 {
		p.holdSince = time.Now()
	}
	p.holding[id] = true
}

// toLog hands an item to the log worker. Once the partition is cancelled
// the worker may be gone, and a full hand-over would block the loop (and
// Done) forever: the item is dropped instead, as a cancelled partition
// writes nothing more.
func (p *Partition) toLog(it logItem) {
	select {
	case p.logCh <- it:
	case <-p.ctx.Done():
	}
}

// logItem is a batch of entries for the log worker, a checkpoint to take
// once everything before it is in the log, or a barrier (flushed is
// closed once everything before it is in the log).
type logItem struct {
	entries []LogEntry
	ckpt    *checkpointJob
	flushed chan struct{}
}

// logWorker appends batches to the commit log, merging whatever is queued
// into one write, and reports durability to the loop.
func (p *Partition) logWorker() {
	defer close(p.logDone)
	for {
		var items []logItem
		select {
		case it := <-p.logCh:
			items = append(items, it)
		case <-p.ctx.Done():
			return
		}
	merge:
		for {
			select {
			case more := <-p.logCh:
				items = append(items, more)
			default:
				break merge
			}
		}
		var entries []LogEntry
		for i, it := range items {
			entries = append(entries, it.entries...)
			if it.ckpt == nil && it.flushed == nil && i < len(items)-1 {
				continue
			}
			if len(entries) > 0 {
				if !p.appendEntries(entries) {
					return
				}
				entries = nil
			}
			if it.ckpt != nil {
				// Everything before the checkpoint is in the log now.
				it.ckpt.mark = p.ckptStore.Mark()
				select {
				case p.ckptCh <- it.ckpt:
				default:
					// A checkpoint is still being written; skip this one
					// (a caller of Checkpoint tries again).
					select {
					case p.ckptResults <- ckptResult{job: it.ckpt, err: errCheckpointBusy}:
					case <-p.ctx.Done():
					}
					p.ckptBusy.Store(false)
					if it.ckpt.done != nil {
						it.ckpt.done <- errCheckpointBusy
					}
				}
			}
			if it.flushed != nil {
				close(it.flushed)
			}
		}
	}
}

func (p *Partition) appendEntries(entries []LogEntry) bool {
	if p.ctx.Err() != nil {
		return false // stopped: no more log writes
	}
	if err := p.cfg.Log.Append(entries); err != nil {
		p.log.Error("commit log append failed; stopping partition", slog.Any("error", err))
		p.fail(fmt.Errorf("partition %d: commit log: %w", p.cfg.Partition, err))
		p.cancel()
		return false
	}
	last := entries[len(entries)-1]
	mark := durableMark{pos: last.Pos}
	for _, e := range entries {
		if ip := inputPosOf(e.Event); ip > mark.inputPos {
			mark.inputPos = ip
		}
	}
	p.durableMu.Lock()
	if mark.inputPos < p.durableMsg.inputPos {
		mark.inputPos = p.durableMsg.inputPos
	}
	p.durableMsg = mark
	p.durableMu.Unlock()
	select {
	case p.durableSig <- struct{}{}:
	default:
	}
	return true
}

// applyDurable releases what the log worker last reported durable.
func (p *Partition) applyDurable() {
	p.durableMu.Lock()
	d := p.durableMsg
	p.durableMu.Unlock()
	p.onDurable(d)
}

func inputPosOf(ev Event) uint64 {
	switch e := ev.(type) {
	case *ClientRequestReceived:
		return e.InputPos
	case *MessagesReceived:
		return e.InputPos
	case *AckReceived:
		return e.InputPos
	}
	return 0
}

// apply runs the state machine on one event and takes in its effects.
func (p *Partition) apply(e LogEntry) {
	var fx Effects
	p.state.Apply(e.Pos, e.At, e.Event, &fx)
	// A work item ends when its result is applied (not when it is
	// submitted: with PersistStepsFirst that is later).
	var done string
	switch ev := e.Event.(type) {
	case *BatchProcessed:
		done = ev.InstanceID
	case *EntityBatchProcessed:
		done = ev.InstanceID
	}
	if done != "" {
		delete(p.busy, done)
		delete(p.holding, done)
		if inst := p.state.Lookup(done); inst != nil && len(inst.Pending) > 0 {
			p.markReady(done)
		} else {
			delete(p.loadStats.readyAt, done)
		}
	}
	for _, id := range fx.Dropped {
		p.cfg.Cursors.Drop(id)
	}
	for _, id := range fx.Ready {
		p.markReady(id)
	}
	for _, id := range fx.Timers {
		if m := p.state.Timers[id]; m != nil {
			p.timers.add(id, m.Event.FireAt)
		}
	}
	if _, ok := e.Event.(*RecoveryCompleted); ok {
		p.courier.SetEpochs(p.state.Epochs)
	}
	if len(fx.Outbox) > 0 && p.speculating() {
		// Global: the batches leave now, tagged with this incarnation,
		// which is durable (so never reused for other steps).
		p.courier.Speculative(fx.Outbox...)
	} else {
		p.unsent = append(p.unsent, fx.Outbox...)
	}
	for _, r := range fx.Responses {
		p.responses = append(p.responses, pendingResponse{pos: e.Pos, resp: r})
	}
	for _, id := range fx.Changed {
		p.checkWaiters(id, e.Pos)
	}
	for _, r := range fx.Received {
		p.received = append(p.received, receivedMark{commitPos: e.Pos, origin: r.Origin, originPos: r.Pos})
	}
	p.courier.Observe(&fx, time.Now())
}

func (p *Partition) markReady(id string) {
	p.becameReady(id, time.Now())
	if !p.ready[id] {
		p.ready[id] = true
		p.readyList = append(p.readyList, id)
	}
}

// onDurable releases what waited for durability: deferred events (with
// PersistStepsFirst), messages to other partitions, client responses and
// acks; and trims the input queue.
func (p *Partition) onDurable(d durableMark) {
	if d.pos <= p.durablePos {
		return
	}
	p.durablePos = d.pos
	if p.cfg.Speculation == SpeculationNone {
		n := 0
		for n < len(p.unapplied) && p.unapplied[n].Pos <= d.pos {
			p.apply(p.unapplied[n])
			n++
		}
		p.unapplied = p.unapplied[n:]
	}
	p.courier.SetDurable(p.durablePos)
	n := 0
	for n < len(p.unsent) && p.unsent[n].Pos <= p.durablePos {
		n++
	}
	p.courier.Durable(p.unsent[:n]...)
	p.unsent = p.unsent[n:]
	n = 0
	for n < len(p.responses) && p.responses[n].pos <= p.durablePos {
		r := p.responses[n].resp
		p.courier.Respond(r.ClientID, r.Response)
		n++
	}
	p.responses = p.responses[n:]
	n = 0
	now := time.Now()
	for n < len(p.received) && p.received[n].commitPos <= p.durablePos {
		r := p.received[n]
		p.courier.DurableMark(r.origin, r.originPos, now)
		n++
	}
	p.received = p.received[n:]
	if d.inputPos > 0 {
		p.cfg.Transport.TrimPartition(p.cfg.Partition, d.inputPos)
	}
}

// pump performs the sends the courier has due, reports their outcomes,
// and sets the timer for the next ones. A failed send stays with the
// courier, which retries it with backoff; nothing is dropped.
func (p *Partition) pump() {
	now := time.Now()
	for _, s := range p.courier.Ready(now) {
		if p.ctx.Err() != nil {
			return // cancelled: not one more send (another host may own the partition)
		}
		var err error
		if s.Client != "" {
			err = p.cfg.Transport.SendToClient(s.Client, s.Packets...)
		} else {
			err = p.cfg.Transport.SendToPartition(s.Partition, s.Packets...)
		}
		p.courier.Result(s, err, now)
		if err != nil {
			p.sendFails++
			lvl := slog.LevelDebug
			if p.sendFails%100 == 0 {
				lvl = slog.LevelWarn
			}
			if p.log.Enabled(context.Background(), lvl) {
				p.log.Log(context.Background(), lvl, "send failed; retrying", slog.Int("dest", s.Partition), slog.Bool("client", s.Client != ""),
					slog.Int("failures", p.sendFails), slog.Any("error", err))
			}
		}
	}
	if !p.sendTimer.Stop() {
		select {
		case <-p.sendTimer.C:
		default:
		}
	}
	if next := p.courier.Next(now); !next.IsZero() {
		p.sendTimer.Reset(max(next.Sub(time.Now()), time.Millisecond))
	}
}

// respondRead answers a read once everything applied so far is durable.
func (p *Partition) respondRead(req *transport.ClientRequest, r *transport.ClientResponse) {
	r.RequestID = req.RequestID
	resp := Response{ClientID: req.ClientID, Response: r}
	if p.state.LastPos <= p.durablePos {
		p.courier.Respond(req.ClientID, r)
		return
	}
	p.responses = append(p.responses, pendingResponse{pos: p.state.LastPos, resp: resp})
}

// dispatch starts work items for ready instances and new activities.
func (p *Partition) dispatch() {
	if p.draining {
		return
	}
	if len(p.readyList) > 0 {
		list := p.readyList
		p.readyList = nil
		for _, id := range list {
			delete(p.ready, id)
			if p.busy[id] {
				continue // it becomes ready again when the work item ends
			}
			if !p.state.Resident(id) {
				p.wakeWhenLoaded(id) // ready again once loaded
				continue
			}
			readyAt, ok := p.loadStats.readyAt[id]
			delete(p.loadStats.readyAt, id)
			inst := p.state.Lookup(id)
			if inst == nil || len(inst.Pending) == 0 || inst.WaitingForStart {
				continue
			}
			if !ok {
				readyAt = time.Now()
			}
			p.busy[id] = true
			p.hold(id)
			p.startWorkItem(inst, readyAt)
		}
	}
	if len(p.running) < len(p.state.Activities) {
		ids := make([]uint64, 0)
		for id := range p.state.Activities {
			if !p.running[id] {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			p.running[id] = true
			p.startActivity(id, p.state.Activities[id])
		}
	}
	for id := range p.running {
		if _, ok := p.state.Activities[id]; !ok {
			delete(p.running, id)
		}
	}
}

func (p *Partition) startWorkItem(inst *Instance, readyAt time.Time) {
	id, gen := inst.ID, inst.Generation
	pending := append([]*core.HistoryEvent(nil), inst.Pending...)
	p.inFlight.Add(1)
	if inst.IsEntity {
		if len(pending) > p.cfg.EntityBatchLimit {
			pending = pending[:p.cfg.EntityBatchLimit]
		}
		eid, err := core.ParseEntityID(id)
		st := inst.Entity
		go func() {
			defer p.inFlight.Done()
			select {
			case p.cfg.Pools.Entities <- struct{}{}:
			case <-p.stopping:
				return // redone from the session by the next owner
			}
			p.loadStats.waited(time.Since(readyAt))
			var ev *EntityBatchProcessed
			if err != nil {
				ev = &EntityBatchProcessed{InstanceID: id, Generation: gen, Consumed: len(pending), State: st}
			} else {
				state, msgs := p.cfg.Executor.ExecuteEntity(eid, st, pending, time.Now())
				ev = &EntityBatchProcessed{InstanceID: id, Generation: gen, Consumed: len(pending), State: state, Messages: msgs}
			}
			<-p.cfg.Pools.Entities
			p.put(intakeItem{update: ev})
		}()
		return
	}
	history := inst.History[:len(inst.History):len(inst.History)]
	go func() {
		defer p.inFlight.Done()
		select {
		case p.cfg.Pools.Orchestrations <- struct{}{}:
		case <-p.stopping:
			return // redone from the session by the next owner
		}
		p.loadStats.waited(time.Since(readyAt))
		cur := p.cfg.Cursors.Take(id, p.cursorGen(gen))
		res := p.cfg.Executor.ExecuteOrchestration(&OrchestrationWork{InstanceID: id, History: history, NewEvents: pending,
			Now: time.Now(), Cursor: cur, KeepCursor: p.cfg.Cursors.Enabled()})
		<-p.cfg.Pools.Orchestrations
		p.checkSizes(id, res)
		if res.Cursor != nil {
			p.cfg.Cursors.Put(id, p.cursorGen(gen), res.Cursor, historyBytes(history, res.NewEvents))
		}
		ev := &BatchProcessed{InstanceID: id, Generation: gen, Consumed: len(pending), NewEvents: res.NewEvents,
			Activities: res.Activities, Timers: res.Timers, Messages: res.Messages, Status: res.Status,
			Output: res.Output, Failure: res.Failure, Custom: res.Custom,
			ContinueStart: res.ContinueStart, ContinueCarryOver: res.ContinueCarryOver}
		p.put(intakeItem{update: ev})
	}()
}

// checkSizes fails an orchestration whose output or custom status is over
// the payload limit, rather than storing it.
func (p *Partition) checkSizes(id string, res *OrchestrationOutcome) {
	limit := p.cfg.MaxPayloadBytes
	if limit <= 0 {
		return
	}
	if len(res.Custom) > limit {
		res.Custom = nil
		p.log.Warn("custom status over the payload limit dropped", slog.String("instance", id), slog.Int("limit", limit))
	}
	if len(res.Output) > limit && res.Status == core.StatusCompleted {
		res.Status, res.Output = core.StatusFailed, nil
		res.Failure = &core.FailureDetails{Type: "PayloadTooLarge",
			Message: fmt.Sprintf("output of orchestration %s is over the payload limit of %d bytes", id, limit)}
		for _, e := range res.NewEvents {
			if e.Kind == core.EventExecutionCompleted {
				e.Status, e.Result, e.Failure = res.Status, nil, res.Failure
			}
		}
		for _, m := range res.Messages {
			if m.Event.Kind == core.EventSubOrchestrationCompleted {
				m.Event.Kind, m.Event.Result, m.Event.Failure = core.EventSubOrchestrationFailed, nil, res.Failure
			}
		}
	}
}

func historyBytes(parts ...[]*core.HistoryEvent) int64 {
	var n int64
	for _, p := range parts {
		for _, e := range p {
			n += int64(len(e.Input)+len(e.Result)) + 128
		}
	}
	return n
}

// startActivity runs an activity when the pool has room. A stopping
// partition neither starts it nor takes its result: it stays in the
// state, and the next owner runs it.
func (p *Partition) startActivity(id uint64, m *core.TaskMessage) {
	queued := time.Now()
	go func() {
		select {
		case p.cfg.Pools.Activities <- struct{}{}:
		case <-p.stopping:
			return
		}
		p.loadStats.waited(time.Since(queued))
		if p.actCtx.Err() != nil {
			<-p.cfg.Pools.Activities
			return
		}
		reply := p.cfg.Executor.ExecuteActivity(p.actCtx, m)
		<-p.cfg.Pools.Activities
		if p.actCtx.Err() != nil {
			return // cancelled by Stop: the result may be partial
		}
		p.put(intakeItem{update: &ActivityCompleted{ActivityID: id, Reply: reply}})
	}()
}

func (p *Partition) submitTimers(ids []uint64) {
	p.put(intakeItem{update: &TimerFired{TimerIDs: ids}})
}

// Stop stops the partition gracefully: no new work items or activities
// start; queued activities are not run and running ones have their
// context cancelled and their results discarded (they stay in the state,
// for the next owner); no more input is applied (the next owner reads
// it); running work items finish (until ctx is done); a checkpoint is
// taken, so the next owner need not replay the log; what became durable
// is sent (answers, messages, acks; until ctx is done); then everything
// stops. It returns the fatal error, if the partition failed.
func (p *Partition) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		close(p.stopping)
		p.actCancel()
	})
	// Wait for running work items only once the loop has stopped starting
	// new ones: a WaitGroup must not be waited on while it may still grow
	// from zero.
	drained := make(chan struct{})
	if p.put(intakeItem{drain: true, drained: drained}) {
		select {
		case <-drained:
			workDone := make(chan struct{})
			go func() {
				p.inFlight.Wait()
				close(workDone)
			}()
			select {
			case <-workDone:
			case <-ctx.Done():
			case <-p.stopped:
			}
		case <-ctx.Done():
		case <-p.stopped:
		}
	}
	p.timers.stop()
	if p.ckptStore == nil && p.failure() == nil {
		// No checkpoint to wait for: wait at least until everything
		// applied is in the log, so that the log replays to the state
		// Stop leaves.
		flushed := make(chan struct{})
		if p.put(intakeItem{flushed: flushed}) {
			select {
			case <-flushed:
			case <-ctx.Done():
			case <-p.stopped:
			}
		}
	}
	if p.ckptStore != nil && p.failure() == nil {
		// A partition that stops cleanly checkpoints, so that it restarts
		// without replaying its log. A failed one is retried while ctx
		// lasts.
		for backoff := ckptRetryMin; ; backoff = min(2*backoff, ckptRetryMax) {
			err := p.Checkpoint(ctx)
			if err == nil || errors.Is(err, ErrStopped) || errors.Is(err, errSpeculationPending) {
				break
			}
			if ctx.Err() != nil || p.failure() != nil {
				p.log.Warn("final checkpoint failed", slog.Any("error", err))
				break
			}
			p.log.Warn("final checkpoint failed; retrying", slog.Duration("retryIn", backoff), slog.Any("error", err))
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			case <-p.stopped:
			}
		}
	}
	if p.failure() == nil {
		// Answers (and messages) released by the last durable position
		// are sent before the cancel: the checkpoint holds their
		// requests, so the next owner would not answer them, and the
		// clients would wait for their attempt timeout to re-send.
		released := make(chan struct{})
		if p.put(intakeItem{released: released}) {
			select {
			case <-released:
			case <-ctx.Done():
			case <-p.stopped:
			}
		}
	}
	p.cancel()
	<-p.stopped
	return p.failure()
}

// fail records the partition's first fatal error.
func (p *Partition) fail(err error) {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	if p.failed == nil {
		p.failed = err
	}
}

func (p *Partition) failure() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	return p.failed
}

var errCheckpointBusy = errors.New("a checkpoint is in progress")

// errSpeculationPending refuses a checkpoint while speculative batches
// applied wait for their origins' confirmation. Stop then leaves the log
// as it is: the next owner replays it (and reads those batches again).
var errSpeculationPending = errors.New("speculative batches applied are not yet confirmed by their origins")

// Checkpoint takes a checkpoint now and waits until it is durable. If one
// is already being written it waits for that one and retries.
func (p *Partition) Checkpoint(ctx context.Context) error {
	for {
		done := make(chan error, 1)
		if !p.put(intakeItem{checkpoint: done}) {
			return ErrStopped
		}
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.stopped:
			// Stopped before the checkpoint was written (or before its
			// outcome was told).
			select {
			case err = <-done:
			default:
				return ErrStopped
			}
		}
		if err != errCheckpointBusy {
			return err
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ErrStopped is returned by operations on a stopped partition.
var ErrStopped = errors.New("partition stopped")

// --- reads ---

func (p *Partition) read(req *transport.ClientRequest) {
	inst := p.state.Lookup(req.InstanceID)
	switch req.Kind {
	case transport.RequestStatus:
		if inst == nil || inst.IsEntity {
			p.respondRead(req, &transport.ClientResponse{ErrorCode: transport.CodeNotFound, Error: "no instance " + req.InstanceID})
			return
		}
		p.respondRead(req, &transport.ClientResponse{Status: statusOf(inst, req.IncludePayloads, req.IncludeHistory)})
	case transport.RequestWaitStart, transport.RequestWaitCompletion:
		if inst == nil || inst.IsEntity {
			p.respondRead(req, &transport.ClientResponse{ErrorCode: transport.CodeNotFound, Error: "no instance " + req.InstanceID})
			return
		}
		if waitSatisfied(req.Kind, inst) {
			p.respondRead(req, &transport.ClientResponse{Status: statusOf(inst, req.IncludePayloads, req.IncludeHistory)})
			return
		}
		if !req.Deadline.IsZero() && !time.Now().Before(req.Deadline) {
			return // the client has given up already
		}
		p.waiters[req.InstanceID] = append(p.waiters[req.InstanceID], waiter{kind: req.Kind, req: req})
		p.countWaiters()
	case transport.RequestQuery:
		p.query(req)
	case transport.RequestGetEntity:
		if inst == nil || !inst.IsEntity || inst.Entity == nil || !inst.Entity.Exists {
			p.respondRead(req, &transport.ClientResponse{ErrorCode: transport.CodeNotFound, Error: "no entity " + req.InstanceID})
			return
		}
		p.respondRead(req, &transport.ClientResponse{Entities: []*transport.EntityStatus{entityStatusOf(inst, req.IncludePayloads)}})
	case transport.RequestListEntities:
		p.listEntities(req)
	case transport.RequestCancel:
		p.cancelWaiter(req)
	}
}

// cancelWaiter drops the wait of a client that gave up (req names the
// wait by its request id).
func (p *Partition) cancelWaiter(req *transport.ClientRequest) {
	ws := p.waiters[req.InstanceID]
	keep := ws[:0]
	for _, w := range ws {
		if w.req.ClientID != req.ClientID || w.req.RequestID != req.RequestID {
			keep = append(keep, w)
		}
	}
	clear(ws[len(keep):])
	p.setWaiters(req.InstanceID, keep)
}

// expireWaiters drops the waits whose client's deadline has passed.
func (p *Partition) expireWaiters(now time.Time) {
	for id, ws := range p.waiters {
		keep := ws[:0]
		for _, w := range ws {
			if w.req.Deadline.IsZero() || now.Before(w.req.Deadline) {
				keep = append(keep, w)
			}
		}
		clear(ws[len(keep):])
		p.setWaiters(id, keep)
	}
}

func (p *Partition) setWaiters(id string, ws []waiter) {
	if len(ws) == 0 {
		delete(p.waiters, id)
	} else {
		p.waiters[id] = ws
	}
	p.countWaiters()
}

func (p *Partition) countWaiters() {
	n := 0
	for _, ws := range p.waiters {
		n += len(ws)
	}
	p.stats.waiters.Store(int64(n))
}

// Waiters returns the number of clients waiting for an instance to start
// or complete. Safe for concurrent use.
func (p *Partition) Waiters() int { return int(p.stats.waiters.Load()) }

func waitSatisfied(kind transport.RequestKind, inst *Instance) bool {
	if kind == transport.RequestWaitStart {
		return inst.Record.Status != core.StatusPending
	}
	return inst.Record.Status.IsTerminal()
}

func (p *Partition) checkWaiters(id string, pos uint64) {
	ws := p.waiters[id]
	if len(ws) == 0 {
		return
	}
	inst := p.state.Lookup(id)
	keep := ws[:0]
	for _, w := range ws {
		var r *transport.ClientResponse
		switch {
		case inst == nil:
			r = &transport.ClientResponse{ErrorCode: transport.CodeNotFound, Error: "instance " + id + " was deleted"}
		case waitSatisfied(w.kind, inst):
			r = &transport.ClientResponse{Status: statusOf(inst, w.req.IncludePayloads, w.req.IncludeHistory)}
		default:
			keep = append(keep, w)
			continue
		}
		r.RequestID = w.req.RequestID
		p.responses = append(p.responses, pendingResponse{pos: pos, resp: Response{ClientID: w.req.ClientID, Response: r}})
	}
	p.setWaiters(id, keep)
}

func statusOf(inst *Instance, payloads, history bool) *transport.InstanceStatus {
	r := &inst.Record
	s := &transport.InstanceStatus{
		InstanceID: inst.ID, ExecutionID: r.ExecutionID, Name: r.Name, Version: r.Version, Status: r.Status,
		CreatedAt: r.CreatedAt, LastUpdatedAt: r.LastUpdatedAt, ScheduledStartAt: r.ScheduledStartAt,
		Tags: r.Tags, Failure: r.Failure,
	}
	if r.Parent != nil {
		s.ParentInstanceID = r.Parent.InstanceID
	}
	if payloads {
		s.Input, s.Output, s.CustomStatus = r.Input, r.Output, r.CustomStatus
	}
	if history {
		s.History = append([]*core.HistoryEvent(nil), inst.History...)
	}
	return s
}

func entityStatusOf(inst *Instance, withState bool) *transport.EntityStatus {
	id, _ := core.ParseEntityID(inst.ID)
	s := &transport.EntityStatus{ID: id, LastUpdatedAt: inst.Record.LastUpdatedAt}
	if inst.Entity != nil {
		s.LockedBy, s.QueueLength = inst.Entity.LockedBy, len(inst.Entity.Queue)
		if withState {
			s.State = inst.Entity.Value
		}
	}
	return s
}

func pageSize(f *transport.Filter) int {
	if f == nil || f.PageSize <= 0 {
		return 100
	}
	return f.PageSize
}

// query answers an instance query, one page, without loading on the loop
// (scanPage).
func (p *Partition) query(req *transport.ClientRequest) {
	f := req.Filter
	after := ""
	if f != nil {
		after = f.After
	}
	p.scanPage(req, after, pageSize(f),
		func(id string) bool { return f == nil || hasPrefix(id, f.InstanceIDPrefix) },
		func(inst *Instance) bool { return !inst.IsEntity && matches(inst, f) },
		func(inst *Instance) any { return statusOf(inst, req.IncludePayloads, false) },
		func(entries []pageEntry, more bool) *transport.ClientResponse {
			r := &transport.ClientResponse{More: more}
			for _, e := range entries {
				r.Instances = append(r.Instances, e.v.(*transport.InstanceStatus))
			}
			return r
		})
}

// listEntities answers an entity listing, one page, like query.
func (p *Partition) listEntities(req *transport.ClientRequest) {
	f := req.Filter
	if f == nil {
		f = &transport.Filter{}
	}
	p.scanPage(req, f.After, pageSize(f),
		func(id string) bool {
			if !core.IsEntityInstanceID(id) {
				return false
			}
			eid, err := core.ParseEntityID(id)
			return err == nil && (f.EntityName == "" || eid.Name == f.EntityName) &&
				(f.InstanceIDPrefix == "" || hasPrefix(eid.Key, f.InstanceIDPrefix))
		},
		func(inst *Instance) bool {
			if !inst.IsEntity || inst.Entity == nil || !inst.Entity.Exists {
				return false
			}
			return (f.CreatedFrom.IsZero() || !inst.Record.LastUpdatedAt.Before(f.CreatedFrom)) &&
				(f.CreatedTo.IsZero() || inst.Record.LastUpdatedAt.Before(f.CreatedTo))
		},
		func(inst *Instance) any { return entityStatusOf(inst, req.IncludePayloads) },
		func(entries []pageEntry, more bool) *transport.ClientResponse {
			r := &transport.ClientResponse{More: more}
			for _, e := range entries {
				r.Entities = append(r.Entities, e.v.(*transport.EntityStatus))
			}
			return r
		})
}

func hasPrefix(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// --- timers ---

// timerQueue fires timers at their due time from one goroutine.
type timerQueue struct {
	mu      sync.Mutex
	h       timerHeap
	wake    chan struct{}
	quit    chan struct{}
	fire    func([]uint64)
	stopped sync.Once
}

type timerItem struct {
	id  uint64
	due time.Time
}

type timerHeap []timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].id < h[j].id
	}
	return h[i].due.Before(h[j].due)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newTimerQueue(fire func([]uint64)) *timerQueue {
	q := &timerQueue{wake: make(chan struct{}, 1), quit: make(chan struct{}), fire: fire}
	go q.run()
	return q
}

func (q *timerQueue) add(id uint64, due time.Time) {
	q.mu.Lock()
	heap.Push(&q.h, timerItem{id: id, due: due})
	first := q.h[0].id == id
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *timerQueue) stop() { q.stopped.Do(func() { close(q.quit) }) }

func (q *timerQueue) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		q.mu.Lock()
		now := time.Now()
		var due []uint64
		for len(q.h) > 0 && !q.h[0].due.After(now) {
			due = append(due, heap.Pop(&q.h).(timerItem).id)
		}
		wait := time.Hour
		if len(q.h) > 0 {
			wait = q.h[0].due.Sub(now)
		}
		q.mu.Unlock()
		if len(due) > 0 {
			q.fire(due)
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-q.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-q.quit:
			return
		}
	}
}
