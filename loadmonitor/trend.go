package loadmonitor

import "time"

// The latency trend letters a partition reports (transport.PartitionLoad.
// Latency), one per report period, oldest first, at most TrendLength of
// them; the partitions compute them (partitions.LoadSample). See
// doc/scaling.md.
const (
	// LetterIdle: the partition processed nothing and nothing waited
	// during the period.
	LetterIdle = 'I'
	// LetterLow: the longest wait of the period was below MediumWait.
	LetterLow = 'L'
	// LetterMedium: the longest wait was at least MediumWait, below
	// HighWait.
	LetterMedium = 'M'
	// LetterHigh: something waited HighWait or longer.
	LetterHigh = 'H'
)

// The thresholds of the letters (the partitions' LatencyLow and
// LatencyHigh), and how many periods a trend shows.
const (
	MediumWait  = 100 * time.Millisecond
	HighWait    = time.Second
	TrendLength = 5
)
