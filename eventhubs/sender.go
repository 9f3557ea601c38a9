package eventhubs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/google/uuid"

	"github.com/netherite-go/netherite/eventhubs/eventhubspb"
	"github.com/netherite-go/netherite/transport"
)

// destKey names one destination: an Event Hubs partition of a hub.
type destKey struct {
	hub       string
	partition int
}

func (k destKey) String() string { return k.hub + "/" + strconv.Itoa(k.partition) }

// item is one queued packet: its encoded envelope, or (large) the
// envelope to put in a blob first.
type item struct {
	env    []byte
	large  []byte
	client string
}

func (it item) size() int { return len(it.env) + len(it.large) }

// sender is the one goroutine sending to a destination, in order.
type sender struct {
	t    *Transport
	key  destKey
	name string // for blob names: pNN, cNNN, load
	prod *azeventhubs.ProducerClient
	id   []byte // this sender's id in event bodies
	seq  uint64 // events sent

	mu    sync.Mutex
	queue []item
	bytes int
	busy  bool          // a batch taken from the queue is being sent
	wake  chan struct{} // cap 1
	idle  chan struct{} // closed and replaced when queue and busy are both empty
}

// SendToPartition queues packets for a partition. It does not wait for
// the network: an error means the transport is closed or the
// destination's queue is full (the courier retries either way).
func (t *Transport) SendToPartition(p int, packets ...*transport.Packet) error {
	if p < 0 || p >= t.o.PartitionCount {
		return fmt.Errorf("eventhubs: no partition %d (have %d)", p, t.o.PartitionCount)
	}
	return t.enqueue(destKey{t.names.Partitions, p}, fmt.Sprintf("p%02d", p), "", packets)
}

// SendToClient queues responses for a client (on its client partition;
// the client's listener filters them by its id).
func (t *Transport) SendToClient(clientID string, packets ...*transport.Packet) error {
	slot := ClientSlot(clientID)
	return t.enqueue(destKey{t.names.Clients[slot/ClientHubPartitions], slot % ClientHubPartitions}, fmt.Sprintf("c%03d", slot), clientID, packets)
}

// SendToLoadMonitor queues packets for the load monitor.
func (t *Transport) SendToLoadMonitor(packets ...*transport.Packet) error {
	return t.enqueue(destKey{t.names.LoadMonitor, 0}, "load", "", packets)
}

func (t *Transport) enqueue(k destKey, name, client string, packets []*transport.Packet) error {
	items := make([]item, 0, len(packets))
	size := 0
	for i, p := range packets {
		if p == nil {
			return fmt.Errorf("eventhubs: send to %s: packet %d is nil", k, i)
		}
		env, err := encodePacket(t.o.TaskHubID, client, p)
		if err != nil {
			return fmt.Errorf("eventhubs: send to %s: encode packet %d: %w", k, i, err)
		}
		it := item{env: env, client: client}
		if len(env) > InlineLimit {
			switch {
			case len(env) > t.o.MaxPayloadBytes:
				return fmt.Errorf("eventhubs: send to %s: packet %d is %d bytes, over the limit of %d (Options.MaxPayloadBytes)", k, i, len(env), t.o.MaxPayloadBytes)
			case t.o.Blobs == nil:
				return fmt.Errorf("eventhubs: send to %s: packet %d is %d bytes, over the event limit of %d, and no blob store is configured for large payloads", k, i, len(env), InlineLimit)
			}
			it = item{large: env, client: client}
		}
		items = append(items, it)
		size += it.size()
	}
	s, err := t.sender(k, name)
	if err != nil {
		return err
	}
	return s.push(items, size)
}

func (t *Transport) sender(k destKey, name string) (*sender, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, transport.ErrClosed
	}
	s := t.senders[k]
	if s == nil {
		id := uuid.New()
		s = &sender{t: t, key: k, name: name, prod: t.producers[k.hub], id: id[:], wake: make(chan struct{}, 1),
			idle: make(chan struct{})}
		t.senders[k] = s
		t.wg.Add(1)
		go s.run()
	}
	return s, nil
}

func (s *sender) push(items []item, size int) error {
	s.mu.Lock()
	if s.bytes > 0 && s.bytes+size > s.t.queueLimit {
		s.mu.Unlock()
		return fmt.Errorf("eventhubs: send to %s: queue full (%d bytes waiting)", s.key, s.bytes)
	}
	s.queue = append(s.queue, items...)
	s.bytes += size
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// flush waits until the queue is sent or ctx ends.
func (s *sender) flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		empty := len(s.queue) == 0 && !s.busy
		idle := s.idle
		s.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("eventhubs: flush %s: %w", s.key, ctx.Err())
		}
	}
}

func (s *sender) run() {
	defer s.t.wg.Done()
	ctx := s.t.ctx
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		}
		for {
			s.mu.Lock()
			if len(s.queue) == 0 {
				s.busy = false
				close(s.idle)
				s.idle = make(chan struct{})
				s.mu.Unlock()
				break
			}
			// Take what fits in one batch.
			n, size := 0, 0
			for n < len(s.queue) && n < maxPacketsPerEvent {
				sz := len(s.queue[n].env)
				if s.queue[n].large != nil {
					sz = 256 // a blob reference
				}
				sz += bodyOverhead(sz)
				if n > 0 && size+sz > eventLimit {
					break
				}
				size += sz
				n++
			}
			batch := append([]item(nil), s.queue[:n]...)
			clear(s.queue[:n])
			s.queue = s.queue[n:]
			s.busy = true
			s.mu.Unlock()
			if !s.send(ctx, batch) {
				return
			}
			sz := 0
			for _, it := range batch {
				sz += it.size()
			}
			s.mu.Lock()
			s.bytes -= sz
			s.mu.Unlock()
		}
	}
}

// send puts the large payloads in blobs, then sends the packets as one
// event, retrying until it succeeds; false if the transport closed.
func (s *sender) send(ctx context.Context, items []item) bool {
	size := 64 // the sender trailer
	for _, it := range items {
		n := len(it.env)
		if it.large != nil {
			n = 512 // a blob reference
		}
		size += n + bodyOverhead(n)
	}
	body := make([]byte, 0, size)
	for _, it := range items {
		env := it.env
		if it.large != nil {
			var ok bool
			if env, ok = s.putBlob(ctx, it); !ok {
				return false
			}
		}
		body = appendToBody(body, env)
	}
	s.seq++
	body = appendSender(body, s.id, s.seq)
	var delay time.Duration
	for attempt := 1; ; attempt++ {
		err := s.sendEvent(ctx, body)
		if err == nil {
			st := &s.t.st
			st.packetsSent.Add(int64(len(items)))
			st.eventsSent.Add(1)
			st.batchesSent.Add(1)
			st.bytesSent.Add(int64(len(body)))
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.t.st.sendRetries.Add(1)
		delay = backoff(delay)
		lvl := slog.LevelDebug
		if attempt%5 == 0 {
			lvl = slog.LevelWarn
		}
		s.t.log.Log(ctx, lvl, "send failed; retrying", "dest", s.key.String(), "attempt", attempt, "backoff", delay, "error", err)
		if !sleep(ctx, delay) {
			return false
		}
	}
}

func (s *sender) sendEvent(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pid := strconv.Itoa(s.key.partition)
	b, err := s.prod.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: &pid})
	if err != nil {
		return err
	}
	if err := b.AddEventData(&azeventhubs.EventData{Body: body}, nil); err != nil {
		if errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
			return fmt.Errorf("event of %d bytes does not fit a batch: %w", len(body), err)
		}
		return err
	}
	return s.prod.SendEventDataBatch(ctx, b, nil)
}

// putBlob writes a large packet to a blob (retrying) and returns the
// envelope that references it.
func (s *sender) putBlob(ctx context.Context, it item) ([]byte, bool) {
	name := fmt.Sprintf("%s/%s/%s", s.t.o.TaskHubID, s.name, uuid.NewString())
	sum := sha256.Sum256(it.large)
	var delay time.Duration
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := s.t.o.Blobs.Put(pctx, name, it.large)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, false
		}
		s.t.st.sendRetries.Add(1)
		delay = backoff(delay)
		s.t.log.Warn("writing a large payload failed; retrying", "blob", name, "attempt", attempt, "error", err)
		if !sleep(ctx, delay) {
			return nil, false
		}
	}
	s.t.st.blobsSent.Add(1)
	env, err := encodeBlobRef(s.t.o.TaskHubID, it.client, &eventhubspb.BlobRef{Name: []byte(name), Size: uint64(len(it.large)), Sha256: sum[:]})
	if err != nil {
		// Cannot happen: the reference is a few plain fields.
		panic(fmt.Sprintf("eventhubs: encode blob reference: %v", err))
	}
	return env, true
}

// Flush waits until every packet queued so far has been sent (or ctx
// ends).
func (t *Transport) Flush(ctx context.Context) error {
	t.mu.Lock()
	senders := make([]*sender, 0, len(t.senders))
	for _, s := range t.senders {
		senders = append(senders, s)
	}
	t.mu.Unlock()
	for _, s := range senders {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}
