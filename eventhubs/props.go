package eventhubs

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// Partition properties (where a reader may start, where a client's
// responses begin) are read through a consumer client kept for that
// alone, one per hub, and rebuilt after any failure. After the service
// restarts, the SDK's management link of a client can stay broken for
// good (every call fails with "connlost: EOF" while the client's receive
// links recover); a partition whose reader must reopen would then retry
// forever. Rebuilding the client the receivers use would stop them all.

// propsClient returns the properties client of a hub, creating it if
// needed.
func (t *Transport) propsClient(hub string) (*azeventhubs.ConsumerClient, error) {
	t.propsMu.Lock()
	defer t.propsMu.Unlock()
	if t.isClosed() {
		return nil, fmt.Errorf("eventhubs: hub %s: transport closed", hub)
	}
	if c := t.props[hub]; c != nil {
		return c, nil
	}
	c, err := t.newConsumer(hub)
	if err != nil {
		return nil, err
	}
	t.props[hub] = c
	return c, nil
}

// dropPropsClient closes a hub's properties client after a failure, so
// that the next call builds a new one.
func (t *Transport) dropPropsClient(hub string, c *azeventhubs.ConsumerClient) {
	t.propsMu.Lock()
	if t.props[hub] == c {
		delete(t.props, hub)
	}
	t.propsMu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	}()
}

// partitionProperties reads the properties of a partition of a hub.
func (t *Transport) partitionProperties(ctx context.Context, hub, pid string) (azeventhubs.PartitionProperties, error) {
	c, err := t.propsClient(hub)
	if err != nil {
		return azeventhubs.PartitionProperties{}, err
	}
	props, err := c.GetPartitionProperties(ctx, pid, nil)
	if err != nil {
		t.dropPropsClient(hub, c)
	}
	return props, err
}

// closePropsClients closes the properties clients (Close).
func (t *Transport) closePropsClients(ctx context.Context) {
	t.propsMu.Lock()
	cs := t.props
	t.props = map[string]*azeventhubs.ConsumerClient{}
	t.propsMu.Unlock()
	for _, c := range cs {
		c.Close(ctx)
	}
}

// newConsumer makes a consumer client of a hub (default consumer group).
func (t *Transport) newConsumer(hub string) (*azeventhubs.ConsumerClient, error) {
	co := &azeventhubs.ConsumerClientOptions{RetryOptions: retryOptions()}
	var c *azeventhubs.ConsumerClient
	var err error
	if t.cred != nil {
		c, err = azeventhubs.NewConsumerClient(t.namespace, hub, azeventhubs.DefaultConsumerGroup, t.cred, co)
	} else {
		c, err = azeventhubs.NewConsumerClientFromConnectionString(t.o.Connection, hub, azeventhubs.DefaultConsumerGroup, co)
	}
	if err != nil {
		return nil, fmt.Errorf("eventhubs: hub %s: %w", hub, redactErr(err, t.o.Connection))
	}
	return c, nil
}
