package amqpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame types.
const (
	TypeAMQP uint8 = 0
	TypeSASL uint8 = 1
)

// HeaderSize is the size of the fixed frame header.
const HeaderSize = 8

// MinMaxFrameSize is the smallest max-frame-size a peer may advertise (spec 2.7.1).
const MinMaxFrameSize = 512

// Protocol headers.
var (
	ProtoAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	ProtoSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// ErrFraming is wrapped by errors in the frame structure itself (amqp:connection:framing-error on the wire).
var ErrFraming = errors.New("amqp framing error")

// Header is a parsed frame header.
type Header struct {
	Size    uint32
	DOff    uint8
	Type    uint8
	Channel uint16
}

// ParseHeader checks and parses the 8-byte frame header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: short header", ErrFraming)
	}
	h := Header{
		Size:    binary.BigEndian.Uint32(b),
		DOff:    b[4],
		Type:    b[5],
		Channel: binary.BigEndian.Uint16(b[6:]),
	}
	if h.Size < HeaderSize {
		return h, fmt.Errorf("%w: frame size %d", ErrFraming, h.Size)
	}
	if h.DOff < 2 || uint32(h.DOff)*4 > h.Size {
		return h, fmt.Errorf("%w: data offset %d in a frame of %d bytes", ErrFraming, h.DOff, h.Size)
	}
	if h.Type != TypeAMQP && h.Type != TypeSASL {
		return h, fmt.Errorf("%w: frame type %d", ErrFraming, h.Type)
	}
	return h, nil
}

// DecodeBody decodes the bytes of a frame after its 8-byte header. The result is nil for an empty frame
// (a heartbeat), else one of *Open, *Begin, *Attach, *Flow, *Transfer, *Disposition, *Detach, *End,
// *Close (AMQP frames) or *SASLMechanisms, *SASLInit, *SASLChallenge, *SASLResponse, *SASLOutcome.
// A transfer's payload aliases body.
func DecodeBody(h Header, body []byte) (any, error) {
	ext := int(h.DOff)*4 - HeaderSize
	if ext > len(body) {
		return nil, fmt.Errorf("%w: extended header beyond the frame", ErrFraming)
	}
	body = body[ext:]
	if len(body) == 0 {
		if h.Type == TypeSASL {
			return nil, fmt.Errorf("%w: empty SASL frame", ErrFraming)
		}
		return nil, nil
	}
	r := Reader{b: body}
	code, f := r.readComposite()
	if r.err != nil {
		return nil, r.err
	}
	var p any
	if h.Type == TypeAMQP {
		switch code {
		case DescOpen:
			v := &Open{}
			v.read(&f)
			p = v
		case DescBegin:
			v := &Begin{}
			v.read(&f)
			p = v
		case DescAttach:
			v := &Attach{}
			v.read(&f)
			p = v
		case DescFlow:
			v := &Flow{}
			v.read(&f)
			p = v
		case DescTransfer:
			v := &Transfer{}
			v.read(&f)
			f.done(&r, "transfer")
			if r.err != nil {
				return nil, r.err
			}
			v.Payload = r.b
			return v, nil
		case DescDisposition:
			v := &Disposition{}
			v.read(&f)
			p = v
		case DescDetach:
			v := &Detach{}
			v.read(&f)
			p = v
		case DescEnd:
			v := &End{}
			v.read(&f)
			p = v
		case DescClose:
			v := &Close{}
			v.read(&f)
			p = v
		default:
			return nil, decodeErr("unknown performative 0x%x", code)
		}
	} else {
		switch code {
		case DescSASLMechs:
			v := &SASLMechanisms{}
			v.read(&f)
			p = v
		case DescSASLInit:
			v := &SASLInit{}
			v.read(&f)
			p = v
		case DescSASLChallenge:
			v := &SASLChallenge{}
			var d []byte
			f.binary(&d)
			v.Challenge = append([]byte{}, d...)
			p = v
		case DescSASLResponse:
			v := &SASLResponse{}
			var d []byte
			f.binary(&d)
			v.Response = append([]byte{}, d...)
			p = v
		case DescSASLOutcome:
			v := &SASLOutcome{}
			v.read(&f)
			p = v
		default:
			return nil, decodeErr("unknown SASL frame 0x%x", code)
		}
	}
	f.done(&r, "performative")
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, decodeErr("%d bytes after the performative", len(r.b))
	}
	return p, nil
}

// DecodeFrame decodes one whole frame (header included) and returns the rest of b.
func DecodeFrame(b []byte) (Header, any, []byte, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, nil, err
	}
	if uint64(h.Size) > uint64(len(b)) {
		return h, nil, nil, fmt.Errorf("%w: frame of %d bytes truncated to %d", ErrFraming, h.Size, len(b))
	}
	p, err := DecodeBody(h, b[HeaderSize:h.Size])
	return h, p, b[h.Size:], err
}

// AppendFrame encodes a frame with the performative (nil = an empty frame) at the end of b.
func AppendFrame(b []byte, typ uint8, channel uint16, p Performative) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	if p != nil {
		var err error
		if b, err = p.AppendTo(b); err != nil {
			return b[:start], err
		}
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b, nil
}

// AppendTransferFrame is AppendFrame for a transfer, without the interface conversion (the hot path).
func AppendTransferFrame(b []byte, channel uint16, t *Transfer) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, TypeAMQP, byte(channel>>8), byte(channel))
	b, _ = t.AppendTo(b) // a transfer without State cannot fail to encode
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// TransferOverhead bounds the size of a frame header plus the transfer performative t, so that a payload of
// maxFrame-TransferOverhead bytes always fits into one frame. (Computed, not encoded: no allocation.)
func TransferOverhead(t *Transfer) int {
	// header, descriptor (3), list32 header (9), handle, delivery-id and message-format (5 each), the tag
	// (5 + len), settled, more, rcv-settle-mode, state, resume, aborted, batchable (2 each at most).
	n := HeaderSize + 3 + 9 + 3*5 + 5 + len(t.DeliveryTag) + 7*2
	if t.State != nil {
		n += 64 // states we send are small; a caller that sends large ones must not use this bound
	}
	return n
}
