package plot

import (
	"image"
	"image/color"
	"image/draw"
	"math"
)

// Mark is a labelled vertical line at X (an event on a time axis: a host
// started, a phase began).
type Mark struct {
	X     float64
	Label string
}

// Span is a stretch [X0, X1) of a band drawn in a colour: 1 + an index
// into Palette, or Empty (nothing there) or Conflict (drawn black).
type Span struct {
	X0, X1 float64
	Colour int
}

// Special span colours.
const (
	Empty    = 0
	Conflict = -1
)

// Band is one row of a band chart.
type Band struct {
	Label string
	Spans []Span
}

// BandChart draws one horizontal band per row over a shared x axis, each
// coloured by span: who held what when (a partition's owner over time).
// Legend names the colours (Legend[i] is colour i+1).
type BandChart struct {
	Title         string
	X             Axis
	Bands         []Band
	Legend        []string
	Marks         []Mark
	Width, Height int
}

// Render draws the band chart: bands top to bottom in order.
func (bc *BandChart) Render() *image.RGBA {
	c := newCanvas(bc.Width, bc.Height)
	var xs []float64
	for _, b := range bc.Bands {
		for _, s := range b.Spans {
			xs = append(xs, s.X0, s.X1)
		}
	}
	c.x = newScale(bc.X, xs, c.left, c.right, true)
	// No y scale: the rows are the categories.
	c.text((c.img.Bounds().Dx()-textW(bc.Title))/2, 12, bc.Title, black)
	for i, t := range c.x.ticks {
		px := int(math.Round(c.x.px(t)))
		c.vline(px, c.top, c.bott, light)
		c.vline(px, c.bott, c.bott+5, black)
		s := c.x.tickText[i]
		c.text(px-textW(s)/2, c.bott+8, s, black)
	}
	n := max(1, len(bc.Bands))
	rowH := float64(c.bott-c.top) / float64(n)
	for i, b := range bc.Bands {
		y0 := c.top + int(math.Round(float64(i)*rowH))
		y1 := c.top + int(math.Round(float64(i+1)*rowH))
		gap := 0
		if y1-y0 > 4 {
			gap = 1
		}
		c.text(c.left-8-textW(b.Label), (y0+y1)/2-lineH/2, b.Label, black)
		for _, s := range b.Spans {
			if s.Colour == Empty {
				continue
			}
			x0, x1 := int(math.Round(c.x.px(s.X0))), int(math.Round(c.x.px(s.X1)))
			x0, x1 = max(x0, c.left+1), min(x1, c.right)
			if x1 <= x0 {
				x1 = x0 + 1
			}
			var col color.Color = black
			if s.Colour > 0 {
				col = colour(s.Colour, 0)
			}
			c.rect(x0, y0+gap, x1, y1-gap, col)
		}
	}
	c.hline(c.left, c.right, c.bott, black)
	c.vline(c.left, c.top, c.bott, black)
	if bc.X.Label != "" {
		c.text((c.left+c.right-textW(bc.X.Label))/2, c.bott+30, bc.X.Label, black)
	}
	c.marks(bc.Marks)
	cols := make([]color.RGBA, len(bc.Legend))
	for i := range bc.Legend {
		cols[i] = colour(i+1, 0)
	}
	c.legendRow(bc.Legend, cols)
	return c.img
}

// marks draws dashed grey vertical lines with their labels at the top
// of the plot area.
func (c *canvas) marks(ms []Mark) {
	for _, m := range ms {
		px := int(math.Round(c.x.px(m.X)))
		if px < c.left || px > c.right {
			continue
		}
		for y := c.top; y <= c.bott; y++ {
			if (y/4)%2 == 0 {
				c.img.Set(px, y, grey)
			}
		}
		if m.Label != "" {
			c.rect(px+2, c.top+1, px+4+textW(m.Label), c.top+lineH+1, white)
			c.text(px+3, c.top+1, m.Label, grey)
		}
	}
}

// legendRow draws the names with their colours in one row under the
// x axis label, so that no band is hidden behind a legend box.
func (c *canvas) legendRow(names []string, cols []color.RGBA) {
	x, y := c.left, c.bott+46
	for i, n := range names {
		c.rect(x, y+5, x+20, y+9, cols[i])
		c.text(x+26, y, n, black)
		x += 26 + textW(n) + 18
	}
}

// Stack lays images out top to bottom, each at its own height (panels
// that share an x axis).
func Stack(imgs []image.Image) *image.RGBA {
	w, h := 0, 0
	for _, im := range imgs {
		w, h = max(w, im.Bounds().Dx()), h+im.Bounds().Dy()
	}
	out := image.NewRGBA(image.Rect(0, 0, max(1, w), max(1, h)))
	draw.Draw(out, out.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	y := 0
	for _, im := range imgs {
		draw.Draw(out, im.Bounds().Sub(im.Bounds().Min).Add(image.Pt(0, y)), im, im.Bounds().Min, draw.Src)
		y += im.Bounds().Dy()
	}
	return out
}
