package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func testMessage(t testing.TB, body string, ann amqp.Annotations) []byte {
	t.Helper()
	m := &amqp.Message{
		Header:                &amqp.MessageHeader{Durable: true},
		DeliveryAnnotations:   amqp.Annotations{"x-opt-dropped": "yes"},
		Annotations:           ann,
		Properties:            &amqp.MessageProperties{MessageID: "id-" + body},
		ApplicationProperties: map[string]any{"app": body},
		Data:                  [][]byte{[]byte(body)},
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeEvent(t testing.TB, ev *Event) *amqp.Message {
	t.Helper()
	var m amqp.Message
	if err := m.UnmarshalBinary(ev.Message); err != nil {
		t.Fatalf("event %d: %v", ev.Seq, err)
	}
	return &m
}

func testBroker(t testing.TB, cfg Config) *broker {
	t.Helper()
	cfg = cfg.withDefaults()
	b, err := openBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return b
}

func readAll(p *partition, from int64) []*Event {
	var out []*Event
	for {
		evs, next, _ := p.read(from, 7)
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		from = next
	}
}

func TestDecorateKeepsSectionsAndSetsAnnotations(t *testing.T) {
	raw := testMessage(t, "hello", amqp.Annotations{"x-custom": int64(7), annPartitionKey: "pk"})
	enq := time.UnixMilli(1_700_000_000_123).UTC()
	out, err := decorate(raw, eventMeta{seq: 300, offset: 123456, enqueued: enq})
	if err != nil {
		t.Fatal(err)
	}
	var m amqp.Message
	if err := m.UnmarshalBinary(out); err != nil {
		t.Fatal(err)
	}
	if m.DeliveryAnnotations != nil {
		t.Errorf("delivery annotations kept: %v", m.DeliveryAnnotations)
	}
	if m.Header == nil || !m.Header.Durable {
		t.Errorf("header lost: %+v", m.Header)
	}
	if got := m.Annotations[annSequenceNumber]; got != int64(300) {
		t.Errorf("sequence number %#v", got)
	}
	if got := m.Annotations[annOffset]; got != "123456" {
		t.Errorf("offset %#v", got)
	}
	if got, ok := m.Annotations[annEnqueuedTime].(time.Time); !ok || !got.Equal(enq) {
		t.Errorf("enqueued time %#v", m.Annotations[annEnqueuedTime])
	}
	if m.Annotations[annPartitionKey] != "pk" || m.Annotations["x-custom"] != int64(7) {
		t.Errorf("annotations lost: %v", m.Annotations)
	}
	if string(m.GetData()) != "hello" || m.ApplicationProperties["app"] != "hello" || m.Properties.MessageID != "id-hello" {
		t.Errorf("sections changed: %+v", m)
	}
	// A small sequence number is encoded small: still a long.
	out, _ = decorate(testMessage(t, "x", nil), eventMeta{seq: 0, offset: 0, enqueued: enq, key: "k2"})
	m = amqp.Message{}
	if err := m.UnmarshalBinary(out); err != nil {
		t.Fatal(err)
	}
	if m.Annotations[annSequenceNumber] != int64(0) || m.Annotations[annPartitionKey] != "k2" {
		t.Errorf("annotations: %v", m.Annotations)
	}
}

func TestDecorateRejectsGarbage(t *testing.T) {
	for _, raw := range [][]byte{{0x01, 0x02}, {0x00, 0x53, 0x75, 0xa0, 0x10, 'x'}, {0x00}} {
		if _, err := decorate(raw, eventMeta{}); !errors.Is(err, errBadMessage) {
			t.Errorf("%x: %v", raw, err)
		}
	}
}

func TestUnpackBatch(t *testing.T) {
	env := &amqp.Message{
		Format:      BatchFormat,
		Annotations: amqp.Annotations{annPartitionKey: "key"},
		Data:        [][]byte{testMessage(t, "a", nil), testMessage(t, "b", nil)},
	}
	payload, err := env.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	evs, key, err := unpack(BatchFormat, payload)
	if err != nil || key != "key" || len(evs) != 2 || !bytes.Equal(evs[1], env.Data[1]) {
		t.Fatalf("unpack: %d events, key %q, %v", len(evs), key, err)
	}
	single := testMessage(t, "c", amqp.Annotations{annPartitionKey: "k"})
	evs, key, err = unpack(0, single)
	if err != nil || key != "k" || len(evs) != 1 {
		t.Fatalf("unpack single: %d events, key %q, %v", len(evs), key, err)
	}
	if _, _, err := unpack(BatchFormat, []byte{0xff}); err == nil {
		t.Error("garbage envelope accepted")
	}
}

func TestPartitionSequenceAndOffsets(t *testing.T) {
	b := testBroker(t, Config{Hubs: []HubConfig{{Name: "h", PartitionCount: 2}}})
	p := b.hub("H").partitions[1]
	if in := p.info(); in.begin != 0 || in.last != -1 || in.lastOffset != -1 || !in.empty || !in.lastTime.Equal(time.Unix(0, 0)) {
		t.Fatalf("empty partition: %+v", in)
	}
	for i := range 10 {
		if err := p.append([][]byte{testMessage(t, fmt.Sprint(i), nil), testMessage(t, fmt.Sprint(i)+"b", nil)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	evs := readAll(p, 0)
	if len(evs) != 20 {
		t.Fatalf("%d events", len(evs))
	}
	var off int64
	for i, ev := range evs {
		if ev.Seq != int64(i) || ev.Offset != off {
			t.Fatalf("event %d: seq %d offset %d, want offset %d", i, ev.Seq, ev.Offset, off)
		}
		m := decodeEvent(t, ev)
		if m.Annotations[annSequenceNumber] != int64(i) || m.Annotations[annOffset] != strconv.FormatInt(off, 10) {
			t.Fatalf("event %d annotations %v", i, m.Annotations)
		}
		off += logRecordOverhead + recHeader + int64(len(ev.Message))
		if i > 0 && ev.Enqueued.Before(evs[i-1].Enqueued) {
			t.Fatalf("enqueued times go back at %d", i)
		}
	}
	in := p.info()
	if in.begin != 0 || in.last != 19 || in.lastOffset != evs[19].Offset || in.empty || !in.lastTime.Equal(evs[19].Enqueued) {
		t.Fatalf("info %+v", in)
	}
	// Start positions.
	for _, c := range []struct {
		f    startFilter
		want int64
	}{
		{startFilter{kind: filterEarliest}, 0},
		{startFilter{kind: filterLatest}, 20},
		{startFilter{kind: filterSequence, value: 5}, 6},
		{startFilter{kind: filterSequence, value: 5, inclusive: true}, 5},
		{startFilter{kind: filterSequence, value: -1}, 0},
		{startFilter{kind: filterOffset, value: evs[3].Offset}, 4},
		{startFilter{kind: filterOffset, value: evs[3].Offset, inclusive: true}, 3},
		{startFilter{kind: filterOffset, value: evs[3].Offset + 1, inclusive: true}, 4},
		{startFilter{kind: filterOffset, value: 1 << 40}, 20},
		{startFilter{kind: filterEnqueued, value: evs[19].Enqueued.UnixMilli()}, 20},
		{startFilter{kind: filterEnqueued, value: evs[0].Enqueued.UnixMilli(), inclusive: true}, 0},
		{startFilter{kind: filterEnqueued, value: 0}, 0},
	} {
		if got := p.startPosition(c.f); got != c.want {
			t.Errorf("%+v: start %d, want %d", c.f, got, c.want)
		}
	}
}

func TestRetentionBySizeAndAge(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := testBroker(t, Config{now: clock})
	h, err := b.createHub(HubConfig{Name: "r", PartitionCount: 1, RetentionBytes: 10_000, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p := h.partitions[0]
	body := string(bytes.Repeat([]byte("x"), 900))
	for range 50 {
		if err := p.append([][]byte{testMessage(t, body, nil)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	in := p.info()
	if in.begin == 0 || in.last != 49 || in.empty {
		t.Fatalf("size retention did not advance begin: %+v", in)
	}
	evs := readAll(p, 0)
	if evs[0].Seq != in.begin || len(evs) != int(50-in.begin) {
		t.Fatalf("read from 0 gives %d events from %d; begin %d", len(evs), evs[0].Seq, in.begin)
	}
	p.mu.Lock()
	kept := p.bytes
	p.mu.Unlock()
	if kept > 10_000 {
		t.Fatalf("%d bytes kept over a limit of 10000", kept)
	}
	// Age: everything expires; the sequence numbers go on.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	b.enforceRetention()
	in = p.info()
	if in.begin != 50 || in.last != 49 || !in.empty {
		t.Fatalf("after expiry: %+v", in)
	}
	if got := p.startPosition(startFilter{kind: filterEarliest}); got != 50 {
		t.Fatalf("earliest after expiry: %d", got)
	}
	if err := p.append([][]byte{testMessage(t, "next", nil)}, ""); err != nil {
		t.Fatal(err)
	}
	if evs := readAll(p, 0); len(evs) != 1 || evs[0].Seq != 50 {
		t.Fatalf("after expiry: %d events", len(evs))
	}
}

func TestPersistenceKeepsSequenceNumbersAndOffsets(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, Hubs: []HubConfig{{Name: "p", PartitionCount: 2, ConsumerGroups: []string{"cg"}}}}.withDefaults()
	b, err := openBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := b.hub("p").partitions[0]
	for i := range 30 {
		if err := p.append([][]byte{testMessage(t, fmt.Sprint(i), nil)}, "k"); err != nil {
			t.Fatal(err)
		}
	}
	before := readAll(p, 0)
	created := b.hub("p").created
	if _, err := b.createHub(HubConfig{Name: "added", PartitionCount: 3}); err != nil {
		t.Fatal(err)
	}
	b.close()

	// Config hubs that exist are kept as they are.
	cfg.Hubs = []HubConfig{{Name: "p", PartitionCount: 5}}
	b2, err := openBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.close()
	h := b2.hub("p")
	if len(h.partitions) != 2 || !h.created.Equal(created) {
		t.Fatalf("reopened hub: %d partitions, created %v (was %v)", len(h.partitions), h.created, created)
	}
	if _, ok := h.consumerGroup("CG"); !ok {
		t.Error("consumer group lost")
	}
	if a := b2.hub("added"); a == nil || len(a.partitions) != 3 {
		t.Fatal("hub created at run time lost")
	}
	p2 := h.partitions[0]
	after := readAll(p2, 0)
	if len(after) != len(before) {
		t.Fatalf("%d events after restart, %d before", len(after), len(before))
	}
	for i := range before {
		if before[i].Seq != after[i].Seq || before[i].Offset != after[i].Offset || !before[i].Enqueued.Equal(after[i].Enqueued) || !bytes.Equal(before[i].Message, after[i].Message) {
			t.Fatalf("event %d differs after restart", i)
		}
	}
	if err := p2.append([][]byte{testMessage(t, "more", nil)}, ""); err != nil {
		t.Fatal(err)
	}
	evs := readAll(p2, 30)
	if len(evs) != 1 || evs[0].Seq != 30 || evs[0].Offset != before[29].Offset+logRecordOverhead+recHeader+int64(len(before[29].Message)) {
		t.Fatalf("append after restart: %+v", evs)
	}
	// Deleting a hub removes its data.
	if err := b2.deleteHub("added"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "added")); !os.IsNotExist(err) {
		t.Fatalf("data of a deleted hub: %v", err)
	}
	if err := b2.deleteHub("added"); !errors.Is(err, ErrHubNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPersistenceAfterExpiryKeepsNextSequenceNumber(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := Config{DataDir: dir, Hubs: []HubConfig{{Name: "x", PartitionCount: 1, Retention: time.Hour}}, now: clock}.withDefaults()
	b, err := openBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := b.hub("x").partitions[0]
	for i := range 5 {
		if err := p.append([][]byte{testMessage(t, fmt.Sprint(i), nil)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	b.enforceRetention()
	if in := p.info(); in.begin != 5 || !in.empty {
		t.Fatalf("after expiry: %+v", in)
	}
	b.close()
	b2, err := openBroker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.close()
	p2 := b2.hub("x").partitions[0]
	if in := p2.info(); in.begin != 5 || in.last != 4 || !in.empty {
		t.Fatalf("reopened after expiry: %+v", in)
	}
	if err := p2.append([][]byte{testMessage(t, "5", nil)}, ""); err != nil {
		t.Fatal(err)
	}
	if evs := readAll(p2, 0); len(evs) != 1 || evs[0].Seq != 5 {
		t.Fatalf("next event after restart: %+v", evs)
	}
}

func TestPartitionForKeyAndRoundRobin(t *testing.T) {
	b := testBroker(t, Config{Hubs: []HubConfig{{Name: "h", PartitionCount: 4}}})
	h := b.hub("h")
	if h.partitionFor("abc") != h.partitionFor("abc") {
		t.Error("a key maps to different partitions")
	}
	seen := map[int]int{}
	for range 8 {
		seen[h.partitionFor("").id]++
	}
	for i := range 4 {
		if seen[i] != 2 {
			t.Fatalf("round robin: %v", seen)
		}
	}
}

func TestParseSelector(t *testing.T) {
	for expr, want := range map[string]startFilter{
		"":                                    {kind: filterLatest},
		"amqp.annotation.x-opt-offset > '-1'": {kind: filterEarliest},
		"amqp.annotation.x-opt-offset > '@latest'":              {kind: filterLatest},
		"amqp.annotation.x-opt-offset >= '1234'":                {kind: filterOffset, value: 1234, inclusive: true},
		"amqp.annotation.x-opt-sequence-number > '41'":          {kind: filterSequence, value: 41},
		"amqp.annotation.x-opt-sequence-number >= '0'":          {kind: filterSequence, inclusive: true},
		"amqp.annotation.x-opt-enqueued-time > '1658053230000'": {kind: filterEnqueued, value: 1658053230000},
	} {
		got, err := parseSelector(expr)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", expr, got, err, want)
		}
	}
	for _, bad := range []string{"x-opt-offset > '1'", "amqp.annotation.x-opt-offset < '1'", "amqp.annotation.x-opt-offset > 'abc'", "amqp.annotation.x-opt-offset > '-5'", "amqp.annotation.x-opt-foo > '1'"} {
		if _, err := parseSelector(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOwnerLevels(t *testing.T) {
	b := testBroker(t, Config{Hubs: []HubConfig{{Name: "h", PartitionCount: 1}}})
	p := b.hub("h").partitions[0]
	var mu sync.Mutex
	kicked := map[string]bool{}
	slot := func(name string, epoch *int64) *receiverSlot {
		s := &receiverSlot{name: name, kick: func(string, string) { mu.Lock(); kicked[name] = true; mu.Unlock() }}
		if epoch != nil {
			s.hasEpoch, s.epoch = true, *epoch
		}
		return s
	}
	ep := func(v int64) *int64 { return &v }
	plain1, plain2 := slot("plain1", nil), slot("plain2", nil)
	for _, s := range []*receiverSlot{plain1, plain2} {
		if err := p.attachReceiver("$default", s); err != nil {
			t.Fatal(err)
		}
	}
	e1 := slot("e1", ep(1))
	if err := p.attachReceiver("$default", e1); err != nil {
		t.Fatal(err)
	}
	if !kicked["plain1"] || !kicked["plain2"] {
		t.Fatalf("non-epoch receivers not kicked: %v", kicked)
	}
	var stolen *errStolen
	if err := p.attachReceiver("$default", slot("plain3", nil)); !errors.As(err, &stolen) {
		t.Fatalf("non-epoch receiver accepted next to an epoch one: %v", err)
	}
	if err := p.attachReceiver("$default", slot("e0", ep(0))); !errors.As(err, &stolen) {
		t.Fatalf("lower epoch accepted: %v", err)
	}
	// Another consumer group is independent.
	if err := p.attachReceiver("other", slot("o", nil)); err != nil {
		t.Fatal(err)
	}
	e1b := slot("e1b", ep(1))
	if err := p.attachReceiver("$default", e1b); err != nil || !kicked["e1"] {
		t.Fatalf("same epoch did not take over: %v %v", err, kicked)
	}
	e5 := slot("e5", ep(5))
	if err := p.attachReceiver("$default", e5); err != nil || !kicked["e1b"] {
		t.Fatalf("higher epoch did not take over: %v %v", err, kicked)
	}
	if kicked["o"] {
		t.Fatal("a receiver of another consumer group was kicked")
	}
	p.detachReceiver("$default", e5)
	if err := p.attachReceiver("$default", slot("plain4", nil)); err != nil {
		t.Fatalf("non-epoch receiver refused after the epoch receiver left: %v", err)
	}
}

func TestDecorateReplacesOurAnnotations(t *testing.T) {
	raw := testMessage(t, "y", amqp.Annotations{annSequenceNumber: int64(99), annOffset: "5", annPartitionKey: "old", int64(7): "numeric key"})
	out, err := decorate(raw, eventMeta{seq: 1, offset: 2, enqueued: time.UnixMilli(3), key: "new"})
	if err != nil {
		t.Fatal(err)
	}
	var m amqp.Message
	if err := m.UnmarshalBinary(out); err != nil {
		t.Fatal(err)
	}
	if len(m.Annotations) != 5 || m.Annotations[annSequenceNumber] != int64(1) || m.Annotations[annOffset] != "2" ||
		m.Annotations[annPartitionKey] != "new" || m.Annotations[int64(7)] != "numeric key" {
		t.Fatalf("annotations %v", m.Annotations)
	}
}

func FuzzDecorate(f *testing.F) {
	f.Add(testMessage(f, "seed", amqp.Annotations{"k": "v"}))
	f.Add([]byte{0x00, 0x53, 0x72, 0xc1, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := decorate(raw, eventMeta{seq: 1, offset: 2, enqueued: time.UnixMilli(3)})
		if err != nil {
			return
		}
		if _, err := splitSections(out); err != nil {
			t.Fatalf("decorate made an invalid message from %x: %v", raw, err)
		}
	})
}

func FuzzUnpack(f *testing.F) {
	env := &amqp.Message{Annotations: amqp.Annotations{annPartitionKey: "key"}, Data: [][]byte{testMessage(f, "a", nil)}}
	payload, _ := env.MarshalBinary()
	f.Add(payload)
	f.Fuzz(func(t *testing.T, payload []byte) {
		events, _, err := unpack(BatchFormat, payload)
		if err != nil {
			return
		}
		for _, ev := range events {
			decorate(ev, eventMeta{})
		}
	})
}
