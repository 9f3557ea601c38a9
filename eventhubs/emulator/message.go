package emulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event Hubs annotations the emulator sets on every stored event.
const (
	annSequenceNumber = "x-opt-sequence-number"
	annOffset         = "x-opt-offset"
	annEnqueuedTime   = "x-opt-enqueued-time"
	annPartitionKey   = "x-opt-partition-key"
)

// BatchFormat is the message-format of an Event Hubs batch envelope: each
// Data section of the envelope is one complete encoded event.
const BatchFormat = 0x80013700

// AMQP message section descriptors (OASIS AMQP 1.0, part 3.2).
const (
	secHeader              = 0x70
	secDeliveryAnnotations = 0x71
	secMessageAnnotations  = 0x72
)

var errBadMessage = errors.New("malformed AMQP message")

// skipValue returns the length of the encoded AMQP value at the start of b.
// Only the width of each type code matters: the high nibble gives it.
func skipValue(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errBadMessage
	}
	code := b[0]
	if code == 0x00 { // described: descriptor, then the value
		n1, err := skipValue(b[1:])
		if err != nil {
			return 0, err
		}
		n2, err := skipValue(b[1+n1:])
		if err != nil {
			return 0, err
		}
		return 1 + n1 + n2, nil
	}
	var n int
	switch code >> 4 {
	case 0x4:
		n = 1
	case 0x5:
		n = 2
	case 0x6:
		n = 3
	case 0x7:
		n = 5
	case 0x8:
		n = 9
	case 0x9:
		n = 17
	case 0xa, 0xc, 0xe: // one-byte size
		if len(b) < 2 {
			return 0, errBadMessage
		}
		n = 2 + int(b[1])
	case 0xb, 0xd, 0xf: // four-byte size
		if len(b) < 5 {
			return 0, errBadMessage
		}
		size := binary.BigEndian.Uint32(b[1:5])
		if uint64(size) > uint64(len(b)) {
			return 0, errBadMessage
		}
		n = 5 + int(size)
	default:
		return 0, fmt.Errorf("%w: type code 0x%02x", errBadMessage, code)
	}
	if n > len(b) {
		return 0, errBadMessage
	}
	return n, nil
}

// section is one message section: its numeric descriptor (0 if symbolic)
// and its bytes.
type section struct {
	code uint64
	raw  []byte
}

// splitSections cuts an encoded message into its sections.
func splitSections(msg []byte) ([]section, error) {
	var out []section
	for len(msg) > 0 {
		if msg[0] != 0x00 || len(msg) < 2 {
			return nil, fmt.Errorf("%w: section is not a described type", errBadMessage)
		}
		var code uint64
		switch msg[1] {
		case 0x53: // smallulong
			if len(msg) < 3 {
				return nil, errBadMessage
			}
			code = uint64(msg[2])
		case 0x80: // ulong
			if len(msg) < 10 {
				return nil, errBadMessage
			}
			code = binary.BigEndian.Uint64(msg[2:10])
		}
		n, err := skipValue(msg)
		if err != nil {
			return nil, err
		}
		out = append(out, section{code: code, raw: msg[:n]})
		msg = msg[n:]
	}
	return out, nil
}

// eventMeta is what the emulator stamps on an event.
type eventMeta struct {
	seq      int64
	offset   int64
	enqueued time.Time
	key      string // partition key ("" = none)
}

// decorate returns the stored form of an event: the message with the
// sequence number, offset, enqueued time and partition key set in its
// message annotations and its delivery annotations dropped. The other
// sections are kept byte for byte, and so are the other annotations.
func decorate(raw []byte, m eventMeta) ([]byte, error) {
	secs, err := splitSections(raw)
	if err != nil {
		return nil, err
	}
	var existing []byte // the annotations map of the message, if any
	for _, s := range secs {
		if s.code == secMessageAnnotations {
			existing = s.raw[sectionDescriptorLen(s.raw):]
		}
	}
	out := make([]byte, 0, len(raw)+160)
	placed := false
	for _, s := range secs {
		switch {
		case s.code == secHeader:
			out = append(out, s.raw...)
		case s.code == secDeliveryAnnotations || s.code == secMessageAnnotations:
			// dropped; ours go after the header
		default:
			if !placed {
				if out, err = appendAnnotations(out, existing, m); err != nil {
					return nil, err
				}
				placed = true
			}
			out = append(out, s.raw...)
		}
	}
	if !placed {
		if out, err = appendAnnotations(out, existing, m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sectionDescriptorLen is the length of a section's descriptor prefix
// (0x00 and the descriptor value).
func sectionDescriptorLen(sec []byte) int {
	n, err := skipValue(sec[1:])
	if err != nil {
		return len(sec)
	}
	return 1 + n
}

// appendAnnotations appends a message-annotations section: the entries of
// the existing map (its encoded value, or nil) that the emulator does not
// set, then the emulator's.
func appendAnnotations(dst, existing []byte, m eventMeta) ([]byte, error) {
	dst = append(dst, 0x00, 0x53, secMessageAnnotations, 0xd1, 0, 0, 0, 0, 0, 0, 0, 0) // map32, size and count filled below
	start := len(dst) - 4                                                              // the count field
	count := 0
	if len(existing) > 0 {
		body, n, err := mapBody(existing)
		if err != nil {
			return nil, fmt.Errorf("message annotations: %w", err)
		}
		for range n / 2 {
			kn, err := skipValue(body)
			if err != nil {
				return nil, err
			}
			vn, err := skipValue(body[kn:])
			if err != nil {
				return nil, err
			}
			key := symbolText(body[:kn])
			drop := key == annSequenceNumber || key == annOffset || key == annEnqueuedTime || key == annPartitionKey && m.key != ""
			if !drop {
				dst = append(dst, body[:kn+vn]...)
				count += 2
			}
			body = body[kn+vn:]
		}
	}
	dst = appendSymbol(dst, annSequenceNumber)
	dst = append(dst, 0x81) // long
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.seq))
	dst = appendSymbol(dst, annOffset)
	dst = appendString(dst, strconv.FormatInt(m.offset, 10))
	dst = appendSymbol(dst, annEnqueuedTime)
	dst = append(dst, 0x83) // timestamp, Unix milliseconds
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.enqueued.UnixMilli()))
	count += 6
	if m.key != "" {
		dst = appendSymbol(dst, annPartitionKey)
		dst = appendString(dst, m.key)
		count += 2
	}
	binary.BigEndian.PutUint32(dst[start-4:], uint32(len(dst)-start))
	binary.BigEndian.PutUint32(dst[start:], uint32(count))
	return dst, nil
}

// mapBody returns the entries of an encoded map and their count (keys and
// values).
func mapBody(v []byte) ([]byte, int, error) {
	n, err := skipValue(v)
	if err != nil {
		return nil, 0, err
	}
	switch v[0] {
	case 0xc1: // map8: size, count
		if n < 3 {
			return nil, 0, errBadMessage
		}
		return v[3:n], int(v[2]), nil
	case 0xd1: // map32
		if n < 9 {
			return nil, 0, errBadMessage
		}
		return v[9:n], int(binary.BigEndian.Uint32(v[5:9])), nil
	case 0x40: // null
		return nil, 0, nil
	}
	return nil, 0, fmt.Errorf("%w: annotations are not a map (0x%02x)", errBadMessage, v[0])
}

// symbolText returns the text of an encoded symbol or string ("" for
// other types).
func symbolText(v []byte) string {
	switch {
	case len(v) >= 2 && (v[0] == 0xa3 || v[0] == 0xa1):
		return string(v[2:])
	case len(v) >= 5 && (v[0] == 0xb3 || v[0] == 0xb1):
		return string(v[5:])
	}
	return ""
}

func appendSymbol(dst []byte, s string) []byte {
	if len(s) < 256 {
		return append(append(dst, 0xa3, byte(len(s))), s...)
	}
	dst = append(dst, 0xb3)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendString(dst []byte, s string) []byte {
	if len(s) < 256 {
		return append(append(dst, 0xa1, byte(len(s))), s...)
	}
	dst = append(dst, 0xb1)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// unpack returns the events of a delivery: the Data sections of a batch
// envelope, or the message itself; and the partition key of the envelope.
// The events share the payload's memory.
func unpack(format uint32, payload []byte) (events [][]byte, key string, err error) {
	secs, err := splitSections(payload)
	if err != nil {
		return nil, "", err
	}
	for _, s := range secs {
		v := s.raw[sectionDescriptorLen(s.raw):]
		switch s.code {
		case secMessageAnnotations:
			if key, err = annotationString(v, annPartitionKey); err != nil {
				return nil, "", err
			}
		case secData:
			if format == BatchFormat {
				b, err := binaryValue(v)
				if err != nil {
					return nil, "", err
				}
				events = append(events, b)
			}
		}
	}
	if format != BatchFormat {
		events = [][]byte{payload}
	}
	return events, key, nil
}

// secData is the descriptor of a Data section.
const secData = 0x75

// binaryValue returns the bytes of an encoded binary value.
func binaryValue(v []byte) ([]byte, error) {
	n, err := skipValue(v)
	if err != nil {
		return nil, err
	}
	switch v[0] {
	case 0xa0:
		return v[2:n:n], nil
	case 0xb0:
		return v[5:n:n], nil
	}
	return nil, fmt.Errorf("%w: a Data section holds type 0x%02x", errBadMessage, v[0])
}

// annotationString returns the string value of the annotation key in an
// encoded annotations map ("" when absent or not a string).
func annotationString(m []byte, key string) (string, error) {
	body, n, err := mapBody(m)
	if err != nil {
		return "", err
	}
	for range n / 2 {
		kn, err := skipValue(body)
		if err != nil {
			return "", err
		}
		vn, err := skipValue(body[kn:])
		if err != nil {
			return "", err
		}
		if symbolText(body[:kn]) == key {
			if v := body[kn : kn+vn]; v[0] == 0xa1 || v[0] == 0xb1 {
				return symbolText(v), nil
			}
			return "", nil
		}
		body = body[kn+vn:]
	}
	return "", nil
}
