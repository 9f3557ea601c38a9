package partitions

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/transport"
)

func TestJudgeSpeculativeSteps(t *testing.T) {
	c := &transport.Confirm{From: 1, Epochs: []uint64{3, 10, 20}, Durable: 25}
	for _, tc := range []struct {
		epoch, pos uint64
		want       specVerdict
	}{
		{20, 25, specDurable}, // current incarnation, durable
		{20, 26, specUnknown}, // current incarnation, not yet
		{21, 22, specUnknown}, // newer than the confirmation
		{10, 19, specDurable}, // ended incarnation, before the next start
		{10, 20, specLost},    // ended incarnation, at the next start
		{3, 9, specDurable},   // older one
		{3, 12, specLost},     // older one, past its end
		{2, 4, specLost},      // not listed, at or after the first listed start
		{2, 2, specLost},      // not listed, cannot be told: counts as lost
		{20, 0, specDurable},  // trivially
	} {
		if got := judge(c, tc.epoch, tc.pos); got != tc.want {
			t.Errorf("judge(step %d of %d) = %d, want %d", tc.pos, tc.epoch, got, tc.want)
		}
	}
	if judge(nil, 1, 1) != specUnknown || judge(&transport.Confirm{}, 1, 1) != specUnknown {
		t.Error("no confirmation must decide nothing")
	}
}

func TestSpecDepsLimitAndLearn(t *testing.T) {
	d := NewSpecDeps(nil, nil)
	if !d.Admit(10, 1, 5, 7) || !d.Admit(12, 2, 4, 30) || !d.Admit(15, 1, 5, 9) {
		t.Fatal("unknown steps must be admitted")
	}
	if d.Limit() != 9 || d.Pending() != 3 {
		t.Fatalf("limit %d pending %d, want 9 and 3", d.Limit(), d.Pending())
	}
	if lost := d.Learn(&transport.Confirm{From: 1, Epochs: []uint64{5}, Durable: 8}); lost != "" || d.Limit() != 11 {
		t.Fatalf("after partition 1 confirmed 8: lost %q, limit %d, want 11", lost, d.Limit())
	}
	// An older confirmation changes nothing.
	if lost := d.Learn(&transport.Confirm{From: 1, Epochs: []uint64{5}, Durable: 6}); lost != "" || d.Pending() != 2 {
		t.Fatalf("stale confirmation: lost %q pending %d", lost, d.Pending())
	}
	// Partition 1 restarted at 9: its step 9 of incarnation 5 was lost.
	lost := d.Learn(&transport.Confirm{From: 1, Epochs: []uint64{5, 9}, Durable: 8})
	if !strings.Contains(lost, "partition 1") {
		t.Fatalf("lost = %q, want the lost step named", lost)
	}
	// What was learnt drops the step's batch from now on, in a new
	// incarnation too.
	d2 := NewSpecDeps(Learnt(d.Known()), nil)
	if d2.Admit(3, 1, 5, 9) {
		t.Fatal("a batch of a step known lost was admitted")
	}
	if !d2.Admit(3, 1, 5, 8) || d2.Pending() != 0 {
		t.Fatal("a batch of a step known durable must be admitted without waiting")
	}
}

// A receiver under global speculation applies a speculative batch at
// once, but logs nothing from it on until its origin confirms the step;
// when the origin says the step was lost, it fails (to be recovered from
// storage) and, restarted, drops the batch it reads again.
func TestSpeculativeBatchWaitsForConfirmationOrRollsBack(t *testing.T) {
	mem := transport.NewMemory(2)
	defer mem.Close()
	spec := NewSpecMemory()
	start := func(log CommitLog, st *State) *Partition {
		cfg := Config{Partition: 1, Count: 2, Executor: relayExecutor{}, Transport: mem, Log: log,
			Pools: NewPools(4, 4, 4), Cursors: NewCursorCache(-1), Speculation: SpeculationGlobal, SpecMemory: spec}
		p, err := Start(context.Background(), cfg, st)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	logged := func(l *recordingLog) string {
		var b strings.Builder
		for _, a := range l.snapshot() {
			b.WriteString(strings.Join(a, ",") + ";")
		}
		return b.String()
	}
	batch := func(pos uint64, val string) *transport.Packet {
		e := core.NewEvent(core.EventEntityOperationSignaled, time.Now())
		e.Name, e.Input = "op", []byte(val)
		return &transport.Packet{SpecEpoch: 5, Messages: &transport.MessageBatch{Origin: 0, OriginPos: pos, Prev: 0,
			Messages: []*core.TaskMessage{{Target: core.Instance{InstanceID: "@sink@a!1"}, Event: e}}}}
	}
	log := &recordingLog{}
	p := start(log, NewState(1, 2))
	if err := mem.SendToPartition(1, batch(7, "x")); err != nil {
		t.Fatal(err)
	}
	// Applied (the entity's step runs), not logged.
	eventually(t, "the entity's step applied", func() (bool, string) {
		return strings.Contains(logged(log), "RecoveryCompleted"), logged(log)
	})
	time.Sleep(20 * time.Millisecond) // give a wrong commit the time to happen
	if got := logged(log); strings.Contains(got, "MessagesReceived") {
		t.Fatalf("a speculative batch was logged before its step was confirmed: %s", got)
	}
	mem.SendToPartition(1, &transport.Packet{Confirm: &transport.Confirm{From: 0, Epochs: []uint64{5}, Durable: 7}})
	eventually(t, "logged once confirmed", func() (bool, string) {
		got := logged(log)
		return strings.Contains(got, "MessagesReceived") && strings.Contains(got, "EntityBatchProcessed"), got
	})
	// The next step of the origin's incarnation 5 is lost: it restarted
	// at 9.
	mem.SendToPartition(1, batch(9, "y"))
	mem.SendToPartition(1, &transport.Packet{Confirm: &transport.Confirm{From: 0, Epochs: []uint64{5, 9}, Durable: 8}})
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the partition did not roll back")
	}
	if err := p.Err(); !errors.Is(err, ErrSpeculationLost) {
		t.Fatalf("Err = %v, want ErrSpeculationLost", err)
	}
	if got := logged(log); strings.Count(got, "MessagesReceived") != 1 {
		t.Fatalf("the lost step's batch was logged: %s", got)
	}
	// Recovered from its log over the same queue: the lost step's batch,
	// read again, is dropped; the state has only the durable one.
	st := log.recover(1, 2)
	p2 := start(log, st)
	eventually(t, "the restart logged", func() (bool, string) {
		return strings.Count(logged(log), "RecoveryCompleted") == 2, logged(log)
	})
	time.Sleep(20 * time.Millisecond) // give a wrong application the time to happen
	if got := logged(log); strings.Count(got, "MessagesReceived") != 1 {
		t.Fatalf("after the rollback: %s, want only the durable batch", got)
	}
	p2.Stop(context.Background())
	if got := p2.State().Learnt[0]; len(got) != 2 || got[1] != 9 {
		t.Errorf("learnt %v of partition 0, want its incarnations [5 9]", got)
	}
}
