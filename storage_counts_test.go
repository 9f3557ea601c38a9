package netherite_test

import (
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/samples"
)

// The counts by kind add up to the total, on both backends, with the
// kinds each one's design uses.
func TestStorageRequestsByKind(t *testing.T) {
	conn := blobtest.Connection(t)
	for _, c := range []struct {
		o    netherite.Options
		want []string
	}{
		{netherite.Options{Storage: conn, TaskHub: "kinds" + hubSuffix(), PartitionCount: 2}, []string{"blob read", "blob write", "blob lease"}},
		{netherite.Options{Backend: netherite.BackendAzStorage, Storage: conn, TaskHub: "azkinds" + hubSuffix(),
			AzureStorage: netherite.AzureStorageOptions{MaxQueuePollingInterval: 100 * time.Millisecond}},
			[]string{"queue read", "queue write", "table read", "table write"}},
	} {
		h := startScenarioHost(t, c.o)
		ctx := testContext(t)
		cl := h.Client()
		wantStatus(t, waitDone(t, ctx, cl, start(t, ctx, cl, samples.HelloSequence, nil)), core.StatusCompleted)
		total := h.StorageRequests()
		by := h.StorageRequestsByKind()
		var sum int64
		for _, v := range by {
			sum += v
		}
		// Requests may go on between the two reads (leases, polling).
		if total == 0 || sum < total {
			t.Errorf("%s: by kind %v sums to %d, total was %d", c.o.Backend, by, sum, total)
		}
		for _, k := range c.want {
			if by[k] == 0 {
				t.Errorf("%s: no %q requests in %v", c.o.Backend, k, by)
			}
		}
	}
	if m := (&netherite.Host{}).StorageRequestsByKind(); len(m) != 0 {
		t.Errorf("a host without Azure Storage: %v", m)
	}
}
