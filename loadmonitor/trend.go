package loadmonitor

import "time"

// The latency trend letters a partition reports (transport.PartitionLoad.
// Latency), one per report period, oldest first, at most TrendLength of
// them. See doc/scaling.md.
const (
	// LetterIdle: the partition processed nothing and had nothing waiting
	// during the period.
	LetterIdle = 'I'
	// LetterLow: the longest wait of a work item, activity or request
	// during the period was below MediumWait.
	LetterLow = 'L'
	// LetterMedium: the longest wait was at least MediumWait, below
	// HighWait.
	LetterMedium = 'M'
	// LetterHigh: something waited HighWait or longer.
	LetterHigh = 'H'
)

// The thresholds of the letters, and how many periods a trend keeps.
const (
	MediumWait  = 100 * time.Millisecond
	HighWait    = time.Second
	TrendLength = 5
)

// Letter is the trend letter of one report period: busy says whether the
// partition processed or held any work during it, maxWait is the longest
// time a work item, activity or request waited before it started.
func Letter(busy bool, maxWait time.Duration) byte {
	switch {
	case !busy && maxWait == 0:
		return LetterIdle
	case maxWait < MediumWait:
		return LetterLow
	case maxWait < HighWait:
		return LetterMedium
	default:
		return LetterHigh
	}
}

// PushTrend appends a period's letter to a trend, dropping the oldest
// beyond TrendLength.
func PushTrend(trend string, letter byte) string {
	trend += string(rune(letter))
	if len(trend) > TrendLength {
		trend = trend[len(trend)-TrendLength:]
	}
	return trend
}

func letterRank(c byte) int {
	switch c {
	case LetterLow:
		return 1
	case LetterMedium:
		return 2
	case LetterHigh:
		return 3
	}
	return 0
}
