// Package storagecount counts the requests a backend makes to Azure
// Storage, by service and kind (blob read, queue write, table read...),
// with an azcore pipeline policy. Benchmarks divide the counts by the
// orchestration steps of a workload, so that engines with different
// designs can be compared on the storage work they need.
package storagecount

import (
	"net/http"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Service is the storage service a pipeline talks to. The endpoint alone
// does not tell it (Azurite serves each service on its own port under the
// same path style), so the creator of the pipeline says which.
type Service string

// The services.
const (
	Blob  Service = "blob"
	Queue Service = "queue"
	Table Service = "table"
)

// Kinds of request. A kind is "<service> <op>" with op read, write,
// lease (blob leases: acquire, renew, release, break) or other.
const (
	opRead  = "read"
	opWrite = "write"
	opLease = "lease"
	opOther = "other"
)

var services = []Service{Blob, Queue, Table}
var ops = []string{opRead, opWrite, opLease, opOther}

// Counter counts requests by kind. The zero value is ready; it is safe
// for concurrent use.
type Counter struct {
	n [3][4]atomic.Int64
}

// Policy returns a per-call policy that counts every request attempt the
// pipeline sends to service s (retries count: each is a request the
// service serves).
func (c *Counter) Policy(s Service) policy.Policy { return countPolicy{c: c, s: serviceIndex(s)} }

type countPolicy struct {
	c *Counter
	s int
}

func (p countPolicy) Do(req *policy.Request) (*http.Response, error) {
	p.c.n[p.s][opIndex(Classify(services[p.s], req.Raw()))].Add(1)
	return req.Next()
}

// Add counts one request of service s and op ("read", "write", "lease",
// anything else counts as "other"), for requests that do not go through
// a pipeline with Policy.
func (c *Counter) Add(s Service, op string) { c.n[serviceIndex(s)][opIndex(op)].Add(1) }

// Total is the number of requests counted.
func (c *Counter) Total() int64 {
	var t int64
	for i := range c.n {
		for j := range c.n[i] {
			t += c.n[i][j].Load()
		}
	}
	return t
}

// ByKind returns the non-zero counts by kind ("blob read", ...).
func (c *Counter) ByKind() map[string]int64 {
	m := map[string]int64{}
	for i, s := range services {
		for j, op := range ops {
			if v := c.n[i][j].Load(); v > 0 {
				m[string(s)+" "+op] = v
			}
		}
	}
	return m
}

// Kinds returns the kinds of m in a stable order: by service, then read,
// write, lease, other.
func Kinds(m map[string]int64) []string {
	rank := func(k string) int {
		for i, s := range services {
			for j, op := range ops {
				if k == string(s)+" "+op {
					return i*len(ops) + j
				}
			}
		}
		return len(services) * len(ops)
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(a, b int) bool {
		ra, rb := rank(ks[a]), rank(ks[b])
		if ra != rb {
			return ra < rb
		}
		return ks[a] < ks[b]
	})
	return ks
}

// Classify names the op of a request to service s: "read" for requests
// that only read (GET, HEAD, listings, peeks, queue dequeues are reads
// of the queue even though they hide the message), "lease" for blob
// lease operations, "write" for the rest that change state.
func Classify(s Service, r *http.Request) string {
	comp := r.URL.Query().Get("comp")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return opRead
	case http.MethodPut:
		if s == Blob && comp == "lease" {
			return opLease
		}
		return opWrite
	case http.MethodPost, http.MethodDelete, http.MethodPatch, "MERGE":
		return opWrite
	}
	return opOther
}

func serviceIndex(s Service) int {
	for i, x := range services {
		if x == s {
			return i
		}
	}
	return 0
}

func opIndex(op string) int {
	switch strings.ToLower(op) {
	case opRead:
		return 0
	case opWrite:
		return 1
	case opLease:
		return 2
	}
	return 3
}
