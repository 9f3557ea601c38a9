package partitions

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/transport"
)

// failAfter reports a hang instead of waiting forever; the passing path
// never waits for it.
const failAfter = 20 * time.Second

// counterExecutor runs entities that count the operations they received;
// the value is padded so that instances fill KV pages.
type counterExecutor struct{}

func (counterExecutor) ExecuteOrchestration(*OrchestrationWork) *OrchestrationOutcome {
	return &OrchestrationOutcome{Status: core.StatusCompleted}
}

func (counterExecutor) ExecuteEntity(_ core.EntityID, st *core.EntityState, msgs []*core.HistoryEvent, _ time.Time) (*core.EntityState, []*core.TaskMessage) {
	n := 0
	if st != nil && st.Exists {
		n, _ = strconv.Atoi(strings.TrimRight(string(st.Value), " "))
	}
	v := fmt.Sprintf("%-600d", n+len(msgs))
	return &core.EntityState{Exists: true, Value: []byte(v)}, nil
}

func (counterExecutor) ExecuteActivity(context.Context, *core.TaskMessage) *core.TaskMessage {
	return nil
}

// prefetchRig is one partition on a KV whose device can hold reads, and a
// client on its transport.
type prefetchRig struct {
	t      *testing.T
	kvDev  *faster.FaultDevice
	logDev faster.Device
	meta   faster.MetaStore
	opts   StoreOptions
	tr     *transport.Memory
	p      *Partition
	resp   <-chan *transport.Packet
	nextID uint64
}

func newPrefetchRig(t *testing.T) *prefetchRig {
	r := &prefetchRig{t: t, kvDev: faster.NewFaultDevice(faster.NewMemoryDevice("kv", 512, 64<<10)), tr: transport.NewMemory(1),
		logDev: faster.NewMemoryDevice("log", 512, 1<<20), meta: faster.NewMemoryMeta()}
	// Two KV pages in memory and room for a few resident instances: most
	// instances are read back from the device.
	r.opts = StoreOptions{KVDevice: r.kvDev, KVMemoryBytes: 2 * 4096, KVPageSize: 4096, ResidentBytes: 6000}
	store, err := OpenDurableStore("partition 0", r.logDev, r.meta, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Recover(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var closeResp func()
	if r.resp, closeResp, err = r.tr.ListenClient("c"); err != nil {
		t.Fatal(err)
	}
	if r.p, err = Start(context.Background(), Config{Partition: 0, Count: 1, Executor: counterExecutor{}, Transport: r.tr, Log: store,
		Pools: NewPools(4, 4, 4), Checkpoints: CheckpointPolicy{Events: 1 << 30, Idle: time.Hour}}, st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), failAfter)
		defer cancel()
		_ = r.p.Stop(ctx)
		closeResp()
		r.tr.Close()
		_ = store.Close()
	})
	return r
}

// send sends a request and returns its id.
func (r *prefetchRig) send(req *transport.ClientRequest) uint64 {
	r.nextID++
	req.ClientID, req.RequestID = "c", r.nextID
	if err := r.tr.SendToPartition(0, &transport.Packet{Request: req}); err != nil {
		r.t.Fatal(err)
	}
	return r.nextID
}

func (r *prefetchRig) signal(entity string) uint64 {
	ev := core.NewEvent(core.EventEntityOperationSignaled, time.Now().UTC())
	ev.Name, ev.InstanceID, ev.RequestID = "add", entity, fmt.Sprint("op-", r.nextID+1)
	return r.send(&transport.ClientRequest{Kind: transport.RequestSignalEntity, InstanceID: entity, Event: ev})
}

// response waits for the next response, which must answer id.
func (r *prefetchRig) response(id uint64) *transport.ClientResponse {
	r.t.Helper()
	select {
	case pk := <-r.resp:
		if pk.Response == nil || pk.Response.RequestID != id {
			r.t.Fatalf("got response %+v, want one to request %d", pk.Response, id)
		}
		if pk.Response.Error != "" {
			r.t.Fatalf("request %d: %s", id, pk.Response.Error)
		}
		return pk.Response
	case <-time.After(failAfter):
		r.t.Fatalf("no response to request %d", id)
	}
	return nil
}

// count reads an entity's counter (0 before its first operation ran:
// a signal is acknowledged when it is durably queued, not when it ran).
func (r *prefetchRig) count(entity string) int {
	r.t.Helper()
	id := r.send(&transport.ClientRequest{Kind: transport.RequestGetEntity, InstanceID: entity, IncludePayloads: true})
	var resp *transport.ClientResponse
	select {
	case pk := <-r.resp:
		if pk.Response == nil || pk.Response.RequestID != id {
			r.t.Fatalf("got response %+v, want one to request %d", pk.Response, id)
		}
		resp = pk.Response
	case <-time.After(failAfter):
		r.t.Fatalf("no response to request %d", id)
	}
	if resp.ErrorCode == transport.CodeNotFound {
		return 0
	}
	if resp.Error != "" {
		r.t.Fatalf("request %d: %s", id, resp.Error)
	}
	n, err := strconv.Atoi(strings.TrimRight(string(resp.Entities[0].State), " "))
	if err != nil {
		r.t.Fatalf("entity %s: state %q", entity, resp.Entities[0].State)
	}
	return n
}

// waitCount waits until the entity's work item has counted want.
func (r *prefetchRig) waitCount(entity string, want int) {
	r.t.Helper()
	deadline := time.Now().Add(failAfter)
	for r.count(entity) != want {
		if time.Now().After(deadline) {
			r.t.Fatalf("entity %s never counted %d", entity, want)
		}
	}
}

// A signal to an instance that is not resident parks while the instance
// is read from the device; the loop stays free meanwhile (a checkpoint
// completes while the device read is held), a signal behind it in input
// order waits even though its instance is resident, and both are applied
// in order once the read completes. Nothing is loaded on the loop.
func TestPrefetchParksAndKeepsInputOrder(t *testing.T) {
	r := newPrefetchRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	entity := func(i int) string { return fmt.Sprintf("@counter@e%02d", i) }
	const n = 40
	for i := range n {
		r.response(r.signal(entity(i)))
	}
	for i := range n {
		r.waitCount(entity(i), 1)
	}
	// The checkpoint writes the instances to the KV; then they are clean
	// and most are evicted.
	if err := r.p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitCount(entity(2), 1) // e02 is now resident (most recently used)

	hold := r.kvDev.HoldReads()
	defer hold.Release()
	first := r.signal(entity(1))
	second := r.signal(entity(2))
	select {
	case <-hold.Blocked():
	case <-time.After(failAfter):
		t.Fatal("the signal to an evicted instance read nothing from the device")
	}
	deadline := time.Now().Add(failAfter)
	for r.p.Parked() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d items parked, want 2 (the two signals)", r.p.Parked())
		}
		time.Sleep(time.Millisecond)
	}
	// The loop is not waiting for the device: it takes a checkpoint.
	if err := r.p.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint while a load is held: %v", err)
	}
	select {
	case pk := <-r.resp:
		t.Fatalf("response %+v while the first signal's instance was still loading", pk.Response)
	default:
	}
	hold.Release()
	r.response(first)
	r.response(second)
	r.waitCount(entity(1), 2)
	r.waitCount(entity(2), 2)
	if _, loads, _ := r.p.StateStats(); loads == 0 {
		t.Fatal("no instance was loaded in the background")
	}
	if s := r.p.SyncLoads(); s != 0 {
		t.Fatalf("%d synchronous loads on the loop", s)
	}
}

// status reads an orchestration's status (nil if there is none).
func (r *prefetchRig) status(id string) *transport.InstanceStatus {
	r.t.Helper()
	rid := r.send(&transport.ClientRequest{Kind: transport.RequestStatus, InstanceID: id})
	select {
	case pk := <-r.resp:
		if pk.Response == nil || pk.Response.RequestID != rid {
			r.t.Fatalf("got response %+v, want one to request %d", pk.Response, rid)
		}
		return pk.Response.Status
	case <-time.After(failAfter):
		r.t.Fatalf("no response to request %d", rid)
	}
	return nil
}

// A purge by filter on the live loop considers only resident instances,
// after the background scan made every match resident: it purges the
// same instances as the replay of the log at recovery, which considers
// them all.
func TestPurgeWhereLiveAndReplayAgree(t *testing.T) {
	r := newPrefetchRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	create := func(id string) {
		start := core.NewEvent(core.EventExecutionStarted, time.Now().UTC())
		start.Name, start.InstanceID, start.ExecutionID, start.Input = "O", id, "x-"+id, []byte(strings.Repeat("i", 500))
		r.response(r.send(&transport.ClientRequest{Kind: transport.RequestCreate, InstanceID: id, Event: start}))
	}
	waitDone := func(id string) {
		deadline := time.Now().Add(failAfter)
		for s := r.status(id); s == nil || s.Status != core.StatusCompleted; s = r.status(id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never completed: %+v", id, s)
			}
		}
	}
	id := func(i int) string { return fmt.Sprintf("o%02d", i) }
	for i := range 30 {
		create(id(i))
	}
	for i := range 30 {
		waitDone(id(i))
	}
	if err := r.p.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	create(id(31)) // changed after the checkpoint: dirty, resident
	waitDone(id(31))
	resp := r.response(r.send(&transport.ClientRequest{Kind: transport.RequestPurgeWhere,
		Filter: &transport.Filter{InstanceIDPrefix: "o1", Statuses: []core.RuntimeStatus{core.StatusCompleted}}}))
	if resp.Count != 10 {
		t.Fatalf("the live purge removed %d instances, want 10 (o10 to o19)", resp.Count)
	}
	if s := r.p.SyncLoads(); s != 0 {
		t.Fatalf("%d synchronous loads on the loop", s)
	}
	// Replay the log after the checkpoint (the purge included) from
	// storage, as recovery after a crash would.
	store, err := OpenDurableStore("partition 0 replay", r.logDev, r.meta, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Recover(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 32 {
		if i != 30 && (i < 10 || i > 19) {
			want = append(want, id(i))
		}
	}
	if got := st.IDs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after replay the instances are\n%v\nwant\n%v", got, want)
	}
}
