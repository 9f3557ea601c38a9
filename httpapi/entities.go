package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/netherite-go/netherite/durable"
)

// getEntity serves GET /entities/{name}/{key}: 200 with the entity's
// state as the body, 404 if the entity has no state.
func (h *handler) getEntity(w *recorder, r *http.Request, name, key string) error {
	id, err := entityID(name, key)
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	m, err := h.c.GetEntity(ctx, id, true)
	if err != nil {
		return err
	}
	state := payloadJSON(m.State)
	if state == nil {
		state = json.RawMessage("null")
	}
	writeRawJSON(w, http.StatusOK, append(state, '\n'))
	return nil
}

// listEntities serves GET /entities[/{name}]: 200 with an array of
// {entityId, lastOperationTime[, state]}, and the x-ms-continuation-token
// header when there are more.
func (h *handler) listEntities(w *recorder, r *http.Request, q query, name string) error {
	var eq durable.EntityQuery
	var err error
	if name != "" {
		if err := checkName("entity name", name); err != nil {
			return err
		}
		eq.Name = strings.ToLower(name)
	}
	if eq.LastUpdatedFrom, _, err = q.time("lastOperationTimeFrom"); err != nil {
		return err
	}
	if eq.LastUpdatedTo, _, err = q.time("lastOperationTimeTo"); err != nil {
		return err
	}
	if eq.IncludeState, err = q.bool("fetchState", false); err != nil {
		return err
	}
	if eq.PageSize, err = q.top(); err != nil {
		return err
	}
	eq.ContinuationToken = r.Header.Get("x-ms-continuation-token")
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	page, err := h.c.ListEntities(ctx, eq)
	if err != nil {
		return err
	}
	out := make([]entityStatus, 0, len(page.Entities))
	for _, m := range page.Entities {
		out = append(out, newEntityStatus(m, eq.IncludeState))
	}
	if page.ContinuationToken != "" {
		w.Header().Set("x-ms-continuation-token", page.ContinuationToken)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// signalEntity serves POST /entities/{name}/{key}?op=...: 202. The body,
// if any, is the operation's input: JSON with Content-Type
// application/json (400 if invalid), else the text as a JSON string. 400
// without op; 404 for an entity name that is not registered (with
// Options.Registry).
func (h *handler) signalEntity(w *recorder, r *http.Request, q query, name, key string) error {
	id, err := entityID(name, key)
	if err != nil {
		return err
	}
	op := q.get("op")
	if op == "" {
		return errorf(http.StatusBadRequest, "The op query parameter must name the operation to signal")
	}
	if err := checkName("operation name", op); err != nil {
		return err
	}
	if _, ok, names := h.registered("entity", name); !ok {
		return errorf(http.StatusNotFound, "No entity named '%s' is registered. Registered entities: %s", name, strings.Join(names, ", "))
	}
	b, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	var input any
	if len(bytes.TrimSpace(b)) > 0 {
		if isJSONMediaType(r) {
			b = bytes.TrimSpace(b)
			if !json.Valid(b) {
				return &apiError{status: http.StatusBadRequest, msg: "Could not parse JSON content", detail: jsonError(b)}
			}
			input = durable.RawPayload(b)
		} else {
			input = string(b)
		}
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	if err := h.c.SignalEntity(ctx, id, op, input); err != nil {
		return err
	}
	writeEmpty(w, http.StatusAccepted)
	return nil
}

// deleteEntity serves DELETE /entities/{name}/{key}: it deletes the
// entity's state (requests waiting for the entity are kept) and answers
// 202, or 404 if the entity has no state.
func (h *handler) deleteEntity(w *recorder, r *http.Request, name, key string) error {
	id, err := entityID(name, key)
	if err != nil {
		return err
	}
	ctx, cancel := callCtx(r, 0)
	defer cancel()
	if err := h.c.DeleteEntity(ctx, id); err != nil {
		return err
	}
	writeEmpty(w, http.StatusAccepted)
	return nil
}
