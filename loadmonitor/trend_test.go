package loadmonitor

import (
	"testing"
	"time"

	"github.com/netherite-go/netherite/partitions"
)

// The partitions compute the letters the monitor reads: their thresholds
// must be the ones doc/scaling.md (and this package) state.
func TestTrendAgreesWithPartitions(t *testing.T) {
	if partitions.LatencyLow != MediumWait || partitions.LatencyHigh != HighWait || partitions.LatencyTrendLen != TrendLength {
		t.Fatalf("partitions: low %v high %v length %d; loadmonitor: medium %v high %v length %d",
			partitions.LatencyLow, partitions.LatencyHigh, partitions.LatencyTrendLen, MediumWait, HighWait, TrendLength)
	}
	for _, c := range []struct {
		wait   string
		letter byte
	}{{"0s", LetterLow}, {"99ms", LetterLow}, {"100ms", LetterMedium}, {"999ms", LetterMedium}, {"1s", LetterHigh}} {
		d, _ := time.ParseDuration(c.wait)
		if got := partitions.LatencyLetter(d); got != c.letter {
			t.Errorf("partitions.LatencyLetter(%s) = %c, want %c", c.wait, got, c.letter)
		}
	}
}
