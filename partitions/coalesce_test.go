package partitions

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

// recordingLog records the event names of every Append.
type recordingLog struct {
	mu      sync.Mutex
	appends [][]string
}

func (l *recordingLog) Append(entries []LogEntry) error {
	var names []string
	for _, e := range entries {
		names = append(names, e.Event.eventName())
	}
	l.mu.Lock()
	l.appends = append(l.appends, names)
	l.mu.Unlock()
	return nil
}

func (l *recordingLog) snapshot() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]string(nil), l.appends...)
}

// A message from another partition and the step it causes go into one
// commit (doc/hops.md): what the step sends waits for one commit, not two.
func TestReceiptAndStepShareACommit(t *testing.T) {
	mem := transport.NewMemory(2)
	defer mem.Close()
	log := &recordingLog{}
	cfg := Config{Partition: 0, Count: 2, Executor: relayExecutor{}, Transport: mem, Log: log,
		Pools: NewPools(4, 4, 4), Cursors: NewCursorCache(-1), CoalesceWindow: 10 * time.Second}
	p, err := Start(context.Background(), cfg, NewState(0, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	eventually(t, "recovery logged", func() (bool, string) { return len(log.snapshot()) > 0, "" })
	sink := "@sink@a!0"
	e := core.NewEvent(core.EventEntityOperationSignaled, time.Now())
	e.Name, e.Input = "op", []byte("1")
	b := &transport.MessageBatch{Origin: 1, OriginPos: 5, Messages: []*core.TaskMessage{{Target: core.Instance{InstanceID: sink}, Event: e}}}
	if err := mem.SendToPartition(0, &transport.Packet{Messages: b}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entity's step logged", func() (bool, string) {
		got := fmt.Sprint(log.snapshot())
		return strings.Contains(got, "EntityBatchProcessed"), got
	})
	for _, a := range log.snapshot() {
		joined := strings.Join(a, ",")
		if strings.Contains(joined, "MessagesReceived") && !strings.Contains(joined, "MessagesReceived,EntityBatchProcessed") {
			t.Fatalf("the receipt was committed without the step it caused: appends %v", log.snapshot())
		}
	}
}
