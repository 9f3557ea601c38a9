package netherite

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

var (
	cutMu    sync.Mutex
	cutConns = map[string]*cutTransport{}
	cutCount int
)

// CutStorage returns a variant of the Azure Storage connection string
// conn (the same account) for a host whose storage calls the test can cut
// off, and restore, with cut(true) / cut(false), as across a network
// partition: while cut, its requests hang until restored or until their
// context ends. Other hosts, started with conn, are not affected.
func CutStorage(t testing.TB, conn string) (variant string, cut func(on bool)) {
	cutMu.Lock()
	defer cutMu.Unlock()
	// Empty elements are ignored by the parser: the same account.
	cutCount++
	variant = strings.TrimRight(conn, ";") + strings.Repeat(";", cutCount+1)
	tr := &cutTransport{client: &http.Client{}}
	cutConns[variant] = tr
	hook := func(connection string) policy.Transporter {
		cutMu.Lock()
		defer cutMu.Unlock()
		if tr, ok := cutConns[connection]; ok {
			return tr
		}
		return nil
	}
	testBlobTransport.Store(&hook)
	t.Cleanup(func() {
		tr.setCut(false)
		cutMu.Lock()
		defer cutMu.Unlock()
		delete(cutConns, variant)
	})
	return variant, tr.setCut
}
