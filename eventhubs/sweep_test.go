package eventhubs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
)

// Both stores the hosts use can be swept.
var (
	_ Sweeper = DirBlobStore{}
	_ Sweeper = (*blobstore.PayloadStore)(nil)
)

// TestSweep: the transport that reads partition 0 deletes the blobs of
// its task hub written before the hubs' retention (and a margin), and
// keeps fresh ones and other task hubs'; a transport that does not read
// partition 0 sweeps nothing.
func TestSweep(t *testing.T) {
	tg := emulatortest.Get(t)
	prefix := newHubs(t, tg, 2)
	dir := t.TempDir()
	blobs := DirBlobStore{Dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now()
	put := func(name string, age time.Duration) {
		t.Helper()
		if err := blobs.Put(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
		at := now.Add(-age)
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(name)), at, at); err != nil {
			t.Fatal(err)
		}
	}
	// Retention 1 h + the 1 h margin: older than 2 h is stale.
	stale, fresh, other := hubID+"/p00/stale", hubID+"/c017/fresh", "another-hub/p00/old"
	put(stale, 3*time.Hour)
	put(fresh, 90*time.Minute)
	put(other, 3*time.Hour)
	mod := func(o *Options) { o.Blobs, o.PayloadRetention, o.SweepInterval = blobs, time.Hour, 20*time.Millisecond }

	// A host that reads only partition 1 does not sweep.
	b := openTransport(t, tg.ConnectionString, prefix, hubID, 2, mod)
	if err := b.SendToPartition(1, ackPacket(0, 1)); err != nil {
		t.Fatal(err)
	}
	receiveN(t, b, 1, 0, 1)
	time.Sleep(200 * time.Millisecond) // ten sweep periods
	if st := b.Stats(); st.Sweeps != 0 {
		t.Fatalf("a transport without partition 0 swept: %+v", st)
	}
	if _, err := blobs.Get(ctx, stale); err != nil {
		t.Fatalf("the stale blob went without an owner of partition 0: %v", err)
	}

	// The owner of partition 0 sweeps.
	a := openTransport(t, tg.ConnectionString, prefix, hubID, 2, mod)
	if err := a.SendToPartition(0, ackPacket(0, 1)); err != nil {
		t.Fatal(err)
	}
	receiveN(t, a, 0, 0, 1)
	waitFor(t, "the sweep", func() bool { return a.Stats().BlobsSwept > 0 })
	if _, err := blobs.Get(ctx, stale); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("stale blob after the sweep: %v", err)
	}
	for _, keep := range []string{fresh, other} {
		if _, err := blobs.Get(ctx, keep); err != nil {
			t.Fatalf("blob %s after the sweep: %v", keep, err)
		}
	}
	if st := a.Stats(); st.BlobsSwept != 1 || st.Sweeps < 1 {
		t.Fatalf("stats after the sweep: %+v", st)
	}
	if st := b.Stats(); st.Sweeps != 0 {
		t.Fatalf("the transport without partition 0 swept: %+v", st)
	}

	// Released, partition 0 is no longer swept by a.
	a.ReleasePartition(0)
	n := a.Stats().Sweeps
	time.Sleep(200 * time.Millisecond)      // ten sweep periods
	if got := a.Stats().Sweeps; got > n+1 { // +1: one under way at the release
		t.Fatalf("%d sweeps after partition 0 was released", got-n)
	}
}

// TestSweepCutoff: the cutoff is the retention plus the margin, and the
// defaults apply.
func TestSweepCutoff(t *testing.T) {
	tr := &Transport{o: Options{PayloadRetention: 24 * time.Hour, TaskHubID: "g"}}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if got, want := tr.sweepCutoff(now), now.Add(-25*time.Hour); !got.Equal(want) {
		t.Fatalf("cutoff %v, want %v", got, want)
	}
	if tr.sweepPrefix() != "g/" {
		t.Fatalf("prefix %q", tr.sweepPrefix())
	}
}
