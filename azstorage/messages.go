package azstorage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// largeMessageThreshold is the queue message size above which the message
// body goes, gzipped, to a blob and the queue message carries its name
// (DTFx: 45 KB, under the queue service's 64 KB limit).
const largeMessageThreshold = 45 * 1024

// maxVisibilityDelay caps the initial invisibility of a delayed message
// (the queue service allows 7 days); a message that comes up before it is
// due is sent again with the rest of the delay.
const maxVisibilityDelay = 6 * 24 * time.Hour

// envelope is the text of a queue message.
type envelope struct {
	// ID identifies the message (for logs and blob names).
	ID string `json:"id"`
	// Sent is when the message was enqueued: compared with an instance's
	// CheckpointCompletedTimestamp to tell a message that overtook its
	// checkpoint from a stale one.
	Sent time.Time `json:"ts"`
	// Body is the protobuf TaskMessage, unless it is in Blob.
	Body []byte `json:"b,omitempty"`
	Blob string `json:"blob,omitempty"`
}

// received is a dequeued message.
type received struct {
	queue      *azqueue.QueueClient
	id, pop    string
	text       string
	dequeues   int64
	env        envelope
	msg        *core.TaskMessage
	insertedAt time.Time
}

// send enqueues m on q, delayed until m's due time (a timer's FireAt, a
// scheduled start or signal), through a blob if it is large.
func (b *Backend) send(ctx context.Context, q *azqueue.QueueClient, m *core.TaskMessage) error {
	body, err := core.MarshalTaskMessage(m)
	if err != nil {
		return fmt.Errorf("encode message %v: %w", m, err)
	}
	env := envelope{ID: durable.NewUUID(), Sent: time.Now().UTC(), Body: body}
	if base64.StdEncoding.EncodedLen(len(body)) > largeMessageThreshold {
		name := escapeKey(m.Target.InstanceID) + "/message-" + env.ID + ".gz"
		if err := b.putBlob(ctx, name, body); err != nil {
			return fmt.Errorf("large message %v: %w", m, err)
		}
		env.Body, env.Blob = nil, name
	}
	text, err := json.Marshal(env)
	if err != nil {
		return err
	}
	var opts azqueue.EnqueueMessageOptions
	opts.TimeToLive = to.Ptr(int32(-1))
	if due := m.Event.FireAt; dueKind(m.Event.Kind) && !due.IsZero() {
		if d := time.Until(due); d > 0 {
			if d > maxVisibilityDelay {
				d = maxVisibilityDelay
			}
			// Round up: a message visible early is only sent again.
			opts.VisibilityTimeout = to.Ptr(int32((d + time.Second - 1) / time.Second))
		}
	}
	if _, err := q.EnqueueMessage(ctx, string(text), &opts); err != nil {
		return fmt.Errorf("enqueue %v: %w", m, err)
	}
	return nil
}

// dueKind reports whether FireAt on an event of this kind delays its
// delivery.
func dueKind(k core.EventKind) bool {
	switch k {
	case core.EventTimerFired, core.EventExecutionStarted, core.EventEntityOperationSignaled:
		return true
	}
	return false
}

// decode reads the body of a dequeued message (from its blob if large).
func (b *Backend) decode(ctx context.Context, text string) (envelope, *core.TaskMessage, error) {
	var env envelope
	if err := json.Unmarshal([]byte(text), &env); err != nil {
		return env, nil, fmt.Errorf("decode queue message: %w", err)
	}
	body := env.Body
	if env.Blob != "" {
		var err error
		if body, err = b.getBlob(ctx, env.Blob); err != nil {
			return env, nil, fmt.Errorf("large message %s: %w", env.Blob, err)
		}
	}
	m, err := core.UnmarshalTaskMessage(body)
	if err != nil {
		return env, nil, fmt.Errorf("decode message %s: %w", env.ID, err)
	}
	return env, m, nil
}

// dequeue takes up to 32 visible messages of q for the visibility timeout.
func (b *Backend) dequeue(ctx context.Context, q *azqueue.QueueClient, n int) ([]*received, error) {
	resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(n)),
		VisibilityTimeout: to.Ptr(int32(b.cfg.VisibilityTimeout / time.Second))})
	if err != nil {
		return nil, err
	}
	out := make([]*received, 0, len(resp.Messages))
	for _, dm := range resp.Messages {
		r := &received{queue: q, id: *dm.MessageID, pop: *dm.PopReceipt, text: *dm.MessageText}
		if dm.DequeueCount != nil {
			r.dequeues = *dm.DequeueCount
		}
		if dm.InsertionTime != nil {
			r.insertedAt = *dm.InsertionTime
		}
		env, m, err := b.decode(ctx, *dm.MessageText)
		if err != nil {
			// A message nobody can read is dropped rather than retried
			// forever.
			b.log.Error("azstorage: dropping unreadable message", "queue", q.URL(), "err", err)
			_ = b.deleteMessage(ctx, r)
			continue
		}
		r.env, r.msg = env, m
		out = append(out, r)
	}
	return out, nil
}

func (b *Backend) deleteMessage(ctx context.Context, r *received) error {
	_, err := r.queue.DeleteMessage(ctx, r.id, r.pop, nil)
	return err
}

// abandon makes a message visible again after delay.
func (b *Backend) abandon(ctx context.Context, r *received, delay time.Duration) {
	secs := int32((delay + time.Second - 1) / time.Second)
	if _, err := r.queue.UpdateMessage(ctx, r.id, r.pop, r.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: &secs}); err != nil {
		b.log.Debug("azstorage: abandon message", "err", err)
	}
}

func gzipBytes(p []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Close()
	return buf.Bytes()
}

func gunzipBytes(p []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
