package faster

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// devTestWrite and devTestRead run one device call synchronously.
func devTestWrite(t *testing.T, d Device, addr int64, p []byte) {
	t.Helper()
	if err := devWait(d.WriteAsync, addr, p); err != nil {
		t.Fatalf("write at %d (%d bytes): %v", addr, len(p), err)
	}
}

func devTestRead(t *testing.T, d Device, addr int64, n int) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{0xEE}, n) // must be overwritten
	if err := devWait(d.ReadAsync, addr, p); err != nil {
		t.Fatalf("read at %d (%d bytes): %v", addr, n, err)
	}
	return p
}

func devTestPattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// devTestConformance checks the Device contract on a fresh device with
// sector 512 and segment 4096.
func devTestConformance(t *testing.T, d Device) {
	if d.SectorSize() != 512 || d.SegmentSize() != 4096 {
		t.Fatalf("geometry %d/%d", d.SectorSize(), d.SegmentSize())
	}
	t.Run("ZeroReads", func(t *testing.T) {
		for _, addr := range []int64{0, 4096 * 7, 1 << 40} {
			if got := devTestRead(t, d, addr, 1024); !bytes.Equal(got, make([]byte, 1024)) {
				t.Fatalf("never-written space at %d is not zero", addr)
			}
		}
	})
	t.Run("ReadBack", func(t *testing.T) {
		p := devTestPattern(1, 4096)
		devTestWrite(t, d, 4096, p) // a whole segment
		q := devTestPattern(2, 1024)
		devTestWrite(t, d, 8192+512, q) // the middle of another
		if got := devTestRead(t, d, 4096, 4096); !bytes.Equal(got, p) {
			t.Fatal("segment 1 read back differs")
		}
		if got := devTestRead(t, d, 8192, 2048); !bytes.Equal(got[:512], make([]byte, 512)) ||
			!bytes.Equal(got[512:1536], q) || !bytes.Equal(got[1536:], make([]byte, 512)) {
			t.Fatal("segment 2 read back differs")
		}
		// Overwrite one sector.
		r := devTestPattern(3, 512)
		devTestWrite(t, d, 4096+1024, r)
		copy(p[1024:], r)
		if got := devTestRead(t, d, 4096, 4096); !bytes.Equal(got, p) {
			t.Fatal("overwrite read back differs")
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Alignment", func(t *testing.T) {
		cases := []struct {
			addr int64
			n    int
			want string
		}{
			{100, 512, "not a multiple of the sector size"},
			{512, 100, "not a multiple of the sector size"},
			{-512, 512, "negative"},
			{4096 - 512, 1024, "crosses the segment boundary at 4096"},
			{0, 8192, "crosses the segment boundary"},
		}
		for _, c := range cases {
			for _, op := range []struct {
				name string
				f    func(int64, []byte, func(error))
			}{{"write", d.WriteAsync}, {"read", d.ReadAsync}} {
				err := devWait(op.f, c.addr, make([]byte, c.n))
				if err == nil {
					t.Fatalf("%s at %d length %d: no error", op.name, c.addr, c.n)
				}
				msg := err.Error()
				for _, want := range []string{d.Name(), op.name, fmt.Sprintf("address %d", c.addr), fmt.Sprintf("length %d", c.n), c.want} {
					if !strings.Contains(msg, want) {
						t.Errorf("error %q does not mention %q", msg, want)
					}
				}
			}
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				addr := int64(16*4096 + i*512)
				p := devTestPattern(uint64(100+i), 512)
				if err := devWait(d.WriteAsync, addr, p); err != nil {
					t.Error(err)
					return
				}
				q := make([]byte, 512)
				if err := devWait(d.ReadAsync, addr, q); err != nil || !bytes.Equal(p, q) {
					t.Errorf("read back at %d: %v", addr, err)
				}
			})
		}
		wg.Wait()
	})
	t.Run("RemoveSegments", func(t *testing.T) {
		for seg := int64(30); seg < 34; seg++ {
			devTestWrite(t, d, seg*4096, devTestPattern(uint64(seg), 512))
		}
		// 32*4096+512 is inside segment 32: 30 and 31 go, 32 stays.
		if err := d.RemoveSegmentsBelow(32*4096 + 512); err != nil {
			t.Fatal(err)
		}
		for seg := int64(30); seg < 34; seg++ {
			got := devTestRead(t, d, seg*4096, 512)
			zero := bytes.Equal(got, make([]byte, 512))
			if want := seg < 32; zero != want {
				t.Errorf("segment %d: zero=%v after removal below segment 32", seg, zero)
			}
		}
		if name := d.SegmentName(32*4096 + 512); !strings.HasSuffix(name, ".000032") {
			t.Errorf("SegmentName = %q", name)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := devWait(d.WriteAsync, 0, make([]byte, 512)); !errors.Is(err, ErrClosed) {
			t.Errorf("write after close: %v", err)
		}
		if err := devWait(d.ReadAsync, 0, make([]byte, 512)); !errors.Is(err, ErrClosed) {
			t.Errorf("read after close: %v", err)
		}
		if err := d.Flush(); !errors.Is(err, ErrClosed) {
			t.Errorf("flush after close: %v", err)
		}
	})
}

func TestMemoryDevice(t *testing.T) {
	devTestConformance(t, NewMemoryDevice("mem", 512, 4096))
}

func TestMemoryDeviceLazySegments(t *testing.T) {
	d := NewMemoryDevice("mem", 512, 4096)
	devTestRead(t, d, 4096*5, 512)
	if n := d.segmentCount(); n != 0 {
		t.Fatalf("a read allocated %d segments", n)
	}
	devTestWrite(t, d, 4096*5, make([]byte, 512))
	devTestWrite(t, d, 4096*9, make([]byte, 512))
	if n := d.segmentCount(); n != 2 {
		t.Fatalf("%d segments after writing two", n)
	}
	if err := d.RemoveSegmentsBelow(4096 * 9); err != nil {
		t.Fatal(err)
	}
	if n := d.segmentCount(); n != 1 {
		t.Fatalf("%d segments after removal", n)
	}
}

func TestMemoryDeviceBadGeometry(t *testing.T) {
	for _, g := range []struct {
		sector int
		seg    int64
	}{{0, 4096}, {512, 0}, {512, 1000}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewMemoryDevice(%d, %d) did not panic", g.sector, g.seg)
				}
			}()
			NewMemoryDevice("m", g.sector, g.seg)
		}()
	}
}
