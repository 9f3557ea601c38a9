package partitions

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// Load reporting: what the load monitor learns of a running partition.
// The loop publishes cheap counts in atomics at the end of every turn; the
// counts that cost a scan (instances behind a backing store, bytes of
// state without one) it refreshes when a sample asks for them, so a
// sample shows them as of the previous one. Nothing here changes the
// partition's state or the order of its events.

// The latency trend: one letter per report period, oldest first, at most
// LatencyTrendLen of them: I idle (nothing processed, nothing waiting),
// else by the longest wait of the period: L below LatencyLow, M below
// LatencyHigh, H beyond. The load monitor reads them (doc/scaling.md;
// loadmonitor's MediumWait, HighWait and TrendLength must agree, which its
// tests check).
const (
	LatencyLow      = 100 * time.Millisecond
	LatencyHigh     = time.Second
	LatencyTrendLen = 5
	// sampleRefreshMin spaces the loop's scans for the costly counts.
	sampleRefreshMin = 250 * time.Millisecond
)

// LatencyLetter classifies the longest wait of a period in which work was
// processed or waited.
func LatencyLetter(wait time.Duration) byte {
	switch {
	case wait < LatencyLow:
		return 'L'
	case wait < LatencyHigh:
		return 'M'
	}
	return 'H'
}

// loadStats is the partition's side of load reporting.
type loadStats struct {
	// Published by the loop.
	workItems  atomic.Int64
	activities atomic.Int64
	timers     atomic.Int64
	events     atomic.Int64
	inputSeen  atomic.Uint64
	instances  atomic.Int64
	cacheBytes atomic.Int64 // without a backing store (with one: stats.resident)
	// readPos is the input position after the packets the receiver has
	// handed to the loop (published by the receiver).
	readPos atomic.Uint64
	// maxWait is the longest wait (ns) seen since the last sample, from
	// any goroutine.
	maxWait atomic.Int64
	// refresh asks the loop for the costly counts.
	refresh chan struct{}

	// Owned by the loop.
	handled     int64
	refreshedAt time.Time
	readyAt     map[string]time.Time // ready work items not yet started

	// The sampler's period state.
	mu         sync.Mutex
	lastEvents int64
	trend      string
}

func (l *loadStats) init(inputPos uint64) {
	l.refresh = make(chan struct{}, 1)
	l.readyAt = map[string]time.Time{}
	l.inputSeen.Store(inputPos)
	l.readPos.Store(inputPos)
}

// waited records that something waited d before being processed.
func (l *loadStats) waited(d time.Duration) {
	for {
		cur := l.maxWait.Load()
		if int64(d) <= cur || l.maxWait.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// LoadSample reports the partition's load, and closes one report period
// of its latency trend: call it once per report. Safe for concurrent use
// while the partition runs (and after it stopped: it then reports the last
// counts). InputLag counts what the partition has read from its input
// queue and not yet handled, plus what the transport says is unread (a
// transport.QueueLengther, such as the memory transport; Event Hubs does
// not tell, so there it is only the former). Instances and CacheBytes are
// as of the previous sample when the partition keeps its state behind a
// store (counting them takes a scan, which the loop does on request).
func (p *Partition) LoadSample(now time.Time) transport.PartitionLoad {
	l := &p.loadStats
	select {
	case l.refresh <- struct{}{}:
	default:
	}
	ld := transport.PartitionLoad{
		Partition:  p.cfg.Partition,
		WorkItems:  int(l.workItems.Load()),
		Activities: int(l.activities.Load()),
		Timers:     int(l.timers.Load()),
		Outbox:     int(p.stats.outbox.Load()),
		Events:     l.events.Load(),
		Instances:  l.instances.Load(),
		CacheBytes: l.cacheBytes.Load(),
		NextTimer:  p.timers.next(),
	}
	if p.pf != nil {
		ld.CacheBytes = p.stats.resident.Load()
	}
	read, seen := l.readPos.Load(), l.inputSeen.Load()
	// Not read: what a draining partition read and left unapplied is for
	// the next owner, and a probe of the queue must see it.
	ld.InputPosition = seen
	if read > seen {
		ld.InputLag = int64(read - seen)
	}
	if ql, ok := p.cfg.Transport.(transport.QueueLengther); ok {
		if n, ok := ql.PartitionQueueLength(p.cfg.Partition, read); ok && n > 0 {
			ld.InputLag += n
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	wait := time.Duration(l.maxWait.Swap(0))
	overdue := !ld.NextTimer.IsZero() && now.After(ld.NextTimer)
	if overdue {
		wait = max(wait, now.Sub(ld.NextTimer))
	}
	processed := ld.Events != l.lastEvents
	l.lastEvents = ld.Events
	waiting := ld.WorkItems > 0 || ld.Activities > 0 || ld.InputLag > 0 || overdue
	letter := byte('I')
	if processed || waiting {
		letter = LatencyLetter(wait)
	}
	l.trend += string(rune(letter))
	if len(l.trend) > LatencyTrendLen {
		l.trend = l.trend[len(l.trend)-LatencyTrendLen:]
	}
	ld.Latency = l.trend
	return ld
}

// publishLoad publishes the loop's cheap counts (end of every loop turn).
func (p *Partition) publishLoad() {
	l := &p.loadStats
	l.workItems.Store(int64(len(p.busy) + len(l.readyAt)))
	l.activities.Store(int64(len(p.state.Activities)))
	l.timers.Store(int64(len(p.state.Timers)))
	l.events.Store(l.handled)
	l.inputSeen.Store(p.inputSeen)
	if p.state.backing == nil {
		l.instances.Store(int64(len(p.state.Instances)))
	}
}

// refreshLoad counts what costs a scan, at most every sampleRefreshMin.
func (p *Partition) refreshLoad(now time.Time) {
	l := &p.loadStats
	if now.Sub(l.refreshedAt) < sampleRefreshMin {
		return
	}
	l.refreshedAt = now
	s := p.state
	if s.backing != nil {
		l.instances.Store(int64(s.countInstances()))
		return
	}
	var n int64
	for _, inst := range s.Instances {
		n += instanceSize(inst)
	}
	l.cacheBytes.Store(n)
}

// countInstances counts the instances, resident or not, without sorting
// their ids (InstanceCount's IDs does).
func (s *State) countInstances() int {
	n := len(s.Instances)
	if b := s.backing; b != nil {
		for _, id := range b.kv.Keys() {
			if _, res := s.Instances[id]; !res && !b.gone(id) {
				n++
			}
		}
	}
	return n
}

// becameReady notes when a work item became ready (the first time since
// it last started).
func (p *Partition) becameReady(id string, now time.Time) {
	if _, ok := p.loadStats.readyAt[id]; !ok {
		p.loadStats.readyAt[id] = now
	}
}

// next returns when the earliest pending timer is due (zero: none).
func (q *timerQueue) next() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return time.Time{}
	}
	return q.h[0].due
}
