package bench

import (
	"fmt"
	"image"
	"math"
	"os"
	"strings"

	"github.com/netherite-go/netherite/bench/plot"
)

// Sizes of the elastic plot's panels.
const (
	elasticPlotW = 1000
	elasticLineH = 300
)

// Figure draws the elastic run over time in three stacked panels with a
// shared time axis: throughput (completions per window, and the offered
// rate), latency (p50 and p99 of the completions in each window, log
// scale) and the owner of every partition (a band per partition, coloured
// by host); dashed lines mark the host starts and stops.
func (rep *ElasticReport) Figure() *image.RGBA {
	x := plot.Axis{Label: "seconds since the load began", Min: 0, Max: rep.Seconds}
	var marks []plot.Mark
	for _, e := range rep.HostEvents {
		sign := "+"
		if e.Action == "stop" {
			sign = "-"
		}
		at := secs(e.At)
		if n := len(marks); n > 0 && at-marks[n-1].X < rep.Seconds/100 {
			marks[n-1].Label += " " + sign + e.Host // hosts started together: one line
			continue
		}
		marks = append(marks, plot.Mark{X: at, Label: sign + e.Host})
	}
	thr := plot.Series{Name: fmt.Sprintf("completed/s (per %.0fms)", rep.WindowS*1000), Step: true, Colour: 1}
	offered := plot.Series{Name: "offered starts/s", Colour: 8}
	p50 := plot.Series{Name: "p50", Step: true, Colour: 1}
	p99 := plot.Series{Name: "p99", Step: true, Colour: 2}
	for _, w := range rep.Windows {
		thr.X, thr.Y = append(thr.X, w.FromS), append(thr.Y, w.PerS)
		l50, l99 := w.P50Ms, w.P99Ms
		if w.Completed == 0 {
			l50, l99 = math.NaN(), math.NaN() // no completion: no latency
		}
		p50.X, p50.Y = append(p50.X, w.FromS), append(p50.Y, l50)
		p99.X, p99.Y = append(p99.X, w.FromS), append(p99.Y, l99)
	}
	p50.X, p50.Y = append(p50.X, rep.Seconds), append(p50.Y, math.NaN())
	p99.X, p99.Y = append(p99.X, rep.Seconds), append(p99.Y, math.NaN())
	if n := len(rep.Windows); n > 0 {
		thr.X, thr.Y = append(thr.X, rep.Seconds), append(thr.Y, thr.Y[n-1])
	}
	for _, ph := range rep.Phases {
		if ph.Name != "drain" {
			offered.X, offered.Y = []float64{0, ph.ToS}, []float64{rep.OfferedPerS, rep.OfferedPerS}
		}
	}
	throughput := &plot.LineChart{Title: fmt.Sprintf("%s: throughput (hosts %s)", rep.Workload, schedule(rep.Schedule)), X: x,
		Y: plot.Axis{Label: "orchestrations/s"}, Series: []plot.Series{thr, offered}, Legend: plot.BottomRight, Marks: marks,
		Width: elasticPlotW, Height: elasticLineH}
	latency := &plot.LineChart{Title: "latency of the completions in each window (from the intended start)", X: x,
		Y: plot.Axis{Label: "ms (log scale)", Log: true}, Series: []plot.Series{p50, p99}, Legend: plot.TopLeft, Marks: marks,
		Width: elasticPlotW, Height: elasticLineH}
	owners, legend := rep.ownerBands()
	title := "partition owners (the host where each partition runs)"
	if rep.Conflicts > 0 {
		title += "; black: several hosts at once"
	}
	bands := &plot.BandChart{Title: title, X: x, Bands: owners, Legend: legend,
		Marks: marks, Width: elasticPlotW, Height: 150 + 14*max(1, rep.Partitions)}
	return plot.Stack([]image.Image{throughput.Render(), latency.Render(), bands.Render()})
}

func schedule(s []int) string {
	parts := make([]string, len(s))
	for i, h := range s {
		parts[i] = fmt.Sprint(h)
	}
	return strings.Join(parts, " -> ") // the plot's font is ASCII
}

// ownerBands turns the owner samples into one band per partition: each
// sample's owner holds until the next sample. Hosts get colours in the
// order they first appear.
func (rep *ElasticReport) ownerBands() ([]plot.Band, []string) {
	colours := map[string]int{}
	var legend []string
	colourOf := func(o string) int {
		switch {
		case o == "":
			return plot.Empty
		case strings.Contains(o, "+"):
			return plot.Conflict
		}
		c, ok := colours[o]
		if !ok {
			legend = append(legend, o)
			c = len(legend)
			colours[o] = c
		}
		return c
	}
	for _, e := range rep.HostEvents { // stable colours: by start order
		if e.Action == "start" {
			colourOf(e.Host)
		}
	}
	var samples []OwnerSample
	if rep.run != nil {
		samples = rep.run.Samples
	}
	bands := make([]plot.Band, rep.Partitions)
	for p := range bands {
		bands[p].Label = fmt.Sprintf("p%d", p)
		for i, s := range samples {
			if p >= len(s.Owners) {
				continue
			}
			to := rep.Seconds
			if i+1 < len(samples) {
				to = secs(samples[i+1].At)
			}
			c := colourOf(s.Owners[p])
			if n := len(bands[p].Spans); n > 0 && bands[p].Spans[n-1].Colour == c && bands[p].Spans[n-1].X1 == secs(s.At) {
				bands[p].Spans[n-1].X1 = to
				continue
			}
			bands[p].Spans = append(bands[p].Spans, plot.Span{X0: secs(s.At), X1: to, Colour: c})
		}
	}
	return bands, legend
}

func (rep *ElasticReport) writePNG(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench elastic: plot: %w", err)
	}
	if err := plot.WritePNG(f, rep.Figure()); err != nil {
		f.Close()
		return fmt.Errorf("bench elastic: plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench elastic: plot: %w", err)
	}
	return nil
}
