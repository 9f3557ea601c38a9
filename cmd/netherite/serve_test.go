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
