package eventhubs

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/transport"
)

// benchPacket is a message batch of one small task message (a typical
// activity completion).
func benchPacket(i int) *transport.Packet {
	return &transport.Packet{Messages: &transport.MessageBatch{Origin: 1, OriginPos: uint64(i + 1), Prev: uint64(i), Messages: []*core.TaskMessage{{
		Target: core.Instance{InstanceID: fmt.Sprintf("instance-%08d", i), ExecutionID: "0123456789abcdef"},
		Event: &core.HistoryEvent{Kind: core.EventTaskCompleted, EventID: -1, TaskScheduledID: 3, Timestamp: time.Now(),
			Result: []byte(`"Hello, Tokyo!"`)}}}}}
}

// BenchmarkTransportThroughput sends b.N packets from one host's partition
// to another's and reports packets/s (sent until all received).
func BenchmarkTransportThroughput(b *testing.B) {
	tg := emulatortest.Get(b)
	prefix := newHubs(b, tg, 2)
	snd := openTransport(b, tg.ConnectionString, prefix, hubID, 2, nil)
	rcv := openTransport(b, tg.ConnectionString, prefix, hubID, 2, nil)
	ctx := context.Background()
	pks := make([]*transport.Packet, b.N)
	for i := range pks {
		pks[i] = benchPacket(i)
	}
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		from, n := uint64(0), 0
		for n < b.N {
			got, next, err := rcv.ReceivePartition(ctx, 1, from)
			if err != nil {
				done <- err
				return
			}
			n += len(got)
			from = next
		}
		done <- nil
	}()
	for i := range pks {
		// As a partition's event loop does: a few packets per send.
		if err := snd.SendToPartition(1, pks[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	st := snd.Stats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "packets/s")
	b.ReportMetric(st.PacketsPerEvent(), "packets/event")
	b.ReportMetric(float64(st.BytesSent)/float64(max(st.EventsSent, 1)), "bytes/event")
}

// BenchmarkTransportLatency sends one packet at a time and waits for it:
// the latency of a partition-to-partition hop through Event Hubs.
func BenchmarkTransportLatency(b *testing.B) {
	tg := emulatortest.Get(b)
	prefix := newHubs(b, tg, 2)
	snd := openTransport(b, tg.ConnectionString, prefix, hubID, 2, nil)
	rcv := openTransport(b, tg.ConnectionString, prefix, hubID, 2, nil)
	ctx := context.Background()
	// Warm up the links.
	if err := snd.SendToPartition(1, benchPacket(0)); err != nil {
		b.Fatal(err)
	}
	_, from, err := rcv.ReceivePartition(ctx, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := snd.SendToPartition(1, benchPacket(i+1)); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < 1; {
			got, next, err := rcv.ReceivePartition(ctx, 1, from)
			if err != nil {
				b.Fatal(err)
			}
			n += len(got)
			from = next
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

// BenchmarkTransportAllToAll: two hosts with 4 partitions each send to
// every partition of the other (as partitions exchange messages); it
// reports the total packets/s.
func BenchmarkTransportAllToAll(b *testing.B) {
	const parts = 8
	tg := emulatortest.Get(b)
	prefix := newHubs(b, tg, parts)
	hosts := []*Transport{
		openTransport(b, tg.ConnectionString, prefix, hubID, parts, nil),
		openTransport(b, tg.ConnectionString, prefix, hubID, parts, nil),
	}
	ctx := context.Background()
	// Each partition sends round-robin to the 4 of the other host, so
	// each receives per packets when per is a multiple of 4.
	per := max(4, b.N/parts/4*4)
	total := per * parts
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, parts)
	for p := 0; p < parts; p++ {
		go func(p int) {
			// Partition p is on host p%2 and receives from the other host.
			from, n := uint64(0), 0
			for n < per {
				got, next, err := hosts[p%2].ReceivePartition(ctx, p, from)
				if err != nil {
					errc <- err
					return
				}
				n += len(got)
				from = next
			}
			errc <- nil
		}(p)
	}
	for p := 0; p < parts; p++ {
		go func(p int) {
			// Partition p (on host p%2) sends to the partitions of the other host.
			for i := 0; i < per; i++ {
				dest := (p + 1 + 2*(i%(parts/2))) % parts
				if err := hosts[p%2].SendToPartition(dest, benchPacket(i)); err != nil {
					errc <- err
					return
				}
			}
		}(p)
	}
	for p := 0; p < parts; p++ {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/el.Seconds(), "packets/s")
	st := hosts[0].Stats()
	b.ReportMetric(st.PacketsPerEvent(), "packets/event")
}
