// Package plot draws the simple charts of the benchmark report (line
// charts and bar charts with labelled axes and a legend) into images,
// with the standard library's image packages and a fixed bitmap font.
package plot

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Palette colours the series, in order.
var Palette = []color.RGBA{
	{31, 119, 180, 255},  // blue
	{255, 127, 14, 255},  // orange
	{44, 160, 44, 255},   // green
	{148, 103, 189, 255}, // purple
	{214, 39, 40, 255},   // red
	{140, 86, 75, 255},   // brown
	{227, 119, 194, 255}, // pink
	{23, 190, 207, 255},  // cyan
}

var (
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{110, 110, 110, 255}
	light = color.RGBA{225, 225, 225, 255}
	white = color.RGBA{255, 255, 255, 255}
)

// The font: 7×13 pixels a character, ASCII.
var face = basicfont.Face7x13

const (
	charW    = 7
	lineH    = 13
	ascent   = 11
	defaultW = 900
	defaultH = 540
)

// Axis is one axis of a chart.
type Axis struct {
	Label string
	// Log draws the axis in log10 scale (values must be positive;
	// others are left out).
	Log bool
	// Min and Max fix the range; when both are zero the data decide.
	Min, Max float64
}

// Series is a named line of (X[i], Y[i]) points.
type Series struct {
	Name string
	X, Y []float64
	// Step draws the series as a staircase (a step after each point).
	// A NaN Y breaks the line.
	Step bool
	// Colour is 1 + the index of the series' colour in Palette (0: by
	// position), so that a configuration keeps its colour across charts.
	Colour int
}

// colour picks Palette[c-1], or by position i when c is 0.
func colour(c, i int) color.RGBA {
	if c > 0 {
		i = c - 1
	}
	return Palette[i%len(Palette)]
}

// Legend positions.
const (
	TopLeft = iota
	TopRight
	BottomLeft
	BottomRight
)

// LineChart is a chart of lines.
type LineChart struct {
	Title  string
	X, Y   Axis
	Series []Series
	Legend int
	// Marks are labelled vertical lines (events on the x axis).
	Marks         []Mark
	Width, Height int
}

// Bar is one bar of a bar chart; a bar with Missing set is drawn as a
// note ("n/a", "timeout") instead of a value.
type Bar struct {
	Label   string
	Value   float64
	Missing string
	Colour  int // as Series.Colour
}

// BarChart is a chart of bars, one per category.
type BarChart struct {
	Title         string
	Y             Axis
	Bars          []Bar
	Width, Height int
}

// canvas is an image with a plot area and scales.
type canvas struct {
	img                    *image.RGBA
	left, top, right, bott int // plot area in pixels
	x, y                   scale
}

// scale maps data values to pixels.
type scale struct {
	lo, hi   float64 // in data units (log10 of them for log)
	log      bool
	p0, p1   int // pixels of lo and hi
	ticks    []float64
	tickText []string
}

func (s scale) px(v float64) float64 {
	if s.log {
		v = math.Log10(v)
	}
	if s.hi == s.lo {
		return float64(s.p0)
	}
	return float64(s.p0) + (v-s.lo)/(s.hi-s.lo)*float64(s.p1-s.p0)
}

// newScale fits an axis to the data values vs, over pixels p0..p1.
func newScale(a Axis, vs []float64, p0, p1 int, fromZero bool) scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || (a.Log && v <= 0) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if a.Min != 0 || a.Max != 0 {
		lo, hi = a.Min, a.Max
	}
	if math.IsInf(lo, 1) { // no data
		lo, hi = 0, 1
		if a.Log {
			lo, hi = 1, 10
		}
	}
	s := scale{log: a.Log, p0: p0, p1: p1}
	if a.Log {
		s.ticks = LogTicks(lo, hi)
		s.lo, s.hi = math.Log10(s.ticks[0]), math.Log10(s.ticks[len(s.ticks)-1])
		for _, t := range s.ticks {
			s.tickText = append(s.tickText, FormatTick(t, t))
		}
		return s
	}
	if fromZero && lo > 0 {
		lo = 0
	}
	if hi == lo {
		hi = lo + 1
	}
	s.ticks = NiceTicks(lo, hi, 6)
	s.lo, s.hi = s.ticks[0], s.ticks[len(s.ticks)-1]
	step := s.ticks[1] - s.ticks[0]
	for _, t := range s.ticks {
		s.tickText = append(s.tickText, FormatTick(t, step))
	}
	return s
}

// NiceStep rounds raw up to 1, 2 or 5 times a power of ten.
func NiceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// NiceTicks returns about n evenly spaced round tick values (steps of 1,
// 2 or 5 times a power of ten) whose first is at or below lo and last at
// or above hi.
func NiceTicks(lo, hi float64, n int) []float64 {
	if hi < lo {
		lo, hi = hi, lo
	}
	if hi == lo {
		hi = lo + 1
	}
	n = max(2, n)
	step := NiceStep((hi - lo) / float64(n-1))
	// step = m×10^e: ticks are k×m scaled by 10^e, so that a division
	// by an exact power of ten rounds them right (0.6, not 0.6000000001).
	e := math.Floor(math.Log10(step) + 1e-9)
	m := math.Round(step / math.Pow(10, e))
	at := func(k float64) float64 {
		if e < 0 {
			return k * m / math.Pow(10, -e)
		}
		return k * m * math.Pow(10, e)
	}
	k := math.Floor(lo/step + 1e-9)
	var ts []float64
	for ; ; k++ {
		t := at(k)
		ts = append(ts, t)
		if t >= hi-step*1e-9 {
			return ts
		}
	}
}

// LogTicks returns the powers of ten that enclose lo..hi (both > 0);
// over at most two decades it adds 2 and 5 times them, so that an axis
// never has fewer than three labelled ticks.
func LogTicks(lo, hi float64) []float64 {
	if lo <= 0 {
		lo = hi / 10
	}
	if hi < lo {
		lo, hi = hi, lo
	}
	a, b := math.Floor(math.Log10(lo)+1e-9), math.Ceil(math.Log10(hi)-1e-9)
	if b <= a {
		b = a + 1
	}
	fine := b-a <= 2
	var ts []float64
	for e := a; e <= b; e++ {
		p := math.Pow(10, e)
		ts = append(ts, p)
		if fine && e < b {
			ts = append(ts, 2*p, 5*p)
		}
	}
	return ts
}

// FormatTick formats tick value v of an axis whose ticks are step apart:
// as few decimals as the step needs, and k or M when the step is
// thousands or hundreds of thousands.
func FormatTick(v, step float64) string {
	if v == 0 {
		return "0"
	}
	av := math.Abs(v)
	switch {
	case av >= 1e6 && step >= 1e5 && math.Mod(av, 1e5) == 0:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case step >= 1e3 && math.Mod(av, 100) == 0:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	dec := 0
	if step > 0 && step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

func newCanvas(w, h int) *canvas {
	if w <= 0 {
		w = defaultW
	}
	if h <= 0 {
		h = defaultH
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	return &canvas{img: img, left: 80, top: 40, right: w - 24, bott: h - 70}
}

// text draws s with its top-left corner at (x, y).
func (c *canvas) text(x, y int, s string, col color.Color) {
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y+ascent)}
	d.DrawString(s)
}

func textW(s string) int { return charW * len(s) }

// textVertical draws s upwards (rotated a quarter turn to the left) with
// its bottom-left corner at (x, y).
func (c *canvas) textVertical(x, y int, s string, col color.Color) {
	w := textW(s)
	tmp := image.NewRGBA(image.Rect(0, 0, w, lineH))
	d := font.Drawer{Dst: tmp, Src: image.NewUniform(col), Face: face, Dot: fixed.P(0, ascent)}
	d.DrawString(s)
	for i := 0; i < w; i++ {
		for j := 0; j < lineH; j++ {
			if _, _, _, a := tmp.At(i, j).RGBA(); a > 0 {
				c.img.Set(x+j, y-i, tmp.At(i, j))
			}
		}
	}
}

func (c *canvas) hline(x0, x1, y int, col color.Color) {
	for x := min(x0, x1); x <= max(x0, x1); x++ {
		c.img.Set(x, y, col)
	}
}

func (c *canvas) vline(x, y0, y1 int, col color.Color) {
	for y := min(y0, y1); y <= max(y0, y1); y++ {
		c.img.Set(x, y, col)
	}
}

func (c *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
}

// line draws a 2-pixel line clipped to the plot area.
func (c *canvas) line(x0, y0, x1, y1 float64, col color.Color) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		x, y := int(math.Round(x0+t*(x1-x0))), int(math.Round(y0+t*(y1-y0)))
		for _, d := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}} {
			px, py := x+d[0], y+d[1]
			if px >= c.left && px <= c.right && py >= c.top && py <= c.bott {
				c.img.Set(px, py, col)
			}
		}
	}
}

// frame draws the title, the grid, the axes with their ticks and labels.
// xTicks false leaves the x ticks to the caller (bar charts).
func (c *canvas) frame(title string, xl, yl string, xTicks bool) {
	c.text((c.img.Bounds().Dx()-textW(title))/2, 12, title, black)
	for i, t := range c.y.ticks {
		py := int(math.Round(c.y.px(t)))
		c.hline(c.left, c.right, py, light)
		c.hline(c.left-5, c.left, py, black)
		s := c.y.tickText[i]
		c.text(c.left-8-textW(s), py-lineH/2, s, black)
	}
	if xTicks {
		for i, t := range c.x.ticks {
			px := int(math.Round(c.x.px(t)))
			c.vline(px, c.top, c.bott, light)
			c.vline(px, c.bott, c.bott+5, black)
			s := c.x.tickText[i]
			c.text(px-textW(s)/2, c.bott+8, s, black)
		}
	}
	c.hline(c.left, c.right, c.bott, black)
	c.vline(c.left, c.top, c.bott, black)
	if xl != "" {
		c.text((c.left+c.right-textW(xl))/2, c.bott+30, xl, black)
	}
	if yl != "" {
		c.textVertical(10, (c.top+c.bott+textW(yl))/2, yl, black)
	}
}

// legend draws the names with their colours in a box in a corner.
func (c *canvas) legend(names []string, cols []color.RGBA, pos int) {
	if len(names) == 0 {
		return
	}
	w := 0
	for _, n := range names {
		w = max(w, textW(n))
	}
	w += 40
	h := len(names)*(lineH+4) + 8
	x, y := c.left+10, c.top+10
	if pos == TopRight || pos == BottomRight {
		x = c.right - 10 - w
	}
	if pos == BottomLeft || pos == BottomRight {
		y = c.bott - 10 - h
	}
	c.rect(x, y, x+w, y+h, white)
	c.hline(x, x+w, y, grey)
	c.hline(x, x+w, y+h, grey)
	c.vline(x, y, y+h, grey)
	c.vline(x+w, y, y+h, grey)
	for i, n := range names {
		ly := y + 6 + i*(lineH+4)
		col := cols[i]
		c.rect(x+6, ly+5, x+26, ly+8, col)
		c.text(x+32, ly, n, black)
	}
}

// Render draws the line chart.
func (lc *LineChart) Render() *image.RGBA {
	c := newCanvas(lc.Width, lc.Height)
	var xs, ys []float64
	for _, s := range lc.Series {
		xs, ys = append(xs, s.X...), append(ys, s.Y...)
	}
	c.x = newScale(lc.X, xs, c.left, c.right, !lc.X.Log)
	c.y = newScale(lc.Y, ys, c.bott, c.top, !lc.Y.Log)
	c.frame(lc.Title, lc.X.Label, lc.Y.Label, true)
	var names []string
	var cols []color.RGBA
	for i, s := range lc.Series {
		col := colour(s.Colour, i)
		names, cols = append(names, s.Name), append(cols, col)
		var px, py float64
		first := true
		for j := range min(len(s.X), len(s.Y)) {
			if math.IsNaN(s.Y[j]) { // a gap: the line breaks (a step holds until here)
				if !first && s.Step {
					c.line(px, py, c.x.px(s.X[j]), py, col)
				}
				first = true
				continue
			}
			if (lc.X.Log && s.X[j] <= 0) || (lc.Y.Log && s.Y[j] <= 0) {
				continue
			}
			x, y := c.x.px(s.X[j]), c.y.px(s.Y[j])
			if !first {
				if s.Step {
					c.line(px, py, x, py, col)
					c.line(x, py, x, y, col)
				} else {
					c.line(px, py, x, y, col)
				}
			} else if len(s.X) == 1 {
				c.line(x-2, y, x+2, y, col)
			}
			px, py, first = x, y, false
		}
	}
	c.marks(lc.Marks)
	c.legend(names, cols, lc.Legend)
	return c.img
}

// Render draws the bar chart, with each bar's value above it.
func (bc *BarChart) Render() *image.RGBA {
	c := newCanvas(bc.Width, bc.Height)
	c.bott -= lineH // room for two-line labels
	var vs []float64
	for _, b := range bc.Bars {
		if b.Missing == "" {
			vs = append(vs, b.Value)
		}
	}
	c.y = newScale(bc.Y, vs, c.bott, c.top+lineH, !bc.Y.Log)
	c.frame(bc.Title, "", bc.Y.Label, false)
	n := max(1, len(bc.Bars))
	slot := float64(c.right-c.left) / float64(n)
	for i, b := range bc.Bars {
		x0 := c.left + int(float64(i)*slot+slot*0.2)
		x1 := c.left + int(float64(i+1)*slot-slot*0.2)
		mid := (x0 + x1) / 2
		for j, l := range wrap(b.Label, int(slot)-4) {
			c.text(mid-textW(l)/2, c.bott+8+j*(lineH+1), l, black)
		}
		if b.Missing != "" {
			c.text(mid-textW(b.Missing)/2, c.bott-lineH-4, b.Missing, grey)
			continue
		}
		base := float64(c.bott)
		if bc.Y.Log {
			base = float64(c.bott)
		}
		top := c.y.px(b.Value)
		if bc.Y.Log && b.Value <= 0 {
			top = base
		}
		top = math.Max(float64(c.top), math.Min(top, base))
		c.rect(x0, int(top), x1, c.bott, colour(b.Colour, i))
		v := FormatValue(b.Value)
		c.text(mid-textW(v)/2, int(top)-lineH-2, v, black)
	}
	return c.img
}

// FormatValue formats a measured value with three significant digits.
func FormatValue(v float64) string {
	switch av := math.Abs(v); {
	case av >= 1000:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case av >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case av >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case av >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// wrap splits a label at '-' and spaces into lines of at most w pixels
// (a word longer than that stays whole).
func wrap(s string, w int) []string {
	var lines []string
	cur := ""
	for _, word := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }) {
		for _, part := range splitKeep(word) {
			if cur != "" && textW(cur+part) > w {
				lines = append(lines, cur)
				cur = ""
			}
			cur += part
		}
		cur += " "
	}
	if cur = strings.TrimSpace(cur); cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// splitKeep splits "a-b-c" into "a-", "b-", "c".
func splitKeep(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '-')
		if i < 0 || i == len(s)-1 {
			return append(out, s)
		}
		out, s = append(out, s[:i+1]), s[i+1:]
	}
}

// WritePNG encodes img as PNG to w.
func WritePNG(w io.Writer, img image.Image) error {
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("plot: png: %w", err)
	}
	return nil
}

// Grid lays images out in rows of cols, left to right (small multiples:
// one chart per series when their scales differ too much to share axes).
func Grid(imgs []image.Image, cols int) *image.RGBA {
	cols = max(1, min(cols, len(imgs)))
	w, h := 0, 0
	for _, im := range imgs {
		w, h = max(w, im.Bounds().Dx()), max(h, im.Bounds().Dy())
	}
	rows := (len(imgs) + cols - 1) / cols
	out := image.NewRGBA(image.Rect(0, 0, max(1, cols*w), max(1, rows*h)))
	draw.Draw(out, out.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	for i, im := range imgs {
		at := image.Pt((i%cols)*w, (i/cols)*h)
		draw.Draw(out, im.Bounds().Sub(im.Bounds().Min).Add(at), im, im.Bounds().Min, draw.Src)
	}
	return out
}
