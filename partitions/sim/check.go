package sim

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/partitions"
	"github.com/netherite-go/netherite/samples"
	"github.com/netherite-go/netherite/transport"
)

// check verifies the invariants of a quiet run:
//   - every request was answered (the client retries until it is), without
//     an error, and a retried request got the same answer every time;
//   - every start the client sent (acknowledged or not: requests reach the
//     queue) completed exactly once, with the right output;
//   - the counter equals the number of Signaler orchestrations, so every
//     signal across partitions was applied exactly once;
//   - the bank's total is conserved and every transfer ended;
//   - every outbox drained and no work is left;
//   - recovering each partition from its storage gives the live state.
func (w *world) check() error {
	for _, n := range w.nodes {
		n.countLoads()
	}
	if w.client.mismatch != "" {
		return w.fail("a retried request got another answer: %s", w.client.mismatch)
	}
	for _, r := range w.client.reqs {
		if !r.acked {
			return w.fail("request %d (%s %s) was never answered", r.req.RequestID, r.req.Kind, r.req.InstanceID)
		}
		if r.err != "" {
			// Every request of the workload succeeds once; a retry that was
			// applied again would fail ("exists").
			return w.fail("request %d (%s %s) failed: %s", r.req.RequestID, r.req.Kind, r.req.InstanceID, r.err)
		}
		if r.req.Kind != transport.RequestCreate {
			continue
		}
		inst := w.lookup(r.req.InstanceID)
		if inst == nil {
			return w.fail("instance %s (acknowledged=%v) does not exist", r.req.InstanceID, r.acked)
		}
		if inst.Record.Status != core.StatusCompleted {
			return w.fail("instance %s is %s, not completed (failure %+v)", inst.ID, inst.Record.Status, inst.Record.Failure)
		}
		completions := 0
		for _, e := range inst.History {
			if e.Kind == core.EventExecutionCompleted {
				completions++
			}
		}
		if completions != 1 {
			return w.fail("instance %s completed %d times", inst.ID, completions)
		}
		if inst.Record.Name == chain && string(inst.Record.Output) != "3" {
			return w.fail("instance %s: output %s, want 3", inst.ID, inst.Record.Output)
		}
		if inst.Record.Name == samples.HelloSequence {
			var out []string
			if err := json.Unmarshal(inst.Record.Output, &out); err != nil || len(out) != 3 || out[0] != "Hello Tokyo!" {
				return w.fail("instance %s: output %s", inst.ID, inst.Record.Output)
			}
		}
	}
	if n, err := w.entityInt(counterID); err != nil || n != w.cfg.Signals {
		return w.fail("counter is %d (%v), want %d: a signal was lost or applied twice", n, err, w.cfg.Signals)
	}
	total := 0
	for i := 0; i < w.cfg.Accounts; i++ {
		n, err := w.entityInt(core.NewEntityID(samples.Account, account(i)))
		if err != nil {
			return w.fail("account %d: %v", i, err)
		}
		total += n
	}
	if want := w.cfg.Accounts * startFunds; total != want {
		return w.fail("bank total is %d, want %d", total, want)
	}
	for _, n := range w.nodes {
		if len(n.st.Outbox) > 0 {
			return w.fail("p%d: outbox holds %d batches (first to p%d at %d)", n.id, len(n.st.Outbox), n.st.Outbox[0].Dest, n.st.Outbox[0].Pos)
		}
		if len(n.st.Activities) > 0 {
			return w.fail("p%d: %d activities left", n.id, len(n.st.Activities))
		}
		if err := n.replayMatches(); err != nil {
			return w.fail("p%d: %v", n.id, err)
		}
	}
	return nil
}

func (w *world) lookup(id string) *partitions.Instance {
	return w.nodes[partitions.PartitionOf(id, w.cfg.Partitions)].st.Lookup(id)
}

func (w *world) entityInt(id core.EntityID) (int, error) {
	inst := w.lookup(id.String())
	if inst == nil || inst.Entity == nil || !inst.Entity.Exists {
		return 0, fmt.Errorf("entity %s has no state", id)
	}
	var n int
	err := json.Unmarshal(inst.Entity.Value, &n)
	return n, err
}

// encodeAll encodes a state with every instance, resident or not.
func encodeAll(st *partitions.State) ([]byte, error) {
	all := map[string]*partitions.Instance{}
	for _, id := range st.IDs() {
		if inst := st.Lookup(id); inst != nil {
			all[id] = inst
		}
	}
	c := *st
	c.Instances = all
	return partitions.EncodeState(&c)
}

// replayMatches recovers the partition from its storage (checkpoint and
// log) into a fresh state and compares it with the live one.
func (n *node) replayMatches() error {
	if len(n.unlogged) > 0 {
		return fmt.Errorf("%d events not logged at the end", len(n.unlogged))
	}
	st, err := n.store.Recover(n.id, n.w.cfg.Partitions)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	a, err := encodeAll(n.st)
	if err != nil {
		return err
	}
	b, err := encodeAll(st)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("replaying the log gives another state (live %d bytes, replayed %d, positions %d/%d)", len(a), len(b), n.st.LastPos, st.LastPos)
	}
	return nil
}
