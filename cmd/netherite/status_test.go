package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

var statusT0 = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

func statusRecord() *loadmonitor.Record {
	return &loadmonitor.Record{
		Version: 4, Monitor: "vm-1", Updated: statusT0,
		Owners: []string{"vm-1", "vm-1", "vm-2", "vm-1"},
		Hosts: []loadmonitor.HostInfo{
			{ID: "vm-2", LastReport: statusT0.Add(-2 * time.Second), Live: true, Running: []int{2}},
			{ID: "vm-1", LastReport: statusT0, Live: true, Running: []int{0, 1, 3}},
			{ID: "vm-3", LastReport: statusT0.Add(-time.Minute), Stopping: true},
		},
		Loads: []transport.PartitionLoad{
			{Partition: 0, WorkItems: 12, Activities: 3, InputLag: 7, Events: 900, Instances: 50, CacheBytes: 3 << 20, Latency: "LLMHH"},
			{Partition: 1, Timers: 1, NextTimer: statusT0.Add(45 * time.Second), Latency: "IIIII"},
			{Partition: 2, Latency: "L"},
			{Partition: 3},
		},
		Recommendation: loadmonitor.Recommendation{Hosts: 3, Reason: "latency rising on partition 0"},
	}
}

// withStatus makes `taskhub status` read records from fn.
func withStatus(t *testing.T, fn func(context.Context, netherite.Options) (*loadmonitor.Record, error)) {
	old := taskHubStatus
	taskHubStatus = fn
	t.Cleanup(func() { taskHubStatus = old })
}

func TestTaskHubStatusTable(t *testing.T) {
	var gotOpts netherite.Options
	withStatus(t, func(_ context.Context, o netherite.Options) (*loadmonitor.Record, error) {
		gotOpts = o
		rec := statusRecord()
		rec.Loads[1].NextTimer = time.Now().Add(time.Hour) // the command prints it relative to its clock
		return rec, nil
	})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"taskhub", "status", "-storage", "/tmp/x", "-taskhub", "hub1"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if gotOpts.Storage != "/tmp/x" || gotOpts.TaskHub != "hub1" {
		t.Fatalf("options passed: %+v", gotOpts)
	}
	text := out.String()
	lines := strings.Split(text, "\n")
	row := func(prefix string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(l, prefix) {
				return f
			}
		}
		t.Fatalf("no line starting %q in:\n%s", prefix, text)
		return nil
	}
	if !strings.Contains(text, `task hub "hub1": placement version 4, load monitor on vm-1`) ||
		!strings.Contains(text, "recommendation: 3 hosts (latency rising on partition 0)") {
		t.Fatalf("header:\n%s", text)
	}
	if f := row("vm-1 "); strings.Join(f[:4], " ") != "vm-1 yes 0-1,3 0-1,3" {
		t.Errorf("vm-1 row: %v", f)
	}
	if f := row("vm-3 "); strings.Join(f[:4], " ") != "vm-3 stopping - -" {
		t.Errorf("vm-3 row: %v", f)
	}
	// Partition rows are right-aligned: find them by their first field.
	var p0, p1 []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 2 && f[1] == "vm-1" && f[0] == "0" {
			p0 = f
		}
		if len(f) > 2 && f[1] == "vm-1" && f[0] == "1" {
			p1 = f
		}
	}
	if strings.Join(p0, " ") != "0 vm-1 12 3 0 - 0 7 900 50 3.0 MiB LLMHH" {
		t.Errorf("partition 0 row: %v\n%s", p0, text)
	}
	if len(p1) < 7 || p1[4] != "1" || p1[5] != "in" {
		t.Errorf("partition 1 row (a timer due): %v", p1)
	}
}

func TestTaskHubStatusJSON(t *testing.T) {
	withStatus(t, func(context.Context, netherite.Options) (*loadmonitor.Record, error) { return statusRecord(), nil })
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"taskhub", "status", "-json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var body struct {
		RecommendedHosts int    `json:"recommendedHosts"`
		PlacementVersion uint64 `json:"placementVersion"`
		Partitions       []struct {
			Owner     string `json:"owner"`
			WorkItems int    `json:"workItems"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(out.Bytes(), &body); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if body.RecommendedHosts != 3 || body.PlacementVersion != 4 || len(body.Partitions) != 4 ||
		body.Partitions[0].Owner != "vm-1" || body.Partitions[0].WorkItems != 12 {
		t.Fatalf("JSON: %s", out.String())
	}
}

func TestTaskHubStatusNoMonitor(t *testing.T) {
	for name, fn := range map[string]func(context.Context, netherite.Options) (*loadmonitor.Record, error){
		"none":  func(context.Context, netherite.Options) (*loadmonitor.Record, error) { return nil, nil },
		"error": func(context.Context, netherite.Options) (*loadmonitor.Record, error) { return nil, errors.New("boom") },
	} {
		withStatus(t, fn)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"taskhub", "status"}, &out, &errb)
		if code != 1 || out.Len() != 0 {
			t.Errorf("%s: exit %d, stdout %q", name, code, out.String())
		}
		want := "boom"
		if name == "none" {
			want = "no host has run this task hub with -elastic"
		}
		if !strings.Contains(errb.String(), "netherite taskhub status: ") || !strings.Contains(errb.String(), want) {
			t.Errorf("%s: stderr %q", name, errb.String())
		}
	}
}

// A record that no monitor rewrote for long is said to be stale.
func TestTaskHubStatusStale(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, "hub", statusRecord(), statusT0.Add(10*time.Second))
	if strings.Contains(b.String(), "stale") {
		t.Fatalf("a fresh record called stale:\n%s", b.String())
	}
	b.Reset()
	printStatus(&b, "hub", statusRecord(), statusT0.Add(5*time.Minute))
	if !strings.Contains(b.String(), "the record is stale: no load monitor has written it for 5m0s") {
		t.Fatalf("a 5 minutes old record:\n%s", b.String())
	}
}

func TestRanges(t *testing.T) {
	for in, want := range map[string]string{"": "-", "0": "0", "0 1 2 3": "0-3", "0 1 3 5 6": "0-1,3,5-6"} {
		var ps []int
		for _, f := range strings.Fields(in) {
			ps = append(ps, int(f[0]-'0'))
		}
		if got := ranges(ps); got != want {
			t.Errorf("ranges(%v) = %q, want %q", ps, got, want)
		}
	}
}

// serve answers /metrics (its partitions, and that there is no load
// monitor record) and /scale (503: no elastic host ran) on a fixed host.
func TestServeScaleRoutes(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", addr, "-storage", t.TempDir(), "-partitions", "3"}, &out, &errb)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d: %s", code, errb.String())
		}
	}()
	base := "http://" + addr
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode == 200 && regexp.MustCompile(`(?m)^netherite_host_partitions_running\{host="[^"]*"\} 3$`).MatchString(body) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed 3 partitions running: %v\n%s\n%s", err, body, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, "# TYPE netherite_scale_record_available gauge\nnetherite_scale_record_available 0\n") {
		t.Errorf("/metrics of a host without a load monitor record:\n%s", body)
	}
	resp, err := http.Get(base + "/runtime/webhooks/durabletask/scale")
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]string
	err = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || err != nil || e["error"] == "" {
		t.Fatalf("/scale without a record: %d %v %v", resp.StatusCode, e, err)
	}
	// The Durable Functions API is still served next to /scale.
	resp, err = http.Get(base + "/runtime/webhooks/durabletask/instances/nosuch")
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET instance: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestServeElasticFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-elastic", "-partitions-owned", "0-3"}, 2, "excludes -partitions-owned"},
		{[]string{"-load-report-interval", "1s"}, 2, "apply to -elastic only"},
		{[]string{"-host-timeout", "10s"}, 2, "apply to -elastic only"},
		{[]string{"-elastic", "-load-report-interval", "-1s"}, 2, "must not be negative"},
		// Elastic hosts share storage and a transport across processes.
		{[]string{"-elastic", "-storage", "memory"}, 1, "Elastic"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"serve", "-addr", "127.0.0.1:0"}, tc.args...)
		if code := run(context.Background(), args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("serve %v: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errb.String(), tc.want)
		}
	}
}
