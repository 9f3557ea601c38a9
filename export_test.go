package netherite

import (
	"time"

	"github.com/netherite-go/netherite/faster"
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
