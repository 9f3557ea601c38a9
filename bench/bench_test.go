package bench

import (
	"context"
	"testing"
)

// The workloads as Go benchmarks: each iteration is one full run of n.
// Throughput and latency are reported as metrics; see `netherite bench`
// for the command-line form.
func benchWorkload(b *testing.B, cfg Config) {
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.ThroughputPerS, "orch/s")
		b.ReportMetric(res.P50Ms, "p50_ms")
		b.ReportMetric(res.P99Ms, "p99_ms")
	}
}

func BenchmarkHello5(b *testing.B) {
	benchWorkload(b, Config{Workload: "hello5", N: 5000, Partitions: 12})
}

func BenchmarkHello5PersistFirst(b *testing.B) {
	benchWorkload(b, Config{Workload: "hello5", N: 5000, Partitions: 12, PersistStepsFirst: true})
}

func BenchmarkFanOut10k(b *testing.B) {
	benchWorkload(b, Config{Workload: "fanout", N: 10000, Partitions: 12})
}

func TestWorkloadsRun(t *testing.T) {
	for _, w := range Workloads {
		res, err := Run(context.Background(), Config{Workload: w, N: 40, Partitions: 3, Rate: 2000})
		if err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		if res.Failed != 0 || res.Completed == 0 {
			t.Fatalf("%s: %+v", w, res)
		}
	}
	if _, err := Run(context.Background(), Config{Workload: "nope", N: 1}); err == nil {
		t.Fatal("unknown workload accepted")
	}
}
