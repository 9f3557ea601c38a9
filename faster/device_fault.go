package faster

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrInjectedFault is the error of an injected failure programmed with a
// nil error.
var ErrInjectedFault = errors.New("faster: injected fault")

// ErrDeviceCrashed is returned by every operation of a FaultDevice between
// Crash and Restart.
var ErrDeviceCrashed = errors.New("faster: device crashed")

// FaultOp selects the kind of operation a fault applies to.
type FaultOp int

const (
	FaultWrite FaultOp = iota
	FaultRead
	FaultFlush
	faultOps
)

func (op FaultOp) String() string {
	switch op {
	case FaultWrite:
		return "write"
	case FaultRead:
		return "read"
	case FaultFlush:
		return "flush"
	}
	return fmt.Sprintf("FaultOp(%d)", int(op))
}

// FaultDevice wraps a Device and injects faults, for tests:
//
//   - FailAt / FailFrom: the Nth operation of a kind (counted from the call,
//     starting at 1) fails with the given error, or it and every later one;
//     a failed operation does nothing.
//   - TearAt: the Nth write writes only its first k sectors and then reports
//     the given error (nil: reports success, as a lying disk would).
//   - SetDelay: every operation of a kind waits before running.
//   - HoldWrites, HoldReads: writes (reads) wait until the hold is
//     released (Crash and Close wait for them meanwhile).
//   - Crash: drops every write not covered by a successful Flush (the inner
//     device gets its previous content back) and fails every operation
//     with ErrDeviceCrashed until Restart.
//
// To be able to drop writes, FaultDevice reads the old content of every
// write from the inner device before writing, and runs writes one at a
// time. It is meant for tests, not for speed.
type FaultDevice struct {
	inner Device

	wmu sync.Mutex // serializes writes, undo reads and Crash's restore

	mu      sync.Mutex
	count   [faultOps]int // operations issued, by kind
	rules   []*faultRule
	delay   [faultOps]time.Duration
	undo    []*faultUndo // writes since the last successful Flush, in order
	crashed bool
	holds   [faultOps]*Hold // if set, operations of that kind wait at it
	ops     sync.WaitGroup  // reads and writes in flight
}

// Hold stops the reads or writes of a FaultDevice until released, so that
// a test can act while an operation is known to be stuck in the device.
type Hold struct {
	blocked     chan struct{} // closed when the first write waits
	blockedOnce sync.Once
	release     chan struct{}
	releaseOnce sync.Once
}

// Blocked is closed once an operation is waiting at the hold.
func (h *Hold) Blocked() <-chan struct{} { return h.blocked }

// Release lets the held operations (and later ones) proceed.
func (h *Hold) Release() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *Hold) wait() {
	h.blockedOnce.Do(func() { close(h.blocked) })
	<-h.release
}

// HoldWrites makes every later write wait until the returned hold is
// released (Crash does not release it). Reads and flushes are not held.
func (d *FaultDevice) HoldWrites() *Hold { return d.holdOps(FaultWrite) }

// HoldReads makes every later read wait until the returned hold is
// released. Writes and flushes are not held.
func (d *FaultDevice) HoldReads() *Hold { return d.holdOps(FaultRead) }

func (d *FaultDevice) holdOps(op FaultOp) *Hold {
	h := &Hold{blocked: make(chan struct{}), release: make(chan struct{})}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holds[op] = h
	return h
}

type faultRule struct {
	op     FaultOp
	n      int  // operation number (of count[op]) it applies to
	sticky bool // and every later one
	err    error
	tear   int // writes: sectors actually written; 0 = none
	isTear bool
}

type faultUndo struct {
	addr int64
	old  []byte
	done bool // the write completed (a Flush after this covers it)
}

// NewFaultDevice wraps inner. Without programmed faults it behaves like
// inner (except that writes are serialized).
func NewFaultDevice(inner Device) *FaultDevice {
	return &FaultDevice{inner: inner}
}

// Inner returns the wrapped device.
func (d *FaultDevice) Inner() Device { return d.inner }

// FailAt makes the nth operation of kind op, counting from 1 after this
// call, fail with err (ErrInjectedFault if nil) without doing anything.
func (d *FaultDevice) FailAt(op FaultOp, n int, err error) {
	d.addRule(&faultRule{op: op, n: n, err: faultErr(err)})
}

// FailFrom makes the nth operation of kind op after this call, and every
// later one, fail with err (ErrInjectedFault if nil).
func (d *FaultDevice) FailFrom(op FaultOp, n int, err error) {
	d.addRule(&faultRule{op: op, n: n, sticky: true, err: faultErr(err)})
}

// TearAt makes the nth write after this call write only its first sectors
// sectors (0: nothing) and then report err; err nil reports success.
func (d *FaultDevice) TearAt(n int, sectors int, err error) {
	d.addRule(&faultRule{op: FaultWrite, n: n, err: err, tear: sectors, isTear: true})
}

// SetDelay makes every later operation of kind op wait delay before it
// runs (0 removes the delay).
func (d *FaultDevice) SetDelay(op FaultOp, delay time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delay[op] = delay
}

// ClearFaults removes every programmed failure, tear and delay, and the
// holds (operations already held stay held until released).
func (d *FaultDevice) ClearFaults() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.holds = [faultOps]*Hold{}
	d.rules = nil
	d.delay = [faultOps]time.Duration{}
}

// Count returns how many operations of kind op were issued so far.
func (d *FaultDevice) Count(op FaultOp) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count[op]
}

// Crash simulates losing power: it waits for reads and writes in flight,
// restores the content every write since the last successful Flush
// overwrote (newest first), and then fails every operation with
// ErrDeviceCrashed until Restart.
func (d *FaultDevice) Crash() error {
	d.mu.Lock()
	d.crashed = true
	d.mu.Unlock()
	d.ops.Wait()

	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	undo := d.undo
	d.undo = nil
	d.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		u := undo[i]
		if err := devWait(d.inner.WriteAsync, u.addr, u.old); err != nil {
			return fmt.Errorf("faster: fault device %q: crash: restoring %d bytes at %d: %w", d.inner.Name(), len(u.old), u.addr, err)
		}
	}
	return nil
}

// Restart ends a crash and removes every programmed fault; operations
// reach the inner device again.
func (d *FaultDevice) Restart() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crashed = false
	d.rules = nil
	d.delay = [faultOps]time.Duration{}
}

func faultErr(err error) error {
	if err == nil {
		return ErrInjectedFault
	}
	return err
}

func (d *FaultDevice) addRule(r *faultRule) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r.n += d.count[r.op]
	d.rules = append(d.rules, r)
}

// beginLocked counts an operation and returns the rule that applies to it.
func (d *FaultDevice) beginLocked(op FaultOp) (*faultRule, time.Duration) {
	d.count[op]++
	n := d.count[op]
	var hit *faultRule
	for _, r := range d.rules {
		if r.op == op && (r.n == n || r.sticky && n > r.n) {
			hit = r
		}
	}
	return hit, d.delay[op]
}

// Name implements Device.
func (d *FaultDevice) Name() string { return d.inner.Name() }

// SectorSize implements Device.
func (d *FaultDevice) SectorSize() int { return d.inner.SectorSize() }

// SegmentSize implements Device.
func (d *FaultDevice) SegmentSize() int64 { return d.inner.SegmentSize() }

// SegmentName implements Device.
func (d *FaultDevice) SegmentName(addr int64) string { return d.inner.SegmentName(addr) }

func (d *FaultDevice) crashedErr(op string, addr int64, n int) error {
	return fmt.Errorf("faster: device %q: %s at address %d length %d: %w", d.inner.Name(), op, addr, n, ErrDeviceCrashed)
}

func (d *FaultDevice) isCrashed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.crashed
}

// WriteAsync implements Device, applying programmed faults.
func (d *FaultDevice) WriteAsync(addr int64, p []byte, done func(error)) {
	d.mu.Lock()
	if d.crashed {
		d.mu.Unlock()
		go done(d.crashedErr("write", addr, len(p)))
		return
	}
	rule, delay := d.beginLocked(FaultWrite)
	hold := d.holds[FaultWrite]
	d.ops.Add(1)
	d.mu.Unlock()
	go func() {
		if hold != nil {
			hold.wait()
		}
		done(d.write(addr, p, rule, delay))
	}()
}

func (d *FaultDevice) write(addr int64, p []byte, rule *faultRule, delay time.Duration) error {
	defer d.ops.Done()
	if delay > 0 {
		time.Sleep(delay)
	}
	if d.isCrashed() {
		return d.crashedErr("write", addr, len(p))
	}
	if rule != nil && !rule.isTear {
		return fmt.Errorf("faster: device %q: write at address %d length %d: %w", d.inner.Name(), addr, len(p), rule.err)
	}
	if err := devCheckIO(d.inner.Name(), "write", d.inner.SectorSize(), d.inner.SegmentSize(), addr, len(p)); err != nil {
		return err
	}
	data := p
	if rule != nil {
		if k := rule.tear * d.inner.SectorSize(); k < len(data) {
			data = data[:max(k, 0)]
		}
	}
	if len(data) > 0 {
		d.wmu.Lock()
		old := make([]byte, len(data))
		if err := devWait(d.inner.ReadAsync, addr, old); err != nil {
			d.wmu.Unlock()
			return err
		}
		u := &faultUndo{addr: addr, old: old}
		d.mu.Lock()
		d.undo = append(d.undo, u)
		d.mu.Unlock()
		err := devWait(d.inner.WriteAsync, addr, data)
		d.mu.Lock()
		u.done = true
		d.mu.Unlock()
		d.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	if rule != nil && rule.err != nil {
		return fmt.Errorf("faster: device %q: write at address %d length %d: torn after %d bytes: %w", d.inner.Name(), addr, len(p), len(data), rule.err)
	}
	return nil
}

// ReadAsync implements Device, applying programmed faults.
func (d *FaultDevice) ReadAsync(addr int64, p []byte, done func(error)) {
	d.mu.Lock()
	if d.crashed {
		d.mu.Unlock()
		go done(d.crashedErr("read", addr, len(p)))
		return
	}
	rule, delay := d.beginLocked(FaultRead)
	hold := d.holds[FaultRead]
	d.ops.Add(1)
	d.mu.Unlock()
	go func() {
		if hold != nil {
			hold.wait()
		}
		done(d.read(addr, p, rule, delay))
	}()
}

func (d *FaultDevice) read(addr int64, p []byte, rule *faultRule, delay time.Duration) error {
	defer d.ops.Done()
	if delay > 0 {
		time.Sleep(delay)
	}
	if d.isCrashed() {
		return d.crashedErr("read", addr, len(p))
	}
	if rule != nil {
		return fmt.Errorf("faster: device %q: read at address %d length %d: %w", d.inner.Name(), addr, len(p), rule.err)
	}
	return devWait(d.inner.ReadAsync, addr, p)
}

// Flush implements Device, applying programmed faults. A successful Flush
// makes the writes completed before it survive Crash.
func (d *FaultDevice) Flush() error {
	d.mu.Lock()
	if d.crashed {
		d.mu.Unlock()
		return fmt.Errorf("faster: device %q: flush: %w", d.inner.Name(), ErrDeviceCrashed)
	}
	rule, delay := d.beginLocked(FaultFlush)
	covered := make(map[*faultUndo]bool)
	for _, u := range d.undo {
		if u.done {
			covered[u] = true
		}
	}
	d.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if rule != nil {
		return fmt.Errorf("faster: device %q: flush: %w", d.inner.Name(), rule.err)
	}
	if err := d.inner.Flush(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.crashed {
		return fmt.Errorf("faster: device %q: flush: %w", d.inner.Name(), ErrDeviceCrashed)
	}
	kept := d.undo[:0]
	for _, u := range d.undo {
		if !covered[u] {
			kept = append(kept, u)
		}
	}
	clear(d.undo[len(kept):])
	d.undo = kept
	return nil
}

// RemoveSegmentsBelow implements Device. Removal is not undone by Crash,
// and Crash does not restore writes to removed segments.
func (d *FaultDevice) RemoveSegmentsBelow(addr int64) error {
	d.mu.Lock()
	if d.crashed {
		d.mu.Unlock()
		return fmt.Errorf("faster: device %q: remove segments below %d: %w", d.inner.Name(), addr, ErrDeviceCrashed)
	}
	// Writes to removed segments are not restored by Crash.
	limit := addr / d.inner.SegmentSize()
	kept := d.undo[:0]
	for _, u := range d.undo {
		if u.addr/d.inner.SegmentSize() >= limit {
			kept = append(kept, u)
		}
	}
	clear(d.undo[len(kept):])
	d.undo = kept
	d.mu.Unlock()
	return d.inner.RemoveSegmentsBelow(addr)
}

// Close implements Device: it waits for operations in flight and closes
// the inner device.
func (d *FaultDevice) Close() error {
	d.ops.Wait()
	return d.inner.Close()
}

// Preallocate implements Preallocator if the inner device does (and does
// nothing otherwise). It is not undone by Crash.
func (d *FaultDevice) Preallocate(addr int64) error {
	d.mu.Lock()
	if d.crashed {
		d.mu.Unlock()
		return fmt.Errorf("faster: device %q: preallocate at %d: %w", d.inner.Name(), addr, ErrDeviceCrashed)
	}
	d.mu.Unlock()
	if p, ok := d.inner.(Preallocator); ok {
		return p.Preallocate(addr)
	}
	return nil
}
