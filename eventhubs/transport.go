package eventhubs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/netherite-go/netherite/transport"
)

// ErrOwnershipLost is wrapped by ReceivePartition's error once a receiver
// with a higher owner level (epoch) took the partition: another host owns
// it now. The host must stop the partition; this Transport never returns
// more packets of that partition (until ReleasePartition).
var ErrOwnershipLost = errors.New("eventhubs: partition ownership lost to a receiver with a higher owner level")

// Hub names and sizes, as in Netherite.
const (
	PartitionsHub    = "partitions"
	ClientsHubPrefix = "clients"
	LoadMonitorHub   = "loadmonitor"
	// ClientHubs is the number of client hubs, ClientHubPartitions their
	// partition count: ClientSlots client partitions in all.
	ClientHubs          = 4
	ClientHubPartitions = 32
	ClientSlots         = ClientHubs * ClientHubPartitions
	// MaxPartitions is the most task-hub partitions (Event Hubs' limit for
	// a hub on the standard tier).
	MaxPartitions = 32
)

// Limits.
const (
	// BatchLimit is Event Hubs' largest batch (one delivery).
	BatchLimit = 1 << 20
	// eventLimit bounds one event's body: what is left of a batch after
	// the AMQP framing of the batch and its event.
	eventLimit = BatchLimit - 16<<10
	// InlineLimit is the largest encoded packet that travels in an event;
	// larger ones go to a blob.
	InlineLimit = eventLimit - 16
	// DefaultMaxPayloadBytes bounds a packet (in a blob).
	DefaultMaxPayloadBytes = 16 << 20
	// maxPacketsPerEvent keeps the index of a packet inside its event
	// within the bits of a position.
	maxPacketsPerEvent = 1 << 16
	// defaultQueueLimit bounds the bytes queued for one destination; sends
	// beyond it fail (the courier retries them).
	defaultQueueLimit = 64 << 20
	// clientBuffer bounds a client's response channel.
	clientBuffer = 1 << 16
)

// Options configure a Transport.
type Options struct {
	// Connection is the Event Hubs namespace's connection string
	// (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...),
	// of the emulator (with UseDevelopmentEmulator=true) or of Azure; or
	// only the namespace's host name (myns.servicebus.windows.net), with
	// Credential or else azidentity's DefaultAzureCredential (Azure RBAC:
	// the "Azure Event Hubs Data Owner" role, or Sender and Receiver).
	Connection string
	// Credential authenticates to a namespace given by host name.
	Credential azcore.TokenCredential
	// HubPrefix prefixes the hub names, so several task hubs can share a
	// namespace.
	HubPrefix string
	// TaskHubID is the task hub's GUID: stamped on every packet; received
	// packets with another are dropped (Stats.StraysDropped).
	TaskHubID string
	// PartitionCount is the number of task-hub partitions (and of
	// partitions of the partitions hub).
	PartitionCount int
	// OwnerLevel is the epoch of this host's partition receivers: a
	// receiver with a higher one deposes them (ErrOwnershipLost).
	OwnerLevel int64
	// Blobs keeps packets larger than InlineLimit; without it, sending one
	// fails with an error naming the size and the limit.
	Blobs BlobStore
	// MaxPayloadBytes bounds a packet's encoded size (default 16 MiB).
	MaxPayloadBytes int
	Logger          *slog.Logger
	// FlushTimeout bounds how long Close waits for queued packets to go
	// out (default 5 s).
	FlushTimeout time.Duration
	// PayloadRetention is the longest retention of the task hub's hubs
	// (default DefaultPayloadRetention): blobs of large packets written
	// longer ago than it (plus a margin) are swept (see Sweeper).
	PayloadRetention time.Duration
	// SweepInterval is how often the owner of partition 0 sweeps, when
	// Blobs is a Sweeper (default DefaultSweepInterval; negative: never).
	SweepInterval time.Duration
}

// BlobStore keeps large payloads. Names are paths of '/'-separated
// segments of letters, digits, '-', '_' and '.'.
type BlobStore interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	Delete(ctx context.Context, name string) error
}

// Stats counts what a Transport did.
type Stats struct {
	PacketsSent     int64
	EventsSent      int64
	BatchesSent     int64
	BytesSent       int64
	PacketsReceived int64
	EventsReceived  int64
	// StraysDropped counts packets of another task hub.
	StraysDropped int64
	// Undecodable counts packets that could not be decoded (another wire
	// version, corrupt); they are dropped and logged.
	Undecodable int64
	// ClientDropped counts responses for clients nobody listens to here
	// (expected: client partitions are shared) or whose buffer was full.
	ClientDropped int64
	BlobsSent     int64
	BlobsReceived int64
	BlobsDeleted  int64
	// Duplicates counts packets dropped because their event was stored
	// twice (a send retried after an unknown outcome).
	Duplicates int64
	// SendRetries counts failed sends (each is retried).
	SendRetries int64
	// ReceiveRetries counts failed receives (each is retried).
	ReceiveRetries int64
	// Sweeps counts the sweeps of old blobs this transport made (as the
	// owner of partition 0), BlobsSwept the blobs they deleted.
	Sweeps     int64
	BlobsSwept int64
}

// EventsPerBatch is the mean number of events per Event Hubs batch sent.
func (s Stats) EventsPerBatch() float64 { return ratio(s.EventsSent, s.BatchesSent) }

// PacketsPerEvent is the mean number of packets per event sent.
func (s Stats) PacketsPerEvent() float64 { return ratio(s.PacketsSent, s.EventsSent) }

// PacketsPerBatch is the mean number of packets per Event Hubs batch sent.
func (s Stats) PacketsPerBatch() float64 { return ratio(s.PacketsSent, s.BatchesSent) }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

type counters struct {
	packetsSent, eventsSent, batchesSent, bytesSent atomic.Int64
	packetsReceived, eventsReceived                 atomic.Int64
	strays, undecodable, clientDropped, duplicates  atomic.Int64
	blobsSent, blobsReceived, blobsDeleted          atomic.Int64
	sendRetries, receiveRetries                     atomic.Int64
	sweeps, blobsSwept                              atomic.Int64
}

// Transport is a transport.Transport over Event Hubs. See the package
// documentation.
type Transport struct {
	o     Options
	log   *slog.Logger
	names HubNames
	st    counters

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	producers map[string]*azeventhubs.ProducerClient // by hub
	consumers map[string]*azeventhubs.ConsumerClient // by hub

	mu      sync.Mutex
	closed  bool
	senders map[destKey]*sender
	readers map[int]*reader // partition readers; -1: the load monitor
	levels  map[int]int64   // owner levels set by SetOwnerLevel
	slots   map[int]*slotReader

	deletes    chan string // blobs to delete
	queueLimit int         // per destination (tests lower it)

	blobMu   sync.Mutex
	blobRefs map[int][]blobAt // large packets read, by partition and position

	// The credential of a namespace given by host name (nil: use the
	// connection string), for the clients made later (props.go).
	namespace string
	cred      azcore.TokenCredential
	propsMu   sync.Mutex
	props     map[string]*azeventhubs.ConsumerClient // by hub: partition properties only
}

var _ transport.Transport = (*Transport)(nil)

// HubNames are the names of a task hub's event hubs.
type HubNames struct {
	Partitions  string
	Clients     [ClientHubs]string
	LoadMonitor string
}

// Names returns the hub names for a prefix.
func Names(prefix string) HubNames {
	n := HubNames{Partitions: prefix + PartitionsHub, LoadMonitor: prefix + LoadMonitorHub}
	for i := range n.Clients {
		n.Clients[i] = fmt.Sprintf("%s%s%d", prefix, ClientsHubPrefix, i)
	}
	return n
}

// All returns every hub name with its partition count, given the
// task hub's partition count.
func (n HubNames) All(partitionCount int) []HubSpec {
	out := []HubSpec{{n.Partitions, partitionCount}}
	for _, c := range n.Clients {
		out = append(out, HubSpec{c, ClientHubPartitions})
	}
	return append(out, HubSpec{n.LoadMonitor, 1})
}

// HubSpec is a hub's name and partition count.
type HubSpec struct {
	Name       string
	Partitions int
}

// ClientSlot returns the client partition (0..ClientSlots-1) a client
// listens on: hub clients<slot/32>, partition slot%32.
func ClientSlot(clientID string) int {
	h := fnv.New32a()
	h.Write([]byte(clientID))
	return int(h.Sum32() % ClientSlots)
}

func retryOptions() azeventhubs.RetryOptions {
	// The SDK's defaults wait 4 s before a retry; our own loops retry
	// forever, so the SDK's retries are short.
	return azeventhubs.RetryOptions{MaxRetries: 2, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: time.Second}
}

// Open connects to the namespace and checks that the hubs exist with the
// right partition counts.
func Open(ctx context.Context, o Options) (*Transport, error) {
	if o.Connection == "" {
		return nil, errors.New("eventhubs: no connection string")
	}
	if o.TaskHubID == "" {
		return nil, errors.New("eventhubs: no task hub id")
	}
	if o.PartitionCount < 1 || o.PartitionCount > MaxPartitions {
		return nil, fmt.Errorf("eventhubs: partition count %d is not in 1..%d", o.PartitionCount, MaxPartitions)
	}
	if o.MaxPayloadBytes <= 0 {
		o.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PayloadRetention <= 0 {
		o.PayloadRetention = DefaultPayloadRetention
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	t := &Transport{
		o:          o,
		log:        o.Logger.With("component", "eventhubs"),
		names:      Names(o.HubPrefix),
		producers:  map[string]*azeventhubs.ProducerClient{},
		consumers:  map[string]*azeventhubs.ConsumerClient{},
		senders:    map[destKey]*sender{},
		readers:    map[int]*reader{},
		levels:     map[int]int64{},
		slots:      map[int]*slotReader{},
		deletes:    make(chan string, 4096),
		queueLimit: defaultQueueLimit,
		blobRefs:   map[int][]blobAt{},
		props:      map[string]*azeventhubs.ConsumerClient{},
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	namespace, cred, err := credentialFor(o.Connection, o.Credential)
	if err != nil {
		return nil, err
	}
	t.namespace, t.cred = namespace, cred
	for _, h := range t.names.All(o.PartitionCount) {
		var p *azeventhubs.ProducerClient
		var c *azeventhubs.ConsumerClient
		po := &azeventhubs.ProducerClientOptions{RetryOptions: retryOptions()}
		co := &azeventhubs.ConsumerClientOptions{RetryOptions: retryOptions()}
		if cred != nil {
			p, err = azeventhubs.NewProducerClient(namespace, h.Name, cred, po)
		} else {
			p, err = azeventhubs.NewProducerClientFromConnectionString(o.Connection, h.Name, po)
		}
		if err != nil {
			t.closeClients()
			return nil, fmt.Errorf("eventhubs: hub %s: %w", h.Name, redactErr(err, o.Connection))
		}
		t.producers[h.Name] = p
		if cred != nil {
			c, err = azeventhubs.NewConsumerClient(namespace, h.Name, azeventhubs.DefaultConsumerGroup, cred, co)
		} else {
			c, err = azeventhubs.NewConsumerClientFromConnectionString(o.Connection, h.Name, azeventhubs.DefaultConsumerGroup, co)
		}
		if err != nil {
			t.closeClients()
			return nil, fmt.Errorf("eventhubs: hub %s: %w", h.Name, redactErr(err, o.Connection))
		}
		t.consumers[h.Name] = c
	}
	for _, h := range t.names.All(o.PartitionCount) {
		props, err := t.producers[h.Name].GetEventHubProperties(ctx, nil)
		if err != nil {
			t.closeClients()
			return nil, fmt.Errorf("eventhubs: hub %s: %w (create the hubs with `netherite taskhub create`)", h.Name, err)
		}
		if got := len(props.PartitionIDs); got != h.Partitions {
			t.closeClients()
			return nil, fmt.Errorf("eventhubs: hub %s has %d partitions, want %d", h.Name, got, h.Partitions)
		}
	}
	t.wg.Add(1)
	go t.deleter()
	if s, ok := o.Blobs.(Sweeper); ok && o.SweepInterval > 0 {
		t.wg.Add(1)
		go t.sweeper(s)
	}
	return t, nil
}

// credentialFor returns the namespace and credential to use when
// connection is a namespace's host name rather than a connection string
// (nil credential: use the connection string).
func credentialFor(connection string, cred azcore.TokenCredential) (string, azcore.TokenCredential, error) {
	if strings.Contains(connection, "=") {
		if cred != nil {
			cs, err := ParseConnectionString(connection)
			if err != nil {
				return "", nil, err
			}
			return cs.Host, cred, nil
		}
		return "", nil, nil
	}
	ns := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(connection, "sb://"), "https://"), "/")
	if ns == "" || strings.ContainsAny(ns, "/;") {
		return "", nil, fmt.Errorf("eventhubs: %q is neither a connection string nor a namespace host name", connection)
	}
	if cred == nil {
		var err error
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return "", nil, fmt.Errorf("eventhubs: namespace %s: DefaultAzureCredential: %w", ns, err)
		}
	}
	return ns, cred, nil
}

func (t *Transport) closeClients() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range t.producers {
		p.Close(ctx)
	}
	for _, c := range t.consumers {
		c.Close(ctx)
	}
	t.closePropsClients(ctx)
}

// Close stops the transport: queued packets are sent for up to
// Options.FlushTimeout, then senders and receivers stop. Blocked
// ReceivePartition calls return transport.ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	senders := make([]*sender, 0, len(t.senders))
	for _, s := range t.senders {
		senders = append(senders, s)
	}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), t.o.FlushTimeout)
	for _, s := range senders {
		if err := s.flush(ctx); err != nil {
			t.log.Warn("closing with packets not sent", "error", err)
			break
		}
	}
	cancel()
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	var readers []*reader
	for _, r := range t.readers {
		readers = append(readers, r)
	}
	var slots []*slotReader
	for _, s := range t.slots {
		slots = append(slots, s)
	}
	t.mu.Unlock()
	for _, r := range readers {
		r.mu.Lock()
		r.closeLocked()
		r.mu.Unlock()
	}
	for _, s := range slots {
		s.stop()
	}
	t.closeClients()
	return nil
}

// PartitionCount is the number of partitions.
func (t *Transport) PartitionCount() int { return t.o.PartitionCount }

// Names returns the hub names of the transport.
func (t *Transport) Names() HubNames { return t.names }

// Stats returns the counters.
func (t *Transport) Stats() Stats {
	c := &t.st
	return Stats{
		PacketsSent: c.packetsSent.Load(), EventsSent: c.eventsSent.Load(), BatchesSent: c.batchesSent.Load(),
		BytesSent: c.bytesSent.Load(), PacketsReceived: c.packetsReceived.Load(), EventsReceived: c.eventsReceived.Load(),
		StraysDropped: c.strays.Load(), Undecodable: c.undecodable.Load(), ClientDropped: c.clientDropped.Load(), Duplicates: c.duplicates.Load(),
		BlobsSent: c.blobsSent.Load(), BlobsReceived: c.blobsReceived.Load(), BlobsDeleted: c.blobsDeleted.Load(),
		SendRetries: c.sendRetries.Load(), ReceiveRetries: c.receiveRetries.Load(),
		Sweeps: c.sweeps.Load(), BlobsSwept: c.blobsSwept.Load(),
	}
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// backoff returns the next retry delay.
func backoff(d time.Duration) time.Duration {
	return min(max(2*d, 20*time.Millisecond), 2*time.Second)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
