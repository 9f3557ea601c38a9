package faster

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestFileDevice(t *testing.T) {
	d, err := NewFileDevice(t.TempDir(), "log", 512, 4096)
	if err != nil {
		t.Fatal(err)
	}
	devTestConformance(t, d)
}

func devTestSegmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func TestFileDevicePersistence(t *testing.T) {
	dir := t.TempDir()
	d, err := NewFileDevice(dir, "store", 512, 4096)
	if err != nil {
		t.Fatal(err)
	}
	p := devTestPattern(7, 1536)
	devTestWrite(t, d, 3*4096+1024, p)
	q := devTestPattern(8, 4096)
	devTestWrite(t, d, 12*4096, q)
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := devTestSegmentFiles(t, dir), []string{"store.000003", "store.000012"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if got := d.SegmentName(12*4096 + 100); got != filepath.Join(dir, "store.000012") {
		t.Errorf("SegmentName = %q", got)
	}

	d, err = NewFileDevice(dir, "store", 512, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := devTestRead(t, d, 3*4096, 4096)
	if !bytes.Equal(got[1024:2560], p) || !bytes.Equal(got[:1024], make([]byte, 1024)) || !bytes.Equal(got[2560:], make([]byte, 4096-2560)) {
		t.Fatal("segment 3 differs after reopen")
	}
	if got := devTestRead(t, d, 12*4096, 4096); !bytes.Equal(got, q) {
		t.Fatal("segment 12 differs after reopen")
	}

	// Removal deletes files and leaves other prefixes alone.
	if err := os.WriteFile(filepath.Join(dir, "other.000001"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveSegmentsBelow(12 * 4096); err != nil {
		t.Fatal(err)
	}
	if got, want := devTestSegmentFiles(t, dir), []string{"other.000001", "store.000012"}; !slices.Equal(got, want) {
		t.Fatalf("files after removal %v, want %v", got, want)
	}
	if err := d.RemoveSegmentsBelow(13 * 4096); err != nil {
		t.Fatal(err)
	}
	if got, want := devTestSegmentFiles(t, dir), []string{"other.000001"}; !slices.Equal(got, want) {
		t.Fatalf("files after removal %v, want %v", got, want)
	}
}

// TestFileDeviceFileCache writes and reads many more segments than the
// cache keeps open, concurrently, with flushes in between.
func TestFileDeviceFileCache(t *testing.T) {
	dir := t.TempDir()
	d, err := NewFileDevice(dir, "seg", 512, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const segs = 5 * devFileMaxOpen
	var wg sync.WaitGroup
	for s := range segs {
		wg.Go(func() {
			p := devTestPattern(uint64(s), 1024)
			if err := devWait(d.WriteAsync, int64(s)*4096+2048, p); err != nil {
				t.Error(err)
			}
			if s%7 == 0 {
				if err := d.Flush(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := d.openFiles(); n > devFileMaxOpen {
		t.Errorf("%d files open, bound %d", n, devFileMaxOpen)
	}
	for s := range segs {
		wg.Go(func() {
			q := make([]byte, 1024)
			if err := devWait(d.ReadAsync, int64(s)*4096+2048, q); err != nil {
				t.Error(err)
			} else if !bytes.Equal(q, devTestPattern(uint64(s), 1024)) {
				t.Errorf("segment %d differs", s)
			}
		})
	}
	wg.Wait()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(devTestSegmentFiles(t, dir)); n != segs {
		t.Fatalf("%d files, want %d", n, segs)
	}
}

func TestFileDeviceBadArguments(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewFileDevice(dir, "", 512, 4096); err == nil {
		t.Error("empty prefix accepted")
	}
	if _, err := NewFileDevice(dir, "a/b", 512, 4096); err == nil {
		t.Error("prefix with a slash accepted")
	}
	if _, err := NewFileDevice(dir, "p", 512, 1000); err == nil {
		t.Error("segment size not a multiple of the sector accepted")
	}
}
