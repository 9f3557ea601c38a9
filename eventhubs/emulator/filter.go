package emulator

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
)

// The selector filter of Event Hubs receivers.
const (
	selectorFilterName = "apache.org:selector-filter:string"
	selectorFilterCode = 0x0000468C00000004
)

type filterKind int

const (
	filterLatest filterKind = iota
	filterEarliest
	filterOffset
	filterSequence
	filterEnqueued
)

// startFilter is a parsed selector: where a receiver starts.
type startFilter struct {
	kind      filterKind
	inclusive bool  // >= rather than >
	value     int64 // offset, sequence number, or Unix milliseconds
}

var selectorRE = regexp.MustCompile(`^\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>)\s*'([^']*)'\s*$`)

// parseSelector parses the expressions the Event Hubs clients send, e.g.
// "amqp.annotation.x-opt-offset > '-1'". An empty expression means latest.
func parseSelector(expr string) (startFilter, error) {
	if expr == "" {
		return startFilter{kind: filterLatest}, nil
	}
	m := selectorRE.FindStringSubmatch(expr)
	if m == nil {
		return startFilter{}, fmt.Errorf("unsupported selector filter %q", expr)
	}
	f := startFilter{inclusive: m[2] == ">="}
	switch m[1] {
	case annOffset:
		switch m[3] {
		case "-1":
			f.kind = filterEarliest
			return f, nil
		case "@latest":
			f.kind = filterLatest
			return f, nil
		}
		f.kind = filterOffset
	case annSequenceNumber:
		f.kind = filterSequence
	case annEnqueuedTime:
		f.kind = filterEnqueued
	}
	v, err := strconv.ParseInt(m[3], 10, 64)
	if err != nil {
		return startFilter{}, fmt.Errorf("selector filter %q: %q is not an integer", expr, m[3])
	}
	if f.kind == filterSequence && v < -1 || f.kind == filterOffset && v < 0 {
		return startFilter{}, fmt.Errorf("selector filter %q: value out of range", expr)
	}
	f.value = v
	return f, nil
}

// receiverSlot is one attached receiver of a partition in a consumer group.
type receiverSlot struct {
	name     string
	hasEpoch bool
	epoch    int64
	kick     func(cond, desc string) // detaches the receiver
}

type cgReceivers struct {
	slots    map[*receiverSlot]struct{}
	hasEpoch bool
	epoch    int64
}

// errStolen refuses a receiver: a receiver with a higher owner level holds
// the partition.
type errStolen struct{ desc string }

func (e *errStolen) Error() string { return e.desc }

var receiversMu sync.Mutex // guards every partition's receivers (rarely contended)

// attachReceiver registers a receiver under the owner-level rules of Event
// Hubs: a receiver with an epoch equal to or higher than the current one
// takes over (every other receiver of the consumer group is kicked); a
// lower epoch is refused, and so is a receiver without epoch while an
// epoch receiver is attached.
func (p *partition) attachReceiver(cg string, s *receiverSlot) error {
	receiversMu.Lock()
	r := p.receivers[cg]
	if r == nil {
		r = &cgReceivers{slots: map[*receiverSlot]struct{}{}}
		p.receivers[cg] = r
	}
	var kicked []*receiverSlot
	switch {
	case s.hasEpoch && r.hasEpoch && s.epoch < r.epoch:
		receiversMu.Unlock()
		return &errStolen{fmt.Sprintf("a receiver with epoch %d is attached to partition %d of %s in consumer group %s; receiver %q with the lower epoch %d is refused",
			r.epoch, p.id, p.hub.name, cg, s.name, s.epoch)}
	case !s.hasEpoch && r.hasEpoch:
		receiversMu.Unlock()
		return &errStolen{fmt.Sprintf("a receiver with epoch %d is attached to partition %d of %s in consumer group %s; receiver %q without epoch is refused",
			r.epoch, p.id, p.hub.name, cg, s.name)}
	case s.hasEpoch:
		for o := range r.slots {
			kicked = append(kicked, o)
			delete(r.slots, o)
		}
		r.hasEpoch, r.epoch = true, s.epoch
	}
	r.slots[s] = struct{}{}
	receiversMu.Unlock()
	for _, o := range kicked {
		o.kick(condStolen, fmt.Sprintf("receiver %q with epoch %d took over partition %d of %s in consumer group %s; receiver %q (epoch %s) is disconnected",
			s.name, s.epoch, p.id, p.hub.name, cg, o.name, epochString(o)))
	}
	return nil
}

func epochString(s *receiverSlot) string {
	if !s.hasEpoch {
		return "none"
	}
	return strconv.FormatInt(s.epoch, 10)
}

// kickGroup detaches every receiver of a consumer group with amqp:not-found.
func (p *partition) kickGroup(cg, desc string) {
	receiversMu.Lock()
	r := p.receivers[cg]
	delete(p.receivers, cg)
	receiversMu.Unlock()
	if r == nil {
		return
	}
	for o := range r.slots {
		o.kick(condNotFound, desc)
	}
}

// detachReceiver unregisters a receiver; the consumer group forgets its
// epoch when no epoch receiver is left.
func (p *partition) detachReceiver(cg string, s *receiverSlot) {
	receiversMu.Lock()
	defer receiversMu.Unlock()
	r := p.receivers[cg]
	if r == nil {
		return
	}
	if _, ok := r.slots[s]; !ok {
		return // kicked
	}
	delete(r.slots, s)
	for o := range r.slots {
		if o.hasEpoch {
			return
		}
	}
	r.hasEpoch = false
	if len(r.slots) == 0 {
		delete(p.receivers, cg)
	}
}
