package netherite

import (
	"testing"
	"time"

	"github.com/netherite-go/netherite/faster"
)

// Owner levels grow with every ownership, even when the next owner's
// clock is behind the previous owner's.
func TestNextOwnerLevel(t *testing.T) {
	meta := faster.NewMemoryMeta()
	now := time.Date(2026, 11, 30, 21, 0, 0, 0, time.UTC)
	a, err := nextOwnerLevel(meta, now)
	if err != nil || a != now.UnixNano() {
		t.Fatalf("first level %d (%v), want the time %d", a, err, now.UnixNano())
	}
	b, err := nextOwnerLevel(meta, now.Add(-time.Hour)) // a host whose clock is late
	if err != nil || b != a+1 {
		t.Fatalf("second level %d (%v), want %d", b, err, a+1)
	}
	c, err := nextOwnerLevel(meta, now.Add(time.Minute))
	if err != nil || c != now.Add(time.Minute).UnixNano() {
		t.Fatalf("third level %d (%v)", c, err)
	}
	if err := meta.WriteFile(ownerLevelDoc, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := nextOwnerLevel(meta, now); err == nil {
		t.Fatal("a corrupt owner level was accepted")
	}
}
