package netherite_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/eventhubs/emulator"
)

// The elastic hosts over Event Hubs while the network and the Event Hubs
// service misbehave: the test's own in-process emulator (its fault hooks,
// and a restart from its data directory, are in process only) drops and
// closes connections, detaches links, rejects sends and restarts, while
// two elastic hosts with a directory task hub run hello5 and bank
// transfers. Every acknowledged orchestration must complete exactly once
// and the bank total must be conserved.

const ehFaultPartitions = 6

// newEventHubsElasticHub is an elasticHub (elastic_test.go) whose hosts
// share an emulator started for the test (with its events on disk) and a
// directory.
func newEventHubsElasticHub(t *testing.T) (*elasticHub, *emulator.Emulator) {
	t.Cleanup(netherite.SetClientAttemptTimeout(2 * time.Second))
	em, err := emulator.Start(context.Background(), emulator.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Stop() }) // after the hosts stopped
	e := &elasticHub{t: t, dir: t.TempDir()}
	e.base = netherite.Options{Transport: em.ConnectionString, EventHubsAdminURL: em.AdminURL, EventHubsPrefix: "ehf-",
		Storage: e.dir, PartitionCount: ehFaultPartitions}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		var wg sync.WaitGroup
		for _, h := range e.all {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.Stop(context.Background())
			}()
		}
		wg.Wait()
	})
	return e, em
}

// TestEventHubsElasticFaults: two elastic hosts on the Event Hubs
// transport keep hello5 and bank transfers going, exactly once, through
// dropped and closed connections, detached links, rejected sends, an
// emulator restart, and a host leaving after it (its partitions reopen on
// the other host's clients).
func TestEventHubsElasticFaults(t *testing.T) {
	e, em := newEventHubsElasticHub(t)
	a, b := e.start("a"), e.start("b")
	hosts := []*netherite.Host{a, b}
	waitCounts(t, 20*time.Second, "two hosts", hosts, ehFaultPartitions/2, ehFaultPartitions/2)
	l := startLoad(t, e.client())

	// Each fault comes once the load acknowledged more orchestrations
	// since the last one: the load goes on between faults.
	const every = 25
	step := func(what string, fault func()) {
		t.Helper()
		want := l.count() + every
		deadline := time.Now().Add(30 * time.Second)
		for l.count() < want {
			if time.Now().After(deadline) {
				t.Fatalf("before %s: the load stalled at %d acknowledged orchestrations", what, l.count())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s at %d acknowledged; partitions running %v", what, l.count(), counts(hosts...))
		fault()
	}
	step("drop connections", func() { em.DropConnections() })
	step("detach links", func() { em.DetachLinks(nil, "") })
	step("reject sends", func() { em.RejectSends(5, "") })
	step("close connections", func() { em.CloseConnections("") })
	step("restart", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := em.Restart(ctx); err != nil {
			t.Fatal(err)
		}
	})
	// b leaves: a opens readers for b's partitions on clients that lived
	// through the restart.
	step("stop b", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		waitCounts(t, 10*time.Second, "b stopped", []*netherite.Host{a}, ehFaultPartitions)
	})
	step("detach links", func() { em.DetachLinks(nil, "") })
	step("drop connections", func() { em.DropConnections() })
	step("end of the faults", func() {})
	l.check(t)
	var retries, recvRetries, dups int64
	for _, h := range hosts {
		st, ok := h.EventHubsStats()
		if !ok {
			t.Fatalf("host %s has no Event Hubs transport", h.ID())
		}
		retries, recvRetries, dups = retries+st.SendRetries, recvRetries+st.ReceiveRetries, dups+st.Duplicates
	}
	t.Logf("hosts: %d send retries, %d receive retries, %d duplicates dropped", retries, recvRetries, dups)
	if retries == 0 {
		t.Errorf("no send was retried: the faults missed the hosts")
	}
}
