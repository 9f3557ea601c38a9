package eventhubs

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/netherite-go/netherite/transport"
)

// slotReader reads one client partition for the clients listening on it
// in this process, and hands each response to its client.
type slotReader struct {
	t    *Transport
	slot int
	hub  string
	pc   *azeventhubs.PartitionClient

	mu      sync.Mutex
	clients map[string]chan *transport.Packet

	cancel context.CancelFunc
	done   chan struct{}
}

// ListenClient opens a client's response queue: the responses sent to
// clientID after ListenClient returns arrive on the channel (in order per
// sending partition). The function it returns stops listening. Clients
// share client partitions (ClientSlot); a reader drops the responses of
// clients not listening here.
func (t *Transport) ListenClient(clientID string) (<-chan *transport.Packet, func(), error) {
	slot := ClientSlot(clientID)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, nil, transport.ErrClosed
	}
	s := t.slots[slot]
	if s != nil {
		defer t.mu.Unlock()
		return s.add(clientID)
	}
	t.mu.Unlock()

	// Start a reader on the slot, at the event after the last one
	// enqueued now, so that every later response is seen.
	hub := t.names.Clients[slot/ClientHubPartitions]
	pid := strconv.Itoa(slot % ClientHubPartitions)
	ctx, cancel := context.WithTimeout(t.ctx, time.Minute)
	props, err := t.partitionProperties(ctx, hub, pid)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("eventhubs: listen for client %s on %s/%s: %w", clientID, hub, pid, err)
	}
	start := props.LastEnqueuedSequenceNumber + 1
	pc, err := t.consumers[hub].NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{SequenceNumber: &start, Inclusive: true},
		Prefetch:      prefetch,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("eventhubs: listen for client %s on %s/%s: %w", clientID, hub, pid, err)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		pc.Close(context.Background())
		return nil, nil, transport.ErrClosed
	}
	if other := t.slots[slot]; other != nil {
		// Another client of the slot started one meanwhile; it started
		// earlier, so it sees what this one would.
		go pc.Close(context.Background())
		return other.add(clientID)
	}
	s = &slotReader{t: t, slot: slot, hub: hub, pc: pc, clients: map[string]chan *transport.Packet{}, done: make(chan struct{})}
	var pctx context.Context
	pctx, s.cancel = context.WithCancel(t.ctx)
	t.slots[slot] = s
	go s.run(pctx)
	return s.add(clientID)
}

// add registers a client; the caller holds t.mu.
func (s *slotReader) add(clientID string) (<-chan *transport.Packet, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.clients[clientID]; dup {
		return nil, nil, fmt.Errorf("eventhubs: client %s is already listening", clientID)
	}
	ch := make(chan *transport.Packet, clientBuffer)
	s.clients[clientID] = ch
	var once sync.Once
	return ch, func() { once.Do(func() { s.remove(clientID) }) }, nil
}

func (s *slotReader) remove(clientID string) {
	t := s.t
	t.mu.Lock()
	s.mu.Lock()
	delete(s.clients, clientID)
	last := len(s.clients) == 0
	s.mu.Unlock()
	if last && t.slots[s.slot] == s {
		delete(t.slots, s.slot)
	} else {
		last = false
	}
	t.mu.Unlock()
	if last {
		go s.stop()
	}
}

func (s *slotReader) stop() {
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.pc.Close(ctx)
	cancel()
}

func (s *slotReader) run(ctx context.Context) {
	ch := make(chan pumped, pumpBuffer)
	pumpDone := make(chan struct{})
	go pump(ctx, s.pc, ch, pumpDone, &s.t.st, s.t.log.With("hub", s.hub, "slot", s.slot), new(atomic.Bool))
	defer func() {
		<-pumpDone
		close(s.done)
	}()
	what := fmt.Sprintf("client slot %d", s.slot)
	marks := senderMarks{}
	for {
		var it pumped
		select {
		case it = <-ch:
		case <-ctx.Done():
			return
		}
		if it.err != nil {
			continue // logged by the pump, which retries
		}
		s.t.st.eventsReceived.Add(1)
		for _, e := range s.t.decodeEvent(what, it.ev.Body, marks) {
			if e == nil {
				continue
			}
			s.mu.Lock()
			dst := s.clients[e.client]
			s.mu.Unlock()
			if dst == nil {
				s.t.st.clientDropped.Add(1)
				continue
			}
			pk := e.packet
			if pk == nil {
				var err error
				if pk, err = s.t.fetchBlob(ctx, e.blob, e.client); err != nil {
					if ctx.Err() != nil {
						return
					}
					s.t.log.Error("large response lost", "client", e.client, "error", err)
					continue
				}
				if pk == nil {
					continue
				}
				s.t.deleteBlob(string(e.blob.Name))
			}
			s.t.st.packetsReceived.Add(1)
			select {
			case dst <- pk:
			default:
				s.t.st.clientDropped.Add(1)
				s.t.log.Warn("client response queue full; response dropped", "client", e.client)
			}
		}
	}
}
