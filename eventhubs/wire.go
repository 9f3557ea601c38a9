package eventhubs

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/core/corepb"
	"github.com/netherite-go/netherite/eventhubs/eventhubspb"
	"github.com/netherite-go/netherite/transport"
)

// WireVersion is the version of the envelope (eventhubspb.Envelope) this
// build writes and reads. Envelopes of another version are dropped.
const WireVersion = 1

var (
	marshalOpts = proto.MarshalOptions{Deterministic: true}
	errVersion  = errors.New("unknown wire version")
)

// envelope is a decoded packet with what travels beside it.
type envelope struct {
	taskHub string
	client  string // responses: the client it is for
	packet  *transport.Packet
	blob    *eventhubspb.BlobRef
}

// encodePacket encodes one packet's envelope. client is the destination
// client of responses ("" otherwise).
func encodePacket(taskHub, client string, p *transport.Packet) ([]byte, error) {
	env, err := packetToProto(p)
	if err != nil {
		return nil, err
	}
	env.Version = WireVersion
	env.TaskHub = []byte(taskHub)
	env.Client = text(client)
	return marshalOpts.Marshal(env)
}

// encodeBlobRef encodes the envelope that stands for a packet in a blob.
func encodeBlobRef(taskHub, client string, ref *eventhubspb.BlobRef) ([]byte, error) {
	env := &eventhubspb.Envelope{Version: WireVersion, TaskHub: []byte(taskHub), Client: text(client),
		Packet: &eventhubspb.Envelope_Blob{Blob: ref}}
	return marshalOpts.Marshal(env)
}

// decodeEnvelope decodes one envelope.
func decodeEnvelope(b []byte) (*envelope, error) {
	var env eventhubspb.Envelope
	if err := proto.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("eventhubs: decode packet: %w", err)
	}
	if env.Version != WireVersion {
		return &envelope{taskHub: string(env.TaskHub)}, fmt.Errorf("eventhubs: decode packet: %w %d (this build reads %d)", errVersion, env.Version, WireVersion)
	}
	out := &envelope{taskHub: string(env.TaskHub), client: string(env.Client)}
	if ref, ok := env.Packet.(*eventhubspb.Envelope_Blob); ok {
		out.blob = ref.Blob
		return out, nil
	}
	p, err := packetFromProto(&env)
	if err != nil {
		return out, fmt.Errorf("eventhubs: decode packet: %w", err)
	}
	out.packet = p
	return out, nil
}

// appendToBody appends an encoded envelope to an event body (an
// eventhubspb.EventBody: each envelope is field 1, length-delimited).
func appendToBody(body, env []byte) []byte {
	body = protowire.AppendTag(body, 1, protowire.BytesType)
	return protowire.AppendBytes(body, env)
}

// bodyOverhead is what appendToBody adds to an envelope of n bytes.
func bodyOverhead(n int) int { return protowire.SizeTag(1) + protowire.SizeVarint(uint64(n)) }

// appendSender appends the sender's id and the event's number to a body.
func appendSender(body, sender []byte, seq uint64) []byte {
	body = protowire.AppendTag(body, 2, protowire.BytesType)
	body = protowire.AppendBytes(body, sender)
	body = protowire.AppendTag(body, 3, protowire.VarintType)
	return protowire.AppendVarint(body, seq)
}

// eventBody is a split event body.
type eventBody struct {
	envs      [][]byte
	sender    string
	senderSeq uint64
}

// splitBody returns the encoded envelopes of an event body, and its
// sender's id and number.
func splitBody(body []byte) (eventBody, error) {
	var out eventBody
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return out, fmt.Errorf("eventhubs: event body: %w", protowire.ParseError(n))
		}
		body = body[n:]
		if num == 2 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(body)
			if m < 0 {
				return out, fmt.Errorf("eventhubs: event body: %w", protowire.ParseError(m))
			}
			out.sender, body = string(v), body[m:]
			continue
		}
		if num == 3 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(body)
			if m < 0 {
				return out, fmt.Errorf("eventhubs: event body: %w", protowire.ParseError(m))
			}
			out.senderSeq, body = v, body[m:]
			continue
		}
		if num != 1 || typ != protowire.BytesType {
			// A field a later version added: skip it.
			m := protowire.ConsumeFieldValue(num, typ, body)
			if m < 0 {
				return out, fmt.Errorf("eventhubs: event body: %w", protowire.ParseError(m))
			}
			body = body[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(body)
		if m < 0 {
			return out, fmt.Errorf("eventhubs: event body: %w", protowire.ParseError(m))
		}
		out.envs = append(out.envs, v)
		body = body[m:]
	}
	return out, nil
}

func text(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func timeToProto(t time.Time) *eventhubspb.Time {
	if t.IsZero() {
		return nil
	}
	return &eventhubspb.Time{UnixSeconds: t.Unix(), Nanos: uint32(t.Nanosecond())}
}

func timeFromProto(field string, p *eventhubspb.Time) (time.Time, error) {
	if p == nil {
		return time.Time{}, nil
	}
	if p.Nanos >= 1e9 {
		return time.Time{}, fmt.Errorf("%s: nanoseconds %d out of range", field, p.Nanos)
	}
	return time.Unix(p.UnixSeconds, int64(p.Nanos)).UTC(), nil
}

func packetToProto(p *transport.Packet) (*eventhubspb.Envelope, error) {
	env := &eventhubspb.Envelope{}
	n := 0
	if p.Messages != nil {
		n++
		b := p.Messages
		mb := &eventhubspb.MessageBatch{Origin: int64(b.Origin), OriginPos: b.OriginPos, FirstSub: b.FirstSub, Prev: b.Prev}
		for i, m := range b.Messages {
			pm, err := core.TaskMessageToProto(m)
			if err != nil {
				return nil, fmt.Errorf("message %d of batch %d@%d: %w", i, b.Origin, b.OriginPos, err)
			}
			if pm == nil {
				return nil, fmt.Errorf("message %d of batch %d@%d is nil", i, b.Origin, b.OriginPos)
			}
			mb.Messages = append(mb.Messages, pm)
		}
		env.Packet = &eventhubspb.Envelope_Messages{Messages: mb}
	}
	if p.Request != nil {
		n++
		r, err := requestToProto(p.Request)
		if err != nil {
			return nil, err
		}
		env.Packet = &eventhubspb.Envelope_Request{Request: r}
	}
	if p.Response != nil {
		n++
		r, err := responseToProto(p.Response)
		if err != nil {
			return nil, err
		}
		env.Packet = &eventhubspb.Envelope_Response{Response: r}
	}
	if p.Ack != nil {
		n++
		env.Packet = &eventhubspb.Envelope_Ack{Ack: &eventhubspb.Ack{From: int64(p.Ack.From), UpTo: p.Ack.UpTo}}
	}
	if p.Resend != nil {
		n++
		env.Packet = &eventhubspb.Envelope_Resend{Resend: &eventhubspb.ResendRequest{From: int64(p.Resend.From), After: p.Resend.After}}
	}
	if p.Load != nil {
		n++
		env.Packet = &eventhubspb.Envelope_Load{Load: loadToProto(p.Load)}
	}
	if p.Placement != nil {
		n++
		pu := &eventhubspb.PlacementUpdate{Version: p.Placement.Version, Monitor: text(p.Placement.Monitor)}
		for _, o := range p.Placement.Owners {
			pu.Owners = append(pu.Owners, text(o))
		}
		env.Packet = &eventhubspb.Envelope_Placement{Placement: pu}
	}
	if n != 1 {
		return nil, fmt.Errorf("a packet must have exactly one payload, this one has %d", n)
	}
	return env, nil
}

func packetFromProto(env *eventhubspb.Envelope) (*transport.Packet, error) {
	switch x := env.Packet.(type) {
	case *eventhubspb.Envelope_Messages:
		mb := x.Messages
		b := &transport.MessageBatch{Origin: int(mb.Origin), OriginPos: mb.OriginPos, FirstSub: mb.FirstSub, Prev: mb.Prev}
		for i, pm := range mb.Messages {
			m, err := core.TaskMessageFromProto(pm)
			if err != nil {
				return nil, fmt.Errorf("message %d of batch %d@%d: %w", i, b.Origin, b.OriginPos, err)
			}
			b.Messages = append(b.Messages, m)
		}
		return &transport.Packet{Messages: b}, nil
	case *eventhubspb.Envelope_Request:
		r, err := requestFromProto(x.Request)
		if err != nil {
			return nil, err
		}
		return &transport.Packet{Request: r}, nil
	case *eventhubspb.Envelope_Response:
		r, err := responseFromProto(x.Response)
		if err != nil {
			return nil, err
		}
		return &transport.Packet{Response: r}, nil
	case *eventhubspb.Envelope_Ack:
		return &transport.Packet{Ack: &transport.Ack{From: int(x.Ack.From), UpTo: x.Ack.UpTo}}, nil
	case *eventhubspb.Envelope_Resend:
		return &transport.Packet{Resend: &transport.ResendRequest{From: int(x.Resend.From), After: x.Resend.After}}, nil
	case *eventhubspb.Envelope_Load:
		l, err := loadFromProto(x.Load)
		if err != nil {
			return nil, err
		}
		return &transport.Packet{Load: l}, nil
	case *eventhubspb.Envelope_Placement:
		pu := &transport.PlacementUpdate{Version: x.Placement.Version, Monitor: string(x.Placement.Monitor)}
		for _, o := range x.Placement.Owners {
			pu.Owners = append(pu.Owners, string(o))
		}
		return &transport.Packet{Placement: pu}, nil
	case nil:
		return nil, errors.New("envelope without a packet (a packet kind this build does not know?)")
	}
	return nil, fmt.Errorf("unexpected envelope payload %T", env.Packet)
}

func requestToProto(r *transport.ClientRequest) (*eventhubspb.ClientRequest, error) {
	ev, err := core.HistoryEventToProto(r.Event)
	if err != nil {
		return nil, fmt.Errorf("request %d of client %s: %w", r.RequestID, r.ClientID, err)
	}
	p := &eventhubspb.ClientRequest{
		Kind: int64(r.Kind), ClientId: text(r.ClientID), RequestId: r.RequestID, Timestamp: timeToProto(r.Timestamp),
		InstanceId: text(r.InstanceID), Event: ev, Reuse: int64(r.Reuse), IncludePayloads: r.IncludePayloads,
		IncludeHistory: r.IncludeHistory, Deadline: timeToProto(r.Deadline),
	}
	if f := r.Filter; f != nil {
		p.Filter = &eventhubspb.Filter{InstanceIdPrefix: text(f.InstanceIDPrefix), CreatedFrom: timeToProto(f.CreatedFrom),
			CreatedTo: timeToProto(f.CreatedTo), After: text(f.After), PageSize: int64(f.PageSize), EntityName: text(f.EntityName)}
		if f.Statuses != nil {
			sts := make([]corepb.RuntimeStatus, len(f.Statuses))
			for i, s := range f.Statuses {
				sts[i] = corepb.RuntimeStatus(s)
			}
			p.Filter.Statuses = &eventhubspb.RuntimeStatusList{Statuses: sts}
		}
	}
	return p, nil
}

func requestFromProto(p *eventhubspb.ClientRequest) (*transport.ClientRequest, error) {
	ts, err := timeFromProto("request timestamp", p.Timestamp)
	if err != nil {
		return nil, err
	}
	deadline, err := timeFromProto("request deadline", p.Deadline)
	if err != nil {
		return nil, err
	}
	ev, err := core.HistoryEventFromProto(p.Event)
	if err != nil {
		return nil, fmt.Errorf("request event: %w", err)
	}
	r := &transport.ClientRequest{
		Kind: transport.RequestKind(p.Kind), ClientID: string(p.ClientId), RequestID: p.RequestId, Timestamp: ts,
		InstanceID: string(p.InstanceId), Event: ev, Reuse: transport.ReusePolicy(p.Reuse),
		IncludePayloads: p.IncludePayloads, IncludeHistory: p.IncludeHistory, Deadline: deadline,
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
		f := &transport.Filter{InstanceIDPrefix: string(pf.InstanceIdPrefix), CreatedFrom: from, CreatedTo: to,
			After: string(pf.After), PageSize: int(pf.PageSize), EntityName: string(pf.EntityName)}
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

func responseToProto(r *transport.ClientResponse) (*eventhubspb.ClientResponse, error) {
	p := &eventhubspb.ClientResponse{RequestId: r.RequestID, Error: text(r.Error), ErrorCode: int64(r.ErrorCode),
		Count: int64(r.Count), More: r.More}
	var err error
	if r.Status != nil {
		if p.Status, err = statusToProto(r.Status); err != nil {
			return nil, err
		}
	}
	for i, s := range r.Instances {
		if s == nil {
			return nil, fmt.Errorf("response %d: instance %d is nil", r.RequestID, i)
		}
		ps, err := statusToProto(s)
		if err != nil {
			return nil, err
		}
		p.Instances = append(p.Instances, ps)
	}
	for i, e := range r.Entities {
		if e == nil {
			return nil, fmt.Errorf("response %d: entity %d is nil", r.RequestID, i)
		}
		p.Entities = append(p.Entities, &eventhubspb.EntityStatus{
			Id:            &corepb.EntityId{Name: text(e.ID.Name), Key: text(e.ID.Key)},
			LastUpdatedAt: timeToProto(e.LastUpdatedAt), LockedBy: text(e.LockedBy),
			QueueLength: int64(e.QueueLength), State: e.State,
		})
	}
	return p, nil
}

func responseFromProto(p *eventhubspb.ClientResponse) (*transport.ClientResponse, error) {
	r := &transport.ClientResponse{RequestID: p.RequestId, Error: string(p.Error), ErrorCode: transport.ErrorCode(p.ErrorCode),
		Count: int(p.Count), More: p.More}
	var err error
	if p.Status != nil {
		if r.Status, err = statusFromProto(p.Status); err != nil {
			return nil, err
		}
	}
	for _, ps := range p.Instances {
		s, err := statusFromProto(ps)
		if err != nil {
			return nil, err
		}
		r.Instances = append(r.Instances, s)
	}
	for _, pe := range p.Entities {
		at, err := timeFromProto("entity last-updated", pe.LastUpdatedAt)
		if err != nil {
			return nil, err
		}
		e := &transport.EntityStatus{LastUpdatedAt: at, LockedBy: string(pe.LockedBy), QueueLength: int(pe.QueueLength), State: pe.State}
		if pe.Id != nil {
			e.ID = core.EntityID{Name: string(pe.Id.Name), Key: string(pe.Id.Key)}
		}
		r.Entities = append(r.Entities, e)
	}
	return r, nil
}

func statusToProto(s *transport.InstanceStatus) (*eventhubspb.InstanceStatus, error) {
	p := &eventhubspb.InstanceStatus{
		InstanceId: text(s.InstanceID), ExecutionId: text(s.ExecutionID), Name: text(s.Name), Version: text(s.Version),
		Status: corepb.RuntimeStatus(s.Status), CreatedAt: timeToProto(s.CreatedAt), LastUpdatedAt: timeToProto(s.LastUpdatedAt),
		ScheduledStartAt: timeToProto(s.ScheduledStartAt), ParentInstanceId: text(s.ParentInstanceID),
		Input: s.Input, Output: s.Output, CustomStatus: s.CustomStatus,
		HasTags: s.Tags != nil, HasHistory: s.History != nil,
	}
	keys := make([]string, 0, len(s.Tags))
	for k := range s.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p.Tags = append(p.Tags, &eventhubspb.Tag{Key: []byte(k), Value: []byte(s.Tags[k])})
	}
	var err error
	if p.Failure, err = core.FailureDetailsToProto(s.Failure); err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.InstanceID, err)
	}
	for i, e := range s.History {
		pe, err := core.HistoryEventToProto(e)
		if err != nil {
			return nil, fmt.Errorf("history of %s, event %d: %w", s.InstanceID, i, err)
		}
		if pe == nil {
			return nil, fmt.Errorf("history of %s: event %d is nil", s.InstanceID, i)
		}
		p.History = append(p.History, pe)
	}
	return p, nil
}

func statusFromProto(p *eventhubspb.InstanceStatus) (*transport.InstanceStatus, error) {
	s := &transport.InstanceStatus{
		InstanceID: string(p.InstanceId), ExecutionID: string(p.ExecutionId), Name: string(p.Name), Version: string(p.Version),
		Status: core.RuntimeStatus(p.Status), ParentInstanceID: string(p.ParentInstanceId),
		Input: p.Input, Output: p.Output, CustomStatus: p.CustomStatus,
	}
	var err error
	if s.CreatedAt, err = timeFromProto("created-at", p.CreatedAt); err != nil {
		return nil, err
	}
	if s.LastUpdatedAt, err = timeFromProto("last-updated-at", p.LastUpdatedAt); err != nil {
		return nil, err
	}
	if s.ScheduledStartAt, err = timeFromProto("scheduled-start-at", p.ScheduledStartAt); err != nil {
		return nil, err
	}
	if p.HasTags || len(p.Tags) > 0 {
		s.Tags = make(map[string]string, len(p.Tags))
		for _, t := range p.Tags {
			s.Tags[string(t.Key)] = string(t.Value)
		}
	}
	if s.Failure, err = core.FailureDetailsFromProto(p.Failure); err != nil {
		return nil, fmt.Errorf("status of %s: %w", s.InstanceID, err)
	}
	if p.HasHistory || len(p.History) > 0 {
		s.History = make([]*core.HistoryEvent, 0, len(p.History))
		for i, pe := range p.History {
			e, err := core.HistoryEventFromProto(pe)
			if err != nil {
				return nil, fmt.Errorf("history of %s, event %d: %w", s.InstanceID, i, err)
			}
			s.History = append(s.History, e)
		}
	}
	return s, nil
}

func loadToProto(l *transport.LoadReport) *eventhubspb.LoadReport {
	out := &eventhubspb.LoadReport{Host: text(l.Host), Client: text(l.ClientID), At: timeToProto(l.At), Stopping: l.Stopping}
	for _, p := range l.Partitions {
		pl := &eventhubspb.PartitionLoad{Partition: int64(p.Partition), WorkItems: int64(p.WorkItems),
			Activities: int64(p.Activities), Timers: int64(p.Timers), Outbox: int64(p.Outbox), InputLag: p.InputLag,
			Events: p.Events, CacheBytes: p.CacheBytes, Instances: p.Instances, Latency: text(p.Latency),
			InputPosition: p.InputPosition}
		if !p.NextTimer.IsZero() {
			pl.NextTimer = timeToProto(p.NextTimer)
		}
		out.Partitions = append(out.Partitions, pl)
	}
	return out
}

func loadFromProto(l *eventhubspb.LoadReport) (*transport.LoadReport, error) {
	at, err := timeFromProto("load report time", l.At)
	if err != nil {
		return nil, err
	}
	out := &transport.LoadReport{Host: string(l.Host), ClientID: string(l.Client), At: at, Stopping: l.Stopping}
	for _, p := range l.Partitions {
		pl := transport.PartitionLoad{Partition: int(p.Partition), WorkItems: int(p.WorkItems),
			Activities: int(p.Activities), Timers: int(p.Timers), Outbox: int(p.Outbox), InputLag: p.InputLag,
			Events: p.Events, CacheBytes: p.CacheBytes, Instances: p.Instances, Latency: string(p.Latency),
			InputPosition: p.InputPosition}
		if p.NextTimer != nil {
			if pl.NextTimer, err = timeFromProto("next timer", p.NextTimer); err != nil {
				return nil, err
			}
		}
		out.Partitions = append(out.Partitions, pl)
	}
	return out, nil
}
