package faster

import (
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"testing"
)

// The KV on the package's own devices and metadata stores.

func TestKVRandomizedMemoryDevice(t *testing.T) {
	ops := 8000
	if testing.Short() {
		ops = 2000
	}
	dev := NewMemoryDevice("kvmem", 512, 16<<10)
	total := kvRandomized(t, 11, ops, dev, NewMemoryMeta(), nil)
	if total.Evictions == 0 || total.DeviceReads == 0 || total.RemovedBelow == 0 {
		t.Fatalf("totals %+v", total)
	}
}

func TestKVRandomizedFileDevice(t *testing.T) {
	ops := 4000
	if testing.Short() {
		ops = 1000
	}
	dir := t.TempDir()
	dev, err := NewFileDevice(dir, "kvlog", 512, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	meta, err := NewDirMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	total := kvRandomized(t, 12, ops, dev, meta, nil)
	if total.Evictions == 0 || total.DeviceReads == 0 || total.RemovedBelow == 0 {
		t.Fatalf("totals %+v", total)
	}
}

func TestKVRandomizedFaultDeviceCrashes(t *testing.T) {
	ops := 8000
	if testing.Short() {
		ops = 2000
	}
	fd := NewFaultDevice(NewMemoryDevice("kvfault", 512, 16<<10))
	crash := func() {
		if err := fd.Crash(); err != nil {
			t.Fatal(err)
		}
		fd.Restart()
	}
	total := kvRandomized(t, 13, ops, fd, NewMemoryMeta(), crash)
	if total.Evictions == 0 || total.DeviceReads == 0 {
		t.Fatalf("totals %+v", total)
	}
}

// TestKVCheckpointDeviceFaults fails, in turn, each device write of a
// checkpoint (and its flush, and tears a write), crashes, and checks that
// the store reopens at the previous checkpoint.
func TestKVCheckpointDeviceFaults(t *testing.T) {
	type fault struct {
		name string
		set  func(fd *FaultDevice)
	}
	faults := []fault{{"flush fails", func(fd *FaultDevice) { fd.FailAt(FaultFlush, 1, nil) }}}
	for n := 1; n <= 12; n++ {
		faults = append(faults,
			fault{fmt.Sprint("write ", n, " fails"), func(fd *FaultDevice) { fd.FailAt(FaultWrite, n, nil) }},
			fault{fmt.Sprint("write ", n, " torn"), func(fd *FaultDevice) { fd.TearAt(n, 1, errors.New("torn")) }})
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			fd := NewFaultDevice(NewMemoryDevice("kvfault", 512, 16<<10))
			meta := NewMemoryMeta()
			opts := KVOptions{Device: fd, Meta: meta, PageSize: 4096, MemoryBudget: 16 * 4096, MutableFraction: 0.5}
			kv := kvOpenT(t, opts)
			rng := rand.New(rand.NewSource(7))
			ref := map[string][]byte{}
			for i := range 150 {
				k := fmt.Sprint("k", i%60)
				ref[k] = kvValue(rng, rng.Intn(1500))
				if err := kv.Upsert(k, ref[k]); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := kv.Checkpoint([]byte("one")); err != nil {
				t.Fatal(err)
			}
			ref1 := maps.Clone(ref)
			for i := range 150 {
				k := fmt.Sprint("k", i%80)
				if err := kv.Upsert(k, kvValue(rng, rng.Intn(1500))); err != nil {
					t.Fatal(err)
				}
			}
			f.set(fd)
			_, err := kv.Checkpoint([]byte("two"))
			if err == nil {
				t.Skip("the checkpoint needed fewer writes")
			}
			kvAbandon(kv)
			if err := fd.Crash(); err != nil {
				t.Fatal(err)
			}
			fd.Restart()
			kv = kvOpenT(t, opts)
			defer kv.Close()
			if _, m, _ := kv.LatestCheckpoint(); string(m) != "one" {
				t.Fatalf("recovered checkpoint meta %q, want one", m)
			}
			kvVerifyAll(t, kv, ref1)
		})
	}
}
