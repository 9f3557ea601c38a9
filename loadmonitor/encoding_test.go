package loadmonitor

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/loadmonitor/loadmonitorpb"
	"github.com/netherite-go/netherite/transport"
)

// sampleRecords sets every field of a Record (checked by
// TestRecordEveryFieldSet), with the odd values a codec gets wrong:
// empty owners among others, a zero time, invalid UTF-8.
func sampleRecords() []*Record {
	t0 := time.Date(2026, 12, 1, 2, 30, 0, 123456789, time.UTC)
	return []*Record{
		{
			Version: 42, Monitor: "host-b", Updated: t0, Position: 1234,
			Owners: []string{"host-a", "", "host-b", "h\xff"},
			Hosts: []HostInfo{
				{ID: "host-a", ClientID: "client-a", LastReport: t0.Add(-time.Second), Live: true, Running: []int{0, 3}},
				{ID: "host-b", ClientID: "client-b", LastReport: t0.Add(-20 * time.Second), Stopping: true},
				{ID: "host-c"},
			},
			Loads: []transport.PartitionLoad{
				{Partition: 0, WorkItems: 1, Activities: 2, Timers: 3, NextTimer: t0.Add(time.Minute), Outbox: 4,
					InputLag: 5, Events: 1 << 40, CacheBytes: 7 << 30, Instances: 8, Latency: "IILMH", InputPosition: 9 << 20},
				{Partition: 1},
				{Partition: 2, WorkItems: -1},
			},
			Recommendation: Recommendation{Hosts: 3, Reason: "backlog of 120 work items on 2 hosts"},
		},
		{Owners: []string{"", ""}},
		{},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for i, r := range sampleRecords() {
		b, err := Marshal(r)
		if err != nil {
			t.Fatalf("record %d: marshal: %v", i, err)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("record %d: unmarshal: %v", i, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("record %d changed in a round trip:\n got %#v\nwant %#v", i, got, r)
		}
		b2, err := Marshal(got)
		if err != nil {
			t.Fatalf("record %d: marshal again: %v", i, err)
		}
		if string(b2) != string(b) {
			t.Fatalf("record %d: encoding is not stable", i)
		}
	}
}

func TestRecordTimesComeBackUTC(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	r := &Record{Updated: time.Date(2026, 1, 2, 3, 4, 5, 6, loc)}
	b, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Updated.Equal(r.Updated) || got.Updated.Location() != time.UTC {
		t.Fatalf("updated %v, want %v in UTC", got.Updated, r.Updated)
	}
}

func TestRecordEveryFieldSet(t *testing.T) {
	// The samples must set every field (recursively), or the round trip
	// proves nothing about the fields left zero: a field added to Record,
	// HostInfo, Recommendation or transport.PartitionLoad fails here until
	// a sample sets it, and then the round trip until it is encoded.
	seen := map[string]bool{}
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(path, v.Elem())
			}
			return
		case reflect.Struct:
			if v.Type() == reflect.TypeOf(time.Time{}) {
				break
			}
			for i := 0; i < v.NumField(); i++ {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
			return
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(path+"[]", v.Index(i))
			}
		}
		if !v.IsZero() {
			seen[path] = true
		}
	}
	for _, r := range sampleRecords() {
		walk("Record", reflect.ValueOf(r))
	}
	var want func(path string, t reflect.Type)
	want = func(path string, ty reflect.Type) {
		switch ty.Kind() {
		case reflect.Pointer:
			want(path, ty.Elem())
			return
		case reflect.Struct:
			if ty == reflect.TypeOf(time.Time{}) {
				break
			}
			for i := 0; i < ty.NumField(); i++ {
				want(path+"."+ty.Field(i).Name, ty.Field(i).Type)
			}
			return
		case reflect.Slice:
			want(path+"[]", ty.Elem())
		}
		if !seen[path] {
			t.Errorf("no sample sets %s", path)
		}
	}
	want("Record", reflect.TypeOf(Record{}))
}

func TestUnmarshalRefuses(t *testing.T) {
	b, err := proto.Marshal(&loadmonitorpb.Record{FormatVersion: FormatVersion + 1, Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b); !errors.Is(err, ErrFormatVersion) {
		t.Fatalf("a record of format version %d: err %v, want ErrFormatVersion", FormatVersion+1, err)
	}
	if _, err := Unmarshal(nil); !errors.Is(err, ErrFormatVersion) {
		t.Fatalf("empty input: err %v, want ErrFormatVersion (version 0)", err)
	}
	if _, err := Unmarshal([]byte{0xff, 0xff}); err == nil {
		t.Fatal("garbage was decoded")
	}
	b, err = proto.Marshal(&loadmonitorpb.Record{FormatVersion: FormatVersion, Updated: &loadmonitorpb.Time{Nanos: 2e9}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b); err == nil {
		t.Fatal("a time with nanoseconds out of range was decoded")
	}
	if _, err := Marshal(nil); err == nil {
		t.Fatal("a nil record was encoded")
	}
}

func TestRecommendationAt(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := &Record{Recommendation: Recommendation{Hosts: 0, Reason: "idle"},
		Loads: []transport.PartitionLoad{{Partition: 0}, {Partition: 1, Timers: 1, NextTimer: t0.Add(2 * time.Hour)}}}
	if got := r.RecommendationAt(t0, 0); got.Hosts != 0 {
		t.Fatalf("a timer due in 2 h: %+v, want 0", got)
	}
	if got := r.RecommendationAt(t0.Add(time.Hour+59*time.Minute), 0); got.Hosts != 1 || got.Reason == "" {
		t.Fatalf("a timer due in 1 min: %+v, want 1", got)
	}
	if got := r.RecommendationAt(t0.Add(3*time.Hour), 0); got.Hosts != 1 {
		t.Fatalf("an overdue timer: %+v, want 1", got)
	}
	r.Recommendation = Recommendation{Hosts: 3, Reason: "backlog"}
	if got := r.RecommendationAt(t0, 0); got != r.Recommendation {
		t.Fatalf("a live recommendation changed: %+v", got)
	}
}
