package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/netherite-go/netherite/durable"
)

// The chain workload: an orchestration calls a sub-orchestration on the
// next partition, which calls one on the next, ChainDepth levels deep;
// completions come back up the same way. Each level notes the time of
// the episode it started in and of the episode that saw its child
// complete (its replay-safe CurrentTime), so that every hop between
// partitions is timed: down (parent's episode to child's first episode)
// and up (child's last episode to parent's next).

// ChainDepth is the number of sub-orchestration levels of one chain.
const ChainDepth = 10

// ChainResult is what the chain workload measured per hop.
type ChainResult struct {
	Depth int `json:"depth"`
	// Hops counts the hops timed (2 × depth per completed chain).
	Hops     int     `json:"hops"`
	HopP50Ms float64 `json:"hop_p50_ms"`
	HopP90Ms float64 `json:"hop_p90_ms"`
	HopP99Ms float64 `json:"hop_p99_ms"`
	// Down: a sub-orchestration start; up: its completion.
	DownP50Ms float64 `json:"down_p50_ms"`
	DownP99Ms float64 `json:"down_p99_ms"`
	UpP50Ms   float64 `json:"up_p50_ms"`
	UpP99Ms   float64 `json:"up_p99_ms"`
}

// chainInput places one level of a chain.
type chainInput struct {
	Run   string `json:"run"`
	Level int    `json:"level"`
	Depth int    `json:"depth"`
	First int    `json:"first"` // partition of level 0
	Count int    `json:"count"` // partitions
}

// chainID is the instance id of a level, placed on partition
// first+level (DESIGN §4.1: an id ending in !N is on partition N).
func chainID(in chainInput, level int) string {
	return fmt.Sprintf("chain-%s-%d!%d", in.Run, level, (in.First+level)%in.Count)
}

// registerChain adds the chain orchestrator to r.
func registerChain(r *durable.Registry) {
	durable.RegisterOrchestrator(r, "BenchChain", func(ctx durable.OrchestrationContext, in chainInput) ([]int64, error) {
		// times: this level's start, then the child's times, then the
		// moment this level saw the child complete.
		start := ctx.CurrentTime().UnixNano()
		if in.Level >= in.Depth {
			return []int64{start, start}, nil
		}
		next := in
		next.Level++
		child, err := durable.Await[[]int64](ctx.CallSubOrchestrator("BenchChain", next, durable.WithInstanceID(chainID(in, next.Level))))
		if err != nil {
			return nil, err
		}
		out := append([]int64{start}, child...)
		return append(out, ctx.CurrentTime().UnixNano()), nil
	})
}

// runChain runs cfg.N chains (closed loop) and times every hop.
func runChain(ctx context.Context, c durable.Client, cfg Config, res *Result, prog *progress) (*recorder, time.Time) {
	parts := res.Partitions
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	var mu sync.Mutex
	var down, up []time.Duration
	rec, t0 := closed(cfg, res).run(ctx, func(ctx context.Context, i int, acked func()) error {
		defer prog.add()
		in := chainInput{Run: fmt.Sprintf("%s-%d", run, i), Depth: ChainDepth, First: i % parts, Count: parts}
		id, err := c.StartOrchestration(ctx, "BenchChain", in, durable.WithStartInstanceID(chainID(in, 0)))
		if err != nil {
			return fail("start", err)
		}
		acked()
		s, err := waitStatus(ctx, c, id, durable.WithPayloads())
		if err != nil {
			return err
		}
		var times []int64
		if err := s.ReadOutput(&times); err != nil || len(times) != 2*(ChainDepth+1) {
			return &failure{kind: "wrong output", err: fmt.Errorf("chain %s: %d times, want %d (%v)", id, len(times), 2*(ChainDepth+1), err)}
		}
		// times = s0 s1 ... sD eD ... e1 e0: down hop k is s(k+1)-s(k),
		// up hop k is e(k)-e(k+1).
		mu.Lock()
		for k := 0; k < ChainDepth; k++ {
			down = append(down, time.Duration(times[k+1]-times[k]))
			e, eChild := times[2*ChainDepth+1-k], times[2*ChainDepth-k]
			up = append(up, time.Duration(e-eChild))
		}
		mu.Unlock()
		return nil
	})
	all := append(append([]time.Duration(nil), down...), up...)
	res.Chain = &ChainResult{Depth: ChainDepth, Hops: len(all),
		HopP50Ms: percentile(all, 50), HopP90Ms: percentile(all, 90), HopP99Ms: percentile(all, 99),
		DownP50Ms: percentile(down, 50), DownP99Ms: percentile(down, 99),
		UpP50Ms: percentile(up, 50), UpP99Ms: percentile(up, 99)}
	return rec, t0
}
