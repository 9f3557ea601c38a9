package partitions

//go:generate ../scripts/protogen.sh

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/core/corepb"
	"github.com/netherite-go/netherite/partitions/partitionspb"
	"github.com/netherite-go/netherite/transport"
)

// EncodingVersion is the version of the binary format of log entries and
// checkpoints, written as the first byte of every blob. It changes only for
// changes that readers of the previous version cannot tolerate; adding
// fields or event types does not change it.
//
// EncodeLogEntry and EncodeState write a blob of one format-version byte
// followed by the protobuf encoding of the value as defined in
// partitions/partitionspb/partitions.proto (which embeds the messages of
// core/corepb/core.proto for history events, task messages, entity state
// and failure details). DecodeLogEntry and DecodeState read it back, and
// refuse an empty blob, a blob of another format version and bytes that are
// not valid protobuf with an error that says which. Encoding is
// deterministic: equal values give equal bytes (within one build); map
// entries are written sorted by key (instances by id, activities and timers
// by id, dedup marks by origin, tags by key).
//
// What decoding gives back is reflect.DeepEqual to what was encoded, with
// these exceptions:
//   - times come back in UTC without a monotonic clock reading (equal under
//     time.Time.Equal); the zero time.Time stays zero. Times of the partition
//     types (LogEntry.At, InstanceRecord times, ClientRequest.Timestamp,
//     Filter times) are kept exactly, over the whole range of time.Time.
//   - inside history events, task messages and entity state the
//     normalizations of core's encoding apply (see core.FormatVersion):
//     HistoryEvent.Tags and HistoryEvent.LockSet that are empty but not nil
//     come back nil, event times are limited to 1677–2262 and the instant
//     1970-01-01T00:00:00Z comes back as the zero time. (EntityState.Queue
//     empty-but-not-nil is kept here, by a flag next to core's message.)
//   - nothing is shared: where the engine's state shares memory (an
//     instance record's Tags, Input and Parent are those of its
//     ExecutionStarted event; an outbox batch is also in the Effects), the
//     decoded state has separate copies.
//
// Everything else is kept exactly, including nil versus empty for every
// slice, map and []byte payload, nil pointers (a nil Request, Batch, Ack,
// Filter, Reply, entity State, ContinueStart, Failure, Parent, and nil task
// messages as values of the Activities and Timers maps), and strings that
// are not valid UTF-8.
//
// Values that cannot be encoded, and are an error: a nil or unknown Event;
// a nil *State; a nil element in a list of task messages, history events or
// outbox batches; a nil instance, or one stored under a key other than its
// ID; history-event times outside core's range and failure chains deeper
// than core.MaxFailureDepth.
const EncodingVersion = 1

// EncodingVersionError reports a blob written in a format version this
// build cannot read.
type EncodingVersionError struct {
	Version byte
}

func (e *EncodingVersionError) Error() string {
	return fmt.Sprintf("unknown format version %d (this build reads %d)", e.Version, EncodingVersion)
}

var marshalOptions = proto.MarshalOptions{Deterministic: true}

// encode writes the version byte and the protobuf encoding of m.
func encode(what string, m proto.Message) ([]byte, error) {
	b, err := marshalOptions.MarshalAppend([]byte{EncodingVersion}, m)
	if err != nil {
		return nil, fmt.Errorf("partitions: encode %s: %w", what, err)
	}
	return b, nil
}

// decode checks the version byte and decodes the rest of b into m.
func decode(what string, b []byte, m proto.Message) error {
	switch {
	case len(b) == 0:
		return fmt.Errorf("partitions: decode %s: empty input (not even a format version byte)", what)
	case b[0] != EncodingVersion:
		return fmt.Errorf("partitions: decode %s: %w", what, &EncodingVersionError{Version: b[0]})
	}
	if err := proto.Unmarshal(b[1:], m); err != nil {
		return fmt.Errorf("partitions: decode %s: invalid protobuf data: %w", what, err)
	}
	return nil
}

// EncodeLogEntry encodes one commit-log entry.
func EncodeLogEntry(e LogEntry) ([]byte, error) {
	p, err := logEntryToProto(e)
	if err != nil {
		return nil, fmt.Errorf("partitions: encode log entry: %w", err)
	}
	return encode("log entry", p)
}

// DecodeLogEntry decodes a blob written by EncodeLogEntry.
func DecodeLogEntry(b []byte) (LogEntry, error) {
	var p partitionspb.LogEntry
	if err := decode("log entry", b, &p); err != nil {
		return LogEntry{}, err
	}
	e, err := logEntryFromProto(&p)
	if err != nil {
		return LogEntry{}, fmt.Errorf("partitions: decode log entry: %w", err)
	}
	return e, nil
}

// EncodeState encodes the whole partition state, for a checkpoint.
func EncodeState(s *State) ([]byte, error) {
	p, err := stateToProto(s)
	if err != nil {
		return nil, fmt.Errorf("partitions: encode state: %w", err)
	}
	return encode("state", p)
}

// EncodeInstance encodes one instance (for a store of instances).
func EncodeInstance(inst *Instance) ([]byte, error) {
	p, err := instanceToProto(inst)
	if err != nil {
		return nil, fmt.Errorf("partitions: encode instance: %w", err)
	}
	return encode("instance", p)
}

// DecodeInstance decodes an instance encoded by EncodeInstance.
func DecodeInstance(b []byte) (*Instance, error) {
	p := &partitionspb.Instance{}
	if err := decode("instance", b, p); err != nil {
		return nil, err
	}
	inst, err := instanceFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("partitions: decode instance: %w", err)
	}
	return inst, nil
}

// DecodeState decodes a blob written by EncodeState.
func DecodeState(b []byte) (*State, error) {
	var p partitionspb.State
	if err := decode("state", b, &p); err != nil {
		return nil, err
	}
	s, err := stateFromProto(&p)
	if err != nil {
		return nil, fmt.Errorf("partitions: decode state: %w", err)
	}
	return s, nil
}

// ---------------------------------------------------------------------------
// Scalars

// text converts a Go string to the bytes of a protobuf text field.
func text(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func timeToProto(t time.Time) *partitionspb.Time {
	if t.IsZero() {
		return nil
	}
	// Unix and time.Unix are inverses for every time.Time (their int64
	// arithmetic wraps the same way in both directions).
	return &partitionspb.Time{UnixSeconds: t.Unix(), Nanos: uint32(t.Nanosecond())}
}

func timeFromProto(field string, p *partitionspb.Time) (time.Time, error) {
	if p == nil {
		return time.Time{}, nil
	}
	if p.Nanos >= 1e9 {
		return time.Time{}, fmt.Errorf("%s: nanoseconds %d out of range", field, p.Nanos)
	}
	return time.Unix(p.UnixSeconds, int64(p.Nanos)).UTC(), nil
}

// ---------------------------------------------------------------------------
// Lists and shared values

func historyToProto(what string, events []*core.HistoryEvent) (*corepb.HistoryEventList, error) {
	if events == nil {
		return nil, nil
	}
	p, err := core.HistoryToProto(events)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

func historyFromProto(what string, p *corepb.HistoryEventList) ([]*core.HistoryEvent, error) {
	if p == nil {
		return nil, nil
	}
	events, err := core.HistoryFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if events == nil {
		events = []*core.HistoryEvent{}
	}
	return events, nil
}

func eventToProto(what string, e *core.HistoryEvent) (*corepb.HistoryEvent, error) {
	p, err := core.HistoryEventToProto(e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

func eventFromProto(what string, p *corepb.HistoryEvent) (*core.HistoryEvent, error) {
	e, err := core.HistoryEventFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return e, nil
}

func messageToProto(what string, m *core.TaskMessage) (*corepb.TaskMessage, error) {
	p, err := core.TaskMessageToProto(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

func messageFromProto(what string, p *corepb.TaskMessage) (*core.TaskMessage, error) {
	m, err := core.TaskMessageFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return m, nil
}

// messagesToProto converts a list of task messages, none of which may be
// nil; what names the list's elements for error messages.
func messagesToProto(what string, ms []*core.TaskMessage) (*partitionspb.TaskMessageList, error) {
	if ms == nil {
		return nil, nil
	}
	out := make([]*corepb.TaskMessage, len(ms))
	for i, m := range ms {
		if m == nil {
			return nil, fmt.Errorf("%s %d is nil", what, i)
		}
		p, err := messageToProto(fmt.Sprintf("%s %d", what, i), m)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return &partitionspb.TaskMessageList{Messages: out}, nil
}

func messagesFromProto(what string, p *partitionspb.TaskMessageList) ([]*core.TaskMessage, error) {
	if p == nil {
		return nil, nil
	}
	out := make([]*core.TaskMessage, len(p.Messages))
	for i, mp := range p.Messages {
		if mp == nil {
			return nil, fmt.Errorf("%s %d is nil", what, i)
		}
		m, err := messageFromProto(fmt.Sprintf("%s %d", what, i), mp)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

func failureToProto(f *core.FailureDetails) (*corepb.FailureDetails, error) {
	p, err := core.FailureDetailsToProto(f)
	if err != nil {
		return nil, fmt.Errorf("failure: %w", err)
	}
	return p, nil
}

func failureFromProto(p *corepb.FailureDetails) (*core.FailureDetails, error) {
	f, err := core.FailureDetailsFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("failure: %w", err)
	}
	return f, nil
}

func entityToProto(s *core.EntityState) (*partitionspb.EntityState, error) {
	if s == nil {
		return nil, nil
	}
	p, err := core.EntityStateToProto(s)
	if err != nil {
		return nil, fmt.Errorf("entity state: %w", err)
	}
	return &partitionspb.EntityState{State: p, QueueEmpty: s.Queue != nil && len(s.Queue) == 0}, nil
}

func entityFromProto(p *partitionspb.EntityState) (*core.EntityState, error) {
	if p == nil {
		return nil, nil
	}
	s, err := core.EntityStateFromProto(p.State)
	if err != nil {
		return nil, fmt.Errorf("entity state: %w", err)
	}
	if s == nil {
		s = &core.EntityState{}
	}
	if p.QueueEmpty && s.Queue == nil {
		s.Queue = []*core.HistoryEvent{}
	}
	return s, nil
}

func parentToProto(pi *core.ParentInstance) *corepb.ParentInstance {
	if pi == nil {
		return nil
	}
	return &corepb.ParentInstance{
		Name:            text(pi.Name),
		InstanceId:      text(pi.InstanceID),
		ExecutionId:     text(pi.ExecutionID),
		TaskScheduledId: pi.TaskScheduledID,
	}
}

func parentFromProto(p *corepb.ParentInstance) *core.ParentInstance {
	if p == nil {
		return nil
	}
	return &core.ParentInstance{
		Name:            string(p.Name),
		InstanceID:      string(p.InstanceId),
		ExecutionID:     string(p.ExecutionId),
		TaskScheduledID: p.TaskScheduledId,
	}
}

func tagsToProto(m map[string]string) *partitionspb.TagMap {
	if m == nil {
		return nil
	}
	tags := make([]corepb.Tag, len(m))
	out := make([]*corepb.Tag, len(m))
	for i, k := range slices.Sorted(maps.Keys(m)) {
		tags[i].Key, tags[i].Value = text(k), text(m[k])
		out[i] = &tags[i]
	}
	return &partitionspb.TagMap{Tags: out}
}

func tagsFromProto(p *partitionspb.TagMap) map[string]string {
	if p == nil {
		return nil
	}
	m := make(map[string]string, len(p.Tags))
	for _, t := range p.Tags {
		m[string(t.GetKey())] = string(t.GetValue())
	}
	return m
}

// ---------------------------------------------------------------------------
// Log entries and events

func logEntryToProto(e LogEntry) (*partitionspb.LogEntry, error) {
	p := &partitionspb.LogEntry{Pos: e.Pos, At: timeToProto(e.At)}
	if e.Event == nil {
		return nil, errors.New("no event")
	}
	name := e.Event.eventName()
	fail := func(err error) (*partitionspb.LogEntry, error) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	isNil := func() (*partitionspb.LogEntry, error) {
		return nil, fmt.Errorf("nil *%s", name)
	}
	switch ev := e.Event.(type) {
	case *ClientRequestReceived:
		if ev == nil {
			return isNil()
		}
		r, err := clientRequestToProto(ev.Request)
		if err != nil {
			return fail(err)
		}
		p.Event = &partitionspb.LogEntry_ClientRequestReceived{ClientRequestReceived: &partitionspb.ClientRequestReceived{
			InputPos: ev.InputPos, Request: r}}
	case *MessagesReceived:
		if ev == nil {
			return isNil()
		}
		var b *partitionspb.MessageBatch
		if ev.Batch != nil {
			ms, err := messagesToProto("message", ev.Batch.Messages)
			if err != nil {
				return fail(err)
			}
			b = &partitionspb.MessageBatch{Origin: int64(ev.Batch.Origin), OriginPos: ev.Batch.OriginPos,
				FirstSub: ev.Batch.FirstSub, Prev: ev.Batch.Prev, Messages: ms}
		}
		p.Event = &partitionspb.LogEntry_MessagesReceived{MessagesReceived: &partitionspb.MessagesReceived{
			InputPos: ev.InputPos, Batch: b}}
	case *AckReceived:
		if ev == nil {
			return isNil()
		}
		var a *partitionspb.Ack
		if ev.Ack != nil {
			a = &partitionspb.Ack{From: int64(ev.Ack.From), UpTo: ev.Ack.UpTo}
		}
		p.Event = &partitionspb.LogEntry_AckReceived{AckReceived: &partitionspb.AckReceived{InputPos: ev.InputPos, Ack: a}}
	case *BatchProcessed:
		if ev == nil {
			return isNil()
		}
		b, err := batchProcessedToProto(ev)
		if err != nil {
			return fail(err)
		}
		p.Event = &partitionspb.LogEntry_BatchProcessed{BatchProcessed: b}
	case *EntityBatchProcessed:
		if ev == nil {
			return isNil()
		}
		st, err := entityToProto(ev.State)
		if err != nil {
			return fail(err)
		}
		ms, err := messagesToProto("message", ev.Messages)
		if err != nil {
			return fail(err)
		}
		p.Event = &partitionspb.LogEntry_EntityBatchProcessed{EntityBatchProcessed: &partitionspb.EntityBatchProcessed{
			InstanceId: text(ev.InstanceID), Generation: ev.Generation, Consumed: int64(ev.Consumed),
			State: st, Messages: ms}}
	case *ActivityCompleted:
		if ev == nil {
			return isNil()
		}
		r, err := messageToProto("reply", ev.Reply)
		if err != nil {
			return fail(err)
		}
		p.Event = &partitionspb.LogEntry_ActivityCompleted{ActivityCompleted: &partitionspb.ActivityCompleted{
			ActivityId: ev.ActivityID, Reply: r}}
	case *TimerFired:
		if ev == nil {
			return isNil()
		}
		var ids *partitionspb.Uint64List
		if ev.TimerIDs != nil {
			ids = &partitionspb.Uint64List{Values: ev.TimerIDs}
		}
		p.Event = &partitionspb.LogEntry_TimerFired{TimerFired: &partitionspb.TimerFired{TimerIds: ids}}
	case *RecoveryCompleted:
		if ev == nil {
			return isNil()
		}
		p.Event = &partitionspb.LogEntry_RecoveryCompleted{RecoveryCompleted: &partitionspb.RecoveryCompleted{}}
	default:
		return nil, fmt.Errorf("event type %T (%s) has no encoding", e.Event, name)
	}
	return p, nil
}

func logEntryFromProto(p *partitionspb.LogEntry) (LogEntry, error) {
	at, err := timeFromProto("at", p.At)
	if err != nil {
		return LogEntry{}, err
	}
	e := LogEntry{Pos: p.Pos, At: at}
	var name string
	switch ev := p.Event.(type) {
	case nil:
		return LogEntry{}, errors.New("no event (unset, or of a type this build does not know)")
	case *partitionspb.LogEntry_ClientRequestReceived:
		name = "ClientRequestReceived"
		x := ev.ClientRequestReceived
		var r *transport.ClientRequest
		if r, err = clientRequestFromProto(x.GetRequest()); err != nil {
			break
		}
		e.Event = &ClientRequestReceived{InputPos: x.GetInputPos(), Request: r}
	case *partitionspb.LogEntry_MessagesReceived:
		name = "MessagesReceived"
		x := ev.MessagesReceived
		var b *transport.MessageBatch
		if pb := x.GetBatch(); pb != nil {
			var ms []*core.TaskMessage
			if ms, err = messagesFromProto("message", pb.Messages); err != nil {
				break
			}
			b = &transport.MessageBatch{Origin: int(pb.Origin), OriginPos: pb.OriginPos, FirstSub: pb.FirstSub,
				Prev: pb.Prev, Messages: ms}
		}
		e.Event = &MessagesReceived{InputPos: x.GetInputPos(), Batch: b}
	case *partitionspb.LogEntry_AckReceived:
		name = "AckReceived"
		x := ev.AckReceived
		var a *transport.Ack
		if pa := x.GetAck(); pa != nil {
			a = &transport.Ack{From: int(pa.From), UpTo: pa.UpTo}
		}
		e.Event = &AckReceived{InputPos: x.GetInputPos(), Ack: a}
	case *partitionspb.LogEntry_BatchProcessed:
		name = "BatchProcessed"
		var b *BatchProcessed
		if b, err = batchProcessedFromProto(ev.BatchProcessed); err != nil {
			break
		}
		e.Event = b
	case *partitionspb.LogEntry_EntityBatchProcessed:
		name = "EntityBatchProcessed"
		x := ev.EntityBatchProcessed
		var st *core.EntityState
		if st, err = entityFromProto(x.GetState()); err != nil {
			break
		}
		var ms []*core.TaskMessage
		if ms, err = messagesFromProto("message", x.GetMessages()); err != nil {
			break
		}
		e.Event = &EntityBatchProcessed{InstanceID: string(x.GetInstanceId()), Generation: x.GetGeneration(),
			Consumed: int(x.GetConsumed()), State: st, Messages: ms}
	case *partitionspb.LogEntry_ActivityCompleted:
		name = "ActivityCompleted"
		x := ev.ActivityCompleted
		var r *core.TaskMessage
		if r, err = messageFromProto("reply", x.GetReply()); err != nil {
			break
		}
		e.Event = &ActivityCompleted{ActivityID: x.GetActivityId(), Reply: r}
	case *partitionspb.LogEntry_TimerFired:
		name = "TimerFired"
		var ids []uint64
		if l := ev.TimerFired.GetTimerIds(); l != nil {
			ids = l.Values
			if ids == nil {
				ids = []uint64{}
			}
		}
		e.Event = &TimerFired{TimerIDs: ids}
	case *partitionspb.LogEntry_RecoveryCompleted:
		e.Event = &RecoveryCompleted{}
	default:
		return LogEntry{}, fmt.Errorf("event of type %T has no decoding", p.Event)
	}
	if err != nil {
		return LogEntry{}, fmt.Errorf("%s: %w", name, err)
	}
	return e, nil
}

func clientRequestToProto(r *transport.ClientRequest) (*partitionspb.ClientRequest, error) {
	if r == nil {
		return nil, nil
	}
	ev, err := eventToProto("request event", r.Event)
	if err != nil {
		return nil, err
	}
	p := &partitionspb.ClientRequest{
		Kind:            int64(r.Kind),
		ClientId:        text(r.ClientID),
		RequestId:       r.RequestID,
		Timestamp:       timeToProto(r.Timestamp),
		InstanceId:      text(r.InstanceID),
		Event:           ev,
		Reuse:           int64(r.Reuse),
		IncludePayloads: r.IncludePayloads,
		IncludeHistory:  r.IncludeHistory,
		Deadline:        timeToProto(r.Deadline),
	}
	if f := r.Filter; f != nil {
		p.Filter = &partitionspb.Filter{
			InstanceIdPrefix: text(f.InstanceIDPrefix),
			CreatedFrom:      timeToProto(f.CreatedFrom),
			CreatedTo:        timeToProto(f.CreatedTo),
			After:            text(f.After),
			PageSize:         int64(f.PageSize),
			EntityName:       text(f.EntityName),
		}
		if f.Statuses != nil {
			sts := make([]corepb.RuntimeStatus, len(f.Statuses))
			for i, s := range f.Statuses {
				sts[i] = corepb.RuntimeStatus(s)
			}
			p.Filter.Statuses = &partitionspb.RuntimeStatusList{Statuses: sts}
		}
	}
	return p, nil
}

func clientRequestFromProto(p *partitionspb.ClientRequest) (*transport.ClientRequest, error) {
	if p == nil {
		return nil, nil
	}
	ts, err := timeFromProto("request timestamp", p.Timestamp)
	if err != nil {
		return nil, err
	}
	ev, err := eventFromProto("request event", p.Event)
	if err != nil {
		return nil, err
	}
	deadline, err := timeFromProto("request deadline", p.Deadline)
	if err != nil {
		return nil, err
	}
	r := &transport.ClientRequest{
		Deadline:        deadline,
		Kind:            transport.RequestKind(p.Kind),
		ClientID:        string(p.ClientId),
		RequestID:       p.RequestId,
		Timestamp:       ts,
		InstanceID:      string(p.InstanceId),
		Event:           ev,
		Reuse:           transport.ReusePolicy(p.Reuse),
		IncludePayloads: p.IncludePayloads,
		IncludeHistory:  p.IncludeHistory,
	}
	if pf := p.Filter; pf != nil {
		from, err := timeFromProto("filter created-from", pf.CreatedFrom)
		if err != nil {
			return nil, err
		}
		to, err := timeFromProto("filter created-to", pf.CreatedTo)
		if err != nil {
			return nil, err
		}
		f := &transport.Filter{
			InstanceIDPrefix: string(pf.InstanceIdPrefix),
			CreatedFrom:      from,
			CreatedTo:        to,
			After:            string(pf.After),
			PageSize:         int(pf.PageSize),
			EntityName:       string(pf.EntityName),
		}
		if pf.Statuses != nil {
			f.Statuses = make([]core.RuntimeStatus, len(pf.Statuses.Statuses))
			for i, s := range pf.Statuses.Statuses {
				f.Statuses[i] = core.RuntimeStatus(s)
			}
		}
		r.Filter = f
	}
	return r, nil
}

func batchProcessedToProto(e *BatchProcessed) (*partitionspb.BatchProcessed, error) {
	p := &partitionspb.BatchProcessed{
		InstanceId: text(e.InstanceID),
		Generation: e.Generation,
		Consumed:   int64(e.Consumed),
		Status:     corepb.RuntimeStatus(e.Status),
		Output:     e.Output,
		Custom:     e.Custom,
	}
	var err error
	if p.NewEvents, err = historyToProto("new events", e.NewEvents); err != nil {
		return nil, err
	}
	if p.Activities, err = messagesToProto("activity", e.Activities); err != nil {
		return nil, err
	}
	if p.Timers, err = messagesToProto("timer", e.Timers); err != nil {
		return nil, err
	}
	if p.Messages, err = messagesToProto("message", e.Messages); err != nil {
		return nil, err
	}
	if p.Failure, err = failureToProto(e.Failure); err != nil {
		return nil, err
	}
	if p.ContinueStart, err = eventToProto("continue start", e.ContinueStart); err != nil {
		return nil, err
	}
	if p.ContinueCarryOver, err = historyToProto("continue carry-over", e.ContinueCarryOver); err != nil {
		return nil, err
	}
	return p, nil
}

func batchProcessedFromProto(p *partitionspb.BatchProcessed) (*BatchProcessed, error) {
	if p == nil {
		p = &partitionspb.BatchProcessed{}
	}
	e := &BatchProcessed{
		InstanceID: string(p.InstanceId),
		Generation: p.Generation,
		Consumed:   int(p.Consumed),
		Status:     core.RuntimeStatus(p.Status),
		Output:     p.Output,
		Custom:     p.Custom,
	}
	var err error
	if e.NewEvents, err = historyFromProto("new events", p.NewEvents); err != nil {
		return nil, err
	}
	if e.Activities, err = messagesFromProto("activity", p.Activities); err != nil {
		return nil, err
	}
	if e.Timers, err = messagesFromProto("timer", p.Timers); err != nil {
		return nil, err
	}
	if e.Messages, err = messagesFromProto("message", p.Messages); err != nil {
		return nil, err
	}
	if e.Failure, err = failureFromProto(p.Failure); err != nil {
		return nil, err
	}
	if e.ContinueStart, err = eventFromProto("continue start", p.ContinueStart); err != nil {
		return nil, err
	}
	if e.ContinueCarryOver, err = historyFromProto("continue carry-over", p.ContinueCarryOver); err != nil {
		return nil, err
	}
	return e, nil
}

// ---------------------------------------------------------------------------
// State

func stateToProto(s *State) (*partitionspb.State, error) {
	if s == nil {
		return nil, errors.New("nil state")
	}
	p := &partitionspb.State{
		Partition:      int64(s.Partition),
		Count:          int64(s.Count),
		NextInputPos:   s.NextInputPos,
		LastPos:        s.LastPos,
		NextActivityId: s.NextActivityID,
		NextTimerId:    s.NextTimerID,
		NextGeneration: s.NextGeneration,
	}
	if s.Instances != nil {
		ids := slices.Sorted(maps.Keys(s.Instances))
		list := make([]*partitionspb.Instance, len(ids))
		for i, id := range ids {
			inst := s.Instances[id]
			if inst == nil {
				return nil, fmt.Errorf("instance %q is nil", id)
			}
			if inst.ID != id {
				return nil, fmt.Errorf("instance %q is stored under the key %q", inst.ID, id)
			}
			pi, err := instanceToProto(inst)
			if err != nil {
				return nil, fmt.Errorf("instance %q: %w", id, err)
			}
			list[i] = pi
		}
		p.Instances = &partitionspb.InstanceMap{Instances: list}
	}
	var err error
	if p.Activities, err = messageMapToProto("activity", s.Activities); err != nil {
		return nil, err
	}
	if p.Timers, err = messageMapToProto("timer", s.Timers); err != nil {
		return nil, err
	}
	if s.Outbox != nil {
		batches := make([]*partitionspb.OutboxBatch, len(s.Outbox))
		for i, b := range s.Outbox {
			if b == nil {
				return nil, fmt.Errorf("outbox batch %d is nil", i)
			}
			ms, err := messagesToProto("message", b.Messages)
			if err != nil {
				return nil, fmt.Errorf("outbox batch %d: %w", i, err)
			}
			batches[i] = &partitionspb.OutboxBatch{Pos: b.Pos, Dest: int64(b.Dest), Prev: b.Prev, Messages: ms}
		}
		p.Outbox = &partitionspb.OutboxList{Batches: batches}
	}
	if s.Dedup != nil {
		origins := slices.Sorted(maps.Keys(s.Dedup))
		entries := make([]*partitionspb.DedupEntry, len(origins))
		for i, o := range origins {
			m := s.Dedup[o]
			entries[i] = &partitionspb.DedupEntry{Origin: int64(o), Pos: m.Pos, Sub: m.Sub}
		}
		p.Dedup = &partitionspb.DedupMap{Entries: entries}
	}
	if s.OutboxLast != nil {
		dests := slices.Sorted(maps.Keys(s.OutboxLast))
		entries := make([]*partitionspb.OutboxLastEntry, len(dests))
		for i, d := range dests {
			entries[i] = &partitionspb.OutboxLastEntry{Dest: int64(d), Pos: s.OutboxLast[d]}
		}
		p.OutboxLast = &partitionspb.OutboxLastMap{Entries: entries}
	}
	if p.Requests, err = requestLogToProto(s.Requests); err != nil {
		return nil, err
	}
	return p, nil
}

func stateFromProto(p *partitionspb.State) (*State, error) {
	s := &State{
		Partition:      int(p.Partition),
		Count:          int(p.Count),
		NextInputPos:   p.NextInputPos,
		LastPos:        p.LastPos,
		NextActivityID: p.NextActivityId,
		NextTimerID:    p.NextTimerId,
		NextGeneration: p.NextGeneration,
	}
	if p.Instances != nil {
		s.Instances = make(map[string]*Instance, len(p.Instances.Instances))
		for i, pi := range p.Instances.Instances {
			inst, err := instanceFromProto(pi)
			if err != nil {
				return nil, fmt.Errorf("instance %d: %w", i, err)
			}
			if _, dup := s.Instances[inst.ID]; dup {
				return nil, fmt.Errorf("instance %q appears twice", inst.ID)
			}
			s.Instances[inst.ID] = inst
		}
	}
	var err error
	if s.Activities, err = messageMapFromProto("activity", p.Activities); err != nil {
		return nil, err
	}
	if s.Timers, err = messageMapFromProto("timer", p.Timers); err != nil {
		return nil, err
	}
	if p.Outbox != nil {
		s.Outbox = make([]*OutboxBatch, len(p.Outbox.Batches))
		for i, pb := range p.Outbox.Batches {
			if pb == nil {
				return nil, fmt.Errorf("outbox batch %d is nil", i)
			}
			ms, err := messagesFromProto("message", pb.Messages)
			if err != nil {
				return nil, fmt.Errorf("outbox batch %d: %w", i, err)
			}
			s.Outbox[i] = &OutboxBatch{Pos: pb.Pos, Dest: int(pb.Dest), Prev: pb.Prev, Messages: ms}
		}
	}
	if p.Dedup != nil {
		s.Dedup = make(map[int]DedupMark, len(p.Dedup.Entries))
		for _, d := range p.Dedup.Entries {
			o := int(d.GetOrigin())
			if _, dup := s.Dedup[o]; dup {
				return nil, fmt.Errorf("dedup origin %d appears twice", o)
			}
			s.Dedup[o] = DedupMark{Pos: d.GetPos(), Sub: d.GetSub()}
		}
	}
	if p.OutboxLast != nil {
		s.OutboxLast = make(map[int]uint64, len(p.OutboxLast.Entries))
		for _, e := range p.OutboxLast.Entries {
			d := int(e.GetDest())
			if _, dup := s.OutboxLast[d]; dup {
				return nil, fmt.Errorf("outbox-last destination %d appears twice", d)
			}
			s.OutboxLast[d] = e.GetPos()
		}
	}
	if s.Requests, err = requestLogFromProto(p.Requests); err != nil {
		return nil, err
	}
	return s, nil
}

func messageMapToProto(what string, m map[uint64]*core.TaskMessage) (*partitionspb.TaskMessageMap, error) {
	if m == nil {
		return nil, nil
	}
	ids := slices.Sorted(maps.Keys(m))
	entries := make([]*partitionspb.TaskMessageEntry, len(ids))
	for i, id := range ids {
		mp, err := messageToProto(fmt.Sprintf("%s %d", what, id), m[id])
		if err != nil {
			return nil, err
		}
		entries[i] = &partitionspb.TaskMessageEntry{Id: id, Message: mp}
	}
	return &partitionspb.TaskMessageMap{Entries: entries}, nil
}

func messageMapFromProto(what string, p *partitionspb.TaskMessageMap) (map[uint64]*core.TaskMessage, error) {
	if p == nil {
		return nil, nil
	}
	m := make(map[uint64]*core.TaskMessage, len(p.Entries))
	for _, e := range p.Entries {
		id := e.GetId()
		if _, dup := m[id]; dup {
			return nil, fmt.Errorf("%s %d appears twice", what, id)
		}
		msg, err := messageFromProto(fmt.Sprintf("%s %d", what, id), e.GetMessage())
		if err != nil {
			return nil, err
		}
		m[id] = msg
	}
	return m, nil
}

func instanceToProto(inst *Instance) (*partitionspb.Instance, error) {
	r := &inst.Record
	pr := &partitionspb.InstanceRecord{
		Name:             text(r.Name),
		Version:          text(r.Version),
		ExecutionId:      text(r.ExecutionID),
		Status:           corepb.RuntimeStatus(r.Status),
		CreatedAt:        timeToProto(r.CreatedAt),
		LastUpdatedAt:    timeToProto(r.LastUpdatedAt),
		ScheduledStartAt: timeToProto(r.ScheduledStartAt),
		Input:            r.Input,
		Output:           r.Output,
		CustomStatus:     r.CustomStatus,
		Parent:           parentToProto(r.Parent),
		Tags:             tagsToProto(r.Tags),
	}
	var err error
	if pr.Failure, err = failureToProto(r.Failure); err != nil {
		return nil, err
	}
	p := &partitionspb.Instance{
		Id:              text(inst.ID),
		IsEntity:        inst.IsEntity,
		Record:          pr,
		Generation:      inst.Generation,
		WaitingForStart: inst.WaitingForStart,
	}
	if p.History, err = historyToProto("history", inst.History); err != nil {
		return nil, err
	}
	if p.Entity, err = entityToProto(inst.Entity); err != nil {
		return nil, err
	}
	if p.Pending, err = historyToProto("pending", inst.Pending); err != nil {
		return nil, err
	}
	return p, nil
}

func instanceFromProto(p *partitionspb.Instance) (*Instance, error) {
	if p == nil {
		return nil, errors.New("nil instance")
	}
	inst := &Instance{
		ID:              string(p.Id),
		IsEntity:        p.IsEntity,
		Generation:      p.Generation,
		WaitingForStart: p.WaitingForStart,
	}
	fail := func(err error) (*Instance, error) { return nil, fmt.Errorf("%q: %w", inst.ID, err) }
	if pr := p.Record; pr != nil {
		r := &inst.Record
		r.Name, r.Version, r.ExecutionID = string(pr.Name), string(pr.Version), string(pr.ExecutionId)
		r.Status = core.RuntimeStatus(pr.Status)
		var err error
		if r.CreatedAt, err = timeFromProto("created-at", pr.CreatedAt); err != nil {
			return fail(err)
		}
		if r.LastUpdatedAt, err = timeFromProto("last-updated-at", pr.LastUpdatedAt); err != nil {
			return fail(err)
		}
		if r.ScheduledStartAt, err = timeFromProto("scheduled-start-at", pr.ScheduledStartAt); err != nil {
			return fail(err)
		}
		r.Input, r.Output, r.CustomStatus = pr.Input, pr.Output, pr.CustomStatus
		if r.Failure, err = failureFromProto(pr.Failure); err != nil {
			return fail(err)
		}
		r.Parent = parentFromProto(pr.Parent)
		r.Tags = tagsFromProto(pr.Tags)
	}
	var err error
	if inst.History, err = historyFromProto("history", p.History); err != nil {
		return fail(err)
	}
	if inst.Entity, err = entityFromProto(p.Entity); err != nil {
		return fail(err)
	}
	if inst.Pending, err = historyFromProto("pending", p.Pending); err != nil {
		return fail(err)
	}
	return inst, nil
}
