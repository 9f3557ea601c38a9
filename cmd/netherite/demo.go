package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// backendFlags adds -backend and the azstorage backend's flags to fs
// (demo, serve); the returned function applies them to the options.
func backendFlags(fs *flag.FlagSet) func(*netherite.Options) {
	backend := fs.String("backend", netherite.BackendNetherite, `engine: "netherite", or "azstorage" (the Azure Storage baseline: `+
		`control queues and tables, as DurableTask.AzureStorage; -storage must then be an Azure Storage connection string or UseDevelopmentStorage=true)`)
	queues := fs.Int("control-queues", 0, "azstorage: number of control queues, 1-16 (default 4)")
	polling := fs.Duration("max-polling", 0, "azstorage: MaxQueuePollingInterval, the cap of the idle polling back-off (default 30s)")
	sessions := fs.Bool("extended-sessions", false, "azstorage: keep orchestrations in memory between episodes")
	return func(o *netherite.Options) {
		o.Backend = *backend
		o.AzureStorage = netherite.AzureStorageOptions{ControlQueues: *queues, MaxQueuePollingInterval: *polling,
			ExtendedSessions: *sessions}
	}
}

// demo starts an embedded host, runs the samples through its client and
// prints what happened.
func demo(ctx context.Context, w io.Writer, opts netherite.Options) error {
	r := durable.NewRegistry()
	samples.Register(r)
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		return err
	}
	defer h.Stop(context.Background())
	c := h.Client()
	o := h.Options()
	if o.Backend == netherite.BackendAzStorage {
		fmt.Fprintf(w, "Netherite for Go demo on the azstorage baseline: task hub %q, storage %s\n", o.TaskHub, netherite.RedactStorage(o.Storage))
	} else {
		fmt.Fprintf(w, "Netherite for Go demo: task hub %q, %d partitions, storage %s\n", o.TaskHub, o.PartitionCount, netherite.RedactStorage(o.Storage))
	}

	// A counter of demo runs shows that state survives restarts.
	runs := core.NewEntityID(samples.Counter, "demo-runs")
	previous := 0
	if m, err := c.GetEntity(ctx, runs, true); err == nil {
		_ = m.ReadState(&previous)
	}
	if err := c.SignalEntity(ctx, runs, "add", 1); err != nil {
		return err
	}
	if o.Storage == "memory" {
		fmt.Fprintln(w, "state is in memory: it goes when the demo ends")
	} else if previous == 0 {
		fmt.Fprintf(w, "first run on %s; run the demo again to see the state survive\n", netherite.RedactStorage(o.Storage))
	} else {
		page, err := c.Query(ctx, durable.InstanceQuery{PageSize: 1000})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "run #%d on %s: the earlier runs left %d orchestrations and their entities in storage\n",
			previous+1, netherite.RedactStorage(o.Storage), len(page.Instances))
	}

	run := func(label, name string, input any) (*durable.OrchestrationStatus, error) {
		t0 := time.Now()
		id, err := c.StartOrchestration(ctx, name, input)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		if s.RuntimeStatus != core.StatusCompleted {
			return nil, fmt.Errorf("%s: %s: %v", label, s.RuntimeStatus, s.Failure)
		}
		fmt.Fprintf(w, "%-22s %-10s %-56s %s\n", label, s.RuntimeStatus, s.Output, time.Since(t0).Round(time.Microsecond))
		return s, nil
	}
	if _, err := run("hello sequence", samples.HelloSequence, nil); err != nil {
		return err
	}
	if _, err := run("fan-out/fan-in (100)", samples.FanOutFanIn, 100); err != nil {
		return err
	}

	counter := core.NewEntityID(samples.Counter, "demo")
	for i := 1; i <= 10; i++ {
		if err := c.SignalEntity(ctx, counter, "add", i); err != nil {
			return err
		}
	}
	var n int
	for deadline := time.Now().Add(10 * time.Second); ; {
		m, err := c.GetEntity(ctx, counter, true)
		if err == nil {
			if err := m.ReadState(&n); err != nil {
				return err
			}
			if n%55 == 0 && n >= 55*(previous+1) {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("counter entity: got %d, want %d", n, 55*(previous+1))
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Fprintf(w, "%-22s %-10s %d (10 signals per run: 1+2+...+10 = 55)\n", "counter entity", "entity", n)

	// Bank: accounts on different partitions, transfers under locks.
	accounts := []string{"alice!1", "bob!5", "carol!9"}
	for _, a := range accounts {
		if err := c.SignalEntity(ctx, core.NewEntityID(samples.Account, a), "deposit", 100); err != nil {
			return err
		}
	}
	const transfers = 12
	ids := make([]string, transfers)
	for i := range ids {
		req := samples.TransferRequest{From: accounts[i%3], To: accounts[(i+1)%3], Amount: 15 + 5*i}
		if ids[i], err = c.StartOrchestration(ctx, samples.Transfer, req); err != nil {
			return err
		}
	}
	moved := 0
	for _, id := range ids {
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads())
		if err != nil {
			return err
		}
		var ok bool
		if s.RuntimeStatus != core.StatusCompleted || s.ReadOutput(&ok) != nil {
			return fmt.Errorf("transfer %s: %s %v", id, s.RuntimeStatus, s.Failure)
		}
		if ok {
			moved++
		}
	}
	total := 0
	for _, a := range accounts {
		m, err := c.GetEntity(ctx, core.NewEntityID(samples.Account, a), true)
		if err != nil {
			return err
		}
		var bal int
		if err := m.ReadState(&bal); err != nil {
			return err
		}
		fmt.Fprintf(w, "%-22s %-10s %d\n", "account "+a, "entity", bal)
		total += bal
	}
	want := 300 * (previous + 1)
	fmt.Fprintf(w, "bank: %d of %d concurrent transfers moved money; total balance %d (deposited %d)\n", moved, transfers, total, want)
	if total != want {
		return fmt.Errorf("bank total %d is not conserved (want %d)", total, want)
	}
	return nil
}
