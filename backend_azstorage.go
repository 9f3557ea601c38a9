package netherite

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/netherite-go/netherite/azstorage"
)

// checkAzStorage checks the options of the "azstorage" backend: it needs
// an Azure Storage account given as a connection string.
func (o *Options) checkAzStorage() error {
	if o.Storage == "memory" || !isAzureStorage(o.Storage) || hasHTTPScheme(o.Storage) {
		return fmt.Errorf("netherite: Options.Backend %q needs Options.Storage to be an Azure Storage connection string "+
			"(with AccountName, AccountKey and the queue and table endpoints) or UseDevelopmentStorage=true; got %s",
			BackendAzStorage, RedactStorage(o.Storage))
	}
	a := o.AzureStorage
	if a.ControlQueues < 0 || a.ControlQueues > 16 {
		return fmt.Errorf("netherite: Options.AzureStorage.ControlQueues must be between 1 and 16 (0 means 4), got %d", a.ControlQueues)
	}
	if a.MaxQueuePollingInterval < 0 {
		return fmt.Errorf("netherite: Options.AzureStorage.MaxQueuePollingInterval must not be negative, got %v", a.MaxQueuePollingInterval)
	}
	return nil
}

func hasHTTPScheme(s string) bool {
	return len(s) >= 7 && (s[:7] == "http://" || (len(s) >= 8 && s[:8] == "https://"))
}

// startAzStorage starts the Azure Storage baseline instead of partitions.
func (h *Host) startAzStorage(ctx context.Context) (*Host, error) {
	o := h.opts
	b, err := azstorage.Start(ctx, azstorage.Config{
		Storage: o.Storage, TaskHub: o.TaskHub,
		ControlQueues: o.AzureStorage.ControlQueues, MaxQueuePollingInterval: o.AzureStorage.MaxQueuePollingInterval,
		ExtendedSessions:            o.AzureStorage.ExtendedSessions,
		MaxConcurrentOrchestrations: o.MaxConcurrentOrchestrations, MaxConcurrentActivities: o.MaxConcurrentActivities,
		MaxPayloadBytes: o.MaxPayloadBytes, Logger: o.Logger,
	}, h.registry)
	if err != nil {
		return nil, fmt.Errorf("netherite: %w", err)
	}
	h.az = b
	o.Logger.Debug("netherite host started with the azstorage backend", slog.String("taskHub", o.TaskHub),
		slog.String("storage", RedactStorage(o.Storage)))
	return h, nil
}

// AzureStorageStats reports the azstorage backend's storage requests by
// kind and its work (ok is false with the netherite backend).
func (h *Host) AzureStorageStats() (s azstorage.Stats, ok bool) {
	if h.az == nil {
		return s, false
	}
	return h.az.Stats(), true
}
