package netherite_test

// The Event Hubs transport, end to end: hosts on the emulator
// (emulatortest.Get: the one CI starts, or one in process) with their state
// in Azurite (blobtest.Connection: skipped unless NETHERITE_AZURITE is set).
// The scenario list runs on it too: -run 'Scenario.*/eventhubs'.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/eventhubs"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// eventHubsOptions points o at the emulator and Azurite, with a fresh task
// hub and fresh hubs, deleted when the test ends.
func eventHubsOptions(t *testing.T, o *netherite.Options) {
	t.Helper()
	storage := blobtest.Connection(t)
	eh := emulatortest.Get(t)
	name := fmt.Sprintf("eh%d", time.Now().UnixNano()%1e12)
	o.Storage, o.TaskHub, o.Transport, o.EventHubsPrefix = storage, name, eh.ConnectionString, name+"-"
	o.EventHubsAdminURL = eh.AdminURL
	del := *o
	t.Cleanup(func() {
		// After the host stopped (cleanups run last first).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := netherite.DeleteTaskHub(ctx, del); err != nil {
			t.Logf("delete task hub %s: %v", name, err)
		}
	})
}

func init() {
	for _, n := range []int{1, 12} {
		scenarioBackends = append(scenarioBackends, scenarioBackend{
			name:       "eventhubs",
			partitions: n,
			setup:      eventHubsOptions,
		})
	}
}

func startEventHubsHost(t *testing.T, count int, parts []int) (*netherite.Host, netherite.Options) {
	t.Helper()
	o := netherite.Options{PartitionCount: count, Partitions: parts}
	eventHubsOptions(t, &o)
	return startScenarioHost(t, o), o
}

// A 5 MiB input and output cross Event Hubs (client to partition,
// partition to client) as blob references: an Event Hubs batch holds
// 1 MiB.
func TestEventHubsLargePayload(t *testing.T) {
	h, _ := startEventHubsHost(t, 4, nil)
	ctx := testContext(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16)
	c := h.Client()
	id, err := c.StartOrchestration(ctx, oEcho, string(big))
	if err != nil {
		t.Fatal(err)
	}
	s := waitDone(t, ctx, c, id)
	if got := completedOutput[string](t, s); got != string(big) {
		t.Fatalf("output differs from input: %d bytes vs %d", len(got), len(big))
	}
	st, ok := h.EventHubsStats()
	if !ok {
		t.Fatal("the host has no Event Hubs transport")
	}
	if st.BlobsSent < 2 || st.BlobsReceived < 2 {
		t.Fatalf("%d payloads sent and %d received through the blob store, want the input's and the output's at least: %+v",
			st.BlobsSent, st.BlobsReceived, st)
	}
}

// A create sent twice through Event Hubs with the same client and request
// id starts one instance, and both copies get the same answer.
func TestEventHubsDuplicateCreate(t *testing.T) {
	h, o := startEventHubsHost(t, 2, nil)
	ctx := testContext(t)
	// A second transport in the test plays a client that retries.
	p := h.TaskHub()
	tr, err := eventhubs.Open(ctx, eventhubs.Options{Connection: o.Transport, HubPrefix: o.EventHubsPrefix, TaskHubID: p.TaskHubGUID,
		PartitionCount: p.PartitionCount, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const clientID = "retrying-client"
	answers, closeFn, err := tr.ListenClient(clientID)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	id := "dup!1"
	start := core.NewEvent(core.EventExecutionStarted, time.Now().UTC())
	start.Name, start.InstanceID, start.ExecutionID = samples.HelloSequence, id, "exec-dup"
	req := &transport.ClientRequest{Kind: transport.RequestCreate, ClientID: clientID, RequestID: 7, Timestamp: time.Now().UTC(),
		InstanceID: id, Event: start}
	for range 2 {
		if err := tr.SendToPartition(1, &transport.Packet{Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		select {
		case pk := <-answers:
			if r := pk.Response; r == nil || r.RequestID != 7 || r.Error != "" {
				t.Fatalf("answer %d: %+v", i, pk.Response)
			}
		case <-ctx.Done():
			t.Fatalf("got %d answers of 2", i)
		}
	}
	s := waitDone(t, ctx, h.Client(), id)
	if s.RuntimeStatus != core.StatusCompleted || s.ExecutionID != "exec-dup" {
		t.Fatalf("status %s, execution %s", s.RuntimeStatus, s.ExecutionID)
	}
	// The request log remembers it, so a third copy is not applied either:
	// the instance is not started again.
	if err := tr.SendToPartition(1, &transport.Packet{Request: req}); err != nil {
		t.Fatal(err)
	}
	select {
	case pk := <-answers:
		if r := pk.Response; r == nil || r.Error != "" {
			t.Fatalf("third answer: %+v", pk.Response)
		}
	case <-ctx.Done():
		t.Fatal("no third answer")
	}
	s2, err := h.Client().GetStatus(ctx, id, durable.WithHistory())
	if err != nil {
		t.Fatal(err)
	}
	if s2.RuntimeStatus != core.StatusCompleted || !s2.LastUpdatedAt.Equal(s.LastUpdatedAt) {
		t.Fatalf("the instance ran again: %s, updated %v then %v", s2.RuntimeStatus, s.LastUpdatedAt, s2.LastUpdatedAt)
	}
}

// Options that cannot work are refused before anything is opened.
func TestEventHubsOptionsRefused(t *testing.T) {
	conn := "Endpoint=sb://localhost;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;UseDevelopmentEmulator=true"
	for _, c := range []struct {
		name string
		o    netherite.Options
		want string
	}{
		{"memory storage", netherite.Options{Transport: conn, Storage: "memory"}, "needs storage that every host"},
		{"shared transport", netherite.Options{Transport: conn, Storage: t.TempDir(), SharedTransport: transport.NewMemory(12)}, "exclude each other"},
		{"prefix without event hubs", netherite.Options{EventHubsPrefix: "x", Storage: "memory"}, "apply to the Event Hubs transport only"},
		{"unknown transport", netherite.Options{Transport: "amqp://x", Storage: "memory"}, "want \"memory\" or an Event Hubs"},
	} {
		_, err := netherite.Start(context.Background(), c.o, durable.NewRegistry())
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) || bytes.Contains([]byte(err.Error()), []byte("c2VjcmV0")) {
			t.Errorf("%s: error %v, want one saying %q (and no key)", c.name, err, c.want)
		}
	}
}

// A host whose Event Hubs receiver is taken over by a higher owner level
// (another owner of the partition) stops that partition at once and keeps
// running the others. Storage is a directory here: the fencing is the
// transport's, not the lease's.
func TestEventHubsFencedPartitionStops(t *testing.T) {
	eh := emulatortest.Get(t)
	name := fmt.Sprintf("fence%d", time.Now().UnixNano()%1e12)
	o := netherite.Options{Storage: t.TempDir(), TaskHub: name, PartitionCount: 2, Transport: eh.ConnectionString,
		EventHubsPrefix: name + "-", EventHubsAdminURL: eh.AdminURL}
	h := startScenarioHost(t, o)
	ctx := testContext(t)
	if _, err := h.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID("before!0")); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, h.Client(), "before!0")

	// Another owner of partition 0 opens its receiver with a higher level.
	p := h.TaskHub()
	usurper, err := eventhubs.Open(ctx, eventhubs.Options{Connection: o.Transport, HubPrefix: o.EventHubsPrefix, TaskHubID: p.TaskHubGUID,
		PartitionCount: p.PartitionCount, OwnerLevel: 1 << 62, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer usurper.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go usurper.ReceivePartition(rctx, 0, 0)

	var st netherite.PartitionStatus
	for deadline := time.Now().Add(20 * time.Second); ; {
		st = h.Partitions()[0]
		if st.State == netherite.PartitionNotOwned || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.State != netherite.PartitionNotOwned || !errors.Is(st.Err, eventhubs.ErrOwnershipLost) {
		t.Fatalf("partition 0 after the takeover: %+v; want not owned, with an error wrapping eventhubs.ErrOwnershipLost", st)
	}
	if s := h.Partitions()[1]; s.State != netherite.PartitionOK {
		t.Fatalf("partition 1: %+v", s)
	}
	// Partition 1 still works.
	if _, err := h.Client().StartOrchestration(ctx, samples.HelloSequence, nil, durable.WithStartInstanceID("after!1")); err != nil {
		t.Fatal(err)
	}
	waitDone(t, ctx, h.Client(), "after!1")
	cancel()
}
