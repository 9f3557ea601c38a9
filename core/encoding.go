package core

//go:generate ../scripts/protogen.sh

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/core/corepb"
)

// FormatVersion is the version of the binary format, written as the first
// byte of every blob. It changes only for changes that readers of the
// previous version cannot tolerate; adding fields or event kinds does not
// change it.
//
// The Marshal* functions write a blob of one format-version byte
// (FormatVersion) followed by the protobuf encoding of the value as defined
// in core/corepb/core.proto; the Unmarshal* functions read it back, and
// refuse an empty blob, a blob of another format version and bytes that
// are not valid protobuf with an error that says which. Encoding is
// deterministic: equal values give equal bytes (within one build).
//
// A value survives a round trip unchanged, up to these normalizations:
//   - times come back in UTC without a monotonic clock reading (compare them
//     with time.Time.Equal); the zero time.Time comes back as the zero
//     time.Time. Times are stored as unix nanoseconds, so only times from
//     1677-09-21 to 2262-04-11 can be encoded (others are an encoding
//     error), and the single instant 1970-01-01T00:00:00Z, whose unix
//     nanoseconds are 0, comes back as the zero time.Time;
//   - empty, non-nil LockSet, Queue and Tags come back nil;
//   - strings, including invalid UTF-8, and the nil/empty distinction of the
//     byte payloads (Input, Result, Value) are kept exactly.
//
// Failure chains (FailureDetails.Inner) may be at most MaxFailureDepth
// levels deep; a longer or cyclic chain is an encoding error.
const FormatVersion = 1

// MaxFailureDepth is the longest chain of failure details (counting the
// outermost) that can be encoded or decoded.
const MaxFailureDepth = 1000

// FormatVersionError reports a blob written in a format version this build
// cannot read.
type FormatVersionError struct {
	Version byte
}

func (e *FormatVersionError) Error() string {
	return fmt.Sprintf("unknown format version %d (this build reads %d)", e.Version, FormatVersion)
}

var (
	marshalOptions   = proto.MarshalOptions{Deterministic: true}
	unmarshalOptions = proto.UnmarshalOptions{}
)

// encode writes the version byte and the protobuf encoding of m.
func encode(m proto.Message) ([]byte, error) {
	return marshalOptions.MarshalAppend([]byte{FormatVersion}, m)
}

// decode checks the version byte and decodes the rest of b into m; what
// names the value for error messages.
func decode(what string, b []byte, m proto.Message) error {
	switch {
	case len(b) == 0:
		return fmt.Errorf("core: decode %s: empty input (not even a format version byte)", what)
	case b[0] != FormatVersion:
		return fmt.Errorf("core: decode %s: %w", what, &FormatVersionError{Version: b[0]})
	}
	if err := unmarshalOptions.Unmarshal(b[1:], m); err != nil {
		return fmt.Errorf("core: decode %s: invalid protobuf data: %w", what, err)
	}
	return nil
}

// MarshalHistoryEvent encodes one history event.
func MarshalHistoryEvent(e *HistoryEvent) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("core: encode history event: nil event")
	}
	p, err := aliasing.eventToProto(e)
	if err != nil {
		return nil, fmt.Errorf("core: encode history event: %w", err)
	}
	return encode(p)
}

// UnmarshalHistoryEvent decodes a blob written by MarshalHistoryEvent.
func UnmarshalHistoryEvent(b []byte) (*HistoryEvent, error) {
	var p corepb.HistoryEvent
	if err := decode("history event", b, &p); err != nil {
		return nil, err
	}
	e, err := aliasing.eventFromProto(&p)
	if err != nil {
		return nil, fmt.Errorf("core: decode history event: %w", err)
	}
	return e, nil
}

// MarshalHistory encodes a list of history events (an orchestration
// history). The events must not be nil.
func MarshalHistory(events []*HistoryEvent) ([]byte, error) {
	p, err := aliasing.historyToProto(events)
	if err != nil {
		return nil, fmt.Errorf("core: encode history: %w", err)
	}
	return encode(p)
}

// UnmarshalHistory decodes a blob written by MarshalHistory. An empty
// history comes back as nil.
func UnmarshalHistory(b []byte) ([]*HistoryEvent, error) {
	var p corepb.HistoryEventList
	if err := decode("history", b, &p); err != nil {
		return nil, err
	}
	events, err := aliasing.historyFromProto(&p)
	if err != nil {
		return nil, fmt.Errorf("core: decode history: %w", err)
	}
	return events, nil
}

// MarshalTaskMessage encodes a task message. A nil Event is kept as nil.
func MarshalTaskMessage(m *TaskMessage) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("core: encode task message: nil message")
	}
	p, err := aliasing.taskMessageToProto(m)
	if err != nil {
		return nil, fmt.Errorf("core: encode task message: %w", err)
	}
	return encode(p)
}

// UnmarshalTaskMessage decodes a blob written by MarshalTaskMessage.
func UnmarshalTaskMessage(b []byte) (*TaskMessage, error) {
	var p corepb.TaskMessage
	if err := decode("task message", b, &p); err != nil {
		return nil, err
	}
	m, err := aliasing.taskMessageFromProto(&p)
	if err != nil {
		return nil, fmt.Errorf("core: decode task message: %w", err)
	}
	return m, nil
}

// MarshalEntityState encodes the durable record of an entity. The queued
// events must not be nil.
func MarshalEntityState(s *EntityState) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("core: encode entity state: nil state")
	}
	p, err := aliasing.entityStateToProto(s)
	if err != nil {
		return nil, fmt.Errorf("core: encode entity state: %w", err)
	}
	return encode(p)
}

// UnmarshalEntityState decodes a blob written by MarshalEntityState.
func UnmarshalEntityState(b []byte) (*EntityState, error) {
	var p corepb.EntityState
	if err := decode("entity state", b, &p); err != nil {
		return nil, err
	}
	s, err := aliasing.entityStateFromProto(&p)
	if err != nil {
		return nil, fmt.Errorf("core: decode entity state: %w", err)
	}
	return s, nil
}

// MarshalFailureDetails encodes failure details with their inner chain.
func MarshalFailureDetails(f *FailureDetails) ([]byte, error) {
	if f == nil {
		return nil, fmt.Errorf("core: encode failure details: nil failure")
	}
	p, err := aliasing.failureToProto(f)
	if err != nil {
		return nil, fmt.Errorf("core: encode failure details: %w", err)
	}
	return encode(p)
}

// UnmarshalFailureDetails decodes a blob written by MarshalFailureDetails.
func UnmarshalFailureDetails(b []byte) (*FailureDetails, error) {
	var p corepb.FailureDetails
	if err := decode("failure details", b, &p); err != nil {
		return nil, err
	}
	f, err := aliasing.failureFromProto(&p)
	if err != nil {
		return nil, fmt.Errorf("core: decode failure details: %w", err)
	}
	return f, nil
}

// Conversions to and from the protobuf messages, for embedding the core
// types in larger messages. The results share no memory with their
// arguments. A nil argument gives a nil result. The same normalizations as
// for the binary encoding apply, and the same values are refused.

// HistoryEventToProto converts a history event to its protobuf message.
func HistoryEventToProto(e *HistoryEvent) (*corepb.HistoryEvent, error) {
	return copying.eventToProto(e)
}

// HistoryEventFromProto converts a protobuf message to a history event.
func HistoryEventFromProto(p *corepb.HistoryEvent) (*HistoryEvent, error) {
	return copying.eventFromProto(p)
}

// HistoryToProto converts a list of history events (none nil) to its
// protobuf message.
func HistoryToProto(events []*HistoryEvent) (*corepb.HistoryEventList, error) {
	return copying.historyToProto(events)
}

// HistoryFromProto converts a protobuf message to a list of history events;
// an empty list gives nil.
func HistoryFromProto(p *corepb.HistoryEventList) ([]*HistoryEvent, error) {
	return copying.historyFromProto(p)
}

// TaskMessageToProto converts a task message to its protobuf message.
func TaskMessageToProto(m *TaskMessage) (*corepb.TaskMessage, error) {
	return copying.taskMessageToProto(m)
}

// TaskMessageFromProto converts a protobuf message to a task message.
func TaskMessageFromProto(p *corepb.TaskMessage) (*TaskMessage, error) {
	return copying.taskMessageFromProto(p)
}

// EntityStateToProto converts an entity record to its protobuf message.
func EntityStateToProto(s *EntityState) (*corepb.EntityState, error) {
	return copying.entityStateToProto(s)
}

// EntityStateFromProto converts a protobuf message to an entity record.
func EntityStateFromProto(p *corepb.EntityState) (*EntityState, error) {
	return copying.entityStateFromProto(p)
}

// FailureDetailsToProto converts failure details to their protobuf message.
func FailureDetailsToProto(f *FailureDetails) (*corepb.FailureDetails, error) {
	return copying.failureToProto(f)
}

// FailureDetailsFromProto converts a protobuf message to failure details.
func FailureDetailsFromProto(p *corepb.FailureDetails) (*FailureDetails, error) {
	return copying.failureFromProto(p)
}

// converter converts between the core types and the protobuf messages.
//
// An aliasing converter lets the two share memory: Go strings are handed to
// the protobuf message as byte slices over the same memory, and payloads
// are shared rather than copied in either direction. That is only safe when
// the protobuf message is private to one Marshal or Unmarshal call:
// protobuf marshalling never writes to the message, and a decoded message
// (whose byte slices protobuf decoding freshly allocates, never aliasing
// the input blob) is dropped after the conversion. The exported
// conversions, whose messages escape to the caller, copy.
type converter struct{ alias bool }

var (
	aliasing = converter{alias: true}
	copying  = converter{alias: false}
)

// text converts a Go string to the bytes of a protobuf text field.
func (c converter) text(s string) []byte {
	switch {
	case s == "":
		return nil
	case c.alias:
		return unsafe.Slice(unsafe.StringData(s), len(s))
	}
	return []byte(s)
}

// str converts the bytes of a protobuf text field to a Go string. It
// always copies: sharing would save little, and decoding is where aliasing
// bugs would hurt.
func (c converter) str(b []byte) string { return string(b) }

// payload converts a payload in either direction, keeping nil apart from
// empty.
func (c converter) payload(b []byte) []byte {
	if c.alias {
		return b
	}
	return bytes.Clone(b)
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func timeToProto(field string, t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s %s is outside the encodable range %s to %s", field,
			t.Format(time.RFC3339Nano), minTime.UTC().Format(time.RFC3339Nano), maxTime.UTC().Format(time.RFC3339Nano))
	}
	return t.UnixNano(), nil
}

func timeFromProto(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (c converter) failureToProto(f *FailureDetails) (*corepb.FailureDetails, error) {
	var root *corepb.FailureDetails
	next := &root
	for depth := 0; f != nil; depth, f = depth+1, f.Inner {
		if depth == MaxFailureDepth {
			return nil, fmt.Errorf("failure details nested more than %d levels deep (or cyclic)", MaxFailureDepth)
		}
		p := &corepb.FailureDetails{
			Type:         c.text(f.Type),
			Message:      c.text(f.Message),
			StackTrace:   c.text(f.StackTrace),
			NonRetriable: f.NonRetriable,
		}
		*next = p
		next = &p.Inner
	}
	return root, nil
}

func (c converter) failureFromProto(p *corepb.FailureDetails) (*FailureDetails, error) {
	var root *FailureDetails
	next := &root
	for depth := 0; p != nil; depth, p = depth+1, p.Inner {
		if depth == MaxFailureDepth {
			return nil, fmt.Errorf("failure details nested more than %d levels deep", MaxFailureDepth)
		}
		f := &FailureDetails{
			Type:         c.str(p.Type),
			Message:      c.str(p.Message),
			StackTrace:   c.str(p.StackTrace),
			NonRetriable: p.NonRetriable,
		}
		*next = f
		next = &f.Inner
	}
	return root, nil
}

func (c converter) eventToProto(e *HistoryEvent) (*corepb.HistoryEvent, error) {
	if e == nil {
		return nil, nil
	}
	p := new(corepb.HistoryEvent)
	if err := c.fillEventProto(p, e); err != nil {
		return nil, err
	}
	return p, nil
}

func (c converter) fillEventProto(p *corepb.HistoryEvent, e *HistoryEvent) error {
	ts, err := timeToProto("Timestamp", e.Timestamp)
	if err != nil {
		return fmt.Errorf("%v: %w", e, err)
	}
	fireAt, err := timeToProto("FireAt", e.FireAt)
	if err != nil {
		return fmt.Errorf("%v: %w", e, err)
	}
	failure, err := c.failureToProto(e.Failure)
	if err != nil {
		return fmt.Errorf("%v: %w", e, err)
	}
	p.EventId = e.EventID
	p.Kind = corepb.EventKind(e.Kind)
	p.TimestampUnixNano = ts
	p.Name = c.text(e.Name)
	p.Version = c.text(e.Version)
	p.InstanceId = c.text(e.InstanceID)
	p.ExecutionId = c.text(e.ExecutionID)
	p.Input = c.payload(e.Input)
	p.Result = c.payload(e.Result)
	p.Failure = failure
	p.TaskScheduledId = e.TaskScheduledID
	p.FireAtUnixNano = fireAt
	if e.Parent != nil {
		p.Parent = &corepb.ParentInstance{
			Name:            c.text(e.Parent.Name),
			InstanceId:      c.text(e.Parent.InstanceID),
			ExecutionId:     c.text(e.Parent.ExecutionID),
			TaskScheduledId: e.Parent.TaskScheduledID,
		}
	}
	p.Status = corepb.RuntimeStatus(e.Status)
	p.Reason = c.text(e.Reason)
	p.RequestId = c.text(e.RequestID)
	if n := len(e.LockSet); n > 0 {
		ids := make([]corepb.EntityId, n)
		p.LockSet = make([]*corepb.EntityId, n)
		for i, id := range e.LockSet {
			ids[i].Name = c.text(id.Name)
			ids[i].Key = c.text(id.Key)
			p.LockSet[i] = &ids[i]
		}
	}
	p.LockPosition = e.LockPosition
	if n := len(e.Tags); n > 0 {
		tags := make([]corepb.Tag, n)
		p.Tags = make([]*corepb.Tag, n)
		for i, k := range slices.Sorted(maps.Keys(e.Tags)) {
			tags[i].Key = c.text(k)
			tags[i].Value = c.text(e.Tags[k])
			p.Tags[i] = &tags[i]
		}
	}
	return nil
}

func (c converter) eventFromProto(p *corepb.HistoryEvent) (*HistoryEvent, error) {
	if p == nil {
		return nil, nil
	}
	failure, err := c.failureFromProto(p.Failure)
	if err != nil {
		return nil, err
	}
	e := &HistoryEvent{
		EventID:         p.EventId,
		Kind:            EventKind(p.Kind),
		Timestamp:       timeFromProto(p.TimestampUnixNano),
		Name:            c.str(p.Name),
		Version:         c.str(p.Version),
		InstanceID:      c.str(p.InstanceId),
		ExecutionID:     c.str(p.ExecutionId),
		Input:           c.payload(p.Input),
		Result:          c.payload(p.Result),
		Failure:         failure,
		TaskScheduledID: p.TaskScheduledId,
		FireAt:          timeFromProto(p.FireAtUnixNano),
		Status:          RuntimeStatus(p.Status),
		Reason:          c.str(p.Reason),
		RequestID:       c.str(p.RequestId),
		LockPosition:    p.LockPosition,
	}
	if pp := p.Parent; pp != nil {
		e.Parent = &ParentInstance{
			Name:            c.str(pp.Name),
			InstanceID:      c.str(pp.InstanceId),
			ExecutionID:     c.str(pp.ExecutionId),
			TaskScheduledID: pp.TaskScheduledId,
		}
	}
	if len(p.LockSet) > 0 {
		e.LockSet = make([]EntityID, len(p.LockSet))
		for i, id := range p.LockSet {
			if id == nil {
				return nil, fmt.Errorf("%v: lock set entry %d is nil", e, i)
			}
			e.LockSet[i] = EntityID{Name: c.str(id.Name), Key: c.str(id.Key)}
		}
	}
	if len(p.Tags) > 0 {
		e.Tags = make(map[string]string, len(p.Tags))
		for i, t := range p.Tags {
			if t == nil {
				return nil, fmt.Errorf("%v: tag %d is nil", e, i)
			}
			e.Tags[c.str(t.Key)] = c.str(t.Value)
		}
	}
	return e, nil
}

// eventsToProto converts a list of events, none of which may be nil; what
// names the list for error messages.
func (c converter) eventsToProto(what string, events []*HistoryEvent) ([]*corepb.HistoryEvent, error) {
	if len(events) == 0 {
		return nil, nil
	}
	ps := make([]corepb.HistoryEvent, len(events))
	out := make([]*corepb.HistoryEvent, len(events))
	for i, e := range events {
		if e == nil {
			return nil, fmt.Errorf("%s %d is nil", what, i)
		}
		if err := c.fillEventProto(&ps[i], e); err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, i, err)
		}
		out[i] = &ps[i]
	}
	return out, nil
}

func (c converter) eventsFromProto(what string, ps []*corepb.HistoryEvent) ([]*HistoryEvent, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]*HistoryEvent, len(ps))
	for i, p := range ps {
		if p == nil {
			return nil, fmt.Errorf("%s %d is nil", what, i)
		}
		e, err := c.eventFromProto(p)
		if err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, i, err)
		}
		out[i] = e
	}
	return out, nil
}

func (c converter) historyToProto(events []*HistoryEvent) (*corepb.HistoryEventList, error) {
	ps, err := c.eventsToProto("event", events)
	if err != nil {
		return nil, err
	}
	return &corepb.HistoryEventList{Events: ps}, nil
}

func (c converter) historyFromProto(p *corepb.HistoryEventList) ([]*HistoryEvent, error) {
	if p == nil {
		return nil, nil
	}
	return c.eventsFromProto("event", p.Events)
}

func (c converter) taskMessageToProto(m *TaskMessage) (*corepb.TaskMessage, error) {
	if m == nil {
		return nil, nil
	}
	e, err := c.eventToProto(m.Event)
	if err != nil {
		return nil, err
	}
	p := &corepb.TaskMessage{Event: e}
	if m.Target != (Instance{}) {
		p.Target = &corepb.Instance{
			InstanceId:  c.text(m.Target.InstanceID),
			ExecutionId: c.text(m.Target.ExecutionID),
		}
	}
	return p, nil
}

func (c converter) taskMessageFromProto(p *corepb.TaskMessage) (*TaskMessage, error) {
	if p == nil {
		return nil, nil
	}
	e, err := c.eventFromProto(p.Event)
	if err != nil {
		return nil, err
	}
	m := &TaskMessage{Event: e}
	if t := p.Target; t != nil {
		m.Target = Instance{InstanceID: c.str(t.InstanceId), ExecutionID: c.str(t.ExecutionId)}
	}
	return m, nil
}

func (c converter) entityStateToProto(s *EntityState) (*corepb.EntityState, error) {
	if s == nil {
		return nil, nil
	}
	queue, err := c.eventsToProto("queued event", s.Queue)
	if err != nil {
		return nil, err
	}
	return &corepb.EntityState{
		Exists:   s.Exists,
		Value:    c.payload(s.Value),
		LockedBy: c.text(s.LockedBy),
		Queue:    queue,
	}, nil
}

func (c converter) entityStateFromProto(p *corepb.EntityState) (*EntityState, error) {
	if p == nil {
		return nil, nil
	}
	queue, err := c.eventsFromProto("queued event", p.Queue)
	if err != nil {
		return nil, err
	}
	return &EntityState{
		Exists:   p.Exists,
		Value:    c.payload(p.Value),
		LockedBy: c.str(p.LockedBy),
		Queue:    queue,
	}, nil
}
