package emulator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/netherite-go/netherite/eventhubs/emulator/amqpserver"
)

// AMQP error conditions the emulator uses.
const (
	condNotFound        = "amqp:not-found"
	condStolen          = "amqp:link:stolen"
	condUnauthorized    = "amqp:unauthorized-access"
	condOutOfRange      = "com.microsoft:argument-out-of-range"
	condInternal        = "amqp:internal-error"
	condNotImplemented  = "amqp:not-implemented"
	condDecodeError     = "amqp:decode-error"
	condInvalidField    = "amqp:invalid-field"
	condDetachForced    = "amqp:link:detach-forced"
	condSizeExceeded    = "amqp:link:message-size-exceeded"
	receiverEpochProp   = "com.microsoft:epoch"
	receiverNameProp    = "com.microsoft:receiver-name"
	receiverBatch       = 256 // events taken from a partition at a time
	rpcReplyWaitTimeout = 10 * time.Second
)

func amqpErr(cond, format string, args ...any) *amqpserver.Error {
	return &amqpserver.Error{Condition: cond, Description: fmt.Sprintf(format, args...)}
}

// Attach implements amqpserver.Handler.
func (e *Emulator) Attach(l *amqpserver.Link) error {
	if l.Role == amqpserver.PeerSends {
		switch addr := l.Target; {
		case addr == "$cbs":
			return e.attachRPC(l, LinkCBS, e.handleCBS)
		case strings.EqualFold(addr, "$management"):
			return e.attachRPC(l, LinkManagement, e.handleManagement)
		default:
			return e.attachSender(l)
		}
	}
	switch addr := l.Source; {
	case addr == "$cbs":
		return e.attachReply(l, LinkCBS)
	case strings.EqualFold(addr, "$management"):
		return e.attachReply(l, LinkManagement)
	default:
		return e.attachReceiver(l)
	}
}

// track registers a link for the fault hooks and runs fn on its own
// goroutine; the link is unregistered when fn returns.
func (e *Emulator) track(l *amqpserver.Link, info *LinkInfo, fn func(ctx context.Context)) {
	e.linksMu.Lock()
	e.links[l] = info
	e.linksMu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.linksMu.Lock()
			delete(e.links, l)
			e.linksMu.Unlock()
		}()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-l.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		fn(ctx)
	}()
}

// ---- entity addresses ----

// parseSenderAddress parses "hub" or "hub/Partitions/N".
func parseSenderAddress(addr string) (hub string, partition int, ok bool) {
	parts := strings.Split(strings.Trim(addr, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], -1, true
	case len(parts) == 3 && strings.EqualFold(parts[1], "Partitions"):
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			return parts[0], -2, true
		}
		return parts[0], n, true
	}
	return "", 0, false
}

// parseReceiverAddress parses "hub/ConsumerGroups/cg/Partitions/N".
func parseReceiverAddress(addr string) (hub, cg string, partition int, ok bool) {
	parts := strings.Split(strings.Trim(addr, "/"), "/")
	if len(parts) != 5 || !strings.EqualFold(parts[1], "ConsumerGroups") || !strings.EqualFold(parts[3], "Partitions") {
		return "", "", 0, false
	}
	n, err := strconv.Atoi(parts[4])
	if err != nil {
		n = -2
	}
	return parts[0], parts[2], n, true
}

// stripHost accepts addresses given as full URIs ("amqp://host/hub").
func stripHost(addr string) string {
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		if _, path, ok := strings.Cut(rest, "/"); ok {
			return path
		}
	}
	return addr
}

// ---- senders ----

func (e *Emulator) attachSender(l *amqpserver.Link) error {
	addr := stripHost(l.Target)
	name, pid, ok := parseSenderAddress(addr)
	if !ok {
		return amqpErr(condNotFound, "the address %q is not an event hub or a partition of one", addr)
	}
	h := e.currentBroker().hub(name)
	if h == nil {
		return amqpErr(condNotFound, "the messaging entity %q could not be found", name)
	}
	if pid < -1 || pid >= len(h.partitions) {
		return amqpErr(condOutOfRange, "the partition of %q is not in [0, %d]", addr, len(h.partitions)-1)
	}
	if err := e.authorized(l, addr); err != nil {
		return err
	}
	l.MaxMessageSize = MaxMessageSize
	info := &LinkInfo{Kind: LinkSender, Name: l.Name, Address: addr, Hub: h.name, Partition: pid}
	e.track(l, info, func(ctx context.Context) { e.serveSender(ctx, l, h, pid) })
	return nil
}

func (e *Emulator) serveSender(ctx context.Context, l *amqpserver.Link, h *hub, pid int) {
	go func() {
		select {
		case <-h.gone:
			if h.deleted.Load() {
				l.Detach(amqpErr(condNotFound, "the event hub %q was deleted", h.name))
			}
		case <-ctx.Done():
		}
	}()
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		if err := e.store(ctx, h, pid, d); err != nil {
			var ae *amqpserver.Error
			if !errors.As(err, &ae) {
				ae = amqpErr(condInternal, "%v", err)
			}
			d.Reject(ae)
			continue
		}
		d.Accept()
	}
}

// store unpacks a delivery and appends its events to one partition.
func (e *Emulator) store(ctx context.Context, h *hub, pid int, d *amqpserver.Delivery) error {
	delay, reject := e.sendFault()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if reject != nil {
		return reject
	}
	if len(d.Payload) > MaxMessageSize {
		return amqpErr(condSizeExceeded, "the message of %d bytes exceeds the limit of %d bytes", len(d.Payload), MaxMessageSize)
	}
	events, key, err := unpack(d.Format, d.Payload)
	if err != nil {
		return amqpErr(condDecodeError, "%v", err)
	}
	if len(events) == 0 {
		return nil
	}
	var p *partition
	if pid >= 0 {
		p = h.partitions[pid]
	} else {
		p = h.partitionFor(key)
	}
	if err := p.append(events, key); err != nil {
		if errors.Is(err, errBadMessage) {
			return amqpErr(condDecodeError, "%v", err)
		}
		if h.deleted.Load() {
			return amqpErr(condNotFound, "the event hub %q was deleted", h.name)
		}
		return amqpErr(condInternal, "%v", err)
	}
	return nil
}

// ---- receivers ----

func (e *Emulator) attachReceiver(l *amqpserver.Link) error {
	addr := stripHost(l.Source)
	name, cgName, pid, ok := parseReceiverAddress(addr)
	if !ok {
		return amqpErr(condNotFound, "the address %q is not a partition of a consumer group of an event hub", addr)
	}
	h := e.currentBroker().hub(name)
	if h == nil {
		return amqpErr(condNotFound, "the messaging entity %q could not be found", name)
	}
	cg, ok := h.consumerGroup(cgName)
	if !ok {
		return amqpErr(condNotFound, "the consumer group %q of %q could not be found", cgName, h.name)
	}
	if pid < 0 || pid >= len(h.partitions) {
		return amqpErr(condOutOfRange, "the partition of %q is not in [0, %d]", addr, len(h.partitions)-1)
	}
	if err := e.authorized(l, addr); err != nil {
		return err
	}
	var expr string
	for k, v := range l.Filters {
		if k != selectorFilterName {
			continue
		}
		if d, ok := v.(*amqpserver.Described); ok {
			v = d.Value
		}
		s, ok := v.(string)
		if !ok {
			return amqpErr(condInvalidField, "the selector filter is a %T, not a string", v)
		}
		expr = s
	}
	f, err := parseSelector(expr)
	if err != nil {
		return amqpErr(condNotImplemented, "%v", err)
	}
	p := h.partitions[pid]
	slot := &receiverSlot{name: l.Name}
	if n, ok := l.Properties[receiverNameProp].(string); ok && n != "" {
		slot.name = n
	}
	switch v := l.Properties[receiverEpochProp].(type) {
	case nil:
	case int64:
		slot.hasEpoch, slot.epoch = true, v
	case int32:
		slot.hasEpoch, slot.epoch = true, int64(v)
	case int:
		slot.hasEpoch, slot.epoch = true, int64(v)
	default:
		return amqpErr(condInvalidField, "the epoch is a %T, not a long", v)
	}
	slot.kick = func(cond, desc string) { l.Detach(amqpErr(cond, "%s", desc)) }
	if err := p.attachReceiver(strings.ToLower(cg), slot); err != nil {
		// Completed then detached at once, as Event Hubs does: the client
		// reports OwnershipLost (a refused attach would look like a
		// connection problem and be retried).
		l.Detach(amqpErr(condStolen, "%v", err))
		return nil
	}
	start := p.startPosition(f)
	info := &LinkInfo{Kind: LinkReceiver, Name: l.Name, Address: addr, Hub: h.name, Partition: pid, ConsumerGroup: cg}
	if slot.hasEpoch {
		ep := slot.epoch
		info.Epoch = &ep
	}
	e.track(l, info, func(ctx context.Context) {
		defer p.detachReceiver(strings.ToLower(cg), slot)
		e.serveReceiver(ctx, l, h, p, start)
	})
	return nil
}

// serveReceiver delivers the events of the partition from sequence number
// next on, pre-settled, as the link's credit allows.
func (e *Emulator) serveReceiver(ctx context.Context, l *amqpserver.Link, h *hub, p *partition, next int64) {
	for {
		evs, n, wake := p.read(next, receiverBatch)
		if len(evs) == 0 {
			select {
			case <-wake:
				continue
			case <-h.gone:
				if h.deleted.Load() {
					l.Detach(amqpErr(condNotFound, "the event hub %q was deleted", h.name))
				}
				return
			case <-ctx.Done():
				return
			}
		}
		for _, ev := range evs {
			if err := l.Send(ctx, ev.Message); err != nil {
				return
			}
		}
		next = n
	}
}

// ---- $cbs and $management ----

// rpcHandler answers one request: status code, description, body value.
type rpcHandler func(l *amqpserver.Link, req *amqp.Message) (int32, string, any)

func (e *Emulator) attachRPC(l *amqpserver.Link, kind LinkKind, handle rpcHandler) error {
	l.MaxMessageSize = MaxMessageSize
	info := &LinkInfo{Kind: kind, Name: l.Name, Address: l.Target, Partition: -1}
	e.track(l, info, func(ctx context.Context) {
		for {
			d, err := l.Receive(ctx)
			if err != nil {
				return
			}
			var req amqp.Message
			if err := req.UnmarshalBinary(d.Payload); err != nil {
				d.Reject(amqpErr(condDecodeError, "%v", err))
				continue
			}
			d.Accept()
			status, desc, body := handle(l, &req)
			if req.Properties == nil || req.Properties.ReplyTo == nil {
				continue // nobody to answer
			}
			appProps := map[string]any{
				"status-code":        status,
				"status-description": desc,
			}
			if cond := statusCondition(status); cond != "" {
				appProps["error-condition"] = cond
			}
			resp := &amqp.Message{
				Properties:            &amqp.MessageProperties{CorrelationID: req.Properties.MessageID},
				ApplicationProperties: appProps,
				Value:                 body,
			}
			payload, err := resp.MarshalBinary()
			if err != nil {
				e.cfg.Logger.Error("event hubs emulator: encoding a response", "err", err)
				continue
			}
			reply := e.replyLink(ctx, l.Conn, *req.Properties.ReplyTo)
			if reply == nil {
				e.cfg.Logger.Warn("event hubs emulator: no reply link", "reply-to", *req.Properties.ReplyTo)
				continue
			}
			if err := reply.Send(ctx, payload); err != nil {
				continue
			}
		}
	})
	return nil
}

// statusCondition is the AMQP error condition of a failed request.
func statusCondition(status int32) string {
	switch status {
	case 400:
		return condOutOfRange
	case 401:
		return condUnauthorized
	case 404:
		return condNotFound
	}
	if status >= 400 {
		return condInternal
	}
	return ""
}

// attachReply registers a link that receives the responses sent to its
// target address.
func (e *Emulator) attachReply(l *amqpserver.Link, kind LinkKind) error {
	key := replyKey{conn: l.Conn, addr: l.Target}
	e.linksMu.Lock()
	e.replies[key] = l
	close(e.replyCh)
	e.replyCh = make(chan struct{})
	e.linksMu.Unlock()
	info := &LinkInfo{Kind: kind, Name: l.Name, Address: l.Source, Partition: -1}
	e.track(l, info, func(ctx context.Context) {
		<-ctx.Done()
		e.linksMu.Lock()
		if e.replies[key] == l {
			delete(e.replies, key)
		}
		e.linksMu.Unlock()
	})
	return nil
}

// replyLink finds the link of the connection whose target is addr,
// waiting a little for it to attach.
func (e *Emulator) replyLink(ctx context.Context, conn *amqpserver.Conn, addr string) *amqpserver.Link {
	timeout := time.NewTimer(rpcReplyWaitTimeout)
	defer timeout.Stop()
	for {
		e.linksMu.Lock()
		l, ch := e.replies[replyKey{conn: conn, addr: addr}], e.replyCh
		e.linksMu.Unlock()
		if l != nil {
			return l
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-timeout.C:
			return nil
		}
	}
}

// handleCBS answers put-token: any token is accepted, unless StrictAuth
// asks to verify it.
func (e *Emulator) handleCBS(l *amqpserver.Link, req *amqp.Message) (int32, string, any) {
	if op, _ := req.ApplicationProperties["operation"].(string); op != "put-token" {
		return 400, fmt.Sprintf("unsupported $cbs operation %q", op), nil
	}
	audience, _ := req.ApplicationProperties["name"].(string)
	token, _ := req.Value.(string)
	if e.cfg.StrictAuth {
		if err := verifySAS(token, e.cfg.KeyName, e.cfg.Key, audience, time.Now()); err != nil {
			return 401, "unauthorized: " + err.Error(), nil
		}
		exp := time.Now().Add(time.Hour)
		if s, ok := req.ApplicationProperties["expiration"].(string); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				exp = time.Unix(n, 0)
			}
		}
		e.putClaim(l.Conn, resourcePath(audience), exp)
	}
	return 202, "Accepted", nil
}

// putClaim records a verified token of a connection, and forgets the
// claims of closed connections and expired ones.
func (e *Emulator) putClaim(c *amqpserver.Conn, audience string, exp time.Time) {
	e.mu.Lock()
	live := map[*amqpserver.Conn]bool{}
	for _, lc := range e.srv.Conns() {
		live[lc] = true
	}
	e.mu.Unlock()
	now := time.Now()
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	for conn, m := range e.claims {
		for aud, t := range m {
			if !now.Before(t) {
				delete(m, aud)
			}
		}
		if len(m) == 0 || !live[conn] {
			delete(e.claims, conn)
		}
	}
	m := e.claims[c]
	if m == nil {
		m = map[string]time.Time{}
		e.claims[c] = m
	}
	m[audience] = exp
}

// authorized checks, with StrictAuth, that the connection put a valid
// token for the entity (or a parent of it) through $cbs.
func (e *Emulator) authorized(l *amqpserver.Link, entity string) error {
	if !e.cfg.StrictAuth {
		return nil
	}
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	now := time.Now()
	want := strings.ToLower(strings.Trim(entity, "/"))
	for aud, exp := range e.claims[l.Conn] {
		_, path, _ := strings.Cut(aud, "/") // drop the host
		if now.Before(exp) && (path == "" || want == path || strings.HasPrefix(want, path+"/")) {
			return nil
		}
	}
	return amqpErr(condUnauthorized, "no valid token was put for %q", entity)
}

// handleManagement answers READ of hub and partition properties.
func (e *Emulator) handleManagement(l *amqpserver.Link, req *amqp.Message) (int32, string, any) {
	props := req.ApplicationProperties
	if op, _ := props["operation"].(string); op != "READ" {
		return 400, fmt.Sprintf("unsupported $management operation %q", op), nil
	}
	name, _ := props["name"].(string)
	if e.cfg.StrictAuth {
		token, _ := props["security_token"].(string)
		if err := verifySAS(token, e.cfg.KeyName, e.cfg.Key, "", time.Now()); err != nil {
			return 401, "unauthorized: " + err.Error(), nil
		}
	}
	h := e.currentBroker().hub(name)
	if h == nil {
		return 404, fmt.Sprintf("the messaging entity %q could not be found", name), nil
	}
	switch typ, _ := props["type"].(string); typ {
	case "com.microsoft:eventhub":
		return 200, "OK", map[string]any{
			"name":                  h.name,
			"type":                  "com.microsoft:eventhub",
			"created_at":            h.created,
			"partition_count":       int32(len(h.partitions)),
			"partition_ids":         h.partitionIDs(),
			"georeplication_factor": int64(1),
		}
	case "com.microsoft:partition":
		ps, _ := props["partition"].(string)
		pid, err := strconv.Atoi(ps)
		if err != nil || pid < 0 || pid >= len(h.partitions) || strconv.Itoa(pid) != ps {
			return 400, fmt.Sprintf("the partition %q of %q is not in [0, %d]", ps, h.name, len(h.partitions)-1), nil
		}
		in := h.partitions[pid].info()
		return 200, "OK", map[string]any{
			"name":                          h.name,
			"type":                          "com.microsoft:partition",
			"partition":                     ps,
			"begin_sequence_number":         in.begin,
			"last_enqueued_sequence_number": in.last,
			"last_enqueued_offset":          strconv.FormatInt(in.lastOffset, 10),
			"last_enqueued_time_utc":        in.lastTime,
			"is_partition_empty":            in.empty,
		}
	default:
		return 400, fmt.Sprintf("unsupported $management type %q", typ), nil
	}
}
