// Package httpapi serves the Durable Functions HTTP management API
// (/runtime/webhooks/durabletask/...) over any durable.Client: the same
// routes, query parameters, status codes, headers (Location, Retry-After,
// x-ms-continuation-token), JSON field names, runtime status names and
// time formats as Azure Durable Functions, so that existing tools and
// scripts work against a Netherite host unchanged.
//
// Routes (all under /runtime/webhooks/durabletask; taskHub, connection
// and code are accepted on every route):
//
//	POST   /orchestrators/{name}[/{instanceId}]      start: 202 check-status payload; 400 bad input/unknown name; 409 id in use
//	                                                 ?timeout=s[&pollingInterval=s]: 200 output | 200 status if failed | 202
//	GET    /instances                                list: 200 array; filters instanceIdPrefix, createdTimeFrom/To,
//	                                                 runtimeStatus, showInput, top; paging by x-ms-continuation-token
//	DELETE /instances?createdTimeFrom=...            purge by filter: 200 {"instancesDeleted":n}; 404 none; 400 no createdTimeFrom
//	GET    /instances/{id}                           status: 200 ended, 202 running (Location, Retry-After: 5), 404;
//	                                                 500 if failed and returnInternalServerErrorOnFailure=true
//	DELETE /instances/{id}                           purge: 200 {"instancesDeleted":1}; 404; 412 still running
//	POST   /instances/{id}/raiseEvent/{event}        202; 400 not application/json or invalid JSON; 404; 410 ended
//	POST   /instances/{id}/terminate|suspend|resume  ?reason=: 202; 404; 410 ended
//	POST   /instances/{id}/restart                   ?restartWithNewInstanceId=: as start; 400 unknown instance
//	POST   /instances/{id}/rewind                    404; 412 not failed; 501 (the engine cannot rewind)
//	GET    /entities[/{name}]                        200 array of {entityId, lastOperationTime[, state]};
//	                                                 fetchState, lastOperationTimeFrom/To, top, x-ms-continuation-token
//	GET    /entities/{name}/{key}                    200 state; 404
//	POST   /entities/{name}/{key}?op=...             signal: 202; 400; 404 unregistered name (with Options.Registry)
//	DELETE /entities/{name}/{key}                    delete the state: 202; 404 no state
//
// Any other path answers 404, a wrong method 405 with Allow. The key "$"
// names the empty entity key. Ids containing '/' are written %2F.
//
// Differences from Durable Functions:
//   - Input is checked strictly: malformed booleans, numbers, timestamps,
//     runtime statuses, ids (empty, over 256 bytes, control characters),
//     names and bodies answer 400 where Durable Functions ignores them;
//     a wrong method answers 405 (Durable Functions: 404); error bodies
//     are always {"Message": ..., "ExceptionMessage": ...}, also on 404.
//   - A taskHub parameter naming another task hub than Options.TaskHub
//     answers 400 (this host serves one task hub).
//   - top is capped at 1000 (callers must follow the continuation token
//     anyway); x-ms-continuation-token is absent on the last page.
//   - restart with restartWithNewInstanceId=false replaces the instance
//     even if it still runs (it is terminated first); Durable Functions
//     answers 409 then.
//   - op is required to signal an entity (Durable Functions allows an
//     empty operation name; the engine does not).
//   - DELETE of an entity answers 404 if it has no state; otherwise it
//     deletes the state (durable.Client.DeleteEntity) and answers 202.
//   - rewind answers 501 for a failed instance: the engine cannot rewind.
//   - The check-status payload has no rewindPostUri (neither has the one
//     Durable Functions' CreateCheckStatusResponse writes).
//   - History events carry the DurableTask.Core field names that the
//     engine records (EventType, Timestamp, FunctionName, Name, Input,
//     Result, ScheduledTime, FireAt, Reason, FailureDetails, ...), not
//     every field DurableTask.Core serializes (no EventId, IsPlayed,
//     Correlation, ...).
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/netherite-go/netherite/durable"
)

// Prefix is the path under which the API is served.
const Prefix = "/runtime/webhooks/durabletask"

// DefaultMaxBodyBytes is the default request body limit.
const DefaultMaxBodyBytes = 32 << 20

const (
	// maxWaitDefault bounds the timeout query parameter of start and
	// restart.
	maxWaitDefault = time.Hour
	// callTimeout bounds every call to the client, so a request never
	// hangs on an engine that does not answer.
	callTimeout = time.Minute
	// maxTop caps the page size a caller may ask for; a smaller page with
	// a continuation token is what Durable Functions callers expect anyway.
	maxTop = 1000
	// maxNameBytes bounds orchestrator, event, entity and operation names.
	maxNameBytes = 1024
	// retryAfterStart and retryAfterStatus are the Retry-After values of
	// Durable Functions: 10 s on the check-status response, 5 s on the
	// status of a running instance.
	retryAfterStart  = "10"
	retryAfterStatus = "5"
)

// Options configure the handler.
type Options struct {
	// BaseURL returns the externally visible URL prefix for links (e.g.
	// "http://localhost:7071"); nil: built from the request (scheme +
	// Host).
	BaseURL func(r *http.Request) string
	// TaskHub is included as taskHub= in links, as Durable Functions
	// does. When set, a request whose taskHub query parameter names
	// another task hub answers 400.
	TaskHub string
	// ConnectionName is included as connection= (default "Storage").
	ConnectionName string
	// MaxBodyBytes is the request body limit (default 32 MiB); larger
	// bodies answer 413.
	MaxBodyBytes int64
	// Logger receives one line per request and the details of internal
	// errors; slog.Default() if nil.
	Logger *slog.Logger
	// Registry, if set, lets the handler refuse names that are not
	// registered as Durable Functions does: starting an unknown
	// orchestrator answers 400 and signalling an unknown entity 404.
	// Without it such requests are accepted, and the instance fails with
	// a NotRegisteredError (the entity signal is dropped by the engine).
	Registry *durable.Registry
}

type handler struct {
	c       durable.Client
	opts    Options
	log     *slog.Logger
	maxBody int64
	maxWait time.Duration
}

// NewHandler returns the handler of the Durable Functions HTTP API over c.
// It serves paths under Prefix and answers 404 for any other path.
func NewHandler(c durable.Client, opts Options) http.Handler {
	return newHandler(c, opts)
}

func newHandler(c durable.Client, opts Options) *handler {
	if opts.ConnectionName == "" {
		opts.ConnectionName = "Storage"
	}
	h := &handler{c: c, opts: opts, log: opts.Logger, maxBody: opts.MaxBodyBytes, maxWait: maxWaitDefault}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	return h
}

// apiError is a response to send instead of the normal one.
type apiError struct {
	status int
	msg    string
	// detail is logged, and included as ExceptionMessage.
	detail string
	allow  string
}

func (e *apiError) Error() string {
	if e.detail != "" {
		return e.msg + ": " + e.detail
	}
	return e.msg
}

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// recorder remembers the status written, for the request log and for the
// recover middleware.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    string
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &recorder{ResponseWriter: rw}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("httpapi: panic while serving request", "method", r.Method, "path", logPath(r),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if w.status == 0 {
				h.writeError(w, &apiError{status: http.StatusInternalServerError,
					msg: "Something went wrong while processing your request", detail: fmt.Sprint(v)})
			}
		}
		h.logRequest(r, w, time.Since(start))
	}()
	if err := h.serve(w, r); err != nil {
		h.writeError(w, err)
	}
}

func logPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if len(p) > 512 {
		p = p[:512] + "..."
	}
	return p
}

func (h *handler) logRequest(r *http.Request, w *recorder, d time.Duration) {
	level := slog.LevelInfo
	if w.status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("path", logPath(r)),
		slog.Int("status", w.status), slog.Duration("duration", d), slog.Int64("bytes", w.bytes),
	}
	if w.err != "" {
		attrs = append(attrs, slog.String("error", w.err))
	}
	h.log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// errorBody is the error payload, in the shape of ASP.NET's HttpError that
// Durable Functions answers with.
type errorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage,omitempty"`
}

// writeError writes err as a JSON error body.
func (h *handler) writeError(w *recorder, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = h.engineError(err)
	}
	w.err = ae.Error()
	if ae.allow != "" {
		w.Header().Set("Allow", ae.allow)
	}
	writeJSON(w, ae.status, errorBody{Message: ae.msg, ExceptionMessage: ae.detail})
}

// engineError maps an error of the client to a response.
func (h *handler) engineError(err error) *apiError {
	ae := &apiError{detail: err.Error()}
	msg := err.Error()
	switch {
	case errors.Is(err, durable.ErrInstanceNotFound):
		ae.status, ae.msg = http.StatusNotFound, "No instance with this instance ID was found"
	case errors.Is(err, durable.ErrEntityNotFound):
		ae.status, ae.msg = http.StatusNotFound, "No entity with this entity ID was found"
	case errors.Is(err, durable.ErrInstanceExists):
		ae.status, ae.msg = http.StatusConflict, "A non-terminal instance with this instance ID already exists"
	case errors.Is(err, durable.ErrNotRunning):
		ae.status, ae.msg = http.StatusGone, "The instance has ended"
	case errors.Is(err, durable.ErrStillRunning):
		ae.status, ae.msg = http.StatusPreconditionFailed, "Only orchestrations in a terminal state can be purged"
	case errors.Is(err, context.DeadlineExceeded):
		ae.status, ae.msg = http.StatusServiceUnavailable, "The engine did not answer in time"
	case errors.Is(err, context.Canceled):
		ae.status, ae.msg = http.StatusServiceUnavailable, "The request was canceled"
	case errors.Is(err, durable.ErrPayloadTooLarge):
		ae.status, ae.msg = http.StatusRequestEntityTooLarge, "The payload is larger than the engine accepts"
	case errors.Is(err, durable.ErrInvalidArgument):
		ae.status, ae.msg = http.StatusBadRequest, "One or more of the arguments submitted is incorrect"
	case strings.Contains(msg, "client is closed"):
		ae.status, ae.msg = http.StatusServiceUnavailable, "The host is stopping"
	default:
		ae.status, ae.msg = http.StatusInternalServerError, "Something went wrong while processing your request"
		h.log.Error("httpapi: engine error", "error", err)
	}
	return ae
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Every payload is built from valid JSON; this is a bug.
		panic(fmt.Sprintf("httpapi: encode response: %v", err))
	}
	writeRawJSON(w, status, buf.Bytes())
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// serve routes the request.
func (h *handler) serve(w *recorder, r *http.Request) error {
	segs, err := splitPath(r)
	if err != nil {
		return err
	}
	if r.ContentLength > h.maxBody {
		return errorf(http.StatusRequestEntityTooLarge, "The request body is %d bytes, more than the limit of %d bytes", r.ContentLength, h.maxBody)
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if hub := q.get("taskHub"); hub != "" && h.opts.TaskHub != "" && !strings.EqualFold(hub, h.opts.TaskHub) {
		return errorf(http.StatusBadRequest, "This host serves the task hub %q, not %q", h.opts.TaskHub, hub)
	}
	switch strings.ToLower(segs[0]) {
	case "orchestrators":
		if len(segs) < 2 || len(segs) > 3 {
			return notFound(r)
		}
		if err := allow(r, http.MethodPost); err != nil {
			return err
		}
		id := ""
		if len(segs) == 3 {
			id = segs[2]
		}
		return h.start(w, r, q, segs[1], id)
	case "instances":
		return h.routeInstances(w, r, q, segs[1:])
	case "entities":
		return h.routeEntities(w, r, q, segs[1:])
	}
	return notFound(r)
}

func (h *handler) routeInstances(w *recorder, r *http.Request, q query, segs []string) error {
	switch len(segs) {
	case 0:
		switch r.Method {
		case http.MethodGet:
			return h.list(w, r, q)
		case http.MethodDelete:
			return h.purgeWhere(w, r, q)
		}
		return allow(r, http.MethodGet, http.MethodDelete)
	case 1:
		switch r.Method {
		case http.MethodGet:
			return h.getStatus(w, r, q, segs[0])
		case http.MethodDelete:
			return h.purge(w, r, q, segs[0])
		}
		return allow(r, http.MethodGet, http.MethodDelete)
	case 2:
		op := strings.ToLower(segs[1])
		switch op {
		case "terminate", "suspend", "resume", "restart", "rewind":
		default:
			return notFound(r)
		}
		if err := allow(r, http.MethodPost); err != nil {
			return err
		}
		switch op {
		case "terminate", "suspend", "resume":
			return h.control(w, r, q, segs[0], op)
		case "restart":
			return h.restart(w, r, q, segs[0])
		default:
			return h.rewind(w, r, q, segs[0])
		}
	case 3:
		if !strings.EqualFold(segs[1], "raiseEvent") {
			return notFound(r)
		}
		if err := allow(r, http.MethodPost); err != nil {
			return err
		}
		return h.raiseEvent(w, r, q, segs[0], segs[2])
	}
	return notFound(r)
}

func (h *handler) routeEntities(w *recorder, r *http.Request, q query, segs []string) error {
	switch len(segs) {
	case 0, 1:
		if err := allow(r, http.MethodGet); err != nil {
			return err
		}
		name := ""
		if len(segs) == 1 {
			name = segs[0]
		}
		return h.listEntities(w, r, q, name)
	case 2:
		switch r.Method {
		case http.MethodGet:
			return h.getEntity(w, r, segs[0], segs[1])
		case http.MethodPost:
			return h.signalEntity(w, r, q, segs[0], segs[1])
		case http.MethodDelete:
			return h.deleteEntity(w, r, segs[0], segs[1])
		}
		return allow(r, http.MethodGet, http.MethodPost, http.MethodDelete)
	}
	return notFound(r)
}

func notFound(r *http.Request) error {
	return errorf(http.StatusNotFound, "No route for %s %s", r.Method, truncate(r.URL.EscapedPath(), 200))
}

func allow(r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	list := strings.Join(methods, ", ")
	return &apiError{status: http.StatusMethodNotAllowed, allow: list,
		msg: fmt.Sprintf("Method %s is not allowed here; allowed: %s", truncate(r.Method, 40), list)}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// splitPath returns the unescaped path segments after Prefix. Instance
// ids and keys that contain '/' must be escaped as %2F.
func splitPath(r *http.Request) ([]string, error) {
	p := r.URL.EscapedPath()
	if len(p) < len(Prefix) || !strings.EqualFold(p[:len(Prefix)], Prefix) {
		return nil, notFound(r)
	}
	rest := p[len(Prefix):]
	if rest != "" && rest[0] != '/' {
		return nil, notFound(r)
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return nil, notFound(r)
	}
	raw := strings.Split(rest, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "Malformed path segment %q: %v", truncate(s, 100), err)
		}
		segs[i] = u
	}
	return segs, nil
}

// callCtx bounds a call to the client.
func callCtx(r *http.Request, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), callTimeout+extra)
}
