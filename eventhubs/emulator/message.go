package emulator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/go-amqp"
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
// sections are kept byte for byte.
func decorate(raw []byte, m eventMeta) ([]byte, error) {
	secs, err := splitSections(raw)
	if err != nil {
		return nil, err
	}
	var ann amqp.Annotations
	for _, s := range secs {
		if s.code == secMessageAnnotations {
			var msg amqp.Message
			if err := msg.UnmarshalBinary(s.raw); err != nil {
				return nil, fmt.Errorf("message annotations: %w", err)
			}
			ann = msg.Annotations
		}
	}
	if ann == nil {
		ann = amqp.Annotations{}
	}
	ann[annSequenceNumber] = m.seq
	ann[annOffset] = fmt.Sprint(m.offset)
	ann[annEnqueuedTime] = m.enqueued
	if m.key != "" {
		ann[annPartitionKey] = m.key
	} else if k, ok := ann[annPartitionKey].(string); !ok || k == "" {
		delete(ann, annPartitionKey)
	}
	annBytes, err := (&amqp.Message{Annotations: ann}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("message annotations: %w", err)
	}
	out := make([]byte, 0, len(raw)+len(annBytes))
	placed := false
	for _, s := range secs {
		switch {
		case s.code == secHeader:
			out = append(out, s.raw...)
		case s.code == secDeliveryAnnotations || s.code == secMessageAnnotations:
			// dropped; ours go after the header
		default:
			if !placed {
				out = append(out, annBytes...)
				placed = true
			}
			out = append(out, s.raw...)
		}
	}
	if !placed {
		out = append(out, annBytes...)
	}
	return out, nil
}

// unpack returns the events of a delivery: the Data sections of a batch
// envelope, or the message itself; and the partition key of the envelope.
func unpack(format uint32, payload []byte) (events [][]byte, key string, err error) {
	if format != BatchFormat {
		var msg amqp.Message
		if err := msg.UnmarshalBinary(payload); err != nil {
			return nil, "", fmt.Errorf("%w: %v", errBadMessage, err)
		}
		k, _ := msg.Annotations[annPartitionKey].(string)
		return [][]byte{payload}, k, nil
	}
	var env amqp.Message
	if err := env.UnmarshalBinary(payload); err != nil {
		return nil, "", fmt.Errorf("%w: batch envelope: %v", errBadMessage, err)
	}
	k, _ := env.Annotations[annPartitionKey].(string)
	return env.Data, k, nil
}
