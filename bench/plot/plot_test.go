package plot

import (
	"bytes"
	"image"
	"image/png"
	"math"
	"reflect"
	"testing"
)

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{0.7: 1, 1: 1, 1.2: 2, 2: 2, 3: 5, 7: 10, 13: 20, 450: 500, 0.013: 0.02, 0: 1} {
		if got := NiceStep(raw); math.Abs(got-want) > want*1e-9 {
			t.Errorf("NiceStep(%v) = %v, want %v", raw, got, want)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		n      int
		want   []float64
	}{
		{0, 7429, 6, []float64{0, 2000, 4000, 6000, 8000}},
		{0, 1, 6, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{0, 0.1, 6, []float64{0, 0.02, 0.04, 0.06, 0.08, 0.1}},
		{3, 3, 6, []float64{3, 3.2, 3.4, 3.6, 3.8, 4}},
		{-5, 12, 4, []float64{-10, 0, 10, 20}},
	} {
		got := NiceTicks(c.lo, c.hi, c.n)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("NiceTicks(%v, %v, %d) = %v, want %v", c.lo, c.hi, c.n, got, c.want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	if got, want := LogTicks(0.27, 35), []float64{0.1, 1, 10, 100}; !reflect.DeepEqual(got, want) {
		t.Errorf("three decades: %v, want %v", got, want)
	}
	if got, want := LogTicks(15, 80), []float64{10, 20, 50, 100}; !reflect.DeepEqual(got, want) {
		t.Errorf("one decade: %v, want %v", got, want)
	}
	if got := LogTicks(100, 100); len(got) < 2 || got[0] > 100 || got[len(got)-1] < 100 {
		t.Errorf("one value: %v", got)
	}
}

func TestFormatTick(t *testing.T) {
	for _, c := range []struct {
		v, step float64
		want    string
	}{
		{0, 1, "0"}, {0.2, 0.2, "0.2"}, {0.04, 0.02, "0.04"}, {2000, 2000, "2k"}, {15000, 5000, "15k"},
		{1400, 200, "1400"}, {2500000, 500000, "2.5M"}, {7, 1, "7"}, {1000, 1000, "1k"}, {1e5, 1e5, "100k"}, {1e6, 1e6, "1M"},
	} {
		if got := FormatTick(c.v, c.step); got != c.want {
			t.Errorf("FormatTick(%v, %v) = %q, want %q", c.v, c.step, got, c.want)
		}
	}
}

func TestWrap(t *testing.T) {
	if got, want := wrap("baseline-azurite-1s", 100), []string{"baseline-", "azurite-1s"}; !reflect.DeepEqual(got, want) {
		t.Errorf("wrap = %q, want %q", got, want)
	}
	if got := wrap("short", 100); !reflect.DeepEqual(got, []string{"short"}) {
		t.Errorf("wrap short = %q", got)
	}
}

// colours counts the distinct colours of an image, and the pixels of c.
func colours(img image.Image, c [4]uint32) (distinct, of int) {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			k := [4]uint32{r, g, bl, a}
			seen[k] = true
			if k == c {
				of++
			}
		}
	}
	return len(seen), of
}

func rgba(i int) [4]uint32 {
	r, g, b, a := Palette[i].RGBA()
	return [4]uint32{r, g, b, a}
}

// The charts draw their series in their colours and survive a PNG round
// trip.
func TestRender(t *testing.T) {
	lc := &LineChart{Title: "t", X: Axis{Label: "ms", Log: true}, Y: Axis{Label: "fraction", Min: 0, Max: 1},
		Series: []Series{{Name: "a", X: []float64{1, 10, 100}, Y: []float64{0.1, 0.5, 1}, Step: true}, {Name: "b", X: []float64{2, 20}, Y: []float64{0.2, 1}}}}
	bc := &BarChart{Title: "t", Y: Axis{Label: "per s", Log: true}, Bars: []Bar{{Label: "x", Value: 5000}, {Label: "y", Value: 20}, {Label: "z", Missing: "n/a"}}}
	for name, img := range map[string]image.Image{"line": lc.Render(), "bar": bc.Render()} {
		var buf bytes.Buffer
		if err := WritePNG(&buf, img); err != nil {
			t.Fatal(err)
		}
		dec, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n, a := colours(dec, rgba(0))
		_, b := colours(dec, rgba(1))
		if n < 5 || a < 50 || b < 50 {
			t.Errorf("%s: %d colours, %d and %d pixels of the first two series", name, n, a, b)
		}
	}
	// A bigger value makes a taller bar.
	_, small := colours(bc.Render(), rgba(1))
	bc.Bars[1].Value = 500
	if _, big := colours(bc.Render(), rgba(1)); big <= small {
		t.Errorf("bar of 500: %d pixels, of 20: %d", big, small)
	}
}
