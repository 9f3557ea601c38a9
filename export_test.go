package netherite

import (
	"time"

	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/loadmonitor"
)

// SetTestLogDevice wraps the commit-log device of every partition opened
// from now on with wrap (nil: no wrapping).
func SetTestLogDevice(wrap func(partition int, d faster.Device) faster.Device) { testLogDevice = wrap }

// SetClientAttemptTimeout sets how long a client waits for an answer
// before it re-sends a request, and returns a function that restores it.
func SetClientAttemptTimeout(d time.Duration) (restore func()) {
	old := clientAttemptTimeout
	clientAttemptTimeout = d
	return func() { clientAttemptTimeout = old }
}

// Kill stops the host at once, as if its process died (see kill).
func (h *Host) Kill() { h.kill() }

// TuneMonitor tunes the load monitor of the hosts started from now on;
// the returned function removes tune.
func TuneMonitor(tune func(*loadmonitor.Config)) (restore func()) {
	old := testMonitorConfig
	testMonitorConfig = tune
	return func() { testMonitorConfig = old }
}

// SetPartitionEvents observes partition moves of elastic hosts ("release"
// and "running"); the returned function removes f.
func SetPartitionEvents(f func(host string, partition int, event string, at time.Time)) (restore func()) {
	old := partitionEvents.Swap(&f)
	return func() { partitionEvents.Store(old) }
}

// Waiters counts the clients waiting on partition p of this host (0 if it
// does not run it).
func (h *Host) Waiters(p int) int {
	h.mu.Lock()
	m := h.owned[p]
	h.mu.Unlock()
	if m == nil {
		return 0
	}
	if inc := m.running(); inc != nil {
		if w, ok := inc.part.(interface{ Waiters() int }); ok {
			return w.Waiters()
		}
	}
	return 0
}

// SetClientMoveRearm sets when a client re-sends a request in flight after
// its partition moved, and returns a function that restores it.
func SetClientMoveRearm(steps []time.Duration) (restore func()) {
	old := clientMoveRearm
	clientMoveRearm = steps
	return func() { clientMoveRearm = old }
}
