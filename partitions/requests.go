package partitions

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/netherite-go/netherite/partitions/partitionspb"
	"github.com/netherite-go/netherite/transport"
)

// Client update requests are idempotent per (client id, request id)
// (DESIGN §4.6): a client that got no answer in time sends the same
// request again with the same id, and the partition may then see it twice
// (or the first copy may have been applied and only its answer lost). The
// partition remembers the answer to each update request it applied; a
// duplicate is not applied again and gets the remembered answer, re-sent.
//
// The memory is partition state (applied by Apply, logged, checkpointed),
// so a partition that recovers from its log decides duplicates exactly as
// before the crash. It is bounded: an answer is forgotten RequestMemory
// after it was logged (by the log's clock, not the wall clock), and each
// client keeps at most RequestWindow answers per partition (the oldest go
// first). A retry that comes later than that is applied again.

// How long, and how many per client, answers to update requests are
// remembered.
const (
	RequestMemory = 10 * time.Minute
	RequestWindow = 10000
	// requestSweepEvery is how often (by logged time) the answers of
	// clients that stopped sending are swept out; a client's own answers
	// expire whenever it sends.
	requestSweepEvery = time.Minute
)

// RequestLog holds the answers to recent client update requests.
type RequestLog struct {
	// Clients maps a client id to its answers; a client with none has no
	// entry. Never nil.
	Clients map[string]*ClientRequests
	// SweptAt is when expired answers were last swept out of every
	// client.
	SweptAt time.Time
}

// ClientRequests are one client's remembered answers.
type ClientRequests struct {
	// Order lists the request ids in the order they were applied (oldest
	// first): answers expire from the front.
	Order []uint64
	// Answers maps each id in Order to its answer.
	Answers map[uint64]*RequestAnswer
}

// RequestAnswer is what an update request was answered. Update responses
// carry only an error, its code and a count.
type RequestAnswer struct {
	// At is the logged time of the event that applied the request.
	At        time.Time
	Error     string
	ErrorCode transport.ErrorCode
	Count     int
}

// clientRequestOnce applies a client request unless it is a duplicate of
// one already applied, which instead gets the first one's answer again.
// Requests without a client id or request id are not deduplicated.
func (a *applier) clientRequestOnce(req *transport.ClientRequest) {
	if req.ClientID == "" || req.RequestID == 0 || !req.Kind.IsUpdate() {
		a.clientRequest(req)
		return
	}
	if a.s.Requests == nil {
		a.s.Requests = &RequestLog{Clients: map[string]*ClientRequests{}, SweptAt: a.at}
	}
	l := a.s.Requests
	l.expire(req.ClientID, a.at)
	if c := l.Clients[req.ClientID]; c != nil {
		if ans := c.Answers[req.RequestID]; ans != nil {
			a.respond(req, &transport.ClientResponse{Error: ans.Error, ErrorCode: ans.ErrorCode, Count: ans.Count})
			return
		}
	}
	n := len(a.fx.Responses)
	a.clientRequest(req)
	ans := &RequestAnswer{At: a.at}
	for _, r := range a.fx.Responses[n:] {
		if r.ClientID == req.ClientID && r.Response.RequestID == req.RequestID {
			ans.Error, ans.ErrorCode, ans.Count = r.Response.Error, r.Response.ErrorCode, r.Response.Count
			break
		}
	}
	l.record(req.ClientID, req.RequestID, ans)
}

// expire forgets the answers older than RequestMemory: the client's own
// now, and every client's once per requestSweepEvery.
func (l *RequestLog) expire(clientID string, now time.Time) {
	cutoff := now.Add(-RequestMemory)
	if now.Sub(l.SweptAt) >= requestSweepEvery {
		l.SweptAt = now
		for _, id := range slices.Sorted(maps.Keys(l.Clients)) {
			l.expireClient(id, cutoff)
		}
		return
	}
	l.expireClient(clientID, cutoff)
}

func (l *RequestLog) expireClient(id string, cutoff time.Time) {
	c := l.Clients[id]
	if c == nil {
		return
	}
	k := 0
	for k < len(c.Order) && !c.Answers[c.Order[k]].At.After(cutoff) {
		delete(c.Answers, c.Order[k])
		k++
	}
	l.dropFront(id, c, k)
}

// dropFront forgets a client's k oldest answers (already deleted from
// Answers), and the client if none is left.
func (l *RequestLog) dropFront(id string, c *ClientRequests, k int) {
	if k == 0 {
		return
	}
	if k == len(c.Order) {
		delete(l.Clients, id)
		return
	}
	c.Order = slices.Clone(c.Order[k:]) // let the dropped front be freed
}

func (l *RequestLog) record(clientID string, reqID uint64, ans *RequestAnswer) {
	c := l.Clients[clientID]
	if c == nil {
		c = &ClientRequests{Answers: map[uint64]*RequestAnswer{}}
		l.Clients[clientID] = c
	}
	c.Order = append(c.Order, reqID)
	c.Answers[reqID] = ans
	if over := len(c.Order) - RequestWindow; over > 0 {
		for _, id := range c.Order[:over] {
			delete(c.Answers, id)
		}
		l.dropFront(clientID, c, over)
	}
}

// RequestLogSize counts the remembered answers (for tests and stats).
func (s *State) RequestLogSize() int {
	if s.Requests == nil {
		return 0
	}
	n := 0
	for _, c := range s.Requests.Clients {
		n += len(c.Order)
	}
	return n
}

func requestLogToProto(l *RequestLog) (*partitionspb.RequestLog, error) {
	if l == nil {
		return nil, nil
	}
	p := &partitionspb.RequestLog{SweptAt: timeToProto(l.SweptAt)}
	for _, id := range slices.Sorted(maps.Keys(l.Clients)) {
		c := l.Clients[id]
		if c == nil || len(c.Order) == 0 || len(c.Order) != len(c.Answers) {
			return nil, fmt.Errorf("request log of client %q is inconsistent", id)
		}
		pc := &partitionspb.ClientRequestLog{ClientId: text(id), Requests: make([]*partitionspb.RequestAnswer, len(c.Order))}
		for i, rid := range c.Order {
			a := c.Answers[rid]
			if a == nil {
				return nil, fmt.Errorf("request log of client %q: no answer to request %d", id, rid)
			}
			pc.Requests[i] = &partitionspb.RequestAnswer{RequestId: rid, At: timeToProto(a.At), Error: text(a.Error),
				ErrorCode: int64(a.ErrorCode), Count: int64(a.Count)}
		}
		p.Clients = append(p.Clients, pc)
	}
	return p, nil
}

func requestLogFromProto(p *partitionspb.RequestLog) (*RequestLog, error) {
	if p == nil {
		return nil, nil
	}
	swept, err := timeFromProto("request log sweep time", p.SweptAt)
	if err != nil {
		return nil, err
	}
	l := &RequestLog{Clients: make(map[string]*ClientRequests, len(p.Clients)), SweptAt: swept}
	for _, pc := range p.Clients {
		id := string(pc.GetClientId())
		if _, dup := l.Clients[id]; dup {
			return nil, fmt.Errorf("request log: client %q appears twice", id)
		}
		if len(pc.Requests) == 0 {
			return nil, fmt.Errorf("request log: client %q has no requests", id)
		}
		c := &ClientRequests{Order: make([]uint64, len(pc.Requests)), Answers: make(map[uint64]*RequestAnswer, len(pc.Requests))}
		for i, pa := range pc.Requests {
			at, err := timeFromProto("request answer time", pa.At)
			if err != nil {
				return nil, err
			}
			rid := pa.GetRequestId()
			if _, dup := c.Answers[rid]; dup {
				return nil, fmt.Errorf("request log: client %q: request %d appears twice", id, rid)
			}
			c.Order[i] = rid
			c.Answers[rid] = &RequestAnswer{At: at, Error: string(pa.GetError()), ErrorCode: transport.ErrorCode(pa.GetErrorCode()),
				Count: int(pa.GetCount())}
		}
		l.Clients[id] = c
	}
	return l, nil
}
