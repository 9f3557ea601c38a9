package amqpserver

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// Error is an AMQP error condition (used in detach, end, close, and dispositions).
type Error struct {
	Condition   string // e.g. "amqp:not-found", "amqp:link:stolen", "amqp:unauthorized-access"
	Description string
	Info        map[string]any // optional
}

func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	if e.Description == "" {
		return e.Condition
	}
	return e.Condition + ": " + e.Description
}

// Config configures a Server.
type Config struct {
	ContainerID  string        // sent in our open
	MaxFrameSize uint32        // our max-frame-size (default 65536); larger peer frames close the connection
	IdleTimeout  time.Duration // our idle-time-out (default 60s, negative = none); heartbeats go at half the peer's
	// Authenticate decides SASL. Mechanisms offered: ANONYMOUS and PLAIN. nil accepts everything.
	Authenticate func(mechanism, user, password string) bool
	Handler      Handler
	Logger       *slog.Logger
}

// Handler receives the links the peers attach.
type Handler interface {
	// Attach is called on its own goroutine when the peer attaches a link. A non-nil error refuses the link
	// (attach without source/target, then detach(closed, error)); a *Error is used as is, anything else
	// becomes amqp:internal-error. Before returning nil the handler may set l.MaxMessageSize and
	// l.ReplyProperties.
	Attach(l *Link) error
}

// Role says which side of a link sends.
type Role bool

const (
	PeerSends    Role = false // the peer is the sender (we receive): peer's role=sender
	PeerReceives Role = true  // the peer is the receiver (we send)
)

// Described is a described value whose descriptor has no meaning for this package (e.g. a filter).
type Described struct {
	Descriptor any // uint64 or string (symbol)
	Value      any
}

// Link is one attached link.
type Link struct {
	Conn            *Conn
	Name            string
	Role            Role
	Source          string         // source address
	Target          string         // target address
	Filters         map[string]any // source filter set: key symbol -> value; a described value is *Described
	Properties      map[string]any // the peer's link properties (symbol keys as strings)
	DesiredCaps     []string
	SndSettleMode   uint8 // as requested by the peer
	RcvSettleMode   uint8
	MaxMessageSize  uint64         // set by the handler in Attach for PeerSends links (0 = unlimited)
	ReplyProperties map[string]any // set by the handler: properties for our attach reply

	l *link
}

// Delivery is a message the peer sent on a PeerSends link. Payload is the whole encoded message
// (all transfer frames joined), decodable with go-amqp's (*amqp.Message).UnmarshalBinary.
type Delivery struct {
	Format  uint32 // message-format (0, or 0x80013700 for Event Hubs batches)
	Payload []byte
	Settled bool // the peer sent it pre-settled

	link     *link
	id       uint32
	disposed bool // guarded by conn.mu
}

// Server is an AMQP 1.0 server.
type Server struct {
	s *server
}

// NewServer returns a server with the configuration, defaults filled in.
func NewServer(cfg Config) *Server { return &Server{s: newServer(cfg)} }

// Serve accepts connections until the listener is closed.
func (s *Server) Serve(l net.Listener) error { return s.s.serve(l) }

// Close closes the listener and every connection (abruptly).
func (s *Server) Close() error { return s.s.close() }

// Conns returns the live connections (for fault injection).
func (s *Server) Conns() []*Conn { return s.s.conns() }

// Conn is one connection from a peer.
type Conn struct {
	c *conn
}

// Close sends a close frame with the error (e.g. amqp:connection:forced), then closes the TCP connection.
func (c *Conn) Close(err *Error) { c.c.closeWith(err) }

// Drop closes the TCP connection abruptly, without frames.
func (c *Conn) Drop() { c.c.drop() }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.c.nc.RemoteAddr() }

// Hostname is the hostname from the peer's open.
func (c *Conn) Hostname() string {
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	return c.c.hostname
}

// Receive blocks for the next delivery on a PeerSends link. Credit is granted automatically.
func (l *Link) Receive(ctx context.Context) (*Delivery, error) { return l.l.receive(ctx) }

// Send sends one encoded message on a PeerReceives link, pre-settled, waiting for credit.
func (l *Link) Send(ctx context.Context, payload []byte) error { return l.l.send(ctx, payload) }

// Credit is the link credit the peer has currently granted.
func (l *Link) Credit() uint32 { return l.l.credit() }

// Detach detaches the link from our side with closed=true and the error (nil = no error). Called before
// the attach reply is sent (from the handler, or while it runs), it lets the attach complete if the handler
// accepts and detaches right after, so the peer sees a link error (e.g. amqp:link:stolen) rather than a
// refused attach.
func (l *Link) Detach(err *Error) error { return l.l.detach(err) }

// Done is closed when the link is detached (by either side) or its session/connection ends.
func (l *Link) Done() <-chan struct{} { return l.l.done }

// Err says why the link ended (nil for a clean peer detach).
func (l *Link) Err() error { return l.l.err() }

// Accept settles the delivery with accepted; a no-op if the peer sent it pre-settled.
func (d *Delivery) Accept() error { return d.link.dispose(d, nil, false) }

// Reject settles the delivery with rejected and the error.
func (d *Delivery) Reject(err *Error) error { return d.link.dispose(d, err, true) }
