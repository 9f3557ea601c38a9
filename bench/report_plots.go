package bench

import (
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/netherite-go/netherite/bench/plot"
)

// writePlots draws the report's plots into dir and returns their file
// names: throughput bars per workload, the latency CDFs of
// hello3-latency, and throughput over time per workload.
func (r *Report) writePlots(dir string) ([]string, error) {
	var files []string
	save := func(name string, img image.Image) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("bench compare: plot: %w", err)
		}
		if err := plot.WritePNG(f, img); err != nil {
			f.Close()
			return fmt.Errorf("bench compare: plot %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("bench compare: plot %s: %w", name, err)
		}
		files = append(files, name)
		return nil
	}
	for _, w := range r.workloads() {
		if err := save("throughput-"+w+".png", r.barChart(w).Render()); err != nil {
			return files, err
		}
	}
	if lc := r.latencyCDF("hello3-latency"); lc != nil {
		if err := save("latency-cdf.png", lc.Render()); err != nil {
			return files, err
		}
	}
	for _, w := range r.workloads() {
		if charts := r.timelineCharts(w); len(charts) > 0 {
			imgs := make([]image.Image, len(charts))
			for i, c := range charts {
				imgs[i] = c.Render()
			}
			if err := save("timeline-"+w+".png", plot.Grid(imgs, 2)); err != nil {
				return files, err
			}
		}
	}
	return files, nil
}

// barChart is workload w's throughput on each configuration, in log
// scale when the values span more than a factor of 30.
func (r *Report) barChart(w string) *plot.BarChart {
	unit, _ := units(w)
	bc := &plot.BarChart{Title: fmt.Sprintf("%s: throughput (%s/s), higher is better", w, unit), Y: plot.Axis{Label: unit + " per second"}}
	lo, hi := 0.0, 0.0
	for i, c := range r.configs() {
		x := r.run(w, c)
		b := plot.Bar{Label: c, Colour: i + 1}
		switch {
		case x == nil:
			b.Missing = "not run"
		case x.Status == StatusUnavailable:
			b.Missing = "n/a"
		case x.Throughput <= 0:
			b.Missing = x.Status
		default:
			b.Value = x.Throughput
			if x.Status != StatusOK {
				b.Label += " (" + x.Status + ")"
			}
			if lo == 0 || b.Value < lo {
				lo = b.Value
			}
			hi = max(hi, b.Value)
		}
		bc.Bars = append(bc.Bars, b)
	}
	if lo > 0 && hi/lo > 30 {
		bc.Y.Log = true
		bc.Y.Label += " (log scale)"
	}
	return bc
}

// latencyCDF is the latency distribution of workload w on each
// configuration that completed some of it (nil if none did).
func (r *Report) latencyCDF(w string) *plot.LineChart {
	lc := &plot.LineChart{Title: w + ": latency CDF (from intended start), left is better",
		X: plot.Axis{Label: "latency (ms, log scale)", Log: true}, Y: plot.Axis{Label: "fraction completed", Min: 0, Max: 1}, Legend: plot.TopLeft}
	for i, c := range r.configs() {
		x := r.run(w, c)
		if x == nil || len(x.CDF) == 0 {
			continue
		}
		s := plot.Series{Name: c, Step: true, Colour: i + 1}
		for _, pt := range x.CDF {
			s.X, s.Y = append(s.X, pt[0]), append(s.Y, pt[1])
		}
		lc.Series = append(lc.Series, s)
	}
	if len(lc.Series) == 0 {
		return nil
	}
	return lc
}

// timelineCharts are workload w's completions per second over each run,
// one chart per configuration: the runs differ by orders of magnitude in
// length and rate, which shared axes would flatten.
func (r *Report) timelineCharts(w string) []*plot.LineChart {
	unit, _ := units(w)
	if w == "fanout" {
		return nil // one orchestration: its activities are not seen completing
	}
	var charts []*plot.LineChart
	for i, c := range r.configs() {
		x := r.run(w, c)
		if x == nil || len(x.Timeline) == 0 || x.IntervalS <= 0 {
			continue
		}
		s := plot.Series{Name: fmt.Sprintf("%s, per %gs", c, x.IntervalS), Step: true, Colour: i + 1}
		for i, n := range x.Timeline {
			s.X, s.Y = append(s.X, float64(i)*x.IntervalS), append(s.Y, float64(n)/x.IntervalS)
		}
		s.X, s.Y = append(s.X, float64(len(x.Timeline))*x.IntervalS), append(s.Y, s.Y[len(s.Y)-1])
		charts = append(charts, &plot.LineChart{Title: w + " on " + c + ": throughput over time",
			X: plot.Axis{Label: "seconds since the start of the run"}, Y: plot.Axis{Label: unit + "/s"},
			Series: []plot.Series{s}, Legend: plot.TopRight, Width: 560, Height: 320})
	}
	return charts
}
