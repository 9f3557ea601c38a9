//go:build !linux

package faster

import "os"

// devFdatasync makes the data of f durable; without fdatasync it is a full
// fsync.
func devFdatasync(f *os.File) error { return f.Sync() }

// devAllocate extends f to size (sparse): writes below size then do not
// change the file's size.
func devAllocate(f *os.File, size int64) error { return f.Truncate(size) }
