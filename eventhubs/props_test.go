package eventhubs

import (
	"context"
	"testing"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator"
)

// TestPropertiesAfterRestart: after the service restarts, a partition's
// reader can reopen (its properties are read again) and a new client can
// listen: the SDK's management link of a client used before the restart
// can stay broken, so properties are read through a client rebuilt after
// a failure.
func TestPropertiesAfterRestart(t *testing.T) {
	e, err := emulator.Start(context.Background(), emulator.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	m, err := NewManagement(e.ConnectionString, e.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreateHubs(ctx, m, "pr-", 2); err != nil {
		t.Fatal(err)
	}
	tr := openTransport(t, e.ConnectionString, "pr-", hubID, 2, func(o *Options) { o.OwnerLevel = 1 })
	for i := 1; i <= 3; i++ {
		if err := tr.SendToPartition(0, ackPacket(0, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	_, end := receiveN(t, tr, 0, 0, 3) // reads the properties once
	if err := e.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.SendToPartition(0, ackPacket(0, 4)); err != nil {
		t.Fatal(err)
	}
	// Reading from the start again reopens the reader; the first tries
	// may fail while the clients reconnect (the runtime retries too).
	var got []uint64
	var last error
	fails := 0
	for from, deadline := uint64(0), time.Now().Add(15*time.Second); len(got) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %d packets read again in 15 s, %d failures, the last: %v", len(got), fails, last)
		}
		pks, next, err := tr.ReceivePartition(ctx, 0, from)
		if err != nil {
			fails, last = fails+1, err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for _, p := range pks {
			got = append(got, p.Ack.UpTo)
		}
		from = next
	}
	for i, v := range got {
		if v != uint64(i+1) {
			t.Fatalf("read again: %v", got)
		}
	}
	t.Logf("read again after %d failures (first position %d)", fails, end)
	var lerr error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, stop, err := tr.ListenClient("after-restart")
		if err == nil {
			stop()
			break
		}
		if lerr = err; time.Now().After(deadline) {
			t.Fatalf("listen after the restart: %v", lerr)
		}
	}
}
