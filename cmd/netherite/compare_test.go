package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchCompare(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "report")
	var out, errb bytes.Buffer
	args := []string{"bench", "compare", "-out", dir, "-configs", "netherite-memory,baseline-azurite", "-workloads", "hello5,entity-signal",
		"-n", "10", "-signals", "50", "-partitions", "2", "-warmup", "0", "-storage", ""}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	js, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Runs []struct{ Workload, Configuration, Status string }
	}
	if err := json.Unmarshal(js, &rep); err != nil {
		t.Fatal(err)
	}
	want := []string{"hello5 netherite-memory ok", "entity-signal netherite-memory ok", "hello5 baseline-azurite not available", "entity-signal baseline-azurite not available"}
	var got []string
	for _, r := range rep.Runs {
		got = append(got, r.Workload+" "+r.Configuration+" "+r.Status)
	}
	if strings.Join(got, ";") != strings.Join(want, ";") {
		t.Errorf("runs %v, want %v", got, want)
	}
	if strings.Contains(errb.String(), "warm-up") {
		t.Errorf("-warmup 0 ran a warm-up: %s", errb.String())
	}
	if !strings.Contains(out.String(), "report.md") {
		t.Errorf("output: %s", out.String())
	}
	if code := run(context.Background(), []string{"bench", "compare", "-workloads", "nope", "-out", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "unknown workload") {
		t.Errorf("unknown workload: exit %d: %s", code, errb.String())
	}
}
