package faster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
)

// Checkpoint layout in the MetaStore (prefix is KVOptions.MetaPrefix):
//
//	<prefix>checkpoint-<token>.index  the index, binary (kvEncodeIndex)
//	<prefix>last-checkpoint.json      the latest checkpoint record
//
// The index document is written first and the record second; the record
// is what makes a checkpoint the latest, and it carries the index
// document's length and checksum. Index documents other than the latest
// one's are removed after each checkpoint and at open.
const (
	kvLatestDocName   = "last-checkpoint.json"
	kvIndexDocPrefix  = "checkpoint-"
	kvIndexDocSuffix  = ".index"
	kvCheckpointFmt   = 1
	kvIndexMagic      = "FKVIDX01"
	kvIndexTrailerLen = 4
)

// kvCheckpointRecord is the JSON document that names the latest
// checkpoint.
type kvCheckpointRecord struct {
	Version  int    `json:"version"`
	Store    string `json:"store"`
	Token    string `json:"token"`
	Seq      uint64 `json:"seq"`
	PageSize int64  `json:"pageSize"`
	// Log boundaries: records the index points to lie in [Begin, Tail),
	// all of it on the device.
	Begin      int64     `json:"begin"`
	Tail       int64     `json:"tail"`
	Keys       int       `json:"keys"`
	IndexDoc   string    `json:"indexDocument"`
	IndexBytes int       `json:"indexBytes"`
	IndexCRC   uint32    `json:"indexCrc32c"`
	Meta       []byte    `json:"meta"` // the caller's bytes, base64
	Written    time.Time `json:"written"`
}

func (kv *KV) kvLatestDoc() string { return kv.prefix + kvLatestDocName }

func (kv *KV) kvIndexDoc(token string) string {
	return kv.prefix + kvIndexDocPrefix + token + kvIndexDocSuffix
}

// Checkpoint takes a fold-over checkpoint and returns its token once it is
// durable: the tail becomes read-only, every page below it is written and
// the device flushed, the index is written, and the checkpoint record
// naming it replaces the previous one atomically. meta is stored with the
// checkpoint and returned by LatestCheckpoint (the engine keeps its commit
// log position there). Afterwards device segments wholly below the
// checkpoint's Begin (see Compact) and older checkpoint documents are
// removed.
//
// Only the fold-over itself (freezing the region to write and encoding
// the index) holds the store's lock; the device writes, the flush and the
// documents are written without it, so Gets (including reads from the
// device) and Upserts proceed during a checkpoint. Upserts then go above
// the frozen tail and belong to the next checkpoint.
//
// A failed device write or flush is sticky: the store then refuses further
// changes and must be reopened. A failed MetaStore write is not: the
// previous checkpoint stays the latest and Checkpoint may be retried.
func (kv *KV) Checkpoint(meta []byte) (token string, err error) {
	kv.maint.Lock()
	defer kv.maint.Unlock()

	// Freeze, under the lock.
	kv.mu.Lock()
	if err := kv.kvCheck("checkpoint"); err != nil {
		kv.mu.Unlock()
		return "", err
	}
	// Fold over: pad the tail to a sector boundary, so that later writes of
	// the tail page never rewrite a sector this checkpoint covers, and make
	// everything below it read-only.
	if f := kv.kvTailFrame(); f != nil {
		kv.tail = min(f.start+kvAlignUp(kv.tail-f.start, kv.sector), f.end())
	}
	kv.kvShiftReadOnly(kv.tail)
	for _, f := range kv.frames {
		kv.kvIssue(f, int(min(f.end(), kv.tail)-f.start))
		if f.end() <= kv.tail {
			kv.fullyIssued = max(kv.fullyIssued, f.end())
		}
	}
	// Every write up to this one covers the frozen region (earlier writes
	// included); later ones are above the tail.
	writes := kv.kvIssuedSeq()
	kv.seq++
	rec := &kvCheckpointRecord{
		Version:  kvCheckpointFmt,
		Store:    kv.name,
		Token:    fmt.Sprintf("%016x", kv.seq),
		Seq:      kv.seq,
		PageSize: kv.pageSize,
		Begin:    kv.begin,
		Tail:     kv.tail,
		Keys:     len(kv.index),
		Meta:     append([]byte{}, meta...),
		Written:  time.Now().UTC(),
	}
	rec.IndexDoc = kv.kvIndexDoc(rec.Token)
	idx := kvEncodeIndex(kv.index)
	kv.mu.Unlock()

	// Write, without the lock.
	if err := kv.kvWaitIssued(writes); err != nil {
		return "", kv.kvErr("checkpoint", err)
	}
	if err := kv.dev.Flush(); err != nil {
		err = fmt.Errorf("flush device %s: %w", kv.dev.Name(), err)
		kv.kvSetIOErr(err)
		return "", kv.kvErr("checkpoint", err)
	}
	rec.IndexBytes, rec.IndexCRC = len(idx), crc32.Checksum(idx, kvCRCTable)
	if err := kv.meta.WriteFile(rec.IndexDoc, idx); err != nil {
		return "", kv.kvErr(fmt.Sprintf("checkpoint %s: write index %s", rec.Token, rec.IndexDoc), err)
	}
	doc, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", kv.kvErr(fmt.Sprintf("checkpoint %s", rec.Token), err)
	}
	if err := kv.meta.WriteFile(kv.kvLatestDoc(), doc); err != nil {
		return "", kv.kvErr(fmt.Sprintf("checkpoint %s: write record %s", rec.Token, kv.kvLatestDoc()), err)
	}

	// Record, under the lock.
	kv.mu.Lock()
	kv.latest = rec
	kv.durableBegin = rec.Begin
	kv.stats.Checkpoints++
	kv.mu.Unlock()
	kv.kvCleanup()
	return rec.Token, nil
}

// kvCleanup removes what the latest durable checkpoint no longer needs:
// device segments wholly below its Begin, and other checkpoints' index
// documents. Failures are counted and retried next time. It runs without
// kv.mu (the caller holds kv.maint): segments are removed only below the
// lowest device read in flight, and reads that start later only look at
// records at or above Begin.
func (kv *KV) kvCleanup() {
	kv.mu.Lock()
	limit := kv.durableBegin
	for _, addr := range kv.reads {
		limit = min(limit, addr)
	}
	removed := kv.stats.RemovedBelow
	latest := kv.latest
	kv.mu.Unlock()

	var errs int64
	if limit > removed {
		if err := kv.dev.RemoveSegmentsBelow(limit); err != nil {
			errs++
		} else {
			removed = limit
		}
	}
	names, err := kv.meta.List(kv.prefix + kvIndexDocPrefix)
	if err != nil {
		errs++
	}
	for _, name := range names {
		if !strings.HasSuffix(name, kvIndexDocSuffix) || (latest != nil && name == latest.IndexDoc) {
			continue
		}
		if err := kv.meta.Remove(name); err != nil {
			errs++
		}
	}
	kv.mu.Lock()
	kv.stats.RemovedBelow = max(kv.stats.RemovedBelow, removed)
	kv.stats.CleanupErrors += errs
	kv.mu.Unlock()
}

// kvRecover loads the latest checkpoint, if any.
func (kv *KV) kvRecover() error {
	doc, err := kv.meta.ReadFile(kv.kvLatestDoc())
	if errors.Is(err, ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return kv.kvErr("open: read "+kv.kvLatestDoc(), err)
	}
	var rec kvCheckpointRecord
	if err := json.Unmarshal(doc, &rec); err != nil {
		return kv.kvErr("open: checkpoint record "+kv.kvLatestDoc(), err)
	}
	bad := func(format string, args ...any) error {
		return kv.kvErr(fmt.Sprintf("open: checkpoint %s (%s)", rec.Token, kv.kvLatestDoc()), fmt.Errorf(format, args...))
	}
	switch {
	case rec.Version != kvCheckpointFmt:
		return bad("format version %d; this build reads version %d", rec.Version, kvCheckpointFmt)
	case rec.PageSize != kv.pageSize:
		return bad("the store was created with page size %d, not %d (PageSize is fixed when a store is created)", rec.PageSize, kv.pageSize)
	case rec.Begin < 0 || rec.Tail < rec.Begin || rec.Tail%kv.sector != 0:
		return bad("invalid log boundaries begin %d, tail %d (sector size %d)", rec.Begin, rec.Tail, kv.sector)
	}
	idx, err := kv.meta.ReadFile(rec.IndexDoc)
	if err != nil {
		return bad("read index %s: %w", rec.IndexDoc, err)
	}
	if len(idx) != rec.IndexBytes || crc32.Checksum(idx, kvCRCTable) != rec.IndexCRC {
		return bad("index %s has %d bytes and checksum %#08x; the record says %d bytes, checksum %#08x",
			rec.IndexDoc, len(idx), crc32.Checksum(idx, kvCRCTable), rec.IndexBytes, rec.IndexCRC)
	}
	index, live, err := kvDecodeIndex(idx, rec.Begin, rec.Tail)
	if err != nil {
		return bad("index %s: %w", rec.IndexDoc, err)
	}
	if len(index) != rec.Keys {
		return bad("index %s holds %d keys; the record says %d", rec.IndexDoc, len(index), rec.Keys)
	}
	kv.idxMu.Lock()
	kv.index, kv.liveBytes = index, live
	kv.idxMu.Unlock()
	kv.begin, kv.tail, kv.readOnly = rec.Begin, rec.Tail, rec.Tail
	kv.latest, kv.seq, kv.durableBegin = &rec, rec.Seq, rec.Begin
	kv.fullyIssued = kvAlignDown(rec.Tail, kv.pageSize)
	if off := rec.Tail % kv.pageSize; off != 0 {
		// The tail page: its part below the tail is on the device and
		// stays there; appends continue after it.
		f := &kvFrame{start: rec.Tail - off, buf: make([]byte, kv.pageSize), issued: int(off)}
		if err := kv.kvDeviceRead(f.start, f.buf[:off]); err != nil {
			return bad("read the tail page: %w", err)
		}
		kv.frames = []*kvFrame{f}
		kv.memBytes = kv.pageSize
	}
	kv.stats.RemovedBelow = 0
	kv.kvCleanup()
	return nil
}

// kvEncodeIndex encodes the index: the magic "FKVIDX01", the number of
// entries (uvarint), then per entry the key length, the key, the address
// and the record size (uvarints but the key), and a CRC32-C of all of
// that (4 bytes, little-endian).
func kvEncodeIndex(index map[string]kvEntry) []byte {
	n := len(kvIndexMagic) + binary.MaxVarintLen64 + kvIndexTrailerLen
	for k := range index {
		n += len(k) + 3*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, kvIndexMagic...)
	b = binary.AppendUvarint(b, uint64(len(index)))
	for k, e := range index {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(e.addr))
		b = binary.AppendUvarint(b, uint64(e.size))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, kvCRCTable))
}

// kvDecodeIndex decodes an index and checks that every record lies in
// [begin, tail). It returns the index and its records' total size.
func kvDecodeIndex(b []byte, begin, tail int64) (map[string]kvEntry, int64, error) {
	if len(b) < len(kvIndexMagic)+kvIndexTrailerLen || string(b[:len(kvIndexMagic)]) != kvIndexMagic {
		return nil, 0, errors.New("not an index document")
	}
	body := b[:len(b)-kvIndexTrailerLen]
	if crc32.Checksum(body, kvCRCTable) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, 0, errors.New("index checksum mismatch")
	}
	p := body[len(kvIndexMagic):]
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	count, ok := uvarint()
	if !ok || count > uint64(len(p)) {
		return nil, 0, errors.New("invalid entry count")
	}
	index := make(map[string]kvEntry, count)
	var live int64
	for i := range count {
		kl, ok := uvarint()
		if !ok || kl > uint64(len(p)) {
			return nil, 0, fmt.Errorf("entry %d: invalid key length", i)
		}
		key := string(p[:kl])
		p = p[kl:]
		addr, ok1 := uvarint()
		size, ok2 := uvarint()
		if !ok1 || !ok2 {
			return nil, 0, fmt.Errorf("entry %d (key %q): cut short", i, kvShortKey(key))
		}
		e := kvEntry{addr: int64(addr), size: int64(size)}
		if e.addr < begin || e.size < kvHeaderSize || e.size > kvMaxRecordSize || e.addr+e.size > tail {
			return nil, 0, fmt.Errorf("entry %d (key %q): record at %d of %d bytes lies outside the log [%d, %d)",
				i, kvShortKey(key), e.addr, e.size, begin, tail)
		}
		if _, dup := index[key]; dup {
			return nil, 0, fmt.Errorf("entry %d: key %q appears twice", i, kvShortKey(key))
		}
		index[key] = e
		live += e.size
	}
	if len(p) != 0 {
		return nil, 0, fmt.Errorf("%d bytes after the last entry", len(p))
	}
	return index, live, nil
}
