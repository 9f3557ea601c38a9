package faster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The commit log is an append-only sequence of records in the logical
// address space of a Device. A record's position is the byte address of
// its header; records are packed densely, one after another, and may span
// sector and segment boundaries (device calls are split at segments).
//
// Record format (little-endian), 16-byte header then the payload:
//
//	0  magic   uint32  0x3152_4C4E ("NLR1", a data record) or
//	                   0x3143_4C4E ("NLC1", a commit record)
//	4  length  uint32  payload length, at most LogMaxPayload
//	8  epoch   uint32  epoch of the Log instance that appended it
//	12 crc     uint32  CRC-32C of magic|length|epoch|payload|position
//	16 payload
//
// The position (8 bytes) is part of the checksum, so a record is only
// valid at the address it was appended at; a zeroed area never parses (bad
// magic). The epoch is incremented and persisted by every OpenLog; it lets
// recovery tell the records of the last instance from stale bytes of older
// failed commits.
//
// A commit record (16-byte payload: prev int64, tail int64) ends every
// commit: prev is the committed tail before the commit (where its records
// start) and tail the committed tail after it (the end of the commit
// record itself). A commit is one device write, covering its records and
// its commit record, and one Flush: nothing else (format 2). Scan skips
// commit records; their positions are record positions like any other.
//
// Commits and sectors: a commit writes from the start of the sector that
// holds the previous committed tail to the end of the sector that holds
// the new one, padded with zeros. The next commit rewrites that last
// partial sector with the same committed prefix plus new records, so
// positions stay dense and no space is lost to padding. Rewriting identical
// bytes is safe even if the rewrite is torn (sector writes are atomic).
//
// Segments: before a commit writes into a segment for the first time, the
// log preallocates it (if the device is a Preallocator: a file device
// fallocates the file and syncs its directory) and records the committed
// tail in the metadata. So a commit never changes a file's size or a
// directory, and fdatasync has only the data to write.
//
// Metadata: the document LogOptions.MetaName holds JSON
// {"version":2,"begin":B,"tail":T,"epoch":E}. It is replaced atomically
// by OpenLog (with the new epoch), at segment switches, by Truncate (with
// the current committed tail) and by Close; T is a committed tail, not
// necessarily the latest.
//
// Recovery (OpenLog): every record from begin to the metadata tail T is
// verified; an invalid one is a hard error naming the log, the position
// and the segment. From T on, OpenLog reads the records of the last
// instance's epoch up to the first one that does not verify; the
// recovered tail is the end of the last valid commit record, and what
// lies beyond it (records of a commit whose commit record is missing, a
// torn write) is cut. A valid commit record of that epoch further on whose
// commit started beyond the recovered tail proves that the invalid bytes
// were part of a commit that completed: that is corruption, a hard error,
// never silent loss. OpenLog looks for such commit records from the
// invalid position up to the first 256 KiB window that is all zeros
// (preallocated or never-written space); a payload holding that many zeros
// in a row would hide later commits from this check. Only damage to the
// data of the very last commit cannot be told from a torn write: that
// commit may have been in flight at the crash, and is cut. Nothing is
// zeroed: the last accepted commit is rewritten and flushed (it may not
// have reached the device), then the new tail and epoch are recorded. A caller whose Commit failed cannot assume its records are
// absent after recovery: a failed commit's outcome is unknown.
//
// Format 1 (metadata "version":1) made the metadata document the commit
// point: each commit wrote its records, flushed, and replaced the
// document; no commit records. OpenLog still recovers such a log (records
// beyond the recorded tail are accepted up to the first invalid one), and
// LogOptions.MetaCommits keeps that mode (for blobs, where the document
// is the lease-fenced commit point, and for callers that need dense
// positions). A log opened in one mode recovers data written in the
// other; another version number is a hard error naming it.

const (
	logHeaderSize         = 16
	logMagic       uint32 = 0x3152_4C4E // "NLR1" in little-endian byte order
	logCommitMagic uint32 = 0x3143_4C4E // "NLC1"
	logCommitBody         = 16          // prev, tail
	logCommitSize         = logHeaderSize + logCommitBody
	// LogMaxPayload is the largest payload Append accepts.
	LogMaxPayload = 1 << 30

	logReadWindow = 256 << 10 // bytes read at a time while scanning
	logSpareMax   = 4 << 20   // commit buffers up to this capacity are reused

	logFormatMeta    = 1 // the metadata document is the commit point
	logFormatRecords = 2 // commit records in the log
)

var logCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// LogOptions configure OpenLog.
type LogOptions struct {
	Name     string    // e.g. "partition 3 commit log", used in every error
	Device   Device    // where records go; the Log does not close it
	Meta     MetaStore // where the committed tail goes; the Log does not close it
	MetaName string    // document holding the committed tail, e.g. "commit-log.meta"
	// MetaCommits makes the metadata document the commit point (format
	// 1): each commit writes its records, flushes, then replaces the
	// document, and no commit records are written, so each record starts
	// where the previous one ends (callers that predict positions need
	// this). A Meta that is a FencedMeta for MetaName implies it.
	MetaCommits bool

	noPrealloc bool // for benchmarks of format 1 as it was: no preallocation
}

// FencedMeta is a MetaStore whose writes of some documents are fenced by
// the storage service: blobstore writes the lease blob's content
// conditioned on the lease. A commit log whose metadata document is fenced
// makes it its commit point (LogOptions.MetaCommits), so that a deposed
// owner's commit can never succeed.
type FencedMeta interface {
	MetaStore
	Fenced(name string) bool
}

// Preallocator is a Device that can reserve a segment's space ahead of
// writes. Preallocate makes the segment holding addr exist at its full
// size, durably (its size and directory entry survive a crash), so that
// writes into it change no file metadata and Flush has only data to sync.
// Preallocating an existing segment again is cheap.
type Preallocator interface {
	Preallocate(addr int64) error
}

// Log is an append-only commit log with group commit. Append, Commit,
// Scan, Truncate and the accessors are safe for concurrent use.
type Log struct {
	name        string
	dev         Device
	meta        MetaStore
	metaName    string
	metaCommits bool
	prealloc    Preallocator // nil if the device is not one
	sector      int64
	segSize     int64
	epoch       uint32 // of this instance; written into every record

	mu         sync.Mutex
	cond       *sync.Cond // signalled when a commit finishes
	appendTail int64      // position of the next record
	bufStart   int64      // sector-aligned address of buf[0]
	buf        []byte     // bytes [bufStart, appendTail); the prefix up to the committed tail is committed
	spare      []byte     // a reusable buffer
	committing bool       // a commit is writing
	failed     error      // sticky: a commit failed; the log must be reopened
	closed     bool

	curSeg int64 // the last segment prepared for writes; only the commit leader uses it

	committed atomic.Int64 // committed tail
	begin     atomic.Int64

	metaMu    sync.Mutex // serializes metadata writes
	metaBegin int64      // as last written
	metaTail  int64

	statsMu sync.Mutex
	stats   CommitStats
}

type logMeta struct {
	Version int    `json:"version"`
	Begin   int64  `json:"begin"`
	Tail    int64  `json:"tail"`
	Epoch   uint32 `json:"epoch"`
}

// logBadRecord describes why bytes do not parse as a valid record.
type logBadRecord struct{ reason string }

func (e *logBadRecord) Error() string { return e.reason }

// OpenLog opens the log, recovering it: see the comment at the top of
// this file. Appends continue at the recovered committed tail.
func OpenLog(opts LogOptions) (*Log, error) {
	if opts.Name == "" {
		opts.Name = "commit log"
	}
	if opts.Device == nil || opts.Meta == nil || opts.MetaName == "" {
		return nil, fmt.Errorf("faster: %s: LogOptions need a Device, a Meta store and a MetaName", opts.Name)
	}
	l := &Log{
		name:        opts.Name,
		dev:         opts.Device,
		meta:        opts.Meta,
		metaName:    opts.MetaName,
		metaCommits: opts.MetaCommits,
		sector:      int64(opts.Device.SectorSize()),
		segSize:     opts.Device.SegmentSize(),
	}
	if fm, ok := opts.Meta.(FencedMeta); ok && fm.Fenced(opts.MetaName) {
		l.metaCommits = true
	}
	if !opts.noPrealloc {
		l.prealloc, _ = opts.Device.(Preallocator)
	}
	l.cond = sync.NewCond(&l.mu)

	m, err := l.readMeta()
	if err != nil {
		return nil, err
	}
	// Every record before the metadata tail must be valid.
	r := l.newReader(m.Tail)
	for pos := m.Begin; pos < m.Tail; {
		_, next, _, err := r.record(pos, m.Tail, m.Epoch, false)
		if err != nil {
			return nil, l.recordErr(pos, m.Tail, err)
		}
		pos = next
	}
	tail, lastStart := m.Tail, m.Tail // the recovered tail, and where its last commit started
	if m.Epoch > 0 {
		if m.Version == logFormatMeta {
			tail, err = l.recoverFormat1(m)
		} else {
			tail, lastStart, err = l.recoverFormat2(m)
		}
		if err != nil {
			return nil, err
		}
	}
	if tail > m.Tail {
		// The last accepted commit may not be durable yet (it may have
		// failed before or during its flush; every earlier one was
		// flushed before the next began): write it again and flush.
		start := l.alignDown(max(m.Tail, lastStart))
		p := make([]byte, l.alignUp(tail)-start)
		if err := l.devIO(l.dev.ReadAsync, start, p); err != nil {
			return nil, fmt.Errorf("faster: %s: recovery: reading the records beyond the metadata tail %d: %w", l.name, m.Tail, err)
		}
		if err := l.devIO(l.dev.WriteAsync, start, p); err != nil {
			return nil, fmt.Errorf("faster: %s: recovery: rewriting the records beyond the metadata tail %d: %w", l.name, m.Tail, err)
		}
		if err := l.dev.Flush(); err != nil {
			return nil, fmt.Errorf("faster: %s: recovery: flush: %w", l.name, err)
		}
	}

	l.epoch = m.Epoch + 1
	if l.epoch == 0 {
		l.epoch = 1
	}
	l.curSeg = l.alignDown(tail) / l.segSize
	if l.prealloc != nil {
		if err := l.prealloc.Preallocate(l.curSeg * l.segSize); err != nil {
			return nil, fmt.Errorf("faster: %s: recovery: %w", l.name, err)
		}
	}
	l.metaBegin, l.metaTail = m.Begin, m.Tail
	if err := l.writeMeta(m.Begin, tail); err != nil {
		return nil, fmt.Errorf("faster: %s: recovery: %w", l.name, err)
	}
	// Segments below begin may survive a Truncate interrupted after its
	// metadata write.
	if err := l.dev.RemoveSegmentsBelow(m.Begin); err != nil {
		return nil, fmt.Errorf("faster: %s: recovery: %w", l.name, err)
	}

	l.begin.Store(m.Begin)
	l.committed.Store(tail)
	l.appendTail = tail
	l.bufStart = l.alignDown(tail)
	l.buf = make([]byte, tail-l.bufStart, 64<<10)
	if len(l.buf) > 0 {
		p := make([]byte, l.sector)
		if err := l.devIO(l.dev.ReadAsync, l.bufStart, p); err != nil {
			return nil, fmt.Errorf("faster: %s: recovery: reading the last sector: %w", l.name, err)
		}
		copy(l.buf, p)
	}
	return l, nil
}

// recoverFormat1: the metadata tail is the commit point; beyond it,
// complete records of the last instance up to the first invalid one are
// accepted (a commit whose data was written but whose metadata write was
// lost).
func (l *Log) recoverFormat1(m logMeta) (int64, error) {
	tail := m.Tail
	r := l.newReader(-1)
	for {
		_, next, _, err := r.record(tail, -1, m.Epoch, true)
		if err != nil {
			if _, bad := errors.AsType[*logBadRecord](err); bad {
				return tail, nil
			}
			return 0, l.recordErr(tail, m.Tail, err)
		}
		tail = next
	}
}

// recoverFormat2 finds the last valid commit record of the last instance
// beyond the metadata tail, and checks that no commit completed beyond
// the bytes that end the search.
func (l *Log) recoverFormat2(m logMeta) (tail, lastStart int64, err error) {
	r := l.newReader(-1)
	pos, last := m.Tail, m.Tail
	lastStart = m.Tail
	for {
		payload, next, commit, err := r.record(pos, -1, m.Epoch, true)
		if err != nil {
			if _, bad := errors.AsType[*logBadRecord](err); bad {
				break
			}
			return 0, 0, l.recordErr(pos, m.Tail, err)
		}
		if commit {
			prev, end := logCommitFields(payload)
			if prev != last || end != next {
				return 0, 0, fmt.Errorf("faster: %s: corrupt log: the commit record at position %d in segment %s covers [%d, %d), but the previous commit ended at %d",
					l.name, pos, l.dev.SegmentName(pos), prev, end, last)
			}
			lastStart, last = prev, next
		}
		pos = next
	}
	if err := l.checkNoLaterCommit(r, pos, last, m.Epoch); err != nil {
		return 0, 0, err
	}
	return last, lastStart, nil
}

// checkNoLaterCommit looks beyond bad (where the records stopped
// verifying) for a valid commit record of epoch whose commit started
// after last (the recovered tail): its existence means that a commit
// covering bad completed, so the bytes at bad are corrupt.
func (l *Log) checkNoLaterCommit(r *logReader, bad, last int64, epoch uint32) error {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], logCommitMagic)
	var candidates *logReader // validates commit magics found; r's buffer holds the window
	for ws := l.alignDown(bad); ; ws += logReadWindow - l.sector {
		// Usually a hit in r's buffer: the scan just read this window.
		buf, err := r.get(ws, logReadWindow)
		if err != nil {
			return fmt.Errorf("faster: %s: recovery: reading %d bytes at %d (segment %s): %w", l.name, logReadWindow, ws, l.dev.SegmentName(ws), err)
		}
		from := max(bad, ws) - ws
		if bytes.Equal(buf[from:], logZeros[from:len(buf)]) {
			return nil
		}
		for i := from; ; {
			j := bytes.Index(buf[i:], magic[:])
			if j < 0 {
				break
			}
			q := ws + i + int64(j)
			if candidates == nil {
				candidates = l.newReader(-1)
			}
			if payload, _, commit, err := candidates.record(q, -1, epoch, true); err == nil && commit {
				if prev, tail := logCommitFields(payload); prev > last {
					return fmt.Errorf("faster: %s: corrupt log: invalid record at position %d in segment %s, before the valid commit record at position %d (segment %s) of a commit of [%d, %d); the log recovers only to %d",
						l.name, bad, l.dev.SegmentName(bad), q, l.dev.SegmentName(q), prev, tail, last)
				}
			}
			i += int64(j) + 1
		}
	}
}

// logZeros is compared with what lies beyond the end of the log.
var logZeros [logReadWindow]byte

func logCommitFields(payload []byte) (prev, tail int64) {
	return int64(binary.LittleEndian.Uint64(payload)), int64(binary.LittleEndian.Uint64(payload[8:]))
}

func (l *Log) readMeta() (logMeta, error) {
	data, err := l.meta.ReadFile(l.metaName)
	if errors.Is(err, ErrNotExist) {
		return logMeta{Version: l.format()}, nil
	}
	if err != nil {
		return logMeta{}, fmt.Errorf("faster: %s: reading metadata: %w", l.name, err)
	}
	var m logMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return logMeta{}, fmt.Errorf("faster: %s: metadata %q: %w", l.name, l.metaName, err)
	}
	if m.Version != logFormatMeta && m.Version != logFormatRecords {
		return logMeta{}, fmt.Errorf("faster: %s: metadata %q: unsupported log format version %d (this build reads versions %d and %d)", l.name, l.metaName, m.Version, logFormatMeta, logFormatRecords)
	}
	if m.Begin < 0 || m.Tail < m.Begin {
		return logMeta{}, fmt.Errorf("faster: %s: metadata %q: invalid content %s", l.name, l.metaName, data)
	}
	return m, nil
}

func (l *Log) format() int {
	if l.metaCommits {
		return logFormatMeta
	}
	return logFormatRecords
}

// writeMeta durably records begin and tail (with this instance's epoch).
func (l *Log) writeMeta(begin, tail int64) error {
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	return l.writeMetaLocked(begin, tail)
}

func (l *Log) writeMetaLocked(begin, tail int64) error {
	data, err := json.Marshal(logMeta{Version: l.format(), Begin: begin, Tail: tail, Epoch: l.epoch})
	if err != nil {
		return err
	}
	if err := l.meta.WriteFile(l.metaName, data); err != nil {
		return fmt.Errorf("writing metadata %q: %w", l.metaName, err)
	}
	l.metaBegin, l.metaTail = begin, tail
	l.statsMu.Lock()
	l.stats.MetaWrites++
	l.statsMu.Unlock()
	return nil
}

// Append buffers a record and returns its position. It never waits for
// I/O; the record is durable once a Commit that covers it returns nil. It
// returns -1, and drops the record, if the log is closed or a commit
// failed. It panics if the payload is longer than LogMaxPayload.
func (l *Log) Append(payload []byte) int64 {
	if len(payload) > LogMaxPayload {
		panic(fmt.Sprintf("faster: %s: payload of %d bytes exceeds LogMaxPayload", l.name, len(payload)))
	}
	crc := l.headerCRC(logMagic, payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failed != nil {
		return -1
	}
	return l.appendLocked(logMagic, crc, payload)
}

// headerCRC starts a record's checksum: the header fields and the payload
// (the position is added by appendLocked).
func (l *Log) headerCRC(magic uint32, payload []byte) uint32 {
	var hdr [12]byte
	binary.LittleEndian.PutUint32(hdr[0:], magic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[8:], l.epoch)
	crc := crc32.Update(0, logCastagnoli, hdr[:])
	return crc32.Update(crc, logCastagnoli, payload)
}

func (l *Log) appendLocked(magic, crc uint32, payload []byte) int64 {
	var hdr [logHeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[0:], magic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[8:], l.epoch)
	pos := l.appendTail
	binary.LittleEndian.PutUint32(hdr[12:], logFinishCRC(crc, pos))
	l.buf = append(l.buf, hdr[:]...)
	l.buf = append(l.buf, payload...)
	l.appendTail += int64(logHeaderSize + len(payload))
	return pos
}

func logFinishCRC(crc uint32, pos int64) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(pos))
	return crc32.Update(crc, logCastagnoli, b[:])
}

// Commit makes every record appended before the call durable: it appends
// a commit record, writes the buffered records (split at segment
// boundaries) and flushes the device (with MetaCommits: then records the
// new committed tail in the metadata). Commits are grouped: one commit
// runs at a time, covering everything appended when it starts; a caller
// whose records are covered by a commit in flight just waits for it.
// Appends continue meanwhile.
//
// If a commit fails, the log is failed: this and every later Commit
// returns the error and Append drops records; reopen the log to recover.
func (l *Log) Commit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	target := l.appendTail
	for {
		if l.failed != nil {
			return l.failed
		}
		if l.committed.Load() >= target {
			return nil
		}
		if l.closed {
			return fmt.Errorf("faster: %s: commit: %w", l.name, ErrClosed)
		}
		if !l.committing {
			break
		}
		l.cond.Wait()
	}

	// Lead a commit of everything appended so far.
	l.committing = true
	prev := l.committed.Load()
	if !l.metaCommits {
		var body [logCommitBody]byte
		binary.LittleEndian.PutUint64(body[0:], uint64(prev))
		binary.LittleEndian.PutUint64(body[8:], uint64(l.appendTail+logCommitSize))
		l.appendLocked(logCommitMagic, l.headerCRC(logCommitMagic, body[:]), body[:])
	}
	start, end := l.bufStart, l.appendTail
	data := l.buf
	nextStart := l.alignDown(end)
	next := append(l.spare[:0], data[nextStart-start:]...)
	l.spare = nil
	l.buf, l.bufStart = next, nextStart
	l.mu.Unlock()

	n := len(data)
	data = slices.Grow(data, int(l.alignUp(end)-start)-n)[:l.alignUp(end)-start]
	clear(data[n:])
	err := l.writeCommit(start, prev, end, data)

	l.mu.Lock()
	l.committing = false
	if err != nil {
		l.failed = err
	} else {
		l.committed.Store(end)
	}
	if cap(data) <= logSpareMax {
		l.spare = data[:0]
	}
	l.cond.Broadcast()
	return err
}

// writeCommit writes one commit's sectors: data covers [start, ...) and
// the committed tail goes from prev to end.
func (l *Log) writeCommit(start, prev, end int64, data []byte) error {
	began := time.Now()
	if lastSeg := (start + int64(len(data)) - 1) / l.segSize; lastSeg > l.curSeg {
		if err := l.switchSegment(lastSeg, prev); err != nil {
			return fmt.Errorf("faster: %s: commit of [%d, %d): %w", l.name, prev, end, err)
		}
	}
	if err := l.devIO(l.dev.WriteAsync, start, data); err != nil {
		return fmt.Errorf("faster: %s: commit of [%d, %d): %w", l.name, prev, end, err)
	}
	flushed := time.Now()
	if err := l.dev.Flush(); err != nil {
		return fmt.Errorf("faster: %s: commit of [%d, %d): flush: %w", l.name, prev, end, err)
	}
	synced := time.Now()
	if l.metaCommits {
		l.metaMu.Lock()
		err := l.writeMetaLocked(l.metaBegin, end)
		l.metaMu.Unlock()
		if err != nil {
			return fmt.Errorf("faster: %s: commit of [%d, %d): %w", l.name, prev, end, err)
		}
	}
	done := time.Now()
	l.statsMu.Lock()
	l.stats.Commits++
	l.stats.Bytes += int64(len(data))
	l.stats.Sync.Add(synced.Sub(flushed))
	l.stats.Commit.Add(done.Sub(began))
	l.statsMu.Unlock()
	return nil
}

// switchSegment prepares the segments up to lastSeg for writes before a
// commit first writes into them: it preallocates them and records the
// committed tail (the commit's start) in the metadata, so that recovery
// never has to scan back into older segments.
func (l *Log) switchSegment(lastSeg, tail int64) error {
	for seg := l.curSeg + 1; seg <= lastSeg; seg++ {
		if l.prealloc != nil {
			if err := l.prealloc.Preallocate(seg * l.segSize); err != nil {
				return err
			}
		}
	}
	if !l.metaCommits {
		l.metaMu.Lock()
		err := l.writeMetaLocked(l.metaBegin, tail)
		l.metaMu.Unlock()
		if err != nil {
			return fmt.Errorf("at the switch to segment %d: %w", lastSeg, err)
		}
	}
	l.curSeg = lastSeg
	return nil
}

// CommittedTail returns the position after the last durable record.
func (l *Log) CommittedTail() int64 { return l.committed.Load() }

// Begin returns the first retained position.
func (l *Log) Begin() int64 { return l.begin.Load() }

// Scan calls fn for every durable record from position from (which must
// be a record position, or the committed tail) up to the committed tail
// as of the call, reading them from the device; commit records are
// skipped. The payload is only valid during the call; fn must copy it to
// keep it. An error from fn stops the scan and is returned as is. A
// record that does not verify gives an error naming the log, the position
// and the segment. Truncating the log above a running scan's position
// makes the scan fail.
func (l *Log) Scan(from int64, fn func(pos int64, payload []byte) error) error {
	if l.isClosed() {
		return fmt.Errorf("faster: %s: scan: %w", l.name, ErrClosed)
	}
	begin, tail := l.begin.Load(), l.committed.Load()
	if from < begin {
		return fmt.Errorf("faster: %s: scan from %d: below the log's begin %d", l.name, from, begin)
	}
	if from > tail {
		return fmt.Errorf("faster: %s: scan from %d: beyond the committed tail %d", l.name, from, tail)
	}
	r := l.newReader(tail)
	for pos := from; pos < tail; {
		payload, next, commit, err := r.record(pos, tail, l.epoch, false)
		if err != nil {
			return l.recordErr(pos, tail, err)
		}
		if !commit {
			if err := fn(pos, payload); err != nil {
				return err
			}
		}
		pos = next
	}
	return nil
}

// Truncate drops the records before position below (a record position, or
// the committed tail): it records the new begin (and the current committed
// tail) in the metadata and deletes the segments that lie wholly below it.
// Truncating below the current begin does nothing.
func (l *Log) Truncate(below int64) error {
	if l.isClosed() {
		return fmt.Errorf("faster: %s: truncate: %w", l.name, ErrClosed)
	}
	if below <= l.begin.Load() {
		return nil
	}
	tail := l.committed.Load()
	if below > tail {
		return fmt.Errorf("faster: %s: truncate below %d: beyond the committed tail %d", l.name, below, tail)
	}
	if below < tail {
		r := l.newReader(tail)
		if _, _, _, err := r.record(below, tail, l.epoch, false); err != nil {
			return fmt.Errorf("faster: %s: truncate below %d: not a valid record position (segment %s): %w", l.name, below, l.dev.SegmentName(below), err)
		}
	}
	l.metaMu.Lock()
	if below <= l.metaBegin {
		l.metaMu.Unlock()
		return nil
	}
	newTail := l.metaTail
	if !l.metaCommits {
		// A checkpoint: a good time to shorten the next recovery's scan.
		newTail = max(newTail, l.committed.Load())
	}
	if err := l.writeMetaLocked(below, newTail); err != nil {
		l.metaMu.Unlock()
		return fmt.Errorf("faster: %s: truncate below %d: %w", l.name, below, err)
	}
	l.begin.Store(below)
	l.metaMu.Unlock()
	if err := l.dev.RemoveSegmentsBelow(below); err != nil {
		return fmt.Errorf("faster: %s: truncate below %d: %w", l.name, below, err)
	}
	return nil
}

// Close waits for a commit in flight and closes the log. Records appended
// but not committed are dropped. Unless a commit failed, it records the
// committed tail in the metadata, so that the next OpenLog has nothing to
// scan or rewrite. The Device and MetaStore stay open.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for l.committing {
		l.cond.Wait()
	}
	l.buf, l.spare = nil, nil
	failed := l.failed
	l.mu.Unlock()
	if failed != nil || l.metaCommits {
		return nil
	}
	l.metaMu.Lock()
	defer l.metaMu.Unlock()
	if tail := l.committed.Load(); tail > l.metaTail {
		if err := l.writeMetaLocked(l.metaBegin, tail); err != nil {
			return fmt.Errorf("faster: %s: close: %w", l.name, err)
		}
	}
	return nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Log) alignDown(x int64) int64 { return x - x%l.sector }
func (l *Log) alignUp(x int64) int64   { return l.alignDown(x + l.sector - 1) }

// recordErr reports a record that does not verify, or the I/O error met
// reading it.
func (l *Log) recordErr(pos, tail int64, err error) error {
	if _, bad := errors.AsType[*logBadRecord](err); bad {
		return fmt.Errorf("faster: %s: corrupt log: invalid record at position %d in segment %s (committed tail %d): %w", l.name, pos, l.dev.SegmentName(pos), tail, err)
	}
	return fmt.Errorf("faster: %s: reading the record at position %d in segment %s: %w", l.name, pos, l.dev.SegmentName(pos), err)
}

// devIO runs op (the device's ReadAsync or WriteAsync) over the
// sector-aligned range [addr, addr+len(p)), one call per segment, all at
// once, and waits for them.
func (l *Log) devIO(op func(int64, []byte, func(error)), addr int64, p []byte) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for len(p) > 0 {
		n := min(int64(len(p)), (addr/l.segSize+1)*l.segSize-addr)
		wg.Add(1)
		op(addr, p[:n], func(err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
		addr += n
		p = p[n:]
	}
	wg.Wait()
	return first
}

// logReader reads records from the device through a window buffer.
type logReader struct {
	l     *Log
	limit int64 // reads stop at the end of the sector holding limit; -1: no limit
	start int64 // address of buf[0]
	buf   []byte
}

func (l *Log) newReader(limit int64) *logReader {
	return &logReader{l: l, limit: limit}
}

// get returns the bytes [pos, pos+n), valid until the next call.
func (r *logReader) get(pos int64, n int) ([]byte, error) {
	end := pos + int64(n)
	if pos >= r.start && end <= r.start+int64(len(r.buf)) {
		return r.buf[pos-r.start : end-r.start], nil
	}
	l := r.l
	s, e := l.alignDown(pos), l.alignUp(end)
	if e-s < logReadWindow {
		e = s + logReadWindow
		if r.limit >= 0 {
			e = max(min(e, l.alignUp(r.limit)), l.alignUp(end))
		}
	}
	size := int(e - s)
	if cap(r.buf) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if err := l.devIO(l.dev.ReadAsync, s, r.buf); err != nil {
		r.buf = r.buf[:0]
		return nil, err
	}
	r.start = s
	return r.buf[pos-s : end-s], nil
}

// record reads and verifies the record at pos, and says whether it is a
// commit record. limit (if not -1) is the committed tail the record must
// end by. With exact, the record must carry epoch; otherwise an epoch up
// to epoch. Invalid bytes give a *logBadRecord error.
func (r *logReader) record(pos, limit int64, epoch uint32, exact bool) ([]byte, int64, bool, error) {
	if limit >= 0 && pos+logHeaderSize > limit {
		return nil, 0, false, &logBadRecord{fmt.Sprintf("record header would extend past the committed tail %d", limit)}
	}
	h, err := r.get(pos, logHeaderSize)
	if err != nil {
		return nil, 0, false, err
	}
	magic := binary.LittleEndian.Uint32(h[0:])
	n := binary.LittleEndian.Uint32(h[4:])
	recEpoch := binary.LittleEndian.Uint32(h[8:])
	crc := binary.LittleEndian.Uint32(h[12:])
	commit := magic == logCommitMagic
	if magic != logMagic && !commit {
		return nil, 0, false, &logBadRecord{fmt.Sprintf("bad magic %#08x (not the start of a record)", magic)}
	}
	if n > LogMaxPayload || commit && n != logCommitBody {
		return nil, 0, false, &logBadRecord{fmt.Sprintf("payload length %d is invalid", n)}
	}
	if exact && recEpoch != epoch || !exact && recEpoch > epoch {
		return nil, 0, false, &logBadRecord{fmt.Sprintf("record of epoch %d where epoch %d was expected", recEpoch, epoch)}
	}
	next := pos + logHeaderSize + int64(n)
	if limit >= 0 && next > limit {
		return nil, 0, false, &logBadRecord{fmt.Sprintf("record of %d bytes would extend past the committed tail %d", n, limit)}
	}
	var hdr [12]byte
	copy(hdr[:], h[:12])
	payload, err := r.get(pos+logHeaderSize, int(n))
	if err != nil {
		return nil, 0, false, err
	}
	want := crc32.Update(0, logCastagnoli, hdr[:])
	want = logFinishCRC(crc32.Update(want, logCastagnoli, payload), pos)
	if crc != want {
		return nil, 0, false, &logBadRecord{fmt.Sprintf("checksum mismatch (stored %#08x, computed %#08x)", crc, want)}
	}
	return payload, next, commit, nil
}
