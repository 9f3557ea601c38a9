package emulator

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startAdminOnly starts an emulator for tests of the admin API.
func startTestEmulator(t testing.TB, cfg Config) *Emulator {
	t.Helper()
	e, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop() })
	return e
}

func adminDo(t testing.TB, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

const testEntry = `<?xml version="1.0" encoding="utf-8"?>
<entry xmlns="http://www.w3.org/2005/Atom">
  <content type="application/xml">
    <EventHubDescription xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect">
      <MessageRetentionInDays>3</MessageRetentionInDays>
      <PartitionCount>6</PartitionCount>
    </EventHubDescription>
  </content>
</entry>`

func TestAdminAPI(t *testing.T) {
	e := startTestEmulator(t, Config{})
	code, body := adminDo(t, "GET", e.AdminURL+"/health", "")
	if code != 200 || strings.TrimSpace(body) != `{"status":"healthy"}` {
		t.Fatalf("health: %d %s", code, body)
	}
	url := e.AdminURL + "/myhub?api-version=2014-01"
	if code, _ := adminDo(t, "GET", url, ""); code != 404 {
		t.Fatalf("GET of a missing hub: %d", code)
	}
	code, body = adminDo(t, "PUT", url, testEntry, "Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	if code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	var out struct {
		Title   string `xml:"title"`
		Content struct {
			D struct {
				PartitionCount         int
				MessageRetentionInDays int
				Status                 string
				PartitionIds           struct {
					IDs []string `xml:"string"`
				}
			} `xml:"EventHubDescription"`
		} `xml:"content"`
	}
	if err := xml.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("PUT answer is not an Atom entry: %v\n%s", err, body)
	}
	d := out.Content.D
	if out.Title != "myhub" || d.PartitionCount != 6 || d.MessageRetentionInDays != 3 || d.Status != "Active" || len(d.PartitionIds.IDs) != 6 || d.PartitionIds.IDs[5] != "5" {
		t.Fatalf("PUT answer: %+v\n%s", out, body)
	}
	h := e.currentBroker().hub("myhub")
	if h == nil || len(h.partitions) != 6 || h.retention != 3*24*time.Hour {
		t.Fatalf("hub not created as asked: %+v", h)
	}
	if code, _ := adminDo(t, "PUT", url, testEntry); code != 409 {
		t.Fatalf("second PUT: %d", code)
	}
	if code, body := adminDo(t, "GET", url, ""); code != 200 || !strings.Contains(body, "<PartitionCount>6</PartitionCount>") {
		t.Fatalf("GET: %d %s", code, body)
	}
	// Without a body: the defaults.
	if code, _ := adminDo(t, "PUT", e.AdminURL+"/plain", ""); code != 201 {
		t.Fatalf("PUT without body: %d", code)
	}
	if h := e.currentBroker().hub("plain"); h == nil || len(h.partitions) != DefaultPartitionCount {
		t.Fatalf("default hub: %+v", h)
	}
	for _, bad := range []string{"<entry", strings.Replace(testEntry, ">6<", ">0<", 1), strings.Replace(testEntry, ">3<", ">0<", 1)} {
		if code, body := adminDo(t, "PUT", e.AdminURL+"/bad", bad); code != 400 {
			t.Fatalf("bad PUT: %d %s", code, body)
		}
	}
	if code, _ := adminDo(t, "PUT", e.AdminURL+"/-bad-name", ""); code != 400 {
		t.Fatalf("bad name: %d", code)
	}
	if code, _ := adminDo(t, "DELETE", url, ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := adminDo(t, "DELETE", url, ""); code != 404 {
		t.Fatalf("second DELETE: %d", code)
	}
	if code, _ := adminDo(t, "GET", url, ""); code != 404 {
		t.Fatalf("GET after DELETE: %d", code)
	}
	if code, _ := adminDo(t, "POST", url, ""); code != 405 {
		t.Fatalf("POST: %d", code)
	}
}

func TestAdminAPIStrictAuth(t *testing.T) {
	e := startTestEmulator(t, Config{StrictAuth: true, Key: "secret-key"})
	url := e.AdminURL + "/h1?api-version=2014-01"
	if code, _ := adminDo(t, "PUT", url, ""); code != 401 {
		t.Fatalf("PUT without token: %d", code)
	}
	bad := SignSAS(DefaultKeyName, "other-key", e.AdminURL, time.Hour)
	if code, _ := adminDo(t, "PUT", url, "", "Authorization", bad); code != 401 {
		t.Fatalf("PUT with a token of another key: %d", code)
	}
	good := SignSAS(DefaultKeyName, "secret-key", e.AdminURL, time.Hour)
	if code, body := adminDo(t, "PUT", url, "", "Authorization", good); code != 201 {
		t.Fatalf("PUT with a good token: %d %s", code, body)
	}
	// Health needs no token.
	if code, _ := adminDo(t, "GET", e.AdminURL+"/health", ""); code != 200 {
		t.Fatalf("health: %d", code)
	}
}

func TestAdminConsumerGroups(t *testing.T) {
	dir := t.TempDir()
	e := startTestEmulator(t, Config{DataDir: dir, Hubs: []HubConfig{{Name: "h", PartitionCount: 2}}})
	url := e.AdminURL + "/h/consumergroups/reports?api-version=2014-01"
	if code, _ := adminDo(t, "GET", url, ""); code != 404 {
		t.Fatalf("GET of a missing group: %d", code)
	}
	if code, body := adminDo(t, "PUT", url, ""); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, _ := adminDo(t, "PUT", url, ""); code != 409 {
		t.Fatalf("second PUT: %d", code)
	}
	if code, _ := adminDo(t, "GET", url, ""); code != 200 {
		t.Fatalf("GET: %d", code)
	}
	if code, _ := adminDo(t, "PUT", e.AdminURL+"/nohub/consumergroups/x", ""); code != 404 {
		t.Fatalf("PUT on a missing hub: %d", code)
	}
	if code, _ := adminDo(t, "DELETE", e.AdminURL+"/h/consumergroups/$Default", ""); code != 400 {
		t.Fatalf("DELETE of $Default: %d", code)
	}
	// The group survives a restart.
	if err := e.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := adminDo(t, "GET", url, ""); code != 200 {
		t.Fatalf("GET after restart: %d", code)
	}
	if code, _ := adminDo(t, "DELETE", url, ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := adminDo(t, "DELETE", url, ""); code != 404 {
		t.Fatalf("second DELETE: %d", code)
	}
}
