package emulator

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// BenchmarkSendReceive measures send + receive throughput with the real
// client on loopback: 1 KiB events in batches of 100 over 4 partitions, a
// producer and a receiver per partition. One op is one batch; events/s
// counts events both sent and received.
//
// The "disk" variant keeps the events in a data directory (each send
// waits for its commit).
//
//	go test -run '^$' -bench SendReceive -benchtime 2000x ./eventhubs/emulator/
func BenchmarkSendReceive(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchSendReceive(b, "") })
	b.Run("disk", func(b *testing.B) { benchSendReceive(b, b.TempDir()) })
}

func benchSendReceive(b *testing.B, dataDir string) {
	const partitions, batchSize = 4, 100
	e := startTestEmulator(b, Config{DataDir: dataDir, Hubs: []HubConfig{{Name: "bench", PartitionCount: partitions}}})
	ctx := context.Background()
	c := newConsumer(b, e, "bench", DefaultConsumerGroup)
	body := make([]byte, 1024)
	for i := range body {
		body[i] = byte(i)
	}
	// Batches per partition: a warm-up batch, then the partition's share of b.N.
	perPartition := make([]int, partitions)
	for pid := range partitions {
		perPartition[pid] = 1
	}
	for i := range b.N {
		perPartition[i%partitions]++
	}
	// Receivers attach first, at latest.
	pcs := make([]*azeventhubs.PartitionClient, partitions)
	for pid := range partitions {
		pcs[pid] = newPartitionClient(b, c, strconv.Itoa(pid), azeventhubs.PartitionClientOptions{Prefetch: 3000})
	}
	var recvWG sync.WaitGroup
	for pid := range partitions {
		recvWG.Add(1)
		go func() {
			defer recvWG.Done()
			want := perPartition[pid] * batchSize
			got := 0
			for got < want {
				evs, err := pcs[pid].ReceiveEvents(ctx, min(1000, want-got), nil)
				if err != nil {
					b.Errorf("partition %d: %v", pid, err)
					return
				}
				got += len(evs)
			}
		}()
	}
	// Let the receiver links attach before timing.
	wctx, cancel := context.WithTimeout(ctx, testTimeout)
	waitLinks(b, wctx, e, func(l LinkInfo) bool { return l.Kind == LinkReceiver && l.Hub == "bench" }, partitions)
	cancel()
	producers := make([]*azeventhubs.ProducerClient, partitions)
	batches := make([]*azeventhubs.EventDataBatch, partitions)
	for pid := range partitions {
		producers[pid] = newProducer(b, e, "bench")
		batch, err := producers[pid].NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: new(strconv.Itoa(pid))})
		if err != nil {
			b.Fatal(err)
		}
		for range batchSize {
			if err := batch.AddEventData(&azeventhubs.EventData{Body: body}, nil); err != nil {
				b.Fatal(err)
			}
		}
		batches[pid] = batch
		// Warm the sender link up (the warm-up events are received too).
		if err := producers[pid].SendEventDataBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var sendWG sync.WaitGroup
	for pid := range partitions {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			for range perPartition[pid] - 1 {
				if err := producers[pid].SendEventDataBatch(ctx, batches[pid], nil); err != nil {
					b.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	sendWG.Wait()
	recvWG.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N*batchSize)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(b.N*batchSize*len(body))/elapsed.Seconds()/(1<<20), "MiB/s")
}

// BenchmarkLatency measures the time from sending one 100-byte event to
// receiving it, with the real client on loopback; it reports percentiles.
//
//	go test -run '^$' -bench Latency -benchtime 2000x ./eventhubs/emulator/
func BenchmarkLatency(b *testing.B) {
	e := startTestEmulator(b, Config{Hubs: []HubConfig{{Name: "lat", PartitionCount: 1}}})
	ctx := context.Background()
	p := newProducer(b, e, "lat")
	c := newConsumer(b, e, "lat", DefaultConsumerGroup)
	pc := newPartitionClient(b, c, "0", azeventhubs.PartitionClientOptions{})
	body := make([]byte, 100)
	batch, err := p.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: new("0")})
	if err != nil {
		b.Fatal(err)
	}
	if err := batch.AddEventData(&azeventhubs.EventData{Body: body}, nil); err != nil {
		b.Fatal(err)
	}
	one := func(first bool) time.Duration {
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := pc.ReceiveEvents(ctx, 1, nil)
			done <- err
		}()
		if first {
			// The receiver link attaches (at latest) on the first receive.
			wctx, cancel := context.WithTimeout(ctx, testTimeout)
			waitLink(b, wctx, e, receiverOf("lat", 0))
			cancel()
		}
		if err := p.SendEventDataBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for i := range 20 { // warm up the links
		one(i == 0)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, one(false))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
