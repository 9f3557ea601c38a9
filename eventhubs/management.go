package eventhubs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// ErrHubNotFound is returned (wrapped) for a hub that does not exist.
var ErrHubNotFound = errors.New("event hub not found")

// ErrHubExists is returned (wrapped) by CreateHub for a hub that exists.
var ErrHubExists = errors.New("event hub already exists")

// Management creates, reads and deletes event hubs of a namespace.
type Management interface {
	// CreateHub creates a hub (ErrHubExists if it exists).
	CreateHub(ctx context.Context, name string, partitions int) error
	// GetHub describes a hub (ErrHubNotFound if there is none).
	GetHub(ctx context.Context, name string) (HubInfo, error)
	// DeleteHub deletes a hub (ErrHubNotFound if there is none).
	DeleteHub(ctx context.Context, name string) error
}

// HubInfo describes a hub.
type HubInfo struct {
	Name string
	// Exists is false for a hub that does not exist (DescribeHubs).
	Exists         bool
	PartitionCount int
	// Want is the partition count the task hub needs (DescribeHubs).
	Want          int
	RetentionDays int
	CreatedAt     time.Time
	Status        string
}

// RESTManagement manages hubs through the Service Bus REST API
// (PUT/GET/DELETE {base}/{hub}?api-version=2014-01 with Atom entries): on
// Azure at https://{namespace}/, on the emulator at its admin API, which
// has the same shape. Requests are authorized with a SAS token made from
// the connection string's key, or with a bearer token of an Azure AD
// credential (a principal with the "Azure Event Hubs Data Owner" role).
type RESTManagement struct {
	base    string // without a trailing slash
	keyName string
	key     string
	cred    azcore.TokenCredential
	client  *http.Client
}

// NewManagement returns the management of the namespace of a connection
// string. adminURL is the emulator's admin API (e.g. http://127.0.0.1:5300);
// "" means the namespace's own endpoint over HTTPS (Azure).
func NewManagement(connection, adminURL string) (*RESTManagement, error) {
	cs, err := ParseConnectionString(connection)
	if err != nil {
		return nil, err
	}
	if cs.KeyName == "" || cs.Key == "" {
		return nil, errors.New("eventhubs: the connection string has no SharedAccessKeyName/SharedAccessKey (use NewManagementWithCredential)")
	}
	base := strings.TrimSuffix(adminURL, "/")
	if base == "" {
		if cs.Emulator {
			return nil, errors.New("eventhubs: managing the emulator's hubs needs its admin URL")
		}
		base = "https://" + cs.Host
	}
	return &RESTManagement{base: base, keyName: cs.KeyName, key: cs.Key, client: &http.Client{Timeout: time.Minute}}, nil
}

// ManagementFor returns the management of a namespace given as Open's
// Options.Connection is: a connection string (SAS; adminURL for the
// emulator), or a namespace host name (cred, or DefaultAzureCredential
// when nil).
func ManagementFor(connection, adminURL string, cred azcore.TokenCredential) (*RESTManagement, error) {
	ns, c, err := credentialFor(connection, cred)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return NewManagementWithCredential(ns, c), nil
	}
	return NewManagement(connection, adminURL)
}

// NewManagementWithCredential returns the management of a namespace
// (host name, e.g. "myns.servicebus.windows.net") authorized with an
// Azure AD credential, e.g. azidentity.NewDefaultAzureCredential.
func NewManagementWithCredential(namespace string, cred azcore.TokenCredential) *RESTManagement {
	return &RESTManagement{base: "https://" + strings.TrimSuffix(namespace, "/"), cred: cred, client: &http.Client{Timeout: time.Minute}}
}

// ConnectionString is a parsed Event Hubs connection string.
type ConnectionString struct {
	Host       string // from Endpoint=sb://host[:port]/
	KeyName    string
	Key        string
	EntityPath string
	Emulator   bool // UseDevelopmentEmulator=true
}

// ParseConnectionString parses an Event Hubs connection string.
func ParseConnectionString(s string) (ConnectionString, error) {
	var cs ConnectionString
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			u, err := url.Parse(strings.TrimSpace(v))
			if err != nil || u.Host == "" {
				return cs, fmt.Errorf("eventhubs: connection string: bad Endpoint %q", v)
			}
			cs.Host = u.Host
		case "sharedaccesskeyname":
			cs.KeyName = v
		case "sharedaccesskey":
			cs.Key = v
		case "entitypath":
			cs.EntityPath = v
		case "usedevelopmentemulator":
			cs.Emulator = strings.EqualFold(strings.TrimSpace(v), "true")
		}
	}
	if cs.Host == "" {
		return cs, errors.New("eventhubs: connection string has no Endpoint=sb://...")
	}
	return cs, nil
}

// redactErr removes the connection string's key from an error's text.
func redactErr(err error, connection string) error {
	cs, perr := ParseConnectionString(connection)
	if perr != nil || cs.Key == "" || !strings.Contains(err.Error(), cs.Key) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), cs.Key, "REDACTED"))
}

// SASToken returns a shared access signature for resource (a URL),
// signed with key, valid until expiry: "SharedAccessSignature
// sr=<url-encoded lower-case resource>&sig=<url-encoded
// base64(HMAC-SHA256(key, sr + "\n" + expiry))>&se=<unix seconds>&skn=<keyName>".
func SASToken(resource, keyName, key string, expiry time.Time) string {
	sr := url.QueryEscape(strings.ToLower(resource))
	se := strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(sr + "\n" + se))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	return fmt.Sprintf("SharedAccessSignature sr=%s&sig=%s&se=%s&skn=%s", sr, url.QueryEscape(sig), se, url.QueryEscape(keyName))
}

func (m *RESTManagement) do(ctx context.Context, method, hub, body string) (int, []byte, error) {
	u := m.base + "/" + url.PathEscape(hub) + "?api-version=2014-01"
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/atom+xml;type=entry;charset=utf-8")
	if m.cred != nil {
		tok, err := m.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://eventhubs.azure.net/.default"}})
		if err != nil {
			return 0, nil, fmt.Errorf("eventhubs: getting a token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	} else {
		req.Header.Set("Authorization", SASToken(m.base+"/"+hub, m.keyName, m.key, time.Now().Add(time.Hour)))
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("eventhubs: %s %s: %w", method, hub, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

func describeStatus(code int, body []byte) string {
	msg := strings.TrimSpace(string(body))
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return fmt.Sprintf("HTTP %d %s", code, msg)
}

// CreateHub creates a hub with a partition count (retention: 1 day).
func (m *RESTManagement) CreateHub(ctx context.Context, name string, partitions int) error {
	body := fmt.Sprintf(`<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">`+
		`<EventHubDescription xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect">`+
		`<MessageRetentionInDays>1</MessageRetentionInDays><PartitionCount>%d</PartitionCount>`+
		`</EventHubDescription></content></entry>`, partitions)
	code, data, err := m.do(ctx, http.MethodPut, name, body)
	switch {
	case err != nil:
		return fmt.Errorf("eventhubs: create hub %s: %w", name, err)
	case code == http.StatusConflict:
		return fmt.Errorf("eventhubs: create hub %s: %w", name, ErrHubExists)
	case code != http.StatusCreated && code != http.StatusOK:
		return fmt.Errorf("eventhubs: create hub %s: %s", name, describeStatus(code, data))
	}
	return nil
}

type hubEntry struct {
	Content struct {
		Description struct {
			MessageRetentionInDays int    `xml:"MessageRetentionInDays"`
			Status                 string `xml:"Status"`
			CreatedAt              string `xml:"CreatedAt"`
			PartitionCount         int    `xml:"PartitionCount"`
		} `xml:"EventHubDescription"`
	} `xml:"content"`
}

// GetHub describes a hub.
func (m *RESTManagement) GetHub(ctx context.Context, name string) (HubInfo, error) {
	code, data, err := m.do(ctx, http.MethodGet, name, "")
	switch {
	case err != nil:
		return HubInfo{}, fmt.Errorf("eventhubs: read hub %s: %w", name, err)
	case code == http.StatusNotFound:
		return HubInfo{Name: name}, fmt.Errorf("eventhubs: hub %s: %w", name, ErrHubNotFound)
	case code != http.StatusOK:
		return HubInfo{}, fmt.Errorf("eventhubs: read hub %s: %s", name, describeStatus(code, data))
	}
	var e hubEntry
	if err := xml.Unmarshal(data, &e); err != nil {
		// Azure answers a GET of a missing entity with an empty feed.
		if strings.Contains(string(data), "<feed") {
			return HubInfo{Name: name}, fmt.Errorf("eventhubs: hub %s: %w", name, ErrHubNotFound)
		}
		return HubInfo{}, fmt.Errorf("eventhubs: read hub %s: %w", name, err)
	}
	d := e.Content.Description
	if d.PartitionCount == 0 && strings.Contains(string(data), "<feed") {
		return HubInfo{Name: name}, fmt.Errorf("eventhubs: hub %s: %w", name, ErrHubNotFound)
	}
	info := HubInfo{Name: name, Exists: true, PartitionCount: d.PartitionCount, RetentionDays: d.MessageRetentionInDays, Status: d.Status}
	info.CreatedAt, _ = time.Parse(time.RFC3339Nano, d.CreatedAt)
	return info, nil
}

// DeleteHub deletes a hub.
func (m *RESTManagement) DeleteHub(ctx context.Context, name string) error {
	code, data, err := m.do(ctx, http.MethodDelete, name, "")
	switch {
	case err != nil:
		return fmt.Errorf("eventhubs: delete hub %s: %w", name, err)
	case code == http.StatusNotFound:
		return fmt.Errorf("eventhubs: delete hub %s: %w", name, ErrHubNotFound)
	case code != http.StatusOK && code != http.StatusNoContent:
		return fmt.Errorf("eventhubs: delete hub %s: %s", name, describeStatus(code, data))
	}
	return nil
}

// CreateHubs creates the hubs of a task hub (prefix) with partitionCount
// partitions: existing hubs with the right partition count are kept; one
// with another count is an error naming it.
func CreateHubs(ctx context.Context, m Management, prefix string, partitionCount int) error {
	if partitionCount < 1 || partitionCount > MaxPartitions {
		return fmt.Errorf("eventhubs: partition count %d is not in 1..%d", partitionCount, MaxPartitions)
	}
	for _, h := range Names(prefix).All(partitionCount) {
		err := m.CreateHub(ctx, h.Name, h.Partitions)
		if err != nil && !errors.Is(err, ErrHubExists) {
			return err
		}
		info, err := m.GetHub(ctx, h.Name)
		if err != nil {
			return err
		}
		if info.PartitionCount != h.Partitions {
			return fmt.Errorf("eventhubs: hub %s exists with %d partitions, want %d (delete it, or use another prefix)", h.Name, info.PartitionCount, h.Partitions)
		}
	}
	return nil
}

// DeleteHubs deletes the hubs of a task hub; missing ones are no error.
func DeleteHubs(ctx context.Context, m Management, prefix string) error {
	for _, h := range Names(prefix).All(1) {
		if err := m.DeleteHub(ctx, h.Name); err != nil && !errors.Is(err, ErrHubNotFound) {
			return err
		}
	}
	return nil
}

// DescribeHubs describes the hubs of a task hub, missing ones included
// (Exists false). Want is the partition count each needs; for the
// partitions hub it is 0 (any count in 1..MaxPartitions will do).
func DescribeHubs(ctx context.Context, m Management, prefix string) ([]HubInfo, error) {
	var out []HubInfo
	for _, h := range Names(prefix).All(0) {
		info, err := m.GetHub(ctx, h.Name)
		if err != nil && !errors.Is(err, ErrHubNotFound) {
			return nil, err
		}
		info.Name, info.Want = h.Name, h.Partitions
		out = append(out, info)
	}
	return out, nil
}
