package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServe runs `netherite serve`, drives the samples over HTTP as a
// Durable Functions user would, and shuts it down with its context (as
// SIGINT does).
func TestServe(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", addr, "-storage", t.TempDir(), "-partitions", "4"}, &out, &errb)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v\n%s", err, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	api := base + "/runtime/webhooks/durabletask"

	// Start HelloSequence and follow the status link until it completes.
	resp, err := http.Post(api+"/orchestrators/HelloSequence", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %v %v", resp, err)
	}
	var check map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&check)
	resp.Body.Close()
	status := poll(t, check["statusQueryGetUri"])
	if status["runtimeStatus"] != "Completed" || fmt.Sprint(status["output"]) != "[Hello Tokyo! Hello Seattle! Hello London!]" {
		t.Fatalf("HelloSequence: %v", status)
	}

	// WaitForEvent: raise Approval, get its payload back.
	resp, _ = http.Post(api+"/orchestrators/WaitForEvent/approve-1", "application/json", nil)
	resp.Body.Close()
	resp, err = http.Post(api+"/instances/approve-1/raiseEvent/Approval", "application/json", strings.NewReader(`{"by":"ann"}`))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("raise: %v %v", resp, err)
	}
	resp.Body.Close()
	if status := poll(t, api+"/instances/approve-1"); fmt.Sprint(status["output"]) != "map[by:ann]" {
		t.Fatalf("WaitForEvent: %v", status)
	}

	// Counter entity: signal, then read.
	for i := 0; i < 3; i++ {
		resp, _ = http.Post(api+"/entities/Counter/c1?op=add", "application/json", strings.NewReader("2"))
		resp.Body.Close()
	}
	for {
		resp, err := http.Get(api + "/entities/Counter/c1")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.TrimSpace(string(b)) == "6" {
				break
			}
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("counter never reached 6")
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func poll(t *testing.T, url string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return s
		}
		if resp.StatusCode != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("poll %s: %d %v", url, resp.StatusCode, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeAsFunctionsCustomHandler runs `netherite serve -functions` on
// FUNCTIONS_CUSTOMHANDLER_PORT and sends it what the Functions host sends
// for an HTTP-triggered function.
func TestServeAsFunctionsCustomHandler(t *testing.T) {
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-functions", "-storage", "memory", "-partitions", "2"}, &out, &errb)
	}()
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/api/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("custom handler did not come up:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	invocation := `{"Data":{"req":{"Url":"http://localhost:7071/api/durabletask/orchestrators/HelloSequence",` +
		`"Method":"POST","Query":{},"Headers":{"Content-Type":["application/json"]},"Params":{"path":"HelloSequence"},"Body":""}},` +
		`"Metadata":{"path":"HelloSequence","sys":{"MethodName":"DurableOrchestrators","UtcNow":"2026-11-26T20:00:00Z","RandGuid":"6a3c5e0e-2b0c-4b7b-9a6e-0d3f3b1f3a11"}}}`
	resp, err := http.Post(base+"/DurableOrchestrators", "application/json", strings.NewReader(invocation))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Outputs struct {
			Res struct {
				StatusCode any               `json:"statusCode"`
				Body       string            `json:"body"`
				Headers    map[string]string `json:"headers"`
			} `json:"res"`
		}
		Logs []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if fmt.Sprint(answer.Outputs.Res.StatusCode) != "202" || !strings.Contains(answer.Outputs.Res.Body, "/api/durabletask/instances/") {
		t.Fatalf("invocation answer: %+v", answer)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve -functions exited %d: %s", code, errb.String())
	}
}

// waitHealthy polls url until it answers 200.
func waitHealthy(t *testing.T, url string, errb *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accountKey is the AccountKey of a connection string.
func accountKey(t *testing.T, conn string) string {
	for _, part := range strings.Split(conn, ";") {
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(k, "AccountKey") && v != "" {
			return v
		}
	}
	t.Fatalf("no AccountKey in the connection string")
	return ""
}

// TestServeOnAzureStorageHidesKey runs `serve` on Azure Storage (Azurite)
// given as a connection string, and `serve -functions` with it in
// AzureWebJobsStorage, and checks that the state goes to that account and
// that no output contains the account key.
func TestServeOnAzureStorageHidesKey(t *testing.T) {
	conn := os.Getenv("NETHERITE_AZURITE")
	if conn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("NETHERITE_AZURITE is not set (scripts/azurite/start.sh)")
		}
		t.Skip("NETHERITE_AZURITE is not set; start Azurite with scripts/azurite/start.sh")
	}
	key := accountKey(t, conn)
	for _, asFunctions := range []bool{false, true} {
		t.Run(fmt.Sprintf("functions=%v", asFunctions), func(t *testing.T) {
			hub := fmt.Sprintf("servekey%d%v", time.Now().UnixNano()%1e9, asFunctions)
			addr := freeAddr(t)
			args := []string{"serve", "-addr", addr, "-taskhub", hub, "-partitions", "2"}
			if asFunctions {
				_, port, _ := net.SplitHostPort(addr)
				t.Setenv("FUNCTIONS_CUSTOMHANDLER_PORT", port)
				t.Setenv("AzureWebJobsStorage", conn)
				t.Setenv("NETHERITE_STORAGE", "")
				args = append(args, "-functions")
			} else {
				args = append(args, "-storage", conn)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, &out, &errb) }()
			waitHealthy(t, "http://"+addr+"/healthz", &errb)
			resp, err := http.Post("http://"+addr+"/runtime/webhooks/durabletask/orchestrators/HelloSequence", "application/json", nil)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				t.Fatalf("start: %v %v", resp, err)
			}
			var check map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&check)
			resp.Body.Close()
			if s := poll(t, check["statusQueryGetUri"]); s["runtimeStatus"] != "Completed" {
				t.Fatalf("HelloSequence: %v", s)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("serve exited %d: %s", code, errb.String())
			}
			// The task hub is in the account, not in a local directory.
			p, err := netherite.TaskHubInfo(context.Background(), netherite.Options{Storage: conn, TaskHub: hub})
			if err != nil || p.PartitionCount != 2 {
				t.Fatalf("task hub in the account: %+v %v", p, err)
			}
			if err := netherite.DeleteTaskHub(context.Background(), netherite.Options{Storage: conn, TaskHub: hub}); err != nil {
				t.Error(err)
			}
			all := out.String() + errb.String()
			if strings.Contains(all, key) {
				t.Fatalf("the output contains the account key:\n%s", all)
			}
			if !strings.Contains(out.String(), "AccountKey=REDACTED") {
				t.Errorf("the banner does not show the redacted storage: %q", out.String())
			}
		})
	}
}

// TestServeBadStorageHidesKey: a start that fails on an unreachable account
// reports the failure without the key.
func TestServeBadStorageHidesKey(t *testing.T) {
	const key = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
	conn := "DefaultEndpointsProtocol=http;AccountName=nobody;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:1/nobody;"
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"serve", "-addr", freeAddr(t), "-storage", conn}, &out, &errb)
	if code == 0 {
		t.Fatal("serve on an unreachable account succeeded")
	}
	if all := out.String() + errb.String(); strings.Contains(all, key) || errb.Len() == 0 {
		t.Fatalf("exit %d, output:\n%s", code, all)
	}
}

// TestServeFunctionsReadsEventHubsConnection: under -functions the
// EventHubsConnection app setting selects the Event Hubs transport (and
// elastic placement), which refuses "memory" storage (the hosts of a task
// hub must share it), without printing the key.
func TestServeFunctionsReadsEventHubsConnection(t *testing.T) {
	t.Setenv("EventHubsConnection", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve", "-functions", "-storage", "memory", "-addr", freeAddr(t)}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "needs storage that every host") || strings.Contains(errb.String()+out.String(), "c2VjcmV0") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// /healthz answers 503 while an owned partition is down (failed or
// recovering), naming it and its error, and 200 when every owned one runs.
func TestHealthz(t *testing.T) {
	since := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	steps := []struct {
		parts []netherite.PartitionStatus
		code  int
	}{
		{[]netherite.PartitionStatus{{Partition: 0, State: netherite.PartitionOK}, {Partition: 1, State: netherite.PartitionFailed,
			Err: errors.New("partition 1: commit log: disk full"), Since: since}}, 503},
		{[]netherite.PartitionStatus{{Partition: 0, State: netherite.PartitionOK}, {Partition: 1, State: netherite.PartitionRecovering,
			Err: errors.New("partition 1: commit log: disk full"), Restarts: 1}}, 503},
		{[]netherite.PartitionStatus{{Partition: 0, State: netherite.PartitionOK}, {Partition: 1, State: netherite.PartitionOK, Restarts: 1}}, 200},
		// Partitions other hosts run do not make this one unhealthy.
		{[]netherite.PartitionStatus{{Partition: 0, State: netherite.PartitionOK}, {Partition: 1, State: netherite.PartitionNotOwned}}, 200},
	}
	var mu sync.Mutex
	var cur []netherite.PartitionStatus
	srv := httptest.NewServer(healthHandler(func() []netherite.PartitionStatus {
		mu.Lock()
		defer mu.Unlock()
		return cur
	}))
	defer srv.Close()
	for i, s := range steps {
		mu.Lock()
		cur = s.parts
		mu.Unlock()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status     string
			Partitions []partitionHealth
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != s.code || len(body.Partitions) != len(s.parts) {
			t.Fatalf("step %d: %d %+v %v, want %d", i, resp.StatusCode, body, err, s.code)
		}
		for k, p := range s.parts {
			got := body.Partitions[k]
			if got.Partition != p.Partition || got.State != string(p.State) || (p.Err != nil) != (got.Error != "") {
				t.Errorf("step %d: partition %+v reported as %+v", i, p, got)
			}
		}
		if (s.code == 200) != (body.Status == "ok") {
			t.Errorf("step %d: status %q with code %d", i, body.Status, resp.StatusCode)
		}
	}
}

// TestServeHealthzReportsPartitions: the running server reports every
// partition as ok.
func TestServeHealthzReportsPartitions(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", addr, "-storage", "memory", "-partitions", "3"}, &out, &errb)
	}()
	waitHealthy(t, "http://"+addr+"/healthz", &errb)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Status     string
		Partitions []partitionHealth
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if body.Status != "ok" || len(body.Partitions) != 3 {
		t.Fatalf("healthz: %+v", body)
	}
	for _, p := range body.Partitions {
		if p.State != "ok" {
			t.Errorf("partition %+v", p)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, errb.String())
	}
}
