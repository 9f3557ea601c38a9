package amqpserver

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	w "github.com/netherite-go/netherite/eventhubs/emulator/amqpwire"
)

// rawConn is a hand-driven AMQP client for feeding the server bad input.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) frame(typ uint8, ch uint16, p w.Performative) {
	r.t.Helper()
	b, err := w.AppendFrame(nil, typ, ch, p)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *rawConn) header() [8]byte {
	r.t.Helper()
	var h [8]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("read protocol header: %v", err)
	}
	return h
}

// read returns the next non-empty frame's performative.
func (r *rawConn) read() any {
	r.t.Helper()
	for {
		var hb [8]byte
		if _, err := io.ReadFull(r.br, hb[:]); err != nil {
			r.t.Fatalf("read frame: %v", err)
		}
		h, err := w.ParseHeader(hb[:])
		if err != nil {
			r.t.Fatal(err)
		}
		body := make([]byte, h.Size-8)
		if _, err := io.ReadFull(r.br, body); err != nil {
			r.t.Fatal(err)
		}
		p, err := w.DecodeBody(h, body)
		if err != nil {
			r.t.Fatal(err)
		}
		if p != nil {
			return p
		}
	}
}

// handshake does SASL ANONYMOUS and the open exchange.
func (r *rawConn) handshake() *w.Open {
	r.t.Helper()
	r.write(w.ProtoSASL[:])
	if r.header() != w.ProtoSASL {
		r.t.Fatal("no SASL header")
	}
	if m, ok := r.read().(*w.SASLMechanisms); !ok || len(m.Mechanisms) != 2 {
		r.t.Fatalf("mechanisms %#v", m)
	}
	r.frame(w.TypeSASL, 0, &w.SASLInit{Mechanism: "ANONYMOUS"})
	if o, ok := r.read().(*w.SASLOutcome); !ok || o.Code != w.SASLOK {
		r.t.Fatalf("outcome %#v", o)
	}
	r.write(w.ProtoAMQP[:])
	if r.header() != w.ProtoAMQP {
		r.t.Fatal("no AMQP header")
	}
	r.frame(w.TypeAMQP, 0, &w.Open{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 10})
	o, ok := r.read().(*w.Open)
	if !ok {
		r.t.Fatalf("open %#v", o)
	}
	return o
}

// expectClose reads until the server's close frame, checks its condition, then expects EOF.
func (r *rawConn) expectClose(cond string) {
	r.t.Helper()
	for {
		p := r.read()
		c, ok := p.(*w.Close)
		if !ok {
			continue
		}
		if c.Error == nil || string(c.Error.Condition) != cond {
			r.t.Fatalf("close with %v, want %s", c.Error, cond)
		}
		break
	}
	r.expectEOF()
}

func (r *rawConn) expectEOF() {
	r.t.Helper()
	n, err := io.Copy(io.Discard, r.br)
	if err != nil {
		r.t.Fatalf("after close: %d bytes, %v (want EOF)", n, err)
	}
	r.nc.Close()
}

// checkFreed waits until the server has no connection and no goroutine left.
func checkFreed(t *testing.T, ts *testServer) {
	t.Helper()
	waitConns(t, ts, 0)
	waitGoroutines(t, ts.Server)
}

func TestBadInputCloses(t *testing.T) {
	cases := []struct {
		name string
		cond string
		send func(r *rawConn)
	}{
		{"garbage bytes", condFramingError, func(r *rawConn) {
			r.write(bytes.Repeat([]byte{0xff}, 64))
		}},
		{"garbage frame body", condDecodeError, func(r *rawConn) {
			r.write([]byte{0, 0, 0, 16, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4})
		}},
		{"truncated frame", condFramingError, func(r *rawConn) {
			b, _ := w.AppendFrame(nil, w.TypeAMQP, 0, &w.Begin{NextOutgoingID: 0, IncomingWindow: 10, OutgoingWindow: 10})
			r.write(b[:len(b)-3])
			r.nc.(*net.TCPConn).CloseWrite()
		}},
		{"unknown performative", condDecodeError, func(r *rawConn) {
			r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x33, 0x45})
		}},
		{"frame over max size", condFramingError, func(r *rawConn) {
			r.write([]byte{0, 1, 0, 1, 2, 0, 0, 0}) // 65537 bytes announced
			r.write(make([]byte, 1000))
		}},
		{"bad data offset", condFramingError, func(r *rawConn) {
			r.write([]byte{0, 0, 0, 8, 1, 0, 0, 0})
		}},
		{"SASL frame after open", condFramingError, func(r *rawConn) {
			r.frame(w.TypeSASL, 0, &w.SASLInit{Mechanism: "ANONYMOUS"})
		}},
		{"second open", condNotAllowed, func(r *rawConn) {
			r.frame(w.TypeAMQP, 0, &w.Open{ContainerID: "again"})
		}},
		{"frame on unknown channel", condNotAllowed, func(r *rawConn) {
			r.frame(w.TypeAMQP, 5, &w.Transfer{Handle: 0, HasDeliveryID: true, DeliveryTag: []byte{1}, Payload: []byte{1}})
		}},
		{"begin twice on a channel", condNotAllowed, func(r *rawConn) {
			r.frame(w.TypeAMQP, 1, &w.Begin{IncomingWindow: 10, OutgoingWindow: 10})
			r.frame(w.TypeAMQP, 1, &w.Begin{IncomingWindow: 10, OutgoingWindow: 10})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			r := dialRaw(t, ts.addr)
			r.handshake()
			c.send(r)
			r.expectClose(c.cond)
			checkFreed(t, ts)
		})
	}
}

func TestBadInputBeforeOpen(t *testing.T) {
	t.Run("garbage protocol header", func(t *testing.T) {
		ts := startServer(t, Config{})
		r := dialRaw(t, ts.addr)
		r.write([]byte("GET / HTTP/1.1\r\n\r\n"))
		if h := r.header(); h != w.ProtoSASL {
			t.Fatalf("header % x", h)
		}
		r.expectEOF()
		checkFreed(t, ts)
	})
	t.Run("garbage in SASL", func(t *testing.T) {
		ts := startServer(t, Config{})
		r := dialRaw(t, ts.addr)
		r.write(w.ProtoSASL[:])
		r.header()
		r.read() // mechanisms
		r.write(bytes.Repeat([]byte{0x42}, 100))
		r.expectEOF()
		checkFreed(t, ts)
	})
	t.Run("garbage instead of open", func(t *testing.T) {
		ts := startServer(t, Config{})
		r := dialRaw(t, ts.addr)
		r.write(w.ProtoAMQP[:])
		r.header()
		r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x77, 0x45})
		r.expectClose(condDecodeError)
		checkFreed(t, ts)
	})
	t.Run("begin instead of open", func(t *testing.T) {
		ts := startServer(t, Config{})
		r := dialRaw(t, ts.addr)
		r.write(w.ProtoAMQP[:])
		r.header()
		r.frame(w.TypeAMQP, 0, &w.Begin{IncomingWindow: 1, OutgoingWindow: 1})
		r.expectClose(condNotAllowed)
		checkFreed(t, ts)
	})
	t.Run("hang up mid-handshake", func(t *testing.T) {
		ts := startServer(t, Config{})
		r := dialRaw(t, ts.addr)
		r.write([]byte("AMQ"))
		r.nc.Close()
		checkFreed(t, ts)
	})
}

func TestIdlePeerIsClosed(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: 300 * time.Millisecond})
	r := dialRaw(t, ts.addr)
	r.handshake()
	// A stalled, half-sent frame: the idle timeout still applies.
	r.write([]byte{0, 0, 0, 100, 2, 0})
	r.expectClose(condResourceLimit)
	checkFreed(t, ts)
}

func TestUnknownHandleEndsSession(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts.addr)
	r.handshake()
	r.frame(w.TypeAMQP, 1, &w.Begin{NextOutgoingID: 0, IncomingWindow: 10, OutgoingWindow: 10})
	if b, ok := r.read().(*w.Begin); !ok || !b.HasRemoteChannel || b.RemoteChannel != 1 {
		t.Fatalf("begin reply %#v", b)
	}
	r.frame(w.TypeAMQP, 1, &w.Flow{HasNextIncomingID: true, IncomingWindow: 10, OutgoingWindow: 10, HasHandle: true, Handle: 9, HasLinkCredit: true, LinkCredit: 1})
	e, ok := r.read().(*w.End)
	if !ok || e.Error == nil || e.Error.Condition != condUnattachedHandle {
		t.Fatalf("end %#v", e)
	}
	r.frame(w.TypeAMQP, 1, &w.End{})
	// The connection is still alive: a new session works, then a clean close.
	r.frame(w.TypeAMQP, 2, &w.Begin{NextOutgoingID: 0, IncomingWindow: 10, OutgoingWindow: 10})
	if _, ok := r.read().(*w.Begin); !ok {
		t.Fatal("no begin reply on a new session")
	}
	r.frame(w.TypeAMQP, 0, &w.Close{})
	if c, ok := r.read().(*w.Close); !ok || c.Error != nil {
		t.Fatalf("close reply %#v", c)
	}
	r.expectEOF()
	checkFreed(t, ts)
}

func TestPeerSendsWithoutDeliveryID(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts.addr)
	r.handshake()
	r.frame(w.TypeAMQP, 0, &w.Begin{NextOutgoingID: 0, IncomingWindow: 10, OutgoingWindow: 10})
	r.read()
	r.frame(w.TypeAMQP, 0, &w.Attach{Name: "x", Handle: 0, Role: w.RoleSender, Target: &w.Target{Address: "q"}, Source: &w.Source{}})
	if a, ok := r.read().(*w.Attach); !ok || a.Role != w.RoleReceiver || a.Target == nil || a.Target.Address != "q" {
		t.Fatalf("attach reply %#v", a)
	}
	if f, ok := r.read().(*w.Flow); !ok || !f.HasNextIncomingID || f.LinkCredit != linkCreditWindow {
		t.Fatalf("flow %#v", f)
	}
	r.frame(w.TypeAMQP, 0, &w.Transfer{Handle: 0, DeliveryTag: []byte{1}, Payload: []byte{0x40}})
	d, ok := r.read().(*w.Detach)
	if !ok || !d.Closed || d.Error == nil || d.Error.Condition != condNotAllowed {
		t.Fatalf("detach %#v", d)
	}
	r.frame(w.TypeAMQP, 0, &w.Detach{Handle: 0, Closed: true})
	r.frame(w.TypeAMQP, 0, &w.Close{})
	for {
		if _, ok := r.read().(*w.Close); ok {
			break
		}
	}
	r.expectEOF()
	checkFreed(t, ts)
}
