package faster

import (
	"math/bits"
	"time"
)

// CommitStats describe a commit log's commits since it was opened.
type CommitStats struct {
	Commits    int64 // commits that wrote data (one device write and one flush each)
	Bytes      int64 // bytes the commits wrote (whole sectors)
	MetaWrites int64 // metadata document writes (open, segment switches, truncations; with MetaCommits every commit)
	// Sync is the time of each commit's device flush (fdatasync on
	// files); Commit the time of each whole commit, from its write to its
	// end (with MetaCommits including the metadata write).
	Sync   LatencyHistogram
	Commit LatencyHistogram
}

// Merge adds o's counts to s (to sum the logs of several partitions).
func (s *CommitStats) Merge(o CommitStats) {
	s.Commits += o.Commits
	s.Bytes += o.Bytes
	s.MetaWrites += o.MetaWrites
	s.Sync.Merge(o.Sync)
	s.Commit.Merge(o.Commit)
}

// CommitStats returns the log's commit statistics.
func (l *Log) CommitStats() CommitStats {
	l.statsMu.Lock()
	defer l.statsMu.Unlock()
	return l.stats
}

// latBuckets: four buckets per power of two of nanoseconds.
const latBuckets = 256

// LatencyHistogram counts durations in buckets a quarter of a power of
// two wide (quantiles are accurate to within 19%). The zero value is
// empty.
type LatencyHistogram struct {
	Buckets [latBuckets]int64
	Max     time.Duration
	Sum     time.Duration
}

func latBucket(d time.Duration) int {
	ns := uint64(max(d, 0))
	if ns < 4 {
		return int(ns)
	}
	n := bits.Len64(ns)  // >= 3
	top := ns >> (n - 3) // 4..7
	return (n-2)*4 + int(top-4)
}

// latUpper is the upper bound of bucket i.
func latUpper(i int) time.Duration {
	if i < 4 {
		return time.Duration(i + 1)
	}
	n := i/4 + 2
	top := uint64(i%4 + 5)
	return time.Duration(top << (n - 3))
}

// Add counts one duration.
func (h *LatencyHistogram) Add(d time.Duration) {
	h.Buckets[latBucket(d)]++
	h.Max = max(h.Max, d)
	h.Sum += d
}

// Merge adds o's counts to h.
func (h *LatencyHistogram) Merge(o LatencyHistogram) {
	for i, c := range o.Buckets {
		h.Buckets[i] += c
	}
	h.Max = max(h.Max, o.Max)
	h.Sum += o.Sum
}

// Count returns the number of durations counted.
func (h *LatencyHistogram) Count() int64 {
	var n int64
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0 < q <= 1), at most Max; 0 if empty.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen int64
	for i, c := range h.Buckets {
		seen += c
		if seen >= rank {
			return min(latUpper(i), h.Max)
		}
	}
	return h.Max
}

// Mean returns the average duration; 0 if empty.
func (h *LatencyHistogram) Mean() time.Duration {
	if n := h.Count(); n > 0 {
		return h.Sum / time.Duration(n)
	}
	return 0
}
