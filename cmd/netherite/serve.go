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
	"strings"
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
	sf := addServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts, addr, err := sf.options(fs, envLookup)
	if err != nil {
		fmt.Fprintln(stderr, "netherite serve:", err)
		return 2
	}
	opts.Logger = logger
	r := durable.NewRegistry()
	samples.Register(r)
	bench.Register(r) // so that `netherite bench -partitions-owned none` can drive serving hosts
	if err := serve(ctx, addr, opts, r, *sf.asFunctions, stdout, logger); err != nil {
		fmt.Fprintln(stderr, "netherite serve:", err)
		return 1
	}
	return 0
}

// serveFlags are the flags of `netherite serve`.
type serveFlags struct {
	addr, storage, taskHub, owned, hostID *string
	partitions                            *int
	backend                               func(*netherite.Options)
	asFunctions, elastic                  *bool
	tf                                    *transportFlags
	lease, reportEvery, hostTimeout       *time.Duration
}

func addServeFlags(fs *flag.FlagSet) *serveFlags {
	return &serveFlags{
		addr:       fs.String("addr", "127.0.0.1:7071", "address to listen on (like the Functions host)"),
		partitions: fs.Int("partitions", 0, "number of partitions (1-32) of a new task hub (default 12, or the existing hub's)"),
		storage: fs.String("storage", "", `where state lives: a directory (default ./netherite-data/<taskhub>), "memory", `+
			`an Azure Storage connection string, "UseDevelopmentStorage=true" (Azurite) or an account URL`),
		taskHub: fs.String("taskhub", "", "task hub name (default \"default\")"),
		backend: backendFlags(fs),
		asFunctions: fs.Bool("functions", false, "run as an Azure Functions custom handler: listen on FUNCTIONS_CUSTOMHANDLER_PORT and answer the host's invocation payloads; "+
			"on Event Hubs (EventHubsConnection) it is -elastic unless -partitions-owned or -elastic=false is given"),
		tf: addTransportFlags(fs),
		owned: fs.String("partitions-owned", "", `the partitions this process runs: "all" (the default), "none" (a client only, `+
			`serving the HTTP API), or a list of numbers and ranges such as "0-5" or "0,2,6-11"; needs -transport when not all`),
		lease: fs.Duration("lease", 0, "partition lease duration on Azure Storage, 15s-60s (default 45s): a killed host's partitions are taken over after it"),
		elastic: fs.Bool("elastic", false, "let the task hub's load monitor place partitions on the hosts that share it: hosts join and leave at will "+
			"(needs an Event Hubs -transport and storage every host reaches: Azure Storage or a shared directory; excludes -partitions-owned)"),
		hostID:      fs.String("host-id", "", `this host's name among the task hub's hosts (default "<hostname>-<pid>-<4 hex digits>")`),
		reportEvery: fs.Duration("load-report-interval", 0, "with -elastic: how often the host reports its load to the load monitor (default 2s)"),
		hostTimeout: fs.Duration("host-timeout", 0, "with -elastic: a host that has not reported for this long counts as dead (default 10s, at least 2 report intervals)"),
	}
}

// options maps the parsed flags (and, with -functions, the app settings
// that env returns) to the host's options and the address to listen on.
func (f *serveFlags) options(fs *flag.FlagSet, env func(string) string) (netherite.Options, string, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	opts := netherite.Options{TaskHub: *f.taskHub, PartitionCount: *f.partitions, Storage: *f.storage, LeaseDuration: *f.lease,
		Elastic: *f.elastic, HostID: *f.hostID, LoadReportInterval: *f.reportEvery, HostTimeout: *f.hostTimeout}
	f.tf.apply(&opts)
	f.backend(&opts)
	parts, err := parsePartitionList(*f.owned)
	if err != nil {
		return opts, "", fmt.Errorf("-partitions-owned: %w", err)
	}
	opts.Partitions = parts
	addr := *f.addr
	if *f.asFunctions {
		st, err := functions.LoadSettings(env)
		if err != nil {
			return opts, "", err
		}
		if st.TaskHub != "" && opts.TaskHub == "" {
			opts.TaskHub = st.TaskHub
		}
		if st.PartitionCount != 0 && opts.PartitionCount == 0 {
			opts.PartitionCount = st.PartitionCount
		}
		opts.Storage = st.StorageFor(opts.Storage)
		if !st.InProcessQueues() && *f.tf.transport == "" {
			opts.Transport = st.EventHubsConnection
		}
		// The Functions platform adds and removes instances, all with the
		// same arguments: on Event Hubs each one joins the placement.
		if netherite.IsEventHubsConnection(opts.Transport) && !set["elastic"] && !set["partitions-owned"] {
			opts.Elastic = true
		}
		if port := strings.TrimSpace(env(functions.EnvCustomHandlerPort)); port != "" {
			addr = ":" + port
		}
	}
	if err := elasticFlags(set, opts.Elastic, opts.LoadReportInterval, opts.HostTimeout); err != nil {
		return opts, "", err
	}
	return opts, addr, nil
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
	addScaleRoutes(mux, h, opts)
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
		running := ownedName(o.Partitions, o.PartitionCount)
		if o.Elastic {
			running = "as placed by the load monitor, host " + h.ID()
		}
		fmt.Fprintf(stdout, "netherite: serving task hub %q (%d partitions, running %s; storage %s; transport %s) on http://%s\n",
			o.TaskHub, o.PartitionCount, running, netherite.RedactStorage(o.Storage),
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

// elasticFlags checks the flags of elastic scale against each other (set
// holds the flags given).
func elasticFlags(set map[string]bool, elastic bool, reportEvery, hostTimeout time.Duration) error {
	switch {
	case elastic && set["partitions-owned"]:
		return errors.New("-elastic lets the load monitor place partitions; it excludes -partitions-owned")
	case !elastic && (set["load-report-interval"] || set["host-timeout"]):
		return errors.New("-load-report-interval and -host-timeout apply to -elastic only")
	case reportEvery < 0 || hostTimeout < 0:
		return errors.New("-load-report-interval and -host-timeout must not be negative")
	}
	return nil
}
