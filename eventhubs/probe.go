package eventhubs

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/netherite-go/netherite/transport"
)

// probeWait bounds one receive of UnreadWork: the events it asks for are
// in the partition already.
const probeWait = 10 * time.Second

// UnreadWork counts the work packets (transport.IsWork) at or after
// position from in partition p's input queue, looking at no more than
// limit packets (transport.InputProber). It reads through a receiver of
// its own without owner level, so it fails (rather than disturbs) while a
// host's receiver holds the partition. A position whose events expired
// unread is an error wrapping transport.ErrPositionGone.
func (t *Transport) UnreadWork(ctx context.Context, p int, from uint64, limit int) (int, error) {
	if p < 0 || p >= t.o.PartitionCount {
		return 0, fmt.Errorf("eventhubs: partition %d is not in 0..%d", p, t.o.PartitionCount-1)
	}
	hub, pid := t.names.Partitions, strconv.Itoa(p)
	seq, idx := SplitPosition(from)
	props, err := t.partitionProperties(ctx, hub, pid)
	if err != nil {
		return 0, fmt.Errorf("eventhubs: partition %d: reading its properties: %w", p, err)
	}
	last := props.LastEnqueuedSequenceNumber
	// A position inside the last event (index > 0) is the end of it: a
	// partition takes an event's packets in one receive, and only an idle
	// task hub is probed.
	if props.IsEmpty || last < seq || (last == seq && idx > 0) || limit <= 0 {
		return 0, nil
	}
	if seq < props.BeginningSequenceNumber {
		return 0, fmt.Errorf("eventhubs: partition %d: event %d expired unread (the partition begins at %d): %w",
			p, seq, props.BeginningSequenceNumber, transport.ErrPositionGone)
	}
	pc, err := t.consumers[hub].NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{SequenceNumber: &seq, Inclusive: true},
	})
	if err != nil {
		return 0, fmt.Errorf("eventhubs: partition %d: open a probe receiver: %w", p, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pc.Close(cctx)
	}()
	marks := senderMarks{}
	work, looked, next := 0, 0, seq
	for next <= last && looked < limit {
		want := int(min(last-next+1, 256, int64(limit-looked)))
		rctx, cancel := context.WithTimeout(ctx, probeWait)
		evs, err := pc.ReceiveEvents(rctx, want, nil)
		cancel()
		if len(evs) == 0 {
			if err == nil {
				err = context.DeadlineExceeded
			}
			return work, fmt.Errorf("eventhubs: partition %d: probe read at event %d (last %d): %w", p, next, last, err)
		}
		for _, ev := range evs {
			next = ev.SequenceNumber + 1
			entries := t.decodeEvent(fmt.Sprintf("partition %d (probe)", p), ev.Body, marks)
			if ev.SequenceNumber == seq {
				entries = entries[min(idx, len(entries)):]
			}
			for _, e := range entries {
				if looked >= limit {
					break
				}
				looked++
				if e != nil && (e.blob != nil || transport.IsWork(e.packet)) {
					work++
				}
			}
		}
	}
	return work, nil
}
