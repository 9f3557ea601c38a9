package main

import (
	"fmt"
	"io"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
	"github.com/netherite-go/netherite/samples"
)

// demo runs the samples and prints their outcomes. Until the partitioned
// engine lands, it runs them on the in-memory driver of durabletest,
// which steps the same replay executor the engine will use.
func demo(w io.Writer) error {
	r := durable.NewRegistry()
	samples.Register(r)
	env := durabletest.New(r)
	defer env.Close()

	fmt.Fprintln(w, "Netherite for Go demo (in-memory executor driver, virtual clock)")
	if _, err := env.Start("hello", samples.HelloSequence, nil); err != nil {
		return err
	}
	if _, err := env.Start("fanout", samples.FanOutFanIn, 100); err != nil {
		return err
	}
	counter := core.NewEntityID(samples.Counter, "demo")
	for i := 1; i <= 10; i++ {
		if err := env.SignalEntityAt(0, counter, "add", i); err != nil {
			return err
		}
	}
	accounts := []string{"alice", "bob", "carol"}
	for _, a := range accounts {
		if err := env.SignalEntityAt(0, core.NewEntityID(samples.Account, a), "deposit", 100); err != nil {
			return err
		}
	}
	const transfers = 12
	for i := 0; i < transfers; i++ {
		req := samples.TransferRequest{From: accounts[i%3], To: accounts[(i+1)%3], Amount: 15 + 5*i}
		if _, err := env.StartAt(time.Second, fmt.Sprintf("transfer-%02d", i), samples.Transfer, req); err != nil {
			return err
		}
	}
	if err := env.Run(); err != nil {
		return err
	}

	show := func(id string) error {
		s, err := env.Status(id)
		if err != nil {
			return err
		}
		if s.Failure != nil {
			return fmt.Errorf("%s %s: %v", id, s.RuntimeStatus, s.Failure)
		}
		fmt.Fprintf(w, "%-16s %-10s %s\n", id, s.RuntimeStatus, s.Output)
		return nil
	}
	if err := show("hello"); err != nil {
		return err
	}
	if err := show("fanout"); err != nil {
		return err
	}
	var n int
	if _, err := env.ReadEntityState(counter, &n); err != nil {
		return err
	}
	fmt.Fprintf(w, "%-16s %-10s %d\n", counter, "entity", n)

	done := 0
	for i := 0; i < transfers; i++ {
		s, err := env.Status(fmt.Sprintf("transfer-%02d", i))
		if err != nil {
			return err
		}
		var ok bool
		if s.RuntimeStatus != core.StatusCompleted || s.ReadOutput(&ok) != nil {
			return fmt.Errorf("transfer %d: %s %v", i, s.RuntimeStatus, s.Failure)
		}
		if ok {
			done++
		}
	}
	total := 0
	for _, a := range accounts {
		var bal int
		if _, err := env.ReadEntityState(core.NewEntityID(samples.Account, a), &bal); err != nil {
			return err
		}
		fmt.Fprintf(w, "%-16s %-10s %d\n", "@account@"+a, "entity", bal)
		total += bal
	}
	fmt.Fprintf(w, "bank: %d of %d transfers moved money; total balance %d (started with 300)\n", done, transfers, total)
	if total != 300 {
		return fmt.Errorf("bank total %d is not conserved (want 300)", total)
	}
	fmt.Fprintf(w, "%d orchestration episodes, virtual time %s\n", len(env.Episodes()), env.Now().Format(time.RFC3339))
	return nil
}
