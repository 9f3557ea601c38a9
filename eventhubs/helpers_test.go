package eventhubs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
	"github.com/netherite-go/netherite/transport"
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("EH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func randomPrefix(t testing.TB) string {
	var r [4]byte
	rand.Read(r[:])
	return "t" + hex.EncodeToString(r[:]) + "-"
}

// newHubs creates a task hub's hubs on the emulator, deleted at the end.
func newHubs(t testing.TB, tg emulatortest.Target, partitions int) string {
	t.Helper()
	m, err := NewManagement(tg.ConnectionString, tg.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	prefix := randomPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreateHubs(ctx, m, prefix, partitions); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := DeleteHubs(ctx, m, prefix); err != nil {
			t.Errorf("deleting the hubs: %v", err)
		}
	})
	return prefix
}

func openTransport(t testing.TB, conn, prefix, hubID string, partitions int, mod func(*Options)) *Transport {
	t.Helper()
	o := Options{Connection: conn, HubPrefix: prefix, TaskHubID: hubID, PartitionCount: partitions, Logger: testLogger(t)}
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

type positioned struct {
	pk  *transport.Packet
	pos uint64 // the position of the packet
}

// receiveN reads n packets of a partition from a position, checking that
// each call's positions follow the interface's rules.
func receiveN(t testing.TB, tr *Transport, p int, from uint64, n int) ([]positioned, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []positioned
	for len(out) < n {
		pks, next, err := tr.ReceivePartition(ctx, p, from)
		if err != nil {
			t.Fatalf("receive partition %d at %d after %d of %d packets: %v", p, from, len(out), n, err)
		}
		if next < from+uint64(len(pks)) {
			t.Fatalf("receive at %d: %d packets but next is %d", from, len(pks), next)
		}
		for i, pk := range pks {
			out = append(out, positioned{pk, from + uint64(i)})
		}
		from = next
	}
	if len(out) > n {
		t.Fatalf("received %d packets, want %d", len(out), n)
	}
	return out, from
}

// expectNothing checks that nothing more arrives within a short time.
func expectNothing(t testing.TB, tr *Transport, p int, from uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		pks, next, err := tr.ReceivePartition(ctx, p, from)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			t.Fatalf("receive: %v", err)
		}
		if len(pks) > 0 {
			t.Fatalf("unexpected packets at %d: %d (first %+v)", from, len(pks), pks[0])
		}
		from = next
	}
}

func ackPacket(from int, upTo uint64) *transport.Packet {
	return &transport.Packet{Ack: &transport.Ack{From: from, UpTo: upTo}}
}
