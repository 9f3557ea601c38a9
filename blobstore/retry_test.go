package blobstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/netherite-go/netherite/blobstore"
	"github.com/netherite-go/netherite/blobstore/blobtest"
)

// fakeTransport answers every request itself: Put Page with a status
// chosen by putPage (by attempt number), everything else with success.
type fakeTransport struct {
	mu       sync.Mutex
	putPages int
	reads    int
	putPage  func(n int) int // status of the nth Put Page
	read     func(n int) int
}

func (f *fakeTransport) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	status := http.StatusCreated
	switch {
	case req.Method == http.MethodPut && req.URL.Query().Get("comp") == "page":
		f.putPages++
		status = f.putPage(f.putPages)
	case req.Method == http.MethodGet:
		f.reads++
		status = f.read(f.reads)
	}
	h := http.Header{}
	h.Set("ETag", fmt.Sprintf(`"0x%d"`, f.putPages))
	h.Set("x-ms-request-id", "fake")
	body := ""
	if status >= 400 {
		code := "ServerBusy"
		if status == http.StatusInternalServerError {
			code = "InternalError"
		}
		h.Set("x-ms-error-code", code)
		h.Set("Content-Type", "application/xml")
		body = fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, code)
	} else if req.Method == http.MethodGet {
		h.Set("Content-Length", "512")
		body = string(make([]byte, 512))
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req, ContentLength: int64(len(body))}, nil
}

func writeSync(d *blobstore.PageBlobDevice, addr int64, p []byte) error {
	ch := make(chan error, 1)
	d.WriteAsync(addr, p, func(err error) { ch <- err })
	return <-ch
}

func readSync(d *blobstore.PageBlobDevice, addr int64, p []byte) error {
	ch := make(chan error, 1)
	d.ReadAsync(addr, p, func(err error) { ch <- err })
	return <-ch
}

// TestRetriesGiveUp: a service that answers 503 to every Put Page gets
// exactly MaxAttempts of them, with growing delays, and then a clear
// error naming the blob, the address and the last error.
func TestRetriesGiveUp(t *testing.T) {
	ft := &fakeTransport{putPage: func(int) int { return http.StatusServiceUnavailable }, read: func(int) int { return http.StatusInternalServerError }}
	a, err := blobstore.NewAccount("UseDevelopmentStorage=true", blobstore.AccountOptions{
		Transport: ft,
		Retry:     blobstore.RetryOptions{MaxAttempts: 5, InitialDelay: 20 * time.Millisecond, MaxDelay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := blobstore.NewPageBlobDevice(a.Container("c1"), "p00/commit-log/commit-log", blobstore.DeviceOptions{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = writeSync(d, 3<<20+4096, make([]byte, 1024))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("write succeeded against a service answering 503")
	}
	msg := err.Error()
	for _, want := range []string{"c1/p00/commit-log/commit-log.000003", "address 3149824", "length 1024", "gave up after 5 attempts", "last error: HTTP 503 ServerBusy"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Count(msg, "\n") > 0 {
		t.Errorf("error spans lines: %q", msg)
	}
	if ft.putPages != 5 {
		t.Errorf("%d Put Page attempts; want 5", ft.putPages)
	}
	// Delays 20, 40, 80, 160 ms with jitter in [d/2, d]: at least 150 ms.
	if elapsed < 150*time.Millisecond {
		t.Errorf("gave up after %v: no backoff", elapsed)
	}
	t.Logf("error after %v: %v", elapsed, err)

	err = readSync(d, 0, make([]byte, 512))
	if err == nil || !strings.Contains(err.Error(), "gave up after 5 attempts") || !strings.Contains(err.Error(), "HTTP 500 InternalError") ||
		!strings.Contains(err.Error(), "read at address 0") {
		t.Errorf("read error %v", err)
	}
}

// TestRetriesRecover: two 503s, then success.
func TestRetriesRecover(t *testing.T) {
	ft := &fakeTransport{putPage: func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusCreated
	}, read: func(int) int { return http.StatusOK }}
	a, err := blobstore.NewAccount("UseDevelopmentStorage=true", blobstore.AccountOptions{
		Transport: ft, Retry: blobstore.RetryOptions{MaxAttempts: 3, InitialDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := blobstore.NewPageBlobDevice(a.Container("c1"), "dev", blobstore.DeviceOptions{SegmentSize: 1 << 20})
	if err := writeSync(d, 0, make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	if ft.putPages != 3 {
		t.Fatalf("%d Put Page attempts", ft.putPages)
	}
}

// faultPolicy fails every other request that matches, up to a number,
// with 503 before it reaches the service.
type faultPolicy struct {
	match func(*http.Request) bool
	seen  atomic.Int64
	left  atomic.Int64
	hits  atomic.Int64
}

func (f *faultPolicy) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if f.match(r) && f.seen.Add(1)%2 == 1 && f.left.Add(-1) >= 0 {
		f.hits.Add(1)
		h := http.Header{}
		h.Set("x-ms-error-code", "ServerBusy")
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: h, Request: r,
			Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	return req.Next()
}

// TestRetriesAgainstAzurite injects 503s in front of Azurite: writes and
// reads still succeed, the data is intact.
func TestRetriesAgainstAzurite(t *testing.T) {
	t.Parallel()
	fp := &faultPolicy{match: func(r *http.Request) bool {
		q := r.URL.Query()
		return r.Method == http.MethodPut && q.Get("comp") == "page" || r.Method == http.MethodGet && q.Get("comp") == ""
	}}
	fp.left.Store(6)
	a := blobtest.Account(t, blobstore.AccountOptions{PerCallPolicies: []policy.Policy{fp},
		Retry: blobstore.RetryOptions{MaxAttempts: 4, InitialDelay: time.Millisecond}})
	c := blobtest.Container(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := blobstore.AcquireLease(ctx, c, "p00/commit-lease", blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	d, _ := blobstore.NewPageBlobDevice(c, "p00/dev", blobstore.DeviceOptions{SegmentSize: 1 << 20, Lease: l})
	p := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for i := range 3 {
		if err := writeSync(d, int64(i)*int64(len(p)), p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		q := make([]byte, len(p))
		if err := readSync(d, int64(i)*int64(len(p)), q); err != nil || !bytes.Equal(p, q) {
			t.Fatalf("read back %d: %v", i, err)
		}
	}
	if fp.hits.Load() != 6 {
		t.Fatalf("%d faults injected", fp.hits.Load())
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	if n := a.Requests(); n < 10 {
		t.Fatalf("Requests() = %d", n)
	}
}

// lostResponsePolicy lets the first n matching requests reach the service
// and then reports a 500 to the client, as when a response is lost: the
// write was applied, the client does not know.
type lostResponsePolicy struct {
	match func(*http.Request) bool
	left  atomic.Int64
}

func (f *lostResponsePolicy) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err == nil && f.match(req.Raw()) && f.left.Add(-1) >= 0 {
		h := http.Header{}
		h.Set("x-ms-error-code", "InternalError")
		return &http.Response{StatusCode: http.StatusInternalServerError, Header: h, Request: req.Raw(),
			Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	return resp, err
}

// TestAmbiguousRetries: a conditioned write whose response is lost is
// retried; the retry fails its ETag condition (the first attempt changed
// the ETag), the data is read back, found written, and the write
// succeeds without declaring a conflict.
func TestAmbiguousRetries(t *testing.T) {
	t.Parallel()
	lp := &lostResponsePolicy{match: func(r *http.Request) bool {
		q := r.URL.Query()
		return r.Method == http.MethodPut && (q.Get("comp") == "page" || q.Get("comp") == "" && strings.HasSuffix(r.URL.Path, "/doc"))
	}}
	a := blobtest.Account(t, blobstore.AccountOptions{PerCallPolicies: []policy.Policy{lp},
		Retry: blobstore.RetryOptions{InitialDelay: time.Millisecond}})
	c := blobtest.Container(t, a)
	l, err := blobstore.AcquireLease(context.Background(), c, "p/commit-lease", blobstore.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	d, _ := blobstore.NewPageBlobDevice(c, "p/dev", blobstore.DeviceOptions{SegmentSize: 1 << 20, Lease: l})
	m, _ := blobstore.NewBlobMeta(c, "p/", blobstore.MetaOptions{Lease: l})
	mustWrite(t, d, 0, pattern(1, 1024))
	if err := m.WriteFile("doc", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	lp.left.Store(2) // the next Put Page and Put Blob lose their responses
	p := pattern(2, 2048)
	mustWrite(t, d, 512, p)
	if err := m.WriteFile("doc", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("a lost response was taken for a conflict: %v", err)
	}
	// The chain of ETags goes on.
	q := pattern(3, 512)
	mustWrite(t, d, 4096, q)
	if err := m.WriteFile("doc", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, d, 512, 2048); !bytes.Equal(got, p) {
		t.Fatal("read back differs")
	}
	if got, err := m.ReadFile("doc"); err != nil || string(got) != "v3" {
		t.Fatalf("doc %q, %v", got, err)
	}
	if lp.left.Load() > 0 {
		t.Fatal("no response was lost")
	}
}
