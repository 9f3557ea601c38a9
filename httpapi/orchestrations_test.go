package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/samples"
)

var (
	statusTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	eventTimeRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$`)
	guidNRE      = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func TestStartCheckStatusPayload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{TaskHub: "testhub"})
	r := e.expect(e.req(http.MethodPost, "/orchestrators/HelloSequence", nil), http.StatusAccepted)
	var cs checkStatus
	r.decode(t, &cs)
	if !guidNRE.MatchString(cs.ID) {
		t.Errorf("id %q is not a GUID in N format", cs.ID)
	}
	inst := e.srv.URL + Prefix + "/instances/" + cs.ID
	sfx := "taskHub=testhub&connection=Storage"
	want := checkStatus{
		ID:                    cs.ID,
		StatusQueryGetURI:     inst + "?" + sfx,
		SendEventPostURI:      inst + "/raiseEvent/{eventName}?" + sfx,
		TerminatePostURI:      inst + "/terminate?reason={text}&" + sfx,
		PurgeHistoryDeleteURI: inst + "?" + sfx,
		RestartPostURI:        inst + "/restart?" + sfx,
		SuspendPostURI:        inst + "/suspend?reason={text}&" + sfx,
		ResumePostURI:         inst + "/resume?reason={text}&" + sfx,
	}
	if cs != want {
		t.Errorf("check status payload\n got %+v\nwant %+v", cs, want)
	}
	if got := r.hdr.Get("Location"); got != want.StatusQueryGetURI {
		t.Errorf("Location %q, want %q", got, want.StatusQueryGetURI)
	}
	if got := r.hdr.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After %q, want 10", got)
	}
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	// Field order and names as Durable Functions writes them.
	keys := jsonKeys(t, r.body)
	wantKeys := []string{"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri",
		"restartPostUri", "suspendPostUri", "resumePostUri"}
	if strings.Join(keys, ",") != strings.Join(wantKeys, ",") {
		t.Errorf("keys %v, want %v", keys, wantKeys)
	}

	// Follow the Location link until the instance completes.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := e.get(cs.StatusQueryGetURI)
		if st.code == http.StatusOK {
			m := st.obj(t)
			if m["runtimeStatus"] != "Completed" || m["name"] != "HelloSequence" || m["instanceId"] != cs.ID {
				t.Fatalf("status %s", st)
			}
			if out, _ := json.Marshal(m["output"]); string(out) != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` {
				t.Errorf("output %s", out)
			}
			for _, k := range []string{"createdTime", "lastUpdatedTime"} {
				if s, _ := m[k].(string); !statusTimeRE.MatchString(s) {
					t.Errorf("%s %q is not in Durable Functions' format", k, m[k])
				}
			}
			if _, ok := m["historyEvents"]; ok {
				t.Errorf("historyEvents without showHistory: %s", st)
			}
			keys := jsonKeys(t, st.body)
			want := "name,instanceId,runtimeStatus,input,customStatus,output,createdTime,lastUpdatedTime"
			if strings.Join(keys, ",") != want {
				t.Errorf("status keys %v, want %s", keys, want)
			}
			if st.hdr.Get("Location") != "" || st.hdr.Get("Retry-After") != "" {
				t.Errorf("Location/Retry-After on a finished instance: %v", st.hdr)
			}
			break
		}
		e.expect(st, http.StatusAccepted)
		if time.Now().After(deadline) {
			t.Fatal("instance did not complete")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// jsonKeys returns the keys of a JSON object in order.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestStartWithIDInputAndConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.FanOutFanIn, "fan-1", "3")
	if st := e.completed(id); string(st.Output) != "14" {
		t.Fatalf("output %s, want 14", st.Output)
	}
	// A finished instance can be replaced (Durable Functions' default).
	e.start(samples.FanOutFanIn, "fan-1", "2")
	if st := e.completed(id); string(st.Output) != "5" {
		t.Fatalf("output %s, want 5", st.Output)
	}
	// A running one cannot: 409.
	e.start(samples.WaitForEvent, "wait-1", "")
	e.expect(e.postJSON("/orchestrators/WaitForEvent/wait-1", ""), http.StatusConflict)
	// An input object reaches the instance.
	e.start(samples.WaitForEvent, "wait-2", `{"a": [1, 2]}`)
	m := e.waitFor("wait-2", "Running")
	if in, _ := json.Marshal(m["input"]); string(in) != `{"a":[1,2]}` {
		t.Errorf("input %s", in)
	}
	m = e.expect(e.get("/instances/wait-2?showInput=false"), http.StatusAccepted).obj(t)
	if m["input"] != nil {
		t.Errorf("input with showInput=false: %v", m["input"])
	}
}

func TestStartAndWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	// Completes in time: 200 with the output as the body.
	r := e.expect(e.req(http.MethodPost, "/orchestrators/HelloSequence?timeout=20&pollingInterval=1", nil), http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != `["Hello Tokyo!","Hello Seattle!","Hello London!"]` {
		t.Errorf("body %s", got)
	}
	// timeout alone waits too (Netherite waits without polling).
	r = e.expect(e.postJSON("/orchestrators/FanOutFanIn?timeout=20", "4"), http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != "30" {
		t.Errorf("body %s", got)
	}
	// Does not complete in time: 202 with the check-status payload.
	r = e.expect(e.req(http.MethodPost, "/orchestrators/WaitForEvent/w?timeout=0.2&pollingInterval=0.1", nil), http.StatusAccepted)
	var cs checkStatus
	r.decode(t, &cs)
	if cs.ID != "w" || r.hdr.Get("Location") != cs.StatusQueryGetURI {
		t.Errorf("check status %s", r)
	}
	// Fails: 200 with the status, output the failure message.
	r = e.expect(e.postJSON("/orchestrators/FanOutFanIn/f?timeout=20&showHistory=true", "-1"), http.StatusOK)
	m := r.obj(t)
	if m["runtimeStatus"] != "Failed" {
		t.Fatalf("status %s", r)
	}
	if out, _ := m["output"].(string); !strings.Contains(out, "Orchestrator function 'FanOutFanIn' failed: n must not be negative") {
		t.Errorf("output %q", m["output"])
	}
	if m["historyEvents"] == nil {
		t.Errorf("no history with showHistory=true: %s", r)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testRegistry(), Options{Registry: testRegistry()})
	long := strings.Repeat("x", core.MaxInstanceIDLength+1)
	// With a registry, orchestrator names ignore case, as function names do.
	r := e.expect(e.req(http.MethodPost, "/orchestrators/hellosequence?timeout=20", nil), http.StatusOK)
	if !strings.Contains(string(r.body), "Hello Tokyo!") {
		t.Errorf("body %s", r.body)
	}
	for _, c := range []struct {
		name, method, path, body string
		code                     int
	}{
		{"invalid JSON", "POST", "/orchestrators/HelloSequence", `{"a":`, 400},
		{"unknown orchestrator", "POST", "/orchestrators/NoSuchThing", "", 400},
		{"id too long", "POST", "/orchestrators/HelloSequence/" + long, "", 400},
		{"id with control character", "POST", "/orchestrators/HelloSequence/a%01b", "", 400},
		{"id of an entity", "POST", "/orchestrators/HelloSequence/@counter@x", "", 400},
		{"bad timeout", "POST", "/orchestrators/HelloSequence?timeout=soon", "", 400},
		{"negative timeout", "POST", "/orchestrators/HelloSequence?timeout=-1", "", 400},
		{"huge timeout", "POST", "/orchestrators/HelloSequence?timeout=1e300", "", 400},
		{"NaN timeout", "POST", "/orchestrators/HelloSequence?timeout=NaN", "", 400},
		{"bad pollingInterval", "POST", "/orchestrators/HelloSequence?timeout=1&pollingInterval=x", "", 400},
		{"name with control character", "POST", "/orchestrators/Hello%7FSequence", "", 400},
		{"GET", "GET", "/orchestrators/HelloSequence", "", 405},
		{"too many segments", "POST", "/orchestrators/HelloSequence/a/b", "", 404},
		{"no name", "POST", "/orchestrators", "", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.req(c.method, c.path, []byte(c.body), "Content-Type", "application/json")
			if r.code != c.code {
				t.Fatalf("got %s, want %d", r, c.code)
			}
			if c.code == 405 && r.hdr.Get("Allow") != "POST" {
				t.Errorf("Allow %q", r.hdr.Get("Allow"))
			}
			if m := r.obj(t); m["Message"] == "" || m["Message"] == nil {
				t.Errorf("no Message in %s", r)
			}
		})
	}
}

func TestGetStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.WaitForEvent, "running-1", `"in"`)
	e.waitFor(id, "Running")
	path := "/instances/" + id + "?showInput=true&taskHub=testhub"
	r := e.expect(e.get(path), http.StatusAccepted)
	if got, want := r.hdr.Get("Location"), e.srv.URL+Prefix+path; got != want {
		t.Errorf("Location %q, want the request URL %q", got, want)
	}
	if got := r.hdr.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q", got)
	}
	m := r.obj(t)
	if m["input"] != "in" || m["output"] != nil || m["customStatus"] != nil {
		t.Errorf("status %s", r)
	}
	e.expect(e.get("/instances/no-such-instance"), http.StatusNotFound)
	e.expect(e.get("/instances/"+id+"?showHistory=maybe"), http.StatusBadRequest)
	e.expect(e.get("/instances/"+id+"?showInput=1"), http.StatusBadRequest)
	e.expect(e.get("/instances/"+id+"?returnInternalServerErrorOnFailure=yes"), http.StatusBadRequest)
	// Parameter names ignore case, as in Durable Functions.
	m = e.expect(e.get("/instances/"+id+"?SHOWINPUT=false"), http.StatusAccepted).obj(t)
	if m["input"] != nil {
		t.Errorf("SHOWINPUT=false ignored: %v", m)
	}
	e.expect(e.req(http.MethodPut, "/instances/"+id, nil), http.StatusMethodNotAllowed)
}

func TestFailedInstanceAndRewind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.FanOutFanIn, "failing", "-1")
	e.waitFor(id, "Failed")
	m := e.expect(e.get("/instances/"+id), http.StatusOK).obj(t)
	if out, _ := m["output"].(string); !strings.Contains(out, "failed") {
		t.Errorf("output %v", m["output"])
	}
	r := e.expect(e.get("/instances/"+id+"?returnInternalServerErrorOnFailure=true"), http.StatusInternalServerError)
	if r.obj(t)["runtimeStatus"] != "Failed" {
		t.Errorf("500 body %s", r)
	}
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/rewind?reason=fixed", nil), http.StatusNotImplemented)
	e.expect(e.req(http.MethodPost, "/instances/nope/rewind", nil), http.StatusNotFound)
	ok := e.start(samples.HelloSequence, "", "")
	e.waitFor(ok, "Completed")
	e.expect(e.req(http.MethodPost, "/instances/"+ok+"/rewind", nil), http.StatusPreconditionFailed)
	e.expect(e.get("/instances/"+ok+"/rewind"), http.StatusMethodNotAllowed)
}

func TestHistoryEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.HelloSequence, "", "")
	e.waitFor(id, "Completed")
	m := e.expect(e.get("/instances/"+id+"?showHistory=true&showHistoryOutput=true"), http.StatusOK).obj(t)
	hist := events(t, m)
	var types []string
	for _, ev := range hist {
		types = append(types, ev["EventType"].(string))
		if s, _ := ev["Timestamp"].(string); !eventTimeRE.MatchString(s) {
			t.Errorf("Timestamp %q", ev["Timestamp"])
		}
	}
	if got := strings.Join(types, ","); got != "ExecutionStarted,TaskCompleted,TaskCompleted,TaskCompleted,ExecutionCompleted" {
		t.Fatalf("event types %s", got)
	}
	if hist[0]["FunctionName"] != "HelloSequence" {
		t.Errorf("ExecutionStarted %v", hist[0])
	}
	for i, city := range []string{"Tokyo", "Seattle", "London"} {
		ev := hist[1+i]
		if ev["FunctionName"] != "SayHello" || ev["Result"] != "Hello "+city+"!" || !eventTimeRE.MatchString(ev["ScheduledTime"].(string)) {
			t.Errorf("TaskCompleted %v", ev)
		}
		if _, ok := ev["TaskScheduledId"]; ok {
			t.Errorf("TaskScheduledId kept: %v", ev)
		}
	}
	done := hist[4]
	if done["OrchestrationStatus"] != "Completed" || done["Result"] == nil {
		t.Errorf("ExecutionCompleted %v", done)
	}
	// Without showHistoryOutput, no results.
	m = e.expect(e.get("/instances/"+id+"?showHistory=true"), http.StatusOK).obj(t)
	for _, ev := range events(t, m) {
		if _, ok := ev["Result"]; ok {
			t.Errorf("Result without showHistoryOutput: %v", ev)
		}
	}
}

func events(t *testing.T, status map[string]any) []map[string]any {
	t.Helper()
	raw, ok := status["historyEvents"].([]any)
	if !ok {
		t.Fatalf("no historyEvents in %v", status)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

func TestHistoryShapesOfEveryKind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(kitchen, "kitchen", `{"x":1}`)
	// Wait until it waits for the event: its custom status says so only
	// at the start, so wait for the sub-orchestration to be recorded.
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := e.get("/instances/" + id + "?showHistory=true").obj(t)
		// Before its first episode is applied the instance has no custom
		// status yet; after it, the status must say "started".
		if cs, _ := m["customStatus"].(map[string]any); m["customStatus"] != nil && cs["stage"] != "started" {
			t.Fatalf("customStatus %v", m["customStatus"])
		}
		n := 0
		if m["historyEvents"] == nil && m["runtimeStatus"] == "Pending" && time.Now().Before(deadline) {
			// Not started yet: no history at all.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		for _, ev := range events(t, m) {
			if ev["EventType"] == "TaskFailed" {
				n++
			}
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Kitchen did not get to the event: %v", m)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.expect(e.postJSON("/instances/"+id+"/raiseEvent/Go", `{"ok":true}`), http.StatusAccepted)
	e.waitFor(id, "Completed")
	m := e.get("/instances/" + id + "?showHistory=true&showHistoryOutput=true").obj(t)
	if cs, _ := m["customStatus"].(map[string]any); cs["stage"] != "done" {
		t.Errorf("customStatus %v", m["customStatus"])
	}
	byType := map[string]map[string]any{}
	for _, ev := range events(t, m) {
		byType[ev["EventType"].(string)] = ev
	}
	for _, typ := range []string{"TimerCreated", "TimerFired"} {
		if ev := byType[typ]; ev == nil || !eventTimeRE.MatchString(ev["FireAt"].(string)) {
			t.Errorf("%s: %v", typ, ev)
		}
	}
	if ev := byType["SubOrchestrationInstanceCompleted"]; ev == nil || ev["FunctionName"] != samples.HelloSequence || ev["Result"] == nil {
		t.Errorf("SubOrchestrationInstanceCompleted: %v", ev)
	}
	if ev := byType["TaskFailed"]; ev == nil || ev["FunctionName"] != boom || !strings.Contains(ev["Reason"].(string), "kaboom") ||
		ev["FailureDetails"].(map[string]any)["ErrorMessage"] == "" {
		t.Errorf("TaskFailed: %v", ev)
	}
	if ev := byType["EventRaised"]; ev == nil || ev["Name"] != "Go" {
		t.Errorf("EventRaised: %v", ev)
	} else if in, _ := json.Marshal(ev["Input"]); string(in) != `{"ok":true}` {
		t.Errorf("EventRaised input %s", in)
	}
	if ev := byType["ExecutionStarted"]; ev == nil || ev["FunctionName"] != kitchen {
		t.Errorf("ExecutionStarted: %v", ev)
	} else if in, _ := json.Marshal(ev["Input"]); string(in) != `{"x":1}` {
		t.Errorf("ExecutionStarted input %s", in)
	}
	for _, gone := range []string{"OrchestratorStarted", "OrchestratorCompleted", "TaskScheduled", "SubOrchestrationInstanceCreated"} {
		if byType[gone] != nil {
			t.Errorf("%s in the history: %v", gone, byType[gone])
		}
	}
	// showInput=false drops inputs from the history too.
	m = e.get("/instances/" + id + "?showHistory=true&showInput=false").obj(t)
	for _, ev := range events(t, m) {
		if _, ok := ev["Input"]; ok {
			t.Errorf("Input with showInput=false: %v", ev)
		}
	}
}

func TestRaiseEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.WaitForEvent, "approval", "")
	path := "/instances/" + id + "/raiseEvent/Approval"
	e.expect(e.req(http.MethodPost, path, []byte(`"yes"`), "Content-Type", "text/plain"), http.StatusBadRequest)
	e.expect(e.req(http.MethodPost, path, []byte(`"yes"`)), http.StatusBadRequest)
	e.expect(e.postJSON(path, `{"broken"`), http.StatusBadRequest)
	e.expect(e.postJSON(path, ``), http.StatusBadRequest)
	e.expect(e.postJSON("/instances/nope/raiseEvent/Approval", `1`), http.StatusNotFound)
	e.expect(e.get(path), http.StatusMethodNotAllowed)
	r := e.expect(e.req(http.MethodPost, path, []byte(`{"approved": true}`), "Content-Type", "application/json; charset=utf-8"), http.StatusAccepted)
	if len(r.body) != 0 {
		t.Errorf("body %q", r.body)
	}
	st := e.completed(id)
	if string(st.Output) != `{"approved": true}` {
		t.Errorf("output %s", st.Output)
	}
	e.expect(e.postJSON(path, `1`), http.StatusGone)
	// The event name is matched as given (case matters to the orchestration).
	e.expect(e.postJSON("/instances/"+id+"/RAISEEVENT/Approval", `1`), http.StatusGone)
}

func TestTerminateSuspendResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.WaitForEvent, "ctl", "")
	e.waitFor(id, "Running")
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/suspend?reason=pause", nil), http.StatusAccepted)
	e.waitFor(id, "Suspended")
	r := e.expect(e.get("/instances/"+id), http.StatusAccepted)
	if r.hdr.Get("Location") == "" {
		t.Error("no Location for a suspended instance")
	}
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/resume?reason=go", nil), http.StatusAccepted)
	e.waitFor(id, "Running")
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/terminate?reason=because", nil), http.StatusAccepted)
	m := e.waitFor(id, "Terminated")
	if m["output"] != "because" {
		t.Errorf("output %v", m["output"])
	}
	for _, op := range []string{"terminate", "suspend", "resume"} {
		e.expect(e.req(http.MethodPost, "/instances/"+id+"/"+op, nil), http.StatusGone)
		e.expect(e.req(http.MethodPost, "/instances/unknown-instance/"+op, nil), http.StatusNotFound)
		e.expect(e.get("/instances/"+id+"/"+op), http.StatusMethodNotAllowed)
	}
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/explode", nil), http.StatusNotFound)
}

func TestRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.FanOutFanIn, "restart-me", "3")
	e.completed(id)
	// Default: a new instance id.
	var cs checkStatus
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/restart", nil), http.StatusAccepted).decode(t, &cs)
	if cs.ID == id || !guidNRE.MatchString(cs.ID) {
		t.Fatalf("restarted as %q", cs.ID)
	}
	if st := e.completed(cs.ID); st.Name != samples.FanOutFanIn || string(st.Output) != "14" {
		t.Errorf("restarted instance %+v", st)
	}
	// Same id, waiting for the result.
	r := e.expect(e.req(http.MethodPost, "/instances/"+id+"/restart?restartWithNewInstanceId=false&timeout=20", nil), http.StatusOK)
	if strings.TrimSpace(string(r.body)) != "14" {
		t.Errorf("body %s", r)
	}
	// Same id while it runs: the running instance is replaced.
	w := e.start(samples.WaitForEvent, "restart-running", `"first"`)
	e.waitFor(w, "Running")
	e.expect(e.req(http.MethodPost, "/instances/"+w+"/restart?restartWithNewInstanceId=false", nil), http.StatusAccepted).decode(t, &cs)
	if cs.ID != w {
		t.Fatalf("restarted as %q", cs.ID)
	}
	m := e.waitFor(w, "Running")
	if m["input"] != "first" {
		t.Errorf("input %v", m["input"])
	}
	e.expect(e.postJSON("/instances/"+w+"/raiseEvent/Approval", `"ok"`), http.StatusAccepted)
	if st := e.completed(w); string(st.Output) != `"ok"` {
		t.Errorf("output %s", st.Output)
	}
	e.expect(e.req(http.MethodPost, "/instances/no-such/restart", nil), http.StatusBadRequest)
	e.expect(e.req(http.MethodPost, "/instances/"+id+"/restart?restartWithNewInstanceId=perhaps", nil), http.StatusBadRequest)
}

func TestListInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	before := time.Now().UTC().Add(-time.Second)
	for _, id := range []string{"list-a", "list-b", "list-c", "list-d", "list-e"} {
		e.start(samples.HelloSequence, id, `"in"`)
	}
	e.start(samples.WaitForEvent, "list-w", "")
	e.start(samples.HelloSequence, "other", "")
	for _, id := range []string{"list-a", "list-b", "list-c", "list-d", "list-e"} {
		e.completed(id)
	}
	e.waitFor("list-w", "Running")

	// Page through with top=2.
	var all []string
	token := ""
	pages := 0
	for {
		hdr := []string{}
		if token != "" {
			hdr = []string{"x-ms-continuation-token", token}
		}
		r := e.expect(e.req(http.MethodGet, "/instances?instanceIdPrefix=list-&top=2", nil, hdr...), http.StatusOK)
		var page []map[string]any
		r.decode(t, &page)
		if len(page) > 2 {
			t.Fatalf("page of %d", len(page))
		}
		for _, s := range page {
			all = append(all, s["instanceId"].(string))
			if _, ok := s["historyEvents"]; ok {
				t.Errorf("history in a list: %v", s)
			}
		}
		pages++
		token = r.hdr.Get("x-ms-continuation-token")
		if token == "" {
			break
		}
		if pages > 10 {
			t.Fatal("too many pages")
		}
	}
	if got := strings.Join(all, ","); got != "list-a,list-b,list-c,list-d,list-e,list-w" {
		t.Errorf("listed %s", got)
	}

	count := func(query string) int {
		t.Helper()
		var page []map[string]any
		e.expect(e.get("/instances?"+query), http.StatusOK).decode(t, &page)
		return len(page)
	}
	if n := count("runtimeStatus=Running&instanceIdPrefix=list-"); n != 1 {
		t.Errorf("Running: %d", n)
	}
	if n := count("runtimeStatus=Completed,Running&instanceIdPrefix=list-"); n != 6 {
		t.Errorf("Completed,Running: %d", n)
	}
	if n := count("runtimeStatus=completed&runtimeStatus=running"); n != 7 {
		t.Errorf("repeated runtimeStatus: %d", n)
	}
	if n := count("createdTimeFrom=" + url.QueryEscape(time.Now().UTC().Add(time.Hour).Format(time.RFC3339))); n != 0 {
		t.Errorf("created in the future: %d", n)
	}
	if n := count("createdTimeFrom=" + before.Format("2006-01-02T15:04:05") + "&createdTimeTo=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); n != 7 {
		t.Errorf("created between: %d", n)
	}
	// An unescaped '+' of a zone offset arrives as a space, and still parses.
	if n := count("createdTimeFrom=" + before.In(time.FixedZone("", 3600)).Format("2006-01-02T15:04:05+01:00")); n != 7 {
		t.Errorf("created since (offset with +): %d", n)
	}
	var page []map[string]any
	e.expect(e.get("/instances?instanceIdPrefix=list-a&showInput=false"), http.StatusOK).decode(t, &page)
	if len(page) != 1 || page[0]["input"] != nil || page[0]["output"] == nil {
		t.Errorf("showInput=false: %v", page)
	}
	e.expect(e.get("/instances?instanceIdPrefix=list-a"), http.StatusOK).decode(t, &page)
	if len(page) != 1 || page[0]["input"] != "in" {
		t.Errorf("input: %v", page)
	}
	if n := count("instanceIdPrefix=nothing-like-this"); n != 0 {
		t.Errorf("no match: %d", n)
	}
	r := e.expect(e.get("/instances?instanceIdPrefix=nothing-like-this"), http.StatusOK)
	if strings.TrimSpace(string(r.body)) != "[]" {
		t.Errorf("empty list is %s, want []", r.body)
	}

	for _, bad := range []string{"runtimeStatus=Sleeping", "top=0", "top=-3", "top=many", "createdTimeFrom=yesterday",
		"createdTimeTo=2024-13-45", "showInput=nope"} {
		e.expect(e.get("/instances?"+bad), http.StatusBadRequest)
	}
	e.expect(e.req(http.MethodGet, "/instances", nil, "x-ms-continuation-token", "!!not a token!!"), http.StatusBadRequest)
	e.expect(e.req(http.MethodPost, "/instances", nil), http.StatusMethodNotAllowed)
}

func TestPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, Options{})
	id := e.start(samples.HelloSequence, "purge-1", "")
	e.completed(id)
	r := e.expect(e.req(http.MethodDelete, "/instances/"+id, nil), http.StatusOK)
	if strings.TrimSpace(string(r.body)) != `{"instancesDeleted":1}` {
		t.Errorf("body %s", r.body)
	}
	e.expect(e.get("/instances/"+id), http.StatusNotFound)
	e.expect(e.req(http.MethodDelete, "/instances/"+id, nil), http.StatusNotFound)
	w := e.start(samples.WaitForEvent, "purge-running", "")
	e.expect(e.req(http.MethodDelete, "/instances/"+w, nil), http.StatusPreconditionFailed)

	// Purge by filter.
	for _, id := range []string{"p-a", "p-b", "p-c"} {
		e.start(samples.HelloSequence, id, "")
		e.completed(id)
	}
	e.expect(e.req(http.MethodDelete, "/instances", nil), http.StatusBadRequest)
	e.expect(e.req(http.MethodDelete, "/instances?createdTimeFrom=garbage", nil), http.StatusBadRequest)
	e.expect(e.req(http.MethodDelete, "/instances?createdTimeFrom=2020-01-01T00:00:00Z&runtimeStatus=Running", nil), http.StatusBadRequest)
	e.expect(e.req(http.MethodDelete, "/instances?createdTimeFrom=2020-01-01T00:00:00Z&createdTimeTo=2020-01-02T00:00:00Z", nil), http.StatusNotFound)
	r = e.expect(e.req(http.MethodDelete, "/instances?createdTimeFrom=2020-01-01T00:00:00Z&runtimeStatus=Completed", nil), http.StatusOK)
	if strings.TrimSpace(string(r.body)) != `{"instancesDeleted":3}` {
		t.Errorf("body %s", r.body)
	}
	e.expect(e.req(http.MethodDelete, "/instances?createdTimeFrom=2020-01-01", nil), http.StatusNotFound)
	e.expect(e.get("/instances/"+w), http.StatusAccepted) // the running one stays
}
