package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("1, 3,2,1")
	if err != nil || !reflect.DeepEqual(got, []int{1, 3, 2, 1}) {
		t.Errorf("parseCounts: %v, %v", got, err)
	}
	for _, bad := range []string{"", "1,0", "2,x", "-1"} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) accepted", bad)
		}
	}
}

// `bench elastic` and `bench handover` run end to end at a small scale
// and write what they say.
func TestBenchElasticAndHandover(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"bench", "elastic", "-partitions", "2", "-rate", "10", "-hosts", "1,2", "-phase", "1s",
		"-report-interval", "200ms", "-host-timeout", "1s", "-out", dir}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("bench elastic: exit %d: %s\n%s", code, errb.String(), out.String())
	}
	for _, want := range []string{"issued 20, completed 20, failed 0", "2 hosts", "longest stall", "wrote " + filepath.Join(dir, "elastic.png")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench elastic output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"elastic.png", "elastic.json", "elastic-report.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	out.Reset()
	args = []string{"bench", "handover", "-instances", "20", "-moves", "3", "-report-interval", "200ms", "-host-timeout", "1s", "-json"}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("bench handover: exit %d: %s\n%s", code, errb.String(), out.String())
	}
	var res struct {
		Moves []int64 `json:"moves_ns"`
		P99Ms float64 `json:"p99_ms"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Moves) != 3 || res.P99Ms <= 0 {
		t.Errorf("bench handover -json: %v: %s", err, out.String())
	}
}
