package eventhubs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/netherite-go/netherite/eventhubs/emulator"
	"github.com/netherite-go/netherite/eventhubs/emulator/emulatortest"
)

// TestSASTokenVector checks the signing against a token computed
// independently (openssl dgst -sha256 -hmac, base64, URL-encoding).
func TestSASTokenVector(t *testing.T) {
	got := SASToken("https://MyNs.servicebus.windows.net/myhub", "RootManageSharedAccessKey", "SAS_KEY_VALUE", time.Unix(1700000000, 0))
	want := "SharedAccessSignature sr=https%3A%2F%2Fmyns.servicebus.windows.net%2Fmyhub" +
		"&sig=r5nwn3XcMuy3NF%2FQUjS5h1UEtj5bKgtlbr%2FaKvkDp4Q%3D&se=1700000000&skn=RootManageSharedAccessKey"
	if got != want {
		t.Fatalf("SAS token\n got %s\nwant %s", got, want)
	}
}

func TestParseConnectionString(t *testing.T) {
	cs, err := ParseConnectionString("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a=b;EntityPath=x")
	if err != nil || cs.Host != "ns.servicebus.windows.net" || cs.KeyName != "k" || cs.Key != "a=b" || cs.EntityPath != "x" || cs.Emulator {
		t.Fatalf("%+v %v", cs, err)
	}
	cs, err = ParseConnectionString("Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true")
	if err != nil || cs.Host != "127.0.0.1:5672" || !cs.Emulator {
		t.Fatalf("%+v %v", cs, err)
	}
	if _, err := ParseConnectionString("SharedAccessKey=v"); err == nil {
		t.Fatal("no endpoint accepted")
	}
	if _, err := NewManagement("Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true", ""); err == nil {
		t.Fatal("emulator management without an admin URL accepted")
	}
	if err := redactErr(errors.New("bad key s3cret!"), "Endpoint=sb://x;SharedAccessKeyName=k;SharedAccessKey=s3cret!"); strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("key not redacted: %v", err)
	}
}

// TestManagement creates (twice), describes and deletes a task hub's hubs
// through the emulator's admin API, with strict SAS checking when the
// emulator is in process.
func TestManagement(t *testing.T) {
	tg := emulatortest.Get(t)
	if tg.Emulator == nil {
		t.Log("external emulator: SAS tokens are not verified")
	}
	strict, err := emulator.Start(context.Background(), emulator.Config{StrictAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Stop()
	for _, target := range []struct{ conn, admin string }{{tg.ConnectionString, tg.AdminURL}, {strict.ConnectionString, strict.AdminURL}} {
		m, err := NewManagement(target.conn, target.admin)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		prefix := randomPrefix(t)
		if err := CreateHubs(ctx, m, prefix, 4); err != nil {
			t.Fatal(err)
		}
		if err := CreateHubs(ctx, m, prefix, 4); err != nil {
			t.Fatalf("creating again: %v", err)
		}
		infos, err := DescribeHubs(ctx, m, prefix)
		if err != nil || len(infos) != 6 {
			t.Fatalf("describe: %+v %v", infos, err)
		}
		for _, in := range infos {
			want := map[string]int{prefix + "partitions": 4, prefix + "loadmonitor": 1}[in.Name]
			if want == 0 {
				want = 32
			}
			if !in.Exists || in.PartitionCount != want {
				t.Fatalf("hub %s: %+v, want %d partitions", in.Name, in, want)
			}
		}
		err = CreateHubs(ctx, m, prefix, 5)
		if err == nil || !strings.Contains(err.Error(), prefix+"partitions") || !strings.Contains(err.Error(), "4 partitions, want 5") {
			t.Fatalf("wrong partition count: %v", err)
		}
		if err := DeleteHubs(ctx, m, prefix); err != nil {
			t.Fatal(err)
		}
		if err := DeleteHubs(ctx, m, prefix); err != nil {
			t.Fatalf("deleting again: %v", err)
		}
		infos, err = DescribeHubs(ctx, m, prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			if in.Exists {
				t.Fatalf("hub %s still exists", in.Name)
			}
		}
		if _, err := m.GetHub(ctx, prefix+"partitions"); !errors.Is(err, ErrHubNotFound) {
			t.Fatalf("get a deleted hub: %v", err)
		}
	}
	// A wrong key is refused by the strict emulator.
	bad := strings.Replace(strict.ConnectionString, "SharedAccessKey="+emulator.DefaultKey, "SharedAccessKey=wrong", 1)
	m, err := NewManagement(bad, strict.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.CreateHub(ctx, "x", 1); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestDirBlobStore(t *testing.T) {
	d := DirBlobStore{Dir: t.TempDir()}
	ctx := context.Background()
	if err := d.Put(ctx, "hub/p01/x", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if b, err := d.Get(ctx, "hub/p01/x"); err != nil || string(b) != "data" {
		t.Fatalf("%q %v", b, err)
	}
	if err := d.Delete(ctx, "hub/p01/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "hub/p01/x"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b"} {
		if err := d.Put(ctx, bad, nil); err == nil {
			t.Fatalf("name %q accepted", bad)
		}
	}
	for _, name := range []string{"hub/p00/1", "hub/c001/2", "other/p00/3"} {
		if err := d.Put(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d.Sweep(ctx, "hub/", time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sweep with an old cutoff: %d %v", n, err)
	}
	if n, err := d.Sweep(ctx, "hub/", time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if _, err := d.Get(ctx, "other/p00/3"); err != nil {
		t.Fatalf("another hub's blob: %v", err)
	}
	if n, err := d.Sweep(ctx, "nosuch/", time.Now()); err != nil || n != 0 {
		t.Fatalf("sweep of a missing folder: %d %v", n, err)
	}
}

func TestOpenValidates(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{
		{TaskHubID: "x", PartitionCount: 1},
		{Connection: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v", PartitionCount: 1},
		{Connection: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v", TaskHubID: "x", PartitionCount: 0},
		{Connection: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v", TaskHubID: "x", PartitionCount: 33},
	} {
		if tr, err := Open(ctx, o); err == nil {
			tr.Close()
			t.Fatalf("Open(%+v) succeeded", o)
		}
	}
}

func TestCredentialFor(t *testing.T) {
	ns, cred, err := credentialFor("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v", nil)
	if err != nil || cred != nil || ns != "" {
		t.Fatalf("a connection string: %q %v %v", ns, cred, err)
	}
	fake := fakeCred{}
	ns, cred, err = credentialFor("sb://myns.servicebus.windows.net/", fake)
	if err != nil || cred == nil || ns != "myns.servicebus.windows.net" {
		t.Fatalf("a namespace with a credential: %q %v %v", ns, cred, err)
	}
	if _, _, err := credentialFor("not a/namespace", fake); err == nil {
		t.Fatal("garbage accepted")
	}
	m, err := ManagementFor("myns.servicebus.windows.net", "", fake)
	if err != nil || m.base != "https://myns.servicebus.windows.net" || m.cred == nil {
		t.Fatalf("management for a namespace: %+v %v", m, err)
	}
}

type fakeCred struct{}

func (fakeCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestManagementBearer: with a credential, requests carry its token.
func TestManagementBearer(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	m := NewManagementWithCredential("ignored", fakeCred{})
	m.base, m.client = srv.URL, srv.Client()
	if err := m.CreateHub(context.Background(), "h", 2); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer t" {
		t.Fatalf("Authorization %q", auth)
	}
}
