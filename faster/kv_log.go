package faster

import (
	"fmt"
	"sort"
)

// kvFrame is a run of in-memory log pages: one page normally, or several
// for a record larger than a page. Frames are contiguous in address space
// and start on page boundaries.
type kvFrame struct {
	start int64
	buf   []byte
	// issued: bytes [0, issued) have been handed to the device (or were
	// read from it at recovery). Always a multiple of the sector size.
	issued int
	// pending counts the device writes of this frame in flight; guarded
	// by kv.ioMu (not kv.mu, so that waiting needs no kv.mu).
	pending int
}

func (f *kvFrame) end() int64 { return f.start + int64(len(f.buf)) }

func kvAlignDown(x, a int64) int64 { return x - x%a }
func kvAlignUp(x, a int64) int64   { return kvAlignDown(x+a-1, a) }

// kvHead is the lowest address held in memory.
func (kv *KV) kvHead() int64 {
	if len(kv.frames) > 0 {
		return kv.frames[0].start
	}
	return kv.tail
}

// kvFrameAt returns the in-memory frame holding addr, or nil.
func (kv *KV) kvFrameAt(addr int64) *kvFrame {
	i := sort.Search(len(kv.frames), func(i int) bool { return kv.frames[i].end() > addr })
	if i < len(kv.frames) && kv.frames[i].start <= addr {
		return kv.frames[i]
	}
	return nil
}

// kvTailFrame returns the frame that holds the tail (the next record
// goes there if it fits), or nil if the tail is at a frame boundary past
// the last frame.
func (kv *KV) kvTailFrame() *kvFrame {
	if n := len(kv.frames); n > 0 {
		if f := kv.frames[n-1]; f.start <= kv.tail && kv.tail < f.end() {
			return f
		}
	}
	return nil
}

// kvAppend writes a new record at the tail and returns its address and
// log size.
func (kv *KV) kvAppend(key string, value []byte, tombstone bool) (int64, int64, error) {
	size := kvRecordSize(len(key), len(value))
	f := kv.kvTailFrame()
	if f != nil && (size > kv.pageSize || f.end()-kv.tail < size) {
		// Pad: the rest of the tail page stays zero.
		kv.tail = f.end()
		f = nil
	}
	if f == nil {
		n := kv.pageSize
		if size > kv.pageSize {
			n = kvAlignUp(size, kv.pageSize)
			kv.stats.LargeRecords++
		}
		var err error
		if f, err = kv.kvNewFrame(n); err != nil {
			return 0, 0, err
		}
	}
	addr := kv.tail
	kvPutRecord(f.buf[addr-f.start:], key, value, len(value), tombstone)
	kv.tail += size
	kv.stats.Appends++
	if len(f.buf) > int(kv.pageSize) {
		// A large frame holds one record; it may be evicted at once. A
		// failed write is sticky and reported by the next operation.
		kv.tail = f.end()
		_ = kv.kvEvict()
	}
	return addr, size, nil
}

// kvNewFrame adds an empty frame of n bytes at the tail (which must be on
// a page boundary), moves the read-only boundary to keep the mutable
// region at its size, and evicts old frames beyond the memory budget.
func (kv *KV) kvNewFrame(n int64) (*kvFrame, error) {
	if kv.tail%kv.pageSize != 0 {
		return nil, fmt.Errorf("internal error: new frame at %d, not on a page boundary", kv.tail)
	}
	f := &kvFrame{start: kv.tail, buf: make([]byte, n)}
	kv.frames = append(kv.frames, f)
	kv.memBytes += n
	if kv.mutablePages > 0 {
		kv.kvShiftReadOnly(f.start - (kv.mutablePages-1)*kv.pageSize)
	} else {
		kv.kvShiftReadOnly(f.start)
	}
	if err := kv.kvEvict(); err != nil {
		return nil, err
	}
	return f, nil
}

// kvShiftReadOnly moves the read-only boundary up to addr (never past the
// tail) and starts writing the frames that became wholly read-only.
func (kv *KV) kvShiftReadOnly(addr int64) {
	addr = min(addr, kv.tail)
	if addr <= kv.readOnly {
		return
	}
	kv.readOnly = addr
	i := sort.Search(len(kv.frames), func(i int) bool { return kv.frames[i].end() > kv.fullyIssued })
	for ; i < len(kv.frames) && kv.frames[i].end() <= kv.readOnly; i++ {
		f := kv.frames[i]
		kv.kvIssue(f, len(f.buf))
		kv.fullyIssued = f.end()
	}
}

// kvIssue hands bytes [f.issued, to) of frame f to the device,
// asynchronously. to must be a multiple of the sector size; those bytes
// must not change until the writes complete (they are read-only).
func (kv *KV) kvIssue(f *kvFrame, to int) {
	for f.issued < to {
		addr := f.start + int64(f.issued)
		n := min(int64(to-f.issued), kvAlignDown(addr, kv.segSize)+kv.segSize-addr)
		p := f.buf[f.issued : f.issued+int(n)]
		kv.stats.PageFlushes++
		kv.stats.FlushedBytes += n
		kv.ioMu.Lock()
		kv.writeSeq++
		seq := kv.writeSeq
		kv.inflight[seq] = true
		f.pending++
		kv.ioMu.Unlock()
		kv.dev.WriteAsync(addr, p, func(err error) {
			kv.ioMu.Lock()
			defer kv.ioMu.Unlock()
			if err != nil && kv.ioErr == nil {
				kv.ioErr = fmt.Errorf("write log page at %d (%d bytes) to %s: %w", addr, n, kv.dev.SegmentName(addr), err)
			}
			delete(kv.inflight, seq)
			f.pending--
			kv.ioCond.Broadcast()
		})
		f.issued += int(n)
	}
}

// kvIssuedSeq is the sequence number of the last write issued so far.
func (kv *KV) kvIssuedSeq() uint64 {
	kv.ioMu.Lock()
	defer kv.ioMu.Unlock()
	return kv.writeSeq
}

// kvWaitIssued waits for every write issued up to sequence number seq
// (later ones may still be in flight) and returns the sticky I/O error.
// It needs no kv.mu: a checkpoint waits with it while the store serves
// Gets and Upserts.
func (kv *KV) kvWaitIssued(seq uint64) error {
	kv.ioMu.Lock()
	defer kv.ioMu.Unlock()
	for {
		older := false
		for s := range kv.inflight {
			if s <= seq {
				older = true
				break
			}
		}
		if !older {
			return kv.ioErr
		}
		kv.ioCond.Wait()
	}
}

// kvWaitFrame waits until no write of frame f is in flight.
func (kv *KV) kvWaitFrame(f *kvFrame) {
	kv.ioMu.Lock()
	defer kv.ioMu.Unlock()
	for f.pending > 0 {
		kv.ioCond.Wait()
	}
}

// kvEvict evicts the oldest frames while memory exceeds the budget. A
// frame is made read-only and written first if it is not yet; the frame
// holding the tail stays.
func (kv *KV) kvEvict() error {
	for kv.memBytes > kv.budget && len(kv.frames) > 0 {
		f := kv.frames[0]
		if f.end() > kv.tail {
			break
		}
		kv.kvShiftReadOnly(f.end())
		if kv.testEvictWait != nil {
			kv.testEvictWait()
		}
		kv.kvWaitFrame(f)
		if err := kv.kvIOErr(); err != nil {
			return err
		}
		kv.kvDropFirstFrame()
		kv.stats.Evictions++
		kv.stats.EvictedBytes += int64(len(f.buf))
	}
	return nil
}

// kvDropFirstFrame forgets the oldest frame (its writes, if any, must
// have completed).
func (kv *KV) kvDropFirstFrame() {
	f := kv.frames[0]
	kv.frames[0] = nil
	kv.frames = kv.frames[1:]
	kv.memBytes -= int64(len(f.buf))
	if len(kv.frames) == 0 {
		kv.frames = nil
	}
}

// kvWaitAllWrites waits for every page write in flight.
func (kv *KV) kvWaitAllWrites() error {
	return kv.kvWaitIssued(kv.kvIssuedSeq())
}

// kvReadMemory returns the value of the record e points to in frame f,
// which must hold key. If copyOut is false, the value aliases the log
// page. Called with kv.mu held.
func (kv *KV) kvReadMemory(f *kvFrame, e kvEntry, key string, copyOut bool) (value []byte, tombstone bool, err error) {
	b := f.buf[e.addr-f.start:]
	h, err := kvParseHeader(b)
	if err != nil {
		return nil, false, fmt.Errorf("record at %d in memory: %w", e.addr, err)
	}
	if string(b[kvHeaderSize:kvHeaderSize+h.keyLen]) != key {
		return nil, false, fmt.Errorf("record at %d in memory holds another key", e.addr)
	}
	v := kvRecordValue(b, h)
	if copyOut {
		v = append(make([]byte, 0, len(v)), v...)
	}
	return v, h.tombstone(), nil
}

// kvBeginDeviceRead registers a device read of the record at e before
// kv.mu is released, so that segment removal spares it; the returned
// function ends the registration (call it with kv.mu held).
func (kv *KV) kvBeginDeviceRead(e kvEntry) (end func()) {
	kv.readID++
	id := kv.readID
	kv.reads[id] = e.addr
	return func() { delete(kv.reads, id) }
}

// kvReadDevice reads the record e points to from the device (one read of
// its whole slot, e.size bytes, sector-aligned) and checks its checksum and
// key. It touches no KV field but the immutable ones, so it runs without
// kv.mu (registered with kvBeginDeviceRead); the caller counts the read
// in the stats (kvCountRead).
func (kv *KV) kvReadDevice(e kvEntry, key string) (value []byte, tombstone bool, err error) {
	start := kvAlignDown(e.addr, kv.sector)
	buf := make([]byte, kvAlignUp(e.addr+e.size, kv.sector)-start)
	if err := kv.kvDeviceRead(start, buf); err != nil {
		return nil, false, err
	}
	b := buf[e.addr-start : e.addr-start+e.size]
	h, err := kvParseHeader(b)
	if err == nil && h.size() != e.size {
		err = fmt.Errorf("record of %d bytes, the index says %d", h.size(), e.size)
	}
	if err == nil {
		err = kvCheckRecord(b, h, key)
	}
	if err != nil {
		return nil, false, fmt.Errorf("record at %d in %s: %w", e.addr, kv.dev.SegmentName(e.addr), err)
	}
	return kvRecordValue(b, h), h.tombstone(), nil
}

// kvCountRead counts one record read back from the device (kv.mu held).
func (kv *KV) kvCountRead(e kvEntry) {
	kv.stats.DeviceReads++
	kv.stats.ReadBytes += kvAlignUp(e.addr+e.size, kv.sector) - kvAlignDown(e.addr, kv.sector)
}

// kvDeviceRead fills p from addr (both sector-aligned), one read call per
// segment, and waits for all of them.
func (kv *KV) kvDeviceRead(addr int64, p []byte) error {
	type result struct {
		addr int64
		err  error
	}
	if len(p) == 0 {
		return nil
	}
	ch := make(chan result, (addr+int64(len(p))-1)/kv.segSize-addr/kv.segSize+1)
	calls := 0
	for off := 0; off < len(p); {
		a := addr + int64(off)
		n := int(min(int64(len(p)-off), kvAlignDown(a, kv.segSize)+kv.segSize-a))
		calls++
		kv.dev.ReadAsync(a, p[off:off+n], func(err error) { ch <- result{a, err} })
		off += n
	}
	var first error
	for range calls {
		if r := <-ch; r.err != nil && first == nil {
			first = fmt.Errorf("read log at %d from %s: %w", r.addr, kv.dev.SegmentName(r.addr), r.err)
		}
	}
	return first
}
