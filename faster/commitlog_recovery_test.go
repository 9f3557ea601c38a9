package faster

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// logTestDamage changes bytes on a device (read-modify-write of the
// sectors holding [addr, addr+len(p))).
func logTestDamage(t *testing.T, d Device, addr int64, f func(b []byte)) {
	t.Helper()
	sec := int64(d.SectorSize())
	start := addr - addr%sec
	buf := devTestRead(t, d, start, int(sec))
	f(buf[addr-start:])
	devTestWrite(t, d, start, buf)
}

func logTestMetaDoc(t *testing.T, meta MetaStore) logMeta {
	t.Helper()
	b, err := meta.ReadFile("commit-log.meta")
	if err != nil {
		t.Fatal(err)
	}
	var m logMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLogRecovery: what recovery makes of damage beyond, at and before
// the last commit record (format 2).
func TestLogRecovery(t *testing.T) {
	type commit struct {
		recs       []logTestRec
		prev, tail int64 // committed tail before and after
	}
	cases := []struct {
		name string
		// damage changes the device after three commits of several
		// records each (the metadata tail is the end of the first); keep
		// says how many commits survive, or wantErr the error.
		damage  func(t *testing.T, mem *MemoryDevice, c []commit)
		keep    int
		wantErr []string // substrings; the position is added by the case
	}{
		{
			name:   "intact",
			damage: func(*testing.T, *MemoryDevice, []commit) {},
			keep:   3,
		},
		{
			name: "torn commit record",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				// The last sector of the last commit holds a garbled commit
				// record: its checksum fails.
				logTestDamage(t, mem, c[2].tail-4, func(b []byte) { b[0] ^= 1 })
			},
			keep: 2,
		},
		{
			name: "crash between data write and commit record",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				// The records of the last commit landed, its commit record
				// did not (zeros, as in preallocated space).
				logTestDamage(t, mem, c[2].tail-logCommitSize, func(b []byte) { clear(b[:logCommitSize]) })
			},
			keep: 2,
		},
		{
			name: "torn data after the last commit",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				// A middle sector of the last commit never arrived, its
				// commit record did: a torn write, cut.
				mid := c[2].recs[len(c[2].recs)/2].pos
				devTestWrite(t, mem, mid-mid%512, make([]byte, 512))
			},
			keep: 2,
		},
		{
			name: "uncommitted records after the last commit",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				// Valid records of this epoch follow the last commit record,
				// without a commit record of their own.
				l := &Log{sector: 512, segSize: mem.SegmentSize(), epoch: 1}
				l.appendTail, l.bufStart = c[2].tail, c[2].tail-c[2].tail%512
				l.buf = devTestRead(t, mem, l.bufStart, 512)[:c[2].tail-l.bufStart]
				for i := range 5 {
					p := devTestPattern(uint64(i), 300)
					l.appendLocked(logMagic, l.headerCRC(logMagic, p), p)
				}
				n := len(l.buf) + (512-len(l.buf)%512)%512
				devTestWrite(t, mem, l.bufStart, slices.Grow(l.buf, n-len(l.buf))[:n])
			},
			keep: 3,
		},
		{
			name: "checksum corruption in the middle",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				r := c[1].recs[1]
				logTestDamage(t, mem, r.pos+logHeaderSize+int64(len(r.payload))/2, func(b []byte) { b[0] ^= 0x10 })
			},
			wantErr: []string{"corrupt log: invalid record at position", "before the valid commit record"},
		},
		{
			name: "corrupt commit record in the middle",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				logTestDamage(t, mem, c[1].tail-8, func(b []byte) { b[0] ^= 0x10 })
			},
			wantErr: []string{"corrupt log: invalid record at position", "before the valid commit record"},
		},
		{
			name: "corruption before the metadata tail",
			damage: func(t *testing.T, mem *MemoryDevice, c []commit) {
				r := c[0].recs[0]
				logTestDamage(t, mem, r.pos+2, func(b []byte) { b[0] ^= 0x10 })
			},
			wantErr: []string{"corrupt log: invalid record at position 0", "(committed tail"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := NewMemoryDevice("mem", 512, 64<<10)
			meta := NewMemoryMeta()
			l := logTestOpen(t, mem, meta)
			r := rand.New(rand.NewPCG(21, 22))
			var cs []commit
			for i, n := range []int{4, 6, 5} {
				if i == 1 {
					// A new instance (the process ended without Close): its
					// metadata records the tail after commit 0 (damage
					// before it is checked differently).
					l = logTestOpen(t, mem, meta)
				}
				prev := l.CommittedTail()
				recs := logTestAppend(t, l, r, n, 900)
				logTestCommit(t, l)
				cs = append(cs, commit{recs: recs, prev: prev, tail: l.CommittedTail()})
			}
			if m := logTestMetaDoc(t, meta); m.Version != 2 || m.Tail != cs[0].tail {
				t.Fatalf("metadata %+v, want the tail %d of commit 0", m, cs[0].tail)
			}
			// The process ends without Close (which would record the tail).
			tc.damage(t, mem, cs)
			l2, err := OpenLog(LogOptions{Name: logTestName, Device: mem, Meta: meta, MetaName: "commit-log.meta"})
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("OpenLog accepted a corrupt log")
				}
				for _, want := range append(tc.wantErr, logTestName, "segment mem.") {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenLog: %v", err)
			}
			want := cs[tc.keep-1].tail
			if l2.CommittedTail() != want {
				t.Fatalf("recovered tail %d, want %d (commit %d)", l2.CommittedTail(), want, tc.keep)
			}
			var kept []logTestRec
			for _, c := range cs[:tc.keep] {
				kept = append(kept, c.recs...)
			}
			logTestCheck(t, l2, 0, kept)
			// The log goes on, and the cut stays cut.
			more := logTestAppend(t, l2, r, 3, 400)
			logTestCommit(t, l2)
			if more[0].pos != want {
				t.Fatalf("first append after recovery at %d, want %d", more[0].pos, want)
			}
			l3 := logTestOpen(t, mem, meta)
			if l3.CommittedTail() != l2.CommittedTail() {
				t.Fatalf("second recovery: tail %d, want %d", l3.CommittedTail(), l2.CommittedTail())
			}
		})
	}
}

// TestLogPreallocatedSegments: on a file device, segments are created at
// full size before the first commit writes into them, so commits never
// change a file's size; the preallocated zeros read as the end of the log.
func TestLogPreallocatedSegments(t *testing.T) {
	dir := t.TempDir()
	const seg = 64 << 10
	dev, err := NewFileDevice(filepath.Join(dir, "log"), "log", 512, seg)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := NewDirMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := logTestOpen(t, dev, meta)
	sizes := func() []int64 {
		var out []int64
		for _, name := range devTestSegmentFiles(t, filepath.Join(dir, "log")) {
			fi, err := os.Stat(filepath.Join(dir, "log", name))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fi.Size())
		}
		return out
	}
	if got := sizes(); !slices.Equal(got, []int64{seg}) {
		t.Fatalf("after OpenLog: segment files of sizes %v, want one of %d", got, seg)
	}
	r := rand.New(rand.NewPCG(23, 24))
	var all []logTestRec
	for l.CommittedTail() < seg+seg/2 {
		all = append(all, logTestAppend(t, l, r, 3, 2000)...)
		logTestCommit(t, l)
	}
	if got := sizes(); !slices.Equal(got, []int64{seg, seg}) {
		t.Fatalf("segment files of sizes %v, want two of %d", got, seg)
	}
	st := l.CommitStats()
	// One metadata write at open, one at the switch.
	if st.MetaWrites != 2 || st.Commits == 0 || st.Sync.Count() != st.Commits || st.Commit.Count() != st.Commits {
		t.Fatalf("stats %+v", st)
	}
	if m := logTestMetaDoc(t, meta); m.Tail < seg-3*2100 || m.Tail > seg {
		t.Fatalf("metadata tail %d: not the commit before the segment switch at %d", m.Tail, seg)
	}
	tail := l.CommittedTail()
	l.Close()
	if m := logTestMetaDoc(t, meta); m.Tail != tail {
		t.Fatalf("after Close the metadata tail is %d, want the committed tail %d", m.Tail, tail)
	}
	dev.Close()
	dev, err = NewFileDevice(filepath.Join(dir, "log"), "log", 512, seg)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	l = logTestOpen(t, dev, meta)
	logTestCheck(t, l, 0, all)
}

// TestLogFormatVersions: a format 1 log (MetaCommits) recovers in format
// 2 and back; an unknown version is refused by name.
func TestLogFormatVersions(t *testing.T) {
	mem := NewMemoryDevice("mem", 512, 4096)
	meta := NewMemoryMeta()
	r := rand.New(rand.NewPCG(25, 26))
	l := logTestOpenMeta(t, mem, meta)
	all := logTestAppend(t, l, r, 10, 700)
	logTestCommit(t, l)
	if m := logTestMetaDoc(t, meta); m.Version != 1 {
		t.Fatalf("format 1 metadata version %d", m.Version)
	}
	l.Close()
	l = logTestOpen(t, mem, meta)
	if got := logTestScan(t, l, 0); len(got) != len(all) || l.CommittedTail() != logTestEnd(all) {
		t.Fatalf("format 2 reading format 1: %d records up to %d, want %d up to %d", len(got), l.CommittedTail(), len(all), logTestEnd(all))
	}
	all = append(all, logTestAppend(t, l, r, 10, 700)...)
	logTestCommit(t, l)
	if m := logTestMetaDoc(t, meta); m.Version != 2 {
		t.Fatalf("format 2 metadata version %d", m.Version)
	}
	l.Close()
	l = logTestOpenMeta(t, mem, meta)
	got := logTestScan(t, l, 0)
	if len(got) != len(all) {
		t.Fatalf("format 1 reading format 2: %d records, want %d", len(got), len(all))
	}
	l.Close()
	if err := meta.WriteFile("commit-log.meta", []byte(`{"version":3,"begin":0,"tail":0,"epoch":4}`)); err != nil {
		t.Fatal(err)
	}
	_, err := OpenLog(LogOptions{Name: logTestName, Device: mem, Meta: meta, MetaName: "commit-log.meta"})
	if err == nil || !strings.Contains(err.Error(), "unsupported log format version 3") {
		t.Fatalf("unknown version: %v", err)
	}
}

// TestLogRandomCrashes: random appends, commits, injected faults and
// crashes; every recovery yields exactly the committed prefix (or, after
// a commit that failed, that prefix plus all of the failed commit).
func TestLogRandomCrashes(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			fd := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
			meta := NewMemoryMeta()
			l := logTestOpen(t, fd, meta)
			var committed []logTestRec // what recovery must return
			var pending []logTestRec   // a failed commit's records: all or nothing
			reopen := func(crash bool) {
				if crash {
					if err := fd.Crash(); err != nil {
						t.Fatal(err)
					}
					fd.Restart()
					pending = nil // unflushed writes are gone
				}
				fd.ClearFaults()
				l = logTestOpen(t, fd, meta)
				got := logTestScan(t, l, l.Begin())
				want := committed
				if len(got) != len(want) && len(pending) > 0 {
					want = append(slices.Clone(committed), pending...)
				}
				if len(got) != len(want) {
					t.Fatalf("recovered %d records, want %d (pending %d)", len(got), len(committed), len(pending))
				}
				for i := range got {
					if got[i].pos != want[i].pos || string(got[i].payload) != string(want[i].payload) {
						t.Fatalf("record %d differs after recovery", i)
					}
				}
				committed, pending = want, nil
			}
			for step := range 300 {
				recs := logTestAppend(t, l, r, 1+r.IntN(6), []int{50, 400, 1500, 5000}[r.IntN(4)])
				switch k := r.IntN(20); {
				case k < 12:
					logTestCommit(t, l)
					committed = append(committed, recs...)
				case k < 14: // a torn write that reports its failure
					fd.TearAt(1+r.IntN(2), r.IntN(8), errors.New("torn"))
					if err := l.Commit(); err != nil {
						pending = recs
						reopen(r.IntN(2) == 0)
					} else { // the commit made fewer writes
						fd.ClearFaults()
						committed = append(committed, recs...)
					}
				case k < 15: // a failing flush
					fd.FailAt(FaultFlush, 1, nil)
					if err := l.Commit(); err == nil {
						t.Fatal("commit with a failing flush succeeded")
					}
					pending = recs
					reopen(r.IntN(2) == 0)
				case k < 17: // power cut with records appended, not committed
					reopen(true)
				case k < 18: // the process ends: the next instance opens the same device
					reopen(false)
				default: // a checkpoint truncates the log
					logTestCommit(t, l)
					committed = append(committed, recs...)
					i := r.IntN(len(committed))
					if err := l.Truncate(committed[i].pos); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					committed = committed[i:]
				}
			}
			reopen(true)
		})
	}
}
