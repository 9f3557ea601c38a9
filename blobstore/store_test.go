package blobstore_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/faster"
)

const testHubGUID = "6f9619ff-8b86-d011-b42d-00cf4fc964ff"

func openPartition(t testing.TB, c *blobstore.Container, index int, segSize int64) *blobstore.Partition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := blobstore.OpenPartition(ctx, c, testHubGUID, index, blobstore.PartitionOptions{SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func openLog(t testing.TB, p *blobstore.Partition) *faster.Log {
	t.Helper()
	l, err := faster.OpenLog(faster.LogOptions{Name: fmt.Sprintf("partition %d commit log", p.Index), Device: p.LogDevice, Meta: p.Meta, MetaName: blobstore.CommitLogMetaDocument})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type logRec struct {
	pos     int64
	payload []byte
}

func scanAll(t testing.TB, l *faster.Log, from int64) []logRec {
	t.Helper()
	var out []logRec
	if err := l.Scan(from, func(pos int64, p []byte) error {
		out = append(out, logRec{pos, bytes.Clone(p)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameRecs(t testing.TB, what string, got, want []logRec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records; want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].pos != want[i].pos || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("%s: record %d at %d (%d bytes) differs from the one appended at %d (%d bytes)", what, i, got[i].pos, len(got[i].payload), want[i].pos, len(want[i].payload))
		}
	}
}

// TestCommitLogOnBlobs runs a faster commit log on a partition's page
// blob device and lease-blob metadata: concurrent appends and group
// commits, records spanning segments, reopen (same and new owner), scan,
// truncation removing segment blobs, and the blob layout.
func TestCommitLogOnBlobs(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	p := openPartition(t, c, 3, 64<<10)
	l := openLog(t, p)
	rng := rand.New(rand.NewSource(1))
	var want []logRec
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		r := rand.New(rand.NewSource(int64(g)))
		wg.Go(func() {
			for i := range 40 {
				n := r.Intn(3000)
				if i%13 == 0 {
					n = 70 << 10 // longer than a segment
				}
				payload := pattern(uint64(g*1000+i), n)
				mu.Lock()
				pos := l.Append(payload)
				want = append(want, logRec{pos, payload})
				mu.Unlock()
				if i%5 == 4 {
					if err := l.Commit(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(x, y logRec) int { return int(x.pos - y.pos) })
	sameRecs(t, "scan", scanAll(t, l, l.Begin()), want)
	if l.CommittedTail() < 4*64<<10 {
		t.Fatalf("committed tail %d: the test wants several segments", l.CommittedTail())
	}

	// Reopen on the same devices (same owner).
	l.Close()
	l = openLog(t, p)
	sameRecs(t, "after reopen", scanAll(t, l, l.Begin()), want)

	// Truncate: the segment blobs wholly below go.
	cut := want[len(want)/2]
	if err := l.Truncate(cut.pos); err != nil {
		t.Fatal(err)
	}
	segs := blobNames(t, c, testHubGUID+"/p03/commit-log/commit-log.")
	if first := p.LogDevice.SegmentName(cut.pos); segs[0] != first {
		t.Fatalf("after truncating below %d (in %s): segment blobs %q", cut.pos, first, segs)
	}
	want = want[len(want)/2:]
	sameRecs(t, "after truncate", scanAll(t, l, l.Begin()), want)
	l.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// A new owner (new lease, new devices) recovers the same log and
	// continues it.
	p = openPartition(t, c, 3, 64<<10)
	defer p.Close()
	l = openLog(t, p)
	sameRecs(t, "new owner", scanAll(t, l, l.Begin()), want)
	for i := range 10 {
		payload := pattern(uint64(9000+i), rng.Intn(5000))
		want = append(want, logRec{l.Append(payload), payload})
	}
	if err := l.Commit(); err != nil {
		t.Fatal(err)
	}
	sameRecs(t, "new owner's appends", scanAll(t, l, l.Begin()), want)
	l.Close()

	// Layout: the lease blob holds the committed tail; segments under
	// commit-log/.
	names := blobNames(t, c, "")
	if !slices.Contains(names, testHubGUID+"/p03/commit-lease") {
		t.Fatalf("no lease blob in %q", names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, testHubGUID+"/p03/commit-log/commit-log.") && n != testHubGUID+"/p03/commit-lease" {
			t.Errorf("unexpected blob %s", n)
		}
	}
	m, _ := blobstore.NewBlobMeta(c, testHubGUID+"/p03/", blobstore.MetaOptions{Lease: p.Lease, LeaseDocument: blobstore.CommitLogMetaDocument})
	if doc, err := m.ReadFile(blobstore.CommitLogMetaDocument); err != nil || !strings.Contains(string(doc), fmt.Sprintf(`"tail":%d`, l.CommittedTail())) {
		t.Fatalf("commit-log.meta = %s, %v", doc, err)
	}
}

// TestKVOnBlobs runs a faster KV (small randomized test: upserts,
// deletes, reads, checkpoints, reopen, compaction, eviction to the
// device) on a partition's page blob device and metadata store.
func TestKVOnBlobs(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	p := openPartition(t, c, 0, 32<<10)
	defer p.Close()
	ops := 2500
	if testing.Short() {
		ops = 800
	}
	opts := faster.KVOptions{Name: "partition 0 store", Device: p.KVDevice, Meta: p.Meta, MetaPrefix: "store/",
		PageSize: 4096, MemoryBudget: 8 * 4096, MutableFraction: 0.5}
	open := func() *faster.KV {
		kv, err := faster.OpenKV(opts)
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	kv := open()
	rng := rand.New(rand.NewSource(42))
	keys := make([]string, 150)
	for i := range keys {
		keys[i] = fmt.Sprintf("instance-%d-%s", i, strings.Repeat("x", i%23))
	}
	value := func() []byte {
		n := rng.Intn(2000)
		switch rng.Intn(20) {
		case 0:
			n = 0
		case 1:
			n = 4096 + rng.Intn(9000) // larger than a page
		}
		v := make([]byte, n)
		rng.Read(v)
		return v
	}
	verify := func(what string, ref map[string][]byte) {
		t.Helper()
		for _, k := range keys {
			want, ok := ref[k]
			got, gotOK, err := kv.Get(k)
			if err != nil || gotOK != ok || !bytes.Equal(got, want) {
				t.Fatalf("%s: Get(%q) = %d bytes, %v, %v; want %d bytes, %v", what, k, len(got), gotOK, err, len(want), ok)
			}
		}
	}
	ref, ckptRef := map[string][]byte{}, map[string][]byte{}
	var ckptMeta []byte
	var total faster.KVStats
	for i := range ops {
		k := keys[rng.Intn(len(keys))]
		switch r := rng.Intn(1000); {
		case r < 450:
			v := value()
			if err := kv.Upsert(k, v); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			ref[k] = v
		case r < 600:
			if err := kv.Delete(k); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			delete(ref, k)
		case r < 950:
			want, ok := ref[k]
			got, gotOK, err := kv.Get(k)
			if err != nil || gotOK != ok || !bytes.Equal(got, want) {
				t.Fatalf("op %d: Get(%q) = %d bytes, %v, %v; want %d bytes, %v", i, k, len(got), gotOK, err, len(want), ok)
			}
		case r < 970:
			ckptMeta = fmt.Appendf(nil, "op %d", i)
			if _, err := kv.Checkpoint(ckptMeta); err != nil {
				t.Fatalf("op %d: checkpoint: %v", i, err)
			}
			ckptRef = maps.Clone(ref)
		case r < 980:
			s := kv.Stats()
			total.Evictions += s.Evictions
			total.DeviceReads += s.DeviceReads
			total.Checkpoints += s.Checkpoints
			total.Compactions += s.Compactions
			if err := kv.Close(); err != nil {
				t.Fatal(err)
			}
			kv = open()
			ref = maps.Clone(ckptRef)
			if _, m, err := kv.LatestCheckpoint(); err != nil || !bytes.Equal(m, ckptMeta) {
				t.Fatalf("op %d: after reopen: checkpoint meta %q, %v; want %q", i, m, err, ckptMeta)
			}
			verify(fmt.Sprintf("op %d: after reopen", i), ref)
		case r < 990:
			s := kv.Stats()
			until := s.Begin + rng.Int63n(s.Tail-s.Begin+1)
			if err := kv.Compact(until); err != nil {
				t.Fatalf("op %d: Compact(%d): %v", i, until, err)
			}
		default:
			verify(fmt.Sprintf("op %d", i), ref)
		}
	}
	verify("end", ref)
	s := kv.Stats()
	total.Evictions += s.Evictions
	total.DeviceReads += s.DeviceReads
	total.Checkpoints += s.Checkpoints
	total.Compactions += s.Compactions
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ops: %d evictions, %d device reads, %d checkpoints, %d compactions; %d requests",
		ops, total.Evictions, total.DeviceReads, total.Checkpoints, total.Compactions, a.Requests())
	if total.Evictions == 0 || total.DeviceReads == 0 || total.Checkpoints == 0 {
		t.Fatalf("the run did not reach the device: %+v", total)
	}
	names := blobNames(t, c, testHubGUID+"/p00/store/")
	var segs, docs int
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, testHubGUID+"/p00/store/store."):
			segs++
		case strings.HasPrefix(n, testHubGUID+"/p00/store/"):
			docs++
		}
	}
	if segs == 0 || docs == 0 {
		t.Fatalf("layout: %q", names)
	}
}
