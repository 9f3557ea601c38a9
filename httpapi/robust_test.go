package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite/durable"
	"github.com/netherite-go/netherite/samples"
)

// TestMalformedRequests: every bad request is a 4xx with a JSON message.
func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{MaxBodyBytes: 1024, TaskHub: "testhub"})
	running := e.start(samples.WaitForEvent, "", "")
	big := bytes.Repeat([]byte("1"), 2048)
	long := strings.Repeat("i", 257)
	cases := []struct {
		name, method, path string
		body               []byte
		ctype              string
		code               int
		allow              string
	}{
		// Unknown routes.
		{"root", "GET", "", nil, "", 404, ""},
		{"prefix only", "GET", "/", nil, "", 404, ""},
		{"outside the prefix", "GET", "!/api/other", nil, "", 404, ""},
		{"prefix lookalike", "GET", "!/runtime/webhooks/durabletaskX/instances", nil, "", 404, ""},
		{"unknown controller", "GET", "/widgets/1", nil, "", 404, ""},
		{"unknown instance operation", "POST", "/instances/x/explode", nil, "", 404, ""},
		{"raiseEvent without a name", "POST", "/instances/x/raiseEvent", nil, "", 404, ""},
		{"raiseEvent with extra segments", "POST", "/instances/x/raiseEvent/e/f", nil, "", 404, ""},
		{"instance segment soup", "GET", "/instances/a/b/c/d/e", nil, "", 404, ""},
		{"entity segment soup", "GET", "/entities/a/b/c", nil, "", 404, ""},
		// Wrong methods.
		{"PATCH instances", "PATCH", "/instances", nil, "", 405, "GET, DELETE"},
		{"POST instance", "POST", "/instances/x", nil, "", 405, "GET, DELETE"},
		{"GET terminate", "GET", "/instances/x/terminate", nil, "", 405, "POST"},
		{"GET raiseEvent", "GET", "/instances/x/raiseEvent/e", nil, "", 405, "POST"},
		{"PUT start", "PUT", "/orchestrators/HelloSequence", nil, "", 405, "POST"},
		{"OPTIONS entities", "OPTIONS", "/entities", nil, "", 405, "GET"},
		{"HEAD entity", "HEAD", "/entities/counter/x", nil, "", 405, "GET, POST, DELETE"},
		// Bad ids and names.
		{"id too long", "GET", "/instances/" + long, nil, "", 400, ""},
		{"id with control character", "GET", "/instances/a%0Ab", nil, "", 400, ""},
		{"id with NUL", "DELETE", "/instances/a%00b", nil, "", 400, ""},
		{"id not UTF-8", "GET", "/instances/%FF%FE", nil, "", 400, ""},
		{"empty id", "POST", "/instances//terminate", nil, "", 400, ""},
		{"event name with control character", "POST", "/instances/x/raiseEvent/a%07", []byte("1"), "application/json", 400, ""},
		// Bad bodies.
		{"start with bad JSON", "POST", "/orchestrators/HelloSequence", []byte("{"), "application/json", 400, ""},
		{"start with a huge body", "POST", "/orchestrators/HelloSequence", big, "application/json", 413, ""},
		{"raise with a huge body", "POST", "/instances/" + running + "/raiseEvent/Approval", big, "application/json", 413, ""},
		{"signal with a huge body", "POST", "/entities/counter/x?op=add", big, "application/json", 413, ""},
		{"raise with bad JSON", "POST", "/instances/" + running + "/raiseEvent/Approval", []byte("[1,"), "application/json", 400, ""},
		{"raise with a bad media type", "POST", "/instances/" + running + "/raiseEvent/Approval", []byte("1"), "text/json; x=\"", 400, ""},
		// Bad query strings.
		{"bad query escape", "GET", "/instances?top=%zz", nil, "", 400, ""},
		{"bad bool", "GET", "/instances/x?showHistory=sure", nil, "", 400, ""},
		{"other task hub", "GET", "/instances?taskHub=elsewhere", nil, "", 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.ctype != "" {
				hdr = []string{"Content-Type", c.ctype}
			}
			r := e.req(c.method, c.path, c.body, hdr...)
			if r.code != c.code {
				t.Fatalf("got %s, want %d", r, c.code)
			}
			if c.allow != "" && r.hdr.Get("Allow") != c.allow {
				t.Errorf("Allow %q, want %q", r.hdr.Get("Allow"), c.allow)
			}
			if c.method != "HEAD" {
				if m := r.obj(t); m["Message"] == nil || m["Message"] == "" {
					t.Errorf("no Message: %s", r)
				}
			}
		})
	}
	// The same task hub, in any case, is fine.
	e.expect(e.get("/instances?taskHub=TestHub"), http.StatusOK)
}

// TestHugeChunkedBody: a body without Content-Length over the limit is
// cut off with 413.
func TestHugeChunkedBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{MaxBodyBytes: 1 << 10})
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte(" "), 512)
		for i := 0; i < 64; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	rq, _ := http.NewRequest(http.MethodPost, e.srv.URL+Prefix+"/orchestrators/HelloSequence", pr)
	rq.Header.Set("Content-Type", "application/json")
	res, err := e.hc.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", res.StatusCode)
	}
	e.expect(e.get("/instances/nope"), http.StatusNotFound)
}

func TestLinksWithOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{
		BaseURL:        func(r *http.Request) string { return "https://example.net:8443/" },
		TaskHub:        "My Hub",
		ConnectionName: "EventHubs",
	})
	var cs checkStatus
	r := e.expect(e.req(http.MethodPost, "/orchestrators/WaitForEvent/a%2Fb%20c?taskHub=my%20hub", nil), http.StatusAccepted)
	r.decode(t, &cs)
	want := "https://example.net:8443" + Prefix + "/instances/a%2Fb%20c?taskHub=My+Hub&connection=EventHubs"
	if cs.ID != "a/b c" || cs.StatusQueryGetURI != want || r.hdr.Get("Location") != want {
		t.Fatalf("links %+v, want status URI %s", cs, want)
	}
	// The escaped id round-trips.
	e.waitFor("a%2Fb%20c", "Running")
	r = e.expect(e.get("/instances/a%2Fb%20c"), http.StatusAccepted)
	if got := r.hdr.Get("Location"); got != "https://example.net:8443"+Prefix+"/instances/a%2Fb%20c" {
		t.Errorf("Location %q", got)
	}
	e.expect(e.postJSON("/instances/a%2Fb%20c/raiseEvent/Approval", "1"), http.StatusAccepted)
	if st := e.completed("a/b c"); string(st.Output) != "1" {
		t.Errorf("output %s", st.Output)
	}
}

// panicky is a client whose every call panics (nil embedded interface).
type panicky struct{ durable.Client }

// failing is a client whose every call fails with err.
type failing struct {
	durable.Client
	err error
}

func (f failing) GetStatus(context.Context, string, ...durable.StatusOption) (*durable.OrchestrationStatus, error) {
	return nil, f.err
}

func (f failing) Query(context.Context, durable.InstanceQuery) (*durable.InstancePage, error) {
	return nil, f.err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPanicRecoveryAndRequestLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	srv := httptest.NewServer(NewHandler(panicky{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	defer srv.Close()
	for i := 0; i < 3; i++ {
		res, err := http.Get(srv.URL + Prefix + "/instances/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), `"Message"`) {
			t.Fatalf("status %d %s", res.StatusCode, b)
		}
	}
	res, err := http.Get(srv.URL + Prefix + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", res.StatusCode)
	}
	out := logs.String()
	for _, want := range []string{"httpapi: panic", "stack=", "msg=\"http request\" method=GET path=/runtime/webhooks/durabletask/instances/x status=500 duration=",
		"path=/runtime/webhooks/durabletask/nothing status=404"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestEngineErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("x: %w", durable.ErrInstanceNotFound), 404},
		{fmt.Errorf("x: %w", durable.ErrEntityNotFound), 404},
		{fmt.Errorf("x: %w", durable.ErrInstanceExists), 409},
		{fmt.Errorf("x: %w", durable.ErrNotRunning), 410},
		{fmt.Errorf("x: %w", durable.ErrStillRunning), 412},
		{fmt.Errorf("netherite: %w: input of orchestration \"x\" is 20000000 bytes, over the payload limit of 16777216 bytes", durable.ErrPayloadTooLarge), 413},
		{fmt.Errorf("netherite: %w: invalid continuation token \"!\"", durable.ErrInvalidArgument), 400},
		{errors.New("netherite: client is closed (host stopped)"), 503},
		{context.DeadlineExceeded, 503},
		{errors.New("disk on fire"), 500},
	} {
		srv := httptest.NewServer(NewHandler(failing{err: c.err}, Options{Logger: quietLogger()}))
		for _, path := range []string{"/instances/x", "/instances"} {
			res, err := http.Get(srv.URL + Prefix + path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != c.code {
				t.Errorf("%v on %s: status %d, want %d", c.err, path, res.StatusCode, c.code)
			}
		}
		srv.Close()
	}
}

// TestConcurrentRequests: the API under concurrent use, with -race.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("conc-%d", i)
			rq, _ := http.NewRequest(http.MethodPost, e.srv.URL+Prefix+"/orchestrators/FanOutFanIn/"+id+"?timeout=20", strings.NewReader("5"))
			res, err := e.hc.Do(rq)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || strings.TrimSpace(string(b)) != "55" {
				errs <- fmt.Sprintf("%s: %d %s", id, res.StatusCode, b)
			}
			for j := 0; j < 5; j++ {
				res, err := e.hc.Post(e.srv.URL+Prefix+"/entities/counter/shared?op=add", "application/json", strings.NewReader("1"))
				if err != nil {
					errs <- err.Error()
					return
				}
				res.Body.Close()
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	e.waitEntity("/entities/counter/shared", http.StatusOK, "40")
}

// TestClientGoesAway: a client that gives up while waiting does not
// wedge the server.
func TestClientGoesAway(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rq, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+Prefix+"/orchestrators/WaitForEvent/gone?timeout=3000", nil)
	if res, err := e.hc.Do(rq); err == nil {
		res.Body.Close()
		t.Fatalf("status %d, want the client to time out", res.StatusCode)
	} else if ne, ok := errors.Unwrap(err).(net.Error); ok && !ne.Timeout() {
		t.Logf("client error: %v", err)
	}
	e.waitFor("gone", "Running")
}
