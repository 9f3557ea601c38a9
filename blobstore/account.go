package blobstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/netherite-go/netherite/storagecount"
)

// AzuriteEnv names the environment variable through which tests find an
// Azurite (or any storage account): it holds a connection string, for
// Azurite the one scripts/azurite/start.sh prints.
const AzuriteEnv = "NETHERITE_AZURITE"

// DevelopmentConnectionString is the connection string of Azurite's
// well-known development account on its default port; NewAccount accepts
// it and the short form "UseDevelopmentStorage=true".
const DevelopmentConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + devAccount +
	";AccountKey=" + devKey + ";BlobEndpoint=http://127.0.0.1:10000/" + devAccount + ";"

// The development account is public (documented with the storage emulator
// and Azurite); it is not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AccountOptions tune an Account. The zero value is the default.
type AccountOptions struct {
	// Retry bounds the retries of every storage request (see RetryOptions).
	Retry RetryOptions
	// Transport, if set, sends the HTTP requests (tests inject faults
	// with it). Default: the SDK's HTTP client.
	Transport policy.Transporter
	// PerCallPolicies run once per request attempt, before sending.
	PerCallPolicies []policy.Policy
}

// Account is a storage account: the blob service endpoint and its
// credential. It is safe for concurrent use.
type Account struct {
	name     string // account name, if known
	endpoint string // blob service URL, without a SAS
	auth     string // "shared key", "SAS", "DefaultAzureCredential"
	svc      *service.Client
	retry    RetryOptions
	requests storagecount.Counter // requests sent, by kind (counting.go)
}

// NewAccount opens a storage account from one of:
//
//   - an Azure Storage connection string ("DefaultEndpointsProtocol=https;
//     AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net", or
//     with BlobEndpoint=... and/or SharedAccessSignature=...);
//   - "UseDevelopmentStorage=true": Azurite's well-known account on
//     http://127.0.0.1:10000 (DevelopmentStorageProxyUri may move the host);
//   - an account URL ("https://NAME.blob.core.windows.net"), authenticated
//     with azidentity's DefaultAzureCredential (environment, workload
//     identity, managed identity, Azure CLI...).
//
// It does no I/O: a wrong key or an unreachable endpoint shows at the
// first request. Errors never repeat the account key or the SAS.
func NewAccount(connection string, opts ...AccountOptions) (*Account, error) {
	var o AccountOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	retry, err := o.Retry.withDefaults()
	if err != nil {
		return nil, err
	}
	cs, err := parseConnection(connection)
	if err != nil {
		return nil, err
	}
	a := &Account{name: cs.name, endpoint: cs.endpoint, retry: retry}
	copts := &service.ClientOptions{ClientOptions: azcore.ClientOptions{
		// Retries are ours (retry.go): they know the lease, and name the
		// blob and address when they give up.
		Retry:           policy.RetryOptions{MaxRetries: -1},
		Transport:       o.Transport,
		PerCallPolicies: append([]policy.Policy{a.requests.Policy(storagecount.Blob)}, o.PerCallPolicies...),
		Telemetry:       policy.TelemetryOptions{ApplicationID: "netherite-go"},
	}}
	switch {
	case cs.key != "":
		a.auth = "shared key"
		cred, err := service.NewSharedKeyCredential(cs.name, cs.key)
		if err != nil {
			return nil, fmt.Errorf("blobstore: connection string: AccountKey is not usable: %s", redact(err.Error(), cs.key))
		}
		a.svc, err = service.NewClientWithSharedKeyCredential(cs.endpoint, cred, copts)
		if err != nil {
			return nil, fmt.Errorf("blobstore: account %s: %s", cs.endpoint, redact(err.Error(), cs.key))
		}
	case cs.sas != "":
		a.auth = "SAS"
		a.svc, err = service.NewClientWithNoCredential(cs.endpoint+"?"+cs.sas, copts)
		if err != nil {
			return nil, fmt.Errorf("blobstore: account %s: %s", cs.endpoint, redact(err.Error(), cs.sas))
		}
	default:
		a.auth = "DefaultAzureCredential"
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("blobstore: account %s: DefaultAzureCredential: %w", cs.endpoint, err)
		}
		a.svc, err = service.NewClient(cs.endpoint, cred, copts)
		if err != nil {
			return nil, fmt.Errorf("blobstore: account %s: %w", cs.endpoint, err)
		}
	}
	return a, nil
}

// Requests reports how many HTTP requests (attempts) the account has
// sent, for benchmarks (storage requests per orchestration step).
func (a *Account) Requests() int64 { return a.requests.Total() }

// Name returns the account name ("" if the endpoint does not tell it).
func (a *Account) Name() string { return a.name }

// Endpoint returns the blob service URL (never with a SAS).
func (a *Account) Endpoint() string { return a.endpoint }

// String describes the account for logs: endpoint and kind of credential.
func (a *Account) String() string { return fmt.Sprintf("%s (%s)", a.endpoint, a.auth) }

// Service returns the SDK client of the blob service, for what this
// package does not wrap (tests break leases with it).
func (a *Account) Service() *service.Client { return a.svc }

// Container returns a handle on a container; it does no I/O and does not
// check the name (ValidateContainerName does).
func (a *Account) Container(name string) *Container {
	return &Container{acct: a, name: name, client: a.svc.NewContainerClient(name)}
}

// Container is a blob container of an Account.
type Container struct {
	acct   *Account
	name   string
	client *container.Client
}

// Name returns the container name.
func (c *Container) Name() string { return c.name }

// Account returns the container's account.
func (c *Container) Account() *Account { return c.acct }

// Client returns the SDK client of the container.
func (c *Container) Client() *container.Client { return c.client }

// CreateIfNotExists creates the container; an existing one is no error.
func (c *Container) CreateIfNotExists(ctx context.Context) error {
	err := c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := c.client.Create(ctx, nil)
		if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: create container %s in %s: %w", c.name, c.acct.endpoint, err)
	}
	return nil
}

// Exists reports whether the container exists.
func (c *Container) Exists(ctx context.Context) (bool, error) {
	exists := true
	err := c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := c.client.GetProperties(ctx, nil)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			exists = false
			return nil
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("blobstore: container %s in %s: %w", c.name, c.acct.endpoint, err)
	}
	return exists, nil
}

// Delete deletes the container and every blob in it (leased ones too); a
// missing container is no error. Azure removes the blobs in the
// background: creating a container of the same name may fail for a while
// (ContainerBeingDeleted).
func (c *Container) Delete(ctx context.Context) error {
	err := c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := c.client.Delete(ctx, nil)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: delete container %s in %s: %w", c.name, c.acct.endpoint, err)
	}
	return nil
}

// listBlobs calls fn for every blob whose name starts with prefix, in
// name order. Each page is fetched with retries (a fresh pager per page:
// the SDK's pager cannot retry a failed page).
func (c *Container) listBlobs(ctx context.Context, prefix string, include container.ListBlobsInclude, fn func(*container.BlobItem)) error {
	var marker *string
	for {
		var page container.ListBlobsFlatResponse
		err := c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
			pager := c.client.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, Include: include, Marker: marker})
			var err error
			page, err = pager.NextPage(ctx)
			return err
		})
		if err != nil {
			return err
		}
		if page.Segment != nil {
			for _, item := range page.Segment.BlobItems {
				if item != nil && item.Name != nil {
					fn(item)
				}
			}
		}
		if page.NextMarker == nil || *page.NextMarker == "" {
			return nil
		}
		marker = page.NextMarker
	}
}

// connection is a parsed connection string.
type connection struct {
	name     string
	endpoint string // blob service URL without trailing slash
	key      string // shared key (base64), or ""
	sas      string // SAS query without '?', or ""
}

// parseConnection understands the three forms NewAccount accepts. Its
// errors never contain the input's secrets: they name keys, not values.
func parseConnection(s string) (*connection, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("blobstore: empty storage connection string (want a connection string, UseDevelopmentStorage=true, or https://ACCOUNT.blob.core.windows.net)")
	}
	lower := strings.ToLower(s)
	if (strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://")) && !strings.Contains(s, ";") {
		return parseAccountURL(s)
	}
	kv := map[string]string{}
	names := map[string]string{} // lower-case key -> key as written
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("blobstore: connection string: element %d is not of the form Key=Value", i+1)
		}
		lk := strings.ToLower(k)
		if _, dup := kv[lk]; dup {
			return nil, fmt.Errorf("blobstore: connection string: %s is given twice", k)
		}
		kv[lk], names[lk] = strings.TrimSpace(v), k
	}
	if len(kv) == 0 {
		return nil, errors.New("blobstore: connection string has no Key=Value elements")
	}

	if v, ok := kv["usedevelopmentstorage"]; ok {
		if !strings.EqualFold(v, "true") {
			return nil, fmt.Errorf("blobstore: connection string: UseDevelopmentStorage must be true, not %q", v)
		}
		host := "http://127.0.0.1"
		if p := kv["developmentstorageproxyuri"]; p != "" {
			u, err := url.Parse(p)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, errors.New("blobstore: connection string: DevelopmentStorageProxyUri is not an http(s) URL")
			}
			host = u.Scheme + "://" + u.Hostname()
		}
		for lk := range kv {
			if lk != "usedevelopmentstorage" && lk != "developmentstorageproxyuri" {
				return nil, fmt.Errorf("blobstore: connection string: UseDevelopmentStorage=true cannot be combined with %s", names[lk])
			}
		}
		return &connection{name: devAccount, endpoint: host + ":10000/" + devAccount, key: devKey}, nil
	}

	c := &connection{name: kv["accountname"], key: kv["accountkey"], sas: strings.TrimPrefix(kv["sharedaccesssignature"], "?")}
	if _, ok := kv["accountkey"]; ok && c.key == "" {
		return nil, errors.New("blobstore: connection string: AccountKey is empty")
	}
	if c.key != "" {
		if _, err := base64.StdEncoding.DecodeString(c.key); err != nil {
			return nil, errors.New("blobstore: connection string: AccountKey is not valid base64 (copy it again from the portal or `az storage account keys list`)")
		}
		if c.name == "" {
			return nil, errors.New("blobstore: connection string: AccountKey needs an AccountName")
		}
	}
	if c.key == "" && c.sas == "" {
		return nil, errors.New("blobstore: connection string has neither AccountKey nor SharedAccessSignature (for DefaultAzureCredential pass the account URL https://ACCOUNT.blob.core.windows.net instead)")
	}
	if c.key != "" && c.sas != "" {
		return nil, errors.New("blobstore: connection string has both AccountKey and SharedAccessSignature; give one")
	}
	if c.sas != "" {
		if _, err := url.ParseQuery(c.sas); err != nil {
			return nil, errors.New("blobstore: connection string: SharedAccessSignature is not a valid query string")
		}
	}
	if ep := kv["blobendpoint"]; ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, errors.New("blobstore: connection string: BlobEndpoint is not an http(s) URL")
		}
		if u.RawQuery != "" {
			return nil, errors.New("blobstore: connection string: BlobEndpoint must not carry a query (put a SAS in SharedAccessSignature)")
		}
		c.endpoint = strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
		if c.name == "" {
			c.name = accountFromURL(u)
		}
		return c, nil
	}
	if c.name == "" {
		return nil, errors.New("blobstore: connection string needs AccountName or BlobEndpoint")
	}
	if !validAccountName(c.name) {
		return nil, fmt.Errorf("blobstore: connection string: AccountName %q is not a storage account name (3-24 lower-case letters and digits)", c.name)
	}
	proto := strings.ToLower(kv["defaultendpointsprotocol"])
	switch proto {
	case "":
		proto = "https"
	case "http", "https":
	default:
		return nil, fmt.Errorf("blobstore: connection string: DefaultEndpointsProtocol must be http or https, not %q", kv["defaultendpointsprotocol"])
	}
	suffix := kv["endpointsuffix"]
	if suffix == "" {
		suffix = "core.windows.net"
	}
	if strings.ContainsAny(suffix, "/?#@ ") {
		return nil, fmt.Errorf("blobstore: connection string: EndpointSuffix %q is not a host name suffix", suffix)
	}
	c.endpoint = proto + "://" + c.name + ".blob." + suffix
	return c, nil
}

func parseAccountURL(s string) (*connection, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, errors.New("blobstore: account URL is not a valid URL (want https://ACCOUNT.blob.core.windows.net)")
	}
	if u.RawQuery != "" || u.User != nil {
		return nil, errors.New("blobstore: account URL must not carry a query or user info (a SAS goes in a connection string: BlobEndpoint=...;SharedAccessSignature=...)")
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return nil, errors.New("blobstore: account URL must be https: DefaultAzureCredential sends tokens over TLS only (for Azurite use its connection string or UseDevelopmentStorage=true)")
	}
	return &connection{name: accountFromURL(u), endpoint: strings.TrimRight("https://"+u.Host+u.EscapedPath(), "/")}, nil
}

// accountFromURL finds the account name in a blob endpoint: the first
// label of NAME.blob.<suffix>, or else the first path element (Azurite
// and other IP-style endpoints).
func accountFromURL(u *url.URL) string {
	host := u.Hostname()
	if first, rest, ok := strings.Cut(host, "."); ok && strings.HasPrefix(rest, "blob.") {
		return first
	}
	p := strings.Trim(u.Path, "/")
	first, _, _ := strings.Cut(p, "/")
	return first
}

func validAccountName(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// redact removes a secret from a message, in case a library repeats it.
func redact(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "[REDACTED]")
}
