package main

// The multi-process test: `netherite serve` as three processes on the Event
// Hubs emulator and Azurite, as the README shows, two hosts that each run
// half of the partitions and a client-only one with the HTTP API. This test
// binary plays the netherite binary (TestMain runs the command line when
// cliArgsEnv is set). The test itself is a client too (a client-only host),
// and drives hello sequences, fan-outs, scheduled starts (durable timers)
// and bank transfers under entity locks across partitions; it kills one host
// process with SIGKILL in the middle, restarts it, and checks that every
// acknowledged orchestration completed exactly once and that the bank total
// is conserved.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/durable/durabletest"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/samples"
)

// cliArgsEnv, set in a child's environment, makes this test binary run the
// command line with these arguments (separated by newlines) and exit.
const cliArgsEnv = "NETHERITE_TEST_CLI_ARGS"

// runCLIIfRequested is called by TestMain.
func runCLIIfRequested() {
	args, ok := os.LookupEnv(cliArgsEnv)
	if !ok {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, strings.Split(args, "\n"), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// proc is a `netherite serve` child process.
type proc struct {
	t    *testing.T
	name string
	args []string
	cmd  *exec.Cmd
	addr string
	logs *tailLog
}

// tailLog keeps the end of a child's stderr, for failure messages.
type tailLog struct {
	mu  sync.Mutex
	buf []byte
}

func (l *tailLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 16<<10 {
		l.buf = l.buf[len(l.buf)-16<<10:]
	}
	return len(p), nil
}

func (l *tailLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// startServe starts `netherite serve args...` and waits until it serves.
func startServe(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, logs: &tailLog{}}
	p.start()
	return p
}

func (p *proc) start() {
	t := p.t
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), cliArgsEnv+"="+strings.Join(append([]string{"serve", "-addr", "127.0.0.1:0"}, p.args...), "\n"))
	cmd.Stderr = p.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_ = p.cmd.Wait()
		}
	})
	// The first line says where it serves: "... on http://ADDR".
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, addr, ok := strings.Cut(sc.Text(), " on http://"); ok {
				ready <- addr
			}
		}
		close(ready)
		io.Copy(io.Discard, out)
	}()
	select {
	case addr, ok := <-ready:
		if !ok {
			t.Fatalf("%s exited before serving:\n%s", p.name, p.logs)
		}
		p.addr = addr
	case <-time.After(90 * time.Second):
		t.Fatalf("%s did not start serving within 90 s:\n%s", p.name, p.logs)
	}
}

func (p *proc) kill() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		p.t.Fatalf("%s did not die by SIGKILL (%v):\n%s", p.name, err, p.logs)
	}
}

// stop stops the process gracefully (SIGTERM) and checks its exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		p.t.Errorf("%s: %v\n%s", p.name, err, p.logs)
	}
}

const (
	mpPartitions = 12
	mpAccounts   = 6
	mpFunds      = 1000
)

func mpAccount(i int) core.EntityID {
	return core.NewEntityID(samples.Account, fmt.Sprintf("acct%d!%d", i, i*2%mpPartitions))
}

func TestMultiProcessEventHubs(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	storage := blobtest.Connection(t)
	eh := emulatortest.Get(t)
	hub := fmt.Sprintf("mp%d", time.Now().UnixNano()%1e12)
	prefix := hub + "-"
	common := []string{"-storage", storage, "-taskhub", hub, "-transport", eh.ConnectionString, "-eventhubs-prefix", prefix,
		"-eventhubs-admin", eh.AdminURL}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The task hub and its hubs, made by `netherite taskhub create`.
	var out, errb strings.Builder
	if code := run(ctx, append([]string{"taskhub", "create", "-partitions", fmt.Sprint(mpPartitions)}, common...), &out, &errb); code != 0 {
		t.Fatalf("taskhub create: exit %d: %s", code, errb.String())
	}
	opts := netherite.Options{Storage: storage, TaskHub: hub, Transport: eh.ConnectionString, EventHubsPrefix: prefix,
		EventHubsAdminURL: eh.AdminURL}
	t.Cleanup(func() {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), append([]string{"taskhub", "delete"}, common...), &out, &errb); code != 0 {
			t.Logf("taskhub delete: %s", errb.String())
		}
	})
	out.Reset()
	if code := run(ctx, append([]string{"taskhub", "info"}, common...), &out, &errb); code != 0 || !strings.Contains(out.String(), prefix+"partitions") {
		t.Fatalf("taskhub info: exit %d: %s%s", code, out.String(), errb.String())
	}

	hostArgs := append([]string{"-lease", "15s"}, common...)
	a := startServe(t, "host A (0-5)", append([]string{"-partitions-owned", "0-5"}, hostArgs...)...)
	b := startServe(t, "host B (6-11)", append([]string{"-partitions-owned", "6-11"}, hostArgs...)...)
	front := startServe(t, "client-only", append([]string{"-partitions-owned", "none"}, common...)...)

	// The test's own client: a host that runs no partition.
	r := durable.NewRegistry()
	samples.Register(r)
	copts := opts
	copts.Partitions = []int{}
	ch, err := netherite.Start(ctx, copts, r)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop(context.Background())
	c := ch.Client()

	for i := 0; i < mpAccounts; i++ {
		if err := c.SignalEntity(ctx, mpAccount(i), "deposit", mpFunds); err != nil {
			t.Fatal(err)
		}
	}

	// Through the client-only process's HTTP API: a hello sequence.
	api := "http://" + front.addr + "/runtime/webhooks/durabletask"
	resp, err := http.Post(api+"/orchestrators/HelloSequence/http-hello!3", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("HTTP start: %v %v\n%s", resp, err, front.logs)
	}
	resp.Body.Close()

	// The load: started in rounds from the test; host A is killed after
	// the first round is acknowledged and restarted.
	var mu sync.Mutex
	acked := map[string]string{}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	startRound := func(round, n int) {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < n; i += 4 {
					id := fmt.Sprintf("r%d-%d!%d", round, i, i%mpPartitions)
					var name string
					var input any
					var sopts []durable.StartOption
					switch i % 4 {
					case 0:
						name = samples.HelloSequence
					case 1:
						name, input = samples.FanOutFanIn, 10
					case 2:
						// A scheduled start: a durable timer.
						name = samples.HelloSequence
						sopts = append(sopts, durable.WithStartTime(time.Now().Add(500*time.Millisecond)))
					case 3:
						mu.Lock()
						from := rng.Intn(mpAccounts)
						to := (from + 1 + rng.Intn(mpAccounts-1)) % mpAccounts
						mu.Unlock()
						name, input = samples.Transfer, samples.TransferRequest{From: mpAccount(from).Key, To: mpAccount(to).Key, Amount: 1 + i%7}
					}
					sopts = append(sopts, durable.WithStartInstanceID(id))
					if _, err := c.StartOrchestration(ctx, name, input, sopts...); err != nil {
						t.Errorf("start %s: %v", id, err)
						continue
					}
					mu.Lock()
					acked[id] = name
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	startRound(0, 40)
	a.kill()
	// Partitions 0-5 are down until host A is back (after its leases
	// expire): requests to them wait in Event Hubs, and the client retries
	// them meanwhile (deduplicated).
	round1 := make(chan struct{})
	go func() {
		defer close(round1)
		startRound(1, 40)
	}()
	a.start()
	<-round1
	startRound(2, 20)
	if t.Failed() {
		t.FailNow()
	}

	want := map[string]string{
		samples.HelloSequence: `["Hello Tokyo!","Hello Seattle!","Hello London!"]`,
		samples.FanOutFanIn:   "385",
	}
	for id, name := range acked {
		s, err := c.WaitForCompletion(ctx, id, durable.WithPayloads(), durable.WithHistory())
		if err != nil {
			t.Fatalf("acknowledged %s (%s): %v\nhost A:\n%s", id, name, err, a.logs)
		}
		if s.RuntimeStatus != core.StatusCompleted {
			t.Fatalf("acknowledged %s (%s): %s %v", id, name, s.RuntimeStatus, s.Failure)
		}
		if w, ok := want[name]; ok && string(s.Output) != w {
			t.Fatalf("%s (%s): output %s, want %s", id, name, s.Output, w)
		}
		if name == samples.Transfer && string(s.Output) != "true" {
			t.Fatalf("transfer %s: output %s", id, s.Output)
		}
		checkOnce(t, id, s)
	}
	total := 0
	for i := 0; i < mpAccounts; i++ {
		m, err := c.GetEntity(ctx, mpAccount(i), true)
		if err != nil {
			t.Fatal(err)
		}
		var bal int
		if err := m.ReadState(&bal); err != nil {
			t.Fatal(err)
		}
		total += bal
	}
	if total != mpAccounts*mpFunds {
		t.Fatalf("bank total %d, want %d", total, mpAccounts*mpFunds)
	}

	// The HTTP-started instance, read through the client-only process.
	resp, err = http.Get(api + "/instances/http-hello!3")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		RuntimeStatus string   `json:"runtimeStatus"`
		Output        []string `json:"output"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.RuntimeStatus != "Completed" || len(st.Output) != 3 {
		t.Fatalf("HTTP status of http-hello!3: %+v %v", st, err)
	}
	t.Logf("%d acknowledged orchestrations across 2 host processes (one killed and restarted) completed exactly once; bank total conserved",
		len(acked))
	front.stop()
	b.stop()
	a.stop()
}

// checkOnce checks that an instance's history records one completion and
// each task's result once.
func checkOnce(t *testing.T, id string, s *durable.OrchestrationStatus) {
	t.Helper()
	if err := durabletest.CheckExactlyOnce(s.History); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
}
