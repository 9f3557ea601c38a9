package amqpserver

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultMaxFrameSize = 65536
	defaultIdleTimeout  = 60 * time.Second
	// sessionWindow is the incoming window (in transfer frames) we grant each session, re-granted at half.
	sessionWindow = 10000
	// linkCreditWindow is the credit kept open on each link the peer sends on.
	linkCreditWindow = 1000
	// unlimitedMessageCap bounds a delivery on a link whose handler set no MaxMessageSize.
	unlimitedMessageCap = 256 << 20
	// closeTimeout bounds how long we wait for the peer's close after sending ours.
	closeTimeout = 2 * time.Second
	// writeTimeout bounds one write burst: a peer that reads nothing for this long is dropped.
	writeTimeout = 30 * time.Second
)

type server struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	live      map[*conn]struct{}
	closed    bool

	goroutines atomic.Int64 // running goroutines of connections (tests check it returns to 0)
}

func newServer(cfg Config) *server {
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = defaultMaxFrameSize
	}
	if cfg.MaxFrameSize < 512 {
		cfg.MaxFrameSize = 512
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.ContainerID == "" {
		cfg.ContainerID = "netherite-amqpserver"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &server{cfg: cfg, log: log, listeners: map[net.Listener]struct{}{}, live: map[*conn]struct{}{}}
}

func (s *server) serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.live[c] = struct{}{}
		s.mu.Unlock()
		s.goroutines.Add(1)
		go c.run()
	}
}

func (s *server) remove(c *conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
}

func (s *server) close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	for l := range s.listeners {
		if e := l.Close(); e != nil && err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drop()
	}
	return err
}

func (s *server) conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.live))
	for c := range s.live {
		out = append(out, c.pub)
	}
	return out
}
