// Package eventhubs is a transport.Transport over Azure Event Hubs (or the
// emulator in package emulator), with the azeventhubs/v2 client
// (DESIGN.md §6).
//
// # Hubs
//
// A task hub uses six event hubs, all on the $Default consumer group, named
// with an optional prefix (Options.HubPrefix) so that task hubs can share a
// namespace: <prefix>partitions (one Event Hubs partition per task-hub
// partition), <prefix>clients0 ... clients3 (32 partitions each: 128
// client partitions; a client listens on ClientSlot(id)) and
// <prefix>loadmonitor (1 partition). CreateHubs, DeleteHubs and
// DescribeHubs manage them through a Management: RESTManagement speaks the
// Service Bus REST API (PUT/GET/DELETE https://{namespace}/{hub}?api-version=2014-01)
// with a SAS token made from the connection string's key, or with an Azure
// AD bearer token (NewManagementWithCredential); the emulator's admin API
// has the same shape (NewManagement(connection, adminURL)). Open checks
// that the hubs exist with the right partition counts.
//
// On Azure, Options.Connection is the namespace's connection string (SAS),
// or only its host name: then the transport and ManagementFor authenticate
// with Options.Credential or azidentity's DefaultAzureCredential (RBAC;
// not tested here, no Azure namespace is reachable).
//
// # Wire format
//
// An event's body is an eventhubspb.EventBody: the versioned envelopes
// (eventhubspb.Envelope, WireVersion) of the packets packed into it, each
// carrying the task hub's id. Receivers drop (and count) envelopes of
// another task hub (an older task hub of the same name) and of an unknown
// version. Generate eventhubspb with
//
//	protoc --proto_path=. --go_out=. --go_opt=module=github.com/netherite-go/netherite eventhubs/eventhubspb/eventhubs.proto
//
// from the repository root (protoc 3.21, protoc-gen-go at go.mod's version).
//
// # Senders
//
// SendToPartition, SendToClient and SendToLoadMonitor encode the packets
// and queue them for the destination's sender goroutine (one per Event
// Hubs partition written), so they never wait for the network; they fail
// only when the transport is closed or the destination has more than
// 64 MiB queued. The sender packs everything queued into one event of up
// to about 1 MiB (one Event Hubs batch), sends it, and retries a failed
// send with backoff until it succeeds, keeping the order. A send whose
// outcome is unknown is retried too, so a packet may arrive twice: the
// partitions' dedup (DESIGN §4.6) and the clients' request ids absorb
// that. Close sends what is queued for up to Options.FlushTimeout.
//
// # Positions
//
// A partition's input position packs the Event Hubs sequence number of an
// event and the index of a packet in it: Position(seq, index) =
// seq<<IndexBits | index. One ReceivePartition call returns packets of one
// event only, at positions from, from+1, ...; the position it returns may
// jump past that (to the next event's Position(seq+1, 0), or past dropped
// packets). Every position a caller can derive this way (including
// Position(seq, n) after an event's n packets) is a valid place to resume.
// ReceivePartition keeps its receiver (with Options.OwnerLevel as its
// epoch) open while calls continue where the last one ended, and opens a
// new one (filter x-opt-sequence-number >= seq) otherwise. A position no
// longer in the hub (the partition begins past it, or the first event the
// new receiver gets is later than asked) is an error wrapping
// transport.ErrPositionGone: reading on would skip packets.
//
// # Ownership
//
// Partition receivers attach with an owner level (Event Hubs' epoch):
// Options.OwnerLevel, or per partition SetOwnerLevel. A receiver with an
// equal or higher level takes the partition; the one it replaces fails
// with ErrOwnershipLost, and ReceivePartition keeps failing for that
// partition (until ReleasePartition or SetOwnerLevel): the host must stop
// the partition, another host owns it. Levels must grow with each new
// owner (take them from the partition lease's generation): with equal
// levels the last receiver to attach wins, and the SDK re-attaches after
// a transient error. ReleasePartition closes a partition's receiver when
// the host stops owning it (a receive waiting on it returns
// transport.ErrClosed).
//
// # Large packets
//
// A packet whose envelope exceeds InlineLimit (and at most
// Options.MaxPayloadBytes) is written by the sender to a blob of
// Options.Blobs named <task hub id>/<destination>/<uuid>, and only a
// reference (with the blob's size and SHA-256) travels. Receivers fetch
// it, retrying. Partition packets' blobs are deleted once TrimPartition
// says the packet is durably applied; a response's blob is deleted by the
// client's listener once fetched. Blobs of packets nobody reads (a crash
// between apply and trim, responses for departed clients) stay behind
// until swept: the transport reading partition 0 sweeps (see Sweeper) the
// blobs of its task hub written before the hubs' retention
// (Options.PayloadRetention) and a margin, which no event left can
// reference, soon after it takes partition 0 and then every
// Options.SweepInterval (an hour).
//
// # Clients
//
// ListenClient reads the client's partition from the event after the last
// one enqueued when it is called (so every response sent after it returns
// is seen), shared by the clients of this process on that partition; it
// delivers the responses for listening clients and drops the others.
package eventhubs
