package durable_test

import (
	"runtime"
	"testing"

	"github.com/netherite-go/netherite/durable"
)

// BenchmarkSequence5 runs orchestrations of 5 activities in sequence
// through the executor, as an engine would: 6 episodes each. It reports
// episodes per second and allocations per episode, with cached cursors
// (no replay) and with a full replay at every episode.
func BenchmarkSequence5(b *testing.B) {
	for _, mode := range []struct {
		name  string
		cache bool
	}{{"cached", true}, {"replay", false}} {
		b.Run(mode.name, func(b *testing.B) {
			x := durable.NewExecutor(sequenceRegistry(5), durable.ExecutorOptions{})
			episodes := 0
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d := &driver{x: x, cache: mode.cache}
				res := d.runToEnd(b)
				episodes += 6
				if string(res.Output) != "5" {
					b.Fatalf("output %s", res.Output)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(episodes)/b.Elapsed().Seconds(), "episodes/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(episodes), "allocs/episode")
		})
	}
}
