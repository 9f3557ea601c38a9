package amqpserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	w "github.com/netherite-go/netherite/eventhubs/emulator/amqpwire"
)

// Error conditions this package sends.
const (
	condFramingError     = "amqp:connection:framing-error"
	condDecodeError      = "amqp:decode-error"
	condNotAllowed       = "amqp:not-allowed"
	condInternal         = "amqp:internal-error"
	condResourceLimit    = "amqp:resource-limit-exceeded"
	condUnattachedHandle = "amqp:session:unattached-handle"
	condHandleInUse      = "amqp:session:handle-in-use"
	condMessageSize      = "amqp:link:message-size-exceeded"
	condTransferLimit    = "amqp:link:transfer-limit-exceeded"
	condWindowViolation  = "amqp:session:window-violation"
)

var (
	// ErrDetached is returned by Send and Receive on a link that is detached, when there is no error.
	ErrDetached = errors.New("amqpserver: link detached")
	// ErrConnClosed is the error of links whose connection ended.
	ErrConnClosed = errors.New("amqpserver: connection closed")
	// ErrSessionEnded is the error of links whose session ended.
	ErrSessionEnded = errors.New("amqpserver: session ended")
)

type conn struct {
	srv *server
	nc  net.Conn
	pub *Conn
	log *slog.Logger
	br  *bufio.Reader

	// Set during the handshake, read-only after.
	peerMaxFrame uint32
	peerIdle     time.Duration

	mu        sync.Mutex
	hostname  string // from the peer's open
	out       []byte // frames waiting for the writer
	wake      chan struct{}
	wrote     bool // something was written since the last heartbeat tick
	sessions  map[uint16]*session
	closeSent bool  // our close frame is queued: send nothing more
	stopping  bool  // the connection is being torn down
	stopErr   error // why
	readDone  chan struct{}
	done      chan struct{}
}

func newConn(s *server, nc net.Conn) *conn {
	c := &conn{
		srv:      s,
		nc:       nc,
		log:      s.log.With("remote", nc.RemoteAddr().String()),
		br:       bufio.NewReaderSize(nc, 64*1024),
		sessions: map[uint16]*session{},
		wake:     make(chan struct{}, 1),
		readDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.pub = &Conn{c: c}
	return c
}

// protoError is a protocol violation: the connection closes with its condition.
type protoError struct {
	cond string
	err  error
}

func (e *protoError) Error() string { return e.cond + ": " + e.err.Error() }
func (e *protoError) Unwrap() error { return e.err }

func wireErr(cond string, format string, args ...any) *protoError {
	return &protoError{cond: cond, err: fmt.Errorf(format, args...)}
}

// classify maps a decoding error to its close condition.
func classify(err error) *protoError {
	var pe *protoError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, w.ErrFraming):
		return &protoError{cond: condFramingError, err: err}
	case errors.Is(err, w.ErrDecode):
		return &protoError{cond: condDecodeError, err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		// The peer stopped sending in the middle of a frame; it may still read our close.
		return &protoError{cond: condFramingError, err: fmt.Errorf("truncated frame: %w", err)}
	}
	return nil
}

// run is the connection's reader goroutine: handshake, then frames until the end.
func (c *conn) run() {
	defer c.srv.goroutines.Add(-1)
	defer c.srv.remove(c)
	ok, err := c.handshake()
	if !ok {
		c.log.Debug("amqp handshake failed", "err", err)
		c.nc.Close()
		close(c.readDone)
		close(c.done)
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		return
	}
	c.srv.goroutines.Add(1)
	go c.writer()
	err = c.readLoop()
	c.finishReading(err)
}

// handshake runs the protocol headers, SASL and the open exchange synchronously.
func (c *conn) handshake() (bool, error) {
	hs := c.srv.cfg.IdleTimeout
	if hs <= 0 {
		hs = defaultIdleTimeout
	}
	c.nc.SetDeadline(time.Now().Add(hs))
	var hdr [8]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return false, fmt.Errorf("protocol header: %w", err)
	}
	switch hdr {
	case w.ProtoSASL:
		if _, err := c.nc.Write(w.ProtoSASL[:]); err != nil {
			return false, err
		}
		if err := c.sasl(); err != nil {
			return false, err
		}
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return false, fmt.Errorf("protocol header after SASL: %w", err)
		}
		if hdr != w.ProtoAMQP {
			c.nc.Write(w.ProtoAMQP[:])
			return false, fmt.Errorf("bad protocol header after SASL % x", hdr)
		}
	case w.ProtoAMQP:
		if c.srv.cfg.Authenticate != nil {
			// Authentication is required: tell the peer we speak SASL.
			c.nc.Write(w.ProtoSASL[:])
			return false, errors.New("peer skipped SASL")
		}
	default:
		c.nc.Write(w.ProtoSASL[:])
		return false, fmt.Errorf("unsupported protocol header % x", hdr)
	}
	if _, err := c.nc.Write(w.ProtoAMQP[:]); err != nil {
		return false, err
	}
	// open
	h, body, err := c.readFrame(nil)
	if err != nil {
		if pe := classify(err); pe != nil {
			c.sendCloseNow(pe)
		}
		return false, err
	}
	open, ok := body.(*w.Open)
	if !ok || h.Type != w.TypeAMQP {
		c.sendCloseNow(wireErr(condNotAllowed, "expected open, got %T", body))
		return false, fmt.Errorf("expected open, got %T", body)
	}
	c.mu.Lock()
	c.hostname = open.Hostname
	c.mu.Unlock()
	c.peerMaxFrame = open.MaxFrameSize
	if c.peerMaxFrame < w.MinMaxFrameSize {
		c.peerMaxFrame = w.MinMaxFrameSize
	}
	c.peerIdle = time.Duration(open.IdleTimeout) * time.Millisecond
	reply := &w.Open{
		ContainerID:  c.srv.cfg.ContainerID,
		MaxFrameSize: c.srv.cfg.MaxFrameSize,
		ChannelMax:   65535,
		IdleTimeout:  uint32(max(c.srv.cfg.IdleTimeout, 0) / time.Millisecond),
	}
	b, err := w.AppendFrame(nil, w.TypeAMQP, 0, reply)
	if err == nil {
		_, err = c.nc.Write(b)
	}
	if err != nil {
		return false, err
	}
	c.nc.SetDeadline(time.Time{})
	return true, nil
}

func (c *conn) sasl() error {
	b, _ := w.AppendFrame(nil, w.TypeSASL, 0, &w.SASLMechanisms{Mechanisms: []w.Symbol{"ANONYMOUS", "PLAIN"}})
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	h, body, err := c.readFrame(nil)
	if err != nil {
		return fmt.Errorf("sasl-init: %w", err)
	}
	init, ok := body.(*w.SASLInit)
	if !ok || h.Type != w.TypeSASL {
		return fmt.Errorf("expected sasl-init, got %T", body)
	}
	var user, pass string
	code := w.SASLOK
	switch init.Mechanism {
	case "ANONYMOUS":
	case "PLAIN":
		// authzid NUL authcid NUL passwd (RFC 4616)
		parts := bytes.SplitN(init.InitialResponse, []byte{0}, 3)
		if len(parts) != 3 {
			code = w.SASLAuth
		} else {
			user, pass = string(parts[1]), string(parts[2])
		}
	default:
		code = w.SASLAuth
	}
	if code == w.SASLOK && c.srv.cfg.Authenticate != nil && !c.srv.cfg.Authenticate(string(init.Mechanism), user, pass) {
		code = w.SASLAuth
	}
	b, _ = w.AppendFrame(nil, w.TypeSASL, 0, &w.SASLOutcome{Code: code})
	if _, err := c.nc.Write(b); err != nil {
		return err
	}
	if code != w.SASLOK {
		return fmt.Errorf("sasl %s: authentication failed", init.Mechanism)
	}
	return nil
}

// readFrame reads and decodes one frame. buf is reused for the body (a transfer's payload aliases it).
func (c *conn) readFrame(buf *[]byte) (w.Header, any, error) {
	var hb [8]byte
	if _, err := io.ReadFull(c.br, hb[:]); err != nil {
		return w.Header{}, nil, err
	}
	h, err := w.ParseHeader(hb[:])
	if err != nil {
		return h, nil, err
	}
	if h.Size > c.srv.cfg.MaxFrameSize {
		return h, nil, wireErr(condFramingError, "frame of %d bytes exceeds max-frame-size %d", h.Size, c.srv.cfg.MaxFrameSize)
	}
	n := int(h.Size) - w.HeaderSize
	var body []byte
	if buf != nil {
		if cap(*buf) < n {
			*buf = make([]byte, n, max(n, 4096))
		}
		body = (*buf)[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(c.br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	p, err := w.DecodeBody(h, body)
	return h, p, err
}

// sendCloseNow writes a close frame synchronously (before the writer runs).
func (c *conn) sendCloseNow(pe *protoError) {
	b, _ := w.AppendFrame(nil, w.TypeAMQP, 0, &w.Close{Error: &w.Error{Condition: w.Symbol(pe.cond), Description: pe.err.Error()}})
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(b)
}

func (c *conn) readLoop() error {
	var buf []byte
	idle := c.srv.cfg.IdleTimeout
	var deadlineSet time.Time
	for {
		// Our idle-time-out: the peer must send something (a heartbeat at least) within it.
		if c.br.Buffered() < w.HeaderSize {
			c.mu.Lock()
			closing := c.closeSent
			c.mu.Unlock()
			if now := time.Now(); idle > 0 && !closing && now.Sub(deadlineSet) > idle/8 {
				c.nc.SetReadDeadline(now.Add(idle))
				deadlineSet = now
			}
		}
		h, body, err := c.readFrame(&buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.mu.Lock()
				closing := c.closeSent
				c.mu.Unlock()
				if closing {
					return errors.New("no close from the peer")
				}
				return wireErr(condResourceLimit, "nothing received within the idle timeout %v", idle)
			}
			return err
		}
		if h.Type != w.TypeAMQP {
			return wireErr(condFramingError, "SASL frame after the open")
		}
		if body == nil {
			continue // heartbeat
		}
		if done, err := c.handle(h.Channel, body); err != nil || done {
			return err
		}
	}
}

// finishReading ends the connection after the reader stops: close frame if due, drain, tear down.
func (c *conn) finishReading(err error) {
	pe := classify(err)
	peerClosed := err == nil
	c.mu.Lock()
	if pe != nil && !c.closeSent {
		c.log.Info("amqp connection: protocol error", "cond", pe.cond, "err", pe.err)
		c.queueLocked(0, &w.Close{Error: &w.Error{Condition: w.Symbol(pe.cond), Description: pe.err.Error()}})
		c.closeSent = true
	}
	var stopErr error = ErrConnClosed
	if pe != nil {
		stopErr = fmt.Errorf("%w: %v", ErrConnClosed, pe)
	}
	c.stopLocked(stopErr)
	c.mu.Unlock()
	if pe != nil || peerClosed {
		// Read what the peer still sends until it closes, so that closing our socket with unread data
		// (which sends a RST) cannot destroy the close frame before the peer reads it.
		c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
		io.Copy(io.Discard, c.br)
	}
	close(c.readDone)
}

// stopLocked marks the connection stopping, ends every session and link, and wakes the writer,
// which flushes and closes the socket.
func (c *conn) stopLocked(err error) {
	if c.stopping {
		return
	}
	c.stopping = true
	c.stopErr = err
	for ch, s := range c.sessions {
		s.endLinksLocked(err)
		delete(c.sessions, ch)
	}
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writer flushes queued frames in bursts and sends heartbeats.
func (c *conn) writer() {
	defer c.srv.goroutines.Add(-1)
	var tick <-chan time.Time
	if c.peerIdle > 0 {
		t := time.NewTicker(c.peerIdle / 2)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-tick:
			c.mu.Lock()
			if !c.wrote && !c.closeSent && !c.stopping {
				c.out = append(c.out, 0, 0, 0, 8, 2, 0, 0, 0)
			}
			c.wrote = false
			c.mu.Unlock()
		}
		c.mu.Lock()
		buf := c.out
		c.out = spare[:0]
		stopping := c.stopping
		if len(buf) > 0 {
			c.wrote = true
		}
		c.mu.Unlock()
		if len(buf) > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				c.log.Debug("amqp write failed", "err", err)
				c.nc.Close() // the reader fails and stops the connection
			}
		}
		spare = buf[:0]
		if stopping {
			c.mu.Lock()
			rest := c.out
			c.out = nil
			c.mu.Unlock()
			if len(rest) > 0 {
				c.nc.Write(rest)
			}
			if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
				tc.CloseWrite()
			}
			select {
			case <-c.readDone:
			case <-time.After(closeTimeout):
			}
			c.nc.Close()
			close(c.done)
			return
		}
	}
}

// queueLocked encodes a frame into the output buffer.
func (c *conn) queueLocked(channel uint16, p w.Performative) {
	if c.stopping {
		return
	}
	var err error
	c.out, err = w.AppendFrame(c.out, w.TypeAMQP, channel, p)
	if err != nil {
		// Only handler-supplied values (properties, error info) can fail; the frame is dropped and logged.
		c.log.Error("amqp: cannot encode frame", "type", fmt.Sprintf("%T", p), "err", err)
		return
	}
	c.signal()
}

// closeWith sends close(err) and closes the connection once the peer answers (or after a timeout).
func (c *conn) closeWith(err *Error) {
	c.mu.Lock()
	if c.closeSent || c.stopping {
		c.mu.Unlock()
		return
	}
	var e *w.Error
	if err != nil {
		e = toWire(err)
	}
	c.queueLocked(0, &w.Close{Error: e})
	c.closeSent = true
	reason := error(ErrConnClosed)
	if err != nil {
		reason = fmt.Errorf("%w: %v", ErrConnClosed, err)
	}
	// Links end now: nothing more is sent or delivered on them.
	for _, s := range c.sessions {
		s.endLinksLocked(reason)
	}
	c.mu.Unlock()
	c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
}

func (c *conn) drop() {
	c.nc.Close()
}

// handle processes one performative from the peer. done means the connection is finished (peer's close).
func (c *conn) handle(ch uint16, body any) (done bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return true, nil
	}
	if cl, ok := body.(*w.Close); ok {
		if !c.closeSent {
			c.queueLocked(0, &w.Close{})
			c.closeSent = true
		}
		reason := error(ErrConnClosed)
		if cl.Error != nil {
			reason = fmt.Errorf("%w: peer: %v", ErrConnClosed, cl.Error)
			c.log.Debug("amqp peer closed with error", "err", cl.Error)
		}
		c.stopLocked(reason)
		return true, nil
	}
	if c.closeSent {
		return false, nil // waiting for the peer's close; everything else is moot
	}
	switch p := body.(type) {
	case *w.Open:
		return false, wireErr(condNotAllowed, "second open")
	case *w.Begin:
		return false, c.beginLocked(ch, p)
	}
	s := c.sessions[ch]
	if s == nil {
		return false, wireErr(condNotAllowed, "%T on channel %d, which has no session", body, ch)
	}
	return false, s.handleLocked(body)
}

func (c *conn) beginLocked(ch uint16, p *w.Begin) error {
	if p.HasRemoteChannel {
		return wireErr(condNotAllowed, "begin with a remote-channel: this server never begins sessions")
	}
	if _, ok := c.sessions[ch]; ok {
		return wireErr(condNotAllowed, "begin on channel %d, which already has a session", ch)
	}
	s := &session{
		c:                    c,
		channel:              ch,
		nextIncomingID:       p.NextOutgoingID,
		incomingWindow:       sessionWindow,
		remoteIncomingWindow: p.IncomingWindow,
		links:                map[uint32]*link{},
	}
	c.sessions[ch] = s
	c.queueLocked(ch, &w.Begin{
		HasRemoteChannel: true,
		RemoteChannel:    ch,
		NextOutgoingID:   s.nextOutgoingID,
		IncomingWindow:   sessionWindow,
		OutgoingWindow:   sessionWindow,
		HandleMax:        p.HandleMax,
	})
	return nil
}

func toWire(e *Error) *w.Error {
	if e == nil {
		return nil
	}
	out := &w.Error{Condition: w.Symbol(e.Condition), Description: e.Description}
	if e.Info != nil {
		out.Info = toWireFields(e.Info)
	}
	return out
}

func fromWire(e *w.Error) *Error {
	if e == nil {
		return nil
	}
	return &Error{Condition: string(e.Condition), Description: e.Description, Info: e.Info}
}
