package amqpserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	w "github.com/netherite-go/netherite/eventhubs/emulator/amqpwire"
)

// link is the state of one link; fields below mu-comment are guarded by conn.mu.
type link struct {
	s      *session
	pub    *Link
	handle uint32 // the peer's handle, which we use as ours too
	peer   *w.Attach
	done   chan struct{}

	// guarded by conn.mu
	attached   bool // our attach reply is sent
	detachSent bool
	finished   bool
	doneErr    error
	// Detach was called before our attach reply: once the handler accepts, the link is attached and
	// detached at once with this error (so the peer sees a link error, not a refused attach).
	pendingDetach    bool
	pendingDetachErr *w.Error

	// PeerSends: we receive.
	rcvDeliveryCount uint32
	rcvCredit        uint32
	queue            []*Delivery
	head             int
	notify           chan struct{}
	partial          *Delivery
	tooBig           bool

	// PeerReceives: we send.
	sendMu           sync.Mutex // one Send at a time, so that multi-frame deliveries do not interleave
	sndInitialCount  uint32
	sndDeliveryCount uint32
	sndCredit        uint32
	peerMaxMessage   uint64
	drain            bool
	sending          bool
	sendWake         chan struct{}
}

func newLink(s *session, p *w.Attach) *link {
	l := &link{
		s:        s,
		handle:   p.Handle,
		peer:     p,
		done:     make(chan struct{}),
		notify:   make(chan struct{}, 1),
		sendWake: make(chan struct{}, 1),
	}
	pub := &Link{
		Conn:          s.c.pub,
		Name:          p.Name,
		Role:          Role(p.Role),
		SndSettleMode: p.SndSettleMode,
		RcvSettleMode: p.RcvSettleMode,
		Properties:    convertFields(p.Properties),
		l:             l,
	}
	if p.Source != nil {
		pub.Source = p.Source.Address
		if len(p.Source.Filter) > 0 {
			pub.Filters = make(map[string]any, len(p.Source.Filter))
			for _, e := range p.Source.Filter {
				if k, ok := fromWireValue(e.Key).(string); ok {
					pub.Filters[k] = fromWireValue(e.Value)
				}
			}
		}
	}
	if p.Target != nil {
		pub.Target = p.Target.Address
	}
	for _, c := range p.DesiredCaps {
		pub.DesiredCaps = append(pub.DesiredCaps, string(c))
	}
	if pub.Role == PeerSends {
		l.rcvDeliveryCount = p.InitialDeliveryCount
	} else {
		l.peerMaxMessage = p.MaxMessageSize
	}
	l.pub = pub
	return l
}

// runAttach asks the handler about the link and answers the peer.
func (l *link) runAttach() {
	c := l.s.c
	defer c.srv.goroutines.Add(-1)
	var err error
	if h := c.srv.cfg.Handler; h != nil {
		err = callAttach(h, l.pub)
	} else {
		err = &Error{Condition: "amqp:not-found", Description: "no handler"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.finished && !l.pendingDetach {
		return // the peer detached, or the session or connection ended, meanwhile
	}
	if err != nil {
		var e *w.Error
		var ae *Error
		if errors.As(err, &ae) {
			e = toWire(ae)
		} else {
			e = &w.Error{Condition: condInternal, Description: err.Error()}
		}
		l.sendAttachLocked(true)
		c.queueLocked(l.s.channel, &w.Detach{Handle: l.handle, Closed: true, Error: e})
		l.detachSent = true
		l.finishLocked(fromWire(e))
		return
	}
	l.sendAttachLocked(false)
	if l.pendingDetach {
		c.queueLocked(l.s.channel, &w.Detach{Handle: l.handle, Closed: true, Error: l.pendingDetachErr})
		l.detachSent = true
		return
	}
	if l.pub.Role == PeerSends {
		l.rcvCredit = linkCreditWindow
		l.s.flowLocked(l, false)
	}
}

// callAttach runs the handler, turning a panic into a refusal.
func callAttach(h Handler, l *Link) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("attach handler panicked: %v", r)
		}
	}()
	return h.Attach(l)
}

// sendAttachLocked sends our attach: role flipped, settle modes as requested, source and target echoed
// (left out when refusing, which tells the peer that no terminus was created).
func (l *link) sendAttachLocked(refuse bool) {
	p := l.peer
	r := &w.Attach{
		Name:                 p.Name,
		Handle:               l.handle,
		Role:                 !p.Role,
		HasSndSettleMode:     p.HasSndSettleMode,
		SndSettleMode:        p.SndSettleMode,
		HasRcvSettleMode:     p.HasRcvSettleMode,
		RcvSettleMode:        p.RcvSettleMode,
		HasInitDeliveryCount: true,
		InitialDeliveryCount: l.sndInitialCount,
	}
	if !refuse {
		r.Source, r.Target = p.Source, p.Target
		if l.pub.Role == PeerSends {
			r.MaxMessageSize = l.pub.MaxMessageSize
		}
		if len(l.pub.ReplyProperties) > 0 {
			r.Properties = toWireFields(l.pub.ReplyProperties)
		}
	}
	l.attached = true
	l.s.c.queueLocked(l.s.channel, r)
}

func (l *link) finishLocked(err error) {
	if l.finished {
		return
	}
	l.finished = true
	l.doneErr = err
	close(l.done)
}

// detachLocked detaches the link from our side.
func (l *link) detachLocked(e *w.Error) {
	if l.detachSent || l.finished {
		return
	}
	if !l.attached {
		// Our attach reply is not sent yet (the handler is deciding): runAttach detaches after it.
		l.pendingDetach, l.pendingDetachErr = true, e
	} else {
		l.s.c.queueLocked(l.s.channel, &w.Detach{Handle: l.handle, Closed: true, Error: e})
		l.detachSent = true
	}
	if e != nil {
		l.finishLocked(fromWire(e))
	} else {
		l.finishLocked(ErrDetached)
	}
}

func (l *link) detach(err *Error) error {
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || c.closeSent {
		return ErrConnClosed
	}
	l.detachLocked(toWire(err))
	return nil
}

func (l *link) err() error {
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return l.doneErr
}

func (l *link) endedErrLocked() error {
	if l.doneErr != nil {
		return l.doneErr
	}
	return ErrDetached
}

func (l *link) credit() uint32 {
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.pub.Role == PeerReceives {
		return l.sndCredit
	}
	return l.rcvCredit
}

// transferLocked takes one transfer frame on a link the peer sends on.
func (l *link) transferLocked(t *w.Transfer) {
	d := l.partial
	if d == nil {
		if t.Aborted {
			return
		}
		if !t.HasDeliveryID {
			l.detachLocked(&w.Error{Condition: condNotAllowed, Description: "first transfer of a delivery without delivery-id"})
			return
		}
		if l.rcvCredit == 0 {
			l.detachLocked(&w.Error{Condition: condTransferLimit, Description: "transfer without link credit"})
			return
		}
		d = &Delivery{Format: t.MessageFormat, Settled: t.Settled, link: l, id: t.DeliveryID}
		if !t.More {
			d.Payload = make([]byte, len(t.Payload))
			copy(d.Payload, t.Payload)
		}
		l.partial = d
	} else {
		if t.Aborted {
			l.partial, l.tooBig = nil, false
			return
		}
		d.Settled = d.Settled || t.Settled
		if !l.tooBig {
			d.Payload = append(d.Payload, t.Payload...)
		}
	}
	if d.Payload == nil && t.More {
		d.Payload = append(make([]byte, 0, 4*len(t.Payload)), t.Payload...)
	}
	if max := l.maxMessageSize(); uint64(len(d.Payload)) > max {
		l.tooBig = true
		d.Payload = nil
	}
	if t.More {
		return
	}
	l.partial = nil
	l.rcvDeliveryCount++
	if l.rcvCredit > 0 {
		l.rcvCredit--
	}
	if l.tooBig {
		l.tooBig = false
		if !d.Settled {
			l.s.c.queueLocked(l.s.channel, &w.Disposition{Role: w.RoleReceiver, First: d.id, Settled: true,
				State: &w.Rejected{Error: &w.Error{Condition: condMessageSize,
					Description: fmt.Sprintf("message larger than %d bytes", l.maxMessageSize())}}})
		}
		d.disposed = true
		l.topUpLocked()
		return
	}
	l.queue = append(l.queue, d)
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// maxMessageSize is the handler's limit, or without one a hard cap so that a peer cannot make us buffer
// an endless delivery.
func (l *link) maxMessageSize() uint64 {
	if l.pub.MaxMessageSize != 0 {
		return l.pub.MaxMessageSize
	}
	return unlimitedMessageCap
}

// topUpLocked re-grants credit once half of the window is used up.
func (l *link) topUpLocked() {
	if !l.attached || l.detachSent || l.finished {
		return
	}
	queued := uint32(len(l.queue) - l.head)
	if l.rcvCredit+queued <= linkCreditWindow/2 {
		l.rcvCredit = linkCreditWindow - queued
		l.s.flowLocked(l, false)
	}
}

func (l *link) receive(ctx context.Context) (*Delivery, error) {
	if l.pub.Role != PeerSends {
		return nil, errors.New("amqpserver: Receive on a link the peer receives on")
	}
	c := l.s.c
	for {
		c.mu.Lock()
		if l.head < len(l.queue) {
			d := l.queue[l.head]
			l.queue[l.head] = nil
			l.head++
			if l.head == len(l.queue) {
				l.queue, l.head = l.queue[:0], 0
			}
			l.topUpLocked()
			c.mu.Unlock()
			return d, nil
		}
		if l.finished {
			err := l.endedErrLocked()
			c.mu.Unlock()
			return nil, err
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.notify:
		case <-l.done:
		}
	}
}

func (l *link) wakeSender() {
	select {
	case l.sendWake <- struct{}{}:
	default:
	}
}

// waitSendLocked waits, releasing conn.mu, until cond holds, the link ends, or ctx is done.
func (l *link) waitSendLocked(ctx context.Context, cond func() bool) error {
	c := l.s.c
	for {
		if l.finished {
			return l.endedErrLocked()
		}
		if cond() {
			return nil
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			c.mu.Lock()
			return ctx.Err()
		case <-l.sendWake:
		case <-l.done:
		}
		c.mu.Lock()
	}
}

func (l *link) send(ctx context.Context, payload []byte) error {
	if l.pub.Role != PeerReceives {
		return errors.New("amqpserver: Send on a link the peer sends on")
	}
	if l.peerMaxMessage != 0 && uint64(len(payload)) > l.peerMaxMessage {
		return fmt.Errorf("amqpserver: message of %d bytes exceeds the peer's max-message-size %d", len(payload), l.peerMaxMessage)
	}
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	c := l.s.c
	s := l.s
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := l.waitSendLocked(ctx, func() bool {
		return l.attached && l.sndCredit > 0 && s.remoteIncomingWindow > 0 && !c.closeSent
	}); err != nil {
		return err
	}
	var tag [4]byte
	binary.BigEndian.PutUint32(tag[:], l.sndDeliveryCount)
	t := w.Transfer{
		Handle:           l.handle,
		HasDeliveryID:    true,
		DeliveryID:       s.nextDeliveryID,
		DeliveryTag:      tag[:],
		HasMessageFormat: true,
		Settled:          true,
	}
	s.nextDeliveryID++
	l.sndCredit--
	l.sndDeliveryCount++
	l.sending = true
	room := int(c.peerMaxFrame) - w.TransferOverhead(&t)
	rest := payload
	for {
		n := min(len(rest), room)
		t.Payload, t.More = rest[:n], n < len(rest)
		c.out = w.AppendTransferFrame(c.out, s.channel, &t)
		s.nextOutgoingID++
		s.remoteIncomingWindow--
		rest = rest[n:]
		if !t.More {
			break
		}
		if s.remoteIncomingWindow == 0 {
			c.signal()
			if err := l.waitSendLocked(ctx, func() bool { return s.remoteIncomingWindow > 0 }); err != nil {
				if !l.finished && !c.closeSent {
					// Abort the half-sent delivery so the peer discards it.
					t.Payload, t.More, t.Aborted = nil, false, true
					c.out = w.AppendTransferFrame(c.out, s.channel, &t)
					s.nextOutgoingID++
					c.signal()
				}
				l.sending = false
				return err
			}
		}
	}
	l.sending = false
	if l.drain {
		l.sndDeliveryCount += l.sndCredit
		l.sndCredit = 0
		l.drain = false
		s.flowLocked(l, false)
	}
	c.signal()
	return nil
}

func (l *link) dispose(d *Delivery, e *Error, reject bool) error {
	if d.Settled {
		return nil
	}
	c := l.s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.disposed {
		return errors.New("amqpserver: delivery already settled")
	}
	if l.s.finished || c.closeSent || c.stopping {
		return l.endedErrLocked()
	}
	d.disposed = true
	var state w.Performative = &w.Accepted{}
	if reject {
		state = &w.Rejected{Error: toWire(e)}
	}
	c.queueLocked(l.s.channel, &w.Disposition{Role: w.RoleReceiver, First: d.id, Settled: true, State: state})
	return nil
}

// fromWireValue turns decoded values into the plain Go values of this package's API: symbols become
// strings, described values *Described, lists and arrays []any, maps with string keys map[string]any.
func fromWireValue(v any) any {
	switch v := v.(type) {
	case w.Symbol:
		return string(v)
	case *w.Described:
		return &Described{Descriptor: fromWireValue(v.Descriptor), Value: fromWireValue(v.Value)}
	case w.List:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = fromWireValue(e)
		}
		return out
	case w.Array:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = fromWireValue(e)
		}
		return out
	case w.Map:
		out := make(map[string]any, len(v))
		for _, e := range v {
			k, ok := fromWireValue(e.Key).(string)
			if !ok {
				return v // keys that are not strings: left as the codec's ordered map
			}
			out[k] = fromWireValue(e.Value)
		}
		return out
	}
	return v
}

func convertFields(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = fromWireValue(v)
	}
	return out
}

// toWireValue is the reverse for values the handler supplies; string descriptors become symbols.
func toWireValue(v any) any {
	switch v := v.(type) {
	case *Described:
		d := toWireValue(v.Descriptor)
		if s, ok := d.(string); ok {
			d = w.Symbol(s)
		}
		return &w.Described{Descriptor: d, Value: toWireValue(v.Value)}
	case []any:
		out := make(w.List, len(v))
		for i, e := range v {
			out[i] = toWireValue(e)
		}
		return out
	case map[string]any:
		return toWireFields(v)
	}
	return v
}

func toWireFields(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = toWireValue(v)
	}
	return out
}
