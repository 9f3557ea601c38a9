package durable

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/netherite-go/netherite/core"
)

// Helpers for the implementations of Client (the engine's and the Azure
// Storage baseline's), so that both treat input the same way.

// EncodeClientPayload marshals v with conv for a client call: what names
// it in errors, which wrap ErrInvalidArgument (not valid JSON with the
// JSON converter) or ErrPayloadTooLarge (over limit bytes).
func EncodeClientPayload(conv Converter, what string, v any, limit int) ([]byte, error) {
	b, err := conv.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	if _, isJSON := conv.(JSONConverter); isJSON && b != nil && !json.Valid(b) {
		return nil, fmt.Errorf("%w: %s is not valid JSON", ErrInvalidArgument, what)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the payload limit of %d bytes", ErrPayloadTooLarge, what, len(b), limit)
	}
	return b, nil
}

// SubOrchestrationIDs lists, in creation order, the sub-orchestrations a
// history created (only those that have not completed or failed, if
// running is set).
func SubOrchestrationIDs(history []*core.HistoryEvent, running bool) []string {
	created := map[int32]string{}
	var order []int32
	for _, e := range history {
		switch e.Kind {
		case core.EventSubOrchestrationCreated:
			created[e.EventID] = e.InstanceID
			order = append(order, e.EventID)
		case core.EventSubOrchestrationCompleted, core.EventSubOrchestrationFailed:
			if running {
				delete(created, e.TaskScheduledID)
			}
		}
	}
	var out []string
	for _, seq := range order {
		if child, ok := created[seq]; ok {
			out = append(out, child)
		}
	}
	return out
}

// ContinuationToken is the token of a listing page that ended at key last.
func ContinuationToken(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }

// ParseContinuationToken gives back the key of a ContinuationToken ("" for
// none); a malformed token is an error wrapping ErrInvalidArgument.
func ParseContinuationToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", fmt.Errorf("%w: invalid continuation token %q", ErrInvalidArgument, tok)
	}
	return string(b), nil
}
