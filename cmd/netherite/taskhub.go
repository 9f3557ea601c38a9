package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/netherite-go/netherite"
)

// taskHubStatus reads a task hub's load monitor record (a variable so that
// tests can give records of their own).
var taskHubStatus = netherite.TaskHubStatus

// runTaskHub creates, deletes or shows a task hub, or shows its load
// monitor's record (status).
func runTaskHub(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "delete" && args[0] != "info" && args[0] != "status") {
		fmt.Fprintln(stderr, "usage: netherite taskhub create|delete|info|status [-storage DIR] [-taskhub NAME] [-partitions N] [-transport EVENTHUBS] [-eventhubs-prefix P] [-json]")
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("taskhub "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	storage := fs.String("storage", "", "where the task hub lives: a directory (default ./netherite-data/<taskhub>) or an Azure Storage connection string")
	taskHub := fs.String("taskhub", "", "task hub name (default \"default\")")
	partitions := fs.Int("partitions", 0, "partition count of a new task hub (default 12)")
	tf := addTransportFlags(fs)
	asJSON := fs.Bool("json", false, "status: print the JSON of GET /runtime/webhooks/durabletask/scale instead of tables")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	opts := netherite.Options{Storage: *storage, TaskHub: *taskHub, PartitionCount: *partitions}
	tf.apply(&opts)
	if verb == "status" {
		return taskHubStatusCmd(ctx, opts, *asJSON, stdout, stderr)
	}
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

// taskHubStatusCmd prints the load monitor's record of a task hub, read
// from its storage (no host starts).
func taskHubStatusCmd(ctx context.Context, opts netherite.Options, asJSON bool, stdout, stderr io.Writer) int {
	rec, err := taskHubStatus(ctx, opts)
	if err == nil && rec == nil {
		err = errors.New("no load monitor record: no host has run this task hub with -elastic (Options.Elastic) yet")
	}
	if err != nil {
		fmt.Fprintln(stderr, "netherite taskhub status:", err)
		return 1
	}
	if asJSON {
		printStatusJSON(stdout, rec, time.Now())
		return 0
	}
	name := opts.TaskHub
	if name == "" {
		name = "default"
	}
	printStatus(stdout, name, rec, time.Now())
	return 0
}
