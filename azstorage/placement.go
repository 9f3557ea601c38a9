package azstorage

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"
)

// controlQueueOf places an instance on a control queue: FNV-1a (32 bit) of
// the instance id, modulo the number of control queues, as
// DurableTask.AzureStorage does.
func controlQueueOf(instanceID string, queues int) int {
	h := fnv.New32a()
	h.Write([]byte(instanceID))
	return int(h.Sum32() % uint32(queues))
}

func controlQueueName(hub string, i int) string { return fmt.Sprintf("%s-control-%02d", hub, i) }
func workItemQueueName(hub string) string       { return hub + "-workitems" }
func historyTableName(hub string) string        { return hub + "History" }
func instancesTableName(hub string) string      { return hub + "Instances" }
func largeMessageContainer(hub string) string   { return hub + "-largemessages" }
func leaseContainer(hub string) string          { return hub + "-leases" }

// checkHubName checks a task hub name against what queues, tables and
// containers accept: 3 to 45 letters and digits, starting with a letter
// (Durable Functions' rule), lower-cased for queues and containers.
func checkHubName(hub string) error {
	if len(hub) < 3 || len(hub) > 45 {
		return fmt.Errorf("azstorage: task hub name %q must have 3 to 45 characters", hub)
	}
	for i, r := range hub {
		ok := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("azstorage: task hub name %q must be letters and digits, starting with a letter", hub)
		}
	}
	return nil
}

// backoff is the idle-polling delay of a queue: it starts small, grows
// randomly and exponentially while the queue stays empty, up to max, and
// drops back once a message arrives (DTFx's BackoffPollingHelper).
type backoff struct {
	min, max time.Duration
	cur      time.Duration
	rnd      func() float64
}

func newBackoff(min, max time.Duration) *backoff {
	if min > max {
		min = max
	}
	return &backoff{min: min, max: max, rnd: rand.Float64}
}

// next returns the delay before the next poll of an idle queue.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		// Grow by a random factor in [1.5, 2.5).
		b.cur = time.Duration(float64(b.cur) * (1.5 + b.rnd()))
	}
	if b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

// reset is called when a poll found messages.
func (b *backoff) reset() { b.cur = 0 }

// escapeKey makes an instance id usable as a table key, which may not
// hold '/', '\\', '#', '?' or control characters; '%' and '\” are
// escaped too, so the mapping is reversible and quotes stay out of OData.
func escapeKey(id string) string {
	if !strings.ContainsAny(id, "%/\\#?'") {
		return id
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		switch c := id[i]; c {
		case '%', '/', '\\', '#', '?', '\'':
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescapeKey(k string) string {
	if !strings.Contains(k, "%") {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k)+0 && i+2 <= len(k)-1 {
			var c byte
			if _, err := fmt.Sscanf(k[i+1:i+3], "%02X", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// batches splits table writes into transactions: at most maxCount
// entities and maxBytes of payload each (the table service's limits for
// one entity group transaction are 100 entities and 4 MiB).
func batches(sizes []int, maxCount, maxBytes int) [][2]int {
	var out [][2]int
	start, bytes := 0, 0
	for i, s := range sizes {
		if i > start && (i-start >= maxCount || bytes+s > maxBytes) {
			out = append(out, [2]int{start, i})
			start, bytes = i, 0
		}
		bytes += s
	}
	if start < len(sizes) {
		out = append(out, [2]int{start, len(sizes)})
	}
	return out
}
