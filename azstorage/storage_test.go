package azstorage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// clientOnly starts a backend without a worker on a fresh task hub.
func clientOnly(t *testing.T) *Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Start(ctx, Config{Storage: queueConnection(t), TaskHub: fmt.Sprintf("u%d", time.Now().UnixNano()%1e13),
		ClientOnly: true}, durable.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	return b
}

// queueConnection is the test account; see connection in backend_test.go.
func queueConnection(t *testing.T) string {
	s := blobtest.Connection(t)
	if strings.Contains(s, "BlobEndpoint=") && !strings.Contains(s, "QueueEndpoint=") {
		if os.Getenv("CI") == "true" {
			t.Fatal("NETHERITE_AZURITE names no QueueEndpoint; restart Azurite with scripts/azurite/start.sh")
		}
		t.Skip("SKIP: NETHERITE_AZURITE names no QueueEndpoint; restart Azurite with scripts/azurite/start.sh")
	}
	return s
}

func events(n int, payload int) []*core.HistoryEvent {
	var out []*core.HistoryEvent
	for i := 0; i < n; i++ {
		e := core.NewEvent(core.EventEventRaised, time.Now().UTC())
		e.Name, e.Input = fmt.Sprintf("e%d", i), []byte(fmt.Sprintf("%q", strings.Repeat("p", payload)))
		out = append(out, e)
	}
	return out
}

// TestHistoryETagConflict: of two writers that read the same sentinel,
// the second checkpoint is refused, and readers see the winner's history.
func TestHistoryETagConflict(t *testing.T) {
	b := clientOnly(t)
	ctx := context.Background()
	id := "conflict/1" // a '/' exercises the key escaping
	h0, err := b.loadHistory(ctx, id)
	if err != nil || h0.etag != "" || len(h0.events) != 0 {
		t.Fatalf("empty history: %+v %v", h0, err)
	}
	h0.executionID = "x1"
	if err := b.writeHistory(ctx, id, h0, events(3, 10), 0); err != nil {
		t.Fatal(err)
	}
	// A second creator (no ETag) conflicts.
	if err := b.writeHistory(ctx, id, &history{executionID: "x1"}, events(2, 10), 0); !errors.Is(err, errConflict) {
		t.Fatalf("second create: %v, want errConflict", err)
	}
	a, _ := b.loadHistory(ctx, id)
	c, _ := b.loadHistory(ctx, id)
	if len(a.events) != 3 || a.etag == "" {
		t.Fatalf("after the first checkpoint: %d events, etag %q", len(a.events), a.etag)
	}
	if err := b.writeHistory(ctx, id, a, append(a.events, events(2, 10)...), 3); err != nil {
		t.Fatal(err)
	}
	// c read the same sentinel as a: its checkpoint (even a long one, in
	// several transactions) is refused.
	if err := b.writeHistory(ctx, id, c, append(c.events, events(150, 10)...), 3); !errors.Is(err, errConflict) {
		t.Fatalf("stale writer: %v, want errConflict", err)
	}
	got, err := b.loadHistory(ctx, id)
	if err != nil || len(got.events) != 5 {
		t.Fatalf("history after the conflict: %d events, %v; want the winner's 5", len(got.events), err)
	}
	if err := b.deleteHistory(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.loadHistory(ctx, id); len(got.events) != 0 || got.etag != "" {
		t.Fatalf("after purge: %+v", got)
	}
}

// TestLargeHistoryAndMessages: events over the table's property limit go
// to blobs, batches over 100 rows split, and queue messages over 45 KB go
// through the large-message container gzipped.
func TestLargeHistoryAndMessages(t *testing.T) {
	b := clientOnly(t)
	ctx := context.Background()
	id := "large1"
	h, _ := b.loadHistory(ctx, id)
	h.executionID = "x"
	evs := append(events(120, 10), events(2, 200<<10)...)
	before := b.Stats()
	if err := b.writeHistory(ctx, id, h, evs, 0); err != nil {
		t.Fatal(err)
	}
	after := b.Stats()
	if n := after.TableWrites - before.TableWrites; n != 2 {
		t.Errorf("123 rows took %d table transactions, want 2", n)
	}
	if n := after.BlobWrites - before.BlobWrites; n != 2 {
		t.Errorf("2 large events took %d blob writes, want 2", n)
	}
	got, err := b.loadHistory(ctx, id)
	if err != nil || len(got.events) != len(evs) {
		t.Fatalf("load: %d events, %v", len(got.events), err)
	}
	if string(got.events[121].Input) != string(evs[121].Input) {
		t.Fatalf("large event payload differs (%d bytes, want %d)", len(got.events[121].Input), len(evs[121].Input))
	}

	// A queue message of ~100 KB.
	e := core.NewEvent(core.EventEventRaised, time.Now().UTC())
	e.Name, e.Input = "big", []byte(`"`+strings.Repeat("q", 100<<10)+`"`)
	m := &core.TaskMessage{Target: core.Instance{InstanceID: id}, Event: e}
	q := b.control[0]
	before = b.Stats()
	if err := b.send(ctx, q, m); err != nil {
		t.Fatal(err)
	}
	if n := b.Stats().BlobWrites - before.BlobWrites; n != 1 {
		t.Fatalf("a 100 KB message made %d blob writes, want 1", n)
	}
	msgs, err := b.dequeue(ctx, q, 32)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("dequeue: %d messages, %v", len(msgs), err)
	}
	if msgs[0].env.Blob == "" || len(msgs[0].text) > largeMessageThreshold {
		t.Fatalf("the queue message holds %d bytes, blob %q", len(msgs[0].text), msgs[0].env.Blob)
	}
	if string(msgs[0].msg.Event.Input) != string(e.Input) {
		t.Fatal("large message payload differs")
	}
	_ = b.deleteMessage(ctx, msgs[0])
	if err := b.deleteHistory(ctx, id); err != nil {
		t.Fatal(err)
	}
}
