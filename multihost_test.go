package netherite_test

import (
	"context"
	"fmt"
	"strings"
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

// TestOptionsValidation: misconfigurations are refused with an error that
// names the option.
func TestOptionsValidation(t *testing.T) {
	r := durable.NewRegistry()
	for _, c := range []struct {
		o    netherite.Options
		want string
	}{
		{netherite.Options{PartitionCount: 33}, "Options.PartitionCount"},
		{netherite.Options{PartitionCount: -1}, "Options.PartitionCount"},
		{netherite.Options{Storage: "s3://nowhere"}, "Options.Storage"},
		{netherite.Options{Transport: "carrier-pigeon", Storage: "memory"}, "Options.Transport"},
		{netherite.Options{PartitionCount: 4, Partitions: []int{7}, Storage: "memory", SharedTransport: transport.NewMemory(4)}, "Options.Partitions"},
		{netherite.Options{PartitionCount: 4, Partitions: []int{1, 1}, Storage: "memory", SharedTransport: transport.NewMemory(4)}, "Options.Partitions"},
		// A subset needs a shared transport: the other partitions are elsewhere.
		{netherite.Options{PartitionCount: 4, Partitions: []int{0, 1}, Storage: "memory"}, "Options.SharedTransport"},
		{netherite.Options{PartitionCount: 4, Partitions: []int{}, Storage: "memory"}, "Options.SharedTransport"},
		{netherite.Options{PartitionCount: 4, Storage: "memory", SharedTransport: transport.NewMemory(2)}, "Options.SharedTransport"},
		{netherite.Options{Storage: "memory", LeaseDuration: 5 * time.Second}, "Options.LeaseDuration"},
		{netherite.Options{Storage: t.TempDir(), LeaseDuration: 30 * time.Second}, "Options.LeaseDuration"},
		{netherite.Options{Storage: "memory", MaxConcurrentActivities: -1}, "Options.MaxConcurrentActivities"},
		{netherite.Options{Storage: "memory", MaxConcurrentOrchestrations: -1}, "Options.MaxConcurrentOrchestrations"},
		{netherite.Options{Storage: "memory", MaxConcurrentEntities: -1}, "Options.MaxConcurrentEntities"},
		{netherite.Options{Storage: "memory", MaxPayloadBytes: -1}, "Options.MaxPayloadBytes"},
		{netherite.Options{Storage: "memory", EntityBatchLimit: -1}, "Options.EntityBatchLimit"},
		{netherite.Options{Storage: "memory", StateCacheBytes: -1}, "Options.StateCacheBytes"},
		{netherite.Options{Storage: "memory", Speculation: 7}, "Options.Speculation"},
		{netherite.Options{Storage: "memory", PersistStepsFirst: true, Speculation: netherite.SpeculationGlobal}, "Options.PersistStepsFirst"},
	} {
		h, err := netherite.Start(context.Background(), c.o, r)
		if err == nil {
			h.Stop(context.Background())
			t.Errorf("options %+v accepted", c.o)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("options %+v: error %q does not name %s", c.o, err, c.want)
		}
	}
	if _, err := netherite.Start(context.Background(), netherite.Options{}, nil); err == nil {
		t.Error("nil registry accepted")
	}
	// The whole set of partitions needs no shared transport.
	h, err := netherite.Start(context.Background(), netherite.Options{PartitionCount: 2, Partitions: []int{1, 0}, Storage: "memory"}, r)
	if err != nil {
		t.Fatal(err)
	}
	h.Stop(context.Background())
	// PersistStepsFirst is SpeculationNone.
	h, err = netherite.Start(context.Background(), netherite.Options{PartitionCount: 1, Storage: "memory", PersistStepsFirst: true}, r)
	if err != nil {
		t.Fatal(err)
	}
	if o := h.Options(); o.Speculation != netherite.SpeculationNone || !o.PersistStepsFirst {
		t.Errorf("PersistStepsFirst: speculation %v, PersistStepsFirst %v", o.Speculation, o.PersistStepsFirst)
	}
	h.Stop(context.Background())
}

func TestRedactStorage(t *testing.T) {
	for in, want := range map[string]string{
		"memory":    "memory",
		"/var/data": "/var/data",
		"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=s3cr3t==;EndpointSuffix=core.windows.net": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=REDACTED;EndpointSuffix=core.windows.net",
		"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=s3cr3t":           "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=REDACTED",
		"BlobEndpoint=https://acct.blob.core.windows.net/?sv=1&sig=s3cr3t":                                    "BlobEndpoint=REDACTED",
		"https://acct.blob.core.windows.net/?sv=2022&sig=s3cr3t":                                              "https://acct.blob.core.windows.net/?REDACTED",
		"https://acct.blob.core.windows.net":                                                                  "https://acct.blob.core.windows.net",
		"UseDevelopmentStorage=true":                                                                          "UseDevelopmentStorage=true",
		"AccountName=a;accountkey=s3cr3t":                                                                     "AccountName=a;accountkey=REDACTED",
	} {
		if got := netherite.RedactStorage(in); got != want {
			t.Errorf("RedactStorage(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(netherite.RedactStorage(in), "s3cr3t") {
			t.Errorf("RedactStorage(%q) leaks the secret", in)
		}
	}
}
