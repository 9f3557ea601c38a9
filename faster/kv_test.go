package faster

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// ---- test device and metadata store ----

// kvTestDevice is a memory Device that separates what reads see from what
// survives a crash: writes land in cur, Flush copies the written segments
// to durable, and crash throws away everything not flushed. Completions run
// on new goroutines. Calls that break the Device contract fail.
type kvTestDevice struct {
	name    string
	sector  int
	segSize int64

	mu      sync.Mutex
	cur     map[int64][]byte
	durable map[int64][]byte
	dirty   map[int64]bool

	writes, reads, flushes int
	removedBelow           int64
	failWrite              func(addr int64) error // fault hook, may be nil
	failFlush              error
}

func newKVTestDevice(sector int, segSize int64) *kvTestDevice {
	return &kvTestDevice{
		name: "kvtest", sector: sector, segSize: segSize,
		cur: map[int64][]byte{}, durable: map[int64][]byte{}, dirty: map[int64]bool{},
	}
}

func (d *kvTestDevice) Name() string       { return d.name }
func (d *kvTestDevice) SectorSize() int    { return d.sector }
func (d *kvTestDevice) SegmentSize() int64 { return d.segSize }
func (d *kvTestDevice) SegmentName(addr int64) string {
	return fmt.Sprintf("%s.%06d", d.name, addr/d.segSize)
}

func (d *kvTestDevice) check(op string, addr int64, n int) error {
	if addr < 0 || addr%int64(d.sector) != 0 || n%d.sector != 0 || (n > 0 && addr/d.segSize != (addr+int64(n)-1)/d.segSize) {
		return fmt.Errorf("kvTestDevice: bad %s at %d length %d (sector %d, segment %d)", op, addr, n, d.sector, d.segSize)
	}
	return nil
}

func (d *kvTestDevice) WriteAsync(addr int64, p []byte, done func(error)) {
	err := d.check("write", addr, len(p))
	d.mu.Lock()
	if err == nil && d.failWrite != nil {
		err = d.failWrite(addr)
	}
	if err == nil && len(p) > 0 {
		d.writes++
		seg := addr / d.segSize
		s := d.cur[seg]
		if s == nil {
			s = make([]byte, d.segSize)
			d.cur[seg] = s
		}
		copy(s[addr-seg*d.segSize:], p)
		d.dirty[seg] = true
	}
	d.mu.Unlock()
	go done(err)
}

func (d *kvTestDevice) ReadAsync(addr int64, p []byte, done func(error)) {
	err := d.check("read", addr, len(p))
	d.mu.Lock()
	if err == nil {
		d.reads++
		seg := addr / d.segSize
		if s := d.cur[seg]; s != nil {
			copy(p, s[addr-seg*d.segSize:])
		} else {
			clear(p)
		}
	}
	d.mu.Unlock()
	go done(err)
}

func (d *kvTestDevice) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failFlush != nil {
		return d.failFlush
	}
	d.flushes++
	for seg := range d.dirty {
		if s := d.cur[seg]; s != nil {
			d.durable[seg] = bytes.Clone(s)
		}
	}
	clear(d.dirty)
	return nil
}

func (d *kvTestDevice) RemoveSegmentsBelow(addr int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range []map[int64][]byte{d.cur, d.durable} {
		for seg := range m {
			if (seg+1)*d.segSize <= addr {
				delete(m, seg)
			}
		}
	}
	d.removedBelow = max(d.removedBelow, addr)
	return nil
}

func (d *kvTestDevice) Close() error { return nil }

// crash drops every write not made durable by Flush.
func (d *kvTestDevice) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cur = map[int64][]byte{}
	for seg, s := range d.durable {
		d.cur[seg] = bytes.Clone(s)
	}
	clear(d.dirty)
}

func (d *kvTestDevice) segments() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cur)
}

// corrupt flips a byte at addr, durably.
func (d *kvTestDevice) corrupt(addr int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seg := addr / d.segSize
	for _, m := range []map[int64][]byte{d.cur, d.durable} {
		if s := m[seg]; s != nil {
			s[addr-seg*d.segSize] ^= 0x5a
		}
	}
}

// kvTestMeta is a memory MetaStore with a fault hook.
type kvTestMeta struct {
	mu        sync.Mutex
	docs      map[string][]byte
	writes    int
	failWrite func(name string) error // may be nil
}

func newKVTestMeta() *kvTestMeta { return &kvTestMeta{docs: map[string][]byte{}} }

func (m *kvTestMeta) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite != nil {
		if err := m.failWrite(name); err != nil {
			return err
		}
	}
	m.writes++
	m.docs[name] = bytes.Clone(data)
	return nil
}

func (m *kvTestMeta) ReadFile(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[name]
	if !ok {
		return nil, fmt.Errorf("kvTestMeta: %s: %w", name, ErrNotExist)
	}
	return bytes.Clone(d), nil
}

func (m *kvTestMeta) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, name)
	return nil
}

func (m *kvTestMeta) List(prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n := range m.docs {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

var (
	_ Device    = (*kvTestDevice)(nil)
	_ MetaStore = (*kvTestMeta)(nil)
)

// ---- helpers ----

func kvOpenT(t testing.TB, opts KVOptions) *KV {
	t.Helper()
	kv, err := OpenKV(opts)
	if err != nil {
		t.Fatalf("OpenKV: %v", err)
	}
	return kv
}

// kvAbandon simulates a crash of the process that owns kv: it stops using
// it without closing (after its writes in flight land, as they would
// before the process is gone).
func kvAbandon(kv *KV) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	_ = kv.kvWaitAllWrites()
	kv.closed = true
}

func kvMustGet(t testing.TB, kv *KV, key string, want []byte, wantOK bool) {
	t.Helper()
	got, ok, err := kv.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if ok != wantOK || !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes, %v; want %d bytes, %v", key, len(got), ok, len(want), wantOK)
	}
}

// kvVerifyAll checks every key of ref and the key count.
func kvVerifyAll(t testing.TB, kv *KV, ref map[string][]byte) {
	t.Helper()
	if kv.Len() != len(ref) {
		t.Fatalf("Len() = %d, reference has %d", kv.Len(), len(ref))
	}
	for k, v := range ref {
		kvMustGet(t, kv, k, v, true)
	}
}

func kvValue(rng *rand.Rand, n int) []byte {
	v := make([]byte, n)
	rng.Read(v)
	return v
}

// ---- tests ----

func TestKVBasic(t *testing.T) {
	dev, meta := newKVTestDevice(512, 64<<10), newKVTestMeta()
	opts := KVOptions{Name: "basic", Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 16 << 10}
	kv := kvOpenT(t, opts)
	if tok, m, err := kv.LatestCheckpoint(); tok != "" || m != nil || err != nil {
		t.Fatalf("LatestCheckpoint of a new store = %q, %q, %v", tok, m, err)
	}
	kvMustGet(t, kv, "a", nil, false)
	for _, kvp := range []struct{ k, v string }{{"a", "1"}, {"b", "two"}, {"", "empty key"}, {"e", ""}, {"a", "one again"}} {
		if err := kv.Upsert(kvp.k, []byte(kvp.v)); err != nil {
			t.Fatal(err)
		}
	}
	kvMustGet(t, kv, "a", []byte("one again"), true)
	kvMustGet(t, kv, "", []byte("empty key"), true)
	kvMustGet(t, kv, "e", []byte{}, true)
	if kv.Len() != 4 {
		t.Fatalf("Len = %d, want 4", kv.Len())
	}
	if err := kv.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete("missing"); err != nil {
		t.Fatal(err)
	}
	kvMustGet(t, kv, "b", nil, false)
	if kv.Len() != 3 {
		t.Fatalf("Len = %d, want 3", kv.Len())
	}
	// Get returns a copy.
	v, _, _ := kv.Get("a")
	v[0] = 'X'
	kvMustGet(t, kv, "a", []byte("one again"), true)

	tok, err := kv.Checkpoint([]byte("meta-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Upsert("after", []byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := kv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := kv.Upsert("x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Upsert after Close: %v, want ErrClosed", err)
	}

	kv = kvOpenT(t, opts)
	defer kv.Close()
	gotTok, gotMeta, err := kv.LatestCheckpoint()
	if err != nil || gotTok != tok || string(gotMeta) != "meta-1" {
		t.Fatalf("LatestCheckpoint = %q, %q, %v; want %q, meta-1", gotTok, gotMeta, err, tok)
	}
	kvVerifyAll(t, kv, map[string][]byte{"a": []byte("one again"), "": []byte("empty key"), "e": {}})
	kvMustGet(t, kv, "after", nil, false)
	// The recovered store keeps working, and appends after the recovered
	// tail do not disturb the checkpoint's records.
	if err := kv.Upsert("c", []byte("three")); err != nil {
		t.Fatal(err)
	}
	kvMustGet(t, kv, "c", []byte("three"), true)
	kvMustGet(t, kv, "a", []byte("one again"), true)
}

func TestKVOptions(t *testing.T) {
	dev, meta := newKVTestDevice(512, 64<<10), newKVTestMeta()
	for _, o := range []KVOptions{
		{Meta: meta},
		{Device: dev},
		{Device: dev, Meta: meta, PageSize: 1000},
		{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 4096},
		{Device: dev, Meta: meta, MutableFraction: 1.5},
	} {
		if _, err := OpenKV(o); err == nil {
			t.Errorf("OpenKV(%+v) succeeded", o)
		}
	}
	kv := kvOpenT(t, KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 1 << 20})
	if err := kv.Upsert("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Checkpoint(nil); err != nil {
		t.Fatal(err)
	}
	kv.Close()
	_, err := OpenKV(KVOptions{Device: dev, Meta: meta, PageSize: 8192, MemoryBudget: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "page size 4096") {
		t.Fatalf("reopen with another page size: %v", err)
	}
	// Defaults.
	kv = kvOpenT(t, KVOptions{Device: newKVTestDevice(512, 1<<20), Meta: newKVTestMeta()})
	if s := kv.Stats(); s.MemoryBudget != 64<<20 || kv.pageSize != 64<<10 || kv.mutablePages != 921 {
		t.Fatalf("defaults: budget %d, page %d, mutable pages %d", s.MemoryBudget, kv.pageSize, kv.mutablePages)
	}
	kv.Close()
}

func TestKVInPlaceUpdates(t *testing.T) {
	dev, meta := newKVTestDevice(512, 64<<10), newKVTestMeta()
	kv := kvOpenT(t, KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 64 << 10, MutableFraction: 0.5})
	defer kv.Close()
	rng := rand.New(rand.NewSource(1))
	step := func(n int, wantInPlace bool) {
		t.Helper()
		before := kv.Stats()
		v := kvValue(rng, n)
		if err := kv.Upsert("k", v); err != nil {
			t.Fatal(err)
		}
		after := kv.Stats()
		inPlace := after.InPlaceUpdates == before.InPlaceUpdates+1
		if inPlace != wantInPlace {
			t.Fatalf("upsert of %d bytes: in place %v, want %v (stats %+v)", n, inPlace, wantInPlace, after)
		}
		if inPlace && after.Tail != before.Tail {
			t.Fatalf("in-place update moved the tail from %d to %d", before.Tail, after.Tail)
		}
		if !inPlace && after.Appends != before.Appends+1 {
			t.Fatalf("update not in place but appends %d -> %d", before.Appends, after.Appends)
		}
		kvMustGet(t, kv, "k", v, true)
	}
	step(100, false) // new key: append
	step(100, true)  // same size
	step(40, true)   // smaller
	step(100, true)  // back up to the slot's capacity
	step(101, false) // larger than the slot: read-copy-update
	step(0, true)

	// A checkpoint makes everything read-only: the next update appends.
	if _, err := kv.Checkpoint(nil); err != nil {
		t.Fatal(err)
	}
	step(10, false)
	step(10, true)

	// Push the record out of the mutable region (8 of 16 pages).
	for i := range 12 {
		if err := kv.Upsert(fmt.Sprintf("fill%d", i), kvValue(rng, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if s := kv.Stats(); s.ReadOnly <= kv.index["k"].addr {
		t.Fatalf("record at %d is still mutable (read-only from %d)", kv.index["k"].addr, s.ReadOnly)
	}
	step(10, false)

	// A negative MutableFraction disables in-place updates.
	kv2 := kvOpenT(t, KVOptions{Device: newKVTestDevice(512, 64<<10), Meta: newKVTestMeta(), PageSize: 4096, MemoryBudget: 64 << 10, MutableFraction: -1})
	defer kv2.Close()
	for range 3 {
		if err := kv2.Upsert("k", []byte("same")); err != nil {
			t.Fatal(err)
		}
	}
	if s := kv2.Stats(); s.InPlaceUpdates != 0 || s.Appends != 3 {
		t.Fatalf("no mutable region: %d in place, %d appends", s.InPlaceUpdates, s.Appends)
	}
}

func TestKVEvictionAndLargeValues(t *testing.T) {
	dev, meta := newKVTestDevice(512, 16<<10), newKVTestMeta()
	opts := KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 16 << 10}
	kv := kvOpenT(t, opts)
	rng := rand.New(rand.NewSource(2))
	ref := map[string][]byte{}
	sizes := []int{0, 10, 4096 - kvHeaderSize - 3, 4096 - kvHeaderSize - 2, 4096, 10000, 40000, 100 << 10, 1500}
	for i, n := range sizes {
		k := fmt.Sprintf("k%d", i)
		ref[k] = kvValue(rng, n)
		if err := kv.Upsert(k, ref[k]); err != nil {
			t.Fatalf("upsert %d bytes: %v", n, err)
		}
		kvMustGet(t, kv, k, ref[k], true)
	}
	kvVerifyAll(t, kv, ref)
	s := kv.Stats()
	if s.LargeRecords != 4 || s.Evictions == 0 || s.DeviceReads == 0 {
		t.Fatalf("stats %+v: want 4 large records, evictions and device reads", s)
	}
	if s.MemoryBytes > opts.MemoryBudget {
		t.Fatalf("memory %d exceeds the budget %d", s.MemoryBytes, opts.MemoryBudget)
	}
	// In-place update of a large record while it is mutable.
	k := "big"
	ref[k] = kvValue(rng, 9000)
	if err := kv.Upsert(k, ref[k]); err != nil {
		t.Fatal(err)
	}
	before := kv.Stats().InPlaceUpdates
	ref[k] = kvValue(rng, 8000)
	if err := kv.Upsert(k, ref[k]); err != nil {
		t.Fatal(err)
	}
	if kv.Stats().InPlaceUpdates != before+1 {
		t.Fatal("large record in the mutable region was not updated in place")
	}
	if _, err := kv.Checkpoint(nil); err != nil {
		t.Fatal(err)
	}
	kv.Close()
	kv = kvOpenT(t, opts)
	defer kv.Close()
	kvVerifyAll(t, kv, ref)
}

// TestKVRandomized runs random operations against a reference map with a
// small memory budget, interleaved with checkpoints, restarts (clean and
// crashes that lose unflushed device writes) and compactions.
func TestKVRandomized(t *testing.T) {
	ops := 20000
	if testing.Short() {
		ops = 4000
	}
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			dev, meta := newKVTestDevice(512, 16<<10), newKVTestMeta()
			total := kvRandomized(t, seed, ops, dev, meta, dev.crash)
			if total.Evictions == 0 || total.DeviceReads == 0 || total.InPlaceUpdates == 0 || total.LargeRecords == 0 ||
				total.Compactions == 0 || total.CompactedRecords == 0 || total.Checkpoints == 0 || total.RemovedBelow == 0 {
				t.Fatalf("the run did not exercise everything: %+v", total)
			}
			if dev.removedBelow == 0 {
				t.Fatal("no device segments were removed")
			}
			t.Logf("totals: %d evictions, %d device reads, %d in place, %d appends, %d large, %d checkpoints, %d compactions (%d records), segments removed below %d",
				total.Evictions, total.DeviceReads, total.InPlaceUpdates, total.Appends, total.LargeRecords, total.Checkpoints,
				total.Compactions, total.CompactedRecords, dev.removedBelow)
		})
	}
}

// kvRandomized is the body of the randomized test; crash (may be nil)
// drops unflushed device writes. It returns counters summed over every
// incarnation of the store.
func kvRandomized(t testing.TB, seed int64, ops int, dev Device, meta MetaStore, crash func()) KVStats {
	rng := rand.New(rand.NewSource(seed))
	opts := KVOptions{Name: fmt.Sprint("random", seed), Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 8 * 4096, MutableFraction: 0.5}
	kv := kvOpenT(t, opts)
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d-%s", i, strings.Repeat("x", i%37))
	}
	ref, ckptRef := map[string][]byte{}, map[string][]byte{}
	var ckptMeta []byte
	var total KVStats
	addTotals := func(s KVStats) {
		total.Evictions += s.Evictions
		total.DeviceReads += s.DeviceReads
		total.InPlaceUpdates += s.InPlaceUpdates
		total.Appends += s.Appends
		total.LargeRecords += s.LargeRecords
		total.Checkpoints += s.Checkpoints
		total.Compactions += s.Compactions
		total.CompactedRecords += s.CompactedRecords
		total.RemovedBelow = max(total.RemovedBelow, s.RemovedBelow)
	}
	reopen := func(crashed bool) {
		addTotals(kv.Stats())
		if crashed {
			kvAbandon(kv)
			if crash != nil {
				crash()
			}
		} else if err := kv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		kv = kvOpenT(t, opts)
		ref = maps.Clone(ckptRef)
		_, m, err := kv.LatestCheckpoint()
		if err != nil || !bytes.Equal(m, ckptMeta) {
			t.Fatalf("after restart: LatestCheckpoint meta %q, %v; want %q", m, err, ckptMeta)
		}
		kvVerifyAll(t, kv, ref)
	}
	valueSize := func() int {
		switch p := rng.Intn(100); {
		case p < 5:
			return 0
		case p < 80:
			return rng.Intn(3 << 10)
		case p < 95:
			return rng.Intn(64)
		default:
			return 4096 + rng.Intn(12000) // larger than a page
		}
	}
	for i := range ops {
		key := keys[rng.Intn(len(keys))]
		switch p := rng.Intn(1000); {
		case p < 450:
			v := kvValue(rng, valueSize())
			if err := kv.Upsert(key, v); err != nil {
				t.Fatalf("op %d: Upsert: %v", i, err)
			}
			ref[key] = v
		case p < 600:
			if err := kv.Delete(key); err != nil {
				t.Fatalf("op %d: Delete: %v", i, err)
			}
			delete(ref, key)
		case p < 950:
			want, ok := ref[key]
			got, gotOK, err := kv.Get(key)
			if err != nil || gotOK != ok || !bytes.Equal(got, want) {
				t.Fatalf("op %d: Get(%q) = %d bytes, %v, %v; want %d bytes, %v", i, key, len(got), gotOK, err, len(want), ok)
			}
		case p < 965:
			ckptMeta = []byte(fmt.Sprint("op ", i))
			if _, err := kv.Checkpoint(ckptMeta); err != nil {
				t.Fatalf("op %d: Checkpoint: %v", i, err)
			}
			ckptRef = maps.Clone(ref)
		case p < 972:
			reopen(false)
		case p < 978:
			reopen(true)
		case p < 990:
			s := kv.Stats()
			until := s.Begin + rng.Int63n(s.Tail-s.Begin+1)
			if err := kv.Compact(until); err != nil {
				t.Fatalf("op %d: Compact(%d): %v", i, until, err)
			}
			if s2 := kv.Stats(); s2.Begin != max(s.Begin, until) {
				t.Fatalf("op %d: Compact(%d) moved Begin from %d to %d", i, until, s.Begin, s2.Begin)
			}
		default:
			kvVerifyAll(t, kv, ref)
		}
		if kv.Len() != len(ref) {
			t.Fatalf("op %d: Len() = %d, reference has %d", i, kv.Len(), len(ref))
		}
		s := kv.Stats()
		if !(s.Begin <= s.Tail && s.Head <= s.ReadOnly && s.ReadOnly <= s.Tail && s.CheckpointTail <= s.Tail) {
			t.Fatalf("op %d: bad boundaries %+v", i, s)
		}
		if s.MemoryBytes > opts.MemoryBudget+16<<10 { // a large frame may exceed the budget while written
			t.Fatalf("op %d: memory %d exceeds the budget %d", i, s.MemoryBytes, opts.MemoryBudget)
		}
	}
	kvVerifyAll(t, kv, ref)
	addTotals(kv.Stats())
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestKVCrashBeforeCheckpointRecord fails the checkpoint at each of its
// durable steps and checks that the store reopens at the previous one.
func TestKVCrashBeforeCheckpointRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(dev *kvTestDevice, meta *kvTestMeta)
		sticky bool // the store refuses further changes afterwards
	}{
		{"record write fails", func(_ *kvTestDevice, meta *kvTestMeta) {
			meta.failWrite = func(name string) error {
				if strings.HasSuffix(name, kvLatestDocName) {
					return errors.New("injected: record write fails")
				}
				return nil
			}
		}, false},
		{"index write fails", func(_ *kvTestDevice, meta *kvTestMeta) {
			meta.failWrite = func(name string) error {
				if strings.HasSuffix(name, kvIndexDocSuffix) {
					return errors.New("injected: index write fails")
				}
				return nil
			}
		}, false},
		{"page write fails", func(dev *kvTestDevice, _ *kvTestMeta) {
			dev.failWrite = func(int64) error { return errors.New("injected: page write fails") }
		}, true},
		{"device flush fails", func(dev *kvTestDevice, _ *kvTestMeta) {
			dev.failFlush = errors.New("injected: flush fails")
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev, meta := newKVTestDevice(512, 16<<10), newKVTestMeta()
			opts := KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 8 * 4096}
			kv := kvOpenT(t, opts)
			rng := rand.New(rand.NewSource(3))
			ref := map[string][]byte{}
			for i := range 200 {
				k := fmt.Sprint("k", i%50)
				ref[k] = kvValue(rng, rng.Intn(1000))
				if err := kv.Upsert(k, ref[k]); err != nil {
					t.Fatal(err)
				}
			}
			tok1, err := kv.Checkpoint([]byte("first"))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				k := fmt.Sprint("k", i%70)
				if err := kv.Upsert(k, kvValue(rng, rng.Intn(1000))); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 10 {
				if err := kv.Delete(fmt.Sprint("k", i)); err != nil {
					t.Fatal(err)
				}
			}
			tc.inject(dev, meta)
			if _, err := kv.Checkpoint([]byte("second")); err == nil {
				t.Fatal("Checkpoint succeeded despite the fault")
			} else {
				t.Logf("Checkpoint: %v", err)
			}
			if tok, m, _ := kv.LatestCheckpoint(); tok != tok1 || string(m) != "first" {
				t.Fatalf("after the failed checkpoint LatestCheckpoint = %q, %q; want %q, first", tok, m, tok1)
			}
			err = kv.Upsert("after", []byte("x"))
			if tc.sticky != (err != nil) {
				t.Fatalf("Upsert after the failure: %v (sticky %v)", err, tc.sticky)
			}
			// Crash: the process dies, unflushed writes are lost.
			kvAbandon(kv)
			dev.crash()
			dev.failWrite, dev.failFlush, meta.failWrite = nil, nil, nil
			kv = kvOpenT(t, opts)
			if tok, m, _ := kv.LatestCheckpoint(); tok != tok1 || string(m) != "first" {
				t.Fatalf("after reopen LatestCheckpoint = %q, %q; want %q, first", tok, m, tok1)
			}
			kvVerifyAll(t, kv, ref)
			// The next checkpoint works and leaves one index document.
			if err := kv.Upsert("new", []byte("y")); err != nil {
				t.Fatal(err)
			}
			ref["new"] = []byte("y")
			tok3, err := kv.Checkpoint([]byte("third"))
			if err != nil || tok3 == tok1 {
				t.Fatalf("Checkpoint after recovery = %q, %v", tok3, err)
			}
			if names, _ := meta.List("kv-" + kvIndexDocPrefix); len(names) != 1 {
				t.Fatalf("index documents after a clean checkpoint: %v", names)
			}
			kv.Close()
			kv = kvOpenT(t, opts)
			defer kv.Close()
			kvVerifyAll(t, kv, ref)
		})
	}
}

// TestKVCompactCrashSafety checks that Compact keeps the segments the
// latest checkpoint needs until a later checkpoint, and that the space is
// reclaimed after it.
func TestKVCompactCrashSafety(t *testing.T) {
	dev, meta := newKVTestDevice(512, 8<<10), newKVTestMeta()
	opts := KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 8 * 4096}
	kv := kvOpenT(t, opts)
	rng := rand.New(rand.NewSource(4))
	ref := map[string][]byte{}
	put := func(k string, n int) {
		ref[k] = kvValue(rng, n)
		if err := kv.Upsert(k, ref[k]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		put(fmt.Sprint("k", i), 500+rng.Intn(1000))
	}
	if _, err := kv.Checkpoint([]byte("c1")); err != nil {
		t.Fatal(err)
	}
	ref1 := maps.Clone(ref)
	for i := 0; i < 100; i += 2 { // half the records become garbage
		put(fmt.Sprint("k", i), 500+rng.Intn(1000))
	}
	segs := dev.segments()
	until := kv.Stats().Tail / 2
	if err := kv.Compact(until); err != nil {
		t.Fatal(err)
	}
	kvVerifyAll(t, kv, ref)
	s := kv.Stats()
	if s.Begin != until || s.CompactedRecords == 0 || s.RemovedBelow != 0 || dev.removedBelow != 0 {
		t.Fatalf("after Compact(%d): %+v, device removed below %d", until, s, dev.removedBelow)
	}
	// Crash before a checkpoint: c1 must be intact.
	kvAbandon(kv)
	dev.crash()
	kv = kvOpenT(t, opts)
	kvVerifyAll(t, kv, ref1)
	if kv.Stats().Begin != 0 {
		t.Fatalf("Begin after recovery = %d, want 0", kv.Stats().Begin)
	}

	// Compact and checkpoint: the segments below until go away.
	ref = maps.Clone(ref1)
	for i := 0; i < 100; i += 3 {
		put(fmt.Sprint("k", i), 500+rng.Intn(1000))
	}
	until = kv.Stats().Tail - 4096
	if err := kv.Compact(until); err != nil {
		t.Fatal(err)
	}
	if dev.removedBelow != 0 {
		t.Fatal("Compact removed segments before a checkpoint")
	}
	if _, err := kv.Checkpoint([]byte("c2")); err != nil {
		t.Fatal(err)
	}
	if dev.removedBelow != until || kv.Stats().RemovedBelow != until {
		t.Fatalf("after the checkpoint segments were removed below %d (stats %d), want %d", dev.removedBelow, kv.Stats().RemovedBelow, until)
	}
	if dev.segments() >= segs {
		t.Logf("segments: %d before, %d after", segs, dev.segments())
	}
	kvVerifyAll(t, kv, ref)
	kvAbandon(kv)
	dev.crash()
	kv = kvOpenT(t, opts)
	defer kv.Close()
	kvVerifyAll(t, kv, ref)
	if s := kv.Stats(); s.Begin != until {
		t.Fatalf("Begin after recovery = %d, want %d", s.Begin, until)
	}
	// Compacting everything leaves only live records.
	if err := kv.Compact(kv.Stats().Tail); err != nil {
		t.Fatal(err)
	}
	kvVerifyAll(t, kv, ref)
	// (up to a record's worth of padding per page: 30% here)
	if s := kv.Stats(); s.Tail-s.Begin > s.LiveBytes*13/10+2*4096 {
		t.Fatalf("after a full compaction the log holds %d bytes for %d live", s.Tail-s.Begin, s.LiveBytes)
	}
}

func TestKVCorruptionIsReported(t *testing.T) {
	dev, meta := newKVTestDevice(512, 16<<10), newKVTestMeta()
	kv := kvOpenT(t, KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 8 * 4096})
	defer kv.Close()
	rng := rand.New(rand.NewSource(5))
	for i := range 200 {
		if err := kv.Upsert(fmt.Sprint("k", i), kvValue(rng, 300)); err != nil {
			t.Fatal(err)
		}
	}
	e := kv.index["k3"]
	if e.addr >= kv.Stats().Head {
		t.Fatal("k3 is still in memory")
	}
	dev.corrupt(e.addr + kvHeaderSize + 10)
	_, _, err := kv.Get("k3")
	if err == nil || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), dev.SegmentName(e.addr)) {
		t.Fatalf("Get of a corrupt record: %v", err)
	}
	kvMustGet(t, kv, "k4", kv.kvMustValue(t, "k4"), true)
}

// kvMustValue reads a value (for tests that only need it to be readable).
func (kv *KV) kvMustValue(t testing.TB, key string) []byte {
	v, ok, err := kv.Get(key)
	if err != nil || !ok {
		t.Fatalf("Get(%q): %v, %v", key, ok, err)
	}
	return v
}

// TestKVConcurrentReaders runs Get and Stats from other goroutines while
// one goroutine writes, checkpoints and compacts (run with -race).
func TestKVConcurrentReaders(t *testing.T) {
	dev, meta := newKVTestDevice(512, 16<<10), newKVTestMeta()
	kv := kvOpenT(t, KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 8 * 4096})
	defer kv.Close()
	// Values are a function of the key, so a reader knows what to expect.
	val := func(k string, gen int) []byte { return []byte(strings.Repeat(k, 1+gen%20)) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(r)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprint("k", rng.Intn(100), ";")
				v, ok, err := kv.Get(k)
				if err != nil {
					t.Error(err)
					return
				}
				if ok && (len(v)%len(k) != 0 || !bytes.Equal(v[:len(k)], []byte(k))) {
					t.Errorf("Get(%q) = %q", k, v)
					return
				}
				_ = kv.Stats()
				runtime.Gosched()
			}
		})
	}
	rng := rand.New(rand.NewSource(9))
	for i := range 3000 {
		k := fmt.Sprint("k", rng.Intn(100), ";")
		if err := kv.Upsert(k, val(k, i)); err != nil {
			t.Fatal(err)
		}
		switch i % 500 {
		case 100:
			if _, err := kv.Checkpoint(nil); err != nil {
				t.Fatal(err)
			}
		case 300:
			if err := kv.Compact(kv.Stats().Tail / 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// ---- benchmarks ----

// BenchmarkKV measures Upsert and Get with 100,000 keys of 200-byte values
// (about 22 MB of records) and a 4 MiB memory budget, so most Gets read
// from the device.
func BenchmarkKV(b *testing.B) {
	const keys, valueSize = 100000, 200
	open := func(b *testing.B) *KV {
		kv, err := OpenKV(KVOptions{Device: newKVTestDevice(512, 16<<20), Meta: newKVTestMeta(), MemoryBudget: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		return kv
	}
	keyOf := func(i int) string { return fmt.Sprintf("instance-%08d", i) }
	value := bytes.Repeat([]byte("v"), valueSize)
	b.Run("Upsert", func(b *testing.B) {
		kv := open(b)
		defer kv.Close()
		rng := rand.New(rand.NewSource(1))
		b.SetBytes(valueSize)
		b.ResetTimer()
		for range b.N {
			if err := kv.Upsert(keyOf(rng.Intn(keys)), value); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s := kv.Stats()
		b.ReportMetric(float64(s.InPlaceUpdates)/float64(b.N), "inplace/op")
		b.ReportMetric(float64(s.Evictions), "evictions")
	})
	b.Run("Get", func(b *testing.B) {
		kv := open(b)
		defer kv.Close()
		for i := range keys {
			if err := kv.Upsert(keyOf(i), value); err != nil {
				b.Fatal(err)
			}
		}
		rng := rand.New(rand.NewSource(2))
		before := kv.Stats().DeviceReads
		b.SetBytes(valueSize)
		b.ResetTimer()
		for range b.N {
			if _, ok, err := kv.Get(keyOf(rng.Intn(keys))); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(kv.Stats().DeviceReads-before)/float64(b.N), "devreads/op")
	})
}
