package partitions

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// gatedReceive holds the partition's reads until the gate opens: the
// packets sent meanwhile wait in the memory queue (its input lag).
type gatedReceive struct {
	*transport.Memory
	gate chan struct{}
}

func (g *gatedReceive) ReceivePartition(ctx context.Context, p int, from uint64) ([]*transport.Packet, uint64, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, from, ctx.Err()
	}
	return g.Memory.ReceivePartition(ctx, p, from)
}

// gatedOrchestrations runs orchestrations only as the gate lets them.
type gatedOrchestrations struct {
	relayExecutor
	gate chan struct{}
}

func (g gatedOrchestrations) ExecuteOrchestration(w *OrchestrationWork) *OrchestrationOutcome {
	<-g.gate
	return &OrchestrationOutcome{Status: core.StatusCompleted}
}

func createPacket(id string, reqID uint64, fireAt time.Time) *transport.Packet {
	e := core.NewEvent(core.EventExecutionStarted, time.Now())
	e.Name, e.InstanceID, e.ExecutionID, e.FireAt = "O", id, fmt.Sprintf("exec-%d", reqID), fireAt
	return &transport.Packet{Request: &transport.ClientRequest{Kind: transport.RequestCreate, ClientID: "c",
		RequestID: reqID, InstanceID: id, Event: e, Timestamp: time.Now()}}
}

// idsOn returns n instance ids that live on partition p of count.
func idsOn(p, count, n int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if id := fmt.Sprintf("o%d", i); PartitionOf(id, count) == p {
			ids = append(ids, id)
		}
	}
	return ids
}

func lastLetter(l transport.PartitionLoad) byte {
	if l.Latency == "" {
		return 0
	}
	return l.Latency[len(l.Latency)-1]
}

// Packets the partition has not read are its input lag; once it reads
// and runs them they are events and instances.
func TestLoadSampleInputLag(t *testing.T) {
	mem := transport.NewMemory(2)
	defer mem.Close()
	tr := &gatedReceive{Memory: mem, gate: make(chan struct{})}
	cfg := testConfig(tr, 1, 2)
	p, err := Start(context.Background(), cfg, NewState(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	ids := idsOn(1, 2, 7)
	for i, id := range ids {
		if err := mem.SendToPartition(1, createPacket(id, uint64(i+1), time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	l := p.LoadSample(time.Now())
	if l.Partition != 1 || l.InputLag != 7 {
		t.Fatalf("before reading: partition %d input lag %d, want partition 1 lag 7", l.Partition, l.InputLag)
	}
	if c := lastLetter(l); c == 'I' {
		t.Fatalf("a partition with unread input is not idle: trend %q", l.Latency)
	}
	close(tr.gate)
	eventually(t, "the input to be read and run", func() (bool, string) {
		l = p.LoadSample(time.Now())
		return l.InputLag == 0 && l.Instances == 7 && l.WorkItems == 0 && l.Events >= 7+7,
			fmt.Sprintf("%+v", l)
	})
}

// Orchestrations waiting for a busy pool are work items, and their wait
// shows in the latency trend; once everything ran and nothing waits the
// partition is idle.
func TestLoadSampleBacklogThenIdle(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	gate := make(chan struct{})
	cfg := testConfig(tr, 0, 1)
	cfg.Executor, cfg.Pools = gatedOrchestrations{gate: gate}, NewPools(1, 1, 1)
	p, err := Start(context.Background(), cfg, NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	ids := idsOn(0, 1, 5)
	for i, id := range ids {
		if err := tr.SendToPartition(0, createPacket(id, uint64(i+1), time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "five work items, one running", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return l.WorkItems == 5 && l.InputLag == 0, fmt.Sprintf("%+v", l)
	})
	// The queued four wait at least this long for the one pool slot.
	time.Sleep(LatencyLow + 20*time.Millisecond)
	close(gate)
	eventually(t, "the backlog to run, its wait showing", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return l.WorkItems == 0 && strings.ContainsAny(l.Latency, "MH"), fmt.Sprintf("%+v", l)
	})
	eventually(t, "the partition to be idle", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return lastLetter(l) == 'I', fmt.Sprintf("%+v", l)
	})
	l := p.LoadSample(time.Now())
	if lastLetter(l) != 'I' || l.WorkItems != 0 || l.Activities != 0 || l.InputLag != 0 || l.Events < 10 {
		t.Fatalf("idle partition: %+v", l)
	}
	if len(l.Latency) != LatencyTrendLen {
		t.Fatalf("trend %q: want %d letters", l.Latency, LatencyTrendLen)
	}
}

// A fresh partition with nothing to do is idle from its second period
// on (the first one ran its recovery event).
func TestLoadSampleIdle(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	p, err := Start(context.Background(), testConfig(tr, 0, 1), NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	eventually(t, "the recovery event to be handled", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return l.Events >= 1, fmt.Sprintf("%+v", l)
	})
	l := p.LoadSample(time.Now())
	if !strings.HasSuffix(l.Latency, "I") || l.WorkItems+l.Activities+l.Timers+l.Outbox != 0 || !l.NextTimer.IsZero() {
		t.Fatalf("idle partition: %+v", l)
	}
}

// Pending timers (here: scheduled starts) are counted, and the earliest
// is NextTimer; a partition that only waits for its timers is idle.
func TestLoadSampleTimers(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	p, err := Start(context.Background(), testConfig(tr, 0, 1), NewState(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	soon := time.Now().Add(time.Hour).Round(time.Millisecond)
	ids := idsOn(0, 1, 2)
	if err := tr.SendToPartition(0, createPacket(ids[0], 1, soon.Add(time.Hour)), createPacket(ids[1], 2, soon)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two timers", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return l.Timers == 2 && l.NextTimer.Equal(soon), fmt.Sprintf("%+v", l)
	})
	eventually(t, "the partition to be idle", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return lastLetter(l) == 'I' && l.Timers == 2 && l.Instances == 2, fmt.Sprintf("%+v", l)
	})
	// A sample taken after the timer is due sees it overdue: not idle.
	if l := p.LoadSample(soon.Add(2 * LatencyHigh)); lastLetter(l) != 'H' {
		t.Fatalf("a timer overdue by %v: trend %q, want H last", 2*LatencyHigh, l.Latency)
	}
}

// Queued activities are counted until they run.
func TestLoadSampleActivities(t *testing.T) {
	tr := transport.NewMemory(1)
	defer tr.Close()
	x := &blockingActivities{}
	cfg := testConfig(tr, 0, 1)
	cfg.Executor, cfg.Pools = x, NewPools(4, 4, 2)
	p, err := Start(context.Background(), cfg, stateWithActivities(0, 1, 50))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	eventually(t, "50 activities pending", func() (bool, string) {
		l := p.LoadSample(time.Now())
		return l.Activities == 50 && lastLetter(l) != 'I', fmt.Sprintf("%+v", l)
	})
}

// With a backing store most instances are not resident: the count still
// covers them all (a scan the loop does when a sample asks), and the
// cache bytes are the resident ones.
func TestLoadSampleBackedInstances(t *testing.T) {
	r := newPrefetchRig(t)
	const n = 40
	for i := 0; i < n; i++ {
		r.response(r.signal(fmt.Sprintf("@counter@k%d", i)))
	}
	eventually(t, "40 instances counted", func() (bool, string) {
		l := r.p.LoadSample(time.Now())
		return l.Instances == n && l.CacheBytes > 0 && l.CacheBytes <= 6000+4096, fmt.Sprintf("%+v", l)
	})
	if res, _, ev := r.p.StateStats(); ev == 0 {
		t.Fatalf("nothing was evicted (resident %d): the test does not exercise the scan", res)
	}
}

func TestLatencyLetter(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want byte
	}{{0, 'L'}, {LatencyLow - 1, 'L'}, {LatencyLow, 'M'}, {LatencyHigh - 1, 'M'}, {LatencyHigh, 'H'}, {time.Hour, 'H'}} {
		if got := LatencyLetter(tc.d); got != tc.want {
			t.Errorf("LatencyLetter(%v) = %c, want %c", tc.d, got, tc.want)
		}
	}
}
