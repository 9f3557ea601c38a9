package sim

import (
	"encoding/json"
	"fmt"
	"github.com/netherite-go/netherite"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// The workload's functions: the samples (hello sequence, bank transfers
// under entity locks), and Signaler, which signals the shared counter once.
const (
	signaler   = "Signaler"
	chain      = "Chain"
	counterKey = "total"
	startFunds = 100
)

var counterID = core.NewEntityID(samples.Counter, counterKey)

// newExecutor returns the SDK's replay executor over the workload, with
// ids that depend only on the order of calls (the run is sequential).
func newExecutor() partitions.Executor {
	r := durable.NewRegistry()
	samples.Register(r)
	durable.RegisterOrchestrator(r, signaler, func(ctx durable.OrchestrationContext, n int) (int, error) {
		if err := ctx.SignalEntity(counterID, "add", 1); err != nil {
			return 0, err
		}
		return n, nil
	})
	// Chain waits on a durable timer, runs a hello sequence as a
	// sub-orchestration on another partition, and continues as new n times.
	durable.RegisterOrchestrator(r, chain, func(ctx durable.OrchestrationContext, n int) (int, error) {
		if err := ctx.CreateTimer(time.Second).Await(nil); err != nil {
			return 0, err
		}
		var out []string
		child := fmt.Sprintf("%s-child%d!%d", ctx.InstanceID(), n, n+1)
		if err := ctx.CallSubOrchestrator(samples.HelloSequence, nil, durable.WithInstanceID(child)).Await(&out); err != nil {
			return 0, err
		}
		if n > 0 {
			ctx.ContinueAsNew(n - 1)
			return 0, nil
		}
		return len(out), nil
	})
	seq := 0
	return netherite.WorkExecutor(durable.NewExecutor(r, durable.ExecutorOptions{NewID: func() string {
		seq++
		return fmt.Sprintf("sim-id-%d", seq)
	}}))
}

// request is one client request the run makes, and what became of it.
type request struct {
	req    *transport.ClientRequest
	sent   bool
	sentAt time.Time // of the last copy
	tries  int
	acked  bool
	err    string
}

// retryAfter is how long the client waits for an answer before it sends
// a request again (with the same request id), as a real client does after
// a timeout.
const retryAfter = 3 * time.Second

// client sends the workload's requests, one at a time at random moments,
// straight into the partitions' input queues (a send to Event Hubs either
// succeeds or fails; the network's faults are on the way back), and
// records which were acknowledged.
type client struct {
	w    *world
	reqs []*request
	next int
	byID map[uint64]*request
	// mismatch is the first duplicate answer that differed from the
	// first answer to its request.
	mismatch string
}

func newClient(w *world) *client {
	c := &client{w: w, byID: map[uint64]*request{}}
	cfg := w.cfg
	for i := 0; i < cfg.Accounts; i++ {
		c.signal(core.NewEntityID(samples.Account, account(i)), "deposit", startFunds)
	}
	for i := 0; i < cfg.Hellos; i++ {
		c.start(samples.HelloSequence, fmt.Sprintf("hello-%d", i), nil)
	}
	for i := 0; i < cfg.Signals; i++ {
		c.start(signaler, fmt.Sprintf("signal-%d", i), i)
	}
	for i := 0; i < cfg.Chains; i++ {
		c.start(chain, fmt.Sprintf("chain-%d", i), 2)
	}
	for i := 0; i < cfg.Transfers; i++ {
		from := w.rng.Intn(cfg.Accounts)
		to := (from + 1 + w.rng.Intn(cfg.Accounts-1)) % cfg.Accounts
		c.start(samples.Transfer, fmt.Sprintf("transfer-%d", i),
			samples.TransferRequest{From: account(from), To: account(to), Amount: 1 + w.rng.Intn(60)})
	}
	return c
}

func account(i int) string { return fmt.Sprintf("acct%d", i) }

func (c *client) add(req *transport.ClientRequest) {
	req.ClientID = "sim-client"
	req.RequestID = uint64(len(c.reqs) + 1)
	r := &request{req: req}
	c.reqs = append(c.reqs, r)
	c.byID[req.RequestID] = r
}

func (c *client) start(name, id string, input any) {
	b, _ := json.Marshal(input)
	ev := core.NewEvent(core.EventExecutionStarted, epoch)
	ev.Name, ev.Input, ev.InstanceID, ev.ExecutionID = name, b, id, "exec-"+id
	c.add(&transport.ClientRequest{Kind: transport.RequestCreate, InstanceID: id, Event: ev})
}

func (c *client) signal(id core.EntityID, op string, input any) {
	b, _ := json.Marshal(input)
	ev := core.NewEvent(core.EventEntityOperationSignaled, epoch)
	ev.Name, ev.Input, ev.InstanceID, ev.RequestID = op, b, id.String(), fmt.Sprintf("signal-%s-%d", id, len(c.reqs))
	c.add(&transport.ClientRequest{Kind: transport.RequestSignalEntity, InstanceID: id.String(), Event: ev})
}

func (c *client) pending() bool { return c.next < len(c.reqs) }

// send appends the next request to its partition's queue; with faults on,
// sometimes twice (a send that timed out after it went through, retried).
func (c *client) send() error {
	r := c.reqs[c.next]
	c.next++
	r.sent = true
	r.req.Timestamp = c.w.now
	c.put(r)
	if c.w.faults && c.w.rng.Float64() < c.w.cfg.DupRate {
		c.w.res.Duplicated++
		c.put(r)
	}
	return nil
}

func (c *client) put(r *request) {
	r.tries++
	r.sentAt = c.w.now
	to := partitions.PartitionOf(r.req.InstanceID, c.w.cfg.Partitions)
	c.w.nodes[to].queue = append(c.w.nodes[to].queue, &transport.Packet{Request: r.req})
	c.w.note("client %s %s (request %d, try %d) to p%d", r.req.Kind, r.req.InstanceID, r.req.RequestID, r.tries, to)
}

// overdue lists the sent requests without an answer for retryAfter.
func (c *client) overdue() []*request {
	var out []*request
	for _, r := range c.reqs[:c.next] {
		if !r.acked && c.w.now.Sub(r.sentAt) >= retryAfter {
			out = append(out, r)
		}
	}
	return out
}

// unanswered reports whether a sent request has no answer yet (the
// client retries it when it is overdue).
func (c *client) unanswered() bool {
	for _, r := range c.reqs[:c.next] {
		if !r.acked {
			return true
		}
	}
	return false
}

// retry sends an overdue request again, with the same request id.
func (c *client) retry() error {
	o := c.overdue()
	c.put(o[c.w.rng.Intn(len(o))])
	return nil
}

// receive takes a response in; duplicates are harmless.
func (c *client) receive(p *transport.Packet) {
	if p.Response == nil {
		return
	}
	r := c.byID[p.Response.RequestID]
	if r == nil {
		return
	}
	if r.acked {
		if p.Response.Error != r.err && c.mismatch == "" {
			c.mismatch = fmt.Sprintf("request %d (%s %s) was answered %q, then %q", r.req.RequestID, r.req.Kind,
				r.req.InstanceID, r.err, p.Response.Error)
		}
		return
	}
	r.acked, r.err = true, p.Response.Error
	if r.req.Kind == transport.RequestCreate && r.err == "" {
		c.w.res.Acknowledged++
	}
}
