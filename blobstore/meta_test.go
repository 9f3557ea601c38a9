package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/faster"
)

// TestBlobMetaConformance runs the checks of the faster package's
// MetaStore test on block blobs, without and with a lease document.
func TestBlobMetaConformance(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	for _, leased := range []bool{false, true} {
		t.Run(fmt.Sprint("leased=", leased), func(t *testing.T) {
			prefix := fmt.Sprintf("hub/l%v/", leased)
			var opts blobstore.MetaOptions
			if leased {
				l, err := blobstore.AcquireLease(context.Background(), c, prefix+blobstore.LeaseBlob, blobstore.LeaseOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
				opts = blobstore.MetaOptions{Lease: l, LeaseDocument: "commit-log.meta"}
			}
			m, err := blobstore.NewBlobMeta(c, prefix, opts)
			if err != nil {
				t.Fatal(err)
			}
			// Page blobs sharing the prefix are not documents.
			d, _ := blobstore.NewPageBlobDevice(c, prefix+"store/store", blobstore.DeviceOptions{SegmentSize: 4096, Lease: opts.Lease})
			mustWrite(t, d, 0, make([]byte, 512))
			metaConformance(t, m)
			if leased {
				lease := opts.Lease
				// The lease document lives in the lease blob.
				if err := m.WriteFile("commit-log.meta", []byte(`{"tail":5}`)); err != nil {
					t.Fatal(err)
				}
				if got, err := m.ReadFile("commit-log.meta"); err != nil || string(got) != `{"tail":5}` {
					t.Fatalf("lease document %q, %v", got, err)
				}
				if got := blobNames(t, c, prefix+"commit-log.meta"); len(got) != 0 {
					t.Fatalf("lease document stored as a blob of its own: %q", got)
				}
				if names, err := m.List("commit-log"); err != nil || !slices.Equal(names, []string{"commit-log.meta"}) {
					t.Fatalf("List(commit-log) = %q, %v", names, err)
				}
				if err := m.WriteFile(blobstore.LeaseBlob, nil); err == nil {
					t.Fatal("a document named like the lease blob was accepted")
				}
				// It still is leased by us after the writes.
				if err := lease.Check(); err != nil {
					t.Fatal(err)
				}
				if err := m.Remove("commit-log.meta"); err != nil {
					t.Fatal(err)
				}
				if _, err := m.ReadFile("commit-log.meta"); !errors.Is(err, faster.ErrNotExist) {
					t.Fatalf("lease document after Remove: %v", err)
				}
				if names, _ := m.List(""); slices.Contains(names, "commit-log.meta") || slices.Contains(names, blobstore.LeaseBlob) {
					t.Fatalf("List after Remove: %q", names)
				}
			}
		})
	}
}

func metaConformance(t *testing.T, m faster.MetaStore) {
	if _, err := m.ReadFile("missing"); !errors.Is(err, faster.ErrNotExist) {
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
	if got, err := m.ReadFile("empty"); err != nil || got == nil || len(got) != 0 {
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
	if _, err := m.ReadFile("checkpoints/0001/index"); !errors.Is(err, faster.ErrNotExist) {
		t.Fatalf("read after remove: %v", err)
	}
	// Written again after a remove (If-None-Match: *).
	if err := m.WriteFile("checkpoints/0001/index", []byte("again")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "/abs", "a//b", "../x", "a/./b", ".hidden", "a/.tmp", `a\b`} {
		if err := m.WriteFile(bad, nil); err == nil {
			t.Errorf("WriteFile(%q) accepted", bad)
		}
	}
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
	// Readers see one complete version while a writer replaces it.
	version := func(i int) []byte { return bytes.Repeat(fmt.Appendf(nil, "v%04d;", i), 50000) }
	if err := m.WriteFile("doc", version(0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
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
				if len(got) != 300000 || !bytes.Equal(got, bytes.Repeat(got[:6], 50000)) {
					t.Errorf("read a torn document of %d bytes", len(got))
					return
				}
			}
		})
	}
	for i := 1; i <= 10; i++ {
		if err := m.WriteFile("doc", version(i)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if got, _ := m.ReadFile("doc"); !bytes.Equal(got, version(10)) {
		t.Error("last version not kept")
	}
}

// TestBlobMetaConflicts: two stores on the same documents. A store
// replaces a document only if it is unchanged since it last saw it.
func TestBlobMetaConflicts(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	m1, _ := blobstore.NewBlobMeta(c, "x", blobstore.MetaOptions{})
	m2, _ := blobstore.NewBlobMeta(c, "x/", blobstore.MetaOptions{})
	if err := m1.WriteFile("last-checkpoint.json", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.ReadFile("last-checkpoint.json"); err != nil || string(got) != "1" {
		t.Fatalf("m2 reads %q, %v", got, err)
	}
	if err := m2.WriteFile("last-checkpoint.json", []byte("2")); err != nil {
		t.Fatal(err)
	}
	// m1 last saw version 1: its write would lose m2's update.
	err := m1.WriteFile("last-checkpoint.json", []byte("3"))
	if !errors.Is(err, blobstore.ErrConflict) || errors.Is(err, blobstore.ErrLeaseLost) || !strings.Contains(err.Error(), "last-checkpoint.json") {
		t.Fatalf("lost update not detected: %v", err)
	}
	if got, _ := m2.ReadFile("last-checkpoint.json"); string(got) != "2" {
		t.Fatalf("content %q", got)
	}
	// After reading again, m1 may write.
	if _, err := m1.ReadFile("last-checkpoint.json"); err != nil {
		t.Fatal(err)
	}
	if err := m1.WriteFile("last-checkpoint.json", []byte("4")); err != nil {
		t.Fatal(err)
	}
	// A remove of a changed document is refused too.
	if err := m2.Remove("last-checkpoint.json"); !errors.Is(err, blobstore.ErrConflict) {
		t.Fatalf("remove of a changed document: %v", err)
	}
	// A document one store found missing and another created meanwhile.
	if _, err := m1.ReadFile("new.json"); !errors.Is(err, faster.ErrNotExist) {
		t.Fatal(err)
	}
	if err := m2.WriteFile("new.json", []byte("m2")); err != nil {
		t.Fatal(err)
	}
	if err := m1.WriteFile("new.json", []byte("m1")); !errors.Is(err, blobstore.ErrConflict) {
		t.Fatalf("create over another's: %v", err)
	}

	// With a lease, the first read fences the document: a store that saw
	// an older version can no longer replace it (as a previous owner
	// that has not noticed the takeover).
	l, err := blobstore.AcquireLease(context.Background(), c, "x/commit-lease", blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	m3, _ := blobstore.NewBlobMeta(c, "x/", blobstore.MetaOptions{Lease: l, LeaseDocument: "commit-log.meta"})
	if got, err := m3.ReadFile("last-checkpoint.json"); err != nil || string(got) != "4" {
		t.Fatalf("m3 reads %q, %v", got, err)
	}
	if err := m1.WriteFile("last-checkpoint.json", []byte("stale")); !errors.Is(err, blobstore.ErrConflict) {
		t.Fatalf("write of a document fenced by a leased read: %v", err)
	}
	if got, err := m3.ReadFile("last-checkpoint.json"); err != nil || string(got) != "4" {
		t.Fatalf("m3 reads %q, %v", got, err)
	}
	if err := m3.WriteFile("last-checkpoint.json", []byte("5")); err != nil {
		t.Fatal(err)
	}
	// A conflict under a lease also loses the lease.
	if _, err := m1.ReadFile("last-checkpoint.json"); err != nil {
		t.Fatal(err)
	}
	if err := m1.WriteFile("last-checkpoint.json", []byte("6")); err != nil {
		t.Fatal(err)
	}
	err = m3.WriteFile("last-checkpoint.json", []byte("7"))
	if !errors.Is(err, blobstore.ErrConflict) || !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("leased conflict: %v", err)
	}
	select {
	case <-l.Lost():
	default:
		t.Fatal("the conflict did not lose the lease")
	}
	if err := m3.WriteFile("other", nil); !errors.Is(err, blobstore.ErrLeaseLost) {
		t.Fatalf("write after the lease was lost: %v", err)
	}
	if _, err := m3.ReadFile("last-checkpoint.json"); err != nil {
		t.Fatalf("read after the loss: %v", err)
	}
	if _, err := blobstore.NewBlobMeta(c, "x/", blobstore.MetaOptions{LeaseDocument: "commit-log.meta"}); err == nil {
		t.Fatal("LeaseDocument without a Lease accepted")
	}
}
