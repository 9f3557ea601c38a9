package amqpserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/go-amqp"
)

// benchPair opens a sender and a receiver on one queue of a fresh server.
func benchPair(b *testing.B, q string, mode *amqp.SenderSettleMode, credit int32) (*amqp.Sender, *amqp.Receiver) {
	ts := startServer(b, Config{})
	c := dial(b, ts.addr, nil)
	ctx := context.Background()
	snd, err := newSession(b, c).NewSender(ctx, q, &amqp.SenderOptions{SettlementMode: mode})
	if err != nil {
		b.Fatal(err)
	}
	rcv, err := newSession(b, c).NewReceiver(ctx, q, &amqp.ReceiverOptions{Credit: credit})
	if err != nil {
		b.Fatal(err)
	}
	return snd, rcv
}

func receiveN(b *testing.B, rcv *amqp.Receiver, n int, done chan<- error) {
	ctx := context.Background()
	for i := 0; i < n; i++ {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			done <- err
			return
		}
		if len(m.GetData()) != 1024 {
			done <- fmt.Errorf("message %d has %d bytes", i, len(m.GetData()))
			return
		}
	}
	done <- nil
}

// BenchmarkThroughputSettled: 1 KiB messages sent pre-settled and received through the server.
func BenchmarkThroughputSettled(b *testing.B) {
	snd, rcv := benchPair(b, "bench", amqp.SenderSettleModeSettled.Ptr(), 1000)
	body := make([]byte, 1024)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go receiveN(b, rcv, b.N, done)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := snd.Send(ctx, amqp.NewMessage(body), nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkThroughputUnsettled: 1 KiB messages sent unsettled (each waits for its accepted disposition)
// by 32 concurrent senders on one link, as a producer with many in-flight sends does.
func BenchmarkThroughputUnsettled(b *testing.B) {
	snd, rcv := benchPair(b, "bench", nil, 1000)
	body := make([]byte, 1024)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go receiveN(b, rcv, b.N, done)
	ctx := context.Background()
	var wg sync.WaitGroup
	const workers = 32
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := snd.Send(ctx, amqp.NewMessage(body), nil); err != nil {
					errs <- err
					return
				}
			}
		}(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkLatency: one 100-byte message at a time, send (unsettled, accepted) to receive.
func BenchmarkLatency(b *testing.B) {
	snd, rcv := benchPair(b, "lat", nil, 10)
	body := make([]byte, 100)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := snd.Send(ctx, amqp.NewMessage(body), nil); err != nil {
			b.Fatal(err)
		}
		if _, err := rcv.Receive(ctx, nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkAzEventHubs: the real azeventhubs client sends 1 KiB events in batches of 100 to partition 0 of
// the in-test miniHub while a PartitionClient receives them (the engine's share of the emulator target).
func BenchmarkAzEventHubs(b *testing.B) {
	hub := newMiniHub(b)
	ts := startServer(b, Config{Handler: hub})
	conn := fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=k;SharedAccessKey=secret;UseDevelopmentEmulator=true", ts.addr)
	ctx := context.Background()
	producer, err := azeventhubs.NewProducerClientFromConnectionString(conn, "hub", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer producer.Close(ctx)
	consumer, err := azeventhubs.NewConsumerClientFromConnectionString(conn, "hub", azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer consumer.Close(ctx)
	earliest := true
	pc, err := consumer.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{Earliest: &earliest}, Prefetch: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(ctx)
	body := make([]byte, 1024)
	pid := "0"
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		n := 0
		for n < b.N {
			evs, err := pc.ReceiveEvents(ctx, min(1000, b.N-n), nil)
			if err != nil {
				done <- err
				return
			}
			n += len(evs)
		}
		done <- nil
	}()
	for sent := 0; sent < b.N; {
		batch, err := producer.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: &pid})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 100 && sent < b.N; i++ {
			if err := batch.AddEventData(&azeventhubs.EventData{Body: body}, nil); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		if err := producer.SendEventDataBatch(ctx, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
