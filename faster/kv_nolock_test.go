package faster

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// failAfter is how long a test waits for something that must happen
// without further help before it reports a hang. It is a failure
// detector, not synchronization: the passing path never waits for it.
const failAfter = 20 * time.Second

// TestKVGetDuringStuckCheckpoint holds every device write and starts a
// checkpoint: while the checkpoint is stuck in a page write, a Get that
// reads its record back from the device, an Upsert and Stats complete, and
// the checkpoint completes once the writes are released.
func TestKVGetDuringStuckCheckpoint(t *testing.T) {
	dev := NewFaultDevice(NewMemoryDevice("hold", 512, 64<<10))
	meta := NewMemoryMeta()
	kv := kvOpenT(t, KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 4 * 4096})
	defer kv.Close()
	val := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 300) }
	for i := range 200 {
		if err := kv.Upsert(fmt.Sprint("k", i), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	// k0 was evicted long ago: a Get reads it from the device.
	if s := kv.Stats(); s.Evictions == 0 || s.Head <= 0 {
		t.Fatalf("no eviction with 200 records in 4 pages: %+v", s)
	}
	hold := dev.HoldWrites()
	defer hold.Release()
	ckpt := make(chan error, 1)
	go func() {
		_, err := kv.Checkpoint([]byte("m"))
		ckpt <- err
	}()
	select {
	case <-hold.Blocked():
	case err := <-ckpt:
		t.Fatalf("checkpoint finished (%v) without writing to the device", err)
	case <-time.After(failAfter):
		t.Fatal("the checkpoint issued no device write")
	}
	reads := kv.Stats().DeviceReads
	got := make(chan error, 1)
	go func() {
		v, ok, err := kv.Get("k0")
		if err == nil && (!ok || !bytes.Equal(v, val(0))) {
			err = fmt.Errorf("Get(k0) = %q, %v", v, ok)
		}
		if err == nil {
			err = kv.Upsert("k1", []byte("new"))
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("Get blocked while a checkpoint was stuck in a device write")
	}
	if s := kv.Stats(); s.DeviceReads != reads+1 {
		t.Fatalf("Get read %d records from the device, want 1", s.DeviceReads-reads)
	}
	select {
	case err := <-ckpt:
		t.Fatalf("checkpoint finished (%v) while its writes were held", err)
	default:
	}
	hold.Release()
	select {
	case err := <-ckpt:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("checkpoint did not finish after the writes were released")
	}
	// The checkpoint holds k1 as it was when the checkpoint froze the log:
	// the Upsert made during it belongs to the next one.
	kvAbandon(kv)
	kv2 := kvOpenT(t, KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 4 * 4096})
	defer kv2.Close()
	kvMustGet(t, kv2, "k1", val(1), true)
	kvMustGet(t, kv2, "k199", val(199), true)
}

// TestKVMaintenanceConcurrentWithWrites runs checkpoints and compactions
// on their own goroutine while another upserts, deletes and reads, as a
// partition does; then a restart finds the state of the last checkpoint.
func TestKVMaintenanceConcurrentWithWrites(t *testing.T) {
	dev, meta := newKVTestDevice(512, 16<<10), newKVTestMeta()
	opts := KVOptions{Device: dev, Meta: meta, PageSize: 4096, MemoryBudget: 6 * 4096}
	kv := kvOpenT(t, opts)
	val := func(k string, gen int) []byte { return bytes.Repeat([]byte(k), 1+gen%17) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var maintErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var err error
			if i%2 == 0 {
				_, err = kv.Checkpoint(nil)
			} else {
				s := kv.Stats()
				err = kv.Compact(s.Begin + (s.Tail-s.Begin)/2)
			}
			if err != nil {
				maintErr = err
				return
			}
		}
	})
	rng := rand.New(rand.NewSource(3))
	want := map[string][]byte{}
	// At least 4,000 operations, and more until maintenance has both
	// compacted and checkpointed meanwhile (on a busy machine its
	// goroutine may get little time).
	maintained := func() bool { s := kv.Stats(); return s.Compactions > 0 && s.Checkpoints >= 2 }
	for i := 0; i < 4000 || (i < 1000000 && !maintained()); i++ {
		k := fmt.Sprint("k", rng.Intn(150), ";")
		switch rng.Intn(6) {
		case 0:
			if err := kv.Delete(k); err != nil {
				t.Fatal(err)
			}
			delete(want, k)
		case 1, 2:
			v, ok, err := kv.Get(k)
			if err != nil {
				t.Fatal(err)
			}
			if w, wok := want[k]; ok != wok || !bytes.Equal(v, w) {
				t.Fatalf("op %d: Get(%q) = %q, %v; want %q, %v", i, k, v, ok, w, wok)
			}
		default:
			v := val(k, i)
			if err := kv.Upsert(k, v); err != nil {
				t.Fatal(err)
			}
			want[k] = v
		}
	}
	close(stop)
	wg.Wait()
	if maintErr != nil {
		t.Fatal(maintErr)
	}
	if _, err := kv.Checkpoint(nil); err != nil {
		t.Fatal(err)
	}
	if s := kv.Stats(); s.Compactions == 0 || s.Checkpoints < 2 {
		t.Fatalf("stats %+v: expected compactions and checkpoints", s)
	}
	kvAbandon(kv)
	kv2 := kvOpenT(t, opts)
	defer kv2.Close()
	if kv2.Len() != len(want) {
		t.Fatalf("after restart %d keys, want %d", kv2.Len(), len(want))
	}
	for k, w := range want {
		kvMustGet(t, kv2, k, w, true)
	}
}

// TestKVHasDuringEvictionWait: an Upsert that must evict a page whose
// write is stuck in the device holds the store's lock while it waits; Has,
// Len and Keys (what a partition's loop asks) still answer.
func TestKVHasDuringEvictionWait(t *testing.T) {
	dev := NewFaultDevice(NewMemoryDevice("hold", 512, 64<<10))
	kv := kvOpenT(t, KVOptions{Device: dev, Meta: NewMemoryMeta(), PageSize: 4096, MemoryBudget: 4 * 4096})
	defer kv.Close()
	if err := kv.Upsert("first", []byte("1")); err != nil {
		t.Fatal(err)
	}
	hold := dev.HoldWrites()
	defer hold.Release()
	waiting := make(chan struct{})
	var once sync.Once
	kv.testEvictWait = func() { once.Do(func() { close(waiting) }) }
	upserts := make(chan error, 1)
	go func() {
		for i := range 200 {
			if err := kv.Upsert(fmt.Sprint("k", i), bytes.Repeat([]byte{'v'}, 300)); err != nil {
				upserts <- err
				return
			}
		}
		upserts <- nil
	}()
	select {
	case <-waiting:
	case err := <-upserts:
		t.Fatalf("200 upserts in 4 pages of memory finished (%v) without waiting to evict", err)
	case <-time.After(failAfter):
		t.Fatal("no eviction waited for a held write")
	}
	answered := make(chan bool, 1)
	go func() { answered <- kv.Has("first") && kv.Len() >= 1 && len(kv.Keys()) >= 1 }()
	select {
	case ok := <-answered:
		if !ok {
			t.Fatal(`Has("first") = false`)
		}
	case <-time.After(failAfter):
		t.Fatal("Has blocked behind an eviction waiting for the device")
	}
	select {
	case err := <-upserts:
		t.Fatalf("upserts finished (%v) while the write they wait for was held", err)
	default:
	}
	hold.Release()
	if err := <-upserts; err != nil {
		t.Fatal(err)
	}
}
