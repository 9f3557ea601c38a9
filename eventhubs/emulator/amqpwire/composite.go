package amqpwire

import "fmt"

// Descriptor codes of the composite types this package knows (domain 0x00000000).
const (
	DescOpen          = 0x10
	DescBegin         = 0x11
	DescAttach        = 0x12
	DescFlow          = 0x13
	DescTransfer      = 0x14
	DescDisposition   = 0x15
	DescDetach        = 0x16
	DescEnd           = 0x17
	DescClose         = 0x18
	DescError         = 0x1d
	DescReceived      = 0x23
	DescAccepted      = 0x24
	DescRejected      = 0x25
	DescReleased      = 0x26
	DescModified      = 0x27
	DescSource        = 0x28
	DescTarget        = 0x29
	DescSASLMechs     = 0x40
	DescSASLInit      = 0x41
	DescSASLChallenge = 0x42
	DescSASLResponse  = 0x43
	DescSASLOutcome   = 0x44
)

// symbolicDescriptors maps the symbolic names of the composites to their codes.
var symbolicDescriptors = map[Symbol]uint64{
	"amqp:open:list": DescOpen, "amqp:begin:list": DescBegin, "amqp:attach:list": DescAttach,
	"amqp:flow:list": DescFlow, "amqp:transfer:list": DescTransfer, "amqp:disposition:list": DescDisposition,
	"amqp:detach:list": DescDetach, "amqp:end:list": DescEnd, "amqp:close:list": DescClose,
	"amqp:error:list": DescError, "amqp:received:list": DescReceived, "amqp:accepted:list": DescAccepted,
	"amqp:rejected:list": DescRejected, "amqp:released:list": DescReleased, "amqp:modified:list": DescModified,
	"amqp:source:list": DescSource, "amqp:target:list": DescTarget,
	"amqp:sasl-mechanisms:list": DescSASLMechs, "amqp:sasl-init:list": DescSASLInit,
	"amqp:sasl-challenge:list": DescSASLChallenge, "amqp:sasl-response:list": DescSASLResponse,
	"amqp:sasl-outcome:list": DescSASLOutcome,
}

// composite writes the fields of a described list, dropping trailing nulls.
type composite struct {
	b      []byte
	start  int // offset of the list constructor
	n      int // fields written
	keep   int // length of b after the last non-null field
	keepN  int
	encErr error
}

func beginComposite(b []byte, code uint64) composite {
	b = append(b, codeDescribed, codeSmallUlong, byte(code))
	start := len(b)
	b = append(b, codeList32, 0, 0, 0, 0, 0, 0, 0, 0)
	return composite{b: b, start: start, keep: len(b)}
}

func (c *composite) set()  { c.n++; c.keep, c.keepN = len(c.b), c.n }
func (c *composite) null() { c.b = append(c.b, codeNull); c.n++ }

func (c *composite) uint(v uint32) { c.b = AppendUint(c.b, v); c.set() }
func (c *composite) optUint(has bool, v uint32) {
	if has {
		c.uint(v)
	} else {
		c.null()
	}
}
func (c *composite) ulong(v uint64)  { c.b = AppendUlong(c.b, v); c.set() }
func (c *composite) ushort(v uint16) { c.b = AppendUshort(c.b, v); c.set() }
func (c *composite) ubyte(v uint8)   { c.b = AppendUbyte(c.b, v); c.set() }
func (c *composite) optUbyte(has bool, v uint8) {
	if has {
		c.ubyte(v)
	} else {
		c.null()
	}
}
func (c *composite) boolean(v bool) { c.b = AppendBool(c.b, v); c.set() }

// optBool writes true, or null for false (the default of the optional boolean fields).
func (c *composite) optBool(v bool) {
	if v {
		c.boolean(true)
	} else {
		c.null()
	}
}
func (c *composite) str(v string) { c.b = AppendString(c.b, v); c.set() }
func (c *composite) optStr(v string) {
	if v != "" {
		c.str(v)
	} else {
		c.null()
	}
}
func (c *composite) optSym(v Symbol) {
	if v != "" {
		c.b = AppendSymbol(c.b, v)
		c.set()
	} else {
		c.null()
	}
}
func (c *composite) optBinary(v []byte) {
	if v != nil {
		c.b = AppendBinary(c.b, v)
		c.set()
	} else {
		c.null()
	}
}
func (c *composite) symbols(v []Symbol) {
	if len(v) == 0 {
		c.null()
		return
	}
	c.b = AppendSymbols(c.b, v)
	c.set()
}
func (c *composite) fields(m map[string]any) {
	if len(m) == 0 {
		c.null()
		return
	}
	var err error
	if c.b, err = AppendFields(c.b, m); err != nil && c.encErr == nil {
		c.encErr = err
	}
	c.set()
}
func (c *composite) any(v any) {
	if v == nil {
		c.null()
		return
	}
	var err error
	if c.b, err = AppendAny(c.b, v); err != nil && c.encErr == nil {
		c.encErr = err
	}
	c.set()
}

// raw writes an already encoded value (nil = null).
func (c *composite) raw(v []byte) {
	if v == nil {
		c.null()
		return
	}
	c.b = append(c.b, v...)
	c.set()
}

func (c *composite) finish() ([]byte, error) {
	b := c.b[:c.keep]
	if c.keepN == 0 {
		b = append(b[:c.start], codeList0)
		return b, c.encErr
	}
	return finishCompound(b, c.start, c.keepN, codeList8), c.encErr
}

// fieldReader reads the fields of a described list in order; missing trailing fields read as null.
type fieldReader struct {
	r Reader
	n int
}

// readComposite reads a described list's descriptor and opens its fields.
func (r *Reader) readComposite() (code uint64, f fieldReader) {
	if r.u8() != codeDescribed {
		r.fail("expected a described type")
		return 0, f
	}
	switch d := r.ReadAny().(type) {
	case uint64:
		code = d
	case Symbol:
		c, ok := symbolicDescriptors[d]
		if !ok {
			r.fail("unknown descriptor %q", string(d))
			return 0, f
		}
		code = c
	default:
		r.fail("bad descriptor %T", d)
		return 0, f
	}
	lc := r.u8()
	if r.err != nil {
		return 0, f
	}
	switch lc {
	case codeList0, codeList8, codeList32:
	default:
		r.fail("composite 0x%x is not a list (0x%02x)", code, lc)
		return 0, f
	}
	sub, count := r.compound(lc)
	if r.err != nil {
		return 0, f
	}
	if count > len(sub.b) {
		r.fail("list count %d exceeds its %d bytes", count, len(sub.b))
		return 0, f
	}
	return code, fieldReader{r: sub, n: count}
}

// next reports whether another non-null field is present, consuming a null.
func (f *fieldReader) next() bool {
	if f.n == 0 || f.r.err != nil {
		return false
	}
	f.n--
	if f.r.peek() == codeNull {
		f.r.b = f.r.b[1:]
		return false
	}
	return true
}

// done checks that the fields decoded cleanly (extra trailing fields are skipped, as the spec allows).
func (f *fieldReader) done(r *Reader, what string) {
	for f.n > 0 && f.r.err == nil {
		f.n--
		f.r.ReadAny()
	}
	if f.r.err != nil {
		r.fail("%s: %v", what, f.r.err)
	}
}

func (f *fieldReader) uint(dst *uint32) bool {
	if !f.next() {
		return false
	}
	v := f.r.ReadAny()
	switch v := v.(type) {
	case uint32:
		*dst = v
	case uint16:
		*dst = uint32(v)
	case uint8:
		*dst = uint32(v)
	default:
		f.r.fail("expected uint, got %T", v)
		return false
	}
	return true
}

func (f *fieldReader) ulong(dst *uint64) bool {
	if !f.next() {
		return false
	}
	switch v := f.r.ReadAny().(type) {
	case uint64:
		*dst = v
	case uint32:
		*dst = uint64(v)
	case uint16:
		*dst = uint64(v)
	case uint8:
		*dst = uint64(v)
	default:
		f.r.fail("expected ulong, got %T", v)
		return false
	}
	return true
}

func (f *fieldReader) ushort(dst *uint16) bool {
	if !f.next() {
		return false
	}
	switch v := f.r.ReadAny().(type) {
	case uint16:
		*dst = v
	case uint8:
		*dst = uint16(v)
	default:
		f.r.fail("expected ushort, got %T", v)
		return false
	}
	return true
}

func (f *fieldReader) ubyte(dst *uint8) bool {
	if !f.next() {
		return false
	}
	v, ok := f.r.ReadAny().(uint8)
	if !ok {
		f.r.fail("expected ubyte")
		return false
	}
	*dst = v
	return true
}

func (f *fieldReader) boolean(dst *bool) bool {
	if !f.next() {
		return false
	}
	v, ok := f.r.ReadAny().(bool)
	if !ok {
		f.r.fail("expected boolean")
		return false
	}
	*dst = v
	return true
}

func (f *fieldReader) str(dst *string) bool {
	if !f.next() {
		return false
	}
	switch v := f.r.ReadAny().(type) {
	case string:
		*dst = v
	case Symbol:
		*dst = string(v)
	default:
		f.r.fail("expected string, got %T", v)
		return false
	}
	return true
}

func (f *fieldReader) sym(dst *Symbol) bool {
	var s string
	if !f.str(&s) {
		return false
	}
	*dst = Symbol(s)
	return true
}

// binary reads a binary without copying (the slice aliases the input).
func (f *fieldReader) binary(dst *[]byte) bool {
	if !f.next() {
		return false
	}
	switch f.r.u8() {
	case codeVbin8:
		*dst = f.r.take(int(f.r.u8()))
	case codeVbin32:
		*dst = f.r.take(f.r.size32())
	default:
		f.r.fail("expected binary")
		return false
	}
	if *dst == nil {
		*dst = []byte{}
	}
	return f.r.err == nil
}

func (f *fieldReader) symbols(dst *[]Symbol) bool {
	if !f.next() {
		return false
	}
	switch v := f.r.ReadAny().(type) {
	case Symbol:
		*dst = []Symbol{v}
	case Array:
		out := make([]Symbol, 0, len(v))
		for _, e := range v {
			s, ok := e.(Symbol)
			if !ok {
				f.r.fail("expected an array of symbols, got %T", e)
				return false
			}
			out = append(out, s)
		}
		*dst = out
	default:
		f.r.fail("expected symbols, got %T", v)
		return false
	}
	return true
}

// fields reads a map with symbol (or string) keys.
func (f *fieldReader) fields(dst *map[string]any) bool {
	if !f.next() {
		return false
	}
	m, ok := f.r.ReadAny().(Map)
	if !ok {
		f.r.fail("expected a map")
		return false
	}
	out := make(map[string]any, len(m))
	for _, e := range m {
		switch k := e.Key.(type) {
		case Symbol:
			out[string(k)] = e.Value
		case string:
			out[k] = e.Value
		default:
			f.r.fail("map key %T is not a symbol", e.Key)
			return false
		}
	}
	*dst = out
	return true
}

func (f *fieldReader) anyMap(dst *Map) bool {
	if !f.next() {
		return false
	}
	m, ok := f.r.ReadAny().(Map)
	if !ok {
		f.r.fail("expected a map")
		return false
	}
	*dst = m
	return true
}

func (f *fieldReader) any(dst *any) bool {
	if !f.next() {
		return false
	}
	*dst = f.r.ReadAny()
	return f.r.err == nil
}

// rawValue returns the encoded bytes of the next value (nil when null or absent), copied.
func (f *fieldReader) rawValue() []byte {
	if !f.next() {
		return nil
	}
	before := f.r.b
	f.r.ReadAny()
	if f.r.err != nil {
		return nil
	}
	return append([]byte(nil), before[:len(before)-len(f.r.b)]...)
}

func (f *fieldReader) errorField(dst **Error) bool {
	if !f.next() {
		return false
	}
	e := f.r.readError()
	if f.r.err != nil {
		return false
	}
	*dst = e
	return true
}

// Error is the AMQP error composite.
type Error struct {
	Condition   Symbol
	Description string
	Info        map[string]any
}

func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// Append encodes the error. Info the codec cannot encode is dropped rather than failing the frame.
func (e *Error) Append(b []byte) []byte {
	start := len(b)
	c := beginComposite(b, DescError)
	c.b = AppendSymbol(c.b, e.Condition)
	c.set()
	c.optStr(e.Description)
	c.fields(e.Info)
	out, err := c.finish()
	if err != nil && e.Info != nil {
		return (&Error{Condition: e.Condition, Description: e.Description}).Append(out[:start])
	}
	return out
}

func (r *Reader) readError() *Error {
	code, f := r.readComposite()
	if r.err != nil {
		return nil
	}
	if code != DescError {
		r.fail("expected error, got descriptor 0x%x", code)
		return nil
	}
	e := &Error{}
	if !f.sym(&e.Condition) && f.r.err == nil {
		f.r.fail("error without condition")
	}
	f.str(&e.Description)
	f.fields(&e.Info)
	f.done(r, "error")
	if r.err != nil {
		return nil
	}
	return e
}
