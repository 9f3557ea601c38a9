package netherite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/transport"
)

// eventHubsTransport is Azure Event Hubs (or the emulator): partitions,
// clients and the load monitor have their own hubs; hosts in any process
// share them.
type eventHubsTransport struct{}

func (eventHubsTransport) String() string     { return "Event Hubs" }
func (eventHubsTransport) crossProcess() bool { return true }

func (eventHubsTransport) open(ctx context.Context, o Options, hub *TaskHubParameters, store taskHubStore) (transport.Transport, func() error, error) {
	t, err := openEventHubs(ctx, o, hub, store)
	if err != nil {
		return nil, nil, err
	}
	return t, t.Close, nil
}

func (eventHubsTransport) createHubs(ctx context.Context, o Options, partitionCount int) error {
	return ensureHubs(ctx, o, partitionCount)
}

func (eventHubsTransport) deleteHubs(ctx context.Context, o Options) error { return deleteHubs(ctx, o) }

// openEventHubs opens the Event Hubs transport of a task hub: its packets
// carry the task hub's GUID, and payloads too large for an Event Hubs
// batch go to the task hub's storage (blobs in its container, or files in
// its directory). Missing hubs are created first when the connection
// allows it (a key with the Manage right, or the emulator's admin API);
// Open then checks that every hub exists with the right partition count.
func openEventHubs(ctx context.Context, o Options, hub *TaskHubParameters, store taskHubStore) (*eventhubs.Transport, error) {
	if m, err := management(o); err != nil {
		o.Logger.Info("not creating missing Event Hubs hubs", slog.Any("reason", err))
	} else if err := eventhubs.CreateHubs(ctx, m, o.EventHubsPrefix, hub.PartitionCount); err != nil {
		o.Logger.Warn("could not create the Event Hubs hubs; using the ones there", slog.String("prefix", o.EventHubsPrefix),
			slog.Any("error", err))
	}
	blobs, err := store.payloads()
	if err != nil {
		return nil, err
	}
	eo := eventHubsOptions(o, hub)
	eo.OwnerLevel, eo.Blobs, eo.MaxPayloadBytes = time.Now().UnixNano(), blobs, o.MaxPayloadBytes
	return openEventHubsWith(ctx, o, eo)
}

// eventHubsOptions are the options every Event Hubs transport of the task
// hub shares.
func eventHubsOptions(o Options, hub *TaskHubParameters) eventhubs.Options {
	return eventhubs.Options{Connection: o.Transport, HubPrefix: o.EventHubsPrefix, TaskHubID: hub.TaskHubGUID,
		PartitionCount: hub.PartitionCount, Logger: o.Logger}
}

func openEventHubsWith(ctx context.Context, o Options, eo eventhubs.Options) (*eventhubs.Transport, error) {
	t, err := eventhubs.Open(ctx, eo)
	if err != nil {
		return nil, fmt.Errorf("netherite: Event Hubs transport %s: %w", RedactTransport(o.Transport), err)
	}
	return t, nil
}

// openEventHubsProbe opens the Event Hubs transport of a task hub for
// looking into its partitions' queues (TaskHubStatus): it creates no hub,
// sweeps no payload and reads no payload blob.
func openEventHubsProbe(ctx context.Context, o Options, hub *TaskHubParameters) (*eventhubs.Transport, error) {
	eo := eventHubsOptions(o, hub)
	eo.SweepInterval = -1
	return openEventHubsWith(ctx, o, eo)
}

// management returns the hub management of the Event Hubs namespace: the
// emulator's admin API (Options.EventHubsAdminURL), or on Azure the
// namespace's endpoint with the connection string's key, or with
// DefaultAzureCredential for a namespace given by host name.
func management(o Options) (eventhubs.Management, error) {
	m, err := eventhubs.ManagementFor(o.Transport, o.EventHubsAdminURL, nil)
	if err != nil {
		return nil, fmt.Errorf("netherite: manage the hubs of Event Hubs %s: %w", RedactTransport(o.Transport), err)
	}
	return m, nil
}

// ensureHubs creates the task hub's hubs, or checks the ones there.
func ensureHubs(ctx context.Context, o Options, partitionCount int) error {
	m, err := management(o)
	if err != nil {
		return err
	}
	if err := eventhubs.CreateHubs(ctx, m, o.EventHubsPrefix, partitionCount); err != nil {
		return fmt.Errorf("netherite: create the Event Hubs hubs (prefix %q): %w", o.EventHubsPrefix, err)
	}
	return nil
}

// EventHubsInfo describes the Event Hubs hubs of the task hub opts name,
// missing ones included (nil without the Event Hubs transport).
func EventHubsInfo(ctx context.Context, opts Options) ([]eventhubs.HubInfo, error) {
	_, tspec, err := opts.parse()
	if err != nil {
		return nil, err
	}
	if _, ok := tspec.(eventHubsTransport); !ok {
		return nil, nil
	}
	m, err := management(opts)
	if err != nil {
		return nil, err
	}
	return eventhubs.DescribeHubs(ctx, m, opts.EventHubsPrefix)
}

// deleteHubs deletes the task hub's hubs.
func deleteHubs(ctx context.Context, o Options) error {
	m, err := management(o)
	if err != nil {
		return err
	}
	if err := eventhubs.DeleteHubs(ctx, m, o.EventHubsPrefix); err != nil {
		return fmt.Errorf("netherite: delete the Event Hubs hubs (prefix %q): %w", o.EventHubsPrefix, err)
	}
	return nil
}

// ownerLeveler is a transport that takes an owner level per partition
// (asked of package eventhubs; until it has it, every partition receiver
// of a host uses the level the transport was opened with).
type ownerLeveler interface {
	SetOwnerLevel(partition int, level int64)
}

// fencedTransport is the transport as one incarnation of a partition sees
// it. When the partition's Event Hubs receiver is fenced off
// (eventhubs.ErrOwnershipLost: a receiver with a higher owner level took
// the Event Hubs partition, so another host owns the partition now), it
// closes lost, which makes the partition manager stop the partition at
// once, and ends the partition's receive loop.
type fencedTransport struct {
	transport.Transport
	lost chan struct{}
	once sync.Once
	err  error
}

func newFencedTransport(t transport.Transport) *fencedTransport {
	return &fencedTransport{Transport: t, lost: make(chan struct{})}
}

func (f *fencedTransport) ReceivePartition(ctx context.Context, partition int, from uint64) ([]*transport.Packet, uint64, error) {
	pkts, next, err := f.Transport.ReceivePartition(ctx, partition, from)
	if err != nil && errors.Is(err, eventhubs.ErrOwnershipLost) {
		f.once.Do(func() {
			f.err = fmt.Errorf("partition %d is owned by another host (its Event Hubs receiver was taken over): %w", partition, err)
			close(f.lost)
		})
		return nil, from, fmt.Errorf("%w: %w", transport.ErrClosed, err)
	}
	return pkts, next, err
}

func (f *fencedTransport) lostErr() error { return f.err }

// EventHubsStats reports the counters of the host's Event Hubs transport
// (ok is false with another transport).
func (h *Host) EventHubsStats() (st eventhubs.Stats, ok bool) {
	if h.eh == nil {
		return st, false
	}
	return h.eh.Stats(), true
}
