package netherite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// Two hosts in one process share the in-process transport, each running
// half of the partitions: work crosses between them like between machines.
func TestTwoHostsShareTransport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const count = 6
	tr := transport.NewMemory(count)
	defer tr.Close()
	var hosts []*netherite.Host
	for _, parts := range [][]int{{0, 1, 2}, {3, 4, 5}} {
		r := durable.NewRegistry()
		samples.Register(r)
		h, err := netherite.Start(ctx, netherite.Options{PartitionCount: count, Partitions: parts, SharedTransport: tr, Storage: "memory"}, r)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop(context.Background())
		hosts = append(hosts, h)
	}
	// Accounts on every partition; transfers started from both hosts.
	accounts := make([]string, count)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct!%d", i)
		if err := hosts[i%2].Client().SignalEntity(ctx, core.NewEntityID(samples.Account, accounts[i]), "deposit", 100); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := 0; i < 30; i++ {
		c := hosts[i%2].Client()
		id, err := c.StartOrchestration(ctx, samples.Transfer, samples.TransferRequest{
			From: accounts[i%count], To: accounts[(i+1)%count], Amount: 5}, durable.WithStartInstanceID(fmt.Sprintf("tx%d!%d", i, i%count)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		hid, err := c.StartOrchestration(ctx, samples.HelloSequence, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, hid)
	}
	for i, id := range ids {
		s, err := hosts[(i+1)%2].Client().WaitForCompletion(ctx, id)
		if err != nil || s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("%s: %v %v", id, err, s)
		}
	}
	total := 0
	for _, a := range accounts {
		m, err := hosts[0].Client().GetEntity(ctx, core.NewEntityID(samples.Account, a), true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		_ = m.ReadState(&bal)
		total += bal
	}
	if total != 100*count {
		t.Fatalf("total %d, want %d", total, 100*count)
	}
}

func TestOptionsValidation(t *testing.T) {
	r := durable.NewRegistry()
	for _, o := range []netherite.Options{{PartitionCount: 33}, {PartitionCount: -1}, {Storage: "s3://nowhere"},
		{Transport: "carrier-pigeon", Storage: "memory"}, {PartitionCount: 4, Partitions: []int{7}, Storage: "memory"}} {
		if h, err := netherite.Start(context.Background(), o, r); err == nil {
			h.Stop(context.Background())
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := netherite.Start(context.Background(), netherite.Options{}, nil); err == nil {
		t.Error("nil registry accepted")
	}
}
