package emulatortest

import (
	"net/http"
	"testing"
)

func TestGetAndCreateHub(t *testing.T) {
	t.Setenv(Env, "")
	t.Setenv("CI", "")
	tg := Get(t)
	if tg.Emulator == nil || tg.ConnectionString == "" {
		t.Fatalf("no in-process emulator: %+v", tg)
	}
	name := tg.CreateHub(t, "hub", 3)
	if code, _ := tg.admin(t, http.MethodGet, name, ""); code != http.StatusOK {
		t.Fatalf("GET %s: %d", name, code)
	}
	t.Setenv(Env, "Endpoint=sb://example:1;SharedAccessKeyName=a;SharedAccessKey=b;UseDevelopmentEmulator=true")
	t.Setenv(AdminEnv, "http://example:2/")
	if tg := Get(t); tg.Emulator != nil || tg.AdminURL != "http://example:2" {
		t.Fatalf("from the environment: %+v", tg)
	}
}
