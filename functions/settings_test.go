package functions

import (
	"strings"
	"testing"

	"github.com/netherite-go/netherite"
)

func TestAddress(t *testing.T) {
	t.Setenv(EnvCustomHandlerPort, "")
	if got := Address("127.0.0.1:7071"); got != "127.0.0.1:7071" {
		t.Errorf("without %s: %q", EnvCustomHandlerPort, got)
	}
	t.Setenv(EnvCustomHandlerPort, "41873")
	if got := Address("127.0.0.1:7071"); got != ":41873" {
		t.Errorf("with %s: %q", EnvCustomHandlerPort, got)
	}
	t.Setenv(EnvCustomHandlerPort, " 5000\n")
	if got := Address(""); got != ":5000" {
		t.Errorf("with spaces: %q", got)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const (
	storageConn = "DefaultEndpointsProtocol=https;AccountName=netheritesample;AccountKey=c2VjcmV0LWtleQ==;EndpointSuffix=core.windows.net"
	ehConn      = "Endpoint=sb://netherite-sample.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0LWtleQ="
)

func TestLoadSettingsValid(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Settings
	}{
		{"nothing set", nil, Settings{}},
		{"ours", map[string]string{
			"NETHERITE_TASKHUB": "MyHub", "NETHERITE_PARTITION_COUNT": "32",
			"AzureWebJobsStorage": storageConn, "EventHubsConnection": ehConn,
		}, Settings{TaskHub: "MyHub", StorageConnection: storageConn, EventHubsConnection: ehConn, PartitionCount: 32}},
		{"host.json overrides", map[string]string{
			"AzureFunctionsJobHost__extensions__durableTask__hubName":                         "hub2",
			"AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount": "4",
		}, Settings{TaskHub: "hub2", PartitionCount: 4}},
		{"both names, same value", map[string]string{
			"NETHERITE_TASKHUB": "Same", "AzureFunctionsJobHost__extensions__durableTask__hubName": "Same",
		}, Settings{TaskHub: "Same"}},
		{"development storage, single host, spaces", map[string]string{
			"AzureWebJobsStorage": " UseDevelopmentStorage=true ", "EventHubsConnection": "SingleHost", "NETHERITE_PARTITION_COUNT": " 1 ",
		}, Settings{StorageConnection: "UseDevelopmentStorage=true", EventHubsConnection: "SingleHost", PartitionCount: 1}},
		{"connection names", map[string]string{
			"NETHERITE_STORAGE_CONNECTION_NAME": "MyStorage", "MyStorage": "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=sv=2022",
			"NETHERITE_EVENTHUBS_CONNECTION_NAME": "MyEH", "MyEH": "memory",
			"AzureWebJobsStorage": "ignored, not parsed",
		}, Settings{StorageConnection: "BlobEndpoint=https://x.blob.core.windows.net/;SharedAccessSignature=sv=2022", EventHubsConnection: "memory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := LoadSettings(env(c.env))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestLoadSettingsInvalid(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"partition count not a number", map[string]string{"NETHERITE_PARTITION_COUNT": "twelve"}, []string{`NETHERITE_PARTITION_COUNT="twelve"`, "1 to 32"}},
		{"partition count too big", map[string]string{"NETHERITE_PARTITION_COUNT": "33"}, []string{"NETHERITE_PARTITION_COUNT", "1 to 32"}},
		{"partition count zero", map[string]string{"AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount": "0"}, []string{"storageProvider__partitionCount", "1 to 32"}},
		{"partition counts disagree", map[string]string{"NETHERITE_PARTITION_COUNT": "4", "AzureFunctionsJobHost__extensions__durableTask__storageProvider__partitionCount": "8"}, []string{"disagree"}},
		{"task hub with a dash", map[string]string{"NETHERITE_TASKHUB": "my-hub"}, []string{`NETHERITE_TASKHUB="my-hub"`, "only letters and digits"}},
		{"task hub starting with a digit", map[string]string{"NETHERITE_TASKHUB": "1hub"}, []string{"starts with a letter"}},
		{"task hub too short", map[string]string{"NETHERITE_TASKHUB": "ab"}, []string{"3 to 45"}},
		{"task hub too long", map[string]string{"NETHERITE_TASKHUB": strings.Repeat("a", 46)}, []string{"3 to 45"}},
		{"storage not a connection string", map[string]string{"AzureWebJobsStorage": "c2VjcmV0LWtleQ"}, []string{"app setting AzureWebJobsStorage", "not an Azure Storage connection string"}},
		{"storage without account", map[string]string{"AzureWebJobsStorage": "AccountKey=c2VjcmV0LWtleQ=="}, []string{"no AccountName"}},
		{"storage bad protocol", map[string]string{"AzureWebJobsStorage": "DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey=c2VjcmV0LWtleQ=="}, []string{"DefaultEndpointsProtocol"}},
		{"dev storage false", map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=false"}, []string{"UseDevelopmentStorage must be true"}},
		{"event hubs without endpoint", map[string]string{"EventHubsConnection": "SharedAccessKeyName=x;SharedAccessKey=c2VjcmV0LWtleQ="}, []string{"app setting EventHubsConnection", "no Endpoint"}},
		{"event hubs https endpoint", map[string]string{"EventHubsConnection": "Endpoint=https://x/;SharedAccessKey=c2VjcmV0LWtleQ="}, []string{"sb://"}},
		{"bad connection name", map[string]string{"NETHERITE_EVENTHUBS_CONNECTION_NAME": "a=b"}, []string{"NETHERITE_EVENTHUBS_CONNECTION_NAME", "not the name of an app setting"}},
		{"several at once", map[string]string{"NETHERITE_TASKHUB": "x", "NETHERITE_PARTITION_COUNT": "-1"}, []string{"NETHERITE_TASKHUB", "NETHERITE_PARTITION_COUNT"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := LoadSettings(env(c.env))
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if got != (Settings{}) {
				t.Errorf("settings with an error: %+v", got)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "c2VjcmV0LWtleQ") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
}

func TestLoadSettingsOSEnv(t *testing.T) {
	t.Setenv(EnvTaskHub, "FromOS")
	t.Setenv(EnvTaskHubHostJSON, "")
	t.Setenv(EnvPartitionCount, "")
	t.Setenv(EnvPartitionCountHostJSON, "")
	t.Setenv(EnvStorageConnectionName, "")
	t.Setenv(EnvEventHubsConnectionName, "")
	t.Setenv(DefaultStorageConnectionName, "")
	t.Setenv(DefaultEventHubsConnectionName, "")
	s, err := LoadSettings(nil)
	if err != nil || s.TaskHub != "FromOS" {
		t.Errorf("LoadSettings(nil) = %+v, %v", s, err)
	}
}

func TestMaxPartitionCountMatchesHost(t *testing.T) {
	if MaxPartitionCount != netherite.MaxPartitionCount {
		t.Errorf("MaxPartitionCount %d, netherite.MaxPartitionCount %d", MaxPartitionCount, netherite.MaxPartitionCount)
	}
}

// Where `serve -functions` keeps state: -storage, else NETHERITE_STORAGE,
// else AzureWebJobsStorage; and which EventHubsConnection values it runs.
func TestStorageForAndQueues(t *testing.T) {
	env := map[string]string{"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
	s, err := LoadSettings(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got := s.StorageFor(""); got != "UseDevelopmentStorage=true" {
		t.Errorf("AzureWebJobsStorage alone: %q", got)
	}
	if got := s.StorageFor("/data"); got != "/data" {
		t.Errorf("with -storage: %q", got)
	}
	env[EnvStorage] = "memory"
	if s, _ = LoadSettings(func(k string) string { return env[k] }); s.StorageFor("") != "memory" {
		t.Errorf("NETHERITE_STORAGE: %q", s.StorageFor(""))
	}
	if got := (Settings{}).StorageFor(""); got != "" {
		t.Errorf("nothing set: %q", got)
	}
	for v, want := range map[string]bool{"": true, "SingleHost": true, "memory": true,
		"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0": false} {
		if got := (Settings{EventHubsConnection: v}).InProcessQueues(); got != want {
			t.Errorf("InProcessQueues(%q) = %v", v, got)
		}
	}
}
