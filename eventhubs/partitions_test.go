package eventhubs

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// relay runs entities "fwd", which forward each operation to the "sink"
// named by its input, and "sink", which appends each input to its state.
type relay struct{}

func (relay) ExecuteOrchestration(*partitions.OrchestrationWork) *partitions.OrchestrationOutcome {
	return &partitions.OrchestrationOutcome{Status: core.StatusCompleted}
}

func (relay) ExecuteActivity(context.Context, *core.TaskMessage) *core.TaskMessage { return nil }

func (relay) ExecuteEntity(id core.EntityID, st *core.EntityState, msgs []*core.HistoryEvent, now time.Time) (*core.EntityState, []*core.TaskMessage) {
	if st == nil {
		st = &core.EntityState{}
	}
	out := &core.EntityState{Exists: true, Value: st.Value}
	var sends []*core.TaskMessage
	for _, m := range msgs {
		switch id.Name {
		case "fwd":
			to, val, _ := strings.Cut(string(m.Input), "=")
			e := core.NewEvent(core.EventEntityOperationSignaled, now)
			e.Name, e.Input = "add", []byte(val)
			sends = append(sends, &core.TaskMessage{Target: core.Instance{InstanceID: to}, Event: e})
		case "sink":
			if len(out.Value) > 0 {
				out.Value = append(append([]byte(nil), out.Value...), ',')
			}
			out.Value = append(out.Value, m.Input...)
		}
	}
	return out, sends
}

// TestPartitionsOverEventHubs runs partitions (the runtime of package
// partitions) on this transport: entity signals forwarded across
// partitions arrive exactly once and in order, also after a partition is
// crashed and restarted on its state (re-reading its input from the
// position in that state).
func TestPartitionsOverEventHubs(t *testing.T) {
	tg := emulatortest.Get(t)
	const n = 3
	prefix := newHubs(t, tg, n)
	tr := openTransport(t, tg.ConnectionString, prefix, hubID, n, nil)
	client := openTransport(t, tg.ConnectionString, prefix, hubID, n, nil)
	resp, stop, err := client.ListenClient("test")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	states := make([]*partitions.State, n)
	parts := make([]*partitions.Partition, n)
	cancels := make([]context.CancelFunc, n)
	start := func(i int) {
		ctx, cancel := context.WithCancel(context.Background())
		p, err := partitions.Start(ctx, partitions.Config{Partition: i, Count: n, Executor: relay{}, Transport: tr,
			Pools: partitions.NewPools(4, 4, 4), Cursors: partitions.NewCursorCache(-1),
			Courier: partitions.CourierConfig{ResendAfter: 200 * time.Millisecond, AckDelay: time.Millisecond}}, states[i])
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		parts[i], cancels[i] = p, cancel
	}
	for i := range states {
		states[i] = partitions.NewState(i, n)
		start(i)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, p := range parts {
			p.Stop(ctx)
		}
	}()
	var reqID atomic.Uint64
	send := func(req *transport.ClientRequest) {
		req.ClientID, req.RequestID = "test", reqID.Add(1)
		if err := client.SendToPartition(partitions.PartitionOf(req.InstanceID, n), &transport.Packet{Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	signal := func(id, input string) {
		e := core.NewEvent(core.EventEntityOperationSignaled, time.Now())
		e.Name, e.Input = "op", []byte(input)
		send(&transport.ClientRequest{Kind: transport.RequestSignalEntity, InstanceID: id, Event: e})
	}
	entity := func(id string) string {
		req := &transport.ClientRequest{Kind: transport.RequestGetEntity, InstanceID: id, IncludePayloads: true}
		send(req)
		timeout := time.After(30 * time.Second)
		for {
			select {
			case pk := <-resp:
				if pk.Response == nil || pk.Response.RequestID != req.RequestID {
					continue
				}
				if len(pk.Response.Entities) == 0 {
					return ""
				}
				return string(pk.Response.Entities[0].State)
			case <-timeout:
				t.Fatalf("no answer to a read of %s", id)
				return ""
			}
		}
	}
	// Forwarders and sinks on every partition.
	sinks := []string{"@sink@a", "@sink@b", "@sink@c", "@sink@d"}
	want := map[string][]string{}
	round := func(from, to int) {
		for k := from; k < to; k++ {
			fwd := fmt.Sprintf("@fwd@%d", k%5)
			sink := sinks[k%len(sinks)]
			signal(fwd, fmt.Sprintf("%s=%d", sink, k))
			want[sink] = append(want[sink], fmt.Sprint(k))
		}
	}
	check := func() {
		for _, s := range sinks {
			// Per sink, the values come from several forwarders, so only
			// the set is fixed; one forwarder's order is kept.
			waitSinkSet(t, entity, s, want[s])
		}
	}
	round(0, 60)
	check()
	// Crash partition 1 (no checkpoint: its state is what it applied) and
	// restart it: it re-reads its input from its state's position.
	cancels[1]()
	<-parts[1].Done()
	round(60, 120)
	start(1)
	check()
	t.Logf("transport stats: %+v", tr.Stats())
}

// waitSinkSet waits until a sink holds exactly the values want (each once).
func waitSinkSet(t *testing.T, entity func(string) string, id string, want []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := entity(id)
		if sameSet(strings.Split(got, ","), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s is %q, want the values %v once each", id, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
		if m[x] < 0 {
			return false
		}
	}
	return true
}
