package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/bench"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/functions"
	"github.com/netherite-go/netherite/httpapi"
	"github.com/netherite-go/netherite/samples"
)

// runServe runs a host with the sample functions and the Durable Functions
// HTTP API until ctx is done (SIGINT/SIGTERM), then shuts down gracefully:
// stop accepting, finish requests, drain work items, stop partitions.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7071", "address to listen on (like the Functions host)")
	partitions := fs.Int("partitions", 0, "number of partitions (1-32) of a new task hub (default 12, or the existing hub's)")
	storage := fs.String("storage", "", `where state lives: a directory (default ./netherite-data/<taskhub>), "memory", `+
		`an Azure Storage connection string, "UseDevelopmentStorage=true" (Azurite) or an account URL`)
	taskHub := fs.String("taskhub", "", "task hub name (default \"default\")")
	backend := backendFlags(fs)
	asFunctions := fs.Bool("functions", false, "run as an Azure Functions custom handler: listen on FUNCTIONS_CUSTOMHANDLER_PORT and answer the host's invocation payloads")
	tf := addTransportFlags(fs)
	owned := fs.String("partitions-owned", "", `the partitions this process runs: "all" (the default), "none" (a client only, `+
		`serving the HTTP API), or a list of numbers and ranges such as "0-5" or "0,2,6-11"; needs -transport when not all`)
	lease := fs.Duration("lease", 0, "partition lease duration on Azure Storage, 15s-60s (default 45s): a killed host's partitions are taken over after it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts := netherite.Options{TaskHub: *taskHub, PartitionCount: *partitions, Storage: *storage, Logger: logger, LeaseDuration: *lease}
	tf.apply(&opts)
	backend(&opts)
	parts, err := parsePartitionList(*owned)
	if err != nil {
		fmt.Fprintln(stderr, "netherite serve: -partitions-owned:", err)
		return 2
	}
	opts.Partitions = parts
	if *asFunctions {
		set, err := functions.LoadSettings(envLookup)
		if err != nil {
			fmt.Fprintln(stderr, "netherite serve:", err)
			return 2
		}
		if set.TaskHub != "" && opts.TaskHub == "" {
			opts.TaskHub = set.TaskHub
		}
		if set.PartitionCount != 0 && opts.PartitionCount == 0 {
			opts.PartitionCount = set.PartitionCount
		}
		opts.Storage = set.StorageFor(opts.Storage)
		if !set.InProcessQueues() && *tf.transport == "" {
			opts.Transport = set.EventHubsConnection
		}
		*addr = functions.Address(*addr)
	}
	r := durable.NewRegistry()
	samples.Register(r)
	bench.Register(r) // so that `netherite bench -partitions-owned none` can drive serving hosts
	if err := serve(ctx, *addr, opts, r, *asFunctions, stdout, logger); err != nil {
		fmt.Fprintln(stderr, "netherite serve:", err)
		return 1
	}
	return 0
}

// serve runs the HTTP API of a host for registry r on addr until ctx ends.
func serve(ctx context.Context, addr string, opts netherite.Options, r *durable.Registry, asFunctions bool, stdout io.Writer, logger *slog.Logger) error {
	h, err := netherite.Start(ctx, opts, r)
	if err != nil {
		return err
	}
	o := h.Options()
	api := httpapi.NewHandler(h.Client(), httpapi.Options{TaskHub: o.TaskHub, Logger: logger, Registry: r})
	mux := http.NewServeMux()
	mux.Handle("/runtime/webhooks/durabletask/", api)
	mux.Handle("/healthz", healthHandler(h.Partitions))
	addScaleRoutes(mux, h)
	var handler http.Handler = mux
	if asFunctions {
		handler = functions.NewHandler(mux, functions.Options{Logger: logger})
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		h.Stop(context.Background())
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	// The storage may be a connection string: never print its key.
	if o.Backend == netherite.BackendAzStorage {
		fmt.Fprintf(stdout, "netherite: serving task hub %q (azstorage backend, storage %s) on http://%s\n",
			o.TaskHub, netherite.RedactStorage(o.Storage), ln.Addr())
	} else {
		fmt.Fprintf(stdout, "netherite: serving task hub %q (%d partitions, running %s; storage %s; transport %s) on http://%s\n",
			o.TaskHub, o.PartitionCount, ownedName(o.Partitions, o.PartitionCount), netherite.RedactStorage(o.Storage),
			netherite.RedactTransport(o.Transport), ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	case <-h.Done():
		// A partition failed for good: exit, so that the platform notices.
		err = h.Err()
		logger.Error("host failed", slog.Any("error", err))
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = serr
	}
	if herr := h.Stop(shutCtx); herr != nil && err == nil {
		err = herr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ownedName describes the partitions a host runs.
func ownedName(parts []int, count int) string {
	switch {
	case parts == nil || len(parts) == count:
		return "all"
	case len(parts) == 0:
		return "none (client only)"
	}
	return fmt.Sprint(parts)
}

// partitionHealth is one partition in the /healthz answer.
type partitionHealth struct {
	Partition int    `json:"partition"`
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
	Restarts  int    `json:"restarts,omitempty"`
	Since     string `json:"since,omitempty"`
}

// healthHandler answers /healthz: each partition's state, with 200 when
// every partition the host owns runs and 503 while any is down (failed or
// recovering).
func healthHandler(partitions func() []netherite.PartitionStatus) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var body struct {
			Status     string            `json:"status"`
			Partitions []partitionHealth `json:"partitions"`
		}
		body.Status = "ok"
		for _, p := range partitions() {
			ph := partitionHealth{Partition: p.Partition, State: string(p.State), Restarts: p.Restarts}
			if p.Err != nil {
				ph.Error = p.Err.Error()
			}
			if !p.Since.IsZero() {
				ph.Since = p.Since.UTC().Format(time.RFC3339Nano)
			}
			if p.Down() {
				body.Status = "unavailable"
			}
			body.Partitions = append(body.Partitions, ph)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if body.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
}
