package emulator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2/checkpoints"
	"github.com/netherite-go/netherite/blobstore/blobtest"
)

// TestProcessorLoadBalancing runs two Processors with the blob checkpoint
// store on Azurite over a hub of 4 partitions: together they receive every
// event, and they settle on 2 partitions each.
func TestProcessorLoadBalancing(t *testing.T) {
	container := blobtest.Container(t, blobtest.Account(t))
	e := startTestEmulator(t, Config{Hubs: []HubConfig{{Name: "proc", PartitionCount: 4}}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()

	p := newProducer(t, e, "proc")
	const perPartition = 25
	for pid := range 4 {
		var bs []string
		for i := range perPartition {
			bs = append(bs, fmt.Sprintf("p%d-%d", pid, i))
		}
		send(t, ctx, p, &azeventhubs.EventDataBatchOptions{PartitionID: new(strconv.Itoa(pid))}, bs...)
	}

	store, err := checkpoints.NewBlobStore(container.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	received := map[string]bool{}
	owned := [2]map[string]bool{{}, {}}
	var wg sync.WaitGroup
	runCtx, stopRun := context.WithCancel(ctx)
	defer func() { stopRun(); wg.Wait() }()
	for i := range 2 {
		c := newConsumer(t, e, "proc", DefaultConsumerGroup)
		proc, err := azeventhubs.NewProcessor(c, store, &azeventhubs.ProcessorOptions{
			LoadBalancingStrategy:       azeventhubs.ProcessorStrategyBalanced,
			UpdateInterval:              200 * time.Millisecond,
			PartitionExpirationDuration: 2 * time.Second,
			StartPositions:              azeventhubs.StartPositions{Default: azeventhubs.StartPosition{Earliest: new(true)}},
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := proc.Run(runCtx); err != nil && runCtx.Err() == nil {
				t.Errorf("processor %d: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			for {
				ppc := proc.NextPartitionClient(runCtx)
				if ppc == nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer ppc.Close(context.Background())
					pid := ppc.PartitionID()
					mu.Lock()
					owned[i][pid] = true
					mu.Unlock()
					defer func() {
						mu.Lock()
						delete(owned[i], pid)
						mu.Unlock()
					}()
					for {
						rctx, cancel := context.WithTimeout(runCtx, time.Second)
						evs, err := ppc.ReceiveEvents(rctx, 50, nil)
						cancel()
						mu.Lock()
						for _, ev := range evs {
							received[string(ev.Body)] = true
						}
						mu.Unlock()
						if len(evs) > 0 {
							if err := ppc.UpdateCheckpoint(runCtx, evs[len(evs)-1], nil); err != nil && runCtx.Err() == nil {
								return // ownership moved
							}
						}
						if err != nil && !errors.Is(err, context.DeadlineExceeded) {
							return // ownership lost, or stopping
						}
						if runCtx.Err() != nil {
							return
						}
					}
				}()
			}
		}()
	}
	// Wait for every event and a stable 2/2 split (kept for a few rounds
	// of load balancing).
	stableSince := time.Time{}
	for {
		mu.Lock()
		n, a, b := len(received), len(owned[0]), len(owned[1])
		mu.Unlock()
		if n == 4*perPartition && a == 2 && b == 2 {
			if stableSince.IsZero() {
				stableSince = time.Now()
			} else if time.Since(stableSince) > time.Second {
				break
			}
		} else {
			stableSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("received %d of %d events; processors own %d and %d partitions", n, 4*perPartition, a, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The checkpoints are in the store.
	cps, err := store.ListCheckpoints(ctx, clientAddr(e.Addr), "proc", DefaultConsumerGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 4 {
		t.Fatalf("%d checkpoints, want 4: %+v", len(cps), cps)
	}
	for _, cp := range cps {
		if cp.SequenceNumber == nil || *cp.SequenceNumber != perPartition-1 {
			t.Errorf("checkpoint of partition %s: %v", cp.PartitionID, cp.SequenceNumber)
		}
	}
}
