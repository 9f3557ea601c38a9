// Package blobtest finds the storage account tests run against: the
// connection string in the environment variable NETHERITE_AZURITE (for
// Azurite, the line scripts/azurite/start.sh prints). Without it, tests
// are skipped with a message saying how to start Azurite, except when
// CI=true, where they fail: CI must never skip them silently.
package blobtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/blobstore"
)

// Howto tells how to run the tests that need Azurite.
const Howto = "scripts/azurite/install.sh && eval \"$(scripts/azurite/start.sh)\" (sets " + blobstore.AzuriteEnv + ")"

// Main runs a package's tests (call it from TestMain). When the account
// is not configured, it says so on stderr before and after the tests, so
// that the skips show without -v.
func Main(m *testing.M) {
	unset := strings.TrimSpace(os.Getenv(blobstore.AzuriteEnv)) == "" && os.Getenv("CI") != "true"
	if unset {
		fmt.Fprintf(os.Stderr, "blobtest: %s is not set: tests against Azure Storage are SKIPPED; to run them: %s\n", blobstore.AzuriteEnv, Howto)
	}
	code := m.Run()
	if unset {
		fmt.Fprintf(os.Stderr, "blobtest: tests against Azure Storage were SKIPPED (%s not set)\n", blobstore.AzuriteEnv)
	}
	os.Exit(code)
}

// Connection returns the connection string of the test account; without
// one it skips the test, or fails it when CI=true.
func Connection(t testing.TB) string {
	t.Helper()
	s := strings.TrimSpace(os.Getenv(blobstore.AzuriteEnv))
	if s == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set and CI=true: tests against Azure Storage must run in CI; start Azurite: %s", blobstore.AzuriteEnv, Howto)
		}
		t.Skipf("SKIP: %s is not set: this test needs Azurite or a storage account; to run it: %s", blobstore.AzuriteEnv, Howto)
	}
	return s
}

// Account returns the test account (see Connection), with opts.
func Account(t testing.TB, opts ...blobstore.AccountOptions) *blobstore.Account {
	t.Helper()
	a, err := blobstore.NewAccount(Connection(t), opts...)
	if err != nil {
		t.Fatalf("%s: %v", blobstore.AzuriteEnv, err)
	}
	return a
}

// Container creates a fresh container named after the test in a and
// deletes it when the test ends (kept if KEEP_TEST_CONTAINERS=1).
func Container(t testing.TB, a *blobstore.Account) *blobstore.Container {
	t.Helper()
	c := a.Container(ContainerName(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateIfNotExists(ctx); err != nil {
		t.Fatalf("%v (is Azurite running? %s)", err, Howto)
	}
	t.Cleanup(func() {
		if os.Getenv("KEEP_TEST_CONTAINERS") == "1" {
			t.Logf("kept container %s", c.Name())
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Delete(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c
}

// ContainerName returns a fresh valid container name derived from the
// test's name.
func ContainerName(t testing.TB) string {
	var b strings.Builder
	for _, c := range strings.ToLower(t.Name()) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	var r [6]byte
	rand.Read(r[:])
	if base == "" {
		base = "test"
	}
	return base + "-" + hex.EncodeToString(r[:])
}

// BreakPartitionLease breaks the lease of one partition of a task hub in
// the account of conn, as an operator or a lost network would: its holder
// must stop writing at once.
func BreakPartitionLease(t testing.TB, ctx context.Context, conn, taskHub, hubGUID string, partition int) {
	t.Helper()
	acct, err := blobstore.NewAccount(conn)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := acct.TaskHubContainer(taskHub)
	if err != nil {
		t.Fatal(err)
	}
	if err := blobstore.BreakLease(ctx, cont, blobstore.PartitionPrefix(hubGUID, partition)+blobstore.LeaseBlob); err != nil {
		t.Fatal(err)
	}
}
