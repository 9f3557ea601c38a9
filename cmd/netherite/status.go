package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netherite-go/netherite/httpapi"
	"github.com/netherite-go/netherite/loadmonitor"
)

// staleRecord is the age beyond which a record is not a running
// monitor's (it rewrites the record with the hosts' reports, every few
// seconds).
const staleRecord = time.Minute

// printStatus prints a load monitor record for people: the placement and
// the recommendation, a table of hosts, and a table of partitions with
// their owner and load.
func printStatus(w io.Writer, taskHub string, rec *loadmonitor.Record, now time.Time) {
	s := httpapi.NewScaleStatus(rec, now)
	fmt.Fprintf(w, "task hub %q: placement version %d, load monitor on %s", taskHub, rec.Version, orDash(rec.Monitor))
	if !rec.Updated.IsZero() {
		fmt.Fprintf(w, " (record written %s, %s ago)", rec.Updated.UTC().Format(time.RFC3339), ago(now, rec.Updated))
		if now.Sub(rec.Updated) > staleRecord {
			// A running monitor rewrites it with every report.
			fmt.Fprintf(w, "\nthe record is stale: no load monitor has written it for %s; no elastic host may be running", ago(now, rec.Updated))
		}
	}
	fmt.Fprintf(w, "\nrecommendation: %d host%s", s.RecommendedHosts, plural(s.RecommendedHosts))
	if s.Recommendation.Reason != "" {
		fmt.Fprintf(w, " (%s)", s.Recommendation.Reason)
	}
	fmt.Fprintf(w, "\n\n")

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tLIVE\tPLACED\tRUNNING\tLAST REPORT")
	for _, h := range s.Hosts {
		live := "yes"
		switch {
		case h.Stopping:
			live = "stopping"
		case !h.Live:
			live = "no"
		}
		last := "-"
		for _, hi := range rec.Hosts {
			if hi.ID == h.ID && !hi.LastReport.IsZero() {
				last = ago(now, hi.LastReport) + " ago"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.ID, live, ranges(h.Partitions), ranges(h.Running), last)
	}
	if len(s.Hosts) == 0 {
		fmt.Fprintln(tw, "(none)\t\t\t\t")
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PARTITION\tOWNER\tWORK ITEMS\tACTIVITIES\tTIMERS\tNEXT TIMER\tOUTBOX\tINPUT LAG\tEVENTS\tINSTANCES\tCACHE\tLATENCY\t")
	for i, p := range s.Partitions {
		next := "-"
		if i < len(rec.Loads) && !rec.Loads[i].NextTimer.IsZero() {
			if d := rec.Loads[i].NextTimer.Sub(now); d >= 0 {
				next = "in " + d.Round(time.Second).String()
			} else {
				next = "overdue " + (-d).Round(time.Second).String()
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", p.Partition, orDash(p.Owner), p.WorkItems,
			p.Activities, p.Timers, next, p.Outbox, p.InputLag, p.Events, p.Instances, bytesName(p.CacheBytes), orDash(p.Latency))
	}
	tw.Flush()
}

// printStatusJSON prints what GET /runtime/webhooks/durabletask/scale
// answers.
func printStatusJSON(w io.Writer, rec *loadmonitor.Record, now time.Time) {
	b, _ := json.MarshalIndent(httpapi.NewScaleStatus(rec, now), "", "  ")
	fmt.Fprintln(w, string(b))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// ranges writes sorted partition numbers compactly: 0-3,5.
func ranges(ps []int) string {
	if len(ps) == 0 {
		return "-"
	}
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ps[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(ps[j]))
		}
		i = j + 1
	}
	return b.String()
}

func bytesName(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
