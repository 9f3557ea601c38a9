package faster

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func metaTestStores() map[string]func(t *testing.T) MetaStore {
	return map[string]func(t *testing.T) MetaStore{
		"memory": func(*testing.T) MetaStore { return NewMemoryMeta() },
		"dir": func(t *testing.T) MetaStore {
			m, err := NewDirMeta(filepath.Join(t.TempDir(), "meta"))
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
	}
}

func TestMetaStores(t *testing.T) {
	for name, open := range metaTestStores() {
		t.Run(name, func(t *testing.T) {
			m := open(t)
			if _, err := m.ReadFile("missing"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("read of a missing document: %v", err)
			}
			if err := m.Remove("missing"); err != nil {
				t.Fatalf("remove of a missing document: %v", err)
			}
			if err := m.WriteFile("a.json", []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := m.WriteFile("a.json", []byte("two")); err != nil {
				t.Fatal(err)
			}
			if got, err := m.ReadFile("a.json"); err != nil || string(got) != "two" {
				t.Fatalf("read = %q, %v", got, err)
			}
			if err := m.WriteFile("empty", nil); err != nil {
				t.Fatal(err)
			}
			if got, err := m.ReadFile("empty"); err != nil || len(got) != 0 {
				t.Fatalf("empty document = %q, %v", got, err)
			}
			for _, n := range []string{"checkpoints/0002/index", "checkpoints/0001/index", "checkpoints/0001/objects", "checkpointsX", "b"} {
				if err := m.WriteFile(n, []byte(n)); err != nil {
					t.Fatal(err)
				}
			}
			for prefix, want := range map[string][]string{
				"":                 {"a.json", "b", "checkpoints/0001/index", "checkpoints/0001/objects", "checkpoints/0002/index", "checkpointsX", "empty"},
				"checkpoints/":     {"checkpoints/0001/index", "checkpoints/0001/objects", "checkpoints/0002/index"},
				"checkpoints/0001": {"checkpoints/0001/index", "checkpoints/0001/objects"},
				"checkpoints":      {"checkpoints/0001/index", "checkpoints/0001/objects", "checkpoints/0002/index", "checkpointsX"},
				"zzz":              nil,
			} {
				got, err := m.List(prefix)
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("List(%q) = %q, %v; want %q", prefix, got, err, want)
				}
			}
			if err := m.Remove("checkpoints/0001/index"); err != nil {
				t.Fatal(err)
			}
			if _, err := m.ReadFile("checkpoints/0001/index"); !errors.Is(err, ErrNotExist) {
				t.Fatalf("read after remove: %v", err)
			}
			for _, bad := range []string{"", "/abs", "a//b", "../x", "a/./b", ".hidden", "a/.tmp", `a\b`} {
				if err := m.WriteFile(bad, nil); err == nil {
					t.Errorf("WriteFile(%q) accepted", bad)
				}
			}
			// Returned data is not aliased.
			data := []byte("xyz")
			if err := m.WriteFile("alias", data); err != nil {
				t.Fatal(err)
			}
			data[0] = 'Q'
			got, _ := m.ReadFile("alias")
			got[1] = 'Q'
			if got, _ := m.ReadFile("alias"); string(got) != "xyz" {
				t.Errorf("document aliased caller memory: %q", got)
			}
		})
	}
}

// TestMetaConcurrentReplace checks that readers always see one complete
// version while writers replace a document.
func TestMetaConcurrentReplace(t *testing.T) {
	for name, open := range metaTestStores() {
		t.Run(name, func(t *testing.T) {
			m := open(t)
			version := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("v%04d;", i)), 500) }
			if err := m.WriteFile("doc", version(0)); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						got, err := m.ReadFile("doc")
						if err != nil {
							t.Error(err)
							return
						}
						if len(got) != 3000 || !bytes.Equal(got, bytes.Repeat(got[:6], 500)) {
							t.Errorf("read a torn document of %d bytes", len(got))
							return
						}
					}
				})
			}
			for i := 1; i <= 50; i++ {
				if err := m.WriteFile("doc", version(i)); err != nil {
					t.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
			if got, _ := m.ReadFile("doc"); !bytes.Equal(got, version(50)) {
				t.Error("last version not kept")
			}
		})
	}
}

func TestDirMetaPersistence(t *testing.T) {
	dir := t.TempDir()
	m, err := NewDirMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("commit-log.meta", []byte("tail=5")); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile("p01/last-checkpoint.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// A temporary file left by a crash is not listed.
	if err := os.WriteFile(filepath.Join(dir, ".commit-log.meta.tmp-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	m2, err := NewDirMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m2.ReadFile("commit-log.meta"); err != nil || string(got) != "tail=5" {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
	if got, err := m2.List(""); err != nil || !slices.Equal(got, []string{"commit-log.meta", "p01/last-checkpoint.json"}) {
		t.Fatalf("List = %q, %v", got, err)
	}
	_, err = m2.ReadFile("nope")
	if !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("missing document error %v", err)
	}
	// No temporary files remain from WriteFile.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") && e.Name() != ".commit-log.meta.tmp-123" {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
