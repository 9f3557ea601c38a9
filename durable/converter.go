package durable

import (
	"encoding/json"
	"fmt"
)

// A Converter turns values into payloads and back. Payloads are what the
// engine stores and ships: inputs, outputs, event data, entity state. The
// default is JSON, the Durable Functions convention.
type Converter interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONConverter encodes payloads as JSON.
type JSONConverter struct{}

// Marshal encodes v as JSON. A nil v gives a nil payload.
func (JSONConverter) Marshal(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if raw, ok := v.(RawPayload); ok {
		return raw, nil
	}
	return json.Marshal(v)
}

// Unmarshal decodes JSON into v. An empty payload leaves v untouched, so
// a missing input reads as the zero value.
func (JSONConverter) Unmarshal(data []byte, v any) error {
	if len(data) == 0 || v == nil {
		return nil
	}
	if raw, ok := v.(*RawPayload); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	return json.Unmarshal(data, v)
}

// RawPayload passes already-encoded payload bytes through a converter
// unchanged, in either direction.
type RawPayload []byte

func marshalPayload(c Converter, what string, v any) ([]byte, error) {
	b, err := c.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return b, nil
}
