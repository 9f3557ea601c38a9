package blobstore_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
)

// grantThenGiveUp lets the first Acquire Lease request reach the service
// and, once the service has granted the lease, makes the caller give up
// (cancel) before the client has the answer: as when an elastic host's
// waiting acquire is cancelled because the placement moved the partition
// away, just as the previous owner let it go.
type grantThenGiveUp struct {
	cancel context.CancelFunc
	// lost: the answer itself is lost too (a connection reset), whether or
	// not the request's context still runs.
	lost  bool
	fired atomic.Bool
}

func (g *grantThenGiveUp) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err != nil || leaseAction(req.Raw()) != "acquire" || resp.StatusCode != http.StatusCreated ||
		!g.fired.CompareAndSwap(false, true) {
		return resp, err
	}
	g.cancel()
	if g.lost {
		resp.Body.Close()
		return nil, errors.New("read tcp: connection reset by peer")
	}
	if err := req.Raw().Context().Err(); err != nil {
		// What the HTTP client reports when the request's context ends
		// before the response has been read.
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// TestLeaseAcquireGivenUpAfterGrant: an acquire whose caller gives up
// while the service grants the lease returns an error and leaves no lease
// behind: the next owner gets it at once, not when it expires.
func TestLeaseAcquireGivenUpAfterGrant(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lost bool
	}{{"answer on its way", false}, {"answer lost", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g := &grantThenGiveUp{cancel: cancel, lost: tc.lost}
			a := blobtest.Account(t, blobstore.AccountOptions{PerCallPolicies: []policy.Policy{g}})
			c := blobtest.Container(t, a)
			const name = "hub/p00/commit-lease"
			opts := blobstore.LeaseOptions{Duration: 15 * time.Second, PollEvery: 100 * time.Millisecond}
			l, err := blobstore.AcquireLease(ctx, c, name, opts)
			if !g.fired.Load() {
				t.Fatal("no acquire reached the service")
			}
			if err == nil {
				l.Release()
				t.Fatal("acquire succeeded although its caller gave up")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("acquire: %v; want context.Canceled", err)
			}

			// Another owner (no fault) gets the lease within a few polls,
			// not after the 15 s expiry of a lease nobody holds.
			c2 := blobtest.Account(t).Container(c.Name())
			wait, cancelWait := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelWait()
			start := time.Now()
			l2, err := blobstore.AcquireLease(wait, c2, name, opts)
			if err != nil {
				t.Fatalf("next owner: %v (the given-up acquire left the lease held)", err)
			}
			defer l2.Release()
			t.Logf("next owner acquired after %v", time.Since(start))
		})
	}
}

// leaseAction returns the x-ms-lease-action of a request (the SDK sets
// the header under its lower-case name).
func leaseAction(r *http.Request) string {
	for k, v := range r.Header {
		if strings.EqualFold(k, "x-ms-lease-action") && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// hangAcquire makes Acquire Lease requests hang (never reaching the
// service) until their context ends; the first one makes the caller give
// up.
type hangAcquire struct {
	cancel context.CancelFunc
	fired  atomic.Bool
}

func (h *hangAcquire) Do(req *policy.Request) (*http.Response, error) {
	if leaseAction(req.Raw()) != "acquire" {
		return req.Next()
	}
	if h.fired.CompareAndSwap(false, true) {
		h.cancel()
	}
	<-req.Raw().Context().Done()
	return nil, req.Raw().Context().Err()
}

// TestLeaseAcquireGivenUpNoAnswer: an acquire whose request gets no answer
// after its caller gave up returns within AcquireGrace (plus the release
// of a lease it may have been granted), and the lease stays free.
func TestLeaseAcquireGivenUpNoAnswer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &hangAcquire{cancel: cancel}
	a := blobtest.Account(t, blobstore.AccountOptions{PerCallPolicies: []policy.Policy{h}})
	c := blobtest.Container(t, a)
	const name = "hub/p00/commit-lease"
	opts := blobstore.LeaseOptions{Duration: 15 * time.Second}
	start := time.Now()
	_, err := blobstore.AcquireLease(ctx, c, name, opts)
	took := time.Since(start)
	if !h.fired.Load() || !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire: %v (fired %v); want context.Canceled", err, h.fired.Load())
	}
	t.Logf("gave up after %v: %v", took, err)
	if took < blobstore.AcquireGrace || took > blobstore.AcquireGrace+10*time.Second {
		t.Fatalf("gave up after %v; want the grace %v and at most a release more", took, blobstore.AcquireGrace)
	}
	c2 := blobtest.Account(t).Container(c.Name())
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	l, err := blobstore.AcquireLease(short, c2, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}
