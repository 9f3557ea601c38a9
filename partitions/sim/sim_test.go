package sim

import (
	"errors"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/netherite-go/netherite/partitions"
)

var (
	seeds     = flag.Int("sim.seeds", 0, "number of seeds to run (default: seeds 1-30, about 60 s under -race on 2 busy cores)")
	firstSeed = flag.Int64("sim.seed", 1, "first seed")
	budget    = flag.Duration("sim.budget", 90*time.Second, "with the default seed count: stop starting seeds after this long")
)

// TestSim runs the simulation on consecutive seeds. CI runs a fixed set
// (seeds 1..N, stopping early only if the budget is spent, which it logs);
// -sim.seeds=N runs N seeds from -sim.seed, whatever the time.
func TestSim(t *testing.T) {
	n, fixed := *seeds, *seeds > 0
	if !fixed {
		n = 30
		if testing.Short() {
			n = 20
		}
	}
	start := time.Now()
	ran := 0
	var total Result
	modes := map[partitions.Speculation]int{}
	for s := *firstSeed; s < *firstSeed+int64(n); s++ {
		if !fixed && time.Since(start) > *budget {
			t.Logf("time budget spent after %d seeds", ran)
			break
		}
		spec := seedSpeculation(s)
		res, err := Run(Config{Seed: s, KV: s%2 == 1, Speculation: spec})
		ran++
		if err != nil {
			var se *Error
			if errors.As(err, &se) {
				t.Fatalf("%v (speculation %v)\nreproduce: go test ./partitions/sim -run TestSim -sim.seed=%d -sim.seeds=1", err, spec, s)
			}
			t.Fatal(err)
		}
		modes[spec]++
		total.Steps += res.Steps
		total.Crashes += res.Crashes
		total.Dropped += res.Dropped
		total.Duplicated += res.Duplicated
		total.Acknowledged += res.Acknowledged
		total.Checkpoints += res.Checkpoints
		total.Loads += res.Loads
	}
	t.Logf("seeds per speculation mode: none %d, local %d, global %d", modes[partitions.SpeculationNone], modes[partitions.SpeculationLocal], modes[partitions.SpeculationGlobal])
	t.Logf("%d seeds from %d: %d steps, %d crashes, %d checkpoints, %d instances read back, %d packets dropped, %d duplicated, %d starts acknowledged",
		ran, *firstSeed, total.Steps, total.Crashes, total.Checkpoints, total.Loads, total.Dropped, total.Duplicated, total.Acknowledged)
}

// seedSpeculation picks a seed's speculation mode: every mode on every
// few consecutive seeds, with and without the KV (odd seeds).
func seedSpeculation(seed int64) partitions.Speculation {
	modes := []partitions.Speculation{partitions.SpeculationLocal, partitions.SpeculationNone}
	return modes[(seed/2)%int64(len(modes))]
}

// TestSimReproduces checks that a run is a function of its seed.
func TestSimReproduces(t *testing.T) {
	a, errA := Run(Config{Seed: 7, Steps: 1500})
	b, errB := Run(Config{Seed: 7, Steps: 1500})
	if a != b || (errA == nil) != (errB == nil) {
		t.Fatalf("seed 7 ran twice differently: %+v (%v) and %+v (%v)", a, errA, b, errB)
	}
	if a.Crashes == 0 || a.Dropped == 0 || a.Duplicated == 0 {
		t.Fatalf("seed 7 injected no faults: %+v", a)
	}
}

// TestSimCatchesLoss makes sure the checks can fail: a run whose network
// swallows every copy of one batch must not pass.
func TestSimCatchesLoss(t *testing.T) {
	_, err := Run(Config{Seed: 3, Steps: 2000, blackhole: true})
	if err == nil {
		t.Fatal("a run that loses batches for good passed the invariants")
	}
	t.Logf("as expected: %.200s", err)
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}
