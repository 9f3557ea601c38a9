package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of the emulator.
const (
	// DefaultKeyName and DefaultKey are the shared access key of Microsoft's
	// emulator connection string; they are not secrets.
	DefaultKeyName = "RootManageSharedAccessKey"
	DefaultKey     = "SAS_KEY_VALUE"

	// DefaultConsumerGroup exists on every hub.
	DefaultConsumerGroup = "$Default"

	// DefaultRetention is the age after which events are dropped when a hub
	// does not say (Event Hubs' MessageRetentionInDays defaults to 1).
	DefaultRetention = 24 * time.Hour
	// DefaultRetentionBytes bounds the events kept per partition (and the
	// memory they take) when a hub does not say.
	DefaultRetentionBytes = 64 << 20

	// MaxMessageSize is the largest delivery a sender may send (one batch).
	MaxMessageSize = 1 << 20
)

// HubConfig describes one event hub.
type HubConfig struct {
	Name           string
	PartitionCount int
	// ConsumerGroups besides $Default, which always exists.
	ConsumerGroups []string
	// Retention is the age after which events are dropped (0: DefaultRetention).
	Retention time.Duration
	// RetentionBytes bounds the bytes kept per partition (0: the emulator's default).
	RetentionBytes int64
}

// Config configures an emulator.
type Config struct {
	// Hubs created at start (hubs already in DataDir are kept as they are).
	Hubs []HubConfig
	// Addr is the AMQP listen address; "" means 127.0.0.1:0 (a free port).
	Addr string
	// AdminAddr is the HTTP listen address of /health and the admin API;
	// "" means 127.0.0.1:0.
	AdminAddr string
	// DataDir keeps every partition as a commit log on disk; "" keeps
	// events in memory only.
	DataDir string
	// KeyName and Key are the shared access key of the namespace (default
	// DefaultKeyName, DefaultKey).
	KeyName string
	Key     string
	// StrictAuth verifies SAS tokens ($cbs and the admin API) against the
	// key instead of accepting any.
	StrictAuth bool
	// RetentionBytes is the default per-partition size limit
	// (0: DefaultRetentionBytes).
	RetentionBytes int64
	Logger         *slog.Logger

	now func() time.Time // the clock (tests)
}

func (c Config) withDefaults() Config {
	out := c
	if out.Addr == "" {
		out.Addr = "127.0.0.1:0"
	}
	if out.AdminAddr == "" {
		out.AdminAddr = "127.0.0.1:0"
	}
	if out.KeyName == "" {
		out.KeyName = DefaultKeyName
	}
	if out.Key == "" {
		out.Key = DefaultKey
	}
	if out.RetentionBytes <= 0 {
		out.RetentionBytes = DefaultRetentionBytes
	}
	if out.now == nil {
		out.now = time.Now
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

// Microsoft's emulator configuration file (Config.json).
type fileConfig struct {
	UserConfig struct {
		NamespaceConfig []struct {
			Type     string
			Name     string
			Entities []struct {
				Name           string
				PartitionCount flexInt
				ConsumerGroups []struct{ Name string }
				// Extensions of this emulator (absent from Microsoft's format).
				MessageRetentionInDays flexInt
				RetentionBytes         flexInt
			}
		}
	}
}

// flexInt accepts a JSON number or a string holding one, as Microsoft's
// emulator does for PartitionCount.
type flexInt struct {
	set bool
	v   int64
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not an integer", b)
	}
	f.set, f.v = true, v
	return nil
}

// ParseConfigFile reads the hubs of a Config.json in the format of
// Microsoft's Event Hubs emulator.
func ParseConfigFile(path string) ([]HubConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("emulator config: %w", err)
	}
	hubs, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("emulator config %s: %w", path, err)
	}
	return hubs, nil
}

// ParseConfig parses a Config.json (see ParseConfigFile). Every namespace's
// entities become hubs; PartitionCount may be a string or a number.
func ParseConfig(data []byte) ([]HubConfig, error) {
	var fc fileConfig
	if err := json.Unmarshal(data, &fc); err != nil {
		return nil, err
	}
	var hubs []HubConfig
	seen := map[string]bool{}
	for _, ns := range fc.UserConfig.NamespaceConfig {
		if ns.Type != "" && !strings.EqualFold(ns.Type, "EventHub") {
			return nil, fmt.Errorf("namespace %q: type %q is not EventHub", ns.Name, ns.Type)
		}
		for _, e := range ns.Entities {
			h := HubConfig{Name: e.Name, PartitionCount: int(e.PartitionCount.v)}
			if !e.PartitionCount.set {
				return nil, fmt.Errorf("entity %q: PartitionCount is missing", e.Name)
			}
			if e.MessageRetentionInDays.set {
				h.Retention = time.Duration(e.MessageRetentionInDays.v) * 24 * time.Hour
			}
			h.RetentionBytes = e.RetentionBytes.v
			for _, cg := range e.ConsumerGroups {
				h.ConsumerGroups = append(h.ConsumerGroups, cg.Name)
			}
			if err := h.validate(); err != nil {
				return nil, err
			}
			key := strings.ToLower(h.Name)
			if seen[key] {
				return nil, fmt.Errorf("entity %q is defined twice", h.Name)
			}
			seen[key] = true
			hubs = append(hubs, h)
		}
	}
	return hubs, nil
}

// maxPartitions bounds a hub's partition count; far above Event Hubs'
// own limits, it only guards against typos that would open thousands of logs.
const maxPartitions = 1024

func (h *HubConfig) validate() error {
	if err := validName(h.Name); err != nil {
		return fmt.Errorf("hub %q: %w", h.Name, err)
	}
	if h.PartitionCount < 1 || h.PartitionCount > maxPartitions {
		return fmt.Errorf("hub %q: PartitionCount %d is not in [1, %d]", h.Name, h.PartitionCount, maxPartitions)
	}
	if h.Retention < 0 || h.RetentionBytes < 0 {
		return fmt.Errorf("hub %q: negative retention", h.Name)
	}
	for _, cg := range h.ConsumerGroups {
		if cg == "" || strings.ContainsAny(cg, "/\\?#") {
			return fmt.Errorf("hub %q: invalid consumer group name %q", h.Name, cg)
		}
	}
	return nil
}

// validName accepts Event Hubs entity names: letters, digits, '.', '-'
// and '_', starting and ending with a letter or digit, at most 256 long.
func validName(name string) error {
	if name == "" || len(name) > 256 {
		return fmt.Errorf("invalid name: length must be 1 to 256")
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || i == len(name)-1 || !strings.ContainsRune(".-_", r)) {
			return fmt.Errorf("invalid name: letters, digits, '.', '-' and '_' only, starting and ending with a letter or digit")
		}
	}
	return nil
}
