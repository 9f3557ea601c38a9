package faster

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestFaultDeviceConformance(t *testing.T) {
	devTestConformance(t, NewFaultDevice(NewMemoryDevice("mem", 512, 4096)))
}

func TestFaultDeviceFailures(t *testing.T) {
	d := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
	boom := errors.New("boom")
	devTestWrite(t, d, 0, devTestPattern(1, 512)) // not counted by later rules

	d.FailAt(FaultWrite, 2, boom)
	devTestWrite(t, d, 512, devTestPattern(2, 512))
	if err := devWait(d.WriteAsync, 1024, devTestPattern(3, 512)); !errors.Is(err, boom) {
		t.Fatalf("second write: %v, want boom", err)
	}
	devTestWrite(t, d, 1536, devTestPattern(4, 512))
	if got := devTestRead(t, d, 1024, 512); !bytes.Equal(got, make([]byte, 512)) {
		t.Error("a failed write wrote data")
	}

	d.FailFrom(FaultRead, 2, nil)
	devTestRead(t, d, 0, 512)
	for range 3 {
		if err := devWait(d.ReadAsync, 0, make([]byte, 512)); !errors.Is(err, ErrInjectedFault) {
			t.Fatalf("read: %v, want ErrInjectedFault", err)
		}
	}
	d.FailAt(FaultFlush, 1, boom)
	if err := d.Flush(); !errors.Is(err, boom) {
		t.Fatalf("flush: %v", err)
	}
	if err := d.Flush(); err != nil {
		t.Fatalf("second flush: %v", err)
	}
	if got := d.Count(FaultWrite); got != 4 {
		t.Errorf("Count(FaultWrite) = %d, want 4", got)
	}
	d.ClearFaults()
	if got := devTestRead(t, d, 0, 512); !bytes.Equal(got, devTestPattern(1, 512)) {
		t.Error("read after ClearFaults differs")
	}
}

func TestFaultDeviceDelay(t *testing.T) {
	d := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
	d.SetDelay(FaultWrite, 30*time.Millisecond)
	start := time.Now()
	returned := make(chan struct{})
	done := make(chan error, 1)
	d.WriteAsync(0, make([]byte, 512), func(err error) { <-returned; done <- err })
	if time.Since(start) > 20*time.Millisecond {
		t.Error("WriteAsync blocked")
	}
	close(returned)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("delayed write took %v", el)
	}
	d.SetDelay(FaultWrite, 0)
}

func TestFaultDeviceTear(t *testing.T) {
	boom := errors.New("power")
	for _, report := range []error{boom, nil} {
		d := NewFaultDevice(NewMemoryDevice("mem", 512, 4096))
		d.TearAt(1, 2, report)
		p := devTestPattern(9, 2048)
		err := devWait(d.WriteAsync, 0, p)
		if report != nil && !errors.Is(err, boom) || report == nil && err != nil {
			t.Fatalf("torn write reported %v, configured %v", err, report)
		}
		got := devTestRead(t, d, 0, 2048)
		if !bytes.Equal(got[:1024], p[:1024]) || !bytes.Equal(got[1024:], make([]byte, 1024)) {
			t.Fatal("torn write did not write exactly its first two sectors")
		}
	}
}

func TestFaultDeviceCrash(t *testing.T) {
	for _, inner := range []struct {
		name string
		dev  func(t *testing.T) Device
	}{
		{"memory", func(*testing.T) Device { return NewMemoryDevice("mem", 512, 4096) }},
		{"file", func(t *testing.T) Device {
			d, err := NewFileDevice(t.TempDir(), "seg", 512, 4096)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
	} {
		t.Run(inner.name, func(t *testing.T) {
			d := NewFaultDevice(inner.dev(t))
			a := devTestPattern(1, 1024)
			devTestWrite(t, d, 0, a)
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
			// Unflushed: an overwrite of flushed data, new data in a new
			// segment, and two overlapping writes.
			devTestWrite(t, d, 512, devTestPattern(2, 512))
			devTestWrite(t, d, 4096, devTestPattern(3, 1024))
			devTestWrite(t, d, 4096+512, devTestPattern(4, 1024))
			if err := d.Crash(); err != nil {
				t.Fatal(err)
			}
			if err := devWait(d.ReadAsync, 0, make([]byte, 512)); !errors.Is(err, ErrDeviceCrashed) {
				t.Fatalf("read while crashed: %v", err)
			}
			if err := d.Flush(); !errors.Is(err, ErrDeviceCrashed) {
				t.Fatalf("flush while crashed: %v", err)
			}
			d.Restart()
			if got := devTestRead(t, d, 0, 1024); !bytes.Equal(got, a) {
				t.Error("flushed data not restored")
			}
			if got := devTestRead(t, d, 4096, 2048); !bytes.Equal(got, make([]byte, 2048)) {
				t.Error("unflushed writes survived the crash")
			}
			// Flushed writes survive a later crash.
			b := devTestPattern(5, 512)
			devTestWrite(t, d, 4096, b)
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
			devTestWrite(t, d, 4096, devTestPattern(6, 512))
			if err := d.Crash(); err != nil {
				t.Fatal(err)
			}
			d.Restart()
			if got := devTestRead(t, d, 4096, 512); !bytes.Equal(got, b) {
				t.Error("the flushed write was not what survived")
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
