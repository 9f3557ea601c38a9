package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
)

func TestPayloadStore(t *testing.T) {
	c := blobtest.Container(t, blobtest.Account(t))
	ps := blobstore.NewPayloadStore(c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	if err := ps.Put(ctx, "hub-guid/p00/one", data); err != nil {
		t.Fatal(err)
	}
	got, err := ps.Get(ctx, "hub-guid/p00/one")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	// It lives under payloads/ in the container.
	if _, err := c.Client().NewBlobClient(blobstore.PayloadPrefix+"hub-guid/p00/one").GetProperties(ctx, nil); err != nil {
		t.Fatalf("the blob is not under %s: %v", blobstore.PayloadPrefix, err)
	}
	if err := ps.Delete(ctx, "hub-guid/p00/one"); err != nil {
		t.Fatal(err)
	}
	if err := ps.Delete(ctx, "hub-guid/p00/one"); err != nil {
		t.Fatalf("deleting a missing payload: %v", err)
	}
	if _, err := ps.Get(ctx, "hub-guid/p00/one"); !errors.Is(err, blobstore.ErrPayloadNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := ps.Put(ctx, "../escape", data[:1]); err == nil {
		t.Fatal("a name with .. was accepted")
	}
}

func TestPayloadStoreSweep(t *testing.T) {
	c := blobtest.Container(t, blobtest.Account(t))
	ps := blobstore.NewPayloadStore(c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"hub-a/p00/1", "hub-a/c003/2", "hub-b/p00/3"} {
		if err := ps.Put(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is older than a cutoff in the past.
	if n, err := ps.Sweep(ctx, "hub-a/", time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sweep with an old cutoff: %d %v", n, err)
	}
	// A cutoff in the future takes hub-a's payloads, not hub-b's.
	if n, err := ps.Sweep(ctx, "hub-a/", time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if _, err := ps.Get(ctx, "hub-a/p00/1"); !errors.Is(err, blobstore.ErrPayloadNotFound) {
		t.Fatalf("swept payload: %v", err)
	}
	if _, err := ps.Get(ctx, "hub-b/p00/3"); err != nil {
		t.Fatalf("another hub's payload: %v", err)
	}
}
