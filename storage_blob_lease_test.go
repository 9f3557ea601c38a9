package netherite

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
)

// giveUpAtGrant sends requests over HTTP; when the service grants the
// first lease acquire, it cancels the opener's context before the opener
// has the answer (as when the placement moves a partition away from an
// elastic host just as the previous owner released it).
type giveUpAtGrant struct {
	client *http.Client
	cancel context.CancelFunc
	fired  atomic.Bool
}

func (g *giveUpAtGrant) Do(req *http.Request) (*http.Response, error) {
	resp, err := g.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated || !isLeaseAcquire(req) || !g.fired.CompareAndSwap(false, true) {
		return resp, err
	}
	g.cancel()
	if err := req.Context().Err(); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

func isLeaseAcquire(r *http.Request) bool {
	for k, v := range r.Header {
		if strings.EqualFold(k, "x-ms-lease-action") && len(v) > 0 && v[0] == "acquire" {
			return true
		}
	}
	return false
}

// TestPartitionOpenCancelledAtGrantBlob: host A hands a partition over;
// host B, waiting for it, is told to stop waiting (its ctx is cancelled)
// just as the service grants B the lease; host C, where the partition is
// placed now, must get it at once, not when B's unseen lease expires (the
// 45 s outage of bench elastic on Azurite).
func TestPartitionOpenCancelledAtGrantBlob(t *testing.T) {
	t.Parallel()
	conn, hub := blobTestHub(t)
	sa, sc := openBlobHub(t, conn, hub, nil), openBlobHub(t, conn, hub, nil)
	bctx, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	g := &giveUpAtGrant{client: &http.Client{}, cancel: cancelB}
	sb := &blobStore{connection: conn, leaseDuration: testLease, acct: &blobstore.AccountOptions{Transport: g}}
	if _, err := sb.openTaskHub(context.Background(), hub, 1); err != nil {
		t.Fatal(err)
	}

	pa, err := openTestPartition(context.Background(), sa, false)
	if err != nil {
		t.Fatal(err)
	}
	b := make(chan error, 1)
	go func() {
		ps, err := openTestPartition(bctx, sb, true)
		if err == nil {
			ps.close()
		}
		b <- err
	}()
	time.Sleep(300 * time.Millisecond) // B waits (a few polls)
	closed := time.Now()
	if err := pa.close(); err != nil {
		t.Fatal(err)
	}
	if err := <-b; !errors.Is(err, context.Canceled) {
		t.Fatalf("B: %v; want context.Canceled", err)
	}
	if !g.fired.Load() {
		t.Fatal("B was never granted the lease")
	}
	// C (placed there now) gets it well before B's lease could expire.
	r := <-openPartitionAsync(sc, true, testLease/2)
	if r.err != nil {
		t.Fatalf("C: %v (B's given-up acquire left the lease held)", r.err)
	}
	defer r.v.close()
	t.Logf("C opened the partition %v after A closed it", r.at.Sub(closed))
}
