package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/durable"
)

// childEnv marks a process as the load child of crash-recovery; its value
// is the child's spec (JSON).
const childEnv = "NETHERITE_BENCH_CRASH_CHILD"

// childSpec is what the crash-recovery child runs.
type childSpec struct {
	Storage      string  `json:"storage"`
	Partitions   int     `json:"partitions"`
	N            int     `json:"n"`
	Rate         float64 `json:"rate"`
	CacheBytes   int64   `json:"cache_bytes"`
	PersistFirst bool    `json:"persist_first"`
}

// RunChildIfRequested makes this process the load child of
// crash-recovery when the environment says it is one: it runs the load
// and exits, never returning. Otherwise it returns at once. Call it first
// in main, and in TestMain of a test binary that runs crash-recovery
// (the workload re-executes its own binary).
func RunChildIfRequested() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	if err := runChild(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "crash-recovery child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// lineWriter writes whole lines, each in one write, so that a kill never
// leaves half a line.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, s+"\n")
}

// runChild starts a host on the spec's directory and starts hello5
// orchestrations on an open-loop schedule, reporting "ready", then "ack
// ID" for each acknowledged start and "done ID" for each completion on
// stdout, until it is killed. It ends when stdin closes (its parent is
// gone).
func runChild(spec string, stdin io.Reader, stdout io.Writer) error {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	r := durable.NewRegistry()
	Register(r)
	cfg := Config{Partitions: s.Partitions, Storage: s.Storage, CacheBytes: s.CacheBytes, PersistStepsFirst: s.PersistFirst}
	h, err := netherite.Start(ctx, hostOptions(cfg, ""), r)
	if err != nil {
		return err
	}
	defer h.Stop(context.Background())
	out := &lineWriter{w: stdout}
	out.line("ready")
	c := h.Client()
	(&openLoop{n: s.N, rate: s.Rate}).run(ctx, func(ctx context.Context, i int, acked func()) error {
		id, err := c.StartOrchestration(ctx, "BenchHello5", "world")
		if err != nil {
			return fail("start", err)
		}
		acked()
		out.line("ack " + id)
		if err := waitCompleted(ctx, c, id); err != nil {
			return err
		}
		out.line("done " + id)
		return nil
	})
	out.line("finished")
	<-ctx.Done() // wait to be killed, or for the parent to go away
	return nil
}

// tailBuffer keeps the last bytes written to it (a child's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// childLog is what the parent learned from the child's stdout.
type childLog struct {
	// killAfter is the number of acknowledged starts that closes the
	// read's enoughAcks channel.
	killAfter int

	mu    sync.Mutex
	acked []string
	done  map[string]bool
}

func (l *childLog) read(r io.Reader, ready, enoughAcks chan<- struct{}) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		kind, id, _ := strings.Cut(sc.Text(), " ")
		l.mu.Lock()
		switch kind {
		case "ready":
			close(ready)
		case "ack":
			if l.acked = append(l.acked, id); len(l.acked) == l.killAfter {
				close(enoughAcks)
			}
		case "done":
			l.done[id] = true
		}
		l.mu.Unlock()
	}
}

// runCrashRecovery starts a host in a child process on local disk, runs
// hello5 on an open-loop schedule, kills the child with SIGKILL at a
// random moment of the schedule (no Stop, no checkpoint), restarts a host
// on the same directory in this process, and times the restart until the
// first query answers. It then waits for every start the child had
// acknowledged: Completed and Failed count those.
func runCrashRecovery(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Storage == "memory" || isAzure(cfg.Storage) {
		return nil, fmt.Errorf("bench: crash-recovery runs on a local directory, not %q", redact(cfg.Storage))
	}
	if cfg.Storage == "" {
		dir, err := os.MkdirTemp("", "netherite-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Storage = dir
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("crash-recovery: find own binary: %w", err)
	}
	spec, err := json.Marshal(childSpec{Storage: cfg.Storage, Partitions: cfg.Partitions, N: cfg.N, Rate: cfg.Rate,
		CacheBytes: cfg.CacheBytes, PersistFirst: cfg.PersistStepsFirst})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	stderr := &tailBuffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("crash-recovery: start child: %w", err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		stdin.Close()
	}()
	log := &childLog{done: map[string]bool{}, killAfter: min(max(1, cfg.killAfterAcks), cfg.N)}
	ready, enoughAcks, readDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readDone)
		log.read(stdout, ready, enoughAcks)
	}()
	select {
	case <-ready:
	case <-readDone:
		cmd.Wait()
		exited = true
		return nil, fmt.Errorf("crash-recovery: child ended before it was ready: %s", stderr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Kill at a random moment within the schedule's middle 80%, but not
	// before the first start was acknowledged (there is nothing to
	// recover before; tests may ask for more).
	readyAt := time.Now()
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0))
	window := float64(cfg.N) / cfg.Rate
	killAt := readyAt.Add(time.Duration((0.1 + 0.8*rng.Float64()) * window * float64(time.Second)))
	select {
	case <-enoughAcks:
	case <-readDone:
		return nil, fmt.Errorf("crash-recovery: child ended before its first start: %s", stderr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := sleepUntil(ctx, killAt); err != nil {
		return nil, err
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
		return nil, fmt.Errorf("crash-recovery: kill child: %w", err)
	}
	kill := time.Since(readyAt)
	cmd.Wait()
	exited = true
	<-readDone

	res := newResult(cfg, hostOptions(cfg, ""), "")
	res.Mode, res.LatencyFrom, res.OfferedPerS = modeOpen, "restart", cfg.Rate
	res.Seed, res.KillAfterS = cfg.Seed, kill.Seconds()
	log.mu.Lock()
	acked := append([]string(nil), log.acked...)
	done := make(map[string]bool, len(log.done))
	for id := range log.done {
		done[id] = true
	}
	res.AckedBeforeKill, res.CompletedBeforeKill = len(acked), len(done)
	log.mu.Unlock()
	if len(acked) == 0 {
		return res, fmt.Errorf("crash-recovery: the child acknowledged no start in %v: %s", kill, stderr)
	}

	r := durable.NewRegistry()
	Register(r)
	// Starts acknowledged per second of the schedule until the kill (each
	// start holds one slot of 1/rate, as in the open loop).
	res.AchievedPerS = float64(res.AckedBeforeKill) / (kill.Seconds() + 1/cfg.Rate)
	// A restart that fails fails every acknowledged start: none is
	// dropped from the count.
	failAll := func(phase string, err error) (*Result, error) {
		rec := newRecorder(nil)
		rec.fail(fail(phase, err), len(acked))
		rec.stats().fill(res, time.Now())
		return res, fmt.Errorf("crash-recovery: %s: %w", phase, err)
	}
	t1 := time.Now()
	h, err := netherite.Start(ctx, hostOptions(cfg, ""), r)
	if err != nil {
		return failAll("restart", err)
	}
	defer h.Stop(context.Background())
	res.RestartSeconds = time.Since(t1).Seconds()
	res.Partitions = h.Options().PartitionCount
	if err := firstQuery(ctx, h.Client()); err != nil {
		return failAll("first query", err)
	}
	res.RecoverySeconds = time.Since(t1).Seconds()
	res.ReplayedEvents, res.ReplayedBytes = h.Replayed()

	// Every acknowledged start must complete, exactly as if no crash had
	// happened. Those in flight at the kill come first: their latencies,
	// from the restart, and DrainSeconds tell how long recovery took to
	// finish them. Then those the child saw complete, whose completion
	// must have survived (counted, not timed).
	c := h.Client()
	var inFlight, finished []string
	for _, id := range acked {
		if done[id] {
			finished = append(finished, id)
		} else {
			inFlight = append(inFlight, id)
		}
	}
	rec := newRecorder(nil)
	checkAll(ctx, c, inFlight, rec, t1)
	res.DrainSeconds = time.Since(t1).Seconds()
	checkAll(ctx, c, finished, rec, time.Time{})
	res.Seconds = time.Since(t1).Seconds() + kill.Seconds()
	st := rec.stats()
	st.fill(res, t1)
	hostStats(h, cfg.Workload, res)
	if res.Failed > 0 {
		return res, fmt.Errorf("crash-recovery: %d of %d acknowledged starts did not complete after the restart (first: %v)", res.Failed, len(acked), st.First)
	}
	return res, nil
}

// checkAll waits for the instances ids to complete, 256 at a time, and
// records each outcome in rec, with its latency from since (a failure,
// or a success that is not timed, when since is zero).
func checkAll(ctx context.Context, c durable.Client, ids []string, rec *recorder, since time.Time) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			switch err := waitCompleted(ctx, c, id); {
			case err != nil:
				rec.fail(err, 1)
			case since.IsZero():
				rec.okUntimed()
			default:
				rec.ok(time.Since(since))
			}
		}()
	}
	wg.Wait()
}

// redact keeps account keys out of messages.
func redact(storage string) string {
	if isAzure(storage) {
		return "an Azure Storage account"
	}
	return storage
}
