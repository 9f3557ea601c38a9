// Package emulatortest finds the Event Hubs emulator tests run against:
// the one in the environment variable NETHERITE_EVENTHUBS (the connection
// string scripts/eventhubs/start.sh prints, with its admin API at
// NETHERITE_EVENTHUBS_ADMIN, default http://127.0.0.1:5300), or else an
// in-process emulator started for the test.
package emulatortest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator"
)

// Environment variables of an emulator started outside the tests.
const (
	Env      = "NETHERITE_EVENTHUBS"
	AdminEnv = "NETHERITE_EVENTHUBS_ADMIN"
)

// DefaultAdminURL is the admin API of scripts/eventhubs/start.sh.
const DefaultAdminURL = "http://127.0.0.1:5300"

// Target is an emulator to test against.
type Target struct {
	ConnectionString string
	AdminURL         string
	// Emulator is the in-process emulator (nil for one given by the
	// environment): its fault hooks are only available then.
	Emulator *emulator.Emulator
}

// Howto tells how to start the emulator the tests use.
const Howto = "eval \"$(scripts/eventhubs/start.sh)\" (sets " + Env + " and " + AdminEnv + ")"

// Get returns the emulator of the environment, or starts one in process
// that stops when the test ends. Under CI=true the environment must name
// one: CI runs the tests against the emulator .ci/run starts.
func Get(t testing.TB) Target {
	t.Helper()
	s := strings.TrimSpace(os.Getenv(Env))
	if s == "" && os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set and CI=true: the Event Hubs tests must run against the emulator CI starts: %s", Env, Howto)
	}
	if s != "" {
		admin := strings.TrimSpace(os.Getenv(AdminEnv))
		if admin == "" {
			admin = DefaultAdminURL
		}
		return Target{ConnectionString: s, AdminURL: strings.TrimSuffix(admin, "/")}
	}
	e, err := emulator.Start(context.Background(), emulator.Config{})
	if err != nil {
		t.Fatalf("starting an in-process Event Hubs emulator: %v", err)
	}
	t.Cleanup(func() { e.Stop() })
	return Target{ConnectionString: e.ConnectionString, AdminURL: e.AdminURL, Emulator: e}
}

// CreateHub creates a hub with a fresh name derived from prefix through
// the admin API, deletes it when the test ends, and returns its name.
func (tg Target) CreateHub(t testing.TB, prefix string, partitions int) string {
	t.Helper()
	var r [4]byte
	rand.Read(r[:])
	name := prefix + "-" + hex.EncodeToString(r[:])
	body := fmt.Sprintf(`<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">`+
		`<EventHubDescription xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect">`+
		`<MessageRetentionInDays>1</MessageRetentionInDays><PartitionCount>%d</PartitionCount>`+
		`</EventHubDescription></content></entry>`, partitions)
	if code, msg := tg.admin(t, http.MethodPut, name, body); code != http.StatusCreated {
		t.Fatalf("creating event hub %s: %d %s", name, code, msg)
	}
	t.Cleanup(func() {
		if code, msg := tg.admin(t, http.MethodDelete, name, ""); code != http.StatusOK {
			t.Errorf("deleting event hub %s: %d %s", name, code, msg)
		}
	})
	return name
}

func (tg Target) admin(t testing.TB, method, hub, body string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, tg.AdminURL+"/"+hub+"?api-version=2014-01", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Sprintf("%v (is the emulator's admin API at %s? set %s)", err, tg.AdminURL, AdminEnv)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(data)
}
