package faster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// devFileMaxOpen bounds the cache of open segment files of a FileDevice.
const devFileMaxOpen = 16

// devFileMaxIO bounds the number of I/O calls a FileDevice runs at once.
const devFileMaxIO = 16

// FileDevice is a Device on local files: one file per segment, named
// "<dir>/<prefix>.<segment number, 6 digits>", created on first write.
// I/O runs on goroutines with positioned reads and writes; a small cache
// keeps recently used files open. Flush fdatasyncs every file written
// since the previous Flush (and the directory, if segments were created).
// Reading space that was never written gives zeros.
type FileDevice struct {
	dir, prefix string
	sector      int
	segSize     int64
	sem         chan struct{} // bounds concurrent I/O

	flushMu sync.Mutex // serializes Flush so that each one covers every earlier write

	mu         sync.Mutex
	files      map[int64]*devFile
	clock      uint64
	dirDirty   bool  // a segment file was created or removed since the last Flush
	pendingErr error // fdatasync failure of an evicted file, reported by the next Flush
	closed     bool
	ops        sync.WaitGroup // calls in flight
}

// devFile is one open segment file.
type devFile struct {
	seg   int64
	f     *os.File
	refs  int    // calls using f
	dirty bool   // written since the last Flush
	used  uint64 // for LRU eviction
	gone  bool   // removed from the cache; close when refs drops to 0
}

// NewFileDevice opens (creating dir if needed) a device whose segment files
// live in dir. sectorSize must be positive and segmentSize a positive
// multiple of it.
func NewFileDevice(dir, prefix string, sectorSize int, segmentSize int64) (*FileDevice, error) {
	if prefix == "" || strings.ContainsAny(prefix, `/\`) {
		return nil, fmt.Errorf("faster: file device in %q: invalid segment file prefix %q", dir, prefix)
	}
	if err := devCheckGeometry(filepath.Join(dir, prefix), sectorSize, segmentSize); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("faster: file device %q: %w", filepath.Join(dir, prefix), err)
	}
	return &FileDevice{
		dir:     dir,
		prefix:  prefix,
		sector:  sectorSize,
		segSize: segmentSize,
		sem:     make(chan struct{}, devFileMaxIO),
		files:   make(map[int64]*devFile),
	}, nil
}

// Name implements Device: "<dir>/<prefix>".
func (d *FileDevice) Name() string { return filepath.Join(d.dir, d.prefix) }

// SectorSize implements Device.
func (d *FileDevice) SectorSize() int { return d.sector }

// SegmentSize implements Device.
func (d *FileDevice) SegmentSize() int64 { return d.segSize }

// SegmentName implements Device: the path of the segment file.
func (d *FileDevice) SegmentName(addr int64) string {
	return d.segPath(addr / d.segSize)
}

func (d *FileDevice) segPath(seg int64) string {
	return filepath.Join(d.dir, fmt.Sprintf("%s.%06d", d.prefix, seg))
}

// WriteAsync implements Device.
func (d *FileDevice) WriteAsync(addr int64, p []byte, done func(error)) {
	d.start("write", addr, p, done, d.write)
}

// ReadAsync implements Device.
func (d *FileDevice) ReadAsync(addr int64, p []byte, done func(error)) {
	d.start("read", addr, p, done, d.read)
}

func (d *FileDevice) start(op string, addr int64, p []byte, done func(error), run func(int64, []byte) error) {
	if err := devCheckIO(d.Name(), op, d.sector, d.segSize, addr, len(p)); err != nil {
		go done(err)
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		go done(devClosedErr(d.Name(), op, addr, len(p)))
		return
	}
	d.ops.Add(1)
	d.mu.Unlock()
	go func() {
		d.sem <- struct{}{}
		err := run(addr, p)
		<-d.sem
		d.ops.Done()
		done(err)
	}()
}

func (d *FileDevice) write(addr int64, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	seg := addr / d.segSize
	h, err := d.acquire(seg, true)
	if err != nil {
		return fmt.Errorf("faster: device %q: write at address %d length %d: %w", d.Name(), addr, len(p), err)
	}
	_, err = h.f.WriteAt(p, addr-seg*d.segSize)
	d.mu.Lock()
	if err == nil {
		h.dirty = true // after the write: a Flush that cleared it earlier does not cover it
	}
	d.releaseLocked(h)
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("faster: device %q: write at address %d length %d: %w", d.Name(), addr, len(p), err)
	}
	return nil
}

func (d *FileDevice) read(addr int64, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	seg := addr / d.segSize
	h, err := d.acquire(seg, false)
	if err != nil {
		return fmt.Errorf("faster: device %q: read at address %d length %d: %w", d.Name(), addr, len(p), err)
	}
	if h == nil { // segment never written
		clear(p)
		return nil
	}
	n, err := h.f.ReadAt(p, addr-seg*d.segSize)
	d.mu.Lock()
	d.releaseLocked(h)
	d.mu.Unlock()
	if err == io.EOF {
		clear(p[n:]) // beyond the end of the file: never written
		err = nil
	}
	if err != nil {
		return fmt.Errorf("faster: device %q: read at address %d length %d: %w", d.Name(), addr, len(p), err)
	}
	return nil
}

// acquire returns the open file of seg with a reference taken. Without
// create, a missing file gives (nil, nil).
func (d *FileDevice) acquire(seg int64, create bool) (*devFile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clock++
	if h := d.files[seg]; h != nil {
		h.refs++
		h.used = d.clock
		return h, nil
	}
	path := d.segPath(seg)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, nil
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			d.dirDirty = true
		}
	}
	if err != nil {
		return nil, err
	}
	h := &devFile{seg: seg, f: f, refs: 1, used: d.clock}
	d.files[seg] = h
	d.evictLocked()
	return h, nil
}

func (d *FileDevice) releaseLocked(h *devFile) {
	h.refs--
	if h.refs == 0 && h.gone {
		d.closeFileLocked(h)
	}
	d.evictLocked()
}

// evictLocked closes least recently used idle files while the cache is
// over its bound. A dirty file is fdatasynced first; a failure is kept for
// the next Flush.
func (d *FileDevice) evictLocked() {
	for len(d.files) > devFileMaxOpen {
		var victim *devFile
		for _, h := range d.files {
			if h.refs == 0 && (victim == nil || h.used < victim.used) {
				victim = h
			}
		}
		if victim == nil {
			return // everything is in use
		}
		delete(d.files, victim.seg)
		d.closeFileLocked(victim)
	}
}

func (d *FileDevice) closeFileLocked(h *devFile) {
	if h.dirty {
		if err := devFdatasync(h.f); err != nil && d.pendingErr == nil {
			d.pendingErr = fmt.Errorf("faster: device %q: sync %s: %w", d.Name(), h.f.Name(), err)
		}
		h.dirty = false
	}
	if err := h.f.Close(); err != nil && d.pendingErr == nil {
		d.pendingErr = fmt.Errorf("faster: device %q: close %s: %w", d.Name(), h.f.Name(), err)
	}
}

// Flush implements Device: it fdatasyncs every segment file written since
// the previous Flush, and the directory if segment files were created or
// removed.
func (d *FileDevice) Flush() error {
	d.flushMu.Lock()
	defer d.flushMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("faster: device %q: flush: %w", d.Name(), ErrClosed)
	}
	var dirty []*devFile
	for _, h := range d.files {
		if h.dirty {
			h.dirty = false
			h.refs++
			dirty = append(dirty, h)
		}
	}
	syncDir := d.dirDirty
	d.dirDirty = false
	err := d.pendingErr
	d.pendingErr = nil
	d.mu.Unlock()

	var failed []*devFile
	for _, h := range dirty {
		if serr := devFdatasync(h.f); serr != nil {
			failed = append(failed, h)
			if err == nil {
				err = fmt.Errorf("faster: device %q: sync %s: %w", d.Name(), h.f.Name(), serr)
			}
		}
	}
	if syncDir {
		if serr := devSyncDir(d.dir); serr != nil && err == nil {
			err = fmt.Errorf("faster: device %q: sync directory: %w", d.Name(), serr)
		}
	}

	d.mu.Lock()
	for _, h := range failed {
		h.dirty = true
	}
	if syncDir && err != nil {
		d.dirDirty = true
	}
	for _, h := range dirty {
		d.releaseLocked(h)
	}
	d.mu.Unlock()
	return err
}

// RemoveSegmentsBelow implements Device: it deletes the files of every
// segment that lies wholly below addr.
func (d *FileDevice) RemoveSegmentsBelow(addr int64) error {
	limit := addr / d.segSize // segments < limit lie wholly below addr
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("faster: device %q: remove segments below %d: %w", d.Name(), addr, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("faster: device %q: remove segments below %d: %w", d.Name(), addr, ErrClosed)
	}
	for _, e := range entries {
		seg, ok := d.parseSegment(e.Name())
		if !ok || seg >= limit {
			continue
		}
		if h := d.files[seg]; h != nil {
			delete(d.files, seg)
			h.dirty = false // no point syncing a deleted file
			if h.refs == 0 {
				d.closeFileLocked(h)
			} else {
				h.gone = true
			}
		}
		if rerr := os.Remove(filepath.Join(d.dir, e.Name())); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("faster: device %q: remove segments below %d: %w", d.Name(), addr, rerr)
		}
		d.dirDirty = true
	}
	return err
}

// parseSegment recognises "<prefix>.<digits>".
func (d *FileDevice) parseSegment(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, d.prefix+".")
	if !ok || rest == "" {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seg, err := strconv.ParseInt(rest, 10, 64)
	return seg, err == nil
}

// Close implements Device: it waits for calls in flight and closes the
// files. It does not flush; writes not flushed may or may not survive.
func (d *FileDevice) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.ops.Wait()
	d.flushMu.Lock() // let a Flush in progress finish
	defer d.flushMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	for seg, h := range d.files {
		delete(d.files, seg)
		if cerr := h.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("faster: device %q: close %s: %w", d.Name(), h.f.Name(), cerr)
		}
	}
	return err
}

// openFiles reports how many segment files are open (for tests).
func (d *FileDevice) openFiles() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.files)
}

func devSyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Preallocate implements Preallocator: it creates the file of the segment
// holding addr if needed and reserves its full size (fallocate on Linux,
// a sparse extension elsewhere), then syncs the file and, if it created
// it, the directory. Writes into the segment then change no file size or
// directory entry, so Flush's fdatasync has only data to write.
func (d *FileDevice) Preallocate(addr int64) error {
	if addr < 0 {
		return fmt.Errorf("faster: device %q: preallocate at address %d: negative address", d.Name(), addr)
	}
	seg := addr / d.segSize
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("faster: device %q: preallocate segment %d: %w", d.Name(), seg, ErrClosed)
	}
	d.ops.Add(1)
	d.mu.Unlock()
	defer d.ops.Done()
	h, err := d.acquire(seg, true)
	if err != nil {
		return fmt.Errorf("faster: device %q: preallocate %s: %w", d.Name(), d.segPath(seg), err)
	}
	err = d.preallocate(h)
	d.mu.Lock()
	d.releaseLocked(h)
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("faster: device %q: preallocate %s: %w", d.Name(), d.segPath(seg), err)
	}
	return nil
}

func (d *FileDevice) preallocate(h *devFile) error {
	fi, err := h.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < d.segSize {
		if err := devAllocate(h.f, d.segSize); err != nil {
			return err
		}
		if err := h.f.Sync(); err != nil {
			return err
		}
	}
	d.mu.Lock()
	syncDir := d.dirDirty
	d.dirDirty = false
	d.mu.Unlock()
	if syncDir {
		if err := devSyncDir(d.dir); err != nil {
			d.mu.Lock()
			d.dirDirty = true
			d.mu.Unlock()
			return fmt.Errorf("sync directory: %w", err)
		}
	}
	return nil
}
