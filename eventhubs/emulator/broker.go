package emulator

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/faster"
)

// Errors of the broker.
var (
	ErrHubExists       = errors.New("event hub already exists")
	ErrHubNotFound     = errors.New("event hub not found")
	ErrGroupExists     = errors.New("consumer group already exists")
	ErrGroupNotFound   = errors.New("consumer group not found")
	ErrPartitionFailed = errors.New("partition log failed")
	errClosed          = errors.New("emulator stopped")
)

// Event is one stored event.
type Event struct {
	Seq      int64
	Offset   int64     // byte position in the partition's log
	Enqueued time.Time // millisecond precision
	Message  []byte    // the encoded AMQP message as delivered
}

// Stored record layout in a partition log (little-endian): sequence number
// (8), enqueued time in Unix milliseconds (8), then the message.
const recHeader = 16

// logRecordOverhead is the commit log's header per record: an event's
// offset advances by it plus the record length, in memory as on disk.
const logRecordOverhead = 16

// Device geometry of partition logs on disk.
const (
	logSector  = 4096
	logSegment = 16 << 20
)

// broker holds the hubs.
type broker struct {
	cfg Config
	now func() time.Time

	mu     sync.RWMutex
	hubs   map[string]*hub // by lower-case name
	meta   *faster.DirMeta // hub.json documents (nil in memory)
	closed bool
}

// hub is an event hub.
type hub struct {
	name           string
	created        time.Time
	cfg            HubConfig // as created (persisted in hub.json)
	cgMu           sync.Mutex
	consumerGroups map[string]string // lower -> name
	retention      time.Duration
	retentionBytes int64
	partitions     []*partition
	dir            string        // "" in memory
	gone           chan struct{} // closed when the hub is deleted or the broker closes
	deleted        atomic.Bool
	rr             atomic.Uint64 // round robin for sends without partition
}

// hubDoc is the persisted description of a hub (hub.json).
type hubDoc struct {
	Name           string   `json:"name"`
	PartitionCount int      `json:"partitionCount"`
	ConsumerGroups []string `json:"consumerGroups"`
	CreatedAt      int64    `json:"createdAtUnixNano"`
	Retention      int64    `json:"retentionNanos"`
	RetentionBytes int64    `json:"retentionBytes"`
}

func openBroker(cfg Config) (*broker, error) {
	b := &broker{cfg: cfg, now: cfg.now, hubs: map[string]*hub{}}
	if cfg.DataDir != "" {
		m, err := faster.NewDirMeta(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("emulator: data directory: %w", err)
		}
		b.meta = m
		if err := b.loadHubs(); err != nil {
			b.close()
			return nil, err
		}
	}
	for _, hc := range cfg.Hubs {
		if _, err := b.createHub(hc); err != nil && !errors.Is(err, ErrHubExists) {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

// loadHubs opens every hub of the data directory. A hub directory without
// hub.json is a creation that did not finish: it is removed.
func (b *broker) loadHubs() error {
	entries, err := os.ReadDir(b.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("emulator: data directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		data, err := b.meta.ReadFile(e.Name() + "/hub.json")
		if errors.Is(err, faster.ErrNotExist) {
			if err := os.RemoveAll(filepath.Join(b.cfg.DataDir, e.Name())); err != nil {
				return fmt.Errorf("emulator: removing the unfinished hub directory %s: %w", e.Name(), err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("emulator: hub %s: %w", e.Name(), err)
		}
		var d hubDoc
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("emulator: hub %s: hub.json: %w", e.Name(), err)
		}
		hc := HubConfig{Name: d.Name, PartitionCount: d.PartitionCount, ConsumerGroups: d.ConsumerGroups,
			Retention: time.Duration(d.Retention), RetentionBytes: d.RetentionBytes}
		if err := hc.validate(); err != nil {
			return fmt.Errorf("emulator: hub.json of %s: %w", e.Name(), err)
		}
		h, err := b.openHub(hc, time.Unix(0, d.CreatedAt))
		if err != nil {
			return err
		}
		b.hubs[strings.ToLower(h.name)] = h
	}
	return nil
}

func (b *broker) hubDir(name string) string {
	return filepath.Join(b.cfg.DataDir, strings.ToLower(name))
}

// openHub builds a hub and opens (recovers) its partitions.
func (b *broker) openHub(hc HubConfig, created time.Time) (*hub, error) {
	h := &hub{
		name:           hc.Name,
		created:        created,
		cfg:            hc,
		consumerGroups: map[string]string{strings.ToLower(DefaultConsumerGroup): DefaultConsumerGroup},
		retention:      hc.Retention,
		retentionBytes: hc.RetentionBytes,
		gone:           make(chan struct{}),
	}
	if h.retention <= 0 {
		h.retention = DefaultRetention
	}
	if h.retentionBytes <= 0 {
		h.retentionBytes = b.cfg.RetentionBytes
	}
	for _, cg := range hc.ConsumerGroups {
		h.consumerGroups[strings.ToLower(cg)] = cg
	}
	if b.meta != nil {
		h.dir = b.hubDir(hc.Name)
	}
	for i := range hc.PartitionCount {
		p, err := openPartition(h, i, b.now)
		if err != nil {
			h.closePartitions()
			return nil, err
		}
		h.partitions = append(h.partitions, p)
	}
	return h, nil
}

func (h *hub) closePartitions() {
	for _, p := range h.partitions {
		p.close()
	}
}

// createHub creates a hub (ErrHubExists if it does).
func (b *broker) createHub(hc HubConfig) (*hub, error) {
	if err := hc.validate(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	key := strings.ToLower(hc.Name)
	if _, ok := b.hubs[key]; ok {
		return nil, fmt.Errorf("hub %q: %w", hc.Name, ErrHubExists)
	}
	created := b.now().UTC().Truncate(time.Millisecond)
	if b.meta != nil {
		// A leftover directory without hub.json is an unfinished creation.
		if err := os.RemoveAll(b.hubDir(hc.Name)); err != nil {
			return nil, fmt.Errorf("emulator: hub %q: %w", hc.Name, err)
		}
	}
	h, err := b.openHub(hc, created)
	if err != nil {
		return nil, err
	}
	if err := b.writeHubDoc(h); err != nil {
		h.closePartitions()
		return nil, err
	}
	b.hubs[key] = h
	return h, nil
}

// writeHubDoc persists the description of a hub (with a data directory).
func (b *broker) writeHubDoc(h *hub) error {
	if b.meta == nil {
		return nil
	}
	h.cgMu.Lock()
	var cgs []string
	for _, cg := range h.consumerGroups {
		if cg != DefaultConsumerGroup {
			cgs = append(cgs, cg)
		}
	}
	h.cgMu.Unlock()
	sort.Strings(cgs)
	d := hubDoc{Name: h.name, PartitionCount: len(h.partitions), CreatedAt: h.created.UnixNano(),
		Retention: int64(h.cfg.Retention), RetentionBytes: h.cfg.RetentionBytes, ConsumerGroups: cgs}
	data, _ := json.Marshal(d)
	if err := b.meta.WriteFile(strings.ToLower(h.name)+"/hub.json", data); err != nil {
		return fmt.Errorf("emulator: hub %q: %w", h.name, err)
	}
	return nil
}

// createConsumerGroup adds a consumer group to a hub.
func (b *broker) createConsumerGroup(hubName, name string) error {
	if name == "" || strings.ContainsAny(name, "/\\?#") || len(name) > 256 {
		return fmt.Errorf("invalid consumer group name %q", name)
	}
	h := b.hub(hubName)
	if h == nil {
		return fmt.Errorf("hub %q: %w", hubName, ErrHubNotFound)
	}
	h.cgMu.Lock()
	if _, ok := h.consumerGroups[strings.ToLower(name)]; ok {
		h.cgMu.Unlock()
		return fmt.Errorf("consumer group %q of %q: %w", name, h.name, ErrGroupExists)
	}
	h.consumerGroups[strings.ToLower(name)] = name
	h.cgMu.Unlock()
	return b.writeHubDoc(h)
}

// deleteConsumerGroup removes a consumer group ($Default cannot be) and
// detaches its receivers with amqp:not-found.
func (b *broker) deleteConsumerGroup(hubName, name string) error {
	h := b.hub(hubName)
	if h == nil {
		return fmt.Errorf("hub %q: %w", hubName, ErrHubNotFound)
	}
	key := strings.ToLower(name)
	if key == strings.ToLower(DefaultConsumerGroup) {
		return fmt.Errorf("the consumer group %s cannot be deleted", DefaultConsumerGroup)
	}
	h.cgMu.Lock()
	if _, ok := h.consumerGroups[key]; !ok {
		h.cgMu.Unlock()
		return fmt.Errorf("consumer group %q of %q: %w", name, h.name, ErrGroupNotFound)
	}
	delete(h.consumerGroups, key)
	h.cgMu.Unlock()
	for _, p := range h.partitions {
		p.kickGroup(key, fmt.Sprintf("the consumer group %q of %q was deleted", name, h.name))
	}
	return b.writeHubDoc(h)
}

// hub returns the hub named name (case-insensitive), or nil.
func (b *broker) hub(name string) *hub {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.hubs[strings.ToLower(name)]
}

// hubNames returns the names of the hubs, sorted.
func (b *broker) hubNames() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []string
	for _, h := range b.hubs {
		out = append(out, h.name)
	}
	sort.Strings(out)
	return out
}

// deleteHub deletes a hub and its data; its links learn it from h.gone.
func (b *broker) deleteHub(name string) error {
	b.mu.Lock()
	key := strings.ToLower(name)
	h, ok := b.hubs[key]
	if !ok || b.closed {
		b.mu.Unlock()
		return fmt.Errorf("hub %q: %w", name, ErrHubNotFound)
	}
	delete(b.hubs, key)
	b.mu.Unlock()
	h.deleted.Store(true)
	close(h.gone)
	h.closePartitions()
	if h.dir != "" {
		// hub.json goes first, so that a crash leaves an unfinished hub
		// that the next start removes.
		if err := b.meta.Remove(key + "/hub.json"); err != nil {
			return fmt.Errorf("emulator: deleting hub %q: %w", name, err)
		}
		if err := os.RemoveAll(h.dir); err != nil {
			return fmt.Errorf("emulator: deleting hub %q: %w", name, err)
		}
	}
	return nil
}

// enforceRetention drops expired events of every partition and truncates
// their logs.
func (b *broker) enforceRetention() {
	b.mu.RLock()
	hubs := make([]*hub, 0, len(b.hubs))
	for _, h := range b.hubs {
		hubs = append(hubs, h)
	}
	b.mu.RUnlock()
	now := b.now()
	for _, h := range hubs {
		for _, p := range h.partitions {
			p.expire(now)
			p.truncateLog()
		}
	}
}

func (b *broker) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	hubs := b.hubs
	b.mu.Unlock()
	for _, h := range hubs {
		close(h.gone)
		h.closePartitions()
	}
}

// consumerGroup returns the canonical name of a consumer group of the hub.
func (h *hub) consumerGroup(name string) (string, bool) {
	h.cgMu.Lock()
	defer h.cgMu.Unlock()
	cg, ok := h.consumerGroups[strings.ToLower(name)]
	return cg, ok
}

func (h *hub) partitionIDs() []string {
	ids := make([]string, len(h.partitions))
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}

// partitionFor picks the partition of a send without one: by partition
// key hash, else round robin.
func (h *hub) partitionFor(key string) *partition {
	n := uint64(len(h.partitions))
	if key != "" {
		f := fnv.New32a()
		f.Write([]byte(key))
		return h.partitions[uint64(f.Sum32())%n]
	}
	return h.partitions[(h.rr.Add(1)-1)%n]
}

// partition is one partition: a log of events with dense sequence numbers
// starting at 0, kept in memory within the retention limits, and on disk
// when the emulator has a data directory.
type partition struct {
	hub *hub
	id  int
	now func() time.Time

	mu       sync.Mutex
	evs      []*Event // evs[head:] are retained; evs[head].Seq == begin
	head     int
	bytes    int64 // of the retained records
	nextSeq  int64 // sequence number of the next event
	nextPos  int64 // offset of the next event
	visible  int64 // events below this sequence number are readable (durable)
	last     *Event
	lastTime int64 // Unix ms of the last event, to keep enqueued times monotonic
	wake     chan struct{}
	failed   error
	closed   bool

	log       *faster.Log // nil in memory
	dev       faster.Device
	logBegin  int64 // position the log was last truncated to
	truncPos  int64 // position the log may be truncated to
	truncMu   sync.Mutex
	receivers map[string]*cgReceivers // consumer group (lower) -> receivers
}

func openPartition(h *hub, id int, now func() time.Time) (*partition, error) {
	p := &partition{hub: h, id: id, now: now, wake: make(chan struct{}), receivers: map[string]*cgReceivers{}}
	if h.dir == "" {
		return p, nil
	}
	dir := filepath.Join(h.dir, strconv.Itoa(id))
	dev, err := faster.NewFileDevice(dir, "log", logSector, logSegment)
	if err != nil {
		return nil, fmt.Errorf("emulator: hub %s partition %d: %w", h.name, id, err)
	}
	meta, err := faster.NewDirMeta(dir)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("emulator: hub %s partition %d: %w", h.name, id, err)
	}
	log, err := faster.OpenLog(faster.LogOptions{
		Name: fmt.Sprintf("event hub %s partition %d log", h.name, id), Device: dev, Meta: meta, MetaName: "log.meta",
		// Offsets are predicted before Append: positions must be dense.
		MetaCommits: true})
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("emulator: hub %s partition %d: %w", h.name, id, err)
	}
	p.log, p.dev = log, dev
	p.logBegin, p.nextPos = log.Begin(), log.CommittedTail()
	err = log.Scan(log.Begin(), func(pos int64, rec []byte) error {
		if len(rec) < recHeader {
			return fmt.Errorf("record at %d is too short", pos)
		}
		seq := int64(binary.LittleEndian.Uint64(rec))
		if len(p.evs) > 0 && seq != p.nextSeq {
			return fmt.Errorf("record at %d has sequence number %d, want %d", pos, seq, p.nextSeq)
		}
		ms := int64(binary.LittleEndian.Uint64(rec[8:]))
		ev := &Event{Seq: seq, Offset: pos, Enqueued: time.UnixMilli(ms).UTC(), Message: slices.Clone(rec[recHeader:])}
		p.evs = append(p.evs, ev)
		p.bytes += int64(len(rec))
		p.nextSeq, p.last, p.lastTime = seq+1, ev, ms
		return nil
	})
	if err != nil {
		log.Close()
		dev.Close()
		return nil, fmt.Errorf("emulator: hub %s partition %d: recovery: %w", h.name, id, err)
	}
	p.visible = p.nextSeq
	p.truncPos = p.logBegin
	p.expire(now())
	return p, nil
}

// close closes the partition's log; later appends fail.
func (p *partition) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.wake)
	p.mu.Unlock()
	if p.log != nil {
		p.log.Close()
		p.dev.Close()
	}
}

// append stores the events of one delivery, in order, and returns once
// they are durable (with a data directory) and visible to receivers.
func (p *partition) append(raws [][]byte, key string) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errClosed
	}
	if p.failed != nil {
		p.mu.Unlock()
		return p.failed
	}
	ms := max(p.now().UnixMilli(), p.lastTime)
	enq := time.UnixMilli(ms).UTC()
	var rec []byte
	for _, raw := range raws {
		msg, err := decorate(raw, eventMeta{seq: p.nextSeq, offset: p.nextPos, enqueued: enq, key: key})
		if err != nil {
			// Nothing of this delivery is visible yet; earlier events of
			// it stay in the log only with a data directory, so refuse
			// the whole delivery before appending anything.
			p.mu.Unlock()
			return err
		}
		ev := &Event{Seq: p.nextSeq, Offset: p.nextPos, Enqueued: enq, Message: msg}
		size := int64(recHeader + len(msg))
		if p.log != nil {
			rec = binary.LittleEndian.AppendUint64(rec[:0], uint64(ev.Seq))
			rec = binary.LittleEndian.AppendUint64(rec, uint64(ms))
			rec = append(rec, msg...)
			if pos := p.log.Append(rec); pos != ev.Offset {
				p.failed = fmt.Errorf("%w: hub %s partition %d: appended at %d, expected %d", ErrPartitionFailed, p.hub.name, p.id, pos, ev.Offset)
				p.mu.Unlock()
				return p.failed
			}
		}
		p.evs = append(p.evs, ev)
		p.bytes += size
		p.nextSeq++
		p.nextPos += logRecordOverhead + size
		p.last = ev
	}
	p.lastTime = ms
	end := p.nextSeq
	if p.log == nil {
		p.publishLocked(end)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	err := p.log.Commit()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.failed == nil {
			p.failed = fmt.Errorf("%w: hub %s partition %d: %v", ErrPartitionFailed, p.hub.name, p.id, err)
		}
		return p.failed
	}
	p.publishLocked(end)
	return nil
}

// publishLocked makes the events below end readable and wakes receivers.
func (p *partition) publishLocked(end int64) {
	if end <= p.visible {
		return
	}
	p.visible = end
	p.dropLocked(p.now())
	if !p.closed {
		close(p.wake)
		p.wake = make(chan struct{})
	}
}

// expire applies retention.
func (p *partition) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked(now)
}

// dropLocked drops events past the hub's retention (age or size); only
// visible events are dropped.
func (p *partition) dropLocked(now time.Time) {
	cutoff := now.Add(-p.hub.retention)
	for p.head < len(p.evs) {
		ev := p.evs[p.head]
		if ev.Seq >= p.visible {
			break
		}
		if p.bytes <= p.hub.retentionBytes && !ev.Enqueued.Before(cutoff) {
			break
		}
		p.bytes -= int64(recHeader + len(ev.Message))
		p.evs[p.head] = nil
		p.head++
	}
	if p.head > 0 && p.head >= len(p.evs)/2 {
		// A new array: slices handed to receivers stay valid.
		p.evs = append([]*Event(nil), p.evs[p.head:]...)
		p.head = 0
	}
	// The log keeps at least its last record: it carries the next
	// sequence number across restarts.
	switch {
	case p.head < len(p.evs):
		p.truncPos = p.evs[p.head].Offset
	case p.last != nil:
		p.truncPos = p.last.Offset
	}
}

// truncateLog drops the log's records below the retained events.
func (p *partition) truncateLog() {
	if p.log == nil {
		return
	}
	p.truncMu.Lock()
	defer p.truncMu.Unlock()
	p.mu.Lock()
	pos, closed := p.truncPos, p.closed
	p.mu.Unlock()
	if closed || pos <= p.logBegin {
		return
	}
	// Truncating below the committed tail only: pos is a visible record.
	if err := p.log.Truncate(pos); err != nil {
		return // retried at the next round; the log keeps the records
	}
	p.logBegin = pos
}

// partitionInfo is the state $management reports.
type partitionInfo struct {
	begin, last int64
	lastOffset  int64
	lastTime    time.Time
	empty       bool
}

func (p *partition) info() partitionInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := partitionInfo{begin: p.beginLocked(), last: -1, lastOffset: -1, lastTime: time.Unix(0, 0).UTC()}
	if p.visible > 0 {
		in.last = p.visible - 1
		if ev := p.eventLocked(in.last); ev != nil {
			in.lastOffset, in.lastTime = ev.Offset, ev.Enqueued
		} else if p.last != nil && p.last.Seq == in.last {
			in.lastOffset, in.lastTime = p.last.Offset, p.last.Enqueued
		}
	}
	in.empty = in.begin >= p.visible
	return in
}

// beginLocked is the first retained sequence number (the next one when
// nothing is retained).
func (p *partition) beginLocked() int64 {
	if p.head < len(p.evs) {
		return p.evs[p.head].Seq
	}
	return p.nextSeq
}

func (p *partition) eventLocked(seq int64) *Event {
	if p.head >= len(p.evs) {
		return nil
	}
	i := seq - p.evs[p.head].Seq
	if i < 0 || i >= int64(len(p.evs)-p.head) {
		return nil
	}
	return p.evs[p.head+int(i)]
}

// read returns up to max visible events from sequence number from (or
// from the first retained one if from is older), the sequence number to
// read next, and a channel closed when more events arrive.
func (p *partition) read(from int64, max int) ([]*Event, int64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.beginLocked(); from < b {
		from = b
	}
	if from >= p.visible || p.head >= len(p.evs) {
		return nil, from, p.wake
	}
	i := p.head + int(from-p.evs[p.head].Seq)
	j := min(p.head+int(p.visible-p.evs[p.head].Seq), i+max)
	evs := p.evs[i:j:j]
	return evs, from + int64(len(evs)), p.wake
}

// startPosition resolves a receiver's filter to the first sequence number
// it receives.
func (p *partition) startPosition(f startFilter) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	begin := p.beginLocked()
	retained := p.evs[p.head:]
	visible := retained[:p.visible-begin]
	switch f.kind {
	case filterLatest:
		return p.visible
	case filterEarliest:
		return begin
	case filterSequence:
		s := f.value
		if !f.inclusive {
			s++
		}
		return max(s, begin)
	case filterOffset, filterEnqueued:
		i := sort.Search(len(visible), func(i int) bool {
			v := visible[i].Offset
			if f.kind == filterEnqueued {
				v = visible[i].Enqueued.UnixMilli()
			}
			if f.inclusive {
				return v >= f.value
			}
			return v > f.value
		})
		return begin + int64(i)
	}
	return p.visible
}
