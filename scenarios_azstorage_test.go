package netherite_test

// The scenario list (scenarios_test.go) also runs on the Azure Storage
// baseline (package azstorage) against Azurite, with short queue polling
// (the default 30 s back-off would make the suite crawl; the defaults are
// what bench compare measures). Run only these with
// -run 'Scenario.*/azstorage'. Every scenario passes unchanged in its
// assertions; two run smaller on this backend (FanOutFanIn and
// ManyConcurrent, see there) because Azurite serves the baseline's many
// requests too slowly for the scenario timeout. The baseline's documented
// difference, duplicate activity executions after a crash, is exercised by
// azstorage's TestCrashRecovery.

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/blobstore/blobtest"
)

func init() {
	scenarioBackends = append(scenarioBackends, scenarioBackend{
		name:       "azstorage",
		partitions: 4, // control queues
		setup: func(t *testing.T, o *netherite.Options) {
			o.Backend = netherite.BackendAzStorage
			o.Storage = azstorageConnection(t)
			o.TaskHub = fmt.Sprintf("az%d", time.Now().UnixNano()%1e12)
			o.AzureStorage.ControlQueues = o.PartitionCount
			o.AzureStorage.MaxQueuePollingInterval = 100 * time.Millisecond
		},
	})
}

// azstorageConnection returns the test account for the azstorage backend,
// which needs Azurite's queue and table services too: an Azurite started
// by an older scripts/azurite/start.sh (blob only) skips, or fails in CI.
func azstorageConnection(t *testing.T) string {
	t.Helper()
	s := blobtest.Connection(t)
	if strings.Contains(s, "BlobEndpoint=") && !strings.Contains(s, "QueueEndpoint=") {
		msg := "NETHERITE_AZURITE names no QueueEndpoint: the azstorage backend needs Azurite's queue and table services; " +
			"restart Azurite with scripts/azurite/start.sh, which starts all three"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIP: " + msg)
	}
	return s
}
