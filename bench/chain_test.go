package bench

import (
	"os"
	"testing"

	"github.com/netherite-go/netherite"
)

// The chain and bank workloads under each speculation mode, on local disk
// (a temporary directory; NETHERITE_BENCH_STORAGE overrides it, e.g.
// "memory"), for profiles:
//
//	go test ./bench -run XXX -bench 'Chain|Bank' -benchtime 1x -cpuprofile cpu.out
func benchSpeculation(b *testing.B, cfg Config) {
	cfg.Storage = os.Getenv("NETHERITE_BENCH_STORAGE")
	for _, s := range []netherite.Speculation{netherite.SpeculationNone, netherite.SpeculationLocal, netherite.SpeculationGlobal} {
		b.Run(s.String(), func(b *testing.B) {
			c := cfg
			c.Speculation = s
			res := benchWorkload(b, c)
			if res.Chain != nil {
				b.ReportMetric(res.Chain.HopP50Ms, "hop_p50_ms")
				b.ReportMetric(res.Chain.HopP99Ms, "hop_p99_ms")
			}
		})
	}
}

func BenchmarkChain(b *testing.B) {
	benchSpeculation(b, Config{Workload: "chain", N: 100, InFlight: 1, Partitions: 12})
}

func BenchmarkBank(b *testing.B) {
	benchSpeculation(b, Config{Workload: "bank", N: 2000, Partitions: 12})
}
