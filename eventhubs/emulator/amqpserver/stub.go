package amqpserver

import (
	"context"
	"errors"
	"net"
)

var errNotImplemented = errors.New("amqpserver: not implemented yet")

type server struct{ cfg Config }

func newServer(cfg Config) *server           { return &server{cfg: cfg} }
func (s *server) serve(l net.Listener) error { return errNotImplemented }
func (s *server) close() error               { return nil }
func (s *server) conns() []*Conn             { return nil }

type conn struct {
	nc       net.Conn
	hostname string
}

func (c *conn) closeWith(err *Error) {}
func (c *conn) drop()                {}

type link struct{ done chan struct{} }

func (l *link) receive(ctx context.Context) (*Delivery, error)     { return nil, errNotImplemented }
func (l *link) send(ctx context.Context, payload []byte) error     { return errNotImplemented }
func (l *link) credit() uint32                                     { return 0 }
func (l *link) detach(err *Error) error                            { return errNotImplemented }
func (l *link) err() error                                         { return errNotImplemented }
func (l *link) dispose(d *Delivery, err *Error, reject bool) error { return errNotImplemented }
