package azstorage

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
)

// The well-known Azurite development account (public, documented by
// Microsoft).
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// endpoints is a parsed connection string.
type endpoints struct {
	account, key       string
	blob, queue, table string
}

// parseConnection parses an Azure Storage connection string (or
// "UseDevelopmentStorage=true") into the three service endpoints and the
// shared key. Errors never quote the key.
func parseConnection(s string) (*endpoints, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("azstorage: empty storage connection string (want an Azure Storage connection string or UseDevelopmentStorage=true)")
	}
	if !strings.Contains(s, "=") {
		return nil, fmt.Errorf("azstorage: storage %q is not a connection string: the Azure Storage backend needs an Azure Storage account "+
			"(a connection string with AccountName and AccountKey, or UseDevelopmentStorage=true for Azurite)", s)
	}
	kv := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("azstorage: connection string: part without '=' (%d characters)", len(part))
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	e := &endpoints{}
	if v, ok := kv["usedevelopmentstorage"]; ok {
		if !strings.EqualFold(v, "true") {
			return nil, fmt.Errorf("azstorage: connection string: UseDevelopmentStorage must be true, not %q", v)
		}
		host := "http://127.0.0.1"
		if p := kv["developmentstorageproxyuri"]; p != "" {
			host = strings.TrimRight(p, "/")
		}
		e.account, e.key = devAccount, devKey
		e.blob = host + ":10000/" + devAccount
		e.queue = host + ":10001/" + devAccount
		e.table = host + ":10002/" + devAccount
		return e, nil
	}
	e.account, e.key = kv["accountname"], kv["accountkey"]
	if e.account == "" || e.key == "" {
		return nil, errors.New("azstorage: connection string needs AccountName and AccountKey (SAS-only connection strings are not supported)")
	}
	proto := kv["defaultendpointsprotocol"]
	if proto == "" {
		proto = "https"
	}
	suffix := kv["endpointsuffix"]
	if suffix == "" {
		suffix = "core.windows.net"
	}
	def := func(svc string) string { return fmt.Sprintf("%s://%s.%s.%s", proto, e.account, svc, suffix) }
	pick := func(key, svc string) string {
		if v := kv[key]; v != "" {
			return strings.TrimRight(v, "/")
		}
		return def(svc)
	}
	e.blob, e.queue, e.table = pick("blobendpoint", "blob"), pick("queueendpoint", "queue"), pick("tableendpoint", "table")
	if _, hasBlob := kv["blobendpoint"]; hasBlob {
		// A connection string that names endpoints (Azurite's) must name
		// all three: guessing the others would talk to a real account.
		for _, k := range []string{"queueendpoint", "tableendpoint"} {
			if kv[k] == "" {
				return nil, fmt.Errorf("azstorage: connection string names BlobEndpoint but not %s; the Azure Storage backend needs "+
					"the queue and table services too (for Azurite: scripts/azurite/start.sh prints all three)", map[string]string{
					"queueendpoint": "QueueEndpoint", "tableendpoint": "TableEndpoint"}[k])
			}
		}
	}
	return e, nil
}

// Request kinds counted by Stats.
type kind int

const (
	queueRead kind = iota
	queueWrite
	tableRead
	tableWrite
	blobRead
	blobWrite
	kindCount
)

// counters counts HTTP requests (attempts) by service and direction.
type counters [kindCount]atomic.Int64

// countPolicy counts every attempt of one service's requests: GET and HEAD
// are reads, everything else writes. A queue dequeue is a GET and counts
// as a read; a table batch is one write.
type countPolicy struct {
	c           *counters
	read, write kind
}

func (p countPolicy) Do(req *policy.Request) (*http.Response, error) {
	switch req.Raw().Method {
	case http.MethodGet, http.MethodHead:
		p.c[p.read].Add(1)
	default:
		p.c[p.write].Add(1)
	}
	return req.Next()
}

// clients are the three service clients of one account.
type clients struct {
	queues *azqueue.ServiceClient
	tables *aztables.ServiceClient
	blobs  *azblob.Client
	count  *counters
}

func newClients(e *endpoints) (*clients, error) {
	c := &clients{count: &counters{}}
	opts := func(r, w kind) azcore.ClientOptions {
		return azcore.ClientOptions{PerRetryPolicies: []policy.Policy{countPolicy{c: c.count, read: r, write: w}}}
	}
	qcred, err := azqueue.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		return nil, fmt.Errorf("azstorage: queue credential: %w", err)
	}
	if c.queues, err = azqueue.NewServiceClientWithSharedKeyCredential(e.queue+"/", qcred,
		&azqueue.ClientOptions{ClientOptions: opts(queueRead, queueWrite)}); err != nil {
		return nil, fmt.Errorf("azstorage: queue client: %w", err)
	}
	tcred, err := aztables.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		return nil, fmt.Errorf("azstorage: table credential: %w", err)
	}
	if c.tables, err = aztables.NewServiceClientWithSharedKey(e.table+"/", tcred,
		&aztables.ClientOptions{ClientOptions: opts(tableRead, tableWrite)}); err != nil {
		return nil, fmt.Errorf("azstorage: table client: %w", err)
	}
	bcred, err := azblob.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		return nil, fmt.Errorf("azstorage: blob credential: %w", err)
	}
	if c.blobs, err = azblob.NewClientWithSharedKeyCredential(e.blob+"/", bcred,
		&azblob.ClientOptions{ClientOptions: opts(blobRead, blobWrite)}); err != nil {
		return nil, fmt.Errorf("azstorage: blob client: %w", err)
	}
	return c, nil
}

// Stats counts the storage requests a backend made, by kind, and the
// work it did, so that a benchmark can divide requests by steps.
type Stats struct {
	QueueReads, QueueWrites int64
	TableReads, TableWrites int64
	BlobReads, BlobWrites   int64
	// Episodes counts orchestration episodes checkpointed, EntityBatches
	// entity batches, Activities activity executions (duplicates after a
	// crash included).
	Episodes, EntityBatches, Activities int64
	// Conflicts counts checkpoints refused by the history table's ETag
	// (another worker wrote the instance first); OutOfOrder counts
	// messages abandoned because they arrived before their checkpoint.
	Conflicts, OutOfOrder int64
	// HistoryLoads counts histories read from the History table by
	// workers (extended sessions avoid most).
	HistoryLoads int64
}

// Requests is the total of storage requests.
func (s Stats) Requests() int64 {
	return s.QueueReads + s.QueueWrites + s.TableReads + s.TableWrites + s.BlobReads + s.BlobWrites
}
