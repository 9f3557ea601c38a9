package partitions

// Exactly-once between partitions over a transport that fails (DESIGN
// §4.6): each test injects one of the faults that lost or stuck messages
// before batches carried Prev and the Courier retried, resent and re-acked.

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// relayExecutor runs two kinds of entities: "fwd" forwards each operation
// to the "sink" entity named by its input; "sink" appends each operation's
// input to its state.
type relayExecutor struct{}

func (relayExecutor) ExecuteOrchestration(w *OrchestrationWork) *OrchestrationOutcome {
	return &OrchestrationOutcome{Status: core.StatusCompleted}
}

func (relayExecutor) ExecuteActivity(ctx context.Context, m *core.TaskMessage) *core.TaskMessage {
	return nil
}

func (relayExecutor) ExecuteEntity(id core.EntityID, st *core.EntityState, msgs []*core.HistoryEvent, now time.Time) (*core.EntityState, []*core.TaskMessage) {
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

// cluster runs partitions over a faulty in-process transport, with a
// client of its own.
type cluster struct {
	t      *testing.T
	mem    *transport.Memory
	net    *transport.Faulty
	parts  []*Partition
	states []*State
	resp   <-chan *transport.Packet
	nextID atomic.Uint64
	// courier overrides the courier settings of the partitions.
	courier *CourierConfig
	// global runs the partitions under global speculation, on logs whose
	// commits take a while (so that batches leave before their step is
	// durable).
	global  bool
	cancels []context.CancelFunc
}

func newCluster(t *testing.T, n int, faults transport.FaultConfig, courier ...CourierConfig) *cluster {
	return newClusterMode(t, n, false, faults, courier...)
}

func newClusterMode(t *testing.T, n int, global bool, faults transport.FaultConfig, courier ...CourierConfig) *cluster {
	t.Helper()
	c := &cluster{t: t, mem: transport.NewMemory(n), cancels: make([]context.CancelFunc, n), global: global}
	if len(courier) > 0 {
		c.courier = &courier[0]
	}
	c.net = transport.NewFaulty(c.mem, faults)
	resp, closeFn, err := c.mem.ListenClient("test")
	if err != nil {
		t.Fatal(err)
	}
	c.resp = resp
	c.parts = make([]*Partition, n)
	for i := 0; i < n; i++ {
		c.states = append(c.states, NewState(i, n))
	}
	for i := 0; i < n; i++ {
		c.start(i)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, p := range c.parts {
			if p != nil {
				p.Stop(ctx)
			}
		}
		closeFn()
		c.mem.Close()
	})
	return c
}

func (c *cluster) config(i int) Config {
	cc := CourierConfig{ResendAfter: 50 * time.Millisecond, AckDelay: time.Millisecond}
	if c.courier != nil {
		cc = *c.courier
	}
	cfg := Config{Partition: i, Count: len(c.states), Executor: relayExecutor{}, Transport: c.net,
		Pools: NewPools(4, 4, 4), Cursors: NewCursorCache(-1), Courier: cc}
	if c.global {
		cfg.Speculation, cfg.Log = SpeculationGlobal, &MemoryLog{Delay: 2 * time.Millisecond}
	}
	return cfg
}

// start (re)starts partition i on its state.
func (c *cluster) start(i int) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, c.config(i), c.states[i])
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	c.parts[i], c.cancels[i] = p, cancel
}

// crash stops partition i at once, as a lost lease or a dead host does:
// no checkpoint, nothing volatile kept.
func (c *cluster) crash(i int) {
	c.t.Helper()
	c.cancels[i]()
	select {
	case <-c.parts[i].Done():
	case <-time.After(5 * time.Second):
		c.t.Fatalf("partition %d did not stop", i)
	}
}

// signal asks entity id to run operation input (through the client path,
// which is not faulted).
func (c *cluster) signal(id, input string) {
	c.t.Helper()
	e := core.NewEvent(core.EventEntityOperationSignaled, time.Now())
	e.Name, e.Input = "op", []byte(input)
	req := &transport.ClientRequest{Kind: transport.RequestSignalEntity, ClientID: "test", RequestID: c.nextID.Add(1),
		InstanceID: id, Event: e}
	if err := c.mem.SendToPartition(PartitionOf(id, len(c.states)), &transport.Packet{Request: req}); err != nil {
		c.t.Fatal(err)
	}
}

// entity reads an entity's state ("" if it does not exist).
func (c *cluster) entity(id string) string {
	c.t.Helper()
	req := &transport.ClientRequest{Kind: transport.RequestGetEntity, ClientID: "test", RequestID: c.nextID.Add(1),
		InstanceID: id, IncludePayloads: true}
	if err := c.mem.SendToPartition(PartitionOf(id, len(c.states)), &transport.Packet{Request: req}); err != nil {
		c.t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case pk := <-c.resp:
			if pk.Response == nil || pk.Response.RequestID != req.RequestID {
				continue
			}
			if len(pk.Response.Entities) == 0 {
				return ""
			}
			return string(pk.Response.Entities[0].State)
		case <-timeout:
			c.t.Fatalf("no answer to a read of %s", id)
			return ""
		}
	}
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last: %s", what, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) waitSink(id, want string) {
	c.t.Helper()
	eventually(c.t, "sink "+id+" = "+want, func() (bool, string) {
		got := c.entity(id)
		return got == want, got
	})
}

func (c *cluster) waitOutboxesDrain() {
	c.t.Helper()
	eventually(c.t, "outboxes drain", func() (bool, string) {
		n := 0
		for _, p := range c.parts {
			n += p.OutboxLen()
		}
		return n == 0, fmt.Sprintf("%d batches unacknowledged", n)
	})
}

// firstOf returns a script that applies fault to the first n packets
// matching match, and lets the rest through.
func firstOf(n int, fault transport.Fault, match func(dest int, pk *transport.Packet) bool) func(int, *transport.Packet) transport.Fault {
	var seen atomic.Int64
	return func(dest int, pk *transport.Packet) transport.Fault {
		if match(dest, pk) && seen.Add(1) <= int64(n) {
			return fault
		}
		return transport.FaultDeliver
	}
}

func isBatch(dest int, pk *transport.Packet) bool { return pk.Messages != nil }
func isAck(dest int, pk *transport.Packet) bool   { return pk.Ack != nil }

// A send that fails used to drop the batch from the sender, and the next
// batch's ack deleted it from the durable outbox: 1 of 2 signals arrived.
func TestFailedSendIsRetried(t *testing.T) {
	c := newCluster(t, 2, transport.FaultConfig{Script: firstOf(1, transport.FaultFail, isBatch)})
	c.signal("@fwd@a!1", "@sink@k!0=1")
	c.signal("@fwd@a!1", "@sink@k!0=2")
	c.waitSink("@sink@k!0", "1,2")
	c.waitOutboxesDrain()
	if st := c.net.Stats(); st.FailedSends != 1 {
		t.Fatalf("failed sends: %d, want 1", st.FailedSends)
	}
}

// A batch lost in the network, followed by the next one: the receiver used
// to apply the second (no gap check) and ack both; now it asks for a resend
// and applies both, in order.
func TestLostBatchIsDetectedAsGap(t *testing.T) {
	c := newCluster(t, 2, transport.FaultConfig{Script: firstOf(1, transport.FaultDrop, isBatch)})
	c.signal("@fwd@a!1", "@sink@k!0=1")
	eventually(t, "the first batch is dropped", func() (bool, string) {
		return c.net.Stats().Dropped == 1, "not yet"
	})
	c.signal("@fwd@a!1", "@sink@k!0=2")
	c.signal("@fwd@a!1", "@sink@k!0=3")
	c.waitSink("@sink@k!0", "1,2,3")
	c.waitOutboxesDrain()
}

// A lost ack used to keep a batch in the outbox forever: the ack was marked
// sent and duplicates were never acked again.
func TestLostAckOutboxDrains(t *testing.T) {
	c := newCluster(t, 2, transport.FaultConfig{Script: firstOf(3, transport.FaultDrop, isAck)})
	c.signal("@fwd@a!1", "@sink@k!0=1")
	c.waitSink("@sink@k!0", "1")
	c.waitOutboxesDrain()
	if st := c.net.Stats(); st.Dropped == 0 {
		t.Fatal("no ack was dropped")
	}
}

// One receive error used to end the receive goroutine for good.
func TestReceiveErrorPartitionKeepsReading(t *testing.T) {
	c := newCluster(t, 2, transport.FaultConfig{})
	c.net.FailReceives(4)
	c.signal("@fwd@a!1", "@sink@k!0=1")
	c.waitSink("@sink@k!0", "1")
	if st := c.net.Stats(); st.FailedReceives != 4 {
		t.Fatalf("failed receives: %d, want 4", st.FailedReceives)
	}
}

// Duplicated and delayed (reordered) batches, acks and resend requests:
// every signal is applied once, in order per sender.
func TestRandomFaultsExactlyOnceInOrder(t *testing.T) {
	t.Run("local", func(t *testing.T) { randomFaultsExactlyOnceInOrder(t, false) })
	t.Run("global", func(t *testing.T) { randomFaultsExactlyOnceInOrder(t, true) })
}

func randomFaultsExactlyOnceInOrder(t *testing.T, global bool) {
	c := newClusterMode(t, 3, global, transport.FaultConfig{Seed: 3, DropRate: 0.15, DupRate: 0.15, DelayRate: 0.2,
		MaxDelay: 10 * time.Millisecond, FailRate: 0.1, PhantomFailRate: 0.05})
	var want []string
	for i := 1; i <= 40; i++ {
		c.signal("@fwd@a!1", fmt.Sprintf("@sink@k!0=%d", i))
		c.signal("@fwd@b!2", fmt.Sprintf("@sink@j!0=%d", i))
		c.signal("@fwd@c!0", fmt.Sprintf("@sink@m!1=%d", i))
		want = append(want, fmt.Sprint(i))
		if i%4 == 0 {
			// In waves, so that there are many batches (and faults).
			c.waitSink("@sink@k!0", strings.Join(want, ","))
		}
	}
	c.waitSink("@sink@k!0", strings.Join(want, ","))
	c.waitSink("@sink@j!0", strings.Join(want, ","))
	c.waitSink("@sink@m!1", strings.Join(want, ","))
	c.waitOutboxesDrain()
	st := c.net.Stats()
	if st.Dropped == 0 || st.Duplicated == 0 || st.Delayed == 0 || st.FailedSends == 0 {
		t.Fatalf("not every fault was injected: %+v", st)
	}
	t.Logf("faults: %+v", st)
}

// The receiver crashing between durability and its ack tick used to lose
// the ack for good (acks were volatile and never re-sent). Now acks of the
// durable dedup marks go out when a partition starts. The sender here
// never resends on its own, so only that ack can drain its outbox.
func TestAcksResentAfterReceiverCrash(t *testing.T) {
	var dropAcks atomic.Bool
	dropAcks.Store(true)
	c := newCluster(t, 2, transport.FaultConfig{Script: func(dest int, pk *transport.Packet) transport.Fault {
		if pk.Ack != nil && dropAcks.Load() {
			return transport.FaultDrop
		}
		return transport.FaultDeliver
	}}, CourierConfig{ResendAfter: time.Hour, AckDelay: time.Millisecond})
	c.signal("@fwd@a!1", "@sink@k!0=1")
	c.waitSink("@sink@k!0", "1")
	eventually(t, "the ack is lost", func() (bool, string) {
		return c.net.Stats().Dropped > 0, "no ack dropped yet"
	})
	c.crash(0)
	dropAcks.Store(false)
	c.start(0)
	c.waitOutboxesDrain()
	if got := c.entity("@sink@k!0"); got != "1" {
		t.Fatalf("sink = %q after the restart, want 1", got)
	}
}
