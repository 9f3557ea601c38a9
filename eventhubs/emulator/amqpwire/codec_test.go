package amqpwire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func TestPrimitiveEncodings(t *testing.T) {
	cases := []struct {
		v    any
		want []byte
	}{
		{nil, []byte{0x40}},
		{true, []byte{0x41}},
		{false, []byte{0x42}},
		{uint8(7), []byte{0x50, 7}},
		{uint16(0x1234), []byte{0x60, 0x12, 0x34}},
		{uint32(0), []byte{0x43}},
		{uint32(200), []byte{0x52, 200}},
		{uint32(0x10000), []byte{0x70, 0, 1, 0, 0}},
		{uint64(0), []byte{0x44}},
		{uint64(255), []byte{0x53, 255}},
		{uint64(1 << 40), []byte{0x80, 0, 0, 1, 0, 0, 0, 0, 0}},
		{int8(-2), []byte{0x51, 0xfe}},
		{int16(-2), []byte{0x61, 0xff, 0xfe}},
		{int32(-2), []byte{0x54, 0xfe}},
		{int32(1000), []byte{0x71, 0, 0, 0x03, 0xe8}},
		{int64(-128), []byte{0x55, 0x80}},
		{int64(1000), []byte{0x81, 0, 0, 0, 0, 0, 0, 0x03, 0xe8}},
		{float32(1.5), []byte{0x72, 0x3f, 0xc0, 0, 0}},
		{float64(1.5), []byte{0x82, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}},
		{"hi", []byte{0xa1, 2, 'h', 'i'}},
		{Symbol("ab"), []byte{0xa3, 2, 'a', 'b'}},
		{[]byte{1, 2}, []byte{0xa0, 2, 1, 2}},
		{List{}, []byte{0x45}},
		{List{uint32(0), true}, []byte{0xc0, 3, 2, 0x43, 0x41}},
		{Map{{Symbol("k"), "v"}}, []byte{0xc1, 7, 2, 0xa3, 1, 'k', 0xa1, 1, 'v'}},
		{Array{Symbol("a"), Symbol("bc")}, []byte{0xe0, 13, 2, 0xb3, 0, 0, 0, 1, 'a', 0, 0, 0, 2, 'b', 'c'}},
		{&Described{Descriptor: uint64(0x24), Value: List{}}, []byte{0x00, 0x53, 0x24, 0x45}},
		{time.UnixMilli(1000).UTC(), []byte{0x83, 0, 0, 0, 0, 0, 0, 0x03, 0xe8}},
	}
	for _, c := range cases {
		got, err := AppendAny(nil, c.v)
		if err != nil {
			t.Fatalf("%#v: %v", c.v, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%#v: encoded % x, want % x", c.v, got, c.want)
		}
		r := NewReader(got)
		back := r.ReadAny()
		if r.Err() != nil || r.Len() != 0 {
			t.Fatalf("%#v: decode: %v (rest %d)", c.v, r.Err(), r.Len())
		}
		if !reflect.DeepEqual(back, c.v) {
			t.Errorf("round trip %#v -> %#v", c.v, back)
		}
	}
}

// Wider encodings than the ones we produce must decode to the same values.
func TestDecodeAllEncodings(t *testing.T) {
	cases := []struct {
		in   []byte
		want any
	}{
		{[]byte{0x56, 0x01}, true},
		{[]byte{0x56, 0x00}, false},
		{[]byte{0x70, 0, 0, 0, 5}, uint32(5)},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 5}, uint64(5)},
		{[]byte{0xb1, 0, 0, 0, 1, 'x'}, "x"},
		{[]byte{0xb3, 0, 0, 0, 1, 'x'}, Symbol("x")},
		{[]byte{0xb0, 0, 0, 0, 1, 9}, []byte{9}},
		{[]byte{0xd0, 0, 0, 0, 5, 0, 0, 0, 1, 0x41}, List{true}},
		{[]byte{0xd1, 0, 0, 0, 6, 0, 0, 0, 2, 0x43, 0x42}, Map{{uint32(0), false}}},
		{[]byte{0xf0, 0, 0, 0, 7, 0, 0, 0, 2, 0x52, 1, 2}, Array{uint32(1), uint32(2)}},
		{[]byte{0x98, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{[]byte{0x73, 0, 0, 0, 'A'}, Char('A')},
	}
	for _, c := range cases {
		r := NewReader(c.in)
		got := r.ReadAny()
		if r.Err() != nil || r.Len() != 0 {
			t.Fatalf("% x: %v", c.in, r.Err())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("% x: got %#v, want %#v", c.in, got, c.want)
		}
	}
	// An array of described lists (e.g. an array of accepted states): 0x00 0x53 0x24 then list8 elements.
	in := []byte{0xe0, 9, 2, 0x00, 0x53, 0x24, 0xc0, 1, 0, 1, 0}
	r := NewReader(in)
	got := r.ReadAny()
	want := Array{&Described{uint64(0x24), List{}}, &Described{uint64(0x24), List{}}}
	if r.Err() != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("described array: %#v, %v", got, r.Err())
	}
	enc, err := AppendAny(nil, want)
	if err != nil {
		t.Fatal(err)
	}
	r = NewReader(enc)
	if back := r.ReadAny(); r.Err() != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("described array round trip: %#v, %v", back, r.Err())
	}
}

func TestCompoundRoundTrip(t *testing.T) {
	big := make([]byte, 300)
	v := List{
		Map{{Symbol("a"), Array{int64(1), int64(-1), int64(math.MaxInt64)}}, {"b", List{nil, big}}},
		Array{List{uint8(1)}, List{"x", "y"}},
		Array{Array{Symbol("s")}, Array{Symbol("t"), Symbol("u")}},
		Array{},
		string(big),
		Symbol(big),
		List{List{List{}}},
	}
	enc, err := AppendAny(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(enc)
	got := r.ReadAny()
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("decode: %v", r.Err())
	}
	// An empty array decodes as an empty Array.
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, v)
	}
}

// go-amqp's message encoder is an independent implementation: its application-properties section must
// decode with our reader.
func TestDecodeGoAMQPEncoding(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	props := map[string]any{
		"s": "str", "i32": int32(-5), "i64": int64(1 << 40), "u8": uint8(3), "u64": uint64(1 << 50),
		"b": true, "f": 1.25, "bin": []byte{1, 2, 3}, "ts": ts,
	}
	m := &amqp.Message{ApplicationProperties: props, Data: [][]byte{[]byte("body")}}
	enc, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(enc)
	sec, ok := r.ReadAny().(*Described)
	if r.Err() != nil || !ok || sec.Descriptor != uint64(0x74) {
		t.Fatalf("first section: %#v %v", sec, r.Err())
	}
	got := sec.Value.(Map)
	for k, want := range props {
		v, ok := got.Get(k)
		if !ok || !reflect.DeepEqual(v, want) {
			t.Errorf("%s: got %#v, want %#v", k, v, want)
		}
	}
	data, ok := r.ReadAny().(*Described)
	if r.Err() != nil || !ok || data.Descriptor != uint64(0x75) || string(data.Value.([]byte)) != "body" {
		t.Fatalf("data section: %#v %v", data, r.Err())
	}
	// And ours decodes with go-amqp: encode the same section and have go-amqp unmarshal the message.
	// (application-properties keys are strings, not symbols)
	mine := append([]byte{0x00, 0x53, 0x74}, mustAppend(t, Map{{"k", int64(42)}, {"t", ts}})...)
	mine = append(mine, 0x00, 0x53, 0x75)
	mine = AppendBinary(mine, []byte("x"))
	var back amqp.Message
	if err := back.UnmarshalBinary(mine); err != nil {
		t.Fatal(err)
	}
	if back.ApplicationProperties["k"] != int64(42) || !back.ApplicationProperties["t"].(time.Time).Equal(ts) || string(back.GetData()) != "x" {
		t.Fatalf("go-amqp decoded %#v", back)
	}
}

func mustAppend(t *testing.T, v any) []byte {
	t.Helper()
	b, err := AppendAny(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func roundTrip(t *testing.T, typ uint8, p Performative) any {
	t.Helper()
	b, err := AppendFrame(nil, typ, 7, p)
	if err != nil {
		t.Fatal(err)
	}
	h, got, rest, err := DecodeFrame(b)
	if err != nil {
		t.Fatalf("%T: %v", p, err)
	}
	if len(rest) != 0 || h.Channel != 7 || h.Type != typ || int(h.Size) != len(b) {
		t.Fatalf("%T: header %+v rest %d", p, h, len(rest))
	}
	return got
}

func TestPerformativeRoundTrip(t *testing.T) {
	filter := Map{{Symbol("apache.org:selector-filter:string"),
		&Described{Descriptor: uint64(0x0000468C00000004), Value: "amqp.annotation.x-opt-offset > '-1'"}}}
	src := &Source{Address: "hub/ConsumerGroups/$Default/Partitions/0", Filter: filter, Outcomes: []Symbol{"amqp:accepted:list"}}
	srcEnc, _ := src.AppendTo(nil)
	tgt := &Target{Address: "hub", Capabilities: []Symbol{"x"}}
	tgtEnc, _ := tgt.AppendTo(nil)
	perfs := []Performative{
		&Open{ContainerID: "c", Hostname: "h:5671", MaxFrameSize: 65536, ChannelMax: 65535, IdleTimeout: 30000,
			OfferedCaps: []Symbol{"a", "b"}, Properties: map[string]any{"p": "v"}},
		&Begin{HasRemoteChannel: true, RemoteChannel: 3, NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 10},
		&Attach{Name: "l", Handle: 2, Role: RoleReceiver, HasSndSettleMode: true, SndSettleMode: SndSettled,
			HasRcvSettleMode: true, RcvSettleMode: RcvFirst, Source: &Source{Address: src.Address, Filter: filter, Outcomes: src.Outcomes, Raw: srcEnc},
			Target:               &Target{Address: "hub", Capabilities: []Symbol{"x"}, Raw: tgtEnc},
			HasInitDeliveryCount: true, InitialDeliveryCount: 0, MaxMessageSize: 1 << 20,
			DesiredCaps: []Symbol{"com.microsoft:georeplication"}, Properties: map[string]any{"com.microsoft:epoch": int64(3)}},
		&Flow{HasNextIncomingID: true, NextIncomingID: 9, IncomingWindow: 100, NextOutgoingID: 4, OutgoingWindow: 100,
			HasHandle: true, Handle: 0, HasDeliveryCount: true, DeliveryCount: 5, HasLinkCredit: true, LinkCredit: 300, Echo: true},
		&Transfer{Handle: 1, HasDeliveryID: true, DeliveryID: 77, DeliveryTag: []byte{1}, HasMessageFormat: true,
			MessageFormat: 0x80013700, Settled: true, More: true, State: &Accepted{}, Payload: []byte("payload")},
		&Disposition{Role: RoleReceiver, First: 3, HasLast: true, Last: 5, Settled: true,
			State: &Rejected{Error: &Error{Condition: "amqp:link:message-size-exceeded", Description: "too big"}}},
		&Disposition{Role: RoleSender, First: 1, State: &Modified{DeliveryFailed: true, MessageAnnotations: Map{{Symbol("x"), int32(1)}}}},
		&Disposition{Role: RoleReceiver, First: 1, State: &Released{}},
		&Disposition{Role: RoleReceiver, First: 1, State: &Received{SectionNumber: 1, SectionOffset: 2}},
		&Detach{Handle: 4, Closed: true, Error: &Error{Condition: "amqp:link:stolen", Description: "d", Info: map[string]any{"n": int32(1)}}},
		&End{Error: &Error{Condition: "amqp:session:unattached-handle"}},
		&End{},
		&Close{Error: &Error{Condition: "amqp:connection:forced"}},
	}
	for _, p := range perfs {
		got := roundTrip(t, TypeAMQP, p)
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, p)
		}
	}
	// Source decoded from the attach keeps its fields.
	a := roundTrip(t, TypeAMQP, perfs[2]).(*Attach)
	if a.Source.Address != src.Address || !reflect.DeepEqual(a.Source.Filter, filter) {
		t.Errorf("source: %#v", a.Source)
	}
	for _, p := range []Performative{
		&SASLMechanisms{Mechanisms: []Symbol{"ANONYMOUS", "PLAIN"}},
		&SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00u\x00p"), Hostname: "h"},
		&SASLOutcome{Code: SASLAuth, AdditionalData: []byte{}},
		&SASLChallenge{Challenge: []byte("c")},
		&SASLResponse{Response: []byte("r")},
	} {
		got := roundTrip(t, TypeSASL, p)
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, p)
		}
	}
}

func TestDefaultsAndSymbolicDescriptors(t *testing.T) {
	// open with only a container-id, with a symbolic descriptor
	body := []byte{0x00, 0xa3, 14}
	body = append(body, "amqp:open:list"...)
	body = append(body, 0xc0, 4, 1, 0xa1, 1, 'c')
	frame := append([]byte{0, 0, 0, byte(8 + len(body)), 2, 0, 0, 0}, body...)
	_, p, _, err := DecodeFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	o := p.(*Open)
	if o.ContainerID != "c" || o.MaxFrameSize != math.MaxUint32 || o.ChannelMax != 65535 || o.IdleTimeout != 0 {
		t.Fatalf("%+v", o)
	}
	// an empty frame is a heartbeat; an extended header is skipped
	if _, p, _, err := DecodeFrame([]byte{0, 0, 0, 8, 2, 0, 0, 0}); err != nil || p != nil {
		t.Fatalf("heartbeat: %v %v", p, err)
	}
	if _, p, _, err := DecodeFrame([]byte{0, 0, 0, 12, 3, 0, 0, 0, 9, 9, 9, 9}); err != nil || p != nil {
		t.Fatalf("extended header: %v %v", p, err)
	}
	// a single symbol where a multiple is expected
	single := []byte{0, 0, 0, 0, 2, 1, 0, 0, 0x00, 0x53, 0x40, 0xc0, 12, 1, 0xa3, 9}
	single = append(single, "ANONYMOUS"...)
	single[3] = byte(len(single))
	_, p, _, err = DecodeFrame(single)
	if err != nil || !reflect.DeepEqual(p.(*SASLMechanisms).Mechanisms, []Symbol{"ANONYMOUS"}) {
		t.Fatalf("single symbol: %#v %v", p, err)
	}
}

func TestBadInput(t *testing.T) {
	good, _ := AppendFrame(nil, TypeAMQP, 0, &Begin{NextOutgoingID: 1, IncomingWindow: 2, OutgoingWindow: 3})
	cases := map[string][]byte{
		"short header":          {0, 0, 0},
		"size below header":     {0, 0, 0, 4, 2, 0, 0, 0},
		"doff too small":        {0, 0, 0, 8, 1, 0, 0, 0},
		"doff past the frame":   {0, 0, 0, 8, 5, 0, 0, 0},
		"unknown frame type":    {0, 0, 0, 8, 2, 9, 0, 0},
		"truncated":             good[:len(good)-1],
		"not described":         {0, 0, 0, 10, 2, 0, 0, 0, 0x45, 0x45},
		"unknown performative":  {0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x30, 0x45},
		"sasl frame in amqp":    {0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x40, 0x45},
		"missing mandatory":     {0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x11, 0x45},
		"bad constructor":       {0, 0, 0, 14, 2, 0, 0, 0, 0x00, 0x53, 0x18, 0xc0, 1, 0xff},
		"list count over size":  {0, 0, 0, 13, 2, 0, 0, 0, 0x00, 0x53, 0x18, 0xc0, 1, 200},
		"huge list32":           {0, 0, 0, 20, 2, 0, 0, 0, 0x00, 0x53, 0x18, 0xd0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1},
		"wrong field type":      {0, 0, 0, 15, 2, 0, 0, 0, 0x00, 0x53, 0x16, 0xc0, 2, 1, 0x41},
		"trailing bytes":        append(append([]byte{}, good...), 0x40),
		"empty sasl frame":      {0, 0, 0, 8, 2, 1, 0, 0},
		"bad bool":              {0, 0, 0, 17, 2, 0, 0, 0, 0x00, 0x53, 0x16, 0xc0, 4, 2, 0x43, 0x56, 7},
		"str length past frame": {0, 0, 0, 16, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xc0, 3, 1, 0xa1, 50},
	}
	// fix the size of "trailing bytes"
	cases["trailing bytes"][3]++
	for name, in := range cases {
		_, _, _, err := DecodeFrame(in)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrFraming) {
			t.Errorf("%s: error %v is neither decode nor framing", name, err)
		}
	}
	// An array claiming 2^31 zero-width elements must fail without allocating them.
	r := NewReader([]byte{0xf0, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, 0x40})
	if r.ReadAny(); r.Err() == nil {
		t.Fatal("huge array accepted")
	}
	// Deep nesting is refused, not a stack overflow.
	deep := bytes.Repeat([]byte{0x00}, 10000)
	r = NewReader(deep)
	if r.ReadAny(); r.Err() == nil {
		t.Fatal("deep nesting accepted")
	}
}

func TestTransferOverheadIsABound(t *testing.T) {
	for _, tr := range []Transfer{
		{Handle: 1 << 30, HasDeliveryID: true, DeliveryID: 1 << 31, DeliveryTag: make([]byte, 32), HasMessageFormat: true,
			MessageFormat: 0x80013700, Settled: true, More: true, HasRcvSettleMode: true, RcvSettleMode: 1, Resume: true, Aborted: true, Batchable: true},
		{Handle: 0, HasDeliveryID: true, DeliveryTag: []byte{1}},
		{Handle: 3, State: &Accepted{}},
	} {
		b := AppendTransferFrame(nil, 9, &tr)
		if len(b) > TransferOverhead(&tr) {
			t.Errorf("%+v: frame of %d bytes, bound %d", tr, len(b), TransferOverhead(&tr))
		}
	}
}
