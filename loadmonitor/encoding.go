package loadmonitor

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/loadmonitor/loadmonitorpb"
	"github.com/netherite-go/netherite/transport"
)

// FormatVersion is the version of the stored record
// (loadmonitorpb.Record) this build writes and reads. Records of another
// version are refused: a monitor must not resume from a record it
// misreads.
const FormatVersion = 1

// ErrFormatVersion is wrapped by Unmarshal's error for a record of a
// format version this build does not know.
var ErrFormatVersion = errors.New("loadmonitor: unknown record format version")

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// Marshal encodes a record for storage. Times are kept to the nanosecond
// and come back in UTC; empty slices come back nil.
func Marshal(r *Record) ([]byte, error) {
	if r == nil {
		return nil, errors.New("loadmonitor: marshal: nil record")
	}
	pr := &loadmonitorpb.Record{
		FormatVersion: FormatVersion,
		Version:       r.Version,
		Monitor:       text(r.Monitor),
		Updated:       timeToProto(r.Updated),
		Position:      r.Position,
		Recommendation: &loadmonitorpb.Recommendation{
			Hosts:  int64(r.Recommendation.Hosts),
			Reason: text(r.Recommendation.Reason),
		},
	}
	for _, o := range r.Owners {
		// An empty owner must stay an entry: Owners is indexed by partition.
		pr.Owners = append(pr.Owners, []byte(o))
	}
	for _, h := range r.Hosts {
		ph := &loadmonitorpb.HostInfo{
			Id: text(h.ID), ClientId: text(h.ClientID), LastReport: timeToProto(h.LastReport),
			Live: h.Live, Stopping: h.Stopping,
		}
		for _, p := range h.Running {
			ph.Running = append(ph.Running, int64(p))
		}
		pr.Hosts = append(pr.Hosts, ph)
	}
	for i := range r.Loads {
		pr.Loads = append(pr.Loads, loadToProto(&r.Loads[i]))
	}
	b, err := marshalOpts.Marshal(pr)
	if err != nil {
		return nil, fmt.Errorf("loadmonitor: marshal record: %w", err)
	}
	return b, nil
}

// Unmarshal decodes a record written by Marshal. It refuses a record of an
// unknown format version (ErrFormatVersion) and empty input (no record is
// never an empty byte slice: Marshal always writes the version).
func Unmarshal(b []byte) (*Record, error) {
	var pr loadmonitorpb.Record
	if err := proto.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("loadmonitor: unmarshal record: %w", err)
	}
	if pr.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("loadmonitor: unmarshal record: %w %d (this build reads %d)", ErrFormatVersion, pr.FormatVersion, FormatVersion)
	}
	r := &Record{
		Version:  pr.Version,
		Monitor:  string(pr.Monitor),
		Position: pr.Position,
	}
	var err error
	if r.Updated, err = timeFromProto("updated", pr.Updated); err != nil {
		return nil, fmt.Errorf("loadmonitor: unmarshal record: %w", err)
	}
	if rec := pr.Recommendation; rec != nil {
		r.Recommendation = Recommendation{Hosts: int(rec.Hosts), Reason: string(rec.Reason)}
	}
	for _, o := range pr.Owners {
		r.Owners = append(r.Owners, string(o))
	}
	for i, ph := range pr.Hosts {
		h := HostInfo{ID: string(ph.Id), ClientID: string(ph.ClientId), Live: ph.Live, Stopping: ph.Stopping}
		if h.LastReport, err = timeFromProto(fmt.Sprintf("hosts[%d].last_report", i), ph.LastReport); err != nil {
			return nil, fmt.Errorf("loadmonitor: unmarshal record: %w", err)
		}
		for _, p := range ph.Running {
			h.Running = append(h.Running, int(p))
		}
		r.Hosts = append(r.Hosts, h)
	}
	for i, pl := range pr.Loads {
		l, err := loadFromProto(fmt.Sprintf("loads[%d]", i), pl)
		if err != nil {
			return nil, fmt.Errorf("loadmonitor: unmarshal record: %w", err)
		}
		r.Loads = append(r.Loads, l)
	}
	return r, nil
}

func loadToProto(l *transport.PartitionLoad) *loadmonitorpb.PartitionLoad {
	return &loadmonitorpb.PartitionLoad{
		Partition: int64(l.Partition), WorkItems: int64(l.WorkItems), Activities: int64(l.Activities),
		Timers: int64(l.Timers), NextTimer: timeToProto(l.NextTimer), Outbox: int64(l.Outbox),
		InputLag: l.InputLag, Events: l.Events, CacheBytes: l.CacheBytes, Instances: l.Instances,
		Latency: text(l.Latency), InputPosition: l.InputPosition,
	}
}

func loadFromProto(field string, p *loadmonitorpb.PartitionLoad) (transport.PartitionLoad, error) {
	next, err := timeFromProto(field+".next_timer", p.NextTimer)
	if err != nil {
		return transport.PartitionLoad{}, err
	}
	return transport.PartitionLoad{
		Partition: int(p.Partition), WorkItems: int(p.WorkItems), Activities: int(p.Activities),
		Timers: int(p.Timers), NextTimer: next, Outbox: int(p.Outbox), InputLag: p.InputLag,
		Events: p.Events, CacheBytes: p.CacheBytes, Instances: p.Instances, Latency: string(p.Latency),
		InputPosition: p.InputPosition,
	}, nil
}

func text(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func timeToProto(t time.Time) *loadmonitorpb.Time {
	if t.IsZero() {
		return nil
	}
	return &loadmonitorpb.Time{UnixSeconds: t.Unix(), Nanos: uint32(t.Nanosecond())}
}

func timeFromProto(field string, p *loadmonitorpb.Time) (time.Time, error) {
	if p == nil {
		return time.Time{}, nil
	}
	if p.Nanos >= 1e9 {
		return time.Time{}, fmt.Errorf("%s: nanoseconds %d out of range", field, p.Nanos)
	}
	return time.Unix(p.UnixSeconds, int64(p.Nanos)).UTC(), nil
}
