package netherite

import (
	"context"
	"errors"
	"fmt"

	"github.com/netherite-go/netherite/transport"
)

// transportSpec is the kind of transport Options.Transport chose, parsed
// once (Options.parse); the host asks it, not the string. A new transport
// is one implementation (transport_spec.go for in-process queues,
// transport_eventhubs.go for Event Hubs) and a case in parseTransport.
type transportSpec interface {
	// String describes the transport for logs and errors, without secrets.
	String() string
	// crossProcess reports whether hosts in other processes share the
	// queues, so that a host may run only some of the partitions.
	crossProcess() bool
	// open opens the host's transport for a task hub (hub is nil with
	// memory storage); close releases it when the host stops.
	open(ctx context.Context, o Options, hub *TaskHubParameters, store taskHubStore) (t transport.Transport, close func() error, err error)
	// createHubs and deleteHubs make and remove what the transport keeps
	// outside the task hub's storage (none for in-process queues).
	createHubs(ctx context.Context, o Options, partitionCount int) error
	deleteHubs(ctx context.Context, o Options) error
}

// parseTransport parses Options.Transport (with SharedTransport).
func parseTransport(o *Options) (transportSpec, error) {
	switch {
	case o.Transport == "" || o.Transport == TransportMemory:
		o.Transport = TransportMemory
		if o.EventHubsPrefix != "" || o.EventHubsAdminURL != "" {
			return nil, errors.New("netherite: Options.EventHubsPrefix and EventHubsAdminURL apply to the Event Hubs transport only")
		}
		return memoryTransport{shared: o.SharedTransport}, nil
	case IsEventHubsConnection(o.Transport):
		if o.SharedTransport != nil {
			return nil, errors.New("netherite: Options.SharedTransport and an Event Hubs Options.Transport exclude each other")
		}
		return eventHubsTransport{}, nil
	}
	return nil, fmt.Errorf("netherite: Options.Transport: want \"memory\" or an Event Hubs connection string (Endpoint=sb://...), got %s",
		RedactTransport(o.Transport))
}

// memoryTransport is in-process queues: the host's own, or the
// SharedTransport of the hosts of one process.
type memoryTransport struct {
	shared transport.Transport
}

func (m memoryTransport) String() string     { return TransportMemory }
func (m memoryTransport) crossProcess() bool { return m.shared != nil } // hosts sharing it split the partitions

func (m memoryTransport) open(_ context.Context, o Options, _ *TaskHubParameters, _ taskHubStore) (transport.Transport, func() error, error) {
	if m.shared != nil {
		return m.shared, func() error { return nil }, nil // its owner closes it
	}
	t := transport.NewMemory(o.PartitionCount)
	return t, func() error { t.Close(); return nil }, nil
}

func (memoryTransport) createHubs(context.Context, Options, int) error { return nil }
func (memoryTransport) deleteHubs(context.Context, Options) error      { return nil }
