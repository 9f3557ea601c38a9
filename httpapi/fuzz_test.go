package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// fuzzRegistry holds functions that stay cheap whatever their input (the
// samples' FanOutFanIn would start n activities for an input n).
func fuzzRegistry() *durable.Registry {
	r := durable.NewRegistry()
	durable.RegisterOrchestrator(r, "Echo", func(ctx durable.OrchestrationContext, in durable.RawPayload) (durable.RawPayload, error) {
		return in, nil
	})
	durable.RegisterOrchestrator(r, "WaitForEvent", func(ctx durable.OrchestrationContext, _ any) (durable.RawPayload, error) {
		var p durable.RawPayload
		err := ctx.WaitForExternalEvent("Approval").Await(&p)
		return p, err
	})
	durable.RegisterEntity(r, "Counter", func(ctx durable.EntityContext) error {
		var n int
		_ = ctx.GetState(&n)
		switch ctx.Operation() {
		case "add":
			var d int
			if err := ctx.GetInput(&d); err != nil {
				return err
			}
			return ctx.SetState(n + d)
		case "delete":
			ctx.DeleteState()
			return nil
		}
		return fmt.Errorf("unknown operation %q", ctx.Operation())
	})
	return r
}

// FuzzHandler sends random requests: every answer is below 500 (except the
// documented 500 for a failed instance with
// returnInternalServerErrorOnFailure and 501 for rewind), and the server
// keeps answering.
func FuzzHandler(f *testing.F) {
	e := newEnv(f, fuzzRegistry(), Options{MaxBodyBytes: 4096, TaskHub: "testhub", Registry: fuzzRegistry()})
	e.h.maxWait = 2 * time.Second
	// Something to find.
	ctxStart := func(name, id, in string) {
		rq, _ := http.NewRequest(http.MethodPost, e.srv.URL+Prefix+"/orchestrators/"+name+"/"+id, strings.NewReader(in))
		if res, err := e.hc.Do(rq); err == nil {
			res.Body.Close()
		}
	}
	ctxStart("WaitForEvent", "w1", "")
	ctxStart("Echo", "e1", `{"a":1}`)

	seeds := []struct{ method, path, query, ctype, body string }{
		{"POST", "orchestrators/Echo", "", "application/json", `{"x":[1,2,3]}`},
		{"POST", "orchestrators/Echo/abc", "timeout=1&pollingInterval=0.1", "application/json", `"hi"`},
		{"POST", "orchestrators/Nope", "", "", ``},
		{"POST", "orchestrators/Echo/%01", "", "", ``},
		{"GET", "instances/w1", "showHistory=true&showHistoryOutput=true&showInput=false", "", ``},
		{"GET", "instances/e1", "returnInternalServerErrorOnFailure=true", "", ``},
		{"GET", "instances", "top=2&runtimeStatus=Running,Completed&createdTimeFrom=2020-01-01", "", ``},
		{"GET", "instances", "top=-1", "", ``},
		{"DELETE", "instances", "createdTimeFrom=2020-01-01T00:00:00Z&runtimeStatus=Completed", "", ``},
		{"DELETE", "instances", "", "", ``},
		{"DELETE", "instances/e1", "", "", ``},
		{"POST", "instances/w1/raiseEvent/Approval", "", "application/json", `{"ok":true}`},
		{"POST", "instances/w1/raiseEvent/Approval", "", "text/plain", `x`},
		{"POST", "instances/w1/suspend", "reason=r", "", ``},
		{"POST", "instances/w1/resume", "reason=r", "", ``},
		{"POST", "instances/w1/terminate", "reason=r", "", ``},
		{"POST", "instances/w1/restart", "restartWithNewInstanceId=false", "", ``},
		{"POST", "instances/e1/rewind", "", "", ``},
		{"GET", "entities", "fetchState=true&top=1", "", ``},
		{"GET", "entities/Counter/k", "", "", ``},
		{"POST", "entities/Counter/k", "op=add", "application/json", `3`},
		{"POST", "entities/Counter/$", "op=add", "application/json", `{`},
		{"DELETE", "entities/Counter/k", "", "", ``},
		{"PATCH", "instances/x/y/z", "a=%zz", "", ``},
		{"GET", "../../etc/passwd", "", "", ``},
		{"GET", "instances/" + strings.Repeat("x", 300), "", "", ``},
		{"POST", "orchestrators/Echo", "timeout=1e308", "application/json", `1`},
		{"POST", "orchestrators/Echo", "", "application/json", strings.Repeat("[", 5000)},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.ctype, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, path, query, ctype string, body []byte) {
		u := e.srv.URL + Prefix + "/" + path
		if query != "" {
			u += "?" + query
		}
		if _, err := url.Parse(u); err != nil {
			t.Skip()
		}
		rq, err := http.NewRequest(method, u, bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		if ctype != "" {
			rq.Header.Set("Content-Type", ctype)
		}
		res, err := e.hc.Do(rq)
		if err != nil {
			// The client refuses some requests (bad header values, say);
			// the server must still answer the next one.
			checkAlive(t, e)
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode < 500:
		case res.StatusCode == http.StatusInternalServerError && failedStatus(b):
		case res.StatusCode == http.StatusNotImplemented && strings.Contains(strings.ToLower(rq.URL.Path), "rewind"):
		default:
			t.Fatalf("%s %s: %d %s", method, u, res.StatusCode, b)
		}
		if res.StatusCode >= 400 && method != http.MethodHead && res.Header.Get("Content-Type") != "" {
			var eb errorBody
			if json.Unmarshal(b, &eb) != nil || eb.Message == "" {
				// 400s produced by net/http itself (bad request lines)
				// are plain text; ours always carry a Message.
				if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
					t.Fatalf("%s %s: %d without Message: %s", method, u, res.StatusCode, b)
				}
			}
		}
		checkAlive(t, e)
	})
}

func failedStatus(b []byte) bool {
	var m map[string]any
	return json.Unmarshal(b, &m) == nil && m["runtimeStatus"] == core.StatusFailed.String()
}

func checkAlive(t *testing.T, e *env) {
	t.Helper()
	res, err := e.hc.Get(e.srv.URL + Prefix + "/instances/fuzz-liveness-probe")
	if err != nil {
		t.Fatalf("server stopped answering: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("liveness probe: %d", res.StatusCode)
	}
}
