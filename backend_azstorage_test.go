package netherite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite"
	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/samples"
)

func TestAzStorageBackendNeedsAnAccount(t *testing.T) {
	for _, storage := range []string{"", "memory", t.TempDir(), "https://acct.blob.core.windows.net"} {
		_, err := netherite.Start(context.Background(), netherite.Options{Backend: netherite.BackendAzStorage, Storage: storage},
			scenarioRegistry())
		if err == nil || !strings.Contains(err.Error(), "connection string") {
			t.Errorf("storage %q: error %v, want one asking for a connection string", storage, err)
		}
	}
	_, err := netherite.Start(context.Background(), netherite.Options{Backend: netherite.BackendAzStorage,
		Storage: "UseDevelopmentStorage=true", AzureStorage: netherite.AzureStorageOptions{ControlQueues: 17}}, scenarioRegistry())
	if err == nil || !strings.Contains(err.Error(), "ControlQueues") {
		t.Errorf("17 control queues: %v", err)
	}
}

func TestAzStorageHost(t *testing.T) {
	o := netherite.Options{Backend: netherite.BackendAzStorage, Storage: azstorageConnection(t), TaskHub: "azhost" + hubSuffix(),
		AzureStorage: netherite.AzureStorageOptions{MaxQueuePollingInterval: 100 * time.Millisecond}}
	h := startScenarioHost(t, o)
	ctx := testContext(t)
	c := h.Client()
	s := waitDone(t, ctx, c, start(t, ctx, c, samples.HelloSequence, nil))
	wantStatus(t, s, core.StatusCompleted)
	if p := h.Partitions(); len(p) != 0 {
		t.Errorf("Partitions() = %v, want none on the azstorage backend", p)
	}
	st, ok := h.AzureStorageStats()
	if !ok || st.Episodes < 4 || st.Activities != 3 || st.QueueWrites == 0 || st.TableWrites == 0 {
		t.Errorf("AzureStorageStats() = %+v, %v", st, ok)
	}
	if n := h.StorageRequests(); n < st.Requests() {
		t.Errorf("StorageRequests() = %d, below the %d counted before", n, st.Requests())
	}
}

func hubSuffix() string { return strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "") }
