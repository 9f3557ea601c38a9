package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// readBody reads the request body within the limit.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "The request body is larger than the limit of %d bytes", h.maxBody)
		}
		return nil, errorf(http.StatusBadRequest, "Reading the request body: %v", err)
	}
	return b, nil
}

// readJSONBody reads an optional JSON body: nil if empty.
func (h *handler) readJSONBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	b, err := h.readBody(w, r)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, &apiError{status: http.StatusBadRequest, msg: "Invalid JSON content", detail: jsonError(b)}
	}
	return b, nil
}

func jsonError(b []byte) string {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err.Error()
	}
	return "not valid JSON"
}

// isJSONMediaType reports whether the Content-Type is application/json.
func isJSONMediaType(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, "application/json")
}

// payload turns optional JSON into a client payload; nil stays nil.
func payload(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return durable.RawPayload(b)
}

// newInstanceID returns a new id in the form Durable Functions uses (a
// GUID in "N" format: 32 hex digits).
func newInstanceID() string { return strings.ReplaceAll(durable.NewUUID(), "-", "") }

// registered looks a name up in Options.Registry and returns it as
// registered: names are case-insensitive, as function names are in Azure
// Functions. Without a registry every name is accepted as given.
func (h *handler) registered(kind, name string) (string, bool, []string) {
	if h.opts.Registry == nil {
		return name, true, nil
	}
	names := h.opts.Registry.Names(kind)
	if slices.Contains(names, name) {
		return name, true, nil
	}
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return n, true, nil
		}
	}
	return name, false, names
}

// waitParams reads timeout and pollingInterval. Like Durable Functions on
// a provider with poll-free waits (Netherite's), the wait happens when
// timeout is given and pollingInterval is only checked.
func (h *handler) waitParams(q query) (time.Duration, bool, error) {
	timeout, ok, err := q.seconds("timeout", h.maxWait)
	if err != nil {
		return 0, false, err
	}
	if _, _, err := q.seconds("pollingInterval", h.maxWait); err != nil {
		return 0, false, err
	}
	return timeout, ok, nil
}

// start serves POST /orchestrators/{name}[/{instanceId}].
//
// Responses: 202 with the check-status payload; with ?timeout= the
// request waits up to that many seconds: 200 with the output if the
// instance completes, 200 with its status if it fails or is terminated,
// else 202 with the check-status payload. 400 for an unknown orchestrator
// (with Options.Registry), a bad instance id or invalid JSON; 409 if a
// non-terminal instance with that id exists.
func (h *handler) start(w *recorder, r *http.Request, q query, name, id string) error {
	if err := checkName("orchestrator function name", name); err != nil {
		return err
	}
	if id != "" {
		if err := checkInstanceID(id); err != nil {
			return err
		}
		if strings.HasPrefix(id, "@") {
			return errorf(http.StatusBadRequest, "Instance IDs starting with '@' are reserved for entities")
		}
	}
	timeout, wait, err := h.waitParams(q)
	if err != nil {
		return err
	}
	name, ok, names := h.registered("orchestrator", name)
	if !ok {
		return errorf(http.StatusBadRequest, "The function '%s' doesn't exist, is disabled, or is not an orchestrator function. Registered orchestrators: %s",
			name, strings.Join(names, ", "))
	}
	input, err := h.readJSONBody(w, r)
	if err != nil {
		return err
	}
	if id == "" {
		id = newInstanceID()
	}
	opts := []durable.StartOption{durable.WithStartInstanceID(id)}
	if v := q.get("version"); v != "" {
		opts = append(opts, durable.WithStartVersion(v))
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	if _, err := h.c.StartOrchestration(ctx, name, payload(input), opts...); err != nil {
		return err
	}
	if wait {
		return h.waitOrCheckStatus(w, r, q, id, timeout)
	}
	h.writeCheckStatus(w, r, id)
	return nil
}

// waitOrCheckStatus waits up to timeout for the instance to end, as
// Durable Functions' WaitForCompletionOrCreateCheckStatusResponseAsync.
func (h *handler) waitOrCheckStatus(w *recorder, r *http.Request, q query, id string, timeout time.Duration) error {
	view, _, err := statusParams(q)
	if err != nil {
		return err
	}
	opts := statusOptions(view)
	ctx, cancel := callCtx(r, timeout)
	defer cancel()
	wctx, wcancel := context.WithTimeout(ctx, timeout)
	defer wcancel()
	st, err := h.c.WaitForCompletion(wctx, id, opts...)
	if err != nil {
		if wctx.Err() == nil || ctx.Err() != nil {
			return err
		}
		// Timed out: one last look (a zero timeout is just that).
		if st, err = h.c.GetStatus(ctx, id, opts...); err != nil {
			return err
		}
	}
	switch st.RuntimeStatus {
	case core.StatusCompleted:
		out := payloadJSON(st.Output)
		if out == nil {
			out = json.RawMessage("null")
		}
		writeRawJSON(w, http.StatusOK, append(out, '\n'))
	case core.StatusFailed, core.StatusCanceled, core.StatusTerminated:
		h.writeStatus(w, r, st, view, false)
	default:
		h.writeCheckStatus(w, r, id)
	}
	return nil
}

func statusParams(q query) (statusView, bool, error) {
	var v statusView
	var err error
	if v.showHistory, err = q.bool("showHistory", false); err != nil {
		return v, false, err
	}
	if v.showHistoryOutput, err = q.bool("showHistoryOutput", false); err != nil {
		return v, false, err
	}
	if v.showInput, err = q.bool("showInput", true); err != nil {
		return v, false, err
	}
	ise, err := q.bool("returnInternalServerErrorOnFailure", false)
	return v, ise, err
}

func statusOptions(v statusView) []durable.StatusOption {
	opts := []durable.StatusOption{durable.WithPayloads()}
	if v.showHistory {
		opts = append(opts, durable.WithHistory())
	}
	return opts
}

// writeStatus answers with the status of an instance: 202 with Location
// (the request URL) and Retry-After while it runs, 200 once it ended, or
// 500 for a failed one with returnInternalServerErrorOnFailure.
func (h *handler) writeStatus(w *recorder, r *http.Request, st *durable.OrchestrationStatus, v statusView, ise bool) {
	code := http.StatusOK
	switch st.RuntimeStatus {
	case core.StatusRunning, core.StatusPending, core.StatusContinuedAsNew, core.StatusSuspended:
		code = http.StatusAccepted
		uri := r.RequestURI
		if uri == "" || !strings.HasPrefix(uri, "/") {
			uri = r.URL.RequestURI()
		}
		w.Header().Set("Location", h.baseURL(r)+uri)
		w.Header().Set("Retry-After", retryAfterStatus)
	case core.StatusFailed:
		if ise {
			code = http.StatusInternalServerError
			w.err = "instance failed (returnInternalServerErrorOnFailure)"
		}
	}
	writeJSON(w, code, newStatusPayload(st, v))
}

// getStatus serves GET /instances/{id}: 200 if the instance ended, 202 if
// it runs, 404 if it does not exist, 500 if it failed and
// returnInternalServerErrorOnFailure=true.
func (h *handler) getStatus(w *recorder, r *http.Request, q query, id string) error {
	if err := checkInstanceID(id); err != nil {
		return err
	}
	view, ise, err := statusParams(q)
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	st, err := h.c.GetStatus(ctx, id, statusOptions(view)...)
	if err != nil {
		return err
	}
	h.writeStatus(w, r, st, view, ise)
	return nil
}

// list serves GET /instances: 200 with an array of statuses, and the
// x-ms-continuation-token header when there are more.
func (h *handler) list(w *recorder, r *http.Request, q query) error {
	var iq durable.InstanceQuery
	var err error
	iq.InstanceIDPrefix = q.get("instanceIdPrefix")
	if iq.CreatedFrom, _, err = q.time("createdTimeFrom"); err != nil {
		return err
	}
	if iq.CreatedTo, _, err = q.time("createdTimeTo"); err != nil {
		return err
	}
	if iq.Statuses, err = q.statuses(); err != nil {
		return err
	}
	showInput, err := q.bool("showInput", true)
	if err != nil {
		return err
	}
	if iq.PageSize, err = q.top(); err != nil {
		return err
	}
	iq.ContinuationToken = r.Header.Get("x-ms-continuation-token")
	iq.WithPayloads = true
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	page, err := h.c.Query(ctx, iq)
	if err != nil {
		return err
	}
	out := make([]*statusPayload, 0, len(page.Instances))
	for _, s := range page.Instances {
		out = append(out, newStatusPayload(s, statusView{showInput: showInput}))
	}
	if page.ContinuationToken != "" {
		w.Header().Set("x-ms-continuation-token", page.ContinuationToken)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type purgeResult struct {
	InstancesDeleted int `json:"instancesDeleted"`
}

// purge serves DELETE /instances/{id}: 200 {"instancesDeleted":1}, 404 if
// unknown, 412 if the instance has not ended.
func (h *handler) purge(w *recorder, r *http.Request, q query, id string) error {
	if err := checkInstanceID(id); err != nil {
		return err
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	st, err := h.c.GetStatus(ctx, id)
	if err != nil {
		return err
	}
	if !st.RuntimeStatus.IsTerminal() {
		return errorf(http.StatusPreconditionFailed,
			"Only orchestrations in a terminal state can be purged, but the orchestration with instance ID %s has status %s",
			id, st.RuntimeStatus)
	}
	n, err := h.c.Purge(ctx, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(http.StatusNotFound, "No instance with ID %q was found", id)
	}
	writeJSON(w, http.StatusOK, purgeResult{n})
	return nil
}

// purgeWhere serves DELETE /instances: createdTimeFrom is required (400
// without it), createdTimeTo defaults to now, runtimeStatus may list final
// statuses. 200 {"instancesDeleted":n}, or 404 if none matched.
func (h *handler) purgeWhere(w *recorder, r *http.Request, q query) error {
	var f durable.PurgeFilter
	var ok bool
	var err error
	if f.CreatedFrom, ok, err = q.time("createdTimeFrom"); err != nil {
		return err
	} else if !ok {
		return errorf(http.StatusBadRequest, "Please provide value for 'createdTimeFrom' parameter.")
	}
	if f.CreatedTo, ok, err = q.time("createdTimeTo"); err != nil {
		return err
	} else if !ok {
		f.CreatedTo = time.Now().UTC()
	}
	if f.Statuses, err = q.statuses(); err != nil {
		return err
	}
	for _, s := range f.Statuses {
		if !s.IsTerminal() {
			return errorf(http.StatusBadRequest, "runtimeStatus %s is not a terminal status; only Completed, Failed, Terminated and Canceled instances can be purged", s)
		}
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	n, err := h.c.PurgeWhere(ctx, f)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(http.StatusNotFound, "No instances matched the filter")
	}
	writeJSON(w, http.StatusOK, purgeResult{n})
	return nil
}

// currentStatus returns the status of a live instance: 404 if unknown,
// 410 if it has ended.
func (h *handler) currentStatus(r *http.Request, id string) error {
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	st, err := h.c.GetStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.RuntimeStatus.IsTerminal() {
		return errorf(http.StatusGone, "The instance %s has ended (%s)", id, st.RuntimeStatus)
	}
	return nil
}

// raiseEvent serves POST /instances/{id}/raiseEvent/{event}: 202; 404 if
// unknown; 410 if ended; 400 unless the body is application/json and valid
// JSON.
func (h *handler) raiseEvent(w *recorder, r *http.Request, q query, id, event string) error {
	if err := checkInstanceID(id); err != nil {
		return err
	}
	if err := checkName("event name", event); err != nil {
		return err
	}
	if err := h.currentStatus(r, id); err != nil {
		return err
	}
	if !isJSONMediaType(r) {
		return errorf(http.StatusBadRequest, "Only application/json request content is supported")
	}
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return &apiError{status: http.StatusBadRequest, msg: "Invalid JSON content", detail: jsonError(b)}
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	if err := h.c.RaiseEvent(ctx, id, event, durable.RawPayload(b)); err != nil {
		return err
	}
	writeEmpty(w, http.StatusAccepted)
	return nil
}

// control serves POST /instances/{id}/terminate|suspend|resume?reason=:
// 202; 404 if unknown; 410 if ended.
func (h *handler) control(w *recorder, r *http.Request, q query, id, op string) error {
	if err := checkInstanceID(id); err != nil {
		return err
	}
	if err := h.currentStatus(r, id); err != nil {
		return err
	}
	reason := q.get("reason")
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	var err error
	switch op {
	case "terminate":
		var rs any
		if q.has("reason") {
			rs = reason
		}
		err = h.c.Terminate(ctx, id, rs)
	case "suspend":
		err = h.c.Suspend(ctx, id, reason)
	case "resume":
		err = h.c.Resume(ctx, id, reason)
	}
	if err != nil {
		return err
	}
	writeEmpty(w, http.StatusAccepted)
	return nil
}

// restart serves POST /instances/{id}/restart: it reads the instance's
// name and input and starts it again, under a new id (the default, or
// restartWithNewInstanceId=true) or under the same id, replacing the
// instance, terminating it first if it still runs. Answers as start; 400
// if the instance does not exist (as Durable Functions).
func (h *handler) restart(w *recorder, r *http.Request, q query, id string) error {
	if err := checkInstanceID(id); err != nil {
		return err
	}
	newID, err := q.bool("restartWithNewInstanceId", true)
	if err != nil {
		return err
	}
	timeout, wait, err := h.waitParams(q)
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	st, err := h.c.GetStatus(ctx, id, durable.WithPayloads())
	if errors.Is(err, durable.ErrInstanceNotFound) {
		return &apiError{status: http.StatusBadRequest, msg: "InstanceId does not match a valid orchestration instance.", detail: err.Error()}
	} else if err != nil {
		return err
	}
	target := id
	opts := []durable.StartOption{}
	if newID {
		target = newInstanceID()
	} else {
		opts = append(opts, durable.WithIDReusePolicy(durable.ReuseTerminate))
	}
	opts = append(opts, durable.WithStartInstanceID(target))
	var input any
	if in := payloadJSON(st.Input); in != nil {
		input = durable.RawPayload(in)
	}
	if _, err := h.c.StartOrchestration(ctx, st.Name, input, opts...); err != nil {
		return err
	}
	if wait {
		return h.waitOrCheckStatus(w, r, q, target, timeout)
	}
	h.writeCheckStatus(w, r, target)
	return nil
}

// rewind serves POST /instances/{id}/rewind: 404 if unknown, 412 unless
// the instance failed, else 501: the engine cannot rewind.
func (h *handler) rewind(w *recorder, r *http.Request, q query, id string) error {
	if err := checkInstanceID(id); err != nil {
		return err
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	st, err := h.c.GetStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.RuntimeStatus != core.StatusFailed {
		return errorf(http.StatusPreconditionFailed,
			"This orchestration has status %s, but only orchestrations in the \"Failed\" state can be rewound.", st.RuntimeStatus)
	}
	return errorf(http.StatusNotImplemented, "Rewind is not supported by the underlying storage provider.")
}
