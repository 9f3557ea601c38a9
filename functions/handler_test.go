package functions

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// echoed is what the echo app saw.
type echoed struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RequestURI string              `json:"requestURI"`
	Query      map[string][]string `json:"query"`
	Host       string              `json:"host"`
	Header     map[string][]string `json:"header"`
	Body       string              `json:"body"`
	BodyBase64 string              `json:"bodyBase64"`
	Length     int64               `json:"contentLength"`
}

// echoApp answers every request with what it saw, as JSON, status 200
// unless ?status= says otherwise. Under /runtime/webhooks/durabletask/ it
// also behaves like the durable API when starting an orchestration: it
// answers 202 with a Location and check-status URLs built from the request
// host.
func echoApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /runtime/webhooks/durabletask/orchestrators/{name}", func(w http.ResponseWriter, r *http.Request) {
		base := "http://" + r.Host + "/runtime/webhooks/durabletask"
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Location", base+"/instances/abc123")
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"id":"abc123","statusQueryGetUri":"%[1]s/instances/abc123","sendEventPostUri":"%[1]s/instances/abc123/raiseEvent/{eventName}","purgeHistoryDeleteUri":"%[1]s/instances/abc123","other":"%[1]sx/y"}`, base)
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e := echoed{Method: r.Method, Path: r.URL.Path, RequestURI: r.RequestURI, Query: r.URL.Query(), Host: r.Host,
			Header: r.Header, Body: string(body), BodyBase64: base64.StdEncoding.EncodeToString(body), Length: r.ContentLength}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", "yes")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			fmt.Sscan(s, &status)
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(e)
	})
	return mux
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	srv := httptest.NewServer(NewHandler(echoApp(), opts))
	t.Cleanup(srv.Close)
	return srv
}

// invoke POSTs payload to /{function} as the Functions host does.
func invoke(t *testing.T, srv *httptest.Server, function, payload string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/"+function, strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", "6b1ebd38-35a8-4d2d-bb3e-3c4b0a53c5ea")
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1036.1.23224")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1036.1.23224")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkShape checks the casing and types of an invocation response and
// returns its HTTP output.
func checkShape(t *testing.T, body []byte, binding string) (httpOutput, []string) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, body)
	}
	if got, want := keys(top), []string{"Logs", "Outputs", "ReturnValue"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("response keys %v, want %v\n%s", got, want, body)
	}
	var outputs map[string]json.RawMessage
	if err := json.Unmarshal(top["Outputs"], &outputs); err != nil {
		t.Fatalf("Outputs is not an object: %s", top["Outputs"])
	}
	if got := keys(outputs); !reflect.DeepEqual(got, []string{binding}) {
		t.Fatalf("Outputs keys %v, want [%s]", got, binding)
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(outputs[binding], &res); err != nil {
		t.Fatalf("Outputs.%s is not an object: %s", binding, outputs[binding])
	}
	if got, want := keys(res), []string{"body", "headers", "status", "statusCode"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Outputs.%s keys %v, want %v", binding, got, want)
	}
	var out httpOutput
	dec := json.NewDecoder(bytes.NewReader(outputs[binding]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("Outputs.%s: %v: %s", binding, err, outputs[binding])
	}
	if out.Status != out.StatusCode {
		t.Errorf("status %d != statusCode %d", out.Status, out.StatusCode)
	}
	var headers map[string]any
	json.Unmarshal(res["headers"], &headers)
	for k, v := range headers {
		if _, ok := v.(string); !ok {
			t.Errorf("headers[%q] = %#v, want a string (the host calls ToString on header values)", k, v)
		}
	}
	var logs []string
	if err := json.Unmarshal(top["Logs"], &logs); err != nil || logs == nil {
		t.Fatalf("Logs is not an array of strings: %s", top["Logs"])
	}
	var rv httpOutput
	if err := json.Unmarshal(top["ReturnValue"], &rv); err != nil || !reflect.DeepEqual(rv, out) {
		t.Errorf("ReturnValue %s, want the HTTP output %s", top["ReturnValue"], outputs[binding])
	}
	return out, logs
}

// The request of the "order" example in the custom handler documentation,
// as the Functions host sends it to the handler.
const docsOrderInvocation = `{
  "Data": {
    "req": {
      "Url": "http://localhost:7071/api/order",
      "Method": "POST",
      "Query": "{}",
      "Headers": {
        "Content-Type": [
          "application/json"
        ]
      },
      "Params": {},
      "Body": "{\"id\":1005,\"quantity\":2,\"color\":\"black\"}"
    }
  },
  "Metadata": {
  }
}`

func TestInvocationDocsExample(t *testing.T) {
	srv := newServer(t, Options{})
	status, header, body := invoke(t, srv, "order", docsOrderInvocation)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	out, logs := checkShape(t, body, "res")
	if out.StatusCode != 200 {
		t.Errorf("statusCode %d", out.StatusCode)
	}
	if out.Headers["Content-Type"] != "application/json" || out.Headers["X-Echo"] != "yes" || out.Headers["X-Multi"] != "a, b" {
		t.Errorf("headers %v", out.Headers)
	}
	if _, ok := out.Headers["Content-Length"]; ok {
		t.Errorf("Content-Length in headers: %v", out.Headers)
	}
	if len(logs) == 0 || !strings.Contains(logs[0], "POST /api/order -> 200") {
		t.Errorf("Logs %q", logs)
	}
	var e echoed
	if err := json.Unmarshal([]byte(out.Body), &e); err != nil {
		t.Fatalf("body %q: %v", out.Body, err)
	}
	if e.Method != "POST" || e.Path != "/api/order" || e.Host != "localhost:7071" || len(e.Query) != 0 {
		t.Errorf("app saw %+v", e)
	}
	if e.Body != `{"id":1005,"quantity":2,"color":"black"}` || e.Length != int64(len(e.Body)) {
		t.Errorf("app body %q length %d", e.Body, e.Length)
	}
	if got := e.Header["Content-Type"]; !reflect.DeepEqual(got, []string{"application/json"}) {
		t.Errorf("app Content-Type %v", got)
	}
	if got := e.Header["X-Azure-Functions-Invocationid"]; !reflect.DeepEqual(got, []string{"6b1ebd38-35a8-4d2d-bb3e-3c4b0a53c5ea"}) {
		t.Errorf("app invocation id %v", got)
	}
}

// An invocation of the DurableInstances template function, with the
// fields the host fills for an HTTP trigger (Query as an object, as
// current hosts send it; Identities; route Params) and the trigger
// metadata.
const instancesInvocation = `{
  "Data": {
    "req": {
      "Url": "https://netherite-sample.azurewebsites.net/api/durabletask/instances/abc%2F1?showHistory=true&top=5&top=6",
      "Method": "GET",
      "Query": {"showHistory": "true", "top": "5,6"},
      "Headers": {
        "Accept": ["application/json"],
        "Host": ["netherite-sample.azurewebsites.net"],
        "User-Agent": ["curl/8.5.0"],
        "X-Forwarded-For": ["203.0.113.7:51234"],
        "X-Forwarded-Proto": ["https"],
        "Connection": ["keep-alive"]
      },
      "Params": {"path": "instances/abc/1"},
      "Identities": [{"AuthenticationType": null, "IsAuthenticated": false, "Actor": null, "BootstrapContext": null, "Claims": [], "Label": null, "Name": null, "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}]
    }
  },
  "Metadata": {
    "path": "instances/abc/1",
    "Query": {"showHistory": "true", "top": "5,6"},
    "Headers": {"Accept": "application/json", "Host": "netherite-sample.azurewebsites.net"},
    "sys": {
      "MethodName": "DurableInstances",
      "UtcNow": "2025-01-21T10:15:30.1234567Z",
      "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"
    }
  }
}`

func TestInvocationMapsDurablePath(t *testing.T) {
	srv := newServer(t, Options{})
	status, _, body := invoke(t, srv, "DurableInstances", instancesInvocation)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	out, logs := checkShape(t, body, "res")
	var e echoed
	if err := json.Unmarshal([]byte(out.Body), &e); err != nil {
		t.Fatalf("body %q: %v", out.Body, err)
	}
	if e.Method != "GET" || e.Path != "/runtime/webhooks/durabletask/instances/abc/1" ||
		e.RequestURI != "/runtime/webhooks/durabletask/instances/abc%2F1?showHistory=true&top=5&top=6" {
		t.Errorf("app saw %s %s (%s)", e.Method, e.Path, e.RequestURI)
	}
	if !reflect.DeepEqual(e.Query["top"], []string{"5", "6"}) || e.Query["showHistory"][0] != "true" {
		t.Errorf("app query %v", e.Query)
	}
	if e.Host != "netherite-sample.azurewebsites.net" {
		t.Errorf("app host %q", e.Host)
	}
	if _, ok := e.Header["Connection"]; ok {
		t.Errorf("hop-by-hop header reached the app: %v", e.Header)
	}
	if e.Header["X-Forwarded-Proto"][0] != "https" || e.Header["X-Forwarded-Host"][0] != "netherite-sample.azurewebsites.net" {
		t.Errorf("forwarded headers %v", e.Header)
	}
	if e.Body != "" || e.Length != 0 {
		t.Errorf("GET body %q", e.Body)
	}
	if !strings.Contains(logs[0], "GET /runtime/webhooks/durabletask/instances/abc%2F1?showHistory=true&top=5&top=6 -> 200") {
		t.Errorf("Logs %q", logs)
	}
}

func TestInvocationRewritesURLs(t *testing.T) {
	srv := newServer(t, Options{})
	payload := `{"Data":{"req":{"Url":"https://app.example.net/api/durabletask/orchestrators/HelloSequence","Method":"POST",
		"Query":"{}","Headers":{"Content-Type":["application/json"]},"Params":{"path":"orchestrators/HelloSequence"},"Body":"\"input\""}},
		"Metadata":{}}`
	status, _, body := invoke(t, srv, "DurableOrchestrators", payload)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	out, _ := checkShape(t, body, "res")
	if out.StatusCode != http.StatusAccepted {
		t.Fatalf("statusCode %d: %s", out.StatusCode, out.Body)
	}
	if got, want := out.Headers["Location"], "https://app.example.net/api/durabletask/instances/abc123"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if out.Headers["Retry-After"] != "10" {
		t.Errorf("Retry-After %q", out.Headers["Retry-After"])
	}
	var status202 map[string]string
	if err := json.Unmarshal([]byte(out.Body), &status202); err != nil {
		t.Fatalf("body %q: %v", out.Body, err)
	}
	want := map[string]string{
		"id":                    "abc123",
		"statusQueryGetUri":     "https://app.example.net/api/durabletask/instances/abc123",
		"sendEventPostUri":      "https://app.example.net/api/durabletask/instances/abc123/raiseEvent/{eventName}",
		"purgeHistoryDeleteUri": "https://app.example.net/api/durabletask/instances/abc123",
		// not at a segment boundary: left alone
		"other": "http://app.example.net/runtime/webhooks/durabletaskx/y",
	}
	if !reflect.DeepEqual(status202, want) {
		t.Errorf("body %v\nwant %v", status202, want)
	}
}

func TestInvocationQueryHeadersBodyVariants(t *testing.T) {
	srv := newServer(t, Options{})
	raw := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
	cases := []struct {
		name, req string
		check     func(t *testing.T, e echoed)
	}{
		{"query as JSON string, no query in Url", `{"Url":"http://localhost:7071/api/x","Method":"GET","Query":"{\"a\":\"1\"}"}`,
			func(t *testing.T, e echoed) {
				if e.Query["a"][0] != "1" {
					t.Errorf("query %v", e.Query)
				}
			}},
		{"query as object, no query in Url", `{"Url":"http://localhost:7071/api/x","Method":"GET","Query":{"a":"1","n":7}}`,
			func(t *testing.T, e echoed) {
				if e.Query["a"][0] != "1" || e.Query["n"][0] != "7" {
					t.Errorf("query %v", e.Query)
				}
			}},
		{"headers as plain strings", `{"Url":"http://localhost:7071/api/x","Method":"GET","Headers":{"x-custom":"v","X-Null":null,"X-Arr":["p","q"]}}`,
			func(t *testing.T, e echoed) {
				if e.Header["X-Custom"][0] != "v" || !reflect.DeepEqual(e.Header["X-Arr"], []string{"p", "q"}) {
					t.Errorf("header %v", e.Header)
				}
			}},
		{"base64 body for octet-stream", `{"Url":"http://localhost:7071/api/x","Method":"PUT","Headers":{"Content-Type":["application/octet-stream"]},"Body":"` + base64.StdEncoding.EncodeToString(raw) + `"}`,
			func(t *testing.T, e echoed) {
				if b, _ := base64.StdEncoding.DecodeString(e.BodyBase64); string(b) != string(raw) {
					t.Errorf("body %q", b)
				}
			}},
		{"JSON object body", `{"Url":"http://localhost:7071/api/x","Method":"POST","Body":{"k":[1,2]}}`,
			func(t *testing.T, e echoed) {
				if e.Body != `{"k":[1,2]}` {
					t.Errorf("body %q", e.Body)
				}
			}},
		{"lowercase field names, binding not named req", `{"url":"http://localhost:7071/api/x?z=1","method":"DELETE"}`,
			func(t *testing.T, e echoed) {
				if e.Method != "DELETE" || e.Query["z"][0] != "1" {
					t.Errorf("saw %+v", e)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "req"
			if strings.Contains(c.name, "not named req") {
				name = "httpRequest"
			}
			payload := `{"Data":{"other":"queue message","` + name + `":` + c.req + `},"Metadata":{}}`
			status, _, body := invoke(t, srv, "Fn", payload)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			out, _ := checkShape(t, body, "res")
			var e echoed
			if err := json.Unmarshal([]byte(out.Body), &e); err != nil {
				t.Fatalf("body %q: %v", out.Body, err)
			}
			c.check(t, e)
		})
	}
}

func TestInvocationStatusAndBinding(t *testing.T) {
	srv := newServer(t, Options{ResponseBinding: "$return"})
	payload := `{"Data":{"req":{"Url":"http://localhost:7071/api/x?status=404","Method":"GET"}},"Metadata":{}}`
	status, _, body := invoke(t, srv, "Fn", payload)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	out, logs := checkShape(t, body, "$return")
	if out.StatusCode != 404 || out.Status != 404 {
		t.Errorf("statusCode %d", out.StatusCode)
	}
	if !strings.Contains(logs[0], "-> 404") {
		t.Errorf("Logs %q", logs)
	}
}

func TestInvocationNoContentAndBinaryResponse(t *testing.T) {
	app := http.NewServeMux()
	app.HandleFunc("/api/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	app.HandleFunc("/api/nothing", func(w http.ResponseWriter, r *http.Request) {})
	app.HandleFunc("/api/bin", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte{0xff, 0xfe, 0}) })
	srv := httptest.NewServer(NewHandler(app, Options{Logger: quietLogger()}))
	defer srv.Close()
	for path, want := range map[string]int{"empty": 204, "nothing": 200, "bin": 200} {
		payload := `{"Data":{"req":{"Url":"http://localhost:7071/api/` + path + `","Method":"GET"}},"Metadata":{}}`
		status, _, body := invoke(t, srv, "Fn", payload)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, status, body)
		}
		out, logs := checkShape(t, body, "res")
		if out.StatusCode != want {
			t.Errorf("%s: statusCode %d, want %d", path, out.StatusCode, want)
		}
		if path == "bin" && (len(logs) < 2 || !strings.Contains(logs[1], "UTF-8")) {
			t.Errorf("%s: Logs %q, want a note on the binary body", path, logs)
		}
		if path != "bin" && out.Body != "" {
			t.Errorf("%s: body %q", path, out.Body)
		}
	}
}

func TestForwardedRequests(t *testing.T) {
	srv := newServer(t, Options{})

	// a forwarded request under the durable prefix reaches the app at its path
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/durabletask/instances/abc?showInput=false&status=202", nil)
	req.Header.Set("X-Azure-Functions-InvocationId", "inv-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || resp.Header.Get("X-Echo") != "yes" || !reflect.DeepEqual(resp.Header.Values("X-Multi"), []string{"a", "b"}) {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if e.Path != "/runtime/webhooks/durabletask/instances/abc" || e.Query["showInput"][0] != "false" || e.Header["X-Azure-Functions-Invocationid"][0] != "inv-1" {
		t.Errorf("app saw %+v", e)
	}

	// start: Location and body URLs come back under the public prefix,
	// with the host and scheme the front end reported
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/api/durabletask/orchestrators/HelloSequence", strings.NewReader(`"x"`))
	req.Header.Set("X-Forwarded-Host", "app.example.net")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("Location"), "https://app.example.net/api/durabletask/instances/abc123"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if !strings.Contains(string(body), `"statusQueryGetUri":"https://app.example.net/api/durabletask/instances/abc123"`) ||
		strings.Contains(string(body), "/runtime/webhooks/durabletask/instances") {
		t.Errorf("body %s", body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}

	// paths outside the prefixes pass unchanged, POSTs with bodies too
	resp, err = http.Post(srv.URL+"/runtime/webhooks/durabletask/instances/x/raiseEvent/Approval", "application/json", strings.NewReader(`{"ok":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	e = echoed{}
	json.Unmarshal(body, &e)
	if resp.StatusCode != 200 || e.Path != "/runtime/webhooks/durabletask/instances/x/raiseEvent/Approval" || e.Body != `{"ok":true}` {
		t.Errorf("status %d, app saw %+v", resp.StatusCode, e)
	}

	// the host's readiness ping and GETs of one-segment paths are not invocations
	resp, err = http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/api/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	e = echoed{}
	json.Unmarshal(body, &e)
	if e.Path != "/healthz" {
		t.Errorf("GET /api/healthz reached %q", e.Path)
	}
}

func TestForwardedHEAD(t *testing.T) {
	srv := newServer(t, Options{})
	resp, err := http.Head(srv.URL + "/api/durabletask/instances/abc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
}

func TestMalformedInvocations(t *testing.T) {
	srv := newServer(t, Options{MaxRequestBytes: 1 << 16})
	big := `{"Data":{"req":{"Url":"http://h/api/x","Method":"POST","Body":"` + strings.Repeat("a", 1<<17) + `"}}}`
	cases := []struct {
		name, payload string
		status        int
		want          string
	}{
		{"empty", "", 400, "empty payload"},
		{"not JSON", "Data=1", 400, "not a JSON object"},
		{"truncated", `{"Data":{"req":{"Url":"http://h/x"`, 400, "not a JSON object"},
		{"array", `[1,2]`, 400, "not a JSON object"},
		{"trailing data", `{"Data":{"req":{"Url":"http://h/x","Method":"GET"}}} {}`, 400, "data after"},
		{"no Data", `{"Metadata":{}}`, 400, `no "Data"`},
		{"null Data", `{"Data":null}`, 400, `no "Data"`},
		{"Data not object", `{"Data":"x"}`, 400, "not a JSON object"},
		{"queue trigger", `{"Data":{"myQueueItem":"{ message: \"Message sent\" }"},"Metadata":{"DequeueCount":1}}`, 400, "no HTTP trigger binding"},
		{"no Url", `{"Data":{"req":{"Method":"GET"}}}`, 400, "has no Url"},
		{"no Method", `{"Data":{"req":{"Url":"http://h/x"}}}`, 400, "has no Method"},
		{"Url not a string", `{"Data":{"req":{"Url":7,"Method":"GET"}}}`, 400, `HTTP trigger binding "req"`},
		{"bad Url", `{"Data":{"req":{"Url":"http://h/%zz","Method":"GET"}}}`, 400, "is not a URL"},
		{"ftp Url", `{"Data":{"req":{"Url":"ftp://h/x","Method":"GET"}}}`, 400, "not an http or https URL"},
		{"bad Method", `{"Data":{"req":{"Url":"http://h/x","Method":"GE T"}}}`, 400, "invalid method"},
		{"bad Headers", `{"Data":{"req":{"Url":"http://h/x","Method":"GET","Headers":{"A":{"b":1}}}}}`, 400, `Headers["A"]`},
		{"Headers not object", `{"Data":{"req":{"Url":"http://h/x","Method":"GET","Headers":[1]}}}`, 400, `HTTP trigger binding "req"`},
		{"bad Query", `{"Data":{"req":{"Url":"http://h/x","Method":"GET","Query":"not json"}}}`, 400, "Query"},
		{"too big", big, 413, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, header, body := invoke(t, srv, "DurableInstances", c.payload)
			if status != c.status {
				t.Errorf("status %d, want %d: %s", status, c.status, body)
			}
			if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			var er struct {
				Error string
				Logs  []string
			}
			if err := json.Unmarshal(body, &er); err != nil {
				t.Fatalf("error body is not JSON: %v: %s", err, body)
			}
			if !strings.Contains(er.Error, c.want) || !strings.Contains(er.Error, `"DurableInstances"`) || len(er.Logs) != 1 {
				t.Errorf("error %q (logs %q), want it to mention %q and the function", er.Error, er.Logs, c.want)
			}
		})
	}
}

func TestInvocationAppPanic(t *testing.T) {
	srv := newServer(t, Options{Prefixes: map[string]string{}})
	status, _, body := invoke(t, srv, "Fn", `{"Data":{"req":{"Url":"http://h/panic","Method":"GET"}}}`)
	if status != http.StatusInternalServerError || !strings.Contains(string(body), "panicked: boom") {
		t.Errorf("status %d: %s", status, body)
	}
	// the server still works
	status, _, body = invoke(t, srv, "Fn", docsOrderInvocation)
	if status != http.StatusOK {
		t.Errorf("after a panic: status %d: %s", status, body)
	}
}

func TestPrefixes(t *testing.T) {
	h := NewHandler(http.NotFoundHandler(), Options{Prefixes: map[string]string{
		"api/durabletask/":         "/runtime/webhooks/durabletask/",
		"/api/durabletask/special": "/special",
		"/":                        "/ignored",
		"/api/root":                "/",
	}}).(*handler)
	cases := map[string]string{
		"/api/durabletask":                    "/runtime/webhooks/durabletask",
		"/api/durabletask/":                   "/runtime/webhooks/durabletask/",
		"/api/durabletask/instances/a%2Fb":    "/runtime/webhooks/durabletask/instances/a%2Fb",
		"/api/durabletask/special/x":          "/special/x",
		"/api/durabletask/specialist":         "/runtime/webhooks/durabletask/specialist",
		"/api/durabletaskx":                   "",
		"/API/DurableTask/instances":          "/runtime/webhooks/durabletask/instances",
		"/api/root":                           "/",
		"/api/root/a":                         "/a",
		"/other":                              "",
		"/runtime/webhooks/durabletask/x/y/z": "",
	}
	for in, want := range cases {
		got, _, ok := h.mapPath(in)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("mapPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplaceAtBoundary(t *testing.T) {
	old, repl := "http://h/rw/dt", "https://h/api/dt"
	cases := map[string]string{
		"http://h/rw/dt":                  "https://h/api/dt",
		`"http://h/rw/dt/i/1"`:            `"https://h/api/dt/i/1"`,
		"http://h/rw/dt?x=1":              "https://h/api/dt?x=1",
		"http://h/rw/dtx http://h/rw/dt/": "http://h/rw/dtx https://h/api/dt/",
		"none":                            "none",
	}
	for in, want := range cases {
		if got := replaceAtBoundary(in, old, repl); got != want {
			t.Errorf("replaceAtBoundary(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConcurrentInvocations(t *testing.T) {
	srv := newServer(t, Options{})
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprintf(`{"Data":{"req":{"Url":"http://localhost:7071/api/durabletask/instances/i%d","Method":"GET"}},"Metadata":{}}`, i)
			status, _, body := invoke(t, srv, "DurableInstances", payload)
			if status != http.StatusOK {
				t.Errorf("status %d: %s", status, body)
				return
			}
			out, _ := checkShape(t, body, "res")
			if !strings.Contains(out.Body, fmt.Sprintf(`"path":"/runtime/webhooks/durabletask/instances/i%d"`, i)) {
				t.Errorf("body %s", out.Body)
			}
		}()
	}
	wg.Wait()
}

// FuzzInvocation feeds arbitrary payloads: the adapter answers 200, 4xx or
// 500 with a JSON body, and never panics.
func FuzzInvocation(f *testing.F) {
	for _, s := range []string{docsOrderInvocation, instancesInvocation, "", "{}", `{"Data":{}}`, `{"Data":{"req":{}}}`,
		`{"Data":{"req":{"Url":"http://h/%","Method":"GET"}}}`, `{"Data":{"req":{"Url":"//x","Method":"G","Body":"=="}}}`,
		`{"Data":{"req":{"Url":"/a?b","Method":"PUT","Headers":{"Content-Type":"multipart/x"},"Body":"!!"}}}`} {
		f.Add(s)
	}
	h := NewHandler(echoApp(), Options{Logger: quietLogger()})
	f.Fuzz(func(t *testing.T, payload string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/Fn", strings.NewReader(payload))
		h.ServeHTTP(w, r)
		if c := w.Code; c != 200 && (c < 400 || c > 500) {
			t.Fatalf("status %d", c)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("response is not JSON: %q", w.Body.String())
		}
	})
}

func TestFunctionKeys(t *testing.T) {
	srv := newServer(t, Options{})
	// invocation, mapped path: the key does not reach the app or the logs
	payload := `{"Data":{"req":{"Url":"https://a.example.net/api/durabletask/instances/i1?code=s3cr3t&showInput=true","Method":"GET",
		"Headers":{"x-functions-key":["s3cr3t"]}}},"Metadata":{}}`
	status, _, body := invoke(t, srv, "DurableInstances", payload)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	out, logs := checkShape(t, body, "res")
	if strings.Contains(out.Body, "s3cr3t") || strings.Contains(strings.Join(logs, " "), "s3cr3t") {
		t.Errorf("the key reached the app or the logs: %s %q", out.Body, logs)
	}
	var e echoed
	json.Unmarshal([]byte(out.Body), &e)
	if e.Query["showInput"][0] != "true" {
		t.Errorf("query %v", e.Query)
	}
	// invocation, unmapped path: the app gets the request as sent, the logs hide the key
	payload = `{"Data":{"req":{"Url":"https://a.example.net/api/other?code=s3cr3t","Method":"GET"}},"Metadata":{}}`
	_, _, body = invoke(t, srv, "Other", payload)
	out, logs = checkShape(t, body, "res")
	if !strings.Contains(out.Body, "s3cr3t") || strings.Contains(strings.Join(logs, " "), "s3cr3t") || !strings.Contains(logs[0], "code=REDACTED") {
		t.Errorf("body %s logs %q", out.Body, logs)
	}
	// forwarded, mapped path
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/durabletask/instances/i1?code=s3cr3t&a=b", nil)
	req.Header.Set("X-Functions-Key", "s3cr3t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "s3cr3t") || !strings.Contains(string(b), `"a":["b"]`) {
		t.Errorf("forwarded: app saw %s", b)
	}
}

func TestRedactKey(t *testing.T) {
	cases := map[string]string{
		"/a":                 "/a",
		"/a?code=x":          "/a?code=REDACTED",
		"/a?b=1&code=x&c=2":  "/a?b=1&code=REDACTED&c=2",
		"/a?xcode=1&codex=2": "/a?xcode=1&codex=2",
		"/a?code=x&code=y":   "/a?code=REDACTED&code=REDACTED",
	}
	for in, want := range cases {
		if got := redactKey(in); got != want {
			t.Errorf("redactKey(%q) = %q, want %q", in, got, want)
		}
	}
}
