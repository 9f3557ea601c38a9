package amqpserver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/go-amqp"
)

// miniHub is just enough of Event Hubs for the real azeventhubs client to send to and receive from
// partition 0 of "hub": $cbs accepts every token, batches are unpacked, consumers get every event from
// the start. It checks the engine against the client the emulator serves, not Event Hubs semantics.
type miniHub struct {
	t       testing.TB
	mu      sync.Mutex
	cond    *sync.Cond
	replies map[string]*Link
	events  [][]byte
}

func newMiniHub(t testing.TB) *miniHub {
	h := &miniHub{t: t, replies: map[string]*Link{}}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *miniHub) Attach(l *Link) error {
	switch {
	case l.Role == PeerSends && l.Target == "$cbs":
		go h.serveCBS(l)
	case l.Role == PeerReceives && l.Source == "$cbs":
		h.mu.Lock()
		h.replies[l.Target] = l
		h.cond.Broadcast()
		h.mu.Unlock()
	case l.Role == PeerSends && l.Target == "hub/Partitions/0":
		l.MaxMessageSize = 1 << 20
		go h.receiveEvents(l)
	case l.Role == PeerReceives && l.Source == "hub/ConsumerGroups/$Default/Partitions/0":
		go h.sendEvents(l)
	default:
		return &Error{Condition: "amqp:not-found", Description: fmt.Sprintf("no entity %q/%q", l.Source, l.Target)}
	}
	return nil
}

func (h *miniHub) serveCBS(l *Link) {
	for {
		d, err := l.Receive(context.Background())
		if err != nil {
			return
		}
		var req amqp.Message
		if err := req.UnmarshalBinary(d.Payload); err != nil {
			h.t.Errorf("cbs request: %v", err)
			d.Reject(&Error{Condition: "amqp:decode-error"})
			continue
		}
		d.Accept()
		if req.ApplicationProperties["operation"] != "put-token" {
			h.t.Errorf("cbs operation %v", req.ApplicationProperties["operation"])
		}
		h.mu.Lock()
		for h.replies[*req.Properties.ReplyTo] == nil {
			h.cond.Wait()
		}
		reply := h.replies[*req.Properties.ReplyTo]
		h.mu.Unlock()
		resp := &amqp.Message{
			Properties:            &amqp.MessageProperties{CorrelationID: req.Properties.MessageID},
			ApplicationProperties: map[string]any{"status-code": int32(202), "status-description": "Accepted"},
		}
		b, err := resp.MarshalBinary()
		if err != nil {
			h.t.Error(err)
			return
		}
		if err := reply.Send(context.Background(), b); err != nil {
			return
		}
	}
}

func (h *miniHub) receiveEvents(l *Link) {
	for {
		d, err := l.Receive(context.Background())
		if err != nil {
			return
		}
		var inner [][]byte
		if d.Format == 0x80013700 {
			var env amqp.Message
			if err := env.UnmarshalBinary(d.Payload); err != nil {
				h.t.Errorf("batch envelope: %v", err)
			}
			inner = env.Data
		} else {
			inner = [][]byte{d.Payload}
		}
		h.mu.Lock()
		h.events = append(h.events, inner...)
		h.cond.Broadcast()
		h.mu.Unlock()
		d.Accept()
	}
}

func (h *miniHub) sendEvents(l *Link) {
	go func() { // wake the waiter below when the link ends
		<-l.Done()
		h.mu.Lock()
		h.cond.Broadcast()
		h.mu.Unlock()
	}()
	for seq := 0; ; seq++ {
		h.mu.Lock()
		for seq >= len(h.events) && l.Err() == nil && !isDone(l) {
			h.cond.Wait()
		}
		if isDone(l) {
			h.mu.Unlock()
			return
		}
		raw := h.events[seq]
		h.mu.Unlock()
		var m amqp.Message
		if err := m.UnmarshalBinary(raw); err != nil {
			h.t.Errorf("event %d: %v", seq, err)
			return
		}
		m.Annotations = amqp.Annotations{
			"x-opt-sequence-number": int64(seq),
			"x-opt-offset":          fmt.Sprint(seq * 100),
			"x-opt-enqueued-time":   time.Now(),
		}
		b, err := m.MarshalBinary()
		if err != nil {
			h.t.Error(err)
			return
		}
		if err := l.Send(context.Background(), b); err != nil {
			return
		}
	}
}

func isDone(l *Link) bool {
	select {
	case <-l.Done():
		return true
	default:
		return false
	}
}

func TestAzEventHubsClient(t *testing.T) {
	hub := newMiniHub(t)
	ts := startServer(t, Config{Handler: hub})
	conn := fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=k;SharedAccessKey=secret;UseDevelopmentEmulator=true", ts.addr)
	ctx := ctxT(t)

	producer, err := azeventhubs.NewProducerClientFromConnectionString(conn, "hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close(ctx)
	pid := "0"
	var want [][]byte
	for round := 0; round < 3; round++ {
		batch, err := producer.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: &pid})
		if err != nil {
			t.Fatalf("new batch: %v", err)
		}
		for i := 0; i < 100; i++ {
			body := []byte(fmt.Sprintf("round %d event %d", round, i))
			if round == 2 && i == 0 {
				body = bytes.Repeat([]byte("x"), 600_000) // a multi-frame delivery both ways
			}
			if err := batch.AddEventData(&azeventhubs.EventData{Body: body}, nil); err != nil {
				t.Fatalf("add: %v", err)
			}
			want = append(want, body)
		}
		if err := producer.SendEventDataBatch(ctx, batch, nil); err != nil {
			t.Fatalf("send batch: %v", err)
		}
	}

	consumer, err := azeventhubs.NewConsumerClientFromConnectionString(conn, "hub", azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close(ctx)
	earliest := true
	pc, err := consumer.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &earliest}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var got []*azeventhubs.ReceivedEventData
	for len(got) < len(want) {
		evs, err := pc.ReceiveEvents(ctx, len(want)-len(got), nil)
		if err != nil {
			t.Fatalf("receive after %d events: %v", len(got), err)
		}
		got = append(got, evs...)
	}
	for i, e := range got {
		if !bytes.Equal(e.Body, want[i]) {
			t.Fatalf("event %d: %d bytes %.30q, want %.30q", i, len(e.Body), e.Body, want[i])
		}
		if e.SequenceNumber != int64(i) {
			t.Fatalf("event %d: sequence number %d", i, e.SequenceNumber)
		}
	}
	if !strings.Contains(ts.Conns()[0].Hostname(), "127.0.0.1") {
		t.Errorf("hostname %q", ts.Conns()[0].Hostname())
	}
}
