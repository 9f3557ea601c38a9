package blobstore

// StopRenewals stops a lease's renewals without releasing it, as a host
// that hangs would (for tests of expiry).
func StopRenewals(l *Lease) {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// AcquireGrace is acquireGrace, for tests.
const AcquireGrace = acquireGrace
