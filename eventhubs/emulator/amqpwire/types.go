package amqpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Type codes (constructors) of the AMQP 1.0 type system, part 1.6 of the spec.
const (
	codeDescribed  = 0x00
	codeNull       = 0x40
	codeBool       = 0x56
	codeTrue       = 0x41
	codeFalse      = 0x42
	codeUbyte      = 0x50
	codeUshort     = 0x60
	codeUint       = 0x70
	codeSmallUint  = 0x52
	codeUint0      = 0x43
	codeUlong      = 0x80
	codeSmallUlong = 0x53
	codeUlong0     = 0x44
	codeByte       = 0x51
	codeShort      = 0x61
	codeInt        = 0x71
	codeSmallInt   = 0x54
	codeLong       = 0x81
	codeSmallLong  = 0x55
	codeFloat      = 0x72
	codeDouble     = 0x82
	codeDecimal32  = 0x74
	codeDecimal64  = 0x84
	codeDecimal128 = 0x94
	codeChar       = 0x73
	codeTimestamp  = 0x83
	codeUUID       = 0x98
	codeVbin8      = 0xa0
	codeVbin32     = 0xb0
	codeStr8       = 0xa1
	codeStr32      = 0xb1
	codeSym8       = 0xa3
	codeSym32      = 0xb3
	codeList0      = 0x45
	codeList8      = 0xc0
	codeList32     = 0xd0
	codeMap8       = 0xc1
	codeMap32      = 0xd1
	codeArray8     = 0xe0
	codeArray32    = 0xf0
)

// ErrDecode is wrapped by every decoding error (amqp:decode-error on the wire).
var ErrDecode = errors.New("amqp decode error")

func decodeErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDecode, fmt.Sprintf(format, args...))
}

// Symbol is an AMQP symbol (ASCII), distinct from string on the wire.
type Symbol string

// UUID is an AMQP uuid.
type UUID [16]byte

// Char is an AMQP char (a UTF-32 code point).
type Char rune

// Decimal32, Decimal64 and Decimal128 are kept as their raw IEEE 754 bytes.
type (
	Decimal32  [4]byte
	Decimal64  [8]byte
	Decimal128 [16]byte
)

// Described is a described value. Descriptor is a uint64 or a Symbol.
type Described struct {
	Descriptor any
	Value      any
}

// List is an AMQP list (a sequence of polymorphic values).
type List []any

// Array is an AMQP array: every element has the same type. Elements of a described array are *Described
// with the same descriptor.
type Array []any

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key   any
	Value any
}

// Map is an AMQP map, in wire order. (Keys may be binaries or lists, so a Go map does not fit.)
type Map []MapEntry

// Get returns the value under a string or symbol key.
func (m Map) Get(key string) (any, bool) {
	for _, e := range m {
		switch k := e.Key.(type) {
		case string:
			if k == key {
				return e.Value, true
			}
		case Symbol:
			if string(k) == key {
				return e.Value, true
			}
		}
	}
	return nil, false
}

// maxDepth bounds the nesting of compound values so hostile input cannot exhaust the stack.
const maxDepth = 100

// maxZeroWidthArray bounds arrays whose elements take no bytes.
const maxZeroWidthArray = 1 << 16

// Reader decodes AMQP values from a byte slice. Errors are sticky: after the first one every read returns a
// zero value and Err reports it.
type Reader struct {
	b     []byte
	err   error
	depth int
}

// NewReader returns a reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset points the reader at b and clears its error.
func (r *Reader) Reset(b []byte) { r.b, r.err, r.depth = b, nil, 0 }

// Err is the first error met.
func (r *Reader) Err() error { return r.err }

// Rest is the undecoded input.
func (r *Reader) Rest() []byte { return r.b }

// Len is the number of undecoded bytes.
func (r *Reader) Len() int { return len(r.b) }

func (r *Reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = decodeErr(format, args...)
	}
	r.b = nil
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("need %d bytes, have %d", n, len(r.b))
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *Reader) u8() byte {
	p := r.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *Reader) u16() uint16 {
	p := r.take(2)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (r *Reader) u32() uint32 {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (r *Reader) u64() uint64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

// peek returns the next constructor byte without consuming it (0xff at the end).
func (r *Reader) peek() byte {
	if r.err != nil || len(r.b) == 0 {
		return 0xff
	}
	return r.b[0]
}

// ReadAny decodes the next value of any type.
// Decoded Go types: nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float32, float64,
// Decimal32/64/128, Char, time.Time, UUID, []byte (a copy), string, Symbol, *Described, List, Map, Array.
func (r *Reader) ReadAny() any {
	if r.err != nil {
		return nil
	}
	code := r.u8()
	if r.err != nil {
		return nil
	}
	return r.readWith(code)
}

// readWith decodes a value whose constructor byte has already been consumed.
func (r *Reader) readWith(code byte) any {
	switch code {
	case codeDescribed:
		r.depth++
		if r.depth > maxDepth {
			r.fail("values nested too deeply")
			return nil
		}
		d := &Described{Descriptor: r.ReadAny()}
		d.Value = r.ReadAny()
		r.depth--
		return d
	case codeNull:
		return nil
	case codeTrue:
		return true
	case codeFalse:
		return false
	case codeBool:
		switch r.u8() {
		case 0:
			return false
		case 1:
			return true
		default:
			r.fail("bad boolean")
			return nil
		}
	case codeUbyte:
		return r.u8()
	case codeUshort:
		return r.u16()
	case codeUint:
		return r.u32()
	case codeSmallUint:
		return uint32(r.u8())
	case codeUint0:
		return uint32(0)
	case codeUlong:
		return r.u64()
	case codeSmallUlong:
		return uint64(r.u8())
	case codeUlong0:
		return uint64(0)
	case codeByte:
		return int8(r.u8())
	case codeShort:
		return int16(r.u16())
	case codeInt:
		return int32(r.u32())
	case codeSmallInt:
		return int32(int8(r.u8()))
	case codeLong:
		return int64(r.u64())
	case codeSmallLong:
		return int64(int8(r.u8()))
	case codeFloat:
		return math.Float32frombits(r.u32())
	case codeDouble:
		return math.Float64frombits(r.u64())
	case codeDecimal32:
		var d Decimal32
		copy(d[:], r.take(4))
		return d
	case codeDecimal64:
		var d Decimal64
		copy(d[:], r.take(8))
		return d
	case codeDecimal128:
		var d Decimal128
		copy(d[:], r.take(16))
		return d
	case codeChar:
		return Char(r.u32())
	case codeTimestamp:
		return time.UnixMilli(int64(r.u64())).UTC()
	case codeUUID:
		var u UUID
		copy(u[:], r.take(16))
		return u
	case codeVbin8:
		return append([]byte{}, r.take(int(r.u8()))...)
	case codeVbin32:
		return append([]byte{}, r.take(r.size32())...)
	case codeStr8:
		return string(r.take(int(r.u8())))
	case codeStr32:
		return string(r.take(r.size32()))
	case codeSym8:
		return Symbol(r.take(int(r.u8())))
	case codeSym32:
		return Symbol(r.take(r.size32()))
	case codeList0, codeList8, codeList32:
		return r.readList(code)
	case codeMap8, codeMap32:
		return r.readMap(code)
	case codeArray8, codeArray32:
		return r.readArray(code)
	}
	r.fail("unknown constructor 0x%02x", code)
	return nil
}

func (r *Reader) size32() int {
	n := r.u32()
	if uint64(n) > uint64(len(r.b)) {
		r.fail("length %d exceeds the %d bytes left", n, len(r.b))
		return 0
	}
	return int(n)
}

// compound reads the size and count of a list/map/array and returns a reader limited to its bytes.
func (r *Reader) compound(code byte) (sub Reader, count int) {
	var size int
	switch code {
	case codeList0:
		return Reader{depth: r.depth + 1}, 0
	case codeList8, codeMap8, codeArray8:
		size = int(r.u8())
		if size < 1 {
			r.fail("compound of size 0")
			return Reader{}, 0
		}
		body := r.take(size)
		if r.err != nil {
			return Reader{}, 0
		}
		count = int(body[0])
		sub = Reader{b: body[1:], depth: r.depth + 1}
	default:
		size = int(r.u32())
		if size < 4 {
			r.fail("compound of size %d", size)
			return Reader{}, 0
		}
		body := r.take(size)
		if r.err != nil {
			return Reader{}, 0
		}
		count = int(binary.BigEndian.Uint32(body))
		sub = Reader{b: body[4:], depth: r.depth + 1}
	}
	if sub.depth > maxDepth {
		r.fail("values nested too deeply")
		return Reader{}, 0
	}
	return sub, count
}

func (r *Reader) readList(code byte) any {
	sub, count := r.compound(code)
	if r.err != nil {
		return nil
	}
	if count > len(sub.b) {
		r.fail("list count %d exceeds its %d bytes", count, len(sub.b))
		return nil
	}
	l := make(List, count)
	for i := range l {
		l[i] = sub.ReadAny()
	}
	if sub.err != nil {
		r.fail("list: %v", sub.err)
		return nil
	}
	return l
}

func (r *Reader) readMap(code byte) any {
	sub, count := r.compound(code)
	if r.err != nil {
		return nil
	}
	if count%2 != 0 || count > len(sub.b) {
		r.fail("bad map count %d", count)
		return nil
	}
	m := make(Map, count/2)
	for i := range m {
		m[i].Key = sub.ReadAny()
		m[i].Value = sub.ReadAny()
	}
	if sub.err != nil {
		r.fail("map: %v", sub.err)
		return nil
	}
	return m
}

func (r *Reader) readArray(code byte) any {
	sub, count := r.compound(code)
	if r.err != nil {
		return nil
	}
	elem := sub.u8()
	var desc any
	if elem == codeDescribed {
		desc = sub.ReadAny()
		elem = sub.u8()
		if elem == codeDescribed {
			sub.fail("nested described array constructor")
		}
	}
	if sub.err != nil {
		r.fail("array: %v", sub.err)
		return nil
	}
	// Every element takes at least one byte, except for the zero-width constructors (null, true, false,
	// uint0, ulong0, list0), which get a fixed bound: a small input must not allocate a huge array.
	switch elem {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0, codeList0:
		if count > maxZeroWidthArray {
			r.fail("array of %d zero-width elements", count)
			return nil
		}
	default:
		if count > len(sub.b) {
			r.fail("array count %d exceeds its %d bytes", count, len(sub.b))
			return nil
		}
	}
	a := make(Array, count)
	for i := range a {
		v := sub.readWith(elem)
		if desc != nil {
			v = &Described{Descriptor: desc, Value: v}
		}
		a[i] = v
		if sub.err != nil {
			break
		}
	}
	if sub.err != nil {
		r.fail("array: %v", sub.err)
		return nil
	}
	return a
}
