package netherite_test

// The scenario list (scenarios_test.go) also runs under global
// speculation: on 12 partitions in memory, and over the faulty network of
// scenarios_faulty_test.go. Commits take a while (as on a device), so that
// batches do leave before their step is durable. Run only these with
// -run 'Scenario.*/global'.

import (
	"hash/fnv"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/transport"
)

func init() {
	scenarioBackends = append(scenarioBackends,
		scenarioBackend{
			name:       "global",
			partitions: 12,
			setup: func(t *testing.T, o *netherite.Options) {
				o.Storage, o.Speculation, o.MemoryCommitDelay = "memory", netherite.SpeculationGlobal, 2*time.Millisecond
			},
		},
		scenarioBackend{
			name:       "global-faulty",
			partitions: 12,
			setup: func(t *testing.T, o *netherite.Options) {
				h := fnv.New64a()
				h.Write([]byte(t.Name()))
				m := transport.NewMemory(o.PartitionCount)
				f := transport.NewFaulty(m, faultyScenarioConfig(h.Sum64()))
				o.Storage, o.SharedTransport, o.Speculation, o.MemoryCommitDelay = "memory", f, netherite.SpeculationGlobal, 2*time.Millisecond
				t.Cleanup(func() {
					t.Logf("faults injected: %+v", f.Stats())
					m.Close()
				})
			},
		})
}
