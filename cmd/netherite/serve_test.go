package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
