package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// Test functions, besides the samples.
const (
	kitchen = "Kitchen" // a bit of everything, for the history shapes
	boom    = "Boom"    // an activity that fails
)

func testRegistry() *durable.Registry {
	r := durable.NewRegistry()
	samples.Register(r)
	durable.RegisterActivity(r, boom, func(ctx durable.ActivityContext, _ any) (any, error) {
		return nil, errors.New("kaboom")
	})
	durable.RegisterOrchestrator(r, kitchen, func(ctx durable.OrchestrationContext, in json.RawMessage) (map[string]any, error) {
		if err := ctx.SetCustomStatus(map[string]string{"stage": "started"}); err != nil {
			return nil, err
		}
		if err := ctx.CreateTimer(time.Millisecond).Await(nil); err != nil {
			return nil, err
		}
		var greetings []string
		if err := ctx.CallSubOrchestrator(samples.HelloSequence, nil).Await(&greetings); err != nil {
			return nil, err
		}
		activityErr := ctx.CallActivity(boom, "x").Await(nil)
		var ev json.RawMessage
		if err := ctx.WaitForExternalEvent("Go").Await(&ev); err != nil {
			return nil, err
		}
		if err := ctx.SetCustomStatus(map[string]string{"stage": "done"}); err != nil {
			return nil, err
		}
		return map[string]any{"input": in, "event": ev, "greetings": greetings, "failed": activityErr != nil}, nil
	})
	return r
}

// env is a netherite host (memory storage, 4 partitions) behind the HTTP
// API on a loopback server.
type env struct {
	t    testing.TB
	host *netherite.Host
	c    durable.Client
	h    *handler
	srv  *httptest.Server
	hc   *http.Client
}

// hostOptions is memory storage with 4 partitions, or, with
// NETHERITE_HTTPAPI_BACKEND=azstorage, the Azure Storage baseline on the
// Azurite in NETHERITE_AZURITE (a fresh task hub per test, short polling),
// so that the same API tests show both backends conform.
func hostOptions(t testing.TB) netherite.Options {
	o := netherite.Options{Storage: "memory", PartitionCount: 4, TaskHub: "testhub", Logger: quietLogger()}
	if os.Getenv("NETHERITE_HTTPAPI_BACKEND") == netherite.BackendAzStorage {
		o = netherite.Options{Backend: netherite.BackendAzStorage, Storage: blobtest.Connection(t),
			TaskHub: fmt.Sprintf("api%d", time.Now().UnixNano()%1e12), Logger: quietLogger(),
			AzureStorage: netherite.AzureStorageOptions{MaxQueuePollingInterval: 100 * time.Millisecond}}
	}
	return o
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, r *durable.Registry, opts Options) *env {
	t.Helper()
	if r == nil {
		r = testRegistry()
	}
	host, err := netherite.Start(context.Background(), hostOptions(t), r)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	h := newHandler(host.Client(), opts)
	srv := httptest.NewServer(h)
	e := &env{t: t, host: host, c: host.Client(), h: h, srv: srv, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = host.Stop(ctx)
	})
	return e
}

type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func (r *resp) String() string { return fmt.Sprintf("%d %s", r.code, truncate(string(r.body), 500)) }

// decode decodes the body as JSON.
func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

func (r *resp) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// req sends a request; path is relative to Prefix unless it is a full URL
// or starts with "!" (then it is taken as is, after the "!").
func (e *env) req(method, path string, body []byte, hdr ...string) *resp {
	e.t.Helper()
	u := path
	switch {
	case strings.HasPrefix(path, "http://"):
	case strings.HasPrefix(path, "!"):
		u = e.srv.URL + path[1:]
	default:
		u = e.srv.URL + Prefix + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	rq, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		rq.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.hc.Do(rq)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &resp{code: res.StatusCode, hdr: res.Header, body: b}
}

func (e *env) get(path string) *resp { return e.req(http.MethodGet, path, nil) }

func (e *env) postJSON(path, body string) *resp {
	return e.req(http.MethodPost, path, []byte(body), "Content-Type", "application/json")
}

// expect checks the status code.
func (e *env) expect(r *resp, code int) *resp {
	e.t.Helper()
	if r.code != code {
		e.t.Fatalf("got %s, want %d", r, code)
	}
	return r
}

// start starts an orchestration through the API and returns its id.
func (e *env) start(name, id, input string) string {
	e.t.Helper()
	path := "/orchestrators/" + name
	if id != "" {
		path += "/" + id
	}
	r := e.expect(e.postJSON(path, input), http.StatusAccepted)
	var cs checkStatus
	r.decode(e.t, &cs)
	if id != "" && cs.ID != id {
		e.t.Fatalf("started %q, want id %q", cs.ID, id)
	}
	return cs.ID
}

// waitFor polls the status until runtimeStatus is want.
func (e *env) waitFor(id, want string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.get("/instances/" + id)
		if r.code == http.StatusOK || r.code == http.StatusAccepted {
			m := r.obj(e.t)
			if m["runtimeStatus"] == want {
				return m
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("instance %s: last answer %s, want runtimeStatus %s", id, r, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEntity polls the entity until GET answers code.
func (e *env) waitEntity(path string, code int, body string) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := e.get(path)
		if r.code == code && (body == "" || strings.TrimSpace(string(r.body)) == body) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("GET %s: last answer %s, want %d %s", path, r, code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// completed waits for an instance to end, through the client.
func (e *env) completed(id string) *durable.OrchestrationStatus {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := e.c.WaitForCompletion(ctx, id, durable.WithPayloads())
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) entityState(name, key string) (int, bool) {
	m, err := e.c.GetEntity(context.Background(), core.NewEntityID(name, key), true)
	if err != nil {
		return 0, false
	}
	var n int
	_ = m.ReadState(&n)
	return n, true
}
