//go:build !linux

package faster

import "os"

// devFdatasync makes the data of f durable; without fdatasync it is a full
// fsync.
func devFdatasync(f *os.File) error { return f.Sync() }
