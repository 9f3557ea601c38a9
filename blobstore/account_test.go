package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Unit tests that need no storage account.

const testKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==" // base64 of "secret-key-for-tests-only"

func TestParseConnection(t *testing.T) {
	cases := []struct {
		in                  string
		name, endpoint, key string
		sas                 string
	}{
		{"UseDevelopmentStorage=true", devAccount, "http://127.0.0.1:10000/devstoreaccount1", devKey, ""},
		{" usedevelopmentstorage=TRUE; ", devAccount, "http://127.0.0.1:10000/devstoreaccount1", devKey, ""},
		{"UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://10.1.2.3", devAccount, "http://10.1.2.3:10000/devstoreaccount1", devKey, ""},
		{DevelopmentConnectionString, devAccount, "http://127.0.0.1:10000/devstoreaccount1", devKey, ""},
		{"DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" + testKey + ";EndpointSuffix=core.windows.net",
			"myacct", "https://myacct.blob.core.windows.net", testKey, ""},
		{"AccountName=myacct;AccountKey=" + testKey, "myacct", "https://myacct.blob.core.windows.net", testKey, ""},
		{"AccountName=myacct;AccountKey=" + testKey + ";EndpointSuffix=core.chinacloudapi.cn;DefaultEndpointsProtocol=http",
			"myacct", "http://myacct.blob.core.chinacloudapi.cn", testKey, ""},
		{"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + testKey + ";BlobEndpoint=http://127.0.0.1:10123/devstoreaccount1/;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;",
			"devstoreaccount1", "http://127.0.0.1:10123/devstoreaccount1", testKey, ""},
		{"BlobEndpoint=https://acct2.blob.core.windows.net;SharedAccessSignature=?sv=2022-11-02&sig=abc%3D",
			"acct2", "https://acct2.blob.core.windows.net", "", "sv=2022-11-02&sig=abc%3D"},
		{"https://acct3.blob.core.windows.net/", "acct3", "https://acct3.blob.core.windows.net", "", ""},
		{"HTTPS://acct4.blob.core.windows.net", "acct4", "https://acct4.blob.core.windows.net", "", ""},
	}
	for _, c := range cases {
		got, err := parseConnection(c.in)
		if err != nil {
			t.Errorf("parseConnection(%q): %v", c.in, err)
			continue
		}
		if got.name != c.name || got.endpoint != c.endpoint || got.key != c.key || got.sas != c.sas {
			t.Errorf("parseConnection(%q) = %+v; want name %q endpoint %q key %q sas %q", c.in, *got, c.name, c.endpoint, c.key, c.sas)
		}
	}
}

func TestParseConnectionErrors(t *testing.T) {
	const secretKey = "bm90LWJhc2U2NCEhIQ==!!" // not valid base64
	const sas = "sv=2022&sig=TOPSECRET"
	cases := []struct{ in, want string }{
		{"", "empty storage connection string"},
		{"   ", "empty storage connection string"},
		{";;", "no Key=Value"},
		{"AccountName=a1b2c3;junk", "element 2 is not of the form Key=Value"},
		{"AccountName=a1b2c3;AccountName=x", "AccountName is given twice"},
		{"AccountName=myacct;AccountKey=" + secretKey, "AccountKey is not valid base64"},
		{"AccountName=myacct;AccountKey=", "AccountKey is empty"},
		{"AccountKey=" + testKey, "AccountKey needs an AccountName"},
		{"AccountName=myacct", "neither AccountKey nor SharedAccessSignature"},
		{"AccountName=myacct;AccountKey=" + testKey + ";SharedAccessSignature=" + sas, "both AccountKey and SharedAccessSignature"},
		{"AccountName=My_Acct;AccountKey=" + testKey, "is not a storage account name"},
		{"AccountName=myacct;AccountKey=" + testKey + ";DefaultEndpointsProtocol=ftp", "must be http or https"},
		{"AccountName=myacct;AccountKey=" + testKey + ";BlobEndpoint=not a url", "BlobEndpoint is not an http(s) URL"},
		{"AccountName=myacct;AccountKey=" + testKey + ";BlobEndpoint=https://x.blob.core.windows.net?" + sas, "must not carry a query"},
		{"UseDevelopmentStorage=false", "must be true"},
		{"UseDevelopmentStorage=true;AccountKey=" + testKey, "cannot be combined with AccountKey"},
		{"http://acct.blob.core.windows.net", "must be https"},
		{"https://acct.blob.core.windows.net?" + sas, "must not carry a query"},
		{"https://", "not a valid URL"},
	}
	for _, c := range cases {
		_, err := parseConnection(c.in)
		if err == nil {
			t.Errorf("parseConnection(%q): no error", c.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("parseConnection(%q) = %q; want it to mention %q", c.in, msg, c.want)
		}
		for _, secret := range []string{secretKey, testKey, "TOPSECRET"} {
			if strings.Contains(msg, secret) {
				t.Errorf("parseConnection(%q): error %q repeats a secret", c.in, msg)
			}
		}
	}
}

func TestNewAccount(t *testing.T) {
	a, err := NewAccount("UseDevelopmentStorage=true")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != devAccount || a.Endpoint() != "http://127.0.0.1:10000/devstoreaccount1" || !strings.Contains(a.String(), "shared key") {
		t.Fatalf("account %s name %q", a, a.Name())
	}
	if got := a.Container("c1").Client().URL(); got != "http://127.0.0.1:10000/devstoreaccount1/c1" {
		t.Fatalf("container URL %q", got)
	}
	sas, err := NewAccount("BlobEndpoint=https://acct2.blob.core.windows.net;SharedAccessSignature=sv=1&sig=TOPSECRET")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sas.String(), "TOPSECRET") || strings.Contains(sas.Endpoint(), "sig") {
		t.Fatalf("SAS leaks into %s", sas)
	}
	// The account URL form builds a DefaultAzureCredential (lazily: no
	// token is asked for until a request).
	u, err := NewAccount("https://acct3.blob.core.windows.net")
	if err != nil {
		if !strings.Contains(err.Error(), "DefaultAzureCredential") {
			t.Fatalf("account URL: %v", err)
		}
		t.Logf("DefaultAzureCredential not constructible here: %v", err)
	} else if u.Name() != "acct3" || !strings.Contains(u.String(), "DefaultAzureCredential") {
		t.Fatalf("account %s", u)
	}
	if _, err := NewAccount("UseDevelopmentStorage=true", AccountOptions{Retry: RetryOptions{MaxAttempts: -1}}); err == nil {
		t.Fatal("negative MaxAttempts accepted")
	}
}

func TestContainerNames(t *testing.T) {
	good := map[string]string{
		"MyHub":                 "myhub-storage",
		"hub1":                  "hub1-storage",
		"a":                     "a-storage",
		"my-hub2":               "my-hub2-storage",
		strings.Repeat("h", 55): strings.Repeat("h", 55) + "-storage",
	}
	for hub, want := range good {
		got, err := ContainerName(hub)
		if err != nil || got != want {
			t.Errorf("ContainerName(%q) = %q, %v; want %q", hub, got, err, want)
		}
	}
	bad := map[string]string{
		"":                      "empty task hub name",
		"my_hub":                `character '_' is not allowed`,
		"my hub":                `character ' ' is not allowed`,
		"-hub":                  "must start and end with a letter or digit",
		"my--hub":               "two hyphens in a row",
		"hub-":                  "two hyphens in a row",
		strings.Repeat("h", 56): "it has 64 characters",
		"hüb":                   "is not allowed",
	}
	for hub, want := range bad {
		_, err := ContainerName(hub)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ContainerName(%q) = %v; want an error mentioning %q", hub, err, want)
		}
		if hub != "" && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", hub))) {
			t.Errorf("ContainerName(%q): error %v does not name the hub", hub, err)
		}
	}
	for name, ok := range map[string]bool{"abc": true, "ab": false, "a-b-c": true, "Abc": false, "abc-": false, "1ab": true, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if err := ValidateContainerName(name); (err == nil) != ok {
			t.Errorf("ValidateContainerName(%q) = %v", name, err)
		}
	}
	if got := PartitionPrefix("0f8fad5b-d9cb-469f-a165-70867728950e", 3); got != "0f8fad5b-d9cb-469f-a165-70867728950e/p03/" {
		t.Errorf("PartitionPrefix = %q", got)
	}
}

func TestLeaseOptions(t *testing.T) {
	o, err := LeaseOptions{}.withDefaults()
	if err != nil || o.Duration != 45*time.Second || o.RenewEvery != 30*time.Second || o.Guard != 40*time.Second || o.ID == "" {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	for _, bad := range []LeaseOptions{
		{Duration: 10 * time.Second},
		{Duration: 61 * time.Second},
		{Duration: 20500 * time.Millisecond},
		{Duration: 20 * time.Second, Guard: 20 * time.Second},
		{Duration: 20 * time.Second, Guard: 10 * time.Second, RenewEvery: 25 * time.Second},
		{ID: "not-a-guid"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	resp := func(code int, ec string) error {
		return &azcore.ResponseError{StatusCode: code, ErrorCode: ec, RawResponse: &http.Response{StatusCode: code, Header: http.Header{}}}
	}
	cases := []struct {
		err                     error
		transient, maybeApplied bool
	}{
		{resp(503, "ServerBusy"), true, false},
		{resp(503, ""), true, true},
		{resp(429, ""), true, false},
		{resp(500, "InternalError"), true, true},
		{resp(412, "ConditionNotMet"), false, false},
		{resp(404, "BlobNotFound"), false, false},
		{&url.Error{Op: "Put", URL: "http://x/y?sig=SECRET", Err: errors.New("connection reset by peer")}, true, true},
		{context.Canceled, false, false},
	}
	for _, c := range cases {
		tr, ma := classify(c.err, false)
		if tr != c.transient || ma != c.maybeApplied {
			t.Errorf("classify(%v) = %v, %v", describe(c.err), tr, ma)
		}
	}
	if d := describe(&url.Error{Op: "Put", URL: "http://x/y?sig=SECRET", Err: errors.New("reset")}); strings.Contains(d, "SECRET") || !strings.Contains(d, "http://x/y") {
		t.Errorf("describe leaks or loses the URL: %q", d)
	}
	r := RetryOptions{InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	for attempt := 1; attempt < 40; attempt++ {
		d := r.backoff(attempt, errors.New("x"))
		want := min(100*time.Millisecond<<min(attempt-1, 30), time.Second)
		if d < want/2 || d > want {
			t.Errorf("backoff(%d) = %v; want in [%v, %v]", attempt, d, want/2, want)
		}
	}
	h := http.Header{}
	h.Set("x-ms-retry-after-ms", "700")
	throttled := &azcore.ResponseError{StatusCode: 503, RawResponse: &http.Response{Header: h}}
	if d := r.backoff(1, throttled); d != 700*time.Millisecond {
		t.Errorf("Retry-After ignored: %v", d)
	}
}
