package blobstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/transport"
)

// TestDurableStoreOnBlobs: a partition's blob storage slots into
// partitions.OpenDurableStore as the local directories do (commit-log
// device, KV device, one metadata store): events appended, a checkpoint
// saved, and a new owner recovers the state.
func TestDurableStoreOnBlobs(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	event := func(pos uint64) partitions.Event {
		id := fmt.Sprintf("inst-%d", pos)
		start := core.NewEvent(core.EventExecutionStarted, t0)
		start.Name, start.InstanceID, start.ExecutionID, start.Input = "O", id, "exec-"+id, []byte(`"input"`)
		return &partitions.ClientRequestReceived{InputPos: pos, Request: &transport.ClientRequest{
			Kind: transport.RequestCreate, ClientID: "c", RequestID: pos, InstanceID: id, Event: start}}
	}
	open := func() (*partitions.DurableStore, func()) {
		p := openPartition(t, c, 1, 0)
		s, err := partitions.OpenDurableStore("partition 1", p.LogDevice, p.Meta, partitions.StoreOptions{
			KVDevice: p.KVDevice, KVMemoryBytes: 1 << 20, ResidentBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s, func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	s, closeStore := open()
	st, err := s.Recover(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for pos := uint64(1); pos <= 30; pos++ {
		at := t0.Add(time.Duration(pos) * time.Millisecond)
		ev := event(pos)
		if err := s.Append([]partitions.LogEntry{{Pos: pos, At: at, Event: ev}}); err != nil {
			t.Fatal(err)
		}
		st.Apply(pos, at, ev, &partitions.Effects{})
		if pos == 20 {
			snap, err := s.Snapshot(st)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SaveCheckpoint(snap, 20, 20, s.Mark()); err != nil {
				t.Fatal(err)
			}
		}
	}
	closeStore()

	s, closeStore = open()
	defer closeStore()
	st2, err := s.Recover(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st2.LastPos != 30 {
		t.Fatalf("recovered up to position %d; want 30", st2.LastPos)
	}
}
