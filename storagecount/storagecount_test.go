package storagecount

import (
	"context"
	"net/http"
	"reflect"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		s           Service
		method, url string
		want        string
	}{
		{Blob, "GET", "http://127.0.0.1:10000/acct/c/b", "read"},
		{Blob, "HEAD", "http://127.0.0.1:10000/acct/c/b", "read"},
		{Blob, "GET", "http://127.0.0.1:10000/acct/c?restype=container&comp=list", "read"},
		{Blob, "PUT", "http://127.0.0.1:10000/acct/c/b?comp=lease", "lease"},
		{Blob, "PUT", "http://127.0.0.1:10000/acct/c/b?comp=block&blockid=x", "write"},
		{Blob, "DELETE", "http://127.0.0.1:10000/acct/c/b", "write"},
		{Queue, "GET", "http://127.0.0.1:10001/acct/q/messages?numofmessages=32", "read"},
		{Queue, "POST", "http://127.0.0.1:10001/acct/q/messages", "write"},
		{Queue, "PUT", "http://127.0.0.1:10001/acct/q?comp=lease", "write"}, // only blobs have leases
		{Table, "MERGE", "http://127.0.0.1:10002/acct/t(PartitionKey='a',RowKey='b')", "write"},
		{Table, "OPTIONS", "http://127.0.0.1:10002/acct/t", "other"},
	} {
		r, err := http.NewRequest(c.method, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := Classify(c.s, r); got != c.want {
			t.Errorf("%s %s %s: %s, want %s", c.s, c.method, c.url, got, c.want)
		}
	}
}

// fakeTransport answers every request with 200.
type fakeTransport struct{}

func (fakeTransport) Do(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func TestPolicyCountsByKind(t *testing.T) {
	var c Counter
	pl := runtime.NewPipeline("test", "v1", runtime.PipelineOptions{}, &policy.ClientOptions{
		Transport: fakeTransport{}, PerCallPolicies: []policy.Policy{c.Policy(Queue)}, Retry: policy.RetryOptions{MaxRetries: -1}})
	send := func(method, url string) {
		req, err := runtime.NewRequest(context.Background(), method, url)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := pl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send("GET", "http://q/acct/q/messages")
			send("DELETE", "http://q/acct/q/messages/1?popreceipt=x")
		}()
	}
	wg.Wait()
	c.Add(Blob, "lease")
	want := map[string]int64{"queue read": 10, "queue write": 10, "blob lease": 1}
	if got := c.ByKind(); !reflect.DeepEqual(got, want) {
		t.Errorf("ByKind = %v, want %v", got, want)
	}
	if c.Total() != 21 {
		t.Errorf("Total = %d, want 21", c.Total())
	}
	if got, want := Kinds(map[string]int64{"table write": 1, "blob lease": 1, "blob read": 1, "queue read": 1, "zzz": 1}),
		[]string{"blob read", "blob lease", "queue read", "table write", "zzz"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Kinds = %v, want %v", got, want)
	}
}
