package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/netherite-go/netherite/loadmonitor"
	"github.com/netherite-go/netherite/transport"
)

// MetricsPath is where MetricsHandler is served.
const MetricsPath = "/metrics"

// HostMetrics is what the serving host tells of itself on /metrics.
type HostMetrics struct {
	// HostID names the host (the host label).
	HostID string
	// Running counts the partitions running on the host; Down those it
	// owns that are down (failed or recovering).
	Running, Down int
}

// MetricsHandler serves Prometheus' text exposition format (version
// 0.0.4): the serving host's partitions (host, if not nil) and the load
// monitor's record of the task hub (src, if not nil). The record's series
// are the task hub's, the same on every host: aggregate them with max (or
// scrape one host). A scrape answers 200 even without a record
// (netherite_scale_record_available is then 0).
func MetricsHandler(src ScaleSource, host func() HostMetrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var hm *HostMetrics
		if host != nil {
			h := host()
			hm = &h
		}
		var rec *loadmonitor.Record
		if src != nil {
			ctx, cancel := context.WithTimeout(r.Context(), scaleTimeout)
			rec, _ = src(ctx) // an error is a record not available
			cancel()
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		bw := bufio.NewWriter(w)
		WriteMetrics(bw, rec, hm, time.Now())
		bw.Flush()
	})
}

// promWriter writes metric families: HELP and TYPE once, then samples.
type promWriter struct {
	w io.Writer
}

func (p promWriter) family(name, typ, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// sample writes one sample; labels are name, value pairs.
func (p promWriter) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(escapeLabel(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatValue(v))
	b.WriteByte('\n')
	io.WriteString(p.w, b.String())
}

func (p promWriter) gauge(name, help string, v float64, labels ...string) {
	p.family(name, "gauge", help)
	p.sample(name, v, labels...)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

// LatencyLevel maps the newest letter of a latency trend to a number:
// 0 idle, 1 low, 2 medium, 3 high (-1: no report).
func LatencyLevel(trend string) int {
	if trend == "" {
		return -1
	}
	switch trend[len(trend)-1] {
	case 'I':
		return 0
	case 'L':
		return 1
	case 'M':
		return 2
	case 'H':
		return 3
	}
	return -1
}

// WriteMetrics writes the metrics of a host (nil: none) and of a load
// monitor record (nil: not available) in Prometheus' text format.
func WriteMetrics(w io.Writer, rec *loadmonitor.Record, host *HostMetrics, now time.Time) {
	p := promWriter{w}
	if host != nil {
		p.gauge("netherite_host_partitions_running", "Partitions running on this host.", float64(host.Running), "host", host.HostID)
		p.gauge("netherite_host_partitions_down", "Partitions this host owns that are down (failed or recovering).", float64(host.Down), "host", host.HostID)
	}
	avail := 0.0
	if rec != nil {
		avail = 1
	}
	p.gauge("netherite_scale_record_available", "1 if the load monitor's record of the task hub could be read, else 0.", avail)
	if rec == nil {
		return
	}
	p.gauge("netherite_recommended_hosts", "Hosts the load monitor recommends for the task hub.", float64(rec.RecommendationAt(now, 0).Hosts))
	p.gauge("netherite_placement_version", "Version of the load monitor's placement of partitions on hosts.", float64(rec.Version))
	live := 0
	for _, h := range rec.Hosts {
		if h.Live {
			live++
		}
	}
	p.gauge("netherite_live_hosts", "Hosts the load monitor counts as live.", float64(live))
	if !rec.Updated.IsZero() {
		p.gauge("netherite_scale_record_age_seconds", "Age of the load monitor's record.", max(0, now.Sub(rec.Updated).Seconds()))
	}
	if rec.Monitor != "" {
		p.gauge("netherite_load_monitor_info", "The host that runs the load monitor (value 1).", 1, "host", rec.Monitor)
	}
	if len(rec.Owners) > 0 {
		p.family("netherite_partition_owner_info", "gauge", "The host a partition is placed on (value 1; absent while it has none).")
		for part, owner := range rec.Owners {
			if owner != "" {
				p.sample("netherite_partition_owner_info", 1, "partition", strconv.Itoa(part), "host", owner)
			}
		}
	}
	if len(rec.Loads) == 0 {
		return
	}
	perPartition := []struct {
		name, typ, help string
		v               func(l transport.PartitionLoad) float64
	}{
		{"netherite_partition_work_items", "gauge", "Orchestration and entity work items ready or running.", func(l transport.PartitionLoad) float64 { return float64(l.WorkItems) }},
		{"netherite_partition_activities", "gauge", "Activities queued or running.", func(l transport.PartitionLoad) float64 { return float64(l.Activities) }},
		{"netherite_partition_timers", "gauge", "Pending timers (and scheduled starts).", func(l transport.PartitionLoad) float64 { return float64(l.Timers) }},
		{"netherite_partition_outbox", "gauge", "Batches sent to other partitions and not yet acknowledged.", func(l transport.PartitionLoad) float64 { return float64(l.Outbox) }},
		{"netherite_partition_input_lag", "gauge", "Packets in the partition's input queue not yet processed (as far as the transport tells).", func(l transport.PartitionLoad) float64 { return float64(l.InputLag) }},
		{"netherite_partition_instances", "gauge", "Instances (orchestrations and entities) of the partition.", func(l transport.PartitionLoad) float64 { return float64(l.Instances) }},
		{"netherite_partition_cache_bytes", "gauge", "Bytes of partition state in memory.", func(l transport.PartitionLoad) float64 { return float64(l.CacheBytes) }},
		{"netherite_partition_events_total", "counter", "Events the partition processed since it started on its current host (resets when it moves).", func(l transport.PartitionLoad) float64 { return float64(l.Events) }},
		{"netherite_partition_latency_level", "gauge", "Newest latency trend letter: 0 idle, 1 low, 2 medium, 3 high (doc/scaling.md).", func(l transport.PartitionLoad) float64 { return float64(LatencyLevel(l.Latency)) }},
	}
	for _, m := range perPartition {
		p.family(m.name, m.typ, m.help)
		for part, l := range rec.Loads {
			if m.name == "netherite_partition_latency_level" && l.Latency == "" {
				continue // never reported
			}
			p.sample(m.name, m.v(l), "partition", strconv.Itoa(part))
		}
	}
	p.family("netherite_partition_next_timer_seconds", "gauge", "Seconds until the partition's earliest timer is due (negative: overdue; absent: none).")
	for part, l := range rec.Loads {
		if !l.NextTimer.IsZero() {
			p.sample("netherite_partition_next_timer_seconds", l.NextTimer.Sub(now).Seconds(), "partition", strconv.Itoa(part))
		}
	}
}
