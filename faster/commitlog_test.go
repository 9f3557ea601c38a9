package faster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const logTestName = "partition 3 commit log"

func logTestOpen(t testing.TB, dev Device, meta MetaStore) *Log {
	t.Helper()
	l, err := OpenLog(LogOptions{Name: logTestName, Device: dev, Meta: meta, MetaName: "commit-log.meta"})
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	return l
}

// logTestOpenMeta opens the log in format 1 (LogOptions.MetaCommits).
func logTestOpenMeta(t testing.TB, dev Device, meta MetaStore) *Log {
	t.Helper()
	l, err := OpenLog(LogOptions{Name: logTestName, Device: dev, Meta: meta, MetaName: "commit-log.meta", MetaCommits: true})
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	return l
}

type logTestRec struct {
	pos     int64
	payload []byte
}

// logTestScan returns the records from position from to the committed tail.
func logTestScan(t testing.TB, l *Log, from int64) []logTestRec {
	t.Helper()
	var recs []logTestRec
	if err := l.Scan(from, func(pos int64, payload []byte) error {
		recs = append(recs, logTestRec{pos, bytes.Clone(payload)})
		return nil
	}); err != nil {
		t.Fatalf("Scan(%d): %v", from, err)
	}
	return recs
}

func logTestCheck(t testing.TB, l *Log, from int64, want []logTestRec) {
	t.Helper()
	got := logTestScan(t, l, from)
	if len(got) != len(want) {
		t.Fatalf("scan from %d: %d records, want %d", from, len(got), len(want))
	}
	for i := range got {
		if got[i].pos != want[i].pos || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("scan from %d: record %d at %d (%d bytes), want at %d (%d bytes)", from, i, got[i].pos, len(got[i].payload), want[i].pos, len(want[i].payload))
		}
	}
	if len(want) > 0 {
		last := want[len(want)-1]
		end := last.pos + logHeaderSize + int64(len(last.payload))
		if !l.metaCommits {
			end += logCommitSize // the commit record that covers the last record
		}
		if l.CommittedTail() != end {
			t.Fatalf("committed tail %d, want %d", l.CommittedTail(), end)
		}
	}
}

// logTestAppend appends n records with random sizes up to maxSize.
func logTestAppend(t testing.TB, l *Log, r *rand.Rand, n, maxSize int) []logTestRec {
	t.Helper()
	var recs []logTestRec
	for range n {
		size := r.IntN(maxSize + 1)
		p := devTestPattern(r.Uint64(), size)
		pos := l.Append(p)
		if pos < 0 {
			t.Fatal("Append returned -1")
		}
		recs = append(recs, logTestRec{pos, p})
	}
	return recs
}

func logTestCommit(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func logTestEnd(recs []logTestRec) int64 {
	last := recs[len(recs)-1]
	return last.pos + logHeaderSize + int64(len(last.payload))
}

func TestLogRoundTrip(t *testing.T) {
	for _, backend := range []string{"memory", "file"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			openDev := func() (Device, MetaStore) {
				if backend == "memory" {
					return NewMemoryDevice("mem", 512, 4096), NewMemoryMeta()
				}
				d, err := NewFileDevice(filepath.Join(dir, "commit-log"), "commit-log", 512, 4096)
				if err != nil {
					t.Fatal(err)
				}
				m, err := NewDirMeta(dir)
				if err != nil {
					t.Fatal(err)
				}
				return d, m
			}
			dev, meta := openDev()
			l := logTestOpen(t, dev, meta)
			if l.Begin() != 0 || l.CommittedTail() != 0 {
				t.Fatalf("fresh log: begin %d tail %d", l.Begin(), l.CommittedTail())
			}
			logTestCheck(t, l, 0, nil)
			r := rand.New(rand.NewPCG(1, 2))
			var all []logTestRec
			commitStart := map[int]bool{0: true} // indexes of the first record of each commit
			for range 60 {
				recs := logTestAppend(t, l, r, 1+r.IntN(8), []int{0, 100, 700, 5000, 13000}[r.IntN(5)])
				logTestCommit(t, l)
				commitStart[len(all)] = true
				all = append(all, recs...)
				if l.CommittedTail() != logTestEnd(all)+logCommitSize {
					t.Fatalf("committed tail %d, want %d (the end of the commit record after the last record)", l.CommittedTail(), logTestEnd(all)+logCommitSize)
				}
			}
			// Positions are dense: a commit's records follow each other,
			// and its commit record lies between it and the next one.
			for i := 1; i < len(all); i++ {
				want := all[i-1].pos + logHeaderSize + int64(len(all[i-1].payload))
				if commitStart[i] {
					want += logCommitSize
				}
				if all[i].pos != want {
					t.Fatalf("record %d at %d, want %d", i, all[i].pos, want)
				}
			}
			if segs := l.CommittedTail() / 4096; segs < 30 {
				t.Fatalf("only %d segments used", segs)
			}
			logTestCheck(t, l, 0, all)
			// Commit with nothing appended is a no-op.
			logTestCommit(t, l)
			// Uncommitted appends are dropped by Close.
			l.Append([]byte("never committed"))
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if backend == "file" {
				if err := dev.Close(); err != nil {
					t.Fatal(err)
				}
				dev, meta = openDev()
			}
			l = logTestOpen(t, dev, meta)
			logTestCheck(t, l, 0, all)
			// Appends continue at the tail.
			more := logTestAppend(t, l, r, 20, 900)
			if more[0].pos != logTestEnd(all)+logCommitSize {
				t.Fatalf("first append after reopen at %d, want %d", more[0].pos, logTestEnd(all)+logCommitSize)
			}
			logTestCommit(t, l)
			all = append(all, more...)
			logTestCheck(t, l, 0, all)
			l.Close()
			l = logTestOpen(t, dev, meta)
			logTestCheck(t, l, 0, all)
			l.Close()
		})
	}
}

func TestLogLargePayloads(t *testing.T) {
	dev := NewMemoryDevice("mem", 4096, 1<<20)
	meta := NewMemoryMeta()
	l := logTestOpen(t, dev, meta)
	var all []logTestRec
	for i, size := range []int{10, 3 << 20, 100, 5<<20 + 17, 0, 1 << 20, 7} {
		p := devTestPattern(uint64(i), size)
		all = append(all, logTestRec{l.Append(p), p})
		if i%2 == 1 {
			logTestCommit(t, l)
		}
	}
	logTestCommit(t, l)
	logTestCheck(t, l, 0, all)
	l.Close()
	l = logTestOpen(t, dev, meta)
	logTestCheck(t, l, all[3].pos, all[3:])
}

func TestLogScanFromMiddle(t *testing.T) {
	dev := NewMemoryDevice("mem", 512, 4096)
	l := logTestOpen(t, dev, NewMemoryMeta())
	r := rand.New(rand.NewPCG(3, 4))
	all := logTestAppend(t, l, r, 200, 600)
	logTestCommit(t, l)
	for _, i := range []int{0, 1, 57, 150, 199} {
		logTestCheck(t, l, all[i].pos, all[i:])
	}
	logTestCheck(t, l, l.CommittedTail(), nil)
	if err := l.Scan(all[57].pos+3, func(int64, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), fmt.Sprint(all[57].pos+3)) {
		t.Errorf("scan from a non-record position: %v", err)
	}
	if err := l.Scan(l.CommittedTail()+1, func(int64, []byte) error { return nil }); err == nil {
		t.Error("scan from beyond the committed tail: no error")
	}
	stop := errors.New("stop")
	n := 0
	if err := l.Scan(all[10].pos, func(int64, []byte) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	}); err != stop || n != 5 {
		t.Errorf("fn error: got %v after %d records", err, n)
	}
	// Uncommitted records are not scanned.
	l.Append([]byte("pending"))
	logTestCheck(t, l, 0, all)
}

func TestLogConcurrent(t *testing.T) {
	fd := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
	fd.SetDelay(FaultWrite, 200*time.Microsecond)
	meta := NewMemoryMeta()
	l := logTestOpen(t, fd, meta)
	const writers, perWriter = 8, 150
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written = map[int64][]byte{}
		stop    atomic.Bool
	)
	// A reader scans the durable log all along.
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		for !stop.Load() {
			if err := l.Scan(0, func(int64, []byte) error { return nil }); err != nil {
				t.Errorf("concurrent scan: %v", err)
				return
			}
		}
	}()
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range perWriter {
				p := fmt.Appendf(nil, "writer %d record %d ", w, i)
				p = append(p, devTestPattern(r.Uint64(), r.IntN(1500))...)
				pos := l.Append(p)
				mu.Lock()
				written[pos] = p
				mu.Unlock()
				if r.IntN(3) == 0 {
					continue // left for another writer's commit
				}
				if err := l.Commit(); err != nil {
					t.Error(err)
					return
				}
				if tail := l.CommittedTail(); tail < pos+logHeaderSize+int64(len(p)) {
					t.Errorf("Commit returned with tail %d before record at %d", tail, pos)
				}
			}
			if err := l.Commit(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	<-scanDone
	recs := logTestScan(t, l, 0)
	if len(recs) != writers*perWriter {
		t.Fatalf("%d records, want %d", len(recs), writers*perWriter)
	}
	next := make([]int, writers)
	for _, rec := range recs {
		if !bytes.Equal(written[rec.pos], rec.payload) {
			t.Fatalf("record at %d differs from the one appended there", rec.pos)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(rec.payload), "writer %d record %d ", &w, &i); err != nil || i != next[w] {
			t.Fatalf("record %q out of order (want record %d of writer %d)", rec.payload[:20], next[w], w)
		}
		next[w]++
	}
	t.Logf("%d records in %d commits", len(recs), l.CommitStats().Commits)
	if l.CommitStats().Commits >= writers*perWriter*2/3 {
		t.Errorf("commits did not coalesce: %d commits for %d records", l.CommitStats().Commits, len(recs))
	}
	l.Close()
	l = logTestOpen(t, fd, meta)
	if got := logTestScan(t, l, 0); len(got) != len(recs) {
		t.Fatalf("after reopen %d records, want %d", len(got), len(recs))
	}
}

func TestLogCrash(t *testing.T) {
	t.Run("FlushFails", func(t *testing.T) {
		mem := NewMemoryDevice("mem", 512, 4096)
		fd := NewFaultDevice(mem)
		meta := NewMemoryMeta()
		l := logTestOpen(t, fd, meta)
		r := rand.New(rand.NewPCG(5, 6))
		a := logTestAppend(t, l, r, 30, 700)
		logTestCommit(t, l)
		logTestAppend(t, l, r, 30, 700)
		fd.FailAt(FaultFlush, 1, nil)
		if err := l.Commit(); !errors.Is(err, ErrInjectedFault) || !strings.Contains(err.Error(), logTestName) {
			t.Fatalf("commit with failing flush: %v", err)
		}
		// The log is failed now.
		if err := l.Commit(); !errors.Is(err, ErrInjectedFault) {
			t.Fatalf("commit after failure: %v", err)
		}
		if pos := l.Append([]byte("x")); pos != -1 {
			t.Fatalf("append after failure returned %d", pos)
		}
		if err := fd.Crash(); err != nil {
			t.Fatal(err)
		}
		fd.Restart()
		l = logTestOpen(t, fd, meta)
		logTestCheck(t, l, 0, a)
		// And it goes on.
		b := logTestAppend(t, l, r, 10, 700)
		logTestCommit(t, l)
		l = logTestOpen(t, fd, meta)
		logTestCheck(t, l, 0, append(a, b...))
	})
	t.Run("DuringCommit", func(t *testing.T) {
		fd := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
		meta := NewMemoryMeta()
		l := logTestOpen(t, fd, meta)
		r := rand.New(rand.NewPCG(7, 8))
		a := logTestAppend(t, l, r, 30, 2000)
		logTestCommit(t, l)
		logTestAppend(t, l, r, 30, 2000)
		fd.SetDelay(FaultFlush, 50*time.Millisecond)
		errc := make(chan error, 1)
		go func() { errc <- l.Commit() }()
		time.Sleep(10 * time.Millisecond)
		if err := fd.Crash(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, ErrDeviceCrashed) {
			t.Fatalf("commit across a crash: %v", err)
		}
		fd.Restart()
		l = logTestOpen(t, fd, meta)
		logTestCheck(t, l, 0, a)
	})
}

// logTestMeta is a MetaStore whose writes can be made to fail.
type logTestMeta struct {
	MetaStore
	fail atomic.Int32 // fail this many next writes
}

func (m *logTestMeta) WriteFile(name string, data []byte) error {
	if m.fail.Add(-1) >= 0 {
		return errors.New("metadata write lost")
	}
	m.fail.Store(0)
	return m.MetaStore.WriteFile(name, data)
}

// TestLogLostMetaWrite (format 1): the data of a commit is flushed but
// its metadata write fails; recovery accepts the complete records beyond the recorded
// tail.
func TestLogLostMetaWrite(t *testing.T) {
	fd := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
	meta := &logTestMeta{MetaStore: NewMemoryMeta()}
	l := logTestOpenMeta(t, fd, meta)
	r := rand.New(rand.NewPCG(9, 10))
	a := logTestAppend(t, l, r, 20, 900)
	logTestCommit(t, l)
	b := logTestAppend(t, l, r, 20, 900)
	meta.fail.Store(1)
	if err := l.Commit(); err == nil || !strings.Contains(err.Error(), "metadata write lost") {
		t.Fatalf("commit with a failing metadata write: %v", err)
	}
	if err := fd.Crash(); err != nil { // the data was flushed: it survives
		t.Fatal(err)
	}
	fd.Restart()
	l = logTestOpenMeta(t, fd, meta)
	all := append(a, b...)
	logTestCheck(t, l, 0, all)
	// The accepted tail was recorded and rewritten durably: another crash
	// keeps it.
	if err := fd.Crash(); err != nil {
		t.Fatal(err)
	}
	fd.Restart()
	l = logTestOpenMeta(t, fd, meta)
	logTestCheck(t, l, 0, all)
}

func TestLogTornTail(t *testing.T) {
	for _, metaCommits := range []bool{false, true} {
		t.Run(fmt.Sprintf("MetaCommits=%v", metaCommits), func(t *testing.T) { logTestTornTail(t, metaCommits) })
	}
}

// logTestTornTail: a commit spanning segments is torn. In format 1 the
// complete records of its first write survive; in format 2 its commit
// record (in the last segment, complete) does not make them count: the
// log is cut at the previous commit.
func logTestTornTail(t *testing.T, metaCommits bool) {
	open := logTestOpen
	if metaCommits {
		open = logTestOpenMeta
	}
	mem := NewMemoryDevice("mem", 512, 4096)
	fd := NewFaultDevice(mem)
	meta := NewMemoryMeta()
	l := open(t, fd, meta)
	r := rand.New(rand.NewPCG(11, 12))
	a := logTestAppend(t, l, r, 25, 400)
	logTestCommit(t, l)
	tailA := l.CommittedTail()
	b := logTestAppend(t, l, r, 80, 300) // spans several sectors and segments
	if logTestEnd(b) < (tailA/4096+2)*4096 {
		t.Fatal("test batch does not reach two segments further")
	}
	// The first write of the commit covers [alignDown(tailA), next segment
	// boundary); only its first 3 sectors reach the device. The writes for
	// the later segments complete.
	fd.TearAt(1, 3, errors.New("power cut"))
	if err := l.Commit(); err == nil || !strings.Contains(err.Error(), "power cut") {
		t.Fatalf("torn commit: %v", err)
	}
	written := tailA - tailA%512 + 3*512
	var want []logTestRec
	want = append(want, a...)
	for _, rec := range b {
		if rec.pos+logHeaderSize+int64(len(rec.payload)) > written {
			break
		}
		want = append(want, rec)
	}
	if len(want) == len(a) || len(want) == len(a)+len(b) {
		t.Fatalf("tear at %d keeps %d of %d records: not a useful test", written, len(want)-len(a), len(b))
	}
	if !metaCommits {
		want = want[:len(a)]
	}
	l = open(t, fd, meta)
	logTestCheck(t, l, 0, want)
	c := logTestAppend(t, l, r, 5, 300)
	logTestCommit(t, l)
	l.Close()
	l = open(t, fd, meta)
	logTestCheck(t, l, 0, append(want, c...))
}

// TestLogStaleRecordsNotResurrected: bytes of an older instance's failed
// commit that lie beyond a cut must not be taken for records later, even
// when a new record ends exactly where a stale valid one starts.
func TestLogStaleRecordsNotResurrected(t *testing.T) {
	mem := NewMemoryDevice("mem", 512, 4096)
	meta := &logTestMeta{MetaStore: NewMemoryMeta()}
	l := logTestOpenMeta(t, mem, meta)
	a := []logTestRec{{l.Append([]byte("a")), []byte("a")}}
	logTestCommit(t, l)
	tail := l.CommittedTail()
	size := int(tail - tail%512 + 1024 - tail - logHeaderSize) // ends on a sector boundary
	b1 := devTestPattern(1, size)
	l.Append(b1)
	b2pos := l.Append([]byte("stale but valid"))
	if b2pos%512 != 0 {
		t.Fatalf("b2 at %d is not sector-aligned", b2pos)
	}
	meta.fail.Store(1)
	if err := l.Commit(); err == nil {
		t.Fatal("commit did not fail")
	}
	// Damage b1 on the device: a tear that lost its middle sector.
	devTestWrite(t, mem, tail-tail%512+512, make([]byte, 512))
	l = logTestOpenMeta(t, mem, meta)
	logTestCheck(t, l, 0, a) // cut at b1
	c := devTestPattern(2, size)
	cpos := l.Append(c)
	meta.fail.Store(1)
	if err := l.Commit(); err == nil {
		t.Fatal("commit did not fail")
	}
	l = logTestOpenMeta(t, mem, meta)
	logTestCheck(t, l, 0, append(a, logTestRec{cpos, c})) // c accepted, b2 not
}

func TestLogCorruption(t *testing.T) {
	for _, where := range []string{"payload", "header", "lying tear"} {
		t.Run(where, func(t *testing.T) {
			mem := NewMemoryDevice("mem", 512, 4096)
			fd := NewFaultDevice(mem)
			meta := NewMemoryMeta()
			l := logTestOpen(t, fd, meta)
			r := rand.New(rand.NewPCG(13, 14))
			all := logTestAppend(t, l, r, 100, 700)
			logTestCommit(t, l)
			victim := all[50]
			var addr int64
			switch where {
			case "payload":
				addr = victim.pos + logHeaderSize + int64(len(victim.payload))/2
			case "header":
				addr = victim.pos + 5 // the length
			case "lying tear":
				// A commit whose write is torn but reported as successful.
				// Only the first sector of the first write arrives.
				tail := l.CommittedTail()
				if tail%4096 >= 4096-512 {
					t.Fatal("the first write would be a single sector: not a useful test")
				}
				more := logTestAppend(t, l, r, 20, 700)
				fd.TearAt(1, 1, nil)
				logTestCommit(t, l)
				written := tail - tail%512 + 512
				i := 0
				for more[i].pos+logHeaderSize+int64(len(more[i].payload)) <= written {
					i++
				}
				victim = more[i]
				addr = -1
			}
			// A later commit: the damaged one is not the last, so its damage
			// cannot be a torn write (damage to the last commit's data looks
			// like one, see TestLogRecovery).
			logTestAppend(t, l, r, 3, 100)
			logTestCommit(t, l)
			if addr >= 0 {
				sec := addr - addr%512
				buf := devTestRead(t, mem, sec, 512)
				buf[addr-sec] ^= 0x40
				devTestWrite(t, mem, sec, buf)
				// The live log reports it on Scan.
				if err := l.Scan(0, func(int64, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("position %d", victim.pos)) {
					t.Errorf("Scan over the corruption: %v", err)
				}
			}
			_, err := OpenLog(LogOptions{Name: logTestName, Device: fd, Meta: meta, MetaName: "commit-log.meta"})
			if err == nil {
				t.Fatal("OpenLog accepted a corrupt log")
			}
			for _, want := range []string{logTestName, fmt.Sprintf("position %d", victim.pos), mem.SegmentName(victim.pos)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			t.Log(err)
		})
	}
}

func TestLogTruncate(t *testing.T) {
	dir := t.TempDir()
	dev, err := NewFileDevice(dir, "log", 512, 4096)
	if err != nil {
		t.Fatal(err)
	}
	meta := NewMemoryMeta()
	l := logTestOpen(t, dev, meta)
	r := rand.New(rand.NewPCG(15, 16))
	all := logTestAppend(t, l, r, 300, 500)
	logTestCommit(t, l)
	k := 150
	below := all[k].pos
	if err := l.Truncate(below + 1); err == nil || !strings.Contains(err.Error(), "not a valid record position") {
		t.Fatalf("Truncate at a non-record position: %v", err)
	}
	if err := l.Truncate(l.CommittedTail() + 1); err == nil {
		t.Fatal("Truncate beyond the committed tail accepted")
	}
	if err := l.Truncate(below); err != nil {
		t.Fatal(err)
	}
	if l.Begin() != below {
		t.Fatalf("Begin %d, want %d", l.Begin(), below)
	}
	files := devTestSegmentFiles(t, dir)
	if first := fmt.Sprintf("log.%06d", below/4096); files[0] != first {
		t.Fatalf("first segment file %s, want %s", files[0], first)
	}
	if err := l.Scan(all[k-1].pos, func(int64, []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "below") {
		t.Fatalf("scan below begin: %v", err)
	}
	logTestCheck(t, l, below, all[k:])
	if err := l.Truncate(all[10].pos); err != nil || l.Begin() != below { // below begin: nothing
		t.Fatalf("Truncate below begin: %v, begin %d", err, l.Begin())
	}
	l.Close()
	l = logTestOpen(t, dev, meta)
	if l.Begin() != below {
		t.Fatalf("Begin after reopen %d, want %d", l.Begin(), below)
	}
	logTestCheck(t, l, below, all[k:])
	// Truncate everything, then go on.
	if err := l.Truncate(l.CommittedTail()); err != nil {
		t.Fatal(err)
	}
	logTestCheck(t, l, l.Begin(), nil)
	more := logTestAppend(t, l, r, 10, 500)
	logTestCommit(t, l)
	l.Close()
	l = logTestOpen(t, dev, meta)
	logTestCheck(t, l, l.Begin(), more)
	l.Close()
	dev.Close()
}

func TestLogClosed(t *testing.T) {
	l := logTestOpen(t, NewMemoryDevice("mem", 512, 4096), NewMemoryMeta())
	l.Append([]byte("x"))
	logTestCommit(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if pos := l.Append([]byte("y")); pos != -1 {
		t.Errorf("Append after Close returned %d", pos)
	}
	if err := l.Commit(); err != nil {
		t.Errorf("Commit with nothing new after Close: %v", err)
	}
	if err := l.Scan(0, func(int64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close: %v", err)
	}
	if err := l.Truncate(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Truncate after Close: %v", err)
	}
}

func TestLogBadMeta(t *testing.T) {
	meta := NewMemoryMeta()
	if err := meta.WriteFile("commit-log.meta", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	_, err := OpenLog(LogOptions{Name: logTestName, Device: NewMemoryDevice("mem", 512, 4096), Meta: meta, MetaName: "commit-log.meta"})
	if err == nil || !strings.Contains(err.Error(), logTestName) || !strings.Contains(err.Error(), "commit-log.meta") {
		t.Fatalf("OpenLog with bad metadata: %v", err)
	}
	if _, err := OpenLog(LogOptions{Name: logTestName}); err == nil {
		t.Fatal("OpenLog without a device accepted")
	}
}

// TestLogRecordFormat pins the on-device format.
func TestLogRecordFormat(t *testing.T) {
	mem := NewMemoryDevice("mem", 512, 4096)
	l := logTestOpen(t, mem, NewMemoryMeta())
	l.Append([]byte("hello"))
	logTestCommit(t, l)
	sec := devTestRead(t, mem, 0, 512)
	if got := binary.LittleEndian.Uint32(sec[0:]); got != logMagic || string(sec[:4]) != "NLR1" {
		t.Errorf("magic %#x %q", got, sec[:4])
	}
	if n := binary.LittleEndian.Uint32(sec[4:]); n != 5 {
		t.Errorf("length %d", n)
	}
	if e := binary.LittleEndian.Uint32(sec[8:]); e != 1 {
		t.Errorf("epoch %d", e)
	}
	if string(sec[16:21]) != "hello" {
		t.Error("payload")
	}
	// The commit record follows: "NLC1", length 16, epoch, crc, then the
	// committed tail before (0) and after (21+32) the commit.
	c := sec[21:]
	if string(c[:4]) != "NLC1" || binary.LittleEndian.Uint32(c[4:]) != 16 || binary.LittleEndian.Uint32(c[8:]) != 1 {
		t.Errorf("commit record header % x", c[:16])
	}
	if prev, tail := binary.LittleEndian.Uint64(c[16:]), binary.LittleEndian.Uint64(c[24:]); prev != 0 || tail != 21+32 {
		t.Errorf("commit record covers [%d, %d), want [0, 53)", prev, tail)
	}
	if l.CommittedTail() != 53 || !bytes.Equal(sec[53:], make([]byte, 512-53)) {
		t.Errorf("committed tail %d, or padding not zero", l.CommittedTail())
	}
	// A zeroed area never parses.
	z := logTestOpen(t, NewMemoryDevice("z", 512, 4096), NewMemoryMeta())
	if _, _, _, err := z.newReader(-1).record(0, -1, 0, false); err == nil {
		t.Error("zeros parsed as a record")
	}
}

// BenchmarkLogGroupCommit: N goroutines each append a 200-byte record and
// commit it, on the file device.
func BenchmarkLogGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			dir := b.TempDir()
			dev, err := NewFileDevice(filepath.Join(dir, "log"), "commit-log", 4096, 64<<20)
			if err != nil {
				b.Fatal(err)
			}
			defer dev.Close()
			meta, err := NewDirMeta(dir)
			if err != nil {
				b.Fatal(err)
			}
			l := logTestOpen(b, dev, meta)
			defer l.Close()
			payload := bytes.Repeat([]byte("x"), 200)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range writers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						l.Append(payload)
						if err := l.Commit(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(max(l.CommitStats().Commits, 1)), "records/commit")
		})
	}
}

// BenchmarkLogCommitLatency: 1 or 12 logs on local files (like 12
// partitions), each committing one 500-byte record at a time. "before" is
// format 1 as it was (data write and flush, then a metadata replace, no
// preallocation); "after" is format 2 (one write and one flush).
func BenchmarkLogCommitLatency(b *testing.B) {
	for _, mode := range []string{"before", "after"} {
		for _, logs := range []int{1, 12} {
			b.Run(fmt.Sprintf("%s/logs=%d", mode, logs), func(b *testing.B) {
				dir := b.TempDir()
				ls := make([]*Log, logs)
				for i := range ls {
					pdir := filepath.Join(dir, fmt.Sprintf("p%02d", i))
					dev, err := NewFileDevice(filepath.Join(pdir, "commit-log"), "commit-log", 512, 64<<20)
					if err != nil {
						b.Fatal(err)
					}
					defer dev.Close()
					meta, err := NewDirMeta(pdir)
					if err != nil {
						b.Fatal(err)
					}
					l, err := OpenLog(LogOptions{Name: "bench", Device: dev, Meta: meta, MetaName: "commit-log.meta",
						MetaCommits: mode == "before", noPrealloc: mode == "before"})
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					ls[i] = l
				}
				payload := bytes.Repeat([]byte("x"), 500)
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for _, l := range ls {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							l.Append(payload)
							if err := l.Commit(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				var st CommitStats
				for _, l := range ls {
					st.Merge(l.CommitStats())
				}
				b.ReportMetric(float64(st.Commits)/el.Seconds()/float64(logs), "commits/s/log")
				b.ReportMetric(float64(st.Commit.Quantile(0.5).Microseconds()), "p50-µs")
				b.ReportMetric(float64(st.Commit.Quantile(0.99).Microseconds()), "p99-µs")
				b.ReportMetric(float64(st.Sync.Quantile(0.5).Microseconds()), "sync-p50-µs")
				b.ReportMetric(float64(st.Sync.Quantile(0.99).Microseconds()), "sync-p99-µs")
			})
		}
	}
}
