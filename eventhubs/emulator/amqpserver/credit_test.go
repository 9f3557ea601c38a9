package amqpserver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	w "github.com/netherite-go/netherite/eventhubs/emulator/amqpwire"
)

func TestManualCreditAndDrain(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	rcv, err := newSession(t, c).NewReceiver(ctx, "manual", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := <-ts.h.links
	q := ts.h.queue("manual")
	for i := 0; i < 5; i++ {
		q <- mustMessage(t, fmt.Sprint(i))
	}
	if err := rcv.IssueCredit(2); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		m, err := rcv.Receive(ctx, nil)
		if err != nil || string(m.GetData()) != fmt.Sprint(i) {
			t.Fatalf("receive %d: %v", i, err)
		}
	}
	// No credit left: nothing more arrives.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if m, err := rcv.Receive(short, nil); err == nil {
		t.Fatalf("received %q without credit", m.GetData())
	}
	if got := l.Credit(); got != 0 {
		t.Errorf("server sees credit %d", got)
	}
	// Drain with credit outstanding and nothing to send: the server gives the credit back.
	// (The handler's sender loop holds one message while it waits for credit, so empty the queue first.)
	for len(q) > 0 {
		<-q
	}
	if err := rcv.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil || string(m.GetData()) != "2" {
		t.Fatalf("receive after credit: %v", err)
	}
	if err := rcv.IssueCredit(5); err != nil {
		t.Fatal(err)
	}
	if err := rcv.DrainCredit(ctx, nil); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if got := l.Credit(); got != 0 {
		t.Errorf("credit after drain %d", got)
	}
}

func mustMessage(t *testing.T, s string) []byte {
	b, err := amqp.NewMessage([]byte(s)).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// More transfers than either side's session window: both sides must re-open their windows.
func TestSessionWindowRollover(t *testing.T) {
	ts := startServer(t, Config{})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	s := newSession(t, c)
	snd, err := s.NewSender(ctx, "roll", &amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "roll", &amqp.ReceiverOptions{Credit: 500})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*sessionWindow + 500
	errs := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := snd.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint(i))), nil); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for i := 0; i < n; i++ {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if string(m.GetData()) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.GetData())
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func TestOversizedDeliveryRejected(t *testing.T) {
	got := make(chan *Link, 1)
	ts := startServer(t, Config{Handler: HandlerFunc(func(l *Link) error {
		l.MaxMessageSize = 100
		got <- l
		return nil
	})})
	r := dialRaw(t, ts.addr)
	r.handshake()
	r.frame(w.TypeAMQP, 0, &w.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	r.read()
	r.frame(w.TypeAMQP, 0, &w.Attach{Name: "big", Handle: 0, Role: w.RoleSender, Source: &w.Source{}, Target: &w.Target{Address: "q"}})
	a, ok := r.read().(*w.Attach)
	if !ok || a.MaxMessageSize != 100 {
		t.Fatalf("attach reply %#v", a)
	}
	r.read() // flow
	l := <-got
	// 60 + 60 bytes in two frames: over the limit only once joined.
	r.frame(w.TypeAMQP, 0, &w.Transfer{Handle: 0, HasDeliveryID: true, DeliveryID: 0, DeliveryTag: []byte{0}, HasMessageFormat: true, More: true, Payload: make([]byte, 60)})
	r.frame(w.TypeAMQP, 0, &w.Transfer{Handle: 0, Payload: make([]byte, 60)})
	d, ok := r.read().(*w.Disposition)
	if !ok || !d.Settled || d.First != 0 {
		t.Fatalf("disposition %#v", d)
	}
	if rej, ok := d.State.(*w.Rejected); !ok || rej.Error == nil || rej.Error.Condition != condMessageSize {
		t.Fatalf("state %#v", d.State)
	}
	// The next, small delivery gets through to the handler.
	r.frame(w.TypeAMQP, 0, &w.Transfer{Handle: 0, HasDeliveryID: true, DeliveryID: 1, DeliveryTag: []byte{1}, HasMessageFormat: true, MessageFormat: 7, Payload: []byte("small")})
	del, err := l.Receive(ctxT(t))
	if err != nil || string(del.Payload) != "small" || del.Format != 7 || del.Settled {
		t.Fatalf("delivery %+v, %v", del, err)
	}
	if err := del.Accept(); err != nil {
		t.Fatal(err)
	}
	d, ok = r.read().(*w.Disposition)
	if _, acc := d.State.(*w.Accepted); !ok || d.First != 1 || !acc {
		t.Fatalf("disposition %#v", d)
	}
	if err := del.Accept(); err == nil {
		t.Fatal("second settlement accepted")
	}
}

func TestPeerDetachWhileHandlerDecides(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan *Link, 1)
	ts := startServer(t, Config{Handler: HandlerFunc(func(l *Link) error {
		entered <- l
		<-release
		return nil
	})})
	r := dialRaw(t, ts.addr)
	r.handshake()
	r.frame(w.TypeAMQP, 0, &w.Begin{IncomingWindow: 100, OutgoingWindow: 100})
	r.read()
	r.frame(w.TypeAMQP, 0, &w.Attach{Name: "slow", Handle: 0, Role: w.RoleReceiver, Source: &w.Source{Address: "q"}, Target: &w.Target{}})
	l := <-entered
	r.frame(w.TypeAMQP, 0, &w.Detach{Handle: 0, Closed: true})
	if a, ok := r.read().(*w.Attach); !ok || a.Source != nil {
		t.Fatalf("expected a refusing attach first, got %#v", a)
	}
	if d, ok := r.read().(*w.Detach); !ok || !d.Closed {
		t.Fatalf("expected detach, got %#v", d)
	}
	close(release)
	<-l.Done()
	// The handle is free again.
	r.frame(w.TypeAMQP, 0, &w.Attach{Name: "again", Handle: 0, Role: w.RoleReceiver, Source: &w.Source{Address: "q"}, Target: &w.Target{}})
	<-entered
	if a, ok := r.read().(*w.Attach); !ok || a.Source == nil || a.Source.Address != "q" {
		t.Fatalf("second attach reply %#v", a)
	}
}

// A Detach before the attach reply (here, from inside the handler, which then accepts) reaches the peer
// as a link error after a complete attach, not as a refusal: azeventhubs maps only that to OwnershipLost.
func TestServerDetachDuringAttach(t *testing.T) {
	ts := startServer(t, Config{Handler: HandlerFunc(func(l *Link) error {
		l.Detach(&Error{Condition: "amqp:link:stolen", Description: "too late"})
		if l.Err() == nil {
			t.Error("no error after Detach")
		}
		return nil
	})})
	c := dial(t, ts.addr, nil)
	ctx := ctxT(t)
	rcv, err := newSession(t, c).NewReceiver(ctx, "x", nil)
	if err == nil {
		_, err = rcv.Receive(ctx, nil)
	}
	var le *amqp.LinkError
	if !errors.As(err, &le) || le.RemoteErr == nil || le.RemoteErr.Condition != "amqp:link:stolen" {
		t.Fatalf("receiver: %v", err)
	}
}
