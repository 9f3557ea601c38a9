package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/httpapi"
	"github.com/netherite-go/netherite/samples"
)

// TestServeScaleFromZero: `serve -partitions-owned none` answers /scale
// for a task hub whose elastic hosts have all stopped: 0 while nothing
// waits, 1 once a start is queued for a partition that no host runs
// (after the host timeout, when no load monitor vouches for the record),
// and the start is answered once an elastic host runs again.
func TestServeScaleFromZero(t *testing.T) {
	if testing.Short() {
		t.Skip("Event Hubs emulator test skipped in -short mode")
	}
	eh := emulatortest.Get(t)
	dir := t.TempDir()
	name := fmt.Sprintf("sz%d", time.Now().UnixNano()%1e12)
	hostOpts := netherite.Options{Storage: dir, PartitionCount: 4, TaskHub: name, Transport: eh.ConnectionString,
		EventHubsPrefix: name + "-", EventHubsAdminURL: eh.AdminURL,
		Elastic: true, LoadReportInterval: 200 * time.Millisecond, HostTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := netherite.DeleteTaskHub(ctx, hostOpts); err != nil {
			t.Errorf("delete task hub %s: %v", name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startHost := func(id string) *netherite.Host {
		t.Helper()
		o := hostOpts
		o.HostID = id
		r := durable.NewRegistry()
		samples.Register(r)
		h, err := netherite.Start(ctx, o, r)
		if err != nil {
			t.Fatalf("start host %s: %v", id, err)
		}
		return h
	}

	// An elastic host runs until the task hub is idle, then stops.
	a := startHost("a")
	for {
		rec, err := a.Scale(ctx)
		if err == nil && rec.Recommendation.Hosts == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("host a never idle: %+v %v", rec, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// The front door runs no partition.
	addr := freeAddr(t)
	sctx, stop := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "-addr", addr, "-storage", dir, "-taskhub", name, "-transport", eh.ConnectionString,
			"-eventhubs-prefix", name + "-", "-eventhubs-admin", eh.AdminURL, "-partitions-owned", "none"}, &out, &errb)
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, errb.String())
		}
	}()
	base := "http://" + addr
	scale := func() (httpapi.ScaleStatus, bool) {
		var s httpapi.ScaleStatus
		resp, err := http.Get(base + httpapi.ScalePath)
		if err != nil {
			return s, false
		}
		defer resp.Body.Close()
		return s, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil
	}
	waitScale := func(what string, ok func(httpapi.ScaleStatus) bool) httpapi.ScaleStatus {
		t.Helper()
		for {
			s, got := scale()
			if got && ok(s) {
				t.Logf("%s: %d (%s)", what, s.RecommendedHosts, s.Recommendation.Reason)
				return s
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: last /scale %+v (answered %v); serve: %s", what, s, got, errb.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitScale("no host, nothing to do", func(s httpapi.ScaleStatus) bool { return s.RecommendedHosts == 0 })

	// A start through the front door waits for a partition no host runs.
	started := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			base+"/runtime/webhooks/durabletask/orchestrators/"+samples.HelloSequence+"/zero-start", strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		started <- err
	}()
	s := waitScale("a start queued", func(s httpapi.ScaleStatus) bool { return s.RecommendedHosts == 1 })
	if !strings.Contains(s.Recommendation.Reason, "unread requests or messages") {
		t.Errorf("reason %q does not name the queued start", s.Recommendation.Reason)
	}
	select {
	case err := <-started:
		t.Fatalf("the start returned with no host running: %v", err)
	default:
	}
	b := startHost("b")
	defer b.Stop(context.Background())
	if err := <-started; err != nil {
		t.Fatalf("start once a host runs: %v", err)
	}
}
