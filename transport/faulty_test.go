package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

// readN reads partition p's queue until it holds n packets (or fails).
func readN(t *testing.T, tr Transport, p, n int) []*Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []*Packet
	from := uint64(0)
	for len(got) < n {
		ps, next, err := tr.ReceivePartition(ctx, p, from)
		if err != nil {
			t.Fatalf("after %d of %d packets: %v", len(got), n, err)
		}
		got, from = append(got, ps...), next
	}
	return got
}

func acks(n int) []*Packet {
	ps := make([]*Packet, n)
	for i := range ps {
		ps[i] = &Packet{Ack: &Ack{From: 1, UpTo: uint64(i)}}
	}
	return ps
}

func TestFaultyDropsAllButRequests(t *testing.T) {
	m := NewMemory(2)
	defer m.Close()
	f := NewFaulty(m, FaultConfig{Seed: 1, DropRate: 1})
	defer f.Close()
	ps := append(acks(3), &Packet{Request: &ClientRequest{RequestID: 7}})
	if err := f.SendToPartition(0, ps...); err != nil {
		t.Fatal(err)
	}
	got := readN(t, f, 0, 1)
	if len(got) != 1 || got[0].Request == nil || got[0].Request.RequestID != 7 {
		t.Fatalf("got %d packets, want only the request", len(got))
	}
	if s := f.Stats(); s.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 dropped", s)
	}
}

func TestFaultyDuplicatesDelaysAndReorders(t *testing.T) {
	m := NewMemory(2)
	defer m.Close()
	f := NewFaulty(m, FaultConfig{Seed: 2, DupRate: 1, MaxDelay: 20 * time.Millisecond})
	defer f.Close()
	const n = 50
	for _, p := range acks(n) {
		if err := f.SendToPartition(1, p); err != nil {
			t.Fatal(err)
		}
	}
	got := readN(t, f, 1, 2*n)
	seen := map[uint64]int{}
	inOrder := true
	for i, p := range got {
		seen[p.Ack.UpTo]++
		if i > 0 && p.Ack.UpTo < got[i-1].Ack.UpTo {
			inOrder = false
		}
	}
	for i := 0; i < n; i++ {
		if seen[uint64(i)] != 2 {
			t.Fatalf("packet %d arrived %d times, want 2", i, seen[uint64(i)])
		}
	}
	if inOrder {
		t.Fatal("random delays up to 20 ms over 100 packets should reorder some")
	}
}

func TestFaultyFailsSendsAndReceives(t *testing.T) {
	m := NewMemory(1)
	defer m.Close()
	f := NewFaulty(m, FaultConfig{Seed: 3, FailRate: 1, ReceiveFailRate: 1})
	defer f.Close()
	if err := f.SendToPartition(0, acks(2)...); !errors.Is(err, ErrInjected) {
		t.Fatalf("send: %v, want ErrInjected", err)
	}
	if _, _, err := f.ReceivePartition(context.Background(), 0, 0); !errors.Is(err, ErrInjected) {
		t.Fatalf("receive: %v, want ErrInjected", err)
	}
	if err := f.SendToClient("c", &Packet{}); !errors.Is(err, ErrInjected) {
		t.Fatalf("send to client: %v, want ErrInjected", err)
	}
	// Nothing reached the queue.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if ps, _, err := m.ReceivePartition(ctx, 0, 0); err == nil || len(ps) != 0 {
		t.Fatalf("queue holds %d packets after failed sends", len(ps))
	}
}

func TestFaultySameSeedSameDecisions(t *testing.T) {
	run := func() FaultStats {
		m := NewMemory(1)
		defer m.Close()
		f := NewFaulty(m, FaultConfig{Seed: 9, DropRate: 0.3, DupRate: 0.3})
		defer f.Close()
		for _, p := range acks(200) {
			_ = f.SendToPartition(0, p)
		}
		return f.Stats()
	}
	a, b := run(), run()
	if a != b || a.Dropped == 0 || a.Duplicated == 0 {
		t.Fatalf("stats %+v and %+v, want equal and nonzero", a, b)
	}
}
