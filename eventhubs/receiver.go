package eventhubs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/netherite-go/netherite/eventhubs/eventhubspb"
	"github.com/netherite-go/netherite/transport"
)

// Positions. A partition's input position packs an Event Hubs sequence
// number and the index of a packet inside that event:
//
//	position = sequenceNumber << IndexBits | index
//
// Position(s, i) is the packet at index i of event s; Position(s, n) for
// an event of n packets is the position after its last packet, and reads
// the same as Position(s+1, 0). Position 0 is the start of a new hub.
// Sequence numbers get 64-IndexBits bits (over 10^13 events).
const IndexBits = 20

// Position returns the position of packet index of event seq.
func Position(seq int64, index int) uint64 { return uint64(seq)<<IndexBits | uint64(index) }

// SplitPosition returns the sequence number and index of a position.
func SplitPosition(pos uint64) (seq int64, index int) {
	return int64(pos >> IndexBits), int(pos & (1<<IndexBits - 1))
}

// entry is one packet of the current event: decoded, a blob reference to
// fetch, or nil (dropped).
type entry struct {
	packet *transport.Packet
	blob   *eventhubspb.BlobRef
	client string
}

type current struct {
	seq     int64
	entries []*entry
}

// after returns the position after the packets before index j: the
// next event's first once the event is done.
func (c *current) after(j int) uint64 {
	if j >= len(c.entries) {
		return Position(c.seq+1, 0)
	}
	return Position(c.seq, j)
}

// A receiver holds at most prefetch events in the client and pumpBuffer
// more on its way to the reader: events are up to 1 MiB, and a partition
// that lags behind must not buffer hundreds of them.
const (
	prefetch   = 64
	pumpBuffer = 16
)

type pumped struct {
	ev  *azeventhubs.ReceivedEventData
	err error
}

// reader reads one Event Hubs partition for ReceivePartition (or the
// load monitor's), keeping its receiver open across calls while the
// positions asked for continue where the last call ended.
type reader struct {
	t          *Transport
	hub        string
	partition  int
	what       string // for errors: "partition 3", "load monitor"
	ownerLevel *int64

	mu       sync.Mutex // one call at a time
	pc       *azeventhubs.PartitionClient
	stopPump context.CancelFunc
	pumpDone chan struct{}
	ch       chan pumped
	nextSeq  int64 // the sequence number the pump delivers next
	cur      *current
	marks    senderMarks
	deposed  atomic.Bool
	released chan struct{} // closed by ReleasePartition
}

type blobAt struct {
	pos  uint64
	name string
}

func (t *Transport) reader(p int) (*reader, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, transport.ErrClosed
	}
	r := t.readers[p]
	if r == nil {
		r = &reader{t: t, hub: t.names.Partitions, partition: p, what: fmt.Sprintf("partition %d", p), marks: senderMarks{},
			released: make(chan struct{})}
		if p < 0 {
			r.hub, r.partition, r.what = t.names.LoadMonitor, 0, "load monitor"
		} else {
			lvl, ok := t.levels[p]
			if !ok {
				lvl = t.o.OwnerLevel
			}
			r.ownerLevel = &lvl
		}
		t.readers[p] = r
	}
	return r, nil
}

// ReceivePartition returns the packets at and after position from of a
// partition's input queue, waiting until there is one, and the position
// after the last one. The packets of one call come from one event and have
// consecutive positions from, from+1, ...; an event holding only dropped
// packets (another task hub's) gives no packets and a later position.
//
// A position no longer in the hub (expired by retention) is an error
// wrapping transport.ErrPositionGone; a receiver deposed by a higher owner
// level gives an error wrapping ErrOwnershipLost, for good.
func (t *Transport) ReceivePartition(ctx context.Context, p int, from uint64) ([]*transport.Packet, uint64, error) {
	if p < 0 || p >= t.o.PartitionCount {
		return nil, from, fmt.Errorf("eventhubs: no partition %d (have %d)", p, t.o.PartitionCount)
	}
	r, err := t.reader(p)
	if err != nil {
		return nil, from, err
	}
	return r.receive(ctx, from)
}

// ReceiveLoadMonitor reads the load monitor's queue from a position, as
// ReceivePartition does, except that a position no longer in the hub (the
// monitor did not run for longer than the hub's retention, or the hub was
// recreated) is skipped: load reports are soft state, so the reader goes
// on from the end of the queue (no packets, the position of the next
// event) instead of failing.
func (t *Transport) ReceiveLoadMonitor(ctx context.Context, from uint64) ([]*transport.Packet, uint64, error) {
	r, err := t.reader(-1)
	if err != nil {
		return nil, from, err
	}
	pks, next, err := r.receive(ctx, from)
	if !errors.Is(err, transport.ErrPositionGone) {
		return pks, next, err
	}
	props, perr := t.partitionProperties(ctx, r.hub, "0")
	if perr != nil {
		return nil, from, errors.Join(err, fmt.Errorf("eventhubs: load monitor: reading the queue's end: %w", perr))
	}
	tail := Position(max(props.LastEnqueuedSequenceNumber+1, 0), 0)
	t.log.Warn("eventhubs: load monitor queue position gone; going on from the end of the queue",
		slog.Uint64("position", from), slog.Uint64("next", tail), slog.Any("error", err))
	return nil, tail, nil
}

// ReleasePartition closes a partition's receiver (and forgets that it
// was deposed): call it when the host stops owning the partition. A
// ReceivePartition call waiting on it returns transport.ErrClosed.
func (t *Transport) ReleasePartition(p int) {
	t.mu.Lock()
	r := t.readers[p]
	delete(t.readers, p)
	t.mu.Unlock()
	if r != nil {
		close(r.released)
		r.mu.Lock()
		r.closeLocked()
		r.mu.Unlock()
	}
}

// SetOwnerLevel sets the owner level (epoch) of a partition's receiver,
// instead of Options.OwnerLevel (a host may take it from the partition
// lease's generation, so that the latest owner always wins). It releases
// the partition's current receiver (see ReleasePartition): the next
// ReceivePartition opens one with the new level.
func (t *Transport) SetOwnerLevel(p int, level int64) {
	t.mu.Lock()
	t.levels[p] = level
	t.mu.Unlock()
	t.ReleasePartition(p)
}

// TrimPartition says that the packets before upTo are durably applied:
// the blobs of large packets among them are deleted (the events
// themselves are dropped by the hub's retention).
func (t *Transport) TrimPartition(p int, upTo uint64) {
	t.blobMu.Lock()
	refs := t.blobRefs[p]
	n := 0
	for n < len(refs) && refs[n].pos < upTo {
		n++
	}
	gone := append([]blobAt(nil), refs[:n]...)
	t.blobRefs[p] = refs[n:]
	t.blobMu.Unlock()
	for _, b := range gone {
		t.deleteBlob(b.name)
	}
}

func (r *reader) errorf(format string, args ...any) error {
	return fmt.Errorf("eventhubs: %s: "+format, append([]any{r.what}, args...)...)
}

func (r *reader) receive(ctx context.Context, from uint64) ([]*transport.Packet, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deposed.Load() {
		return nil, from, r.errorf("%w", ErrOwnershipLost)
	}
	select {
	case <-r.released:
		return nil, from, transport.ErrClosed
	default:
	}
	if r.t.isClosed() {
		return nil, from, transport.ErrClosed
	}
	seq, idx := SplitPosition(from)
	want, skip := seq, idx
	if idx >= maxPacketsPerEvent {
		return nil, from, r.errorf("position %d has index %d, past the most packets an event holds", from, idx)
	}
	if c := r.cur; c != nil && c.seq == seq {
		if idx < len(c.entries) {
			return r.serve(ctx, idx)
		}
		if idx > 0 {
			// The event is done: move to the next one (its packets
			// have positions from Position(seq+1, 0)).
			return nil, Position(seq+1, 0), nil
		}
	}
	if r.pc == nil || r.nextSeq != want {
		if err := r.open(ctx, want); err != nil {
			return nil, from, err
		}
	}
	var ev *azeventhubs.ReceivedEventData
	select {
	case it := <-r.ch:
		if it.err != nil {
			if errors.Is(it.err, ErrOwnershipLost) {
				r.closeLocked()
			}
			return nil, from, r.errorf("%w", it.err)
		}
		ev = it.ev
	case <-ctx.Done():
		return nil, from, ctx.Err()
	case <-r.t.ctx.Done():
		return nil, from, transport.ErrClosed
	case <-r.released:
		return nil, from, transport.ErrClosed
	}
	if r.deposed.Load() {
		return nil, from, r.errorf("%w", ErrOwnershipLost)
	}
	if ev.SequenceNumber != want {
		// A receiver starting at an inclusive sequence number gets that
		// event first, unless it is gone.
		r.closeLocked()
		if ev.SequenceNumber > want {
			return nil, from, r.errorf("event %d (position %d) is gone, the first event is %d: %w", want, from, ev.SequenceNumber, transport.ErrPositionGone)
		}
		return nil, from, r.errorf("got event %d, want %d", ev.SequenceNumber, want)
	}
	r.nextSeq = want + 1
	r.t.st.eventsReceived.Add(1)
	r.cur = &current{seq: want, entries: r.t.decodeEvent(r.what, ev.Body, r.marks)}
	if skip >= len(r.cur.entries) {
		return nil, Position(want+1, 0), nil
	}
	return r.serve(ctx, skip)
}

// serve returns the run of packets of the current event from index i.
func (r *reader) serve(ctx context.Context, i int) ([]*transport.Packet, uint64, error) {
	c := r.cur
	if c.entries[i] == nil {
		j := i
		for j < len(c.entries) && c.entries[j] == nil {
			j++
		}
		return nil, c.after(j), nil
	}
	j := i
	for j < len(c.entries) && c.entries[j] != nil {
		j++
	}
	out := make([]*transport.Packet, 0, j-i)
	for k := i; k < j; k++ {
		e := c.entries[k]
		if e.packet == nil {
			pk, err := r.t.fetchBlob(ctx, e.blob, e.client)
			if err != nil {
				return nil, Position(c.seq, i), r.errorf("%w", err)
			}
			if pk == nil {
				c.entries[k] = nil // a stray in the blob: cut the run here
				j = k
				break
			}
			e.packet = pk
			r.t.recordBlob(r.partition, r.hub, Position(c.seq, k), string(e.blob.Name))
		}
		out = append(out, e.packet)
	}
	if len(out) == 0 {
		return nil, c.after(j), nil
	}
	r.t.st.packetsReceived.Add(int64(len(out)))
	return out, c.after(j), nil
}

// open (re)starts the receiver at sequence number seq (inclusive).
func (r *reader) open(ctx context.Context, seq int64) error {
	r.closeLocked()
	pid := strconv.Itoa(r.partition)
	props, err := r.t.partitionProperties(ctx, r.hub, pid)
	if err != nil {
		return r.errorf("reading the partition's properties: %w", err)
	}
	if props.BeginningSequenceNumber > seq && !(props.IsEmpty && props.LastEnqueuedSequenceNumber < seq) {
		return r.errorf("event %d is gone, the partition begins at %d: %w", seq, props.BeginningSequenceNumber, transport.ErrPositionGone)
	}
	if seq > props.LastEnqueuedSequenceNumber+1 {
		return r.errorf("event %d is past the end of the partition (last %d): was the hub recreated? %w", seq, props.LastEnqueuedSequenceNumber, transport.ErrPositionGone)
	}
	pc, err := r.t.consumers[r.hub].NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{SequenceNumber: &seq, Inclusive: true},
		OwnerLevel:    r.ownerLevel,
		Prefetch:      prefetch,
	})
	if err != nil {
		return r.errorf("%w", err)
	}
	pctx, cancel := context.WithCancel(r.t.ctx)
	r.pc, r.stopPump, r.pumpDone = pc, cancel, make(chan struct{})
	r.ch = make(chan pumped, pumpBuffer)
	// Marks hold only across continuous reading: a caller that reads
	// again from an earlier position must get those events again.
	r.nextSeq, r.cur, r.marks = seq, nil, senderMarks{}
	go pump(pctx, pc, r.ch, r.pumpDone, &r.t.st, r.t.log.With("hub", r.hub, "partition", r.partition), &r.deposed)
	return nil
}

func (r *reader) closeLocked() {
	if r.pc == nil {
		return
	}
	r.stopPump()
	<-r.pumpDone
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r.pc.Close(ctx)
	cancel()
	r.pc, r.cur = nil, nil
}

// pump receives events and hands them over on ch, retrying transient
// errors with backoff (the client rebuilds its link and connection). An
// error is handed over only after several failures in a row, or when the
// partition was taken (then deposed is set and the pump stops).
func pump(ctx context.Context, pc *azeventhubs.PartitionClient, ch chan<- pumped, done chan<- struct{}, st *counters, log *slog.Logger, deposed *atomic.Bool) {
	defer close(done)
	drained, cancel := context.WithCancel(context.Background())
	cancel() // an expired context: ReceiveEvents returns what is prefetched
	var delay time.Duration
	fails := 0
	for {
		evs, err := pc.ReceiveEvents(ctx, 1, nil)
		if err == nil {
			more, _ := pc.ReceiveEvents(drained, pumpBuffer, nil)
			evs = append(evs, more...)
		}
		for _, ev := range evs {
			select {
			case ch <- pumped{ev: ev}:
			case <-ctx.Done():
				return
			}
		}
		if err == nil {
			fails, delay = 0, 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if isOwnershipLost(err) {
			deposed.Store(true)
			select {
			case ch <- pumped{err: fmt.Errorf("%w: %v", ErrOwnershipLost, err)}:
			case <-ctx.Done():
			}
			return
		}
		fails++
		st.receiveRetries.Add(1)
		delay = backoff(delay)
		if fails%3 == 0 {
			log.Warn("receive failed; retrying", "failures", fails, "error", err)
			select {
			case ch <- pumped{err: fmt.Errorf("receive failed %d times: %w", fails, err)}:
			case <-ctx.Done():
				return
			}
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

func isOwnershipLost(err error) bool {
	var e *azeventhubs.Error
	return errors.As(err, &e) && e.Code == azeventhubs.ErrorCodeOwnershipLost
}

// senderMarks remembers the last event number read from each sender, to
// drop events stored twice (a send retried after an unknown outcome).
type senderMarks map[string]uint64

// recordBlob remembers the blob of a large partition packet, for
// TrimPartition.
func (t *Transport) recordBlob(p int, hub string, pos uint64, name string) {
	if hub != t.names.Partitions {
		return
	}
	t.blobMu.Lock()
	defer t.blobMu.Unlock()
	refs := t.blobRefs[p]
	// Positions only grow, except when a partition re-reads after a
	// restart: keep the list sorted and without repeats.
	i := len(refs)
	for i > 0 && refs[i-1].pos >= pos {
		i--
	}
	if i < len(refs) && refs[i].pos == pos {
		return
	}
	t.blobRefs[p] = append(refs[:i:i], append([]blobAt{{pos, name}}, refs[i:]...)...)
}

// decodeEvent decodes an event's packets; entries of strays and of
// undecodable packets are nil, and a duplicate event has none.
func (t *Transport) decodeEvent(what string, body []byte, marks senderMarks) []*entry {
	eb, err := splitBody(body)
	if err != nil {
		t.st.undecodable.Add(1)
		t.log.Error("undecodable event body; the rest of the event is dropped", "queue", what, "error", err)
	}
	if eb.sender != "" && eb.senderSeq > 0 {
		if last, ok := marks[eb.sender]; ok && eb.senderSeq <= last {
			t.st.duplicates.Add(int64(len(eb.envs)))
			return nil
		}
		if len(marks) > 4096 {
			clear(marks) // senders come and go; forgetting only risks letting a duplicate through
		}
		marks[eb.sender] = eb.senderSeq
	}
	out := make([]*entry, len(eb.envs))
	for i, b := range eb.envs {
		env, err := decodeEnvelope(b)
		if env != nil && env.taskHub != t.o.TaskHubID {
			t.st.strays.Add(1)
			continue
		}
		if err != nil {
			t.st.undecodable.Add(1)
			t.log.Error("undecodable packet dropped", "queue", what, "index", i, "error", err)
			continue
		}
		out[i] = &entry{packet: env.packet, blob: env.blob, client: env.client}
	}
	return out
}

// fetchBlob reads a large packet from its blob, retrying until it succeeds
// or ctx ends. It returns nil for a packet of another task hub.
func (t *Transport) fetchBlob(ctx context.Context, ref *eventhubspb.BlobRef, client string) (*transport.Packet, error) {
	if t.o.Blobs == nil {
		return nil, fmt.Errorf("packet in blob %s, but no blob store is configured", ref.Name)
	}
	var delay time.Duration
	for attempt := 1; ; attempt++ {
		data, err := t.o.Blobs.Get(ctx, string(ref.Name))
		if err == nil {
			sum := sha256.Sum256(data)
			if uint64(len(data)) != ref.Size || !bytes.Equal(sum[:], ref.Sha256) {
				err = fmt.Errorf("blob %s has %d bytes not matching the reference (%d bytes)", ref.Name, len(data), ref.Size)
			} else {
				env, derr := decodeEnvelope(data)
				switch {
				case env != nil && env.taskHub != t.o.TaskHubID:
					t.st.strays.Add(1)
					return nil, nil
				case derr != nil:
					return nil, fmt.Errorf("blob %s: %w", ref.Name, derr)
				case env.packet == nil:
					return nil, fmt.Errorf("blob %s holds no packet", ref.Name)
				}
				t.st.blobsReceived.Add(1)
				return env.packet, nil
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading blob %s: %w", ref.Name, ctx.Err())
		}
		delay = backoff(delay)
		t.st.receiveRetries.Add(1)
		if attempt%5 == 0 {
			t.log.Warn("reading a large payload failed; retrying", "blob", string(ref.Name), "attempt", attempt, "error", err)
		}
		if !sleep(ctx, delay) {
			return nil, fmt.Errorf("reading blob %s: %w", ref.Name, ctx.Err())
		}
	}
}

// deleteBlob queues a blob for deletion (best effort: a blob not deleted
// is garbage, never wrong).
func (t *Transport) deleteBlob(name string) {
	select {
	case t.deletes <- name:
	default:
		t.log.Warn("blob deletion queue full; large payload left behind", "blob", name)
	}
}

func (t *Transport) deleter() {
	defer t.wg.Done()
	for {
		select {
		case name := <-t.deletes:
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				ctx, cancel := context.WithTimeout(t.ctx, 30*time.Second)
				err = t.o.Blobs.Delete(ctx, name)
				cancel()
				if err == nil || t.ctx.Err() != nil {
					break
				}
				if !sleep(t.ctx, time.Duration(attempt+1)*200*time.Millisecond) {
					break
				}
			}
			if err == nil {
				t.st.blobsDeleted.Add(1)
			} else {
				t.log.Warn("deleting a large payload failed; left behind", "blob", name, "error", err)
			}
		case <-t.ctx.Done():
			return
		}
	}
}
