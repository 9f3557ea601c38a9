package blobstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/faster"
)

func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func mustWrite(t testing.TB, d faster.Device, addr int64, p []byte) {
	t.Helper()
	ch := make(chan error, 1)
	d.WriteAsync(addr, p, func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatalf("write at %d (%d bytes): %v", addr, len(p), err)
	}
}

func mustRead(t testing.TB, d faster.Device, addr int64, n int) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{0xEE}, n) // must be overwritten
	ch := make(chan error, 1)
	d.ReadAsync(addr, p, func(err error) { ch <- err })
	if err := <-ch; err != nil {
		t.Fatalf("read at %d (%d bytes): %v", addr, n, err)
	}
	return p
}

func wait(op func(int64, []byte, func(error)), addr int64, p []byte) error {
	ch := make(chan error, 1)
	op(addr, p, func(err error) { ch <- err })
	return <-ch
}

// blobNames lists the blobs of c under prefix.
func blobNames(t testing.TB, c *blobstore.Container, prefix string) []string {
	t.Helper()
	var names []string
	pager := c.Client().NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Segment.BlobItems {
			names = append(names, *it.Name)
		}
	}
	return names
}

// TestPageBlobDeviceConformance runs the checks of the faster package's
// device conformance test (sector 512, segment 4096) on page blobs.
func TestPageBlobDeviceConformance(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	for _, leased := range []bool{false, true} {
		t.Run(fmt.Sprint("leased=", leased), func(t *testing.T) {
			opts := blobstore.DeviceOptions{SegmentSize: 4096}
			prefix := fmt.Sprintf("l%v/dev", leased)
			if leased {
				l, err := blobstore.AcquireLease(context.Background(), c, "l/commit-lease", blobstore.LeaseOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
				opts.Lease = l
			}
			d, err := blobstore.NewPageBlobDevice(c, prefix, opts)
			if err != nil {
				t.Fatal(err)
			}
			deviceConformance(t, c, d)
		})
	}
}

func deviceConformance(t *testing.T, c *blobstore.Container, d *blobstore.PageBlobDevice) {
	if d.SectorSize() != 512 || d.SegmentSize() != 4096 {
		t.Fatalf("geometry %d/%d", d.SectorSize(), d.SegmentSize())
	}
	t.Run("ZeroReads", func(t *testing.T) {
		for _, addr := range []int64{0, 4096 * 7, 1 << 40} {
			if got := mustRead(t, d, addr, 1024); !bytes.Equal(got, make([]byte, 1024)) {
				t.Fatalf("never-written space at %d is not zero", addr)
			}
		}
		if names := blobNames(t, c, d.SegmentName(0)); len(names) != 0 {
			t.Fatalf("reads created blobs %q", names)
		}
	})
	t.Run("ReadBack", func(t *testing.T) {
		p := pattern(1, 4096)
		mustWrite(t, d, 4096, p) // a whole segment
		q := pattern(2, 1024)
		mustWrite(t, d, 8192+512, q) // the middle of another
		if got := mustRead(t, d, 4096, 4096); !bytes.Equal(got, p) {
			t.Fatal("segment 1 read back differs")
		}
		if got := mustRead(t, d, 8192, 2048); !bytes.Equal(got[:512], make([]byte, 512)) ||
			!bytes.Equal(got[512:1536], q) || !bytes.Equal(got[1536:], make([]byte, 512)) {
			t.Fatal("segment 2 read back differs")
		}
		r := pattern(3, 512)
		mustWrite(t, d, 4096+1024, r)
		copy(p[1024:], r)
		if got := mustRead(t, d, 4096, 4096); !bytes.Equal(got, p) {
			t.Fatal("overwrite read back differs")
		}
		if err := d.Flush(); err != nil {
			t.Fatal(err)
		}
		// Segment blobs are created on first write, named <prefix>.NNNNNN.
		prefix := strings.TrimSuffix(d.SegmentName(0), "000000")
		if got, want := blobNames(t, c, prefix), []string{d.SegmentName(4096), d.SegmentName(8192)}; !slices.Equal(got, want) {
			t.Fatalf("blobs %q; want %q", got, want)
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
				err := wait(op.f, c.addr, make([]byte, c.n))
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
				p := pattern(uint64(100+i), 512)
				if err := wait(d.WriteAsync, addr, p); err != nil {
					t.Error(err)
					return
				}
				q := make([]byte, 512)
				if err := wait(d.ReadAsync, addr, q); err != nil || !bytes.Equal(p, q) {
					t.Errorf("read back at %d: %v", addr, err)
				}
			})
		}
		wg.Wait()
	})
	t.Run("RemoveSegments", func(t *testing.T) {
		for seg := int64(30); seg < 34; seg++ {
			mustWrite(t, d, seg*4096, pattern(uint64(seg), 512))
		}
		if err := d.RemoveSegmentsBelow(32*4096 + 512); err != nil {
			t.Fatal(err)
		}
		for seg := int64(30); seg < 34; seg++ {
			got := mustRead(t, d, seg*4096, 512)
			zero := bytes.Equal(got, make([]byte, 512))
			if want := seg < 32; zero != want {
				t.Errorf("segment %d: zero=%v after removal below segment 32", seg, zero)
			}
		}
		if name := d.SegmentName(32*4096 + 512); !strings.HasSuffix(name, ".000032") {
			t.Errorf("SegmentName = %q", name)
		}
		// Later removals go by name from the previous limit; a segment
		// written below it again is removed too.
		mustWrite(t, d, 5*4096, pattern(5, 512))
		if err := d.RemoveSegmentsBelow(34 * 4096); err != nil {
			t.Fatal(err)
		}
		prefix := strings.TrimSuffix(d.SegmentName(0), "000000")
		if got := blobNames(t, c, prefix); len(got) != 0 {
			t.Fatalf("blobs left after removing everything: %q", got)
		}
		if err := d.RemoveSegmentsBelow(10 * 4096); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if err := wait(d.WriteAsync, 0, make([]byte, 512)); !errors.Is(err, faster.ErrClosed) {
			t.Errorf("write after close: %v", err)
		}
		if err := wait(d.ReadAsync, 0, make([]byte, 512)); !errors.Is(err, faster.ErrClosed) {
			t.Errorf("read after close: %v", err)
		}
		if err := d.Flush(); !errors.Is(err, faster.ErrClosed) {
			t.Errorf("flush after close: %v", err)
		}
		if err := d.RemoveSegmentsBelow(1 << 20); !errors.Is(err, faster.ErrClosed) {
			t.Errorf("remove after close: %v", err)
		}
	})
}

// TestPageBlobDeviceLargeWrites writes more than 4 MiB in one call (split
// into Put Page requests of at most 4 MiB) and reads it back.
func TestPageBlobDeviceLargeWrites(t *testing.T) {
	t.Parallel()
	a := blobtest.Account(t)
	c := blobtest.Container(t, a)
	l, err := blobstore.AcquireLease(context.Background(), c, "p/commit-lease", blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	d, err := blobstore.NewPageBlobDevice(c, "p/big", blobstore.DeviceOptions{SegmentSize: 16 << 20, Lease: l})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before := a.Requests()
	p := pattern(7, 9<<20+512) // 3 Put Page requests
	mustWrite(t, d, 16<<20+512, p)
	if n := a.Requests() - before; n != 4 { // Create + 3 Put Page
		t.Errorf("%d requests for a 9 MiB write; want 4", n)
	}
	if got := mustRead(t, d, 16<<20, len(p)+512); !bytes.Equal(got[:512], make([]byte, 512)) || !bytes.Equal(got[512:], p) {
		t.Fatal("large write read back differs")
	}
	// A whole segment in one call.
	q := pattern(8, 16<<20)
	mustWrite(t, d, 0, q)
	if got := mustRead(t, d, 0, len(q)); !bytes.Equal(got, q) {
		t.Fatal("whole segment read back differs")
	}
	// A second device on the same blobs (a reopened store) reads it all.
	d2, _ := blobstore.NewPageBlobDevice(c, "p/big", blobstore.DeviceOptions{SegmentSize: 16 << 20, Lease: l})
	if got := mustRead(t, d2, 16<<20+512, len(p)); !bytes.Equal(got, p) {
		t.Fatal("second device reads other data")
	}
	// A device with another geometry refuses the existing blobs.
	d3, _ := blobstore.NewPageBlobDevice(c, "p/big", blobstore.DeviceOptions{SegmentSize: 8 << 20})
	if err := wait(d3.WriteAsync, 0, make([]byte, 512)); err == nil || !strings.Contains(err.Error(), "not a page blob of the segment size 8388608") {
		t.Fatalf("geometry mismatch: %v", err)
	}
}

func TestPageBlobDeviceOptions(t *testing.T) {
	a, _ := blobstore.NewAccount("UseDevelopmentStorage=true")
	c := a.Container("c1")
	for _, o := range []struct {
		prefix string
		opts   blobstore.DeviceOptions
		want   string
	}{
		{"", blobstore.DeviceOptions{}, "invalid blob name prefix"},
		{"a/", blobstore.DeviceOptions{}, "invalid blob name prefix"},
		{"a", blobstore.DeviceOptions{SectorSize: 100}, "not a positive multiple of the page blob page"},
		{"a", blobstore.DeviceOptions{SegmentSize: 1000}, "segment size 1000 is not a positive multiple"},
	} {
		if _, err := blobstore.NewPageBlobDevice(c, o.prefix, o.opts); err == nil || !strings.Contains(err.Error(), o.want) {
			t.Errorf("NewPageBlobDevice(%q, %+v) = %v", o.prefix, o.opts, err)
		}
	}
	d, err := blobstore.NewPageBlobDevice(c, "h/p00/commit-log/commit-log", blobstore.DeviceOptions{})
	if err != nil || d.SectorSize() != 512 || d.SegmentSize() != 64<<20 || d.Name() != "c1/h/p00/commit-log/commit-log" ||
		d.SegmentName(64<<20) != "h/p00/commit-log/commit-log.000001" {
		t.Fatalf("defaults: %v %d %d %q %q", err, d.SectorSize(), d.SegmentSize(), d.Name(), d.SegmentName(64<<20))
	}
}
