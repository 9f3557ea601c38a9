package amqpwire

import (
	"testing"
)

func seedFrames(f *testing.F) {
	for _, p := range []Performative{
		&Open{ContainerID: "c", MaxFrameSize: 512, ChannelMax: 1, IdleTimeout: 1000, Properties: map[string]any{"a": List{int32(1)}}},
		&Begin{NextOutgoingID: 1, IncomingWindow: 1, OutgoingWindow: 1},
		&Attach{Name: "n", Role: true, Source: &Source{Address: "a", Filter: Map{{Symbol("f"), &Described{uint64(1), "x"}}}}, Target: &Target{Address: "t"}},
		&Flow{IncomingWindow: 1, HasHandle: true, HasLinkCredit: true, LinkCredit: 9},
		&Transfer{Handle: 1, HasDeliveryID: true, DeliveryTag: []byte{1}, Payload: []byte{0, 0x53, 0x75, 0xa0, 1, 1}},
		&Disposition{First: 1, State: &Rejected{Error: &Error{Condition: "c"}}},
		&Detach{Closed: true, Error: &Error{Condition: "x", Info: map[string]any{"k": Array{UUID{}}}}},
		&End{}, &Close{Error: &Error{Condition: "y"}},
	} {
		b, err := AppendFrame(nil, TypeAMQP, 1, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := AppendFrame(nil, TypeSASL, 0, &SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00a\x00b")})
	f.Add(b)
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
}

// FuzzDecodeFrame: the decoder never panics, and what it accepts re-encodes into something it accepts again.
func FuzzDecodeFrame(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		h, p, _, err := DecodeFrame(in)
		if err != nil || p == nil {
			return
		}
		perf, ok := p.(Performative)
		if !ok {
			t.Fatalf("%T is not a Performative", p)
		}
		out, err := AppendFrame(nil, h.Type, h.Channel, perf)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", p, err)
		}
		if _, _, _, err := DecodeFrame(out); err != nil {
			t.Fatalf("re-decode of %#v: %v", p, err)
		}
	})
}

// FuzzReadAny: any value the reader accepts re-encodes and decodes again.
func FuzzReadAny(f *testing.F) {
	f.Add([]byte{0xe0, 9, 2, 0x00, 0x53, 0x24, 0xc0, 1, 0, 1, 0})
	f.Add([]byte{0xc1, 7, 2, 0xa3, 1, 'k', 0xa1, 1, 'v'})
	f.Add([]byte{0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x41})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		v := r.ReadAny()
		if r.Err() != nil {
			return
		}
		out, err := AppendAny(nil, v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		r2 := NewReader(out)
		r2.ReadAny()
		if r2.Err() != nil || r2.Len() != 0 {
			t.Fatalf("re-decode of %#v: %v", v, r2.Err())
		}
	})
}
