package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/netherite-go/netherite"
)

// runTaskHub creates, deletes or shows a task hub.
func runTaskHub(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "delete" && args[0] != "info") {
		fmt.Fprintln(stderr, "usage: netherite taskhub create|delete|info [-storage DIR] [-taskhub NAME] [-partitions N] [-transport EVENTHUBS] [-eventhubs-prefix P]")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("taskhub "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	storage := fs.String("storage", "", "where the task hub lives: a directory (default ./netherite-data/<taskhub>) or an Azure Storage connection string")
	taskHub := fs.String("taskhub", "", "task hub name (default \"default\")")
	partitions := fs.Int("partitions", 0, "partition count of a new task hub (default 12)")
	tf := addTransportFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	opts := netherite.Options{Storage: *storage, TaskHub: *taskHub, PartitionCount: *partitions}
	tf.apply(&opts)
	var p *netherite.TaskHubParameters
	var err error
	switch verb {
	case "create":
		p, err = netherite.CreateTaskHub(ctx, opts)
	case "info":
		p, err = netherite.TaskHubInfo(ctx, opts)
	case "delete":
		err = netherite.DeleteTaskHub(ctx, opts)
	}
	if err != nil {
		fmt.Fprintln(stderr, "netherite taskhub "+verb+":", err)
		return 1
	}
	if p == nil {
		fmt.Fprintln(stdout, "deleted")
		return 0
	}
	out := any(p)
	if opts.Transport != "" && opts.Transport != netherite.TransportMemory {
		// With -transport: the parameters and the Event Hubs hubs.
		hubs, err := netherite.EventHubsInfo(ctx, opts)
		if err != nil {
			fmt.Fprintln(stderr, "netherite taskhub "+verb+":", err)
			return 1
		}
		out = struct {
			*netherite.TaskHubParameters
			EventHubs any `json:"eventHubs"`
		}{p, hubs}
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}
