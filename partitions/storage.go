package partitions

import (
	"sync/atomic"
	"time"
)

// LogEntry is one update event at its commit position, with the time it
// was stamped at intake (so that replay applies it identically).
type LogEntry struct {
	Pos   uint64
	At    time.Time
	Event Event
}

// CommitLog is the boundary between a partition and its storage: the log
// worker hands it entries in position order and learns, when Append
// returns, that they are durable. One Append covers many entries (group
// commit).
type CommitLog interface {
	Append(entries []LogEntry) error
}

// MemoryLog is a commit log that keeps nothing: every entry is "durable"
// as soon as it is appended. It counts what it was given.
type MemoryLog struct {
	// Delay, if set, is how long every Append takes (a simulated device,
	// for benchmarks).
	Delay   time.Duration
	appends atomic.Int64
	entries atomic.Int64
}

// Append accepts entries at once.
func (m *MemoryLog) Append(entries []LogEntry) error {
	if m.Delay > 0 {
		time.Sleep(m.Delay)
	}
	m.appends.Add(1)
	m.entries.Add(int64(len(entries)))
	return nil
}

// Stats returns the number of Append calls and of entries.
func (m *MemoryLog) Stats() (appends, entries int64) { return m.appends.Load(), m.entries.Load() }
