package loadmonitor

import (
	"fmt"
	"testing"
	"time"

	"github.com/netherite-go/netherite/transport"
)

// BenchmarkMonitor measures the load monitor at 32 partitions over 8
// hosts (4 each): Observe per host report, Decide, and the encoded size
// of the record it writes.
func BenchmarkMonitor(b *testing.B) {
	const partitions, hosts = 32, 8
	setup := func(b *testing.B) (*Monitor, []*transport.LoadReport, time.Time) {
		m, err := New(Config{Partitions: partitions, Self: "host-0"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		now := ddBase
		var reports []*transport.LoadReport
		for h := 0; h < hosts; h++ {
			r := &transport.LoadReport{Host: fmt.Sprintf("host-%d", h), ClientID: fmt.Sprintf("client-%d", h), At: now}
			for p := h * partitions / hosts; p < (h+1)*partitions/hosts; p++ {
				r.Partitions = append(r.Partitions, transport.PartitionLoad{Partition: p, WorkItems: 12, Activities: 40,
					Timers: 100, NextTimer: now.Add(time.Hour), Outbox: 3, InputLag: 7, Events: 1000, CacheBytes: 64 << 20,
					Instances: 10000, Latency: "LLMLL"})
			}
			reports = append(reports, r)
			m.Observe(r, now)
		}
		m.Decide(now)
		return m, reports, now
	}
	b.Run("Observe", func(b *testing.B) {
		m, reports, now := setup(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			r := reports[i%hosts]
			for j := range r.Partitions {
				r.Partitions[j].Events += 100
			}
			now = now.Add(250 * time.Millisecond) // 8 hosts every 2 s
			r.At = now
			m.Observe(r, now)
		}
	})
	b.Run("Decide", func(b *testing.B) {
		// One decision per second, every host reporting every 2 s (the
		// reports' cost is Observe's).
		m, reports, now := setup(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			now = now.Add(time.Second)
			if i%2 == 0 {
				b.StopTimer()
				for _, r := range reports {
					r.At = now
					m.Observe(r, now)
				}
				b.StartTimer()
			}
			if rec, _ := m.Decide(now); len(rec.Hosts) != hosts || !rec.Hosts[0].Live {
				b.Fatalf("hosts %+v", rec.Hosts)
			}
		}
	})
	b.Run("Record", func(b *testing.B) {
		m, _, now := setup(b)
		rec, _ := m.Decide(now)
		var size int
		b.ReportAllocs()
		for b.Loop() {
			enc, err := Marshal(rec)
			if err != nil {
				b.Fatal(err)
			}
			size = len(enc)
		}
		b.ReportMetric(float64(size), "record-bytes")
	})
}
