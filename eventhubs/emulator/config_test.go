package emulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigMicrosoftFormat(t *testing.T) {
	// The sample of Microsoft's emulator: PartitionCount as a string.
	data := `{"UserConfig":{"NamespaceConfig":[{"Type":"EventHub","Name":"emulatorNs1",
	  "Entities":[{"Name":"eh1","PartitionCount":"2","ConsumerGroups":[{"Name":"cg1"}]},
	              {"Name":"big","PartitionCount":64,"ConsumerGroups":[]},
	              {"Name":"kept","PartitionCount":" 3 ","MessageRetentionInDays":"7","RetentionBytes":1048576}]}],
	  "LoggingConfig":{"Type":"File"}}}`
	hubs, err := ParseConfig([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(hubs) != 3 {
		t.Fatalf("got %d hubs, want 3: %+v", len(hubs), hubs)
	}
	if h := hubs[0]; h.Name != "eh1" || h.PartitionCount != 2 || len(h.ConsumerGroups) != 1 || h.ConsumerGroups[0] != "cg1" {
		t.Errorf("eh1: %+v", h)
	}
	// No limit of 32 partitions.
	if h := hubs[1]; h.Name != "big" || h.PartitionCount != 64 || len(h.ConsumerGroups) != 0 {
		t.Errorf("big: %+v", h)
	}
	if h := hubs[2]; h.PartitionCount != 3 || h.Retention != 7*24*time.Hour || h.RetentionBytes != 1<<20 {
		t.Errorf("kept: %+v", h)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for name, data := range map[string]string{
		"not json":         `{`,
		"no count":         `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a"}]}]}}`,
		"bad count":        `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":"two"}]}]}}`,
		"zero count":       `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":0}]}]}}`,
		"bad name":         `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a/b","PartitionCount":1}]}]}}`,
		"duplicate":        `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":1},{"Name":"A","PartitionCount":1}]}]}}`,
		"not an eventhub":  `{"UserConfig":{"NamespaceConfig":[{"Type":"ServiceBus","Entities":[{"Name":"a","PartitionCount":1}]}]}}`,
		"bad group":        `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":1,"ConsumerGroups":[{"Name":""}]}]}]}}`,
		"fractional count": `{"UserConfig":{"NamespaceConfig":[{"Entities":[{"Name":"a","PartitionCount":1.5}]}]}}`,
	} {
		if _, err := ParseConfig([]byte(data)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseConfigFileInRepo(t *testing.T) {
	// The Config.json scripts/eventhubs/start.sh uses must parse.
	hubs, err := ParseConfigFile(filepath.Join("..", "..", "scripts", "eventhubs", "Config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hubs) == 0 {
		t.Fatal("no hubs")
	}
	if _, err := ParseConfigFile(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"UserConfig":`), 0o644)
	if _, err := ParseConfigFile(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad file: %v", err)
	}
}
