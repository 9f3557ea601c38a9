package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Options configure the adapter. The zero value serves the templates of
// this package.
type Options struct {
	// Logger receives the adapter's log lines; slog.Default() if nil.
	Logger *slog.Logger

	// Prefixes maps public path prefixes, as the Functions host receives
	// them (route prefix included, e.g. "/api/durabletask"), to the path
	// prefixes the application serves (e.g. "/runtime/webhooks/durabletask").
	// The longest matching prefix wins; a prefix matches whole path
	// segments, ignoring case (as Functions routes do). Paths that match no
	// prefix reach the application unchanged. nil means DefaultPrefixes();
	// an empty map maps nothing.
	Prefixes map[string]string

	// ResponseBinding names the HTTP output binding in function.json
	// ("type": "http", "direction": "out") that receives the response in
	// invocation mode (default "res"). The response is also the
	// ReturnValue, so functions whose HTTP output is "$return" work too.
	ResponseBinding string

	// MaxRequestBytes bounds the JSON body of an invocation (default 64
	// MiB). Larger invocations are refused with 413.
	MaxRequestBytes int64
}

// DefaultResponseBinding is the default Options.ResponseBinding.
const DefaultResponseBinding = "res"

// DefaultMaxRequestBytes is the default Options.MaxRequestBytes.
const DefaultMaxRequestBytes = 64 << 20

// DefaultPrefixes returns the path mapping of the templates: the Durable
// Functions management API, published by the Functions host at
// /api/durabletask/..., is served by the application at
// /runtime/webhooks/durabletask/...; /api/healthz is /healthz.
func DefaultPrefixes() map[string]string {
	return map[string]string{
		"/api/durabletask": "/runtime/webhooks/durabletask",
		"/api/healthz":     "/healthz",
	}
}

// Header names the adapter reads or sets.
const (
	// InvocationIDHeader carries the invocation id on every request from
	// the Functions host; the adapter copies it to the application request.
	InvocationIDHeader = "X-Azure-Functions-InvocationId"
	forwardedHostHdr   = "X-Forwarded-Host"
	forwardedProtoHdr  = "X-Forwarded-Proto"
)

type prefixMap struct {
	public, app string
}

type handler struct {
	app      http.Handler
	log      *slog.Logger
	prefixes []prefixMap // longest public prefix first
	binding  string
	maxBytes int64
}

// NewHandler wraps app (any http.Handler, e.g. the durable HTTP API plus the
// app's own routes) so that it answers the Functions host both ways:
//
//   - custom-handler invocations: the host POSTs /{functionName} with
//     {"Data": {...bindings...}, "Metadata": {...}}; for an HTTP-triggered
//     function the trigger binding (name from function.json, usually "req")
//     carries Url, Method, Query, Headers, Params, Body; the adapter turns
//     it into an http.Request for app and answers {"Outputs": {"res":
//     {"statusCode":..., "body":..., "headers":{...}}}, "Logs": [...],
//     "ReturnValue": ...} as the custom handler protocol specifies;
//   - forwarded HTTP requests (enableForwardingHttpRequest: true in
//     host.json): plain HTTP requests passed straight to app.
//
// A POST to a one-segment path (/{name}) that Options.Prefixes does not map
// is an invocation; every other request is a forwarded one. Requests whose
// path a prefix maps reach app at the mapped path, with X-Forwarded-Host
// and X-Forwarded-Proto set and without the function key (the code query
// parameter and the x-functions-key header, which the host has checked);
// the URLs in their responses are mapped back. Invocation
// payloads that are not valid are answered with a 4xx status and a JSON
// body {"Error": "...", "Logs": ["..."]}; a panic in app while serving an
// invocation is answered with 500 the same way.
func NewHandler(app http.Handler, opts Options) http.Handler {
	h := &handler{app: app, log: opts.Logger, binding: opts.ResponseBinding, maxBytes: opts.MaxRequestBytes}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.binding == "" {
		h.binding = DefaultResponseBinding
	}
	if h.maxBytes <= 0 {
		h.maxBytes = DefaultMaxRequestBytes
	}
	prefixes := opts.Prefixes
	if prefixes == nil {
		prefixes = DefaultPrefixes()
	}
	for pub, appPrefix := range prefixes {
		pub, appPrefix = cleanPrefix(pub), cleanPrefix(appPrefix)
		if pub == "" {
			continue
		}
		h.prefixes = append(h.prefixes, prefixMap{public: pub, app: appPrefix})
	}
	sort.Slice(h.prefixes, func(i, j int) bool {
		if len(h.prefixes[i].public) != len(h.prefixes[j].public) {
			return len(h.prefixes[i].public) > len(h.prefixes[j].public)
		}
		return h.prefixes[i].public < h.prefixes[j].public
	})
	return h
}

// cleanPrefix gives a prefix a leading slash and no trailing one; "/" and
// "" become "".
func cleanPrefix(p string) string {
	p = strings.TrimSpace(p)
	p = strings.TrimRight(p, "/")
	if p != "" && p[0] != '/' {
		p = "/" + p
	}
	return p
}

// mapPath maps an escaped public path to the application's; ok is false if
// no prefix matches.
func (h *handler) mapPath(escaped string) (appPath string, m prefixMap, ok bool) {
	for _, m := range h.prefixes {
		// routes are case-insensitive in the Functions host, as in ASP.NET
		if len(escaped) < len(m.public) || !strings.EqualFold(escaped[:len(m.public)], m.public) {
			continue
		}
		if rest := escaped[len(m.public):]; rest == "" || rest[0] == '/' {
			p := m.app + rest
			if p == "" {
				p = "/"
			}
			return p, m, true
		}
	}
	return "", prefixMap{}, false
}

func (h *handler) isInvocation(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	p := r.URL.Path
	if len(p) < 2 || p[0] != '/' || strings.Contains(p[1:], "/") {
		return false
	}
	_, _, mapped := h.mapPath(r.URL.EscapedPath())
	return !mapped
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.isInvocation(r) {
		h.invoke(w, r)
		return
	}
	h.forward(w, r)
}

// ---- invocation mode ----

// invocationRequest is the body of an invocation from the Functions host.
type invocationRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata json.RawMessage            `json:"Metadata"`
}

// httpTriggerData is the value of an HTTP trigger binding in Data, as the
// host builds it (HttpRequestExtensions.GetRequestAsJObject): Url is the
// whole original URL with its query; Query is the query as an object, or
// that object serialized as a JSON string (older hosts); Headers map names
// to arrays of values; Body is the body as a string, base64 for
// application/octet-stream and multipart/* bodies.
type httpTriggerData struct {
	Url        *string                    `json:"Url"`
	Method     *string                    `json:"Method"`
	Query      json.RawMessage            `json:"Query"`
	Headers    map[string]json.RawMessage `json:"Headers"`
	Params     map[string]json.RawMessage `json:"Params"`
	Identities json.RawMessage            `json:"Identities"`
	Body       json.RawMessage            `json:"Body"`
}

// invocationResponse is the answer to an invocation.
type invocationResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// httpOutput is the value of an HTTP output binding. The host reads
// statusCode (or status), body and headers case-insensitively; some host
// versions insist on all four of StatusCode, Status, Body and Headers
// being present and not null, so all four are always written.
type httpOutput struct {
	StatusCode int               `json:"statusCode"`
	Status     int               `json:"status"`
	Body       string            `json:"body"`
	Headers    map[string]string `json:"headers"`
}

// errorResponse is the body of a refused invocation.
type errorResponse struct {
	Error string   `json:"Error"`
	Logs  []string `json:"Logs"`
}

// invocationError is a refused invocation: its status and message.
type invocationError struct {
	status int
	msg    string
}

func (e *invocationError) Error() string { return e.msg }

func badInvocation(format string, args ...any) error {
	return &invocationError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func (h *handler) invoke(w http.ResponseWriter, r *http.Request) {
	function := strings.TrimPrefix(r.URL.Path, "/")
	start := time.Now()
	resp, err := h.invocation(w, r, function)
	if err != nil {
		status := http.StatusBadRequest
		var ie *invocationError
		if errors.As(err, &ie) {
			status = ie.status
		}
		msg := "netherite functions adapter: " + err.Error()
		h.log.Warn("functions: invocation refused", "function", function, "status", status, "error", err.Error())
		writeJSON(w, status, errorResponse{Error: msg, Logs: []string{msg}})
		return
	}
	h.log.Debug("functions: invocation", "function", function, "duration", time.Since(start))
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) invocation(w http.ResponseWriter, r *http.Request, function string) (*invocationResponse, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &invocationError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("invocation of function %q: payload larger than %d bytes", function, tooBig.Limit)}
		}
		return nil, badInvocation("invocation of function %q: reading the payload: %v", function, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badInvocation(`invocation of function %q: empty payload; want {"Data": {...}, "Metadata": {...}}`, function)
	}
	var inv invocationRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&inv); err != nil {
		return nil, badInvocation(`invocation of function %q: payload is not a JSON object {"Data": {...}, "Metadata": {...}}: %v`, function, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badInvocation("invocation of function %q: payload has data after the JSON object", function)
	}
	if len(inv.Data) == 0 {
		return nil, badInvocation(`invocation of function %q: payload has no "Data" bindings`, function)
	}
	name, trig, err := findHTTPTrigger(inv.Data)
	if err != nil {
		return nil, badInvocation("invocation of function %q: %v", function, err)
	}
	req, pub, err := h.appRequest(r, name, trig)
	if err != nil {
		return nil, badInvocation("invocation of function %q: %v", function, err)
	}

	rec := newRecorder()
	start := time.Now()
	if perr := serveRecovering(h.app, rec, req); perr != nil {
		h.log.Error("functions: application handler panicked", "function", function, "panic", fmt.Sprint(perr))
		return nil, &invocationError{status: http.StatusInternalServerError,
			msg: fmt.Sprintf("invocation of function %q: %s %s: the application handler panicked: %v", function, req.Method, redactKey(req.URL.RequestURI()), perr)}
	}
	out, logs := pub.output(rec)
	logs = append([]string{fmt.Sprintf("%s %s -> %d (%s)", req.Method, redactKey(req.URL.RequestURI()), out.StatusCode, time.Since(start).Round(time.Microsecond))}, logs...)
	return &invocationResponse{
		Outputs:     map[string]any{h.binding: out},
		Logs:        logs,
		ReturnValue: out,
	}, nil
}

// findHTTPTrigger picks the HTTP trigger binding out of Data: "req" if it
// is one, else the first (by name) object with Url and Method.
func findHTTPTrigger(data map[string]json.RawMessage) (string, *httpTriggerData, error) {
	names := make([]string, 0, len(data))
	for name := range data {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "req") != (names[j] == "req") {
			return names[i] == "req"
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		raw := bytes.TrimSpace(data[name])
		if len(raw) == 0 || raw[0] != '{' {
			continue
		}
		var probe map[string]json.RawMessage
		if json.Unmarshal(raw, &probe) != nil {
			continue
		}
		hasURL, hasMethod := false, false
		for k := range probe {
			hasURL = hasURL || strings.EqualFold(k, "Url")
			hasMethod = hasMethod || strings.EqualFold(k, "Method")
		}
		if !hasURL && !hasMethod {
			continue
		}
		var trig httpTriggerData
		if err := json.Unmarshal(raw, &trig); err != nil {
			return "", nil, fmt.Errorf("HTTP trigger binding %q: %v", name, err)
		}
		return name, &trig, nil
	}
	return "", nil, fmt.Errorf("no HTTP trigger binding (an object with Url and Method) among the Data bindings %q; the Netherite adapter serves HTTP-triggered functions only", names)
}

// publicView describes how the client of the Functions host sees the
// request, to map the application's URLs back.
type publicView struct {
	mapped bool
	m      prefixMap
	scheme string // of the public URL
	host   string // of the public URL (and of the application request)
}

// appRequest rebuilds the original request from an HTTP trigger binding.
func (h *handler) appRequest(r *http.Request, binding string, trig *httpTriggerData) (*http.Request, publicView, error) {
	var pub publicView
	if trig.Url == nil || *trig.Url == "" {
		return nil, pub, fmt.Errorf("HTTP trigger binding %q has no Url", binding)
	}
	if trig.Method == nil || *trig.Method == "" {
		return nil, pub, fmt.Errorf("HTTP trigger binding %q has no Method", binding)
	}
	u, err := url.Parse(*trig.Url)
	if err != nil {
		return nil, pub, fmt.Errorf("HTTP trigger binding %q: Url %q is not a URL: %v", binding, *trig.Url, err)
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return nil, pub, fmt.Errorf("HTTP trigger binding %q: Url %q is not an http or https URL", binding, *trig.Url)
	}

	header := http.Header{}
	for name, raw := range trig.Headers {
		values, err := stringOrStrings(raw)
		if err != nil {
			return nil, pub, fmt.Errorf("HTTP trigger binding %q: Headers[%q] %v", binding, name, err)
		}
		key := http.CanonicalHeaderKey(name)
		header[key] = append(header[key], values...)
	}

	if u.RawQuery == "" && len(trig.Query) > 0 {
		q, err := queryValues(trig.Query)
		if err != nil {
			return nil, pub, fmt.Errorf("HTTP trigger binding %q: Query %v", binding, err)
		}
		u.RawQuery = q.Encode()
	}

	body, err := bodyBytes(trig.Body, header.Get("Content-Type"))
	if err != nil {
		return nil, pub, fmt.Errorf("HTTP trigger binding %q: Body %v", binding, err)
	}

	pub.host = u.Host
	if pub.host == "" {
		pub.host = header.Get("Host")
	}
	if pub.host == "" {
		pub.host = r.Host
	}
	pub.scheme = u.Scheme
	if p := firstToken(header.Get(forwardedProtoHdr)); p == "http" || p == "https" {
		pub.scheme = p
	}
	if pub.scheme == "" {
		pub.scheme = "http"
	}

	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if appPath, m, ok := h.mapPath(path); ok {
		path, pub.mapped, pub.m = appPath, true, m
		u.RawQuery = stripKey(u.RawQuery, header)
	}
	target := path
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), *trig.Method, target, bytes.NewReader(body))
	if err != nil {
		return nil, pub, fmt.Errorf("HTTP trigger binding %q: %s %s: %v", binding, *trig.Method, redactKey(target), err)
	}
	for _, k := range hopHeaders {
		header.Del(k)
	}
	header.Del("Host")
	header.Del("Content-Length")
	if header.Get(InvocationIDHeader) == "" && r.Header.Get(InvocationIDHeader) != "" {
		header.Set(InvocationIDHeader, r.Header.Get(InvocationIDHeader))
	}
	if pub.mapped {
		setIfAbsent(header, forwardedHostHdr, pub.host)
		setIfAbsent(header, forwardedProtoHdr, pub.scheme)
	}
	req.Header = header
	req.Host = pub.host
	req.RequestURI = target
	req.RemoteAddr = r.RemoteAddr
	return req, pub, nil
}

// stringOrStrings decodes a header value: a string or an array of strings
// (the host sends arrays); null is no value.
func stringOrStrings(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var ss []*string
	if raw[0] == '[' && json.Unmarshal(raw, &ss) == nil {
		out := make([]string, 0, len(ss))
		for _, p := range ss {
			if p != nil {
				out = append(out, *p)
			}
		}
		return out, nil
	}
	return nil, errors.New("must be a string or an array of strings")
}

// queryValues decodes Query: an object of strings, or such an object
// serialized as a JSON string; values are strings or arrays of strings.
func queryValues(raw json.RawMessage) (url.Values, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		raw = bytes.TrimSpace([]byte(s))
		if len(raw) == 0 {
			return nil, nil
		}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("must be an object of strings (or one serialized as a JSON string)")
	}
	q := url.Values{}
	for k, v := range m {
		values, err := stringOrStrings(v)
		if err != nil {
			// a number or a boolean: keep its JSON text
			values = []string{string(bytes.TrimSpace(v))}
		}
		q[k] = append(q[k], values...)
	}
	return q, nil
}

// bodyBytes decodes Body: the host sends a string, base64 for
// application/octet-stream and multipart/* content; other JSON values
// (from hosts that parse JSON bodies) are taken as their JSON text.
func bodyBytes(raw json.RawMessage, contentType string) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return append([]byte(nil), raw...), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if isBinaryMedia(contentType) {
		if b, err := decodeBase64(s); err == nil {
			return b, nil
		}
	}
	return []byte(s), nil
}

// ---- forwarded mode ----

func (h *handler) forward(w http.ResponseWriter, r *http.Request) {
	appPath, m, ok := h.mapPath(r.URL.EscapedPath())
	if !ok {
		h.app.ServeHTTP(w, r)
		return
	}
	pub := publicView{mapped: true, m: m}
	pub.host = r.Host
	if fh := firstToken(r.Header.Get(forwardedHostHdr)); fh != "" {
		pub.host = fh
	}
	pub.scheme = "http"
	if r.TLS != nil {
		pub.scheme = "https"
	}
	if p := firstToken(r.Header.Get(forwardedProtoHdr)); p == "http" || p == "https" {
		pub.scheme = p
	}

	req := r.Clone(r.Context())
	u := *r.URL
	u.RawQuery = stripKey(u.RawQuery, req.Header)
	if p, err := url.PathUnescape(appPath); err == nil {
		u.Path, u.RawPath = p, appPath
		if u.EscapedPath() != appPath {
			u.RawPath = ""
		}
	} else {
		u.Path, u.RawPath = appPath, ""
	}
	req.URL = &u
	req.RequestURI = u.RequestURI()
	req.Host = pub.host
	setIfAbsent(req.Header, forwardedHostHdr, pub.host)
	setIfAbsent(req.Header, forwardedProtoHdr, pub.scheme)

	rec := newRecorder()
	h.app.ServeHTTP(rec, req)
	status := rec.statusCode()
	body := rec.body.Bytes()
	sent := rec.result()
	if isTextMedia(sent.Get("Content-Type")) {
		body = []byte(pub.rewriteBody(string(body)))
	}
	dst := w.Header()
	for k, vs := range sent {
		if k == "Content-Length" {
			continue
		}
		if k == "Location" || k == "Content-Location" {
			vs = append([]string(nil), vs...)
			for i := range vs {
				vs[i] = pub.rewriteLocation(vs[i])
			}
		}
		dst[k] = vs
	}
	if bodyAllowed(r.Method, status) {
		dst.Set("Content-Length", fmt.Sprint(len(body)))
	}
	w.WriteHeader(status)
	if bodyAllowed(r.Method, status) {
		w.Write(body)
	}
}

func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// ---- responses ----

// output turns a recorded response into an HTTP output binding value, with
// the application's URLs mapped to the public ones; logs are remarks for
// the invocation log.
func (pub publicView) output(rec *recorder) (httpOutput, []string) {
	out := httpOutput{StatusCode: rec.statusCode(), Headers: map[string]string{}}
	out.Status = out.StatusCode
	sent := rec.result()
	for k, vs := range sent {
		if k == "Content-Length" || isHopHeader(k) {
			continue
		}
		v := strings.Join(vs, ", ")
		if k == "Location" || k == "Content-Location" {
			v = pub.rewriteLocation(v)
		}
		out.Headers[k] = v
	}
	body := rec.body.String()
	if isTextMedia(sent.Get("Content-Type")) {
		body = pub.rewriteBody(body)
	}
	var logs []string
	if !isValidUTF8(body) {
		logs = append(logs, "the response body is not valid UTF-8: invocation payloads carry bodies as text, so invalid bytes were replaced; set enableForwardingHttpRequest in host.json to serve binary responses")
	}
	out.Body = body
	return out, logs
}

// rewriteLocation maps a Location value: an absolute URL of the
// application's prefix on the public host, or a path under it.
func (pub publicView) rewriteLocation(v string) string {
	if !pub.mapped {
		return v
	}
	if strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
		if rest, ok := strings.CutPrefix(v, pub.m.app); ok && (rest == "" || !isSegmentChar(rest[0])) {
			return pub.m.public + rest
		}
		return v
	}
	return pub.rewriteBody(v)
}

// rewriteBody maps absolute URLs of the application's prefix on the public
// host (http or https) to the public prefix and scheme.
func (pub publicView) rewriteBody(s string) string {
	if !pub.mapped || pub.host == "" {
		return s
	}
	repl := pub.scheme + "://" + pub.host + pub.m.public
	for _, scheme := range []string{"http://", "https://"} {
		s = replaceAtBoundary(s, scheme+pub.host+pub.m.app, repl)
	}
	return s
}

// replaceAtBoundary replaces old by repl where old is not followed by a
// character that would continue its last path segment.
func replaceAtBoundary(s, old, repl string) string {
	if old == "" || !strings.Contains(s, old) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(old)
		if end < len(s) && isSegmentChar(s[end]) {
			b.WriteString(s[:end])
		} else {
			b.WriteString(s[:i])
			b.WriteString(repl)
		}
		s = s[end:]
	}
}

func isSegmentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '%' || c == ':' || c == '@' || c == '!' ||
		c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '='
}

// ---- helpers ----

// keyParam and keyHeader carry function keys, which the Functions host
// checks before it calls the handler.
const (
	keyParam  = "code"
	keyHeader = "X-Functions-Key"
)

// stripKey removes the function key from a query and its header from h:
// the host has checked it, and the application must not log it.
func stripKey(rawQuery string, h http.Header) string {
	h.Del(keyHeader)
	if !strings.Contains(rawQuery, keyParam+"=") {
		return rawQuery
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil || !q.Has(keyParam) {
		return rawQuery
	}
	q.Del(keyParam)
	return q.Encode()
}

// redactKey hides the value of a function key in a request URI for logs.
func redactKey(uri string) string {
	path, rawQuery, ok := strings.Cut(uri, "?")
	if !ok || !strings.Contains(rawQuery, keyParam+"=") {
		return uri
	}
	parts := strings.Split(rawQuery, "&")
	for i, p := range parts {
		if k, _, found := strings.Cut(p, "="); found && k == keyParam {
			parts[i] = keyParam + "=REDACTED"
		}
	}
	return path + "?" + strings.Join(parts, "&")
}

// hopHeaders are connection-level headers that do not travel between the
// Functions host's request or response and the application's.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func isHopHeader(k string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(h, k) {
			return true
		}
	}
	return false
}

func setIfAbsent(h http.Header, k, v string) {
	if v != "" && h.Get(k) == "" {
		h.Set(k, v)
	}
}

// firstToken returns the first comma-separated element of a header value,
// trimmed and lowercased.
func firstToken(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

func mediaType(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.ToLower(strings.TrimSpace(contentType))
}

// isBinaryMedia tells the content types whose bodies the host base64-encodes.
func isBinaryMedia(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/")
}

// isTextMedia tells the content types whose bodies may carry URLs to map.
func isTextMedia(contentType string) bool {
	mt := mediaType(contentType)
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || strings.HasPrefix(mt, "text/")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, "{\"Error\":%q,\"Logs\":[]}\n", "netherite functions adapter: encoding the response: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// serveRecovering serves req with app, returning what app panicked with,
// if it did.
func serveRecovering(app http.Handler, w http.ResponseWriter, req *http.Request) (p any) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p = v
		}
	}()
	app.ServeHTTP(w, req)
	return nil
}
