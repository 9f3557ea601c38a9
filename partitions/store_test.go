package partitions

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/faster"
)

// storeFixture is a durable store on a fault-injecting memory device.
type storeFixture struct {
	t    *testing.T
	dev  *faster.FaultDevice
	meta *faster.MemoryMeta
}

func newStoreFixture(t *testing.T) *storeFixture {
	return &storeFixture{t: t, dev: faster.NewFaultDevice(faster.NewMemoryDevice("mem", 512, 8<<10)), meta: faster.NewMemoryMeta()}
}

func (f *storeFixture) open() (*DurableStore, error) {
	return OpenDurableStore("partition 0", f.dev, f.meta)
}

// entries makes n creation events with positions from+1.., each with a
// payload big enough that records cross sectors and segments.
func entries(from uint64, n int) []LogEntry {
	var out []LogEntry
	for i := 0; i < n; i++ {
		pos := from + uint64(i) + 1
		ev := createReq(fmt.Sprintf("i%d", pos), "O", fmt.Sprintf(`"%s"`, strings.Repeat("x", 300+int(pos)%700)), pos)
		out = append(out, LogEntry{Pos: pos, At: t0.Add(time.Duration(pos) * time.Millisecond), Event: ev})
	}
	return out
}

// reference applies entries to an empty state.
func reference(es []LogEntry) *State {
	s := NewState(0, 1)
	for _, e := range es {
		s.Apply(e.Pos, e.At, e.Event, &Effects{})
	}
	return s
}

func mustRecover(t *testing.T, s *DurableStore) *State {
	t.Helper()
	st, err := s.Recover(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sameState(t *testing.T, what string, got, want *State) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: recovered state (last position %d, %d instances) differs from the reference (last position %d, %d instances)",
			what, got.LastPos, len(got.Instances), want.LastPos, len(want.Instances))
	}
}

func TestStoreRecoversCheckpointAndLogSuffix(t *testing.T) {
	f := newStoreFixture(t)
	s, err := f.open()
	if err != nil {
		t.Fatal(err)
	}
	all := entries(0, 60)
	for i := 0; i < 60; i += 10 {
		if err := s.Append(all[i : i+10]); err != nil {
			t.Fatal(err)
		}
		if i == 30 {
			snap, err := s.Snapshot(reference(all[:40]))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SaveCheckpoint(snap, 40, 40, s.Mark()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The process ends; the device keeps what was written.
	s, err = f.open()
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "checkpoint at 40 + log to 60", mustRecover(t, s), reference(all))
	if names, _ := f.meta.List(checkpointPrefix); len(names) != 1 {
		t.Fatalf("checkpoints kept: %v", names)
	}
}

func TestStoreCrashLosesOnlyUncommitted(t *testing.T) {
	f := newStoreFixture(t)
	s, _ := f.open()
	all := entries(0, 40)
	if err := s.Append(all[:25]); err != nil {
		t.Fatal(err)
	}
	// The next write fails: the append is not acknowledged.
	f.dev.FailAt(faster.FaultWrite, 1, nil)
	if err := s.Append(all[25:]); err == nil {
		t.Fatal("append over a failing device succeeded")
	}
	if err := f.dev.Crash(); err != nil {
		t.Fatal(err)
	}
	f.dev.Restart()
	s, err := f.open()
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "after a failed write and a crash", mustRecover(t, s), reference(all[:25]))
	// The recovered store takes appends again, at the right place.
	if err := s.Append(entries(25, 5)); err != nil {
		t.Fatal(err)
	}
	// The process ends; the device keeps what was written.
	s, err = f.open()
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "after appending on the recovered store", mustRecover(t, s), reference(append(all[:25:25], entries(25, 5)...)))
}

func TestStoreTornWriteIsCut(t *testing.T) {
	f := newStoreFixture(t)
	s, _ := f.open()
	all := entries(0, 30)
	if err := s.Append(all[:20]); err != nil {
		t.Fatal(err)
	}
	// A lying disk: the write is torn but reported as done, then power fails.
	f.dev.TearAt(1, 1, nil)
	_ = s.Append(all[20:])
	_ = f.dev.Crash()
	f.dev.Restart()
	s, err := f.open()
	if err != nil {
		t.Fatalf("a torn tail must be cut, not fail recovery: %v", err)
	}
	st := mustRecover(t, s)
	if st.LastPos < 20 || st.LastPos > 30 {
		t.Fatalf("recovered up to %d", st.LastPos)
	}
	sameState(t, "torn tail", st, reference(all[:st.LastPos]))
}

func TestStoreCorruptionIsAHardError(t *testing.T) {
	f := newStoreFixture(t)
	s, _ := f.open()
	if err := s.Append(entries(0, 30)); err != nil {
		t.Fatal(err)
	}
	// A later commit: damage to the data of the last commit could be a
	// torn write (it is cut), damage to an earlier one cannot.
	if err := s.Append(entries(30, 5)); err != nil {
		t.Fatal(err)
	}
	// The process ends; the device keeps what was written.
	// Flip a byte in the middle of the committed log.
	inner := f.dev.Inner()
	buf := make([]byte, 512)
	done := make(chan error, 1)
	inner.ReadAsync(4096, buf, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	buf[100] ^= 0xff
	inner.WriteAsync(4096, buf, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, err := f.open()
	if err == nil {
		s, _ := f.open()
		_, err = s.Recover(0, 1)
	}
	if err == nil {
		t.Fatal("corruption before the committed tail went unnoticed")
	}
	for _, want := range []string{"partition 0", "mem"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestStoreReadFaultDuringRecovery(t *testing.T) {
	f := newStoreFixture(t)
	s, _ := f.open()
	if err := s.Append(entries(0, 30)); err != nil {
		t.Fatal(err)
	}
	// The process ends; the device keeps what was written.
	f.dev.FailFrom(faster.FaultRead, 2, errors.New("disk on fire"))
	s, err := f.open()
	if err == nil {
		_, err = s.Recover(0, 1)
	}
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("read failure during recovery: %v", err)
	}
	f.dev.ClearFaults()
	s, err = f.open()
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "after the read fault cleared", mustRecover(t, s), reference(entries(0, 30)))
}

func TestStoreRejectsOtherPartitionsCheckpoint(t *testing.T) {
	f := newStoreFixture(t)
	s, _ := f.open()
	snap, _ := s.Snapshot(NewState(3, 8))
	if err := s.SaveCheckpoint(snap, 0, 0, s.Mark()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recover(0, 1); err == nil || !strings.Contains(err.Error(), "partition 3 of 8") {
		t.Fatalf("recover with another partition's checkpoint: %v", err)
	}
}

// With instances in a KV: checkpoints write changed instances, compaction
// drops dead records, and recovery (checkpoint + log) gives the reference
// state, through crashes.
func TestStoreWithKV(t *testing.T) {
	f := newStoreFixture(t)
	kvDev := faster.NewFaultDevice(faster.NewMemoryDevice("kv", 512, 16<<10))
	open := func() *DurableStore {
		s, err := OpenDurableStore("partition 0", f.dev, f.meta, StoreOptions{KVDevice: kvDev,
			KVMemoryBytes: 64 << 10, KVPageSize: 4 << 10, ResidentBytes: 16 << 10, CompactBytes: 32 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	st := mustRecover(t, s)
	var all []LogEntry
	pos := uint64(0)
	// Create instances, then purge them again and again: dead records pile
	// up in the KV and compaction must clear them.
	for round := 0; round < 8; round++ {
		var batch []LogEntry
		for i := 0; i < 30; i++ {
			pos++
			e := createReq(fmt.Sprintf("i%d", i), "O", fmt.Sprintf(`"%s"`, strings.Repeat("y", 200+round)), pos)
			e.Request.Reuse = ReuseTerminate
			batch = append(batch, LogEntry{Pos: pos, At: t0, Event: e})
		}
		for _, e := range batch {
			st.Apply(e.Pos, e.At, e.Event, &Effects{})
			st.Evict(nil)
		}
		if err := s.Append(batch); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
		snap, err := s.Snapshot(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCheckpoint(snap, st.LastPos, st.NextInputPos, s.Mark()); err != nil {
			t.Fatal(err)
		}
	}
	if ks := s.KVStats(); ks.Compactions == 0 || ks.Begin == 0 {
		t.Fatalf("no compaction: %+v", ks)
	}
	// More events after the last checkpoint, then a crash of both devices.
	tail := entries(pos, 10)
	if err := s.Append(tail); err != nil {
		t.Fatal(err)
	}
	all = append(all, tail...)
	_ = f.dev.Crash()
	_ = kvDev.Crash()
	f.dev.Restart()
	kvDev.Restart()
	s = open()
	got := mustRecover(t, s)
	want := reference(all)
	if got.LastPos != want.LastPos || got.InstanceCount() != want.InstanceCount() {
		t.Fatalf("recovered %d instances at %d, want %d at %d", got.InstanceCount(), got.LastPos, want.InstanceCount(), want.LastPos)
	}
	for _, id := range want.IDs() {
		a, _ := EncodeInstance(got.Lookup(id))
		b, _ := EncodeInstance(want.Lookup(id))
		if string(a) != string(b) {
			t.Fatalf("instance %s differs after recovery", id)
		}
	}
}
