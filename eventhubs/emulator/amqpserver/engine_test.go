package amqpserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

// queueHandler is a tiny broker: links the peer sends on push to a queue named by the target address,
// links the peer receives on pop from the queue named by the source address.
type queueHandler struct {
	mu     sync.Mutex
	queues map[string]chan []byte
	links  chan *Link // every attached link, for tests that act on them
}

func newQueueHandler() *queueHandler {
	return &queueHandler{queues: map[string]chan []byte{}, links: make(chan *Link, 100)}
}

func (h *queueHandler) queue(name string) chan []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := h.queues[name]
	if q == nil {
		q = make(chan []byte, 10000)
		h.queues[name] = q
	}
	return q
}

func (h *queueHandler) Attach(l *Link) error {
	if l.Source == "refuse" || l.Target == "refuse" {
		return &Error{Condition: "amqp:not-found", Description: "no such queue"}
	}
	if l.Source == "fail" || l.Target == "fail" {
		return errors.New("plain failure")
	}
	l.ReplyProperties = map[string]any{"reply": int64(1)}
	select {
	case h.links <- l:
	default:
	}
	if l.Role == PeerSends {
		l.MaxMessageSize = 2 << 20
		q := h.queue(l.Target)
		go func() {
			for {
				d, err := l.Receive(context.Background())
				if err != nil {
					return
				}
				q <- d.Payload
				if bytes.Contains(d.Payload, []byte("reject me")) {
					d.Reject(&Error{Condition: "test:rejected", Description: "as asked"})
				} else {
					d.Accept()
				}
			}
		}()
		return nil
	}
	if l.Source == "detach-me" {
		go func() {
			l.Detach(&Error{Condition: "amqp:link:stolen", Description: "taken over"})
		}()
		return nil
	}
	q := h.queue(l.Source)
	go func() {
		for {
			select {
			case p := <-q:
				if err := l.Send(context.Background(), p); err != nil {
					return
				}
			case <-l.Done():
				return
			}
		}
	}()
	return nil
}

type testServer struct {
	*Server
	addr string
	h    *queueHandler
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	h := newQueueHandler()
	if cfg.Handler == nil {
		cfg.Handler = h
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		waitGoroutines(t, s)
	})
	return &testServer{Server: s, addr: ln.Addr().String(), h: h}
}

// waitGoroutines checks that every goroutine of the server's connections ends.
func waitGoroutines(t testing.TB, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.s.goroutines.Load() != 0 {
		if time.Now().After(deadline) {
			t.Errorf("%d server goroutines still running", s.s.goroutines.Load())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t testing.TB, addr string, opts *amqp.ConnOptions) *amqp.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if opts == nil {
		opts = &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous()}
	}
	c, err := amqp.Dial(ctx, "amqp://"+addr, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newSession(t testing.TB, c *amqp.Conn) *amqp.Session {
	t.Helper()
	s, err := c.NewSession(context.Background(), nil)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSendReceiveSettleModes(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	for _, mode := range []*amqp.SenderSettleMode{nil, amqp.SenderSettleModeUnsettled.Ptr(), amqp.SenderSettleModeSettled.Ptr(), amqp.SenderSettleModeMixed.Ptr()} {
		name := "default"
		if mode != nil {
			name = fmt.Sprint(*mode)
		}
		t.Run(name, func(t *testing.T) {
			q := "q-" + name
			snd, err := newSession(t, c).NewSender(ctx, q, &amqp.SenderOptions{SettlementMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if snd.MaxMessageSize() != 2<<20 {
				t.Errorf("max message size %d", snd.MaxMessageSize())
			}
			rcv, err := newSession(t, c).NewReceiver(ctx, q, &amqp.ReceiverOptions{Credit: 7})
			if err != nil {
				t.Fatal(err)
			}
			if rcv.Properties()["reply"] != int64(1) {
				t.Errorf("reply properties %v", rcv.Properties())
			}
			const n = 200
			for i := 0; i < n; i++ {
				if err := snd.Send(ctx, amqp.NewMessage([]byte(fmt.Sprintf("m%d", i))), nil); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			for i := 0; i < n; i++ {
				m, err := rcv.Receive(ctx, nil)
				if err != nil {
					t.Fatalf("receive %d: %v", i, err)
				}
				if got := string(m.GetData()); got != fmt.Sprintf("m%d", i) {
					t.Fatalf("message %d is %q", i, got)
				}
				if err := rcv.AcceptMessage(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if err := snd.Close(ctx); err != nil {
				t.Errorf("sender close: %v", err)
			}
			if err := rcv.Close(ctx); err != nil {
				t.Errorf("receiver close: %v", err)
			}
		})
	}
}

func TestRejectedDelivery(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	snd, err := newSession(t, c).NewSender(ctx, "rej", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = snd.Send(ctx, amqp.NewMessage([]byte("reject me")), nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != "test:rejected" {
		t.Fatalf("send of a rejected message: %v", err)
	}
	if err := snd.Send(ctx, amqp.NewMessage([]byte("fine")), nil); err != nil {
		t.Fatalf("send after a rejection: %v", err)
	}
}

func TestSASL(t *testing.T) {
	ts := startServer(t, Config{Authenticate: func(mech, user, pass string) bool {
		return mech == "PLAIN" && user == "u" && pass == "secret"
	}})
	c := dial(t, ts.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypePlain("u", "secret")})
	if _, err := c.NewSession(ctxT(t), nil); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []amqp.SASLType{amqp.SASLTypePlain("u", "wrong"), amqp.SASLTypeAnonymous()} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := amqp.Dial(ctx, "amqp://"+ts.addr, &amqp.ConnOptions{SASLType: typ})
		cancel()
		if err == nil {
			c.Close()
			t.Fatal("dial with bad credentials succeeded")
		}
	}
	// Without SASL at all, a server that authenticates refuses the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := amqp.Dial(ctx, "amqp://"+ts.addr, nil); err == nil {
		c.Close()
		t.Fatal("dial without SASL succeeded")
	}
}

func TestNoSASLWhenNotRequired(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, &amqp.ConnOptions{})
	if _, err := c.NewSession(ctxT(t), nil); err != nil {
		t.Fatal(err)
	}
}

func TestLargeMessagesBothWays(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	snd, err := newSession(t, c).NewSender(ctx, "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := newSession(t, c).NewReceiver(ctx, "big", &amqp.ReceiverOptions{Credit: 3, MaxMessageSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		body := bytes.Repeat([]byte{byte('a' + i)}, 1<<20-100+i*17)
		if err := snd.Send(ctx, amqp.NewMessage(body), nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if !bytes.Equal(m.GetData(), body) {
			t.Fatalf("message %d: got %d bytes, want %d", i, len(m.GetData()), len(body))
		}
	}
	// Over the max-message-size the server advertised: go-amqp refuses before sending.
	if err := snd.Send(ctx, amqp.NewMessage(make([]byte, 3<<20)), nil); err == nil {
		t.Fatal("oversized send accepted")
	}
}

func TestSmallPeerFrameSize(t *testing.T) {
	ts := startServer(t, Config{MaxFrameSize: 1024})
	c := dial(t, ts.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), MaxFrameSize: 512})
	ctx := ctxT(t)
	snd, err := newSession(t, c).NewSender(ctx, "small", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := newSession(t, c).NewReceiver(ctx, "small", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789"), 5000)
	for i := 0; i < 3; i++ {
		if err := snd.Send(ctx, amqp.NewMessage(body), nil); err != nil {
			t.Fatal(err)
		}
		m, err := rcv.Receive(ctx, nil)
		if err != nil || !bytes.Equal(m.GetData(), body) {
			t.Fatalf("receive: %v", err)
		}
	}
}

func TestRefusedAttach(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	s := newSession(t, c)
	_, err := s.NewSender(ctx, "refuse", nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != "amqp:not-found" || ae.Description != "no such queue" {
		t.Fatalf("refused sender: %v", err)
	}
	_, err = s.NewReceiver(ctx, "fail", nil)
	if !errors.As(err, &ae) || ae.Condition != "amqp:internal-error" {
		t.Fatalf("failed receiver: %v", err)
	}
	// The session is still usable.
	if _, err := s.NewSender(ctx, "ok", nil); err != nil {
		t.Fatalf("sender after refusals: %v", err)
	}
}

func TestServerDetachWithError(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	rcv, err := newSession(t, c).NewReceiver(ctx, "detach-me", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rcv.Receive(ctx, nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "amqp:link:stolen" {
		t.Fatalf("receive on a detached link: %v", err)
	}
}

func TestPeerDetachEndsLink(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	snd, err := newSession(t, c).NewSender(ctx, "pd", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := <-ts.h.links
	if err := snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-ctx.Done():
		t.Fatal("link not done after the peer's detach")
	}
	if l.Err() != nil {
		t.Fatalf("clean peer detach: Err = %v", l.Err())
	}
	if _, err := l.Receive(ctx); !errors.Is(err, ErrDetached) {
		t.Fatalf("Receive after detach: %v", err)
	}
}

func TestConnCloseForced(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	rcv, err := newSession(t, c).NewReceiver(ctx, "forced", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := <-ts.h.links
	conns := ts.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d conns", len(conns))
	}
	if conns[0].Hostname() == "" || conns[0].RemoteAddr() == nil {
		t.Errorf("hostname %q", conns[0].Hostname())
	}
	conns[0].Close(&Error{Condition: "amqp:connection:forced", Description: "go away"})
	_, err = rcv.Receive(ctx, nil)
	var ce *amqp.ConnError
	if !errors.As(err, &ce) || ce.RemoteErr == nil || ce.RemoteErr.Condition != "amqp:connection:forced" {
		t.Fatalf("receive on a closed connection: %v", err)
	}
	<-l.Done()
	if !errors.Is(l.Err(), ErrConnClosed) {
		t.Fatalf("link error %v", l.Err())
	}
	waitConns(t, ts, 0)
}

func TestDrop(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	rcv, err := newSession(t, c).NewReceiver(ctx, "drop", nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.Conns()[0].Drop()
	if _, err := rcv.Receive(ctx, nil); err == nil {
		t.Fatal("receive after drop succeeded")
	}
	waitConns(t, ts, 0)
}

func waitConns(t *testing.T, ts *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.Conns()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", len(ts.Conns()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHeartbeats(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: time.Second})
	c := dial(t, ts.addr, &amqp.ConnOptions{SASLType: amqp.SASLTypeAnonymous(), IdleTimeout: time.Second})
	ctx := ctxT(t)
	snd, err := newSession(t, c).NewSender(ctx, "hb", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := newSession(t, c).NewReceiver(ctx, "hb", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Idle for several idle timeouts of both sides: only heartbeats keep the connection up.
	time.Sleep(2500 * time.Millisecond)
	if err := snd.Send(ctx, amqp.NewMessage([]byte("still here")), nil); err != nil {
		t.Fatal(err)
	}
	if m, err := rcv.Receive(ctx, nil); err != nil || string(m.GetData()) != "still here" {
		t.Fatalf("receive after idling: %v", err)
	}
}

func TestManyLinksAndSessions(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			q := fmt.Sprintf("multi-%d", i)
			s, err := c.NewSession(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			snd, err := s.NewSender(ctx, q, nil)
			if err != nil {
				errs <- err
				return
			}
			rcv, err := s.NewReceiver(ctx, q, nil)
			if err != nil {
				errs <- err
				return
			}
			for j := 0; j < 50; j++ {
				want := fmt.Sprintf("%s/%d", q, j)
				if err := snd.Send(ctx, amqp.NewMessage([]byte(want)), nil); err != nil {
					errs <- err
					return
				}
				m, err := rcv.Receive(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				if string(m.GetData()) != want {
					errs <- fmt.Errorf("got %q, want %q", m.GetData(), want)
					return
				}
				rcv.AcceptMessage(ctx, m)
			}
			if err := s.Close(ctx); err != nil {
				errs <- fmt.Errorf("session close: %w", err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFiltersAndProperties(t *testing.T) {
	h := newQueueHandler()
	got := make(chan *Link, 1)
	ts := startServer(t, Config{Handler: HandlerFunc(func(l *Link) error {
		got <- l
		return h.Attach(l)
	})})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	_, err := newSession(t, c).NewReceiver(ctx, "hub/ConsumerGroups/$Default/Partitions/0", &amqp.ReceiverOptions{
		Filters:             []amqp.LinkFilter{amqp.NewSelectorFilter("amqp.annotation.x-opt-offset > '-1'")},
		Properties:          map[string]any{"com.microsoft:epoch": int64(5), "com.microsoft:receiver-name": "r1"},
		DesiredCapabilities: []string{"com.microsoft:georeplication"},
		SettlementMode:      amqp.ReceiverSettleModeFirst.Ptr(),
		TargetAddress:       "me",
	})
	if err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l.Source != "hub/ConsumerGroups/$Default/Partitions/0" || l.Target != "me" || l.Role != PeerReceives {
		t.Errorf("link %+v", l)
	}
	f, ok := l.Filters["apache.org:selector-filter:string"].(*Described)
	if !ok || f.Descriptor != uint64(0x0000468C00000004) || f.Value != "amqp.annotation.x-opt-offset > '-1'" {
		t.Errorf("filter %#v", l.Filters)
	}
	if l.Properties["com.microsoft:epoch"] != int64(5) || l.Properties["com.microsoft:receiver-name"] != "r1" {
		t.Errorf("properties %#v", l.Properties)
	}
	if len(l.DesiredCaps) != 1 || l.DesiredCaps[0] != "com.microsoft:georeplication" {
		t.Errorf("caps %v", l.DesiredCaps)
	}
	if l.RcvSettleMode != 0 || l.Name == "" || !strings.Contains(l.Conn.RemoteAddr().String(), "127.0.0.1") {
		t.Errorf("link %+v", l)
	}
}

// HandlerFunc adapts a function to Handler (tests only).
type HandlerFunc func(l *Link) error

func (f HandlerFunc) Attach(l *Link) error { return f(l) }
