package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// These tests drive the emulator with the real azeventhubs client.

const testTimeout = 60 * time.Second

var testRetry = azeventhubs.RetryOptions{MaxRetries: 10, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newProducer(t testing.TB, e *Emulator, hub string) *azeventhubs.ProducerClient {
	t.Helper()
	return newProducerConn(t, e.ConnectionString, hub)
}

func newProducerConn(t testing.TB, conn, hub string) *azeventhubs.ProducerClient {
	t.Helper()
	p, err := azeventhubs.NewProducerClientFromConnectionString(conn, hub, &azeventhubs.ProducerClientOptions{RetryOptions: testRetry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func newConsumer(t testing.TB, e *Emulator, hub, cg string) *azeventhubs.ConsumerClient {
	t.Helper()
	c, err := azeventhubs.NewConsumerClientFromConnectionString(e.ConnectionString, hub, cg, &azeventhubs.ConsumerClientOptions{RetryOptions: testRetry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func newPartitionClient(t testing.TB, c *azeventhubs.ConsumerClient, pid string, opts azeventhubs.PartitionClientOptions) *azeventhubs.PartitionClient {
	t.Helper()
	pc, err := c.NewPartitionClient(pid, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	return pc
}

// send sends the bodies as one batch.
func send(t testing.TB, ctx context.Context, p *azeventhubs.ProducerClient, opts *azeventhubs.EventDataBatchOptions, bodies ...string) {
	t.Helper()
	batch, err := p.NewEventDataBatch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if err := batch.AddEventData(&azeventhubs.EventData{Body: []byte(b), Properties: map[string]any{"body": b}}, nil); err != nil {
			t.Fatalf("adding %q: %v", b, err)
		}
	}
	if err := p.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// receiveN receives exactly n events (failing on more arriving soon after
// is left to the callers that care).
func receiveN(t testing.TB, ctx context.Context, pc *azeventhubs.PartitionClient, n int) []*azeventhubs.ReceivedEventData {
	t.Helper()
	var out []*azeventhubs.ReceivedEventData
	for len(out) < n {
		evs, err := pc.ReceiveEvents(ctx, n-len(out), nil)
		out = append(out, evs...)
		if err != nil && len(out) < n {
			t.Fatalf("received %d of %d events: %v", len(out), n, err)
		}
	}
	return out
}

// expectNoMore checks that nothing else arrives within a short wait.
func expectNoMore(t testing.TB, pc *azeventhubs.PartitionClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	evs, _ := pc.ReceiveEvents(ctx, 10, nil)
	if len(evs) > 0 {
		t.Fatalf("%d unexpected events, the first with sequence number %d", len(evs), evs[0].SequenceNumber)
	}
}

func bodies(evs []*azeventhubs.ReceivedEventData) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = string(ev.Body)
	}
	return out
}

// waitLink waits until a link the emulator sees matches.
func waitLink(t testing.TB, ctx context.Context, e *Emulator, match func(LinkInfo) bool) {
	t.Helper()
	waitLinks(t, ctx, e, match, 1)
}

// waitLinks waits until n links the emulator sees match.
func waitLinks(t testing.TB, ctx context.Context, e *Emulator, match func(LinkInfo) bool, n int) {
	t.Helper()
	for {
		if countLinks(e, match) >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no such link: %v", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func receiverOf(hub string, pid int) func(LinkInfo) bool {
	return func(l LinkInfo) bool { return l.Kind == LinkReceiver && l.Hub == hub && l.Partition == pid }
}

func TestClientProperties(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "props", PartitionCount: 3}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "props")
	hp, err := p.GetEventHubProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hp.Name != "props" || len(hp.PartitionIDs) != 3 || hp.PartitionIDs[2] != "2" || hp.CreatedOn.IsZero() {
		t.Fatalf("hub properties %+v", hp)
	}
	pp, err := p.GetPartitionProperties(ctx, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pp.EventHubName != "props" || pp.PartitionID != "1" || !pp.IsEmpty || pp.BeginningSequenceNumber != 0 || pp.LastEnqueuedSequenceNumber != -1 || pp.LastEnqueuedOffset != "-1" {
		t.Fatalf("empty partition properties %+v", pp)
	}
	send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new("1")}, "a", "b", "c")
	pp, err = p.GetPartitionProperties(ctx, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pp.IsEmpty || pp.BeginningSequenceNumber != 0 || pp.LastEnqueuedSequenceNumber != 2 || pp.LastEnqueuedOffset == "-1" || pp.LastEnqueuedOn.IsZero() {
		t.Fatalf("partition properties after 3 events %+v", pp)
	}
	// The last offset is the one the event carries.
	c := newConsumer(t, e, "props", DefaultConsumerGroup)
	pc := newPartitionClient(t, c, "1", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	evs := receiveN(t, ctx, pc, 3)
	if evs[2].Offset != pp.LastEnqueuedOffset || !evs[2].EnqueuedTime.Equal(pp.LastEnqueuedOn) {
		t.Fatalf("last event offset %s time %v; properties say %s %v", evs[2].Offset, evs[2].EnqueuedTime, pp.LastEnqueuedOffset, pp.LastEnqueuedOn)
	}
	// Errors: unknown hub (404, fatal) and bad partition.
	if _, err := newProducer(t, e, "nohub").GetEventHubProperties(ctx, nil); err == nil {
		t.Fatal("properties of a missing hub")
	}
	if _, err := p.GetPartitionProperties(ctx, "7", nil); err == nil {
		t.Fatal("properties of a missing partition")
	}
}

func TestClientSendAndReceive(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "sr", PartitionCount: 4}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "sr")
	c := newConsumer(t, e, "sr", DefaultConsumerGroup)

	// With a partition key: every event of every batch in one partition.
	for i := range 3 {
		send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionKey: new("customer-7")}, fmt.Sprintf("k%d-a", i), fmt.Sprintf("k%d-b", i))
	}
	// Without partition: round robin over the partitions, a batch at a time.
	for i := range 4 {
		send(t, ctx, p, nil, fmt.Sprintf("rr%d", i))
	}
	// 1,000 small events to partition 2.
	var many []string
	for i := range 1000 {
		many = append(many, "m"+strconv.Itoa(i))
	}
	for i := 0; i < len(many); i += 250 {
		send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new("2")}, many[i:i+250]...)
	}

	total := 0
	keyed := 0
	rr := 0
	for pid := range 4 {
		pp, err := p.GetPartitionProperties(ctx, strconv.Itoa(pid), nil)
		if err != nil {
			t.Fatal(err)
		}
		n := int(pp.LastEnqueuedSequenceNumber + 1)
		total += n
		if n == 0 {
			continue
		}
		pc := newPartitionClient(t, c, strconv.Itoa(pid), azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
		evs := receiveN(t, ctx, pc, n)
		expectNoMore(t, pc)
		var seen []string
		for i, ev := range evs {
			if ev.SequenceNumber != int64(i) {
				t.Fatalf("partition %d: event %d has sequence number %d", pid, i, ev.SequenceNumber)
			}
			if ev.Properties["body"] != string(ev.Body) {
				t.Fatalf("partition %d: properties %v do not match body %q", pid, ev.Properties, ev.Body)
			}
			b := string(ev.Body)
			switch b[0] {
			case 'k':
				keyed++
				if ev.PartitionKey == nil || *ev.PartitionKey != "customer-7" {
					t.Fatalf("keyed event %q has partition key %v", b, ev.PartitionKey)
				}
			case 'r':
				rr++
			case 'm':
				if pid != 2 {
					t.Fatalf("event %q in partition %d", b, pid)
				}
				seen = append(seen, b)
			}
		}
		if pid == 2 && !equalStrings(seen, many) {
			t.Fatalf("partition 2: the 1,000 events are not all there in order (%d)", len(seen))
		}
		if keyed != 0 && keyed != 6 {
			t.Fatalf("keyed events split over partitions")
		}
	}
	if total != 6+4+1000 || keyed != 6 || rr != 4 {
		t.Fatalf("total %d keyed %d round robin %d", total, keyed, rr)
	}
	// Round robin put one batch in each partition.
	for pid := range 4 {
		pp, _ := p.GetPartitionProperties(ctx, strconv.Itoa(pid), nil)
		if pp.IsEmpty {
			t.Fatalf("partition %d is empty: round robin skipped it", pid)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestClientLargeEvent(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "large", PartitionCount: 1}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "large")
	batch, err := p.NewEventDataBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), (1<<20-1024)/16) // 1 MiB - 1 KiB
	for i := range body {
		body[i] ^= byte(i / 251)
	}
	if err := batch.AddEventData(&azeventhubs.EventData{Body: body}, nil); err != nil {
		t.Fatalf("an event of %d bytes does not fit a batch: %v", len(body), err)
	}
	if err := p.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	// One more byte than a batch holds does not fit.
	big, _ := p.NewEventDataBatch(ctx, nil)
	if err := big.AddEventData(&azeventhubs.EventData{Body: make([]byte, 1<<20)}, nil); !errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
		t.Fatalf("an event of 1 MiB: %v", err)
	}
	c := newConsumer(t, e, "large", DefaultConsumerGroup)
	pc := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	evs := receiveN(t, ctx, pc, 1)
	if !bytes.Equal(evs[0].Body, body) {
		t.Fatalf("the large event came back different (%d bytes)", len(evs[0].Body))
	}
}

func TestClientStartPositions(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "pos", PartitionCount: 1}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "pos")
	c := newConsumer(t, e, "pos", DefaultConsumerGroup)
	all := func() []*azeventhubs.ReceivedEventData {
		pc := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
		defer pc.Close(ctx)
		return receiveN(t, ctx, pc, 10)
	}
	for i := range 5 {
		send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new("0")}, fmt.Sprintf("e%d", 2*i), fmt.Sprintf("e%d", 2*i+1))
	}
	evs := all()
	if got := bodies(evs); got[0] != "e0" || got[9] != "e9" {
		t.Fatalf("earliest: %v", got)
	}
	for _, c2 := range []struct {
		name  string
		start azeventhubs.StartPosition
		first int
	}{
		{"offset exclusive", azeventhubs.StartPosition{Offset: &evs[3].Offset}, 4},
		{"offset inclusive", azeventhubs.StartPosition{Offset: &evs[3].Offset, Inclusive: true}, 3},
		{"sequence exclusive", azeventhubs.StartPosition{SequenceNumber: new(int64(6))}, 7},
		{"sequence inclusive", azeventhubs.StartPosition{SequenceNumber: new(int64(6)), Inclusive: true}, 6},
		{"enqueued time", azeventhubs.StartPosition{EnqueuedTime: new(evs[9].EnqueuedTime.Add(-time.Hour))}, 0},
		{"enqueued time inclusive", azeventhubs.StartPosition{EnqueuedTime: evs[0].EnqueuedTime, Inclusive: true}, 0},
	} {
		pc := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: c2.start})
		got := receiveN(t, ctx, pc, 10-c2.first)
		if got[0].SequenceNumber != int64(c2.first) || string(got[0].Body) != fmt.Sprintf("e%d", c2.first) {
			t.Fatalf("%s: first event %d %q, want %d", c2.name, got[0].SequenceNumber, got[0].Body, c2.first)
		}
		expectNoMore(t, pc)
		pc.Close(ctx)
	}
	// Enqueued time after the last event: only new events.
	pcT := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{EnqueuedTime: evs[9].EnqueuedTime}})
	// Latest (the default) is pinned when the link attaches.
	pcL := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{})
	type result struct {
		evs []*azeventhubs.ReceivedEventData
		err error
	}
	results := make(chan result, 2)
	for _, pc := range []*azeventhubs.PartitionClient{pcT, pcL} {
		go func() {
			evs, err := pc.ReceiveEvents(ctx, 1, nil)
			results <- result{evs, err}
		}()
	}
	waitLinks(t, ctx, e, receiverOf("pos", 0), 2)
	send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new("0")}, "new")
	for range 2 {
		r := <-results
		if r.err != nil || len(r.evs) != 1 || string(r.evs[0].Body) != "new" || r.evs[0].SequenceNumber != 10 {
			t.Fatalf("latest / enqueued time: %v %v", bodies(r.evs), r.err)
		}
	}
}

func countLinks(e *Emulator, match func(LinkInfo) bool) int {
	n := 0
	for _, l := range e.Links() {
		if match(l) {
			n++
		}
	}
	return n
}

func TestClientEpochTakeover(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "ep", PartitionCount: 1}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "ep")
	c := newConsumer(t, e, "ep", DefaultConsumerGroup)
	send(t, ctx, p, nil, "one")
	start := azeventhubs.StartPosition{Earliest: new(true)}
	pc1 := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: start, OwnerLevel: new(int64(1))})
	if evs := receiveN(t, ctx, pc1, 1); string(evs[0].Body) != "one" {
		t.Fatal(bodies(evs))
	}
	errs := make(chan error, 1)
	go func() {
		for {
			if _, err := pc1.ReceiveEvents(ctx, 10, nil); err != nil {
				errs <- err
				return
			}
		}
	}()
	pc2 := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: start, OwnerLevel: new(int64(2))})
	if evs := receiveN(t, ctx, pc2, 1); string(evs[0].Body) != "one" {
		t.Fatal(bodies(evs))
	}
	err := <-errs
	var azErr *azeventhubs.Error
	if !errors.As(err, &azErr) || azErr.Code != azeventhubs.ErrorCodeOwnershipLost {
		t.Fatalf("the deposed receiver got %v, want OwnershipLost", err)
	}
	// A lower epoch is refused.
	pc0 := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: start, OwnerLevel: new(int64(1))})
	_, err = pc0.ReceiveEvents(ctx, 1, nil)
	if !errors.As(err, &azErr) || azErr.Code != azeventhubs.ErrorCodeOwnershipLost || !strings.Contains(err.Error(), "amqp:link:stolen") {
		t.Fatalf("a lower epoch got %v, want OwnershipLost (amqp:link:stolen)", err)
	}
	// So is a receiver without epoch.
	pcNone := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: start})
	_, err = pcNone.ReceiveEvents(ctx, 1, nil)
	if !errors.As(err, &azErr) || azErr.Code != azeventhubs.ErrorCodeOwnershipLost {
		t.Fatalf("a receiver without epoch got %v, want OwnershipLost", err)
	}
	// The owner still receives.
	send(t, ctx, p, nil, "two")
	if evs := receiveN(t, ctx, pc2, 1); string(evs[0].Body) != "two" {
		t.Fatal(bodies(evs))
	}
}

// stream sends n events to partition 0 of hub, one batch of 5 at a time,
// calling fault between batches, while a receiver from the beginning
// collects them; it checks that the receiver got dense, unique sequence
// numbers and every event sent.
func stream(t *testing.T, e *Emulator, hub string, batches int, fault func(i int)) {
	t.Helper()
	ctx := testCtx(t)
	p := newProducer(t, e, hub)
	c := newConsumer(t, e, hub, DefaultConsumerGroup)
	pc := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	var mu sync.Mutex
	var got []*azeventhubs.ReceivedEventData
	sent := map[string]bool{}
	recvDone := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		for {
			// ReceiveEvents waits for all it asks for: ask with a short deadline.
			rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			evs, err := pc.ReceiveEvents(rctx, 100, nil)
			cancel()
			mu.Lock()
			got = append(got, evs...)
			mu.Unlock()
			if err != nil && ctx.Err() == nil {
				var azErr *azeventhubs.Error
				if errors.As(err, &azErr) {
					recvDone <- err
					return
				}
			}
			select {
			case <-stop:
				recvDone <- nil
				return
			default:
			}
			if ctx.Err() != nil {
				recvDone <- ctx.Err()
				return
			}
		}
	}()
	for i := range batches {
		fault(i)
		var bs []string
		for j := range 5 {
			b := fmt.Sprintf("b%d-%d", i, j)
			bs = append(bs, b)
			sent[b] = true
		}
		send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new("0")}, bs...)
	}
	pp, err := p.GetPartitionProperties(ctx, "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := int(pp.LastEnqueuedSequenceNumber + 1)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= want {
			break
		}
		select {
		case err := <-recvDone:
			t.Fatalf("the receiver stopped after %d of %d events: %v", n, want, err)
		case <-ctx.Done():
			t.Fatalf("received %d of %d events", n, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	received := map[string]bool{}
	for i, ev := range got {
		if ev.SequenceNumber != int64(i) {
			t.Fatalf("event %d of the receiver has sequence number %d (lost or duplicated)", i, ev.SequenceNumber)
		}
		received[string(ev.Body)] = true
	}
	for b := range sent {
		if !received[b] {
			t.Fatalf("event %q was sent but not received", b)
		}
	}
	if len(got) < len(sent) {
		t.Fatalf("received %d events, sent %d", len(got), len(sent))
	}
}

func TestFaultDetachLinks(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "f", PartitionCount: 1}}})
	stream(t, e, "f", 20, func(i int) {
		switch i {
		case 5:
			waitLink(t, testCtx(t), e, receiverOf("f", 0))
			if n := e.DetachLinks(func(l LinkInfo) bool { return l.Kind == LinkReceiver }, ""); n != 1 {
				t.Errorf("detached %d receivers", n)
			}
		case 10:
			if n := e.DetachLinks(func(l LinkInfo) bool { return l.Kind == LinkSender }, ""); n != 1 {
				t.Errorf("detached %d senders", n)
			}
		case 15:
			e.DetachLinks(nil, "")
		}
	})
}

func TestFaultDropConnections(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "f", PartitionCount: 1}}})
	stream(t, e, "f", 20, func(i int) {
		switch i {
		case 5, 12:
			waitLink(t, testCtx(t), e, receiverOf("f", 0))
			if n := e.DropConnections(); n == 0 {
				t.Error("no connection dropped")
			}
		case 8:
			if n := e.CloseConnections(""); n == 0 {
				t.Error("no connection closed")
			}
		}
	})
}

func TestFaultDelayAndRejectSends(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "f", PartitionCount: 1}}})
	stream(t, e, "f", 12, func(i int) {
		switch i {
		case 3:
			e.SetSendDelay(200 * time.Millisecond)
		case 5:
			e.SetSendDelay(0)
			e.RejectSends(2, "")
		case 8:
			e.RejectSends(1, "amqp:internal-error")
		}
	})
	e.faultMu.Lock()
	left := e.rejectN
	e.faultMu.Unlock()
	if left != 0 {
		t.Fatalf("%d rejections were not used: the client did not retry", left)
	}
}

func TestFaultRestartWithData(t *testing.T) {
	e := startTestEmulator(t, Config{DataDir: t.TempDir(), Hubs: []HubConfig{{Name: "f", PartitionCount: 1}}})
	stream(t, e, "f", 20, func(i int) {
		if i == 7 || i == 14 {
			waitLink(t, testCtx(t), e, receiverOf("f", 0))
			if err := e.Restart(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
	})
	// A client connecting after the restarts reads everything from disk.
	ctx := testCtx(t)
	c := newConsumer(t, e, "f", DefaultConsumerGroup)
	pc := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	evs := receiveN(t, ctx, pc, 100)
	for i, ev := range evs {
		if ev.SequenceNumber != int64(i) {
			t.Fatalf("after restart, event %d has sequence number %d", i, ev.SequenceNumber)
		}
	}
}

func TestFaultRestartInMemory(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "f", PartitionCount: 1}}})
	stream(t, e, "f", 10, func(i int) {
		if i == 5 {
			waitLink(t, testCtx(t), e, receiverOf("f", 0))
			if err := e.Restart(testCtx(t)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestClientHubDeletedAndCreated(t *testing.T) {
	e := startTestEmulator(t, Config{})
	ctx := testCtx(t)
	if code, body := adminDo(t, "PUT", e.AdminURL+"/runtime?api-version=2014-01", testEntry); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	p := newProducer(t, e, "runtime")
	hp, err := p.GetEventHubProperties(ctx, nil)
	if err != nil || len(hp.PartitionIDs) != 6 {
		t.Fatalf("hub created through the admin API: %+v %v", hp, err)
	}
	send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new("5")}, "x")
	c := newConsumer(t, e, "runtime", DefaultConsumerGroup)
	pc := newPartitionClient(t, c, "5", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	receiveN(t, ctx, pc, 1)
	errs := make(chan error, 1)
	go func() {
		_, err := pc.ReceiveEvents(ctx, 1, nil)
		errs <- err
	}()
	waitLink(t, ctx, e, receiverOf("runtime", 5))
	if code, _ := adminDo(t, "DELETE", e.AdminURL+"/runtime?api-version=2014-01", ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if err := <-errs; err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "amqp:not-found") {
		t.Fatalf("the receiver of a deleted hub got %v, want amqp:not-found", err)
	}
	if _, err := p.GetEventHubProperties(ctx, nil); err == nil {
		t.Fatal("properties of a deleted hub")
	}
}

func TestClientStrictAuth(t *testing.T) {
	e := startTestEmulator(t, Config{StrictAuth: true, Key: "the-key", Hubs: []HubConfig{{Name: "sec", PartitionCount: 1}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "sec")
	if _, err := p.GetEventHubProperties(ctx, nil); err != nil {
		t.Fatalf("the right key: %v", err)
	}
	send(t, ctx, p, nil, "ok")
	bad := fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=wrong;UseDevelopmentEmulator=true", e.Addr, DefaultKeyName)
	pb := newProducerConn(t, bad, "sec")
	if _, err := pb.GetEventHubProperties(ctx, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("properties with a wrong key: %v, want 401", err)
	}
	_, err := pb.NewEventDataBatch(ctx, nil)
	var azErr *azeventhubs.Error
	if !errors.As(err, &azErr) || azErr.Code != azeventhubs.ErrorCodeUnauthorizedAccess {
		t.Fatalf("a sender with a wrong key: %v, want unauthorized access", err)
	}
}

func TestClientConsumerGroups(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "cgs", PartitionCount: 1, ConsumerGroups: []string{"fromconfig"}}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "cgs")
	send(t, ctx, p, nil, "x")
	start := azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}}
	// A group of the configuration, and one created at run time.
	if code, body := adminDo(t, "PUT", e.AdminURL+"/cgs/consumergroups/runtime", ""); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	var pcs []*azeventhubs.PartitionClient
	for _, cg := range []string{"fromconfig", "runtime"} {
		pc := newPartitionClient(t, newConsumer(t, e, "cgs", cg), "0", start)
		if evs := receiveN(t, ctx, pc, 1); string(evs[0].Body) != "x" {
			t.Fatalf("%s: %v", cg, bodies(evs))
		}
		pcs = append(pcs, pc)
	}
	// An unknown group is refused.
	pcBad := newPartitionClient(t, newConsumer(t, e, "cgs", "nosuch"), "0", start)
	if _, err := pcBad.ReceiveEvents(ctx, 1, nil); err == nil || !strings.Contains(err.Error(), "amqp:not-found") {
		t.Fatalf("an unknown consumer group: %v", err)
	}
	// Deleting a group detaches its receivers.
	errs := make(chan error, 1)
	go func() {
		_, err := pcs[1].ReceiveEvents(ctx, 1, nil)
		errs <- err
	}()
	waitLink(t, ctx, e, func(l LinkInfo) bool { return l.Kind == LinkReceiver && l.ConsumerGroup == "runtime" })
	if code, _ := adminDo(t, "DELETE", e.AdminURL+"/cgs/consumergroups/runtime", ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "amqp:not-found") {
		t.Fatalf("the receiver of a deleted group got %v", err)
	}
}

func TestClientRetention(t *testing.T) {
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "ret", PartitionCount: 1, RetentionBytes: 20_000}}})
	ctx := testCtx(t)
	p := newProducer(t, e, "ret")
	body := strings.Repeat("r", 1000)
	for range 10 {
		send(t, ctx, p, nil, body, body, body, body, body)
	}
	pp, err := p.GetPartitionProperties(ctx, "0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pp.BeginningSequenceNumber == 0 || pp.LastEnqueuedSequenceNumber != 49 || pp.IsEmpty {
		t.Fatalf("retention by size did not advance the beginning: %+v", pp)
	}
	c := newConsumer(t, e, "ret", DefaultConsumerGroup)
	pc := newPartitionClient(t, c, "0", azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	n := int(50 - pp.BeginningSequenceNumber)
	evs := receiveN(t, ctx, pc, n)
	if evs[0].SequenceNumber != pp.BeginningSequenceNumber || evs[n-1].SequenceNumber != 49 {
		t.Fatalf("earliest gave %d..%d, the beginning is %d", evs[0].SequenceNumber, evs[n-1].SequenceNumber, pp.BeginningSequenceNumber)
	}
	expectNoMore(t, pc)
}
