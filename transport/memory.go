package transport

import (
	"context"
	"fmt"
	"sync"
)

// Memory is the in-process transport: queues in memory, shared by every
// host that is given the same *Memory.
type Memory struct {
	partitions []*queue
	load       *queue

	mu      sync.Mutex
	clients map[string]chan *Packet
	closed  bool
}

// NewMemory returns an in-process transport with n partition queues.
func NewMemory(n int) *Memory {
	m := &Memory{clients: map[string]chan *Packet{}, load: newQueue()}
	for i := 0; i < n; i++ {
		m.partitions = append(m.partitions, newQueue())
	}
	return m
}

// queue is an ordered, positioned, growable queue. Positions start at 0
// and never repeat; trimmed prefixes are dropped from memory.
type queue struct {
	mu     sync.Mutex
	base   uint64 // position of items[0]
	items  []*Packet
	notify chan struct{} // closed and replaced on every append
	closed bool
	seen   bool // a consumer has read from this queue
}

func newQueue() *queue { return &queue{notify: make(chan struct{})} }

func (q *queue) append(ps []*Packet) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.items = append(q.items, ps...)
	close(q.notify)
	q.notify = make(chan struct{})
	return nil
}

func (q *queue) read(ctx context.Context, from uint64) ([]*Packet, uint64, error) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, from, ErrClosed
		}
		if from < q.base {
			q.mu.Unlock()
			return nil, from, fmt.Errorf("position %d was trimmed (queue starts at %d): %w", from, q.base, ErrPositionGone)
		}
		if (!q.seen && from > q.base) || from > q.base+uint64(len(q.items)) {
			// A consumer that resumes past the start of a queue created
			// in this process (its state outlived an earlier process):
			// the packets here were all sent to this process, so none of
			// them was seen; they take the positions from `from` on.
			q.base = from
		}
		q.seen = true
		end := q.base + uint64(len(q.items))
		if from < end {
			out := append([]*Packet(nil), q.items[from-q.base:]...)
			q.mu.Unlock()
			return out, end, nil
		}
		wait := q.notify
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, from, ctx.Err()
		}
	}
}

// lengthFrom counts the packets at or after position from. A reader that
// resumes past the start of a queue it has not read yet (see read) takes
// the packets from its own position on: they all count.
func (q *queue) lengthFrom(from uint64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.items) - q.indexOf(from))
}

// indexOf is the index in items of position from, at most len(items): a
// queue no consumer has read yet is all unread, wherever it resumes (see
// read). Called with mu held.
func (q *queue) indexOf(from uint64) int {
	if !q.seen || from <= q.base {
		return 0
	}
	return int(min(from-q.base, uint64(len(q.items))))
}

// unreadWork counts the work packets (IsWork) among the first limit
// packets at or after position from.
func (q *queue) unreadWork(from uint64, limit int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	start := q.indexOf(from)
	n := 0
	for _, pk := range q.items[start:min(len(q.items), start+max(limit, 0))] {
		if IsWork(pk) {
			n++
		}
	}
	return n
}

func (q *queue) trim(upTo uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if upTo <= q.base {
		return
	}
	n := upTo - q.base
	if n > uint64(len(q.items)) {
		n = uint64(len(q.items))
	}
	// Copy the rest so the dropped packets can be collected.
	rest := make([]*Packet, len(q.items)-int(n), cap(q.items)-int(n))
	copy(rest, q.items[n:])
	q.items = rest
	q.base += n
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.notify)
	}
}

func (m *Memory) partition(p int) (*queue, error) {
	if p < 0 || p >= len(m.partitions) {
		return nil, fmt.Errorf("transport: no partition %d (have %d)", p, len(m.partitions))
	}
	return m.partitions[p], nil
}

// PartitionCount returns the number of partition queues.
func (m *Memory) PartitionCount() int { return len(m.partitions) }

// SendToPartition appends packets to a partition's queue.
func (m *Memory) SendToPartition(p int, packets ...*Packet) error {
	q, err := m.partition(p)
	if err != nil {
		return err
	}
	return q.append(packets)
}

// ReceivePartition reads a partition's queue from a position.
func (m *Memory) ReceivePartition(ctx context.Context, p int, from uint64) ([]*Packet, uint64, error) {
	q, err := m.partition(p)
	if err != nil {
		return nil, from, err
	}
	return q.read(ctx, from)
}

// PartitionQueueLength returns the number of packets in a partition's
// queue at or after position from.
func (m *Memory) PartitionQueueLength(p int, from uint64) (int64, bool) {
	q, err := m.partition(p)
	if err != nil {
		return 0, false
	}
	return q.lengthFrom(from), true
}

// UnreadWork counts the work packets in a partition's queue at or after
// position from (InputProber).
func (m *Memory) UnreadWork(_ context.Context, p int, from uint64, limit int) (int, error) {
	q, err := m.partition(p)
	if err != nil {
		return 0, err
	}
	return q.unreadWork(from, limit), nil
}

// TrimPartition drops a partition queue's packets before upTo.
func (m *Memory) TrimPartition(p int, upTo uint64) {
	if q, err := m.partition(p); err == nil {
		q.trim(upTo)
	}
}

// clientBuffer bounds a client's response queue; a client that does not
// drain it loses responses rather than stalling partitions.
const clientBuffer = 1 << 16

// ListenClient opens a client's response queue. The returned function
// closes it.
func (m *Memory) ListenClient(clientID string) (<-chan *Packet, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	if _, dup := m.clients[clientID]; dup {
		return nil, nil, fmt.Errorf("transport: client %s is already listening", clientID)
	}
	ch := make(chan *Packet, clientBuffer)
	m.clients[clientID] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.clients, clientID)
			m.mu.Unlock()
		})
	}, nil
}

// SendToClient delivers packets to a listening client.
func (m *Memory) SendToClient(clientID string, packets ...*Packet) error {
	m.mu.Lock()
	ch := m.clients[clientID]
	m.mu.Unlock()
	if ch == nil {
		return nil
	}
	for _, p := range packets {
		select {
		case ch <- p:
		default:
			return fmt.Errorf("transport: response queue of client %s is full", clientID)
		}
	}
	return nil
}

// SendToLoadMonitor appends packets to the load monitor's queue.
func (m *Memory) SendToLoadMonitor(packets ...*Packet) error { return m.load.append(packets) }

// ReceiveLoadMonitor reads the load monitor's queue from a position.
func (m *Memory) ReceiveLoadMonitor(ctx context.Context, from uint64) ([]*Packet, uint64, error) {
	return m.load.read(ctx, from)
}

// Close closes every queue; blocked receivers return ErrClosed.
func (m *Memory) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	for _, q := range m.partitions {
		q.close()
	}
	m.load.close()
}

// CarriesSpeculation says that packets arrive as sent, speculative
// batches and confirmations included (they are passed by reference).
func (m *Memory) CarriesSpeculation() bool { return true }
