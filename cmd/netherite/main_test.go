package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/netherite-go/netherite/bench"
)

// TestMain lets bench crash-recovery re-execute this test binary as its
// load child.
func TestMain(m *testing.M) {
	bench.RunChildIfRequested()
	runCLIIfRequested() // the multi-process test runs this binary as `netherite`
	os.Exit(m.Run())
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"demo", "-storage", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// Run twice: the second run finds the state of the first.
	out.Reset()
	if code := run(context.Background(), []string{"demo", "-storage", dir}, &out, &errb); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "run #2 on") || !strings.Contains(out.String(), "total balance 600") {
		t.Errorf("second run does not show the first run's state:\n%s", out.String())
	}
	for _, want := range []string{
		`["Hello Tokyo!","Hello Seattle!","Hello London!"]`,
		"338350", // sum of squares 1..100
		"counter entity",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchJSON(t *testing.T) {
	for _, w := range []string{"hello5", "hello3-latency", "fanout", "bank"} {
		var out, errb bytes.Buffer
		args := []string{"bench", w, "-n", "50", "-partitions", "4", "-rate", "1000", "-json"}
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", w, code, errb.String())
		}
		var res map[string]any
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", w, err, out.String())
		}
		for _, k := range []string{"workload", "n", "completed", "failed", "errors", "seconds", "orchestrations_per_s", "p50_ms", "p90_ms", "p99_ms", "mode"} {
			if _, ok := res[k]; !ok {
				t.Errorf("%s: JSON lacks %q: %s", w, k, out.String())
			}
		}
		if res["failed"].(float64) != 0 || res["completed"].(float64) == 0 {
			t.Errorf("%s: %s", w, out.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if code := run(context.Background(), []string{"bench", "nosuch", "-n", "1"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "unknown workload") {
		t.Fatalf("unknown workload: exit %d: %s", code, errb.String())
	}
}
