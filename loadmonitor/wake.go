package loadmonitor

import (
	"fmt"
	"time"
)

// Unread is what a look into a partition's input queue found
// (transport.InputProber): Work counts packets that make work and that no
// host has read yet. Err says the queue could not be read, which counts
// as work: a task hub must not stay at zero hosts on a guess.
type Unread struct {
	Partition int
	Work      int
	Err       error
}

// Wake is the recommendation for a task hub whose hosts may all be gone,
// because a platform followed a recommendation of 0 or because they died.
// No load monitor runs then, so the record's recommendation is as old as
// the record, and Wake raises it to one host when
//   - a partition's input queue holds work no host has read (unread),
//   - a partition's next timer is due within horizon of now (a timer
//     further out lets the task hub sleep), or
//   - a partition's last load report had work left (its host died):
//     work items, activities or unacknowledged messages; its unread input
//     is for unread to tell (acknowledgements are not work).
//
// It never lowers the record's recommendation (doc/scaling.md).
func Wake(rec *Record, unread []Unread, now time.Time, horizon time.Duration) Recommendation {
	if rec.Recommendation.Hosts > 0 {
		return rec.Recommendation
	}
	wake := func(why string) Recommendation {
		return Recommendation{Hosts: 1, Reason: why}
	}
	for _, u := range unread {
		if u.Err != nil {
			return wake(fmt.Sprintf("P%02d's input queue could not be read, so it may hold work (%v)", u.Partition, u.Err))
		}
		if u.Work > 0 {
			return wake(fmt.Sprintf("P%02d has %d unread requests or messages in its input queue", u.Partition, u.Work))
		}
	}
	if r := rec.RecommendationAt(now, horizon); r.Hosts > 0 {
		return r // a timer came due
	}
	for _, l := range rec.Loads {
		if w := describeWork(l.WorkItems, l.Activities, 0, l.Outbox); w != "" { // unread input: see unread
			return wake(fmt.Sprintf("P%02d %s in its last load report", l.Partition, w))
		}
	}
	return rec.Recommendation
}
