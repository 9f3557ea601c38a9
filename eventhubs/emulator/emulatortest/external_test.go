package emulatortest

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
)

// TestRoundTrip sends and receives an event with the real client on the
// emulator of the environment (in CI, the one .ci/run starts), or on an
// in-process one, on a hub made through the admin API.
func TestRoundTrip(t *testing.T) {
	tg := Get(t)
	hub := tg.CreateHub(t, "roundtrip", 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := azeventhubs.NewProducerClientFromConnectionString(tg.ConnectionString, hub, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	props, err := p.GetEventHubProperties(ctx, nil)
	if err != nil || len(props.PartitionIDs) != 2 {
		t.Fatalf("hub properties: %+v %v", props, err)
	}
	batch, err := p.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: new("1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.AddEventData(&azeventhubs.EventData{Body: []byte("hello")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	c, err := azeventhubs.NewConsumerClientFromConnectionString(tg.ConnectionString, hub, azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	pc, err := c.NewPartitionClient("1", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: new(true)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	evs, err := pc.ReceiveEvents(ctx, 1, nil)
	if err != nil || len(evs) != 1 || string(evs[0].Body) != "hello" || evs[0].SequenceNumber != 0 {
		t.Fatalf("received %v, %v", evs, err)
	}
}
