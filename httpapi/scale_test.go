package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

var scaleT0 = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

// sampleRecord is a load monitor record of 4 partitions over two live
// hosts and a dead one.
func sampleRecord() *loadmonitor.Record {
	return &loadmonitor.Record{
		Version: 7, Monitor: "host-a", Updated: scaleT0, Position: 99,
		Owners: []string{"host-a", "host-b", "host-a", ""},
		Hosts: []loadmonitor.HostInfo{
			{ID: "host-b", ClientID: "cb", LastReport: scaleT0.Add(-time.Second), Live: true, Running: []int{1}},
			{ID: "host-a", ClientID: "ca", LastReport: scaleT0, Live: true, Running: []int{2, 0}},
			{ID: "host-c", ClientID: "cc", LastReport: scaleT0.Add(-time.Minute), Running: []int{3}},
		},
		Loads: []transport.PartitionLoad{
			{Partition: 0, WorkItems: 3, Activities: 5, Timers: 1, NextTimer: scaleT0.Add(30 * time.Second), Outbox: 2,
				InputLag: 10, Events: 1000, CacheBytes: 4096, Instances: 40, Latency: "LLMMH"},
			{Partition: 1, Events: 5, Instances: 2, Latency: "IIIII"},
			{Partition: 2, Timers: 2, NextTimer: scaleT0.Add(10 * time.Second), Latency: "LI"},
			{Partition: 3},
		},
		Recommendation: loadmonitor.Recommendation{Hosts: 3, Reason: "backlog on partition 0"},
	}
}

func getScale(t *testing.T, src ScaleSource, method string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	ScaleHandler(src).ServeHTTP(w, httptest.NewRequest(method, ScalePath, nil))
	var body map[string]any
	if method != http.MethodHead {
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, ScalePath, err, w.Body)
		}
	}
	return w, body
}

func TestScaleHandlerRecord(t *testing.T) {
	w, body := getScale(t, func(context.Context) (*loadmonitor.Record, error) { return sampleRecord(), nil }, http.MethodGet)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	// KEDA's metrics-api scaler reads a number at valueLocation.
	if v, ok := body["recommendedHosts"].(float64); !ok || v != 3 {
		t.Fatalf("recommendedHosts = %#v, want the number 3", body["recommendedHosts"])
	}
	var s ScaleStatus
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.PlacementVersion != 7 || s.Monitor != "host-a" || s.Updated != "2026-12-01T03:00:00Z" || s.LiveHosts != 2 ||
		s.Recommendation != (ScaleDecision{Hosts: 3, Reason: "backlog on partition 0"}) {
		t.Fatalf("header fields: %+v", s)
	}
	hosts := fmt.Sprint(s.Hosts)
	want := "[{host-a true false [0 2] [0 2] 2026-12-01T03:00:00Z} {host-b true false [1] [1] 2026-12-01T02:59:59Z} " +
		"{host-c false false [] [3] 2026-12-01T02:59:00Z}]"
	if hosts != want {
		t.Fatalf("hosts:\n got %s\nwant %s", hosts, want)
	}
	if len(s.Partitions) != 4 {
		t.Fatalf("%d partitions, want 4", len(s.Partitions))
	}
	p0 := s.Partitions[0]
	if p0.Owner != "host-a" || p0.WorkItems != 3 || p0.Activities != 5 || p0.Timers != 1 || p0.NextTimer != "2026-12-01T03:00:30Z" ||
		p0.Outbox != 2 || p0.InputLag != 10 || p0.Events != 1000 || p0.CacheBytes != 4096 || p0.Instances != 40 || p0.Latency != "LLMMH" {
		t.Fatalf("partition 0: %+v", p0)
	}
	if s.Partitions[3].Owner != "" || s.Partitions[3].Latency != "" {
		t.Fatalf("partition 3 has no owner and no report: %+v", s.Partitions[3])
	}
	if tot := s.Totals; tot.WorkItems != 3 || tot.Timers != 3 || tot.Events != 1005 || tot.Instances != 42 || tot.NextTimer != "2026-12-01T03:00:10Z" {
		t.Fatalf("totals: %+v", tot)
	}
	// The JSON names that tools (and the README) rely on.
	raw := w.Body.String()
	for _, name := range []string{`"placementVersion"`, `"monitor"`, `"hosts"`, `"partitions"`, `"owner"`, `"workItems"`,
		`"inputLag"`, `"latency"`, `"lastReport"`, `"live"`, `"recommendation"`, `"reason"`} {
		if !strings.Contains(raw, name) {
			t.Errorf("JSON lacks %s", name)
		}
	}
}

func TestScaleHandlerNoRecord(t *testing.T) {
	for name, src := range map[string]ScaleSource{
		"none yet": func(context.Context) (*loadmonitor.Record, error) { return nil, nil },
		"error":    func(context.Context) (*loadmonitor.Record, error) { return nil, errors.New("storage unreachable") },
	} {
		w, body := getScale(t, src, http.MethodGet)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", name, w.Code)
		}
		if msg, _ := body["error"].(string); !strings.Contains(msg, "no load monitor record") {
			t.Errorf("%s: error %q", name, msg)
		}
		if _, ok := body["recommendedHosts"]; ok {
			t.Errorf("%s: a 503 must not carry a recommendation", name)
		}
	}
	w := httptest.NewRecorder()
	ScaleHandler(func(context.Context) (*loadmonitor.Record, error) { return sampleRecord(), nil }).
		ServeHTTP(w, httptest.NewRequest(http.MethodPost, ScalePath, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") == "" {
		t.Fatalf("POST: status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// The exposition format, strictly enough to catch what Prometheus
// rejects: each family's HELP and TYPE come once, before its samples,
// which are contiguous; names and labels are valid; values parse; no
// series repeats.
var (
	metricName  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	sampleLine  = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelPair   = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)`)
	helpOrType  = regexp.MustCompile(`^# (HELP|TYPE) (\S+) (.*)$`)
	metricTypes = map[string]bool{"gauge": true, "counter": true}
)

// parseExposition checks text and returns its samples as
// `name{labels}` -> value.
func parseExposition(text string) (map[string]float64, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("the exposition must end with a newline")
	}
	samples := map[string]float64{}
	help, typ, done := map[string]bool{}, map[string]bool{}, map[string]bool{}
	current := ""
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if m := helpOrType.FindStringSubmatch(line); m != nil {
			name := m[2]
			if !metricName.MatchString(name) {
				return nil, fmt.Errorf("line %d: bad metric name %q", i+1, name)
			}
			if done[name] || (m[1] == "HELP" && help[name]) || (m[1] == "TYPE" && typ[name]) {
				return nil, fmt.Errorf("line %d: %s of %s again, or after its samples", i+1, m[1], name)
			}
			if m[1] == "TYPE" && !metricTypes[m[3]] {
				return nil, fmt.Errorf("line %d: type %q", i+1, m[3])
			}
			if current != "" && current != name {
				done[current] = true
			}
			current = name
			if m[1] == "HELP" {
				help[name] = true
			} else {
				typ[name] = true
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d: not a sample: %q", i+1, line)
		}
		name := m[1]
		if name != current || !typ[name] || !help[name] {
			return nil, fmt.Errorf("line %d: sample of %s outside its family (HELP %v, TYPE %v, current %s)", i+1, name, help[name], typ[name], current)
		}
		for rest := m[3]; rest != ""; {
			lp := labelPair.FindStringSubmatch(rest)
			if lp == nil {
				return nil, fmt.Errorf("line %d: bad labels %q", i+1, m[3])
			}
			rest = rest[len(lp[0]):]
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil && m[4] != "+Inf" && m[4] != "-Inf" && m[4] != "NaN" {
			return nil, fmt.Errorf("line %d: value %q", i+1, m[4])
		}
		key := name + m[2]
		if _, dup := samples[key]; dup {
			return nil, fmt.Errorf("line %d: series %s repeats", i+1, key)
		}
		samples[key] = v
	}
	return samples, nil
}

func mustParseExposition(t *testing.T, text string) map[string]float64 {
	t.Helper()
	got, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return got
}

func TestMetricsHandler(t *testing.T) {
	w := httptest.NewRecorder()
	h := MetricsHandler(func(context.Context) (*loadmonitor.Record, error) { return sampleRecord(), nil },
		func() HostMetrics { return HostMetrics{HostID: `vm"1\`, Running: 2, Down: 1} })
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, MetricsPath, nil))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	got := mustParseExposition(t, w.Body.String())
	want := map[string]float64{
		`netherite_recommended_hosts`:                                 1 * 3,
		`netherite_placement_version`:                                 7,
		`netherite_live_hosts`:                                        2,
		`netherite_scale_record_available`:                            1,
		`netherite_host_partitions_running{host="vm\"1\\"}`:           2,
		`netherite_host_partitions_down{host="vm\"1\\"}`:              1,
		`netherite_load_monitor_info{host="host-a"}`:                  1,
		`netherite_partition_owner_info{partition="1",host="host-b"}`: 1,
		`netherite_partition_work_items{partition="0"}`:               3,
		`netherite_partition_activities{partition="0"}`:               5,
		`netherite_partition_input_lag{partition="0"}`:                10,
		`netherite_partition_events_total{partition="1"}`:             5,
		`netherite_partition_latency_level{partition="0"}`:            3,
		`netherite_partition_latency_level{partition="1"}`:            0,
		`netherite_partition_timers{partition="2"}`:                   2,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got[`netherite_partition_owner_info{partition="3",host=""}`]; ok {
		t.Error("a partition without owner has no owner series")
	}
	if _, ok := got[`netherite_partition_latency_level{partition="3"}`]; ok {
		t.Error("a partition that never reported has no latency level")
	}

	// Without a record: still a valid scrape, saying so.
	w = httptest.NewRecorder()
	MetricsHandler(func(context.Context) (*loadmonitor.Record, error) { return nil, errors.New("none") }, nil).
		ServeHTTP(w, httptest.NewRequest(http.MethodGet, MetricsPath, nil))
	got = mustParseExposition(t, w.Body.String())
	if w.Code != http.StatusOK || len(got) != 1 || got["netherite_scale_record_available"] != 0 {
		t.Fatalf("no record: status %d, samples %v", w.Code, got)
	}
}

// The checker itself rejects what Prometheus would.
func TestParseExpositionRejects(t *testing.T) {
	for _, bad := range []string{
		"netherite_x 1\n",                                                                  // no HELP/TYPE
		"# HELP a h\n# TYPE a gauge\na{l=\"x} 1\n",                                         // unterminated label
		"# HELP a h\n# TYPE a gauge\na 1\na 2\n",                                           // repeated series
		"# HELP a h\n# TYPE a gauge\na one\n",                                              // bad value
		"# HELP a h\n# TYPE a summaryish\na 1\n",                                           // bad type
		"# HELP a h\n# TYPE a gauge\na 1\n# HELP b h\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n", // family split
		"# HELP a h\n# TYPE a gauge\na 1",                                                  // no final newline
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// A stored recommendation of 0 (every host gone) becomes 1 once a stored
// timer is due within a minute: KEDA starts a host to fire it.
func TestScaleStatusTimerWakes(t *testing.T) {
	rec := &loadmonitor.Record{Version: 2, Owners: []string{"a", "a"},
		Loads: []transport.PartitionLoad{{Partition: 0, Latency: "IIIII"},
			{Partition: 1, Timers: 1, NextTimer: scaleT0.Add(10 * time.Minute), Latency: "IIIII"}},
		Recommendation: loadmonitor.Recommendation{Hosts: 0, Reason: "idle"}}
	if s := NewScaleStatus(rec, scaleT0); s.RecommendedHosts != 0 || s.Recommendation.Reason != "idle" {
		t.Fatalf("ten minutes before the timer: %+v", s.Recommendation)
	}
	if s := NewScaleStatus(rec, scaleT0.Add(9*time.Minute+30*time.Second)); s.RecommendedHosts != 1 || s.Recommendation.Hosts != 1 {
		t.Fatalf("30 s before the timer: %+v", s.Recommendation)
	}
	var b strings.Builder
	WriteMetrics(&b, rec, nil, scaleT0.Add(9*time.Minute+30*time.Second))
	if got := mustParseExposition(t, b.String())["netherite_recommended_hosts"]; got != 1 {
		t.Fatalf("netherite_recommended_hosts = %v, want 1", got)
	}
}
