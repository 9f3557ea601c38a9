package faster

import (
	"fmt"
	"slices"
	"sync"
)

// KVOptions configure a KV.
type KVOptions struct {
	// Name identifies the store in errors; default Device.Name().
	Name string
	// Device holds the log's pages. The KV does not close it.
	Device Device
	// Meta holds the checkpoint documents. The KV does not close it.
	Meta MetaStore
	// MetaPrefix starts the names of the KV's documents in Meta, so that
	// several stores (or a KV and other users) can share one MetaStore;
	// default "kv-". The documents are <prefix>last-checkpoint.json and
	// <prefix>checkpoint-<token>.index.
	MetaPrefix string
	// PageSize is the log page size in bytes, a multiple of
	// Device.SectorSize(); default 64 KiB. It is fixed when the store is
	// created: reopening with another page size is an error.
	PageSize int
	// MemoryBudget bounds the bytes of log pages kept in memory (mutable
	// and read-only regions); beyond it the oldest pages are flushed (if
	// not yet) and evicted. Default 64 MiB; at least two pages.
	MemoryBudget int64
	// MutableFraction is the fraction of the in-memory pages that are
	// mutable (in-place updates allowed); default 0.9 (0 means the
	// default; a negative value disables in-place updates).
	MutableFraction float64
}

// KVStats describe a KV at one moment.
type KVStats struct {
	// Log addresses: Begin <= Head <= ReadOnly <= Tail (Head may be below
	// Begin while the page holding Begin is in memory). [Begin, Head) is
	// on the device only, [Head, ReadOnly) is in memory and immutable,
	// [ReadOnly, Tail) is in memory and updated in place.
	Begin, Head, ReadOnly, Tail int64
	// CheckpointTail is the tail of the latest durable checkpoint (0 if
	// none); everything below it is on the device.
	CheckpointTail int64

	Keys      int   // live keys
	LiveBytes int64 // log bytes of the live keys' records
	// MemoryBytes counts the log pages held in memory; MemoryPages is
	// that in pages (a large record's frame counts all its pages).
	MemoryBytes  int64
	MemoryPages  int
	MemoryBudget int64

	Upserts        int64 // Upsert calls that succeeded
	InPlaceUpdates int64 // of which updated the record in the mutable region
	Deletes        int64 // Delete calls that removed a key
	Appends        int64 // records appended (upserts, tombstones, compaction copies)
	LargeRecords   int64 // appended records larger than a page

	Evictions    int64 // page frames evicted from memory
	EvictedBytes int64
	PageFlushes  int64 // write calls issued for log pages
	FlushedBytes int64
	DeviceReads  int64 // records read back from the device
	ReadBytes    int64 // bytes read from the device

	Checkpoints      int64
	Compactions      int64
	CompactedRecords int64 // live records copied to the tail by Compact
	// RemovedBelow is the address below which device segments were
	// removed; CleanupErrors counts failed removals (of segments or old
	// checkpoint documents), retried after the next checkpoint.
	RemovedBelow  int64
	CleanupErrors int64
}

// KV is a FASTER-style hybrid-log key-value store: string keys, []byte
// values.
//
// # Layout
//
// Records (see kv_record.go for the byte format) are appended to a log
// whose addresses are byte offsets on the Device. The log is cut into
// pages of PageSize bytes; the newest pages are in memory, split into a
// mutable region at the tail (records there are updated in place when the
// new value fits the old slot) and a read-only region below it (an update
// appends a new record at the tail: read-copy-update). Pages that become
// read-only are written to the device asynchronously; when the memory
// budget is exceeded the oldest pages are evicted (after their writes
// complete) and their records are read back from the device on demand.
//
// The index, a Go map from key to the address of its latest record, lives
// in memory and is persisted only at checkpoints. Delete appends a
// tombstone record to the log and removes the key from the index.
//
// # Checkpoints and recovery
//
// Checkpoint is a fold-over checkpoint: the tail is padded to a sector
// boundary and becomes read-only, every page below it is written and the
// device flushed, then the index is written as a binary document to Meta
// and finally a checkpoint record naming it (with the log boundaries and
// the caller's meta bytes) replaces <prefix>last-checkpoint.json
// atomically. A crash at any point leaves the previous checkpoint usable.
// Pages written after a checkpoint never rewrite the sectors it covers.
//
// OpenKV loads the latest checkpoint: its index and log boundaries.
// Upserts and deletes made after the latest checkpoint are lost on a crash
// or Close: the caller must replay them (the engine replays its commit log
// from the position it stores in the checkpoint's meta bytes).
//
// # Large values
//
// A record larger than a page is supported: it starts on a page boundary
// and gets a run of whole pages (a frame) to itself, flushed, evicted and
// read back as one unit. Such a frame is held in memory in full when
// written, even if it exceeds the memory budget. Records are limited to
// 1 GiB (ErrKVRecordTooLarge).
//
// # Concurrency
//
// All methods are safe for concurrent use: an internal mutex (kv.mu)
// serializes them, but no method holds it while it waits for the device,
// except eviction (which waits for the write of the oldest page, issued
// long before): a Get that reads a record back from the device, and
// Checkpoint while it writes pages and documents, run without it, so Gets
// and Upserts proceed meanwhile. Checkpoint and Compact are serialized
// with each other by a second mutex.
type KV struct {
	mu sync.Mutex
	// maint serializes Checkpoint, Compact and Close: the maintenance
	// operations that release mu while they do I/O.
	maint sync.Mutex

	name     string
	dev      Device
	meta     MetaStore
	prefix   string
	pageSize int64
	sector   int64
	segSize  int64
	budget   int64
	// mutablePages is the size of the mutable region in pages; 0
	// disables in-place updates.
	mutablePages int64

	// index is changed with both mu and idxMu held, so that Has, Len and
	// Keys need only idxMu: they never wait behind an operation that holds
	// mu while it waits for the device (eviction).
	idxMu     sync.RWMutex
	index     map[string]kvEntry
	liveBytes int64

	// frames are the in-memory pages, oldest first, contiguous in
	// address space; the last one may hold the tail.
	frames   []*kvFrame
	memBytes int64
	// fullyIssued: every frame ending at or below it has been handed to
	// the device in full.
	fullyIssued int64

	begin, readOnly, tail int64

	// checkpoint state
	latest       *kvCheckpointRecord // latest durable checkpoint, nil if none
	seq          uint64              // sequence number of the last checkpoint attempt
	durableBegin int64               // Begin of the latest durable checkpoint

	// reads are the device reads in flight without kv.mu (by id: the
	// address read), so that segment removal spares them.
	reads  map[uint64]int64
	readID uint64

	// ioMu guards the write tracking (and the frames' pending counts);
	// ioCond signals a completed write.
	ioMu     sync.Mutex
	ioCond   *sync.Cond
	ioErr    error // first failed page write or device flush: sticky
	writeSeq uint64
	inflight map[uint64]bool // sequence numbers of writes in flight

	closed bool
	stats  KVStats // counters only; addresses are filled in by Stats

	testEvictWait func() // tests: called (with mu held) before eviction waits for a write
}

// kvEntry is an index entry: the address and log size of a key's record.
type kvEntry struct {
	addr int64
	size int64
}

// OpenKV opens a store on opts.Device and opts.Meta, recovering from the
// latest checkpoint if there is one (see KV).
func OpenKV(opts KVOptions) (*KV, error) {
	if opts.Device == nil {
		return nil, fmt.Errorf("faster: open kv %q: no Device", opts.Name)
	}
	if opts.Name == "" {
		opts.Name = opts.Device.Name()
	}
	if opts.Meta == nil {
		return nil, fmt.Errorf("faster: open kv %q: no Meta", opts.Name)
	}
	if opts.MetaPrefix == "" {
		opts.MetaPrefix = "kv-"
	}
	if opts.PageSize == 0 {
		opts.PageSize = 64 << 10
	}
	if opts.MemoryBudget == 0 {
		opts.MemoryBudget = 64 << 20
	}
	if opts.MutableFraction == 0 {
		opts.MutableFraction = 0.9
	}
	sector := opts.Device.SectorSize()
	switch {
	case sector <= 0:
		return nil, fmt.Errorf("faster: open kv %q: device %q has sector size %d", opts.Name, opts.Device.Name(), sector)
	case opts.Device.SegmentSize() <= 0 || opts.Device.SegmentSize()%int64(sector) != 0:
		return nil, fmt.Errorf("faster: open kv %q: device %q has segment size %d, not a positive multiple of its sector size %d",
			opts.Name, opts.Device.Name(), opts.Device.SegmentSize(), sector)
	case opts.PageSize < 0 || opts.PageSize%sector != 0 || opts.PageSize < 2*kvHeaderSize:
		return nil, fmt.Errorf("faster: open kv %q: PageSize %d is not a positive multiple of the device sector size %d",
			opts.Name, opts.PageSize, sector)
	case opts.MemoryBudget < 2*int64(opts.PageSize):
		return nil, fmt.Errorf("faster: open kv %q: MemoryBudget %d is less than two pages of %d bytes",
			opts.Name, opts.MemoryBudget, opts.PageSize)
	case opts.MutableFraction > 1:
		return nil, fmt.Errorf("faster: open kv %q: MutableFraction %g is more than 1", opts.Name, opts.MutableFraction)
	}
	kv := &KV{
		name:     opts.Name,
		dev:      opts.Device,
		meta:     opts.Meta,
		prefix:   opts.MetaPrefix,
		pageSize: int64(opts.PageSize),
		sector:   int64(sector),
		segSize:  opts.Device.SegmentSize(),
		budget:   opts.MemoryBudget,
		index:    make(map[string]kvEntry),
		reads:    make(map[uint64]int64),
		inflight: make(map[uint64]bool),
	}
	kv.ioCond = sync.NewCond(&kv.ioMu)
	if opts.MutableFraction > 0 {
		kv.mutablePages = max(1, int64(float64(kv.budget/kv.pageSize)*opts.MutableFraction))
	}
	if err := kv.kvRecover(); err != nil {
		return nil, err
	}
	return kv, nil
}

// kvErr wraps err with the store's name and the operation.
func (kv *KV) kvErr(op string, err error) error {
	return fmt.Errorf("faster: kv %q: %s: %w", kv.name, op, err)
}

// kvCheck reports why the store cannot be used: closed, or a failed
// device write.
func (kv *KV) kvCheck(op string) error {
	if kv.closed {
		return kv.kvErr(op, ErrClosed)
	}
	if err := kv.kvIOErr(); err != nil {
		return kv.kvErr(op, fmt.Errorf("store failed earlier, reopen it to recover from the last checkpoint: %w", err))
	}
	return nil
}

func (kv *KV) kvIOErr() error {
	kv.ioMu.Lock()
	defer kv.ioMu.Unlock()
	return kv.ioErr
}

func (kv *KV) kvSetIOErr(err error) {
	kv.ioMu.Lock()
	defer kv.ioMu.Unlock()
	if kv.ioErr == nil {
		kv.ioErr = err
	}
}

// Get returns a copy of the key's value. A record evicted from memory is
// read back from the device, without holding the store's lock. A checksum
// mismatch there is reported as an error naming the device segment.
func (kv *KV) Get(key string) (value []byte, ok bool, err error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.closed {
		return nil, false, kv.kvErr("get", ErrClosed)
	}
	e, ok := kv.index[key]
	if !ok {
		return nil, false, nil
	}
	var v []byte
	var tomb bool
	if f := kv.kvFrameAt(e.addr); f != nil {
		v, tomb, err = kv.kvReadMemory(f, e, key, true)
	} else {
		end := kv.kvBeginDeviceRead(e)
		kv.mu.Unlock()
		v, tomb, err = kv.kvReadDevice(e, key)
		kv.mu.Lock()
		end()
		if err == nil {
			kv.kvCountRead(e)
		}
	}
	if err != nil {
		return nil, false, kv.kvErr(fmt.Sprintf("get %q", kvShortKey(key)), err)
	}
	if tomb {
		return nil, false, kv.kvErr(fmt.Sprintf("get %q", kvShortKey(key)), fmt.Errorf("index points to a tombstone at %d", e.addr))
	}
	return v, true, nil
}

// Upsert sets the key's value. A record in the mutable region whose slot
// holds the new value is updated in place; otherwise a new record is
// appended at the tail.
func (kv *KV) Upsert(key string, value []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if err := kv.kvCheck("upsert"); err != nil {
		return err
	}
	if size := kvRecordSize(len(key), len(value)); size > kvMaxRecordSize {
		return kv.kvErr(fmt.Sprintf("upsert %q", kvShortKey(key)),
			fmt.Errorf("%w: key of %d and value of %d bytes make a record of %d bytes; the limit is %d",
				ErrKVRecordTooLarge, len(key), len(value), size, kvMaxRecordSize))
	}
	old, exists := kv.index[key]
	if exists && kv.mutablePages > 0 && old.addr >= kv.readOnly {
		f := kv.kvFrameAt(old.addr)
		if f == nil {
			return kv.kvErr("upsert", fmt.Errorf("internal error: mutable address %d is not in memory", old.addr))
		}
		b := f.buf[old.addr-f.start:]
		h, err := kvParseHeader(b)
		if err != nil {
			return kv.kvErr(fmt.Sprintf("upsert %q: record at %d", kvShortKey(key), old.addr), err)
		}
		if len(value) <= h.valueCap {
			kvPutValue(b, h.keyLen, value)
			kv.stats.Upserts++
			kv.stats.InPlaceUpdates++
			return nil
		}
	}
	addr, size, err := kv.kvAppend(key, value, false)
	if err != nil {
		return kv.kvErr(fmt.Sprintf("upsert %q", kvShortKey(key)), err)
	}
	if exists {
		kv.liveBytes -= old.size
	}
	kv.idxMu.Lock()
	kv.index[key] = kvEntry{addr: addr, size: size}
	kv.idxMu.Unlock()
	kv.liveBytes += size
	kv.stats.Upserts++
	return nil
}

// Delete removes the key: it appends a tombstone record and drops the key
// from the index. Deleting a missing key does nothing.
func (kv *KV) Delete(key string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if err := kv.kvCheck("delete"); err != nil {
		return err
	}
	old, ok := kv.index[key]
	if !ok {
		return nil
	}
	if _, _, err := kv.kvAppend(key, nil, true); err != nil {
		return kv.kvErr(fmt.Sprintf("delete %q", kvShortKey(key)), err)
	}
	kv.idxMu.Lock()
	delete(kv.index, key)
	kv.idxMu.Unlock()
	kv.liveBytes -= old.size
	kv.stats.Deletes++
	return nil
}

// Len returns the number of live keys.
func (kv *KV) Len() int {
	kv.idxMu.RLock()
	defer kv.idxMu.RUnlock()
	return len(kv.index)
}

// Keys returns the live keys, sorted.
func (kv *KV) Keys() []string {
	kv.idxMu.RLock()
	keys := make([]string, 0, len(kv.index))
	for k := range kv.index {
		keys = append(keys, k)
	}
	kv.idxMu.RUnlock()
	slices.Sort(keys)
	return keys
}

// Has reports whether key is live, without reading its value. It does
// not wait for other operations' device I/O.
func (kv *KV) Has(key string) bool {
	kv.idxMu.RLock()
	defer kv.idxMu.RUnlock()
	_, ok := kv.index[key]
	return ok
}

// Stats returns the store's addresses and counters.
func (kv *KV) Stats() KVStats {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	s := kv.stats
	s.Begin, s.Head, s.ReadOnly, s.Tail = kv.begin, kv.kvHead(), kv.readOnly, kv.tail
	if kv.latest != nil {
		s.CheckpointTail = kv.latest.Tail
	}
	s.Keys = len(kv.index)
	s.LiveBytes = kv.liveBytes
	s.MemoryBytes = kv.memBytes
	s.MemoryPages = int(kv.memBytes / kv.pageSize)
	s.MemoryBudget = kv.budget
	return s
}

// LatestCheckpoint returns the token and meta bytes of the latest durable
// checkpoint, or "" and nil if there is none.
func (kv *KV) LatestCheckpoint() (token string, meta []byte, err error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.closed {
		return "", nil, kv.kvErr("latest checkpoint", ErrClosed)
	}
	if kv.latest == nil {
		return "", nil, nil
	}
	return kv.latest.Token, append([]byte(nil), kv.latest.Meta...), nil
}

// Close waits for outstanding page writes and releases the in-memory log.
// It does not checkpoint: changes since the latest checkpoint are dropped
// (the next OpenKV recovers from that checkpoint). It does not close the
// Device or the MetaStore. Closing twice is no error.
func (kv *KV) Close() error {
	kv.maint.Lock()
	defer kv.maint.Unlock()
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.closed {
		return nil
	}
	kv.closed = true
	_ = kv.kvWaitAllWrites()
	kv.idxMu.Lock()
	kv.frames, kv.index, kv.memBytes = nil, nil, 0
	kv.idxMu.Unlock()
	if err := kv.kvIOErr(); err != nil {
		return kv.kvErr("close", err)
	}
	return nil
}
