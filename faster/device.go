// Package faster is a FASTER-style store: devices (segmented, page-aligned
// storage), an append-only commit log with group commit, and a hybrid-log
// key-value store with checkpoints, eviction and compaction. It knows
// nothing of workflows and depends on the standard library only.
package faster

import "errors"

// Device is segmented, page-aligned storage addressed by byte offset in one
// logical address space. The space is cut into segments of SegmentSize
// bytes; implementations keep one unit of storage per segment (a file, a
// page blob) and create it on first write.
//
// Reads and writes are asynchronous: they return at once and call done
// when finished, from any goroutine. Offsets and lengths must be multiples
// of SectorSize, and one call must not cross a segment boundary.
type Device interface {
	// Name identifies the device in errors (a directory, a blob prefix).
	Name() string
	SectorSize() int
	SegmentSize() int64
	// WriteAsync writes p at addr and calls done with the result. p must
	// not be modified until done is called.
	WriteAsync(addr int64, p []byte, done func(error))
	// ReadAsync fills p from addr and calls done. Reading never-written
	// space gives zeros.
	ReadAsync(addr int64, p []byte, done func(error))
	// Flush makes every completed write durable (fdatasync).
	Flush() error
	// RemoveSegmentsBelow deletes every segment that lies wholly below
	// addr.
	RemoveSegmentsBelow(addr int64) error
	// SegmentName names the unit of storage that holds addr (a file path,
	// a blob name), for error messages.
	SegmentName(addr int64) string
	Close() error
}

// MetaStore keeps small named documents (metadata, checkpoint records),
// each written atomically: a reader sees the old or the new content,
// never a mix.
type MetaStore interface {
	// WriteFile replaces the document durably and atomically.
	WriteFile(name string, data []byte) error
	// ReadFile returns the document, or an error wrapping ErrNotExist.
	ReadFile(name string) ([]byte, error)
	// Remove deletes the document; removing a missing one is no error.
	Remove(name string) error
	// List returns the names that start with prefix, sorted.
	List(prefix string) ([]string, error)
}

// ErrNotExist is wrapped by MetaStore.ReadFile for a missing document.
var ErrNotExist = errors.New("faster: does not exist")

// ErrClosed is returned by operations on a closed device, log or store.
var ErrClosed = errors.New("faster: closed")
