package amqpserver

import (
	"fmt"

	w "github.com/netherite-go/netherite/eventhubs/emulator/amqpwire"
)

// session is one session; all fields are guarded by conn.mu. Our channel equals the peer's.
type session struct {
	c       *conn
	channel uint16

	nextIncomingID       uint32 // transfer-id expected next from the peer
	incomingWindow       uint32 // transfers the peer may still send
	nextOutgoingID       uint32 // our next transfer-id
	remoteIncomingWindow uint32 // transfers we may still send
	nextDeliveryID       uint32 // our next delivery-id

	links    map[uint32]*link // by the peer's handle (our handle is the same number)
	endSent  bool
	finished bool
}

// flowLocked queues a flow frame for the session, with the link's state if l != nil. It re-grants the
// full incoming window.
func (s *session) flowLocked(l *link, echo bool) {
	s.incomingWindow = sessionWindow
	f := w.Flow{
		HasNextIncomingID: true,
		NextIncomingID:    s.nextIncomingID,
		IncomingWindow:    sessionWindow,
		NextOutgoingID:    s.nextOutgoingID,
		OutgoingWindow:    sessionWindow,
		Echo:              echo,
	}
	if l != nil {
		f.HasHandle, f.Handle = true, l.handle
		f.HasDeliveryCount = true
		f.HasLinkCredit = true
		if l.pub.Role == PeerSends {
			f.DeliveryCount, f.LinkCredit = l.rcvDeliveryCount, l.rcvCredit
		} else {
			f.DeliveryCount, f.LinkCredit = l.sndDeliveryCount, l.sndCredit
			f.Drain = l.drain
		}
	}
	s.c.queueLocked(s.channel, &f)
}

// endLocked ends the session from our side with an error.
func (s *session) endLocked(cond, format string, args ...any) {
	if s.endSent {
		return
	}
	e := &w.Error{Condition: w.Symbol(cond), Description: fmt.Sprintf(format, args...)}
	s.c.log.Info("amqp session: ending with error", "channel", s.channel, "err", e)
	s.c.queueLocked(s.channel, &w.End{Error: e})
	s.endSent = true
	s.endLinksLocked(fmt.Errorf("%w: %v", ErrSessionEnded, e))
}

// endLinksLocked ends every link of the session with err.
func (s *session) endLinksLocked(err error) {
	for h, l := range s.links {
		l.finishLocked(err)
		delete(s.links, h)
	}
	s.finished = true
}

func (s *session) handleLocked(body any) error {
	if s.endSent {
		// Waiting for the peer's end: transfers still count for the windows, the rest is ignored.
		if _, ok := body.(*w.Transfer); ok {
			s.nextIncomingID++
		}
		if _, ok := body.(*w.End); ok {
			delete(s.c.sessions, s.channel)
		}
		return nil
	}
	switch p := body.(type) {
	case *w.End:
		s.c.queueLocked(s.channel, &w.End{})
		s.endSent = true
		var err error = ErrSessionEnded
		if p.Error != nil {
			err = fmt.Errorf("%w: peer: %v", ErrSessionEnded, p.Error)
		}
		s.endLinksLocked(err)
		delete(s.c.sessions, s.channel)
	case *w.Attach:
		s.attachLocked(p)
	case *w.Flow:
		s.peerFlowLocked(p)
	case *w.Transfer:
		s.transferLocked(p)
	case *w.Disposition:
		// We send pre-settled only, and settle what we receive ourselves: a peer's disposition needs no action.
	case *w.Detach:
		l := s.links[p.Handle]
		if l == nil {
			s.endLocked(condUnattachedHandle, "detach of handle %d, which is not attached", p.Handle)
			return nil
		}
		delete(s.links, p.Handle)
		if !l.attached {
			// The handler is still deciding: the peer must see our attach before our detach.
			l.sendAttachLocked(true)
		}
		if !l.detachSent {
			s.c.queueLocked(s.channel, &w.Detach{Handle: l.handle, Closed: p.Closed})
			l.detachSent = true
		}
		var err error
		if p.Error != nil {
			err = fromWire(p.Error)
		}
		l.finishLocked(err)
	default:
		return wireErr(condNotAllowed, "unexpected %T on a session", body)
	}
	return nil
}

func (s *session) attachLocked(p *w.Attach) {
	if _, ok := s.links[p.Handle]; ok {
		s.endLocked(condHandleInUse, "attach on handle %d, which is in use", p.Handle)
		return
	}
	l := newLink(s, p)
	s.links[p.Handle] = l
	s.c.srv.goroutines.Add(1)
	go l.runAttach()
}

func (s *session) peerFlowLocked(p *w.Flow) {
	// remote-incoming-window = next-incoming-id(flow) + incoming-window(flow) - next-outgoing-id(ours);
	// without next-incoming-id our initial outgoing id (0) stands in.
	s.remoteIncomingWindow = p.NextIncomingID + p.IncomingWindow - s.nextOutgoingID
	if !p.HasHandle {
		if p.Echo {
			s.flowLocked(nil, false)
		}
		s.wakeSendersLocked()
		return
	}
	l := s.links[p.Handle]
	if l == nil {
		s.endLocked(condUnattachedHandle, "flow for handle %d, which is not attached", p.Handle)
		return
	}
	if l.pub.Role == PeerReceives {
		// link-credit(snd) = delivery-count(rcv) + link-credit(rcv) - delivery-count(snd)
		rcvCount := l.sndInitialCount
		if p.HasDeliveryCount {
			rcvCount = p.DeliveryCount
		}
		if p.HasLinkCredit {
			l.sndCredit = rcvCount + p.LinkCredit - l.sndDeliveryCount
		}
		l.drain = p.Drain
		if l.drain && !l.sending {
			// Nothing is waiting to be sent: use up the credit by advancing the delivery count.
			l.sndDeliveryCount += l.sndCredit
			l.sndCredit = 0
			s.flowLocked(l, false)
			l.drain = false
		} else if p.Echo {
			s.flowLocked(l, false)
		}
	} else if p.Echo {
		s.flowLocked(l, false)
	}
	s.wakeSendersLocked()
}

func (s *session) wakeSendersLocked() {
	for _, l := range s.links {
		if l.pub.Role == PeerReceives {
			l.wakeSender()
		}
	}
}

func (s *session) transferLocked(t *w.Transfer) {
	s.nextIncomingID++
	if s.incomingWindow == 0 {
		// We re-grant at half the window, so only a peer ignoring it gets here.
		s.endLocked(condWindowViolation, "transfer beyond the incoming window")
		return
	}
	s.incomingWindow--
	if s.incomingWindow < sessionWindow/2 {
		s.flowLocked(nil, false)
	}
	l := s.links[t.Handle]
	if l == nil {
		s.endLocked(condUnattachedHandle, "transfer on handle %d, which is not attached", t.Handle)
		return
	}
	if l.pub.Role != PeerSends {
		l.detachLocked(&w.Error{Condition: condNotAllowed, Description: "transfer on a link the peer receives on"})
		return
	}
	if !l.attached || l.detachSent {
		return // credit was never granted or the link is going away: drop
	}
	l.transferLocked(t)
}
