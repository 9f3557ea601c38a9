package netherite_test

// The scenario list (scenarios_test.go) also runs over a faulty network:
// the in-process transport wrapped in transport.Faulty, which drops,
// duplicates, delays (so reorders) partition-to-partition packets and
// fails sends and receives. Exactly-once delivery between partitions
// (DESIGN §4.6) must make every scenario pass unchanged. Run only these
// with -run 'Scenario.*/faulty'.

import (
	"hash/fnv"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/transport"
)

// faultyScenarioConfig is the network of the faulty scenarios: every
// kind of fault, at rates far above a real network's. Only traffic between
// partitions is faulted (entities, sub-orchestrations, events between
// instances; client requests and responses are not, and activities run
// where their orchestration is), so scenarios without such traffic meet
// few faults; the test log reports how many each met.
func faultyScenarioConfig(seed uint64) transport.FaultConfig {
	return transport.FaultConfig{
		Seed:            seed,
		DropRate:        0.1,
		DupRate:         0.1,
		DelayRate:       0.2,
		MaxDelay:        20 * time.Millisecond,
		FailRate:        0.1,
		PhantomFailRate: 0.05,
		ReceiveFailRate: 0.05,
	}
}

func init() {
	scenarioBackends = append(scenarioBackends, scenarioBackend{
		name:       "faulty",
		partitions: 12,
		setup: func(t *testing.T, o *netherite.Options) {
			// A seed per test, so a failure reproduces the same faults
			// (up to goroutine scheduling).
			h := fnv.New64a()
			h.Write([]byte(t.Name()))
			m := transport.NewMemory(o.PartitionCount)
			f := transport.NewFaulty(m, faultyScenarioConfig(h.Sum64()))
			o.Storage, o.SharedTransport = "memory", f
			t.Cleanup(func() {
				st := f.Stats()
				t.Logf("faults injected: %+v", st)
				m.Close()
			})
		},
	})
}
