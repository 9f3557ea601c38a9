package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func msgPacket(pos uint64) *Packet {
	return &Packet{Messages: &MessageBatch{Origin: 1, OriginPos: pos}}
}

// drain reads everything in partition p's queue once delayed packets
// have landed.
func drain(t *testing.T, m *Memory, f *Faulty, p int) []uint64 {
	t.Helper()
	f.Settle()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var got []uint64
	from := uint64(0)
	for {
		pkts, next, err := m.ReceivePartition(ctx, p, from)
		if err != nil {
			return got
		}
		for _, pk := range pkts {
			got = append(got, pk.Messages.OriginPos)
		}
		from = next
	}
}

func TestFaultyDropsDuplicatesDelays(t *testing.T) {
	m := NewMemory(2)
	f := NewFaulty(m, FaultConfig{Seed: 7, DropRate: 0.2, DupRate: 0.2, DelayRate: 0.3, MaxDelay: 5 * time.Millisecond})
	const n = 500
	for i := 1; i <= n; i++ {
		if err := f.SendToPartition(0, msgPacket(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := drain(t, m, f, 0)
	st := f.Stats()
	if st.Dropped == 0 || st.Duplicated == 0 || st.Delayed == 0 {
		t.Fatalf("faults not injected: %+v", st)
	}
	if want := n - st.Dropped + st.Duplicated; int64(len(got)) != want {
		t.Fatalf("delivered %d packets, want %d (stats %+v)", len(got), want, st)
	}
	reordered := false
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			reordered = true
		}
	}
	if !reordered {
		t.Fatal("delays reordered nothing")
	}
}

func TestFaultyFailsSendsAndReceives(t *testing.T) {
	m := NewMemory(1)
	calls := 0
	f := NewFaulty(m, FaultConfig{Script: func(dest int, pk *Packet) Fault {
		calls++
		if calls == 1 {
			return FaultFail
		}
		return FaultNone
	}})
	if err := f.SendToPartition(0, msgPacket(1), msgPacket(2)); !errors.Is(err, ErrInjected) {
		t.Fatalf("first send: %v, want ErrInjected", err)
	}
	if err := f.SendToPartition(0, msgPacket(3)); err != nil {
		t.Fatal(err)
	}
	// Client requests are not faulted by default.
	if err := f.SendToPartition(0, &Packet{Request: &ClientRequest{Kind: RequestStatus}}); err != nil {
		t.Fatal(err)
	}
	f.FailReceives(1)
	ctx := context.Background()
	if _, _, err := f.ReceivePartition(ctx, 0, 0); !errors.Is(err, ErrInjected) {
		t.Fatalf("receive: %v, want ErrInjected", err)
	}
	pkts, _, err := f.ReceivePartition(ctx, 0, 0)
	if err != nil || len(pkts) != 2 || pkts[0].Messages.OriginPos != 3 || pkts[1].Request == nil {
		t.Fatalf("after a failed send: %d packets, %v", len(pkts), err)
	}
}

func TestFaultyDeterministicPerSeed(t *testing.T) {
	run := func() FaultStats {
		m := NewMemory(1)
		f := NewFaulty(m, FaultConfig{Seed: 42, DropRate: 0.1, DupRate: 0.1, FailRate: 0.1})
		for i := 1; i <= 200; i++ {
			_ = f.SendToPartition(0, msgPacket(uint64(i)))
		}
		return f.Stats()
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("same seed, different faults: %+v vs %+v", a, b)
	}
}

func TestMemoryTrimmedPositionIsGone(t *testing.T) {
	m := NewMemory(1)
	_ = m.SendToPartition(0, msgPacket(1), msgPacket(2))
	m.TrimPartition(0, 2)
	if _, _, err := m.ReceivePartition(context.Background(), 0, 0); !errors.Is(err, ErrPositionGone) {
		t.Fatalf("read before the trim: %v, want ErrPositionGone", err)
	}
}
