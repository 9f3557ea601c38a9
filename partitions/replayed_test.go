package partitions

import "testing"

// Replayed counts only the log after the checkpoint: 20 of 60 events.
func TestStoreReplayedCountsLogAfterCheckpoint(t *testing.T) {
	f := newStoreFixture(t)
	s, err := f.open()
	if err != nil {
		t.Fatal(err)
	}
	all := entries(0, 60)
	if err := s.Append(all[:40]); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(reference(all[:40]))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCheckpoint(snap, 40, 40, s.Mark()); err != nil {
		t.Fatal(err)
	}
	before := s.LogBytes()
	if err := s.Append(all[40:]); err != nil {
		t.Fatal(err)
	}
	suffix := s.LogBytes() - before
	if s, err = f.open(); err != nil {
		t.Fatal(err)
	}
	if ev, b := s.Replayed(); ev != 0 || b != 0 {
		t.Fatalf("replayed before recovery: %d events, %d bytes", ev, b)
	}
	mustRecover(t, s)
	if ev, b := s.Replayed(); ev != 20 || b != suffix {
		t.Fatalf("replayed %d events, %d bytes; want 20 events, %d bytes", ev, b, suffix)
	}
}
