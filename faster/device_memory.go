package faster

import (
	"fmt"
	"sync"
)

// MemoryDevice is a Device held in memory. Segments are allocated on
// first write; reading space that was never written gives zeros. It is
// safe for concurrent use. Flush is a no-op: memory is as durable as it
// gets (use FaultDevice to simulate losing unflushed writes).
//
// Reads and writes copy synchronously and then call done on a new
// goroutine, so done never runs inside WriteAsync or ReadAsync.
type MemoryDevice struct {
	name    string
	sector  int
	segSize int64

	mu       sync.RWMutex
	segments map[int64][]byte
	closed   bool
}

// NewMemoryDevice returns an empty memory device. sectorSize must be
// positive and segmentSize a positive multiple of it; otherwise it panics.
func NewMemoryDevice(name string, sectorSize int, segmentSize int64) *MemoryDevice {
	if err := devCheckGeometry(name, sectorSize, segmentSize); err != nil {
		panic(err)
	}
	return &MemoryDevice{
		name:     name,
		sector:   sectorSize,
		segSize:  segmentSize,
		segments: make(map[int64][]byte),
	}
}

// Name implements Device.
func (d *MemoryDevice) Name() string { return d.name }

// SectorSize implements Device.
func (d *MemoryDevice) SectorSize() int { return d.sector }

// SegmentSize implements Device.
func (d *MemoryDevice) SegmentSize() int64 { return d.segSize }

// SegmentName implements Device: "<name>.<segment number, 6 digits>".
func (d *MemoryDevice) SegmentName(addr int64) string {
	return devSegmentName(d.name, d.segSize, addr)
}

// WriteAsync implements Device.
func (d *MemoryDevice) WriteAsync(addr int64, p []byte, done func(error)) {
	go done(d.write(addr, p))
}

func (d *MemoryDevice) write(addr int64, p []byte) error {
	if err := devCheckIO(d.name, "write", d.sector, d.segSize, addr, len(p)); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return devClosedErr(d.name, "write", addr, len(p))
	}
	seg := addr / d.segSize
	s := d.segments[seg]
	if s == nil {
		s = make([]byte, d.segSize)
		d.segments[seg] = s
	}
	copy(s[addr-seg*d.segSize:], p)
	return nil
}

// ReadAsync implements Device.
func (d *MemoryDevice) ReadAsync(addr int64, p []byte, done func(error)) {
	go done(d.read(addr, p))
}

func (d *MemoryDevice) read(addr int64, p []byte) error {
	if err := devCheckIO(d.name, "read", d.sector, d.segSize, addr, len(p)); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return devClosedErr(d.name, "read", addr, len(p))
	}
	seg := addr / d.segSize
	if s := d.segments[seg]; s != nil {
		copy(p, s[addr-seg*d.segSize:])
	} else {
		clear(p)
	}
	return nil
}

// Flush implements Device; it only reports ErrClosed after Close.
func (d *MemoryDevice) Flush() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return fmt.Errorf("faster: device %q: flush: %w", d.name, ErrClosed)
	}
	return nil
}

// RemoveSegmentsBelow implements Device.
func (d *MemoryDevice) RemoveSegmentsBelow(addr int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("faster: device %q: remove segments below %d: %w", d.name, addr, ErrClosed)
	}
	for seg := range d.segments {
		if (seg+1)*d.segSize <= addr {
			delete(d.segments, seg)
		}
	}
	return nil
}

// Close implements Device. The contents are dropped.
func (d *MemoryDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.segments = nil
	return nil
}

// segmentCount reports how many segments hold storage (for tests).
func (d *MemoryDevice) segmentCount() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.segments)
}

// ---- helpers shared by the device implementations ----

func devCheckGeometry(name string, sectorSize int, segmentSize int64) error {
	if sectorSize <= 0 {
		return fmt.Errorf("faster: device %q: sector size %d is not positive", name, sectorSize)
	}
	if segmentSize <= 0 || segmentSize%int64(sectorSize) != 0 {
		return fmt.Errorf("faster: device %q: segment size %d is not a positive multiple of the sector size %d", name, segmentSize, sectorSize)
	}
	return nil
}

// devCheckIO validates one device call: the address and length must be
// multiples of the sector size and [addr, addr+n) must lie in one segment.
func devCheckIO(name, op string, sector int, segSize int64, addr int64, n int) error {
	switch {
	case addr < 0:
		return fmt.Errorf("faster: device %q: %s at address %d length %d: negative address", name, op, addr, n)
	case addr%int64(sector) != 0:
		return fmt.Errorf("faster: device %q: %s at address %d length %d: address is not a multiple of the sector size %d", name, op, addr, n, sector)
	case n%sector != 0:
		return fmt.Errorf("faster: device %q: %s at address %d length %d: length is not a multiple of the sector size %d", name, op, addr, n, sector)
	case n > 0 && addr/segSize != (addr+int64(n)-1)/segSize:
		return fmt.Errorf("faster: device %q: %s at address %d length %d: crosses the segment boundary at %d (segment size %d)", name, op, addr, n, (addr/segSize+1)*segSize, segSize)
	}
	return nil
}

func devClosedErr(name, op string, addr int64, n int) error {
	return fmt.Errorf("faster: device %q: %s at address %d length %d: %w", name, op, addr, n, ErrClosed)
}

func devSegmentName(name string, segSize, addr int64) string {
	return fmt.Sprintf("%s.%06d", name, addr/segSize)
}

// devWait runs one asynchronous device call and waits for its result.
func devWait(op func(int64, []byte, func(error)), addr int64, p []byte) error {
	ch := make(chan error, 1)
	op(addr, p, func(err error) { ch <- err })
	return <-ch
}
