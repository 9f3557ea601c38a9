package loadmonitor

import (
	"fmt"
	"strings"
	"time"
)

// recommend updates the recommendation (doc/scaling.md has the rules).
func (m *Monitor) recommend(live int, now time.Time) {
	next, immediate := m.computeRecommendation(live, now)
	// Fall only once the recommendation has been stable for a while: a
	// lull between bursts must not give hosts back. A fresh monitor
	// measures the fall from the live hosts.
	base := m.rec.Hosts
	if !m.recKnown {
		base = live
	}
	base = min(base, len(m.parts)) // never more hosts than partitions
	if next.Hosts < base && !immediate && now.Sub(m.recSince) < m.cfg.ScaleDownDelay {
		next = Recommendation{Hosts: base, Reason: fmt.Sprintf("holding %d for stabilisation (%s)", base, next.Reason)}
	}
	if next.Hosts != m.rec.Hosts || !m.recKnown {
		m.recSince = now
	}
	m.rec, m.recKnown = next, true
}

// pressure is what the newest loads say about the task hub.
type pressure struct {
	backlog    int64 // work items + activities + unread input
	work       string
	left       string // work other than unread input (see computeRecommendation)
	timer      string
	active     string // a partition whose trend is not (long) idle
	unknown    string // a partition with no load yet
	nonIdle    int    // partitions with work, unknown load or recent activity
	hot        int    // partitions whose newest letter is H
	hotExample string
	// slow: some partition is not known to be fast: it had an M or H
	// period in its trend, or its trend is shorter than IdlePeriods, or it
	// has not reported.
	slow bool
}

func (m *Monitor) pressure(now time.Time, live int) pressure {
	var pr pressure
	for p := range m.parts {
		ps := &m.parts[p]
		if !ps.has {
			pr.nonIdle++
			pr.slow = true
			if pr.unknown == "" {
				pr.unknown = fmt.Sprintf("P%02d has reported no load yet", p)
			}
			continue
		}
		// While hosts live, a load counts only from a live host: one from a
		// host that stopped or died (or from the record a monitor resumed)
		// says nothing of the partition's new owner, which may not have
		// read its queue yet. With no live host, the last loads are all
		// there is (work left behind).
		if h := m.hosts[ps.from]; live > 0 && (h == nil || !m.live(h, now)) {
			pr.nonIdle++
			pr.slow = true
			if pr.unknown == "" {
				pr.unknown = fmt.Sprintf("P%02d has not reported from a live host yet", p)
			}
			continue
		}
		l := &ps.load
		pr.backlog += max(int64(l.WorkItems), 0) + max(int64(l.Activities), 0) + max(l.InputLag, 0)
		hasWork := l.WorkItems > 0 || l.Activities > 0 || l.InputLag > 0 || l.Outbox > 0
		if hasWork && pr.work == "" {
			pr.work = fmt.Sprintf("P%02d %s", p, describeWork(l.WorkItems, l.Activities, l.InputLag, l.Outbox))
		}
		if w := describeWork(l.WorkItems, l.Activities, 0, l.Outbox); w != "" && pr.left == "" {
			pr.left = fmt.Sprintf("P%02d %s", p, w)
		}
		if !l.NextTimer.IsZero() && l.NextTimer.Sub(now) <= m.cfg.TimerHorizon && pr.timer == "" {
			pr.timer = fmt.Sprintf("P%02d has a timer due at %s", p, l.NextTimer.UTC().Format(time.RFC3339))
		}
		idle := m.longIdle(l.Latency)
		if !idle && pr.active == "" {
			pr.active = fmt.Sprintf("P%02d was active recently (latency %s)", p, l.Latency)
		}
		if hasWork || !idle {
			pr.nonIdle++
		}
		if n := len(l.Latency); n >= 2 && l.Latency[n-1] == LetterHigh {
			pr.hot++
			if pr.hotExample == "" {
				pr.hotExample = fmt.Sprintf("P%02d: %s", p, l.Latency)
			}
		}
		if strings.ContainsAny(l.Latency, "MH") || (l.Latency != "" && len(l.Latency) < m.cfg.IdlePeriods) {
			pr.slow = true
		}
	}
	return pr
}

// longIdle: the newest IdlePeriods letters are all I. A partition that
// reports no trend at all (an empty string) is judged by its counts alone.
func (m *Monitor) longIdle(trend string) bool {
	if trend == "" {
		return true
	}
	k := m.cfg.IdlePeriods
	if len(trend) < k {
		return false
	}
	for i := len(trend) - k; i < len(trend); i++ {
		if trend[i] != LetterIdle {
			return false
		}
	}
	return true
}

func describeWork(workItems, activities int, inputLag int64, outbox int) string {
	switch {
	case activities > 0:
		return fmt.Sprintf("has %d activities pending", activities)
	case workItems > 0:
		return fmt.Sprintf("has %d work items pending", workItems)
	case inputLag > 0:
		return fmt.Sprintf("has %d unread input events", inputLag)
	case outbox > 0:
		return fmt.Sprintf("has %d unacknowledged outgoing messages", outbox)
	}
	return ""
}

// computeRecommendation applies the rules in order; immediate says the
// result skips the stabilisation delay (idle to 0, timer only to 1).
func (m *Monitor) computeRecommendation(live int, now time.Time) (Recommendation, bool) {
	n := len(m.parts)
	pr := m.pressure(now, live)
	busy := pr.work
	if busy == "" {
		busy = pr.unknown
	}
	if live == 0 {
		// With no live host, recent activity that left no work needs no
		// host: the hosts stopped, and their partitions exchange
		// acknowledgements as they do. Nor does unread input in the last
		// reports (acknowledgements again, or input a stopping partition
		// left for the next owner): Wake probes the queues from each
		// partition's InputPosition and tells work from the rest.
		left := pr.left
		if left == "" {
			left = pr.unknown
		}
		if left != "" {
			return Recommendation{Hosts: 1, Reason: "no live host, and " + left}, true
		}
		if pr.timer != "" {
			return Recommendation{Hosts: 1, Reason: pr.timer + ", and there is no other work"}, true
		}
		if busy != "" || pr.active != "" {
			return Recommendation{Hosts: 0, Reason: fmt.Sprintf("idle: no live host, no work left (unread input is for a probe of the queues) and no timer due within %v", m.cfg.TimerHorizon)}, true
		}
	}
	if busy == "" && pr.active == "" {
		if pr.timer == "" {
			return Recommendation{Hosts: 0, Reason: fmt.Sprintf("idle: no work and no timer due within %v", m.cfg.TimerHorizon)}, true
		}
		return Recommendation{Hosts: 1, Reason: pr.timer + ", and there is no other work"}, true
	}
	per := int64(m.cfg.BacklogPerHost)
	backlogWant := int((pr.backlog + per - 1) / per)
	if live < n {
		if pr.hot > live && pr.hot >= backlogWant {
			return Recommendation{Hosts: min(n, pr.hot),
				Reason: fmt.Sprintf("%d partitions have high latency (%s) on %s", pr.hot, pr.hotExample, hosts(live))}, false
		}
		if backlogWant > live {
			return Recommendation{Hosts: min(n, backlogWant),
				Reason: fmt.Sprintf("backlog of %d (work items, activities, unread input) needs %d hosts at %d each, %d live", pr.backlog, backlogWant, per, live)}, false
		}
	}
	if live > 1 {
		if pr.nonIdle < live {
			return Recommendation{Hosts: min(live-1, n),
				Reason: fmt.Sprintf("load fell: %d busy partitions for %s", pr.nonIdle, hosts(live))}, false
		}
		if !pr.slow && pr.backlog <= int64(live-1)*per/2 {
			return Recommendation{Hosts: min(live-1, n),
				Reason: fmt.Sprintf("load fell: latencies low for %d periods everywhere, backlog %d", m.cfg.IdlePeriods, pr.backlog)}, false
		}
	}
	hold := min(live, n)
	return Recommendation{Hosts: hold, Reason: fmt.Sprintf("enough with %s: backlog %d, %d partitions with high latency", hosts(hold), pr.backlog, pr.hot)}, false
}

func hosts(n int) string {
	if n == 1 {
		return "1 host"
	}
	return fmt.Sprintf("%d hosts", n)
}

// DefaultTimerHorizon is Config.TimerHorizon's default.
const DefaultTimerHorizon = time.Minute

// RecommendationAt is a stored record's recommendation as of now, for a
// reader that serves it while no monitor may be running (every host gone,
// say after the recommendation fell to 0): a timer that has come within
// horizon (DefaultTimerHorizon if 0) since the record was written asks for
// one host again. Otherwise it is the record's recommendation.
func (r *Record) RecommendationAt(now time.Time, horizon time.Duration) Recommendation {
	if horizon <= 0 {
		horizon = DefaultTimerHorizon
	}
	if r.Recommendation.Hosts > 0 {
		return r.Recommendation
	}
	for _, l := range r.Loads {
		if !l.NextTimer.IsZero() && l.NextTimer.Sub(now) <= horizon {
			return Recommendation{Hosts: 1, Reason: fmt.Sprintf("P%02d has a timer due at %s (stored load; no host runs)",
				l.Partition, l.NextTimer.UTC().Format(time.RFC3339))}
		}
	}
	return r.Recommendation
}
