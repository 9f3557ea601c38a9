package netherite

import "github.com/netherite-go/netherite/faster"

// SetTestLogDevice wraps the commit-log device of every partition opened
// from now on with wrap (nil: no wrapping).
func SetTestLogDevice(wrap func(partition int, d faster.Device) faster.Device) { testLogDevice = wrap }
