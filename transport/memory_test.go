package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPartitionQueueOrderPositionsAndTrim(t *testing.T) {
	m := NewMemory(2)
	defer m.Close()
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := m.SendToPartition(1, &Packet{Ack: &Ack{From: i}}); err != nil {
			t.Fatal(err)
		}
	}
	// The first read fixes the positions (see TestResumeInsideFreshQueueSeesEverything).
	if ps, next, err := m.ReceivePartition(ctx, 1, 0); err != nil || next != 5 || len(ps) != 5 {
		t.Fatalf("read from 0: %d packets, next %d, %v", len(ps), next, err)
	}
	ps, next, err := m.ReceivePartition(ctx, 1, 2)
	if err != nil || next != 5 || len(ps) != 3 || ps[0].Ack.From != 2 || ps[2].Ack.From != 4 {
		t.Fatalf("read from 2: %d packets, next %d, %v", len(ps), next, err)
	}
	m.TrimPartition(1, 3)
	if _, _, err := m.ReceivePartition(ctx, 1, 1); err == nil {
		t.Fatal("reading a trimmed position should fail")
	}
	if ps, _, _ := m.ReceivePartition(ctx, 1, 3); len(ps) != 2 || ps[0].Ack.From != 3 {
		t.Fatalf("after trim: %v", ps)
	}
	if err := m.SendToPartition(7); err == nil {
		t.Fatal("unknown partition accepted")
	}
}

func TestReceiveBlocksUntilSendOrCancel(t *testing.T) {
	m := NewMemory(1)
	got := make(chan int, 1)
	go func() {
		ps, _, err := m.ReceivePartition(context.Background(), 0, 0)
		if err != nil {
			got <- -1
			return
		}
		got <- len(ps)
	}()
	time.Sleep(10 * time.Millisecond)
	_ = m.SendToPartition(0, &Packet{}, &Packet{})
	if n := <-got; n != 2 {
		t.Fatalf("receiver got %d packets", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := m.ReceivePartition(ctx, 0, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled receive: %v", err)
	}
	m.Close()
	if _, _, err := m.ReceivePartition(context.Background(), 0, 2); !errors.Is(err, ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
}

func TestClientQueues(t *testing.T) {
	m := NewMemory(1)
	defer m.Close()
	ch, closeFn, err := m.ListenClient("c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.ListenClient("c1"); err == nil {
		t.Fatal("second listener on one client accepted")
	}
	_ = m.SendToClient("c1", &Packet{Response: &ClientResponse{RequestID: 9}})
	if p := <-ch; p.Response.RequestID != 9 {
		t.Fatalf("got %+v", p)
	}
	closeFn()
	if err := m.SendToClient("c1", &Packet{}); err != nil {
		t.Fatalf("send to a gone client should be dropped quietly: %v", err)
	}
}

func TestResumePastEndRenumbers(t *testing.T) {
	m := NewMemory(1)
	defer m.Close()
	_ = m.SendToPartition(0, &Packet{Ack: &Ack{From: 1}})
	ps, next, err := m.ReceivePartition(context.Background(), 0, 1000)
	if err != nil || len(ps) != 1 || next != 1001 {
		t.Fatalf("resume at 1000 of a fresh queue: %d packets, next %d, %v", len(ps), next, err)
	}
}

// A consumer whose saved position lies inside the fresh queue (fewer
// packets were logged before the crash than arrived since) must still see
// every packet sent to this process: none of them was read before.
func TestResumeInsideFreshQueueSeesEverything(t *testing.T) {
	m := NewMemory(1)
	defer m.Close()
	for i := 0; i < 5; i++ {
		_ = m.SendToPartition(0, &Packet{Ack: &Ack{From: i}})
	}
	ps, next, err := m.ReceivePartition(context.Background(), 0, 2)
	if err != nil || len(ps) != 5 || next != 7 || ps[0].Ack.From != 0 {
		t.Fatalf("resume at 2 of a fresh queue holding 5: %d packets, next %d, %v", len(ps), next, err)
	}
	// Once read, positions are fixed: a later reader at 4 gets the rest.
	ps, _, err = m.ReceivePartition(context.Background(), 0, 4)
	if err != nil || len(ps) != 3 || ps[0].Ack.From != 2 {
		t.Fatalf("second read at 4: %d packets, %v", len(ps), err)
	}
}

// The queue length from a reader's position is its lag, before and after
// reads and trims, and through a Faulty wrapper.
func TestPartitionQueueLength(t *testing.T) {
	m := NewMemory(2)
	defer m.Close()
	var ql QueueLengther = NewFaulty(m, FaultConfig{})
	send := func(n int) {
		for i := 0; i < n; i++ {
			if err := m.SendToPartition(0, &Packet{Ack: &Ack{From: i}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(from uint64, want int64) {
		t.Helper()
		if n, ok := ql.PartitionQueueLength(0, from); !ok || n != want {
			t.Fatalf("length from %d: %d (%v), want %d", from, n, ok, want)
		}
	}
	send(4)
	// Unread: a reader resuming at 10 takes all four from 10 on.
	check(10, 4)
	if _, next, err := m.ReceivePartition(context.Background(), 0, 10); err != nil || next != 14 {
		t.Fatalf("read: next %d, %v", next, err)
	}
	check(14, 0)
	send(3)
	check(14, 3)
	check(12, 5)
	m.TrimPartition(0, 16)
	check(16, 1)
	check(17, 0)
	if _, ok := m.PartitionQueueLength(5, 0); ok {
		t.Fatal("a partition that does not exist has no length")
	}
}

func TestUnreadWork(t *testing.T) {
	m := NewMemory(2)
	defer m.Close()
	var ip InputProber = m
	check := func(from uint64, limit, want int) {
		t.Helper()
		if n, err := ip.UnreadWork(context.Background(), 0, from, limit); err != nil || n != want {
			t.Fatalf("unread work from %d (limit %d): %d (%v), want %d", from, limit, n, err, want)
		}
	}
	check(0, 64, 0)
	for _, pk := range []*Packet{
		{Ack: &Ack{From: 1}},
		{Request: &ClientRequest{Kind: RequestCreate, InstanceID: "x"}},
		{Confirm: &Confirm{}},
		{Messages: &MessageBatch{Origin: 1}},
	} {
		if err := m.SendToPartition(0, pk); err != nil {
			t.Fatal(err)
		}
	}
	check(0, 64, 2) // the request and the batch; not the ack or the confirmation
	check(0, 1, 0)  // the limit counts packets looked at
	check(0, 2, 1)
	if _, next, err := m.ReceivePartition(context.Background(), 0, 0); err != nil || next != 4 {
		t.Fatalf("read: next %d, %v", next, err)
	}
	check(2, 64, 1) // from the confirmation on: the batch
	check(4, 64, 0)
	if _, err := ip.UnreadWork(context.Background(), 5, 0, 64); err == nil {
		t.Fatal("a partition that does not exist has no queue to probe")
	}
}
