package amqpwire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// The Append* functions encode one value at the end of b, choosing the smallest encoding.

func AppendNull(b []byte) []byte { return append(b, codeNull) }

func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

func AppendUbyte(b []byte, v uint8) []byte { return append(b, codeUbyte, v) }
func AppendUshort(b []byte, v uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, codeUshort), v)
}

func AppendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(b, codeUint0)
	case v < 256:
		return append(b, codeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(b, codeUint), v)
}

func AppendUlong(b []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(b, codeUlong0)
	case v < 256:
		return append(b, codeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, codeUlong), v)
}

func AppendByte(b []byte, v int8) []byte { return append(b, codeByte, byte(v)) }
func AppendShort(b []byte, v int16) []byte {
	return binary.BigEndian.AppendUint16(append(b, codeShort), uint16(v))
}

func AppendInt(b []byte, v int32) []byte {
	if v >= -128 && v <= 127 {
		return append(b, codeSmallInt, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint32(append(b, codeInt), uint32(v))
}

func AppendLong(b []byte, v int64) []byte {
	if v >= -128 && v <= 127 {
		return append(b, codeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, codeLong), uint64(v))
}

func AppendFloat(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, codeFloat), math.Float32bits(v))
}

func AppendDouble(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeDouble), math.Float64bits(v))
}

func AppendTimestamp(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeTimestamp), uint64(t.UnixMilli()))
}

func AppendUUID(b []byte, u UUID) []byte { return append(append(b, codeUUID), u[:]...) }

func AppendBinary(b []byte, v []byte) []byte {
	if len(v) < 256 {
		return append(append(b, codeVbin8, byte(len(v))), v...)
	}
	return append(binary.BigEndian.AppendUint32(append(b, codeVbin32), uint32(len(v))), v...)
}

func AppendString(b []byte, v string) []byte {
	if len(v) < 256 {
		return append(append(b, codeStr8, byte(len(v))), v...)
	}
	return append(binary.BigEndian.AppendUint32(append(b, codeStr32), uint32(len(v))), v...)
}

func AppendSymbol(b []byte, v Symbol) []byte {
	if len(v) < 256 {
		return append(append(b, codeSym8, byte(len(v))), v...)
	}
	return append(binary.BigEndian.AppendUint32(append(b, codeSym32), uint32(len(v))), v...)
}

// AppendSymbols encodes a multiple-valued symbol field: null when empty, else an array of symbols.
func AppendSymbols(b []byte, v []Symbol) []byte {
	if len(v) == 0 {
		return append(b, codeNull)
	}
	start := len(b)
	b = append(b, codeArray32, 0, 0, 0, 0, 0, 0, 0, 0, codeSym32)
	for _, s := range v {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return finishCompound(b, start, len(v), codeArray8)
}

// finishCompound patches the size and count of a list/map/array opened at start with a 32-bit header
// (code, size, count) and shrinks it to the 8-bit form when it fits.
func finishCompound(b []byte, start, count int, code8 byte) []byte {
	size := len(b) - start - 5 // bytes after the size field
	if size+1-4 < 256 && count < 256 {
		// 8-bit form: code, size (count byte + elements), count.
		elems := size - 4
		b[start] = code8
		b[start+1] = byte(elems + 1)
		b[start+2] = byte(count)
		copy(b[start+3:], b[start+9:])
		return b[:len(b)-6]
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(size))
	binary.BigEndian.PutUint32(b[start+5:], uint32(count))
	return b
}

// openCompound starts a list/map/array with a 32-bit header to be patched by finishCompound.
func openCompound(b []byte, code32 byte) ([]byte, int) {
	return append(b, code32, 0, 0, 0, 0, 0, 0, 0, 0), len(b)
}

// AppendList encodes a list.
func AppendList(b []byte, l List) ([]byte, error) {
	if len(l) == 0 {
		return append(b, codeList0), nil
	}
	b, start := openCompound(b, codeList32)
	var err error
	for _, v := range l {
		if b, err = AppendAny(b, v); err != nil {
			return b, err
		}
	}
	return finishCompound(b, start, len(l), codeList8), nil
}

// AppendMap encodes a map.
func AppendMap(b []byte, m Map) ([]byte, error) {
	b, start := openCompound(b, codeMap32)
	var err error
	for _, e := range m {
		if b, err = AppendAny(b, e.Key); err != nil {
			return b, err
		}
		if b, err = AppendAny(b, e.Value); err != nil {
			return b, err
		}
	}
	return finishCompound(b, start, 2*len(m), codeMap8), nil
}

// AppendArray encodes an array. All elements must have the same Go type (and, if described, the same
// descriptor); the element encoding is the widest form of that type so that every element fits.
func AppendArray(b []byte, a Array) ([]byte, error) {
	b, start := openCompound(b, codeArray32)
	if len(a) == 0 {
		// An empty array still needs an element constructor; null is the natural one.
		b = append(b, codeNull)
		return finishCompound(b, start, 0, codeArray8), nil
	}
	var desc any
	first := a[0]
	if d, ok := first.(*Described); ok {
		desc = d.Descriptor
		b = append(b, codeDescribed)
		var err error
		if b, err = AppendAny(b, desc); err != nil {
			return b, err
		}
		first = d.Value
	}
	code, err := arrayCode(first)
	if err != nil {
		return b, err
	}
	b = append(b, code)
	for i, v := range a {
		if desc != nil {
			d, ok := v.(*Described)
			if !ok {
				return b, fmt.Errorf("array element %d is %T, not described", i, v)
			}
			v = d.Value
		}
		if c, err := arrayCode(v); err != nil || c != code {
			return b, fmt.Errorf("array element %d (%T) differs from the first", i, v)
		}
		if b, err = appendElement(b, v); err != nil {
			return b, err
		}
	}
	return finishCompound(b, start, len(a), codeArray8), nil
}

func arrayCode(v any) (byte, error) {
	switch v.(type) {
	case nil:
		return codeNull, nil
	case bool:
		return codeBool, nil
	case uint8:
		return codeUbyte, nil
	case uint16:
		return codeUshort, nil
	case uint32:
		return codeUint, nil
	case uint64:
		return codeUlong, nil
	case int8:
		return codeByte, nil
	case int16:
		return codeShort, nil
	case int32:
		return codeInt, nil
	case int64:
		return codeLong, nil
	case float32:
		return codeFloat, nil
	case float64:
		return codeDouble, nil
	case Decimal32:
		return codeDecimal32, nil
	case Decimal64:
		return codeDecimal64, nil
	case Decimal128:
		return codeDecimal128, nil
	case Char:
		return codeChar, nil
	case time.Time:
		return codeTimestamp, nil
	case UUID:
		return codeUUID, nil
	case []byte:
		return codeVbin32, nil
	case string:
		return codeStr32, nil
	case Symbol:
		return codeSym32, nil
	case List:
		return codeList32, nil
	case Map:
		return codeMap32, nil
	case Array:
		return codeArray32, nil
	}
	return 0, fmt.Errorf("amqp: cannot encode %T in an array", v)
}

// appendElement encodes v without its constructor, in the form arrayCode chose.
func appendElement(b []byte, v any) ([]byte, error) {
	// Encode with a constructor into the tail, then drop or widen it.
	switch v := v.(type) {
	case nil:
		return b, nil
	case bool:
		if v {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case uint8:
		return append(b, v), nil
	case uint16:
		return binary.BigEndian.AppendUint16(b, v), nil
	case uint32:
		return binary.BigEndian.AppendUint32(b, v), nil
	case uint64:
		return binary.BigEndian.AppendUint64(b, v), nil
	case int8:
		return append(b, byte(v)), nil
	case int16:
		return binary.BigEndian.AppendUint16(b, uint16(v)), nil
	case int32:
		return binary.BigEndian.AppendUint32(b, uint32(v)), nil
	case int64:
		return binary.BigEndian.AppendUint64(b, uint64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint32(b, math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v)), nil
	case Decimal32:
		return append(b, v[:]...), nil
	case Decimal64:
		return append(b, v[:]...), nil
	case Decimal128:
		return append(b, v[:]...), nil
	case Char:
		return binary.BigEndian.AppendUint32(b, uint32(v)), nil
	case time.Time:
		return binary.BigEndian.AppendUint64(b, uint64(v.UnixMilli())), nil
	case UUID:
		return append(b, v[:]...), nil
	case []byte:
		return append(binary.BigEndian.AppendUint32(b, uint32(len(v))), v...), nil
	case string:
		return append(binary.BigEndian.AppendUint32(b, uint32(len(v))), v...), nil
	case Symbol:
		return append(binary.BigEndian.AppendUint32(b, uint32(len(v))), v...), nil
	case List, Map, Array:
		// Encode with its 32-bit header (no shrinking) and drop the constructor byte.
		start := len(b)
		var err error
		b, err = appendCompound32(b, v)
		if err != nil {
			return b, err
		}
		copy(b[start:], b[start+1:])
		return b[:len(b)-1], nil
	}
	return b, fmt.Errorf("amqp: cannot encode %T", v)
}

// appendCompound32 encodes a list, map or array always in its 32-bit form (array elements need one width).
func appendCompound32(b []byte, v any) ([]byte, error) {
	var n, start int
	var err error
	switch v := v.(type) {
	case List:
		b, start = openCompound(b, codeList32)
		for _, e := range v {
			if b, err = AppendAny(b, e); err != nil {
				return b, err
			}
		}
		n = len(v)
	case Map:
		b, start = openCompound(b, codeMap32)
		for _, e := range v {
			if b, err = AppendAny(b, e.Key); err != nil {
				return b, err
			}
			if b, err = AppendAny(b, e.Value); err != nil {
				return b, err
			}
		}
		n = 2 * len(v)
	case Array:
		// Encode normally then widen the header if it was shrunk.
		s := len(b)
		if b, err = AppendArray(b, v); err != nil {
			return b, err
		}
		if b[s] == codeArray8 {
			size, count := int(b[s+1]), int(b[s+2])
			b = append(b, 0, 0, 0, 0, 0, 0)
			copy(b[s+9:], b[s+3:len(b)-6])
			b[s] = codeArray32
			binary.BigEndian.PutUint32(b[s+1:], uint32(size+3))
			binary.BigEndian.PutUint32(b[s+5:], uint32(count))
		}
		return b, nil
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-5))
	binary.BigEndian.PutUint32(b[start+5:], uint32(n))
	return b, nil
}

// AppendAny encodes a value of one of the Go types ReadAny returns (plus int, uint, []string, []Symbol,
// map[string]any keyed as symbols, and *Error).
func AppendAny(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return AppendNull(b), nil
	case bool:
		return AppendBool(b, v), nil
	case uint8:
		return AppendUbyte(b, v), nil
	case uint16:
		return AppendUshort(b, v), nil
	case uint32:
		return AppendUint(b, v), nil
	case uint64:
		return AppendUlong(b, v), nil
	case uint:
		return AppendUlong(b, uint64(v)), nil
	case int8:
		return AppendByte(b, v), nil
	case int16:
		return AppendShort(b, v), nil
	case int32:
		return AppendInt(b, v), nil
	case int64:
		return AppendLong(b, v), nil
	case int:
		return AppendLong(b, int64(v)), nil
	case float32:
		return AppendFloat(b, v), nil
	case float64:
		return AppendDouble(b, v), nil
	case Decimal32:
		return append(append(b, codeDecimal32), v[:]...), nil
	case Decimal64:
		return append(append(b, codeDecimal64), v[:]...), nil
	case Decimal128:
		return append(append(b, codeDecimal128), v[:]...), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(b, codeChar), uint32(v)), nil
	case time.Time:
		return AppendTimestamp(b, v), nil
	case UUID:
		return AppendUUID(b, v), nil
	case []byte:
		return AppendBinary(b, v), nil
	case string:
		return AppendString(b, v), nil
	case Symbol:
		return AppendSymbol(b, v), nil
	case *Described:
		b = append(b, codeDescribed)
		var err error
		if b, err = AppendAny(b, v.Descriptor); err != nil {
			return b, err
		}
		return AppendAny(b, v.Value)
	case List:
		return AppendList(b, v)
	case []any:
		return AppendList(b, v)
	case Map:
		return AppendMap(b, v)
	case map[string]any:
		return AppendFields(b, v)
	case Array:
		return AppendArray(b, v)
	case []Symbol:
		return AppendSymbols(b, v), nil
	case []string:
		a := make(Array, len(v))
		for i, s := range v {
			a[i] = s
		}
		return AppendArray(b, a)
	case *Error:
		return v.Append(b), nil
	case Performative: // delivery states, source, target
		return v.AppendTo(b)
	}
	return b, fmt.Errorf("amqp: cannot encode %T", v)
}

// AppendFields encodes a map with symbol keys (the AMQP "fields" type); null when empty. Keys are sorted
// so that the encoding is deterministic.
func AppendFields(b []byte, m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return AppendNull(b), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	b, start := openCompound(b, codeMap32)
	var err error
	for _, k := range keys {
		b = AppendSymbol(b, Symbol(k))
		if b, err = AppendAny(b, m[k]); err != nil {
			return b, fmt.Errorf("field %q: %w", k, err)
		}
	}
	return finishCompound(b, start, 2*len(m), codeMap8), nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
