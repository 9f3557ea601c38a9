package functions

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Environment variables. The Functions host passes the app settings
// (local.settings.json "Values" when run locally) to the custom handler as
// environment variables.
const (
	// EnvCustomHandlerPort is set by the Functions host to the port the
	// custom handler must listen on.
	EnvCustomHandlerPort = "FUNCTIONS_CUSTOMHANDLER_PORT"

	// EnvTaskHub names the task hub.
	EnvTaskHub = "NETHERITE_TASKHUB"
	// EnvTaskHubHostJSON is the app setting that overrides host.json
	// extensions.durableTask.hubName, where Durable Functions apps name
	// their task hub; read when EnvTaskHub is not set.
	EnvTaskHubHostJSON = "AzureFunctionsJobHost__extensions__durableTask__hubName"

	// EnvPartitionCount is the number of partitions of a new task hub.
	EnvPartitionCount = "NETHERITE_PARTITION_COUNT"
	// EnvPartitionCountHostJSON is the app setting that overrides host.json
	// extensions.durableTask.storageProvider.partitionCount, where
	// Netherite apps set it; read when EnvPartitionCount is not set.
	EnvPartitionCountHostJSON = "AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount"

	// EnvStorageConnectionName names the app setting that holds the Azure
	// Storage connection string (Netherite's StorageConnectionName);
	// default DefaultStorageConnectionName.
	EnvStorageConnectionName     = "NETHERITE_STORAGE_CONNECTION_NAME"
	DefaultStorageConnectionName = "AzureWebJobsStorage"

	// EnvEventHubsConnectionName names the app setting that holds the
	// Event Hubs connection string (Netherite's EventHubsConnectionName);
	// default DefaultEventHubsConnectionName.
	EnvEventHubsConnectionName     = "NETHERITE_EVENTHUBS_CONNECTION_NAME"
	DefaultEventHubsConnectionName = "EventHubsConnection"

	// EnvStorage overrides where partition state lives: a directory,
	// "memory", or a connection string (see netherite.Options.Storage).
	// When it is not set, the Azure Storage connection is used.
	EnvStorage = "NETHERITE_STORAGE"

	// MaxPartitionCount is the largest partition count (as for Netherite).
	MaxPartitionCount = 32
)

// Address returns the listen address from FUNCTIONS_CUSTOMHANDLER_PORT
// (":" + port), or fallback when it is not set.
func Address(fallback string) string {
	if port := strings.TrimSpace(os.Getenv(EnvCustomHandlerPort)); port != "" {
		return ":" + port
	}
	return fallback
}

// Settings are the app settings of a Netherite app in Azure Functions. Empty
// strings and a zero PartitionCount mean "not set": the host's defaults
// apply.
type Settings struct {
	// TaskHub is the task hub name: NETHERITE_TASKHUB, else
	// AzureFunctionsJobHost__extensions__durableTask__hubName. Like in
	// Durable Functions it starts with a letter and has only letters and
	// digits, 3 to 45 of them.
	TaskHub string
	// StorageConnection is the Azure Storage connection string, read from
	// the app setting named by NETHERITE_STORAGE_CONNECTION_NAME (default
	// AzureWebJobsStorage). "UseDevelopmentStorage=true" is accepted.
	StorageConnection string
	// EventHubsConnection is the Event Hubs connection string, read from
	// the app setting named by NETHERITE_EVENTHUBS_CONNECTION_NAME
	// (default EventHubsConnection): "Endpoint=sb://...;..." or, as in
	// Netherite, "SingleHost" or "Memory" for in-process queues (see
	// [Settings.InProcessQueues]). `netherite serve -functions` uses it as
	// netherite.Options.Transport unless -transport is given.
	EventHubsConnection string
	// Storage is NETHERITE_STORAGE: where partition state lives, when it
	// should not be the Azure Storage account of StorageConnection.
	Storage string
	// PartitionCount is the number of partitions of a new task hub, 1 to
	// 32: NETHERITE_PARTITION_COUNT, else
	// AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount.
	PartitionCount int
}

// LoadSettings reads the app settings the host passes as environment
// variables through getenv (os.Getenv if nil). It returns an error that
// names the setting for a bad value; errors never repeat the value of a
// connection string, which holds secrets.
func LoadSettings(getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	var s Settings
	var errs []error

	hubName, hub, err := either(get, EnvTaskHub, EnvTaskHubHostJSON)
	if err != nil {
		errs = append(errs, err)
	} else if hub != "" {
		if err := checkTaskHub(hub); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v", hubName, hub, err))
		} else {
			s.TaskHub = hub
		}
	}

	countName, count, err := either(get, EnvPartitionCount, EnvPartitionCountHostJSON)
	if err != nil {
		errs = append(errs, err)
	} else if count != "" {
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 || n > MaxPartitionCount {
			errs = append(errs, fmt.Errorf("%s=%q: the partition count must be a whole number from 1 to %d", countName, count, MaxPartitionCount))
		} else {
			s.PartitionCount = n
		}
	}

	storageName, err := settingName(get, EnvStorageConnectionName, DefaultStorageConnectionName)
	if err != nil {
		errs = append(errs, err)
	} else if v := get(storageName); v != "" {
		if err := checkStorageConnection(v); err != nil {
			errs = append(errs, fmt.Errorf("app setting %s: %v", storageName, err))
		} else {
			s.StorageConnection = v
		}
	}

	ehName, err := settingName(get, EnvEventHubsConnectionName, DefaultEventHubsConnectionName)
	if err != nil {
		errs = append(errs, err)
	} else if v := get(ehName); v != "" {
		if err := checkEventHubsConnection(v); err != nil {
			errs = append(errs, fmt.Errorf("app setting %s: %v", ehName, err))
		} else {
			s.EventHubsConnection = v
		}
	}

	s.Storage = get(EnvStorage)

	if len(errs) > 0 {
		return Settings{}, fmt.Errorf("functions: bad app settings: %w", errors.Join(errs...))
	}
	return s, nil
}

// InProcessQueues reports whether EventHubsConnection asks for in-process
// queues (unset, "SingleHost", "Memory" or "MemoryF") rather than Event
// Hubs.
func (s Settings) InProcessQueues() bool {
	switch strings.ToLower(s.EventHubsConnection) {
	case "", "singlehost", "memory", "memoryf":
		return true
	}
	return false
}

// StorageFor returns where a host run by `netherite serve -functions` keeps
// its state: flag (the -storage flag) if given, else NETHERITE_STORAGE,
// else the Azure Storage connection (AzureWebJobsStorage), else "" (the
// host's default directory).
func (s Settings) StorageFor(flag string) string {
	for _, v := range []string{flag, s.Storage, s.StorageConnection} {
		if v != "" {
			return v
		}
	}
	return ""
}

// either reads a setting that has two names; setting both to different
// values is an error.
func either(get func(string) string, primary, secondary string) (name, value string, err error) {
	a, b := get(primary), get(secondary)
	switch {
	case a != "" && b != "" && a != b:
		return "", "", fmt.Errorf("%s=%q and %s=%q disagree; set one of them", primary, a, secondary, b)
	case a != "":
		return primary, a, nil
	case b != "":
		return secondary, b, nil
	}
	return primary, "", nil
}

// settingName reads the name of an app setting, with a default.
func settingName(get func(string) string, env, def string) (string, error) {
	name := get(env)
	if name == "" {
		return def, nil
	}
	if strings.ContainsAny(name, "= \t\r\n\x00") {
		return "", fmt.Errorf("%s=%q: not the name of an app setting", env, name)
	}
	return name, nil
}

// checkTaskHub applies the Durable Functions rule for task hub names.
func checkTaskHub(name string) error {
	if len(name) < 3 || len(name) > 45 {
		return fmt.Errorf("a task hub name has 3 to 45 characters, this one %d", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return errors.New("a task hub name starts with a letter")
		}
		if !letter && !(c >= '0' && c <= '9') {
			return fmt.Errorf("a task hub name has only letters and digits, not %q", c)
		}
	}
	return nil
}

// connectionPairs parses "Key=Value;Key=Value" (keys case-insensitive);
// it never quotes values in its errors.
func connectionPairs(v string) (map[string]string, error) {
	pairs := map[string]string{}
	for i, part := range strings.Split(v, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("element %d is not Key=Value", i+1)
		}
		pairs[strings.ToLower(k)] = strings.TrimSpace(val)
	}
	if len(pairs) == 0 {
		return nil, errors.New("no Key=Value elements")
	}
	return pairs, nil
}

func checkStorageConnection(v string) error {
	const want = `want "DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net" or "UseDevelopmentStorage=true"`
	pairs, err := connectionPairs(v)
	if err != nil {
		return fmt.Errorf("not an Azure Storage connection string (%v); %s", err, want)
	}
	if dev, ok := pairs["usedevelopmentstorage"]; ok {
		if !strings.EqualFold(dev, "true") {
			return fmt.Errorf("UseDevelopmentStorage must be true; %s", want)
		}
		return nil
	}
	if pairs["accountname"] == "" && pairs["blobendpoint"] == "" {
		return fmt.Errorf("not an Azure Storage connection string (no AccountName or BlobEndpoint); %s", want)
	}
	if p, ok := pairs["defaultendpointsprotocol"]; ok && !strings.EqualFold(p, "https") && !strings.EqualFold(p, "http") {
		return fmt.Errorf("DefaultEndpointsProtocol must be https or http; %s", want)
	}
	return nil
}

func checkEventHubsConnection(v string) error {
	const want = `want "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=..." or "SingleHost"`
	switch strings.ToLower(v) {
	case "singlehost", "memory", "memoryf":
		return nil
	}
	pairs, err := connectionPairs(v)
	if err != nil {
		return fmt.Errorf("not an Event Hubs connection string (%v); %s", err, want)
	}
	ep := pairs["endpoint"]
	if ep == "" {
		return fmt.Errorf("not an Event Hubs connection string (no Endpoint); %s", want)
	}
	if !strings.HasPrefix(strings.ToLower(ep), "sb://") || len(ep) <= len("sb://") {
		return fmt.Errorf("the Endpoint must be an sb:// address; %s", want)
	}
	return nil
}
