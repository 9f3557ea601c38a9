package loadmonitor

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// simulateRandom feeds a monitor random reports of random hosts (joining,
// reporting late, dying, stopping, returning) and checks the invariants
// after every decision. It returns the encoded records, for the
// determinism check.
func simulateRandom(t *testing.T, seed int64) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	n := 1 + rng.Intn(40)
	nh := 1 + rng.Intn(8)
	cfg := Config{Partitions: n, Self: "m", HostTimeout: 10 * time.Second, LoadDelay: time.Duration(rng.Intn(20)) * time.Second}
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	type model struct {
		last     time.Time
		stopping bool
		known    bool
	}
	hosts := make([]model, nh)
	events := make([]int64, n)
	now := ddBase
	var out [][]byte
	prev := m.Record()
	for step := 0; step < 400; step++ {
		now = now.Add(time.Duration(rng.Intn(4000)) * time.Millisecond)
		for k := rng.Intn(nh + 1); k > 0; k-- {
			i := rng.Intn(nh)
			if rng.Intn(5) == 0 {
				continue // this host is silent for a while
			}
			r := &transport.LoadReport{Host: fmt.Sprintf("h%d", i), ClientID: fmt.Sprintf("c%d", i), At: now,
				Stopping: rng.Intn(30) == 0}
			for p, o := range prev.Owners {
				if o == r.Host || rng.Intn(20) == 0 {
					events[p] += int64(rng.Intn(500))
					r.Partitions = append(r.Partitions, transport.PartitionLoad{Partition: p, Events: events[p],
						WorkItems: rng.Intn(3) * rng.Intn(300), Latency: "ILMH"[rng.Intn(4):][:1]})
				}
			}
			m.Observe(r, now)
			hosts[i] = model{last: now, stopping: r.Stopping, known: true}
		}
		if rng.Intn(3) == 0 {
			continue
		}
		rec, changed := m.Decide(now)
		var live []string
		for i, h := range hosts {
			if h.known && !h.stopping && now.Sub(h.last) < cfg.HostTimeout {
				live = append(live, fmt.Sprintf("h%d", i))
			}
		}
		where := fmt.Sprintf("seed %d step %d (%d partitions, live %v)", seed, step, n, live)
		if len(live) == 0 {
			if !slices.Equal(rec.Owners, prev.Owners) {
				t.Fatalf("%s: no live host, but the owners changed from %v to %v", where, prev.Owners, rec.Owners)
			}
		} else {
			count := map[string]int{}
			for p, o := range rec.Owners {
				if !slices.Contains(live, o) {
					t.Fatalf("%s: partition %d is placed on %q, not a live host", where, p, o)
				}
				count[o]++
			}
			lo, hi := n, 0
			for _, h := range live {
				lo, hi = min(lo, count[h]), max(hi, count[h])
			}
			if hi-lo > 1 {
				t.Fatalf("%s: counts %v differ by more than 1", where, count)
			}
		}
		if changed != !slices.Equal(rec.Owners, prev.Owners) {
			t.Fatalf("%s: changed=%v but owners %v -> %v", where, changed, prev.Owners, rec.Owners)
		}
		wantVersion := prev.Version
		if changed {
			wantVersion++
		}
		if rec.Version != wantVersion {
			t.Fatalf("%s: version %d, want %d", where, rec.Version, wantVersion)
		}
		if rec.Recommendation.Hosts < 0 || rec.Recommendation.Hosts > n || rec.Recommendation.Reason == "" {
			t.Fatalf("%s: recommendation %+v", where, rec.Recommendation)
		}
		for _, h := range rec.Hosts {
			if h.Live != slices.Contains(live, h.ID) {
				t.Fatalf("%s: host %s live=%v", where, h.ID, h.Live)
			}
		}
		b, err := Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, rec) {
			t.Fatalf("%s: the record changed in a round trip", where)
		}
		out = append(out, b)
		prev = rec
	}
	return out
}

func TestMonitorProperties(t *testing.T) {
	seeds := 50
	if testing.Short() {
		seeds = 10
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		a := simulateRandom(t, seed)
		if seed%5 == 0 {
			b := simulateRandom(t, seed)
			if len(a) != len(b) {
				t.Fatalf("seed %d: %d records, then %d", seed, len(a), len(b))
			}
			for i := range a {
				if !bytes.Equal(a[i], b[i]) {
					t.Fatalf("seed %d: record %d differs between two runs of the same inputs", seed, i)
				}
			}
		}
	}
}
