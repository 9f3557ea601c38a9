package netherite_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	. "github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

func createReq(id, name string, input string, reqID uint64) *ClientRequestReceived {
	start := core.NewEvent(core.EventExecutionStarted, time.Now())
	start.Name, start.InstanceID, start.ExecutionID, start.Input = name, id, "exec-"+id, []byte(input)
	return &ClientRequestReceived{InputPos: reqID, Request: &transport.ClientRequest{
		Kind: transport.RequestCreate, ClientID: "c", RequestID: reqID, InstanceID: id, Event: start}}
}

// captureLog records every entry, like a commit log would.
type captureLog struct {
	mu      sync.Mutex
	entries []LogEntry
}

func (c *captureLog) Append(es []LogEntry) error {
	c.mu.Lock()
	c.entries = append(c.entries, es...)
	c.mu.Unlock()
	return nil
}

// TestReplayReproducesState runs partitions under a real workload, then
// applies each partition's logged events to an empty state: the result
// must equal the live state exactly.
func TestReplayReproducesState(t *testing.T) {
	for _, persistFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistFirst=%v", persistFirst), func(t *testing.T) {
			const count = 3
			r := durable.NewRegistry()
			samples.Register(r)
			x := netherite.WorkExecutor(durable.NewExecutor(r, durable.ExecutorOptions{}))
			tr := transport.NewMemory(count)
			defer tr.Close()
			pools := NewPools(8, 8, 8)
			cursors := NewCursorCache(1 << 20)
			defer cursors.Clear()
			var parts []*Partition
			var logs []*captureLog
			for i := 0; i < count; i++ {
				l := &captureLog{}
				logs = append(logs, l)
				p, err := Start(context.Background(), Config{Partition: i, Count: count, Executor: x, Transport: tr, Log: l,
					Pools: pools, Cursors: cursors, PersistStepsFirst: persistFirst}, NewState(i, count))
				if err != nil {
					t.Fatal(err)
				}
				parts = append(parts, p)
			}
			responses, closeFn, err := tr.ListenClient("c")
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			send := func(id string, ev Event) {
				req := ev.(*ClientRequestReceived).Request
				if err := tr.SendToPartition(PartitionOf(id, count), &transport.Packet{Request: req}); err != nil {
					t.Fatal(err)
				}
			}
			var reqs uint64
			next := func() uint64 { reqs++; return reqs }
			for i := 0; i < 20; i++ {
				send(fmt.Sprintf("h%d", i), createReq(fmt.Sprintf("h%d", i), samples.HelloSequence, "", next()))
				send(fmt.Sprintf("f%d", i), createReq(fmt.Sprintf("f%d", i), samples.FanOutFanIn, "20", next()))
			}
			for i := 0; i < 10; i++ {
				id := fmt.Sprintf("t%d", i)
				in := fmt.Sprintf(`{"from":"a!%d","to":"b!%d","amount":1}`, i%3, (i+1)%3)
				send(id, createReq(id, samples.Transfer, in, next()))
			}
			// Wait until every request was answered and every orchestration ended.
			deadline := time.After(20 * time.Second)
			for got := uint64(0); got < reqs; got++ {
				select {
				case <-responses:
				case <-deadline:
					t.Fatalf("only %d of %d responses", got, reqs)
				}
			}
			for {
				done := true
				for i := 0; i < count; i++ {
					wait := &transport.ClientRequest{Kind: transport.RequestQuery, ClientID: "c", RequestID: next(),
						Filter: &transport.Filter{Statuses: []core.RuntimeStatus{core.StatusPending, core.StatusRunning}}}
					_ = tr.SendToPartition(i, &transport.Packet{Request: wait})
					select {
					case pk := <-responses:
						if len(pk.Response.Instances) > 0 {
							done = false
						}
					case <-deadline:
						t.Fatal("orchestrations did not finish")
					}
				}
				if done {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(150 * time.Millisecond) // let acks flow
			for i, p := range parts {
				if err := p.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
				live := p.State()
				replayed := NewState(i, count)
				for _, e := range logs[i].entries {
					replayed.Apply(e.Pos, e.At, e.Event, &Effects{})
				}
				if !reflect.DeepEqual(live, replayed) {
					t.Fatalf("partition %d: replaying %d logged events does not reproduce the live state", i, len(logs[i].entries))
				}
				if len(live.Instances) == 0 {
					t.Fatalf("partition %d holds no instances", i)
				}
			}
		})
	}
}
