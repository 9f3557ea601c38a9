package emulator

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The admin API has the shape of the Service Bus REST API that manages
// event hubs in Azure (PUT/GET/DELETE https://{namespace}/{hub}?api-version=2014-01
// with Atom entries), so one client manages hubs here and there.

const (
	atomNS       = "http://www.w3.org/2005/Atom"
	sbConnectNS  = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
	xsiNS        = "http://www.w3.org/2001/XMLSchema-instance"
	arraysNS     = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
	atomEntryCT  = "application/atom+xml;type=entry;charset=utf-8"
	adminMaxBody = 64 << 10

	// DefaultPartitionCount is the partition count of a hub created through
	// the admin API without one.
	DefaultPartitionCount = 4
)

// atomEntryIn is a request body: only the description's fields matter
// (names match whatever namespace prefixes the client uses).
type atomEntryIn struct {
	Content struct {
		Description struct {
			MessageRetentionInDays *int `xml:"MessageRetentionInDays"`
			PartitionCount         *int `xml:"PartitionCount"`
		} `xml:"EventHubDescription"`
	} `xml:"content"`
}

type atomEntryOut struct {
	XMLName xml.Name `xml:"entry"`
	NS      string   `xml:"xmlns,attr"`
	ID      string   `xml:"id"`
	Title   struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"title"`
	Published string `xml:"published"`
	Updated   string `xml:"updated"`
	Link      struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	} `xml:"link"`
	Content struct {
		Type        string        `xml:"type,attr"`
		Description ehDescription `xml:"EventHubDescription"`
	} `xml:"content"`
}

type ehDescription struct {
	NS                     string `xml:"xmlns,attr"`
	XSI                    string `xml:"xmlns:i,attr"`
	MessageRetentionInDays int    `xml:"MessageRetentionInDays"`
	Status                 string `xml:"Status"`
	CreatedAt              string `xml:"CreatedAt"`
	UpdatedAt              string `xml:"UpdatedAt"`
	PartitionCount         int    `xml:"PartitionCount"`
	PartitionIDs           struct {
		NS  string   `xml:"xmlns:d2p1,attr"`
		IDs []string `xml:"d2p1:string"`
	} `xml:"PartitionIds"`
}

// adminHandler serves /health and the admin API.
func (e *Emulator) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"healthy"}`)
	})
	mux.HandleFunc("/{hub}", e.serveHub)
	mux.HandleFunc("/{hub}/consumergroups/{cg}", e.serveConsumerGroup)
	return mux
}

// checkAuth verifies the SAS token of a request under StrictAuth.
func (e *Emulator) checkAuth(w http.ResponseWriter, r *http.Request) bool {
	if !e.cfg.StrictAuth {
		return true
	}
	if err := verifySAS(r.Header.Get("Authorization"), e.cfg.KeyName, e.cfg.Key, "", time.Now()); err != nil {
		http.Error(w, "401 Unauthorized: "+err.Error(), http.StatusUnauthorized)
		return false
	}
	return true
}

// serveConsumerGroup creates (PUT), reads (GET) and deletes (DELETE) a
// consumer group, as /{hub}/consumergroups/{name} of the Service Bus REST
// API. The body of a PUT is not needed.
func (e *Emulator) serveConsumerGroup(w http.ResponseWriter, r *http.Request) {
	if !e.checkAuth(w, r) {
		return
	}
	hubName, name := r.PathValue("hub"), r.PathValue("cg")
	b := e.currentBroker()
	var err error
	status := http.StatusOK
	switch r.Method {
	case http.MethodPut:
		err, status = b.createConsumerGroup(hubName, name), http.StatusCreated
	case http.MethodGet:
		h := b.hub(hubName)
		if h == nil {
			err = ErrHubNotFound
		} else if _, ok := h.consumerGroup(name); !ok {
			err = ErrGroupNotFound
		}
	case http.MethodDelete:
		err = b.deleteConsumerGroup(hubName, name)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case errors.Is(err, ErrHubNotFound) || errors.Is(err, ErrGroupNotFound):
		http.Error(w, "404 Not Found: "+err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrGroupExists):
		http.Error(w, "409 Conflict: "+err.Error(), http.StatusConflict)
	case err != nil:
		http.Error(w, "400 Bad Request: "+err.Error(), http.StatusBadRequest)
	default:
		w.Header().Set("Content-Type", atomEntryCT)
		w.WriteHeader(status)
		fmt.Fprintf(w, `%s<entry xmlns="%s"><title type="text">%s</title><content type="application/xml"><ConsumerGroupDescription xmlns="%s"/></content></entry>`,
			xml.Header, atomNS, xmlEscape(name), sbConnectNS)
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (e *Emulator) serveHub(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("hub")
	if !e.checkAuth(w, r) {
		return
	}
	b := e.currentBroker()
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(io.LimitReader(r.Body, adminMaxBody))
		if err != nil {
			http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
			return
		}
		hc := HubConfig{Name: name, PartitionCount: DefaultPartitionCount}
		if len(strings.TrimSpace(string(body))) > 0 {
			var in atomEntryIn
			if err := xml.Unmarshal(body, &in); err != nil {
				http.Error(w, "400 Bad Request: the body is not an Atom entry: "+err.Error(), http.StatusBadRequest)
				return
			}
			if d := in.Content.Description; d.PartitionCount != nil {
				hc.PartitionCount = *d.PartitionCount
			}
			if d := in.Content.Description; d.MessageRetentionInDays != nil {
				if *d.MessageRetentionInDays < 1 {
					http.Error(w, "400 Bad Request: MessageRetentionInDays must be at least 1", http.StatusBadRequest)
					return
				}
				hc.Retention = time.Duration(*d.MessageRetentionInDays) * 24 * time.Hour
			}
		}
		h, err := b.createHub(hc)
		switch {
		case errors.Is(err, ErrHubExists):
			http.Error(w, "409 Conflict: "+err.Error(), http.StatusConflict)
			return
		case errors.Is(err, errClosed):
			http.Error(w, "503 Service Unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, "400 Bad Request: "+err.Error(), http.StatusBadRequest)
			return
		}
		e.cfg.Logger.Info("event hub created", "hub", h.name, "partitions", len(h.partitions))
		e.writeEntry(w, r, h, http.StatusCreated)
	case http.MethodGet:
		h := b.hub(name)
		if h == nil {
			http.Error(w, "404 Not Found: event hub "+name, http.StatusNotFound)
			return
		}
		e.writeEntry(w, r, h, http.StatusOK)
	case http.MethodDelete:
		if err := e.deleteHub(name); err != nil {
			if errors.Is(err, ErrHubNotFound) {
				http.Error(w, "404 Not Found: "+err.Error(), http.StatusNotFound)
				return
			}
			http.Error(w, "500 Internal Server Error: "+err.Error(), http.StatusInternalServerError)
			return
		}
		e.cfg.Logger.Info("event hub deleted", "hub", name)
		w.WriteHeader(http.StatusOK)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

func (e *Emulator) writeEntry(w http.ResponseWriter, r *http.Request, h *hub, status int) {
	var out atomEntryOut
	out.NS = atomNS
	url := fmt.Sprintf("http://%s/%s?api-version=2014-01", r.Host, h.name)
	out.ID = url
	out.Title.Type, out.Title.Text = "text", h.name
	ts := h.created.UTC().Format(time.RFC3339Nano)
	out.Published, out.Updated = ts, ts
	out.Link.Rel, out.Link.Href = "self", url
	out.Content.Type = "application/xml"
	d := &out.Content.Description
	d.NS, d.XSI = sbConnectNS, xsiNS
	d.MessageRetentionInDays = max(1, int(h.retention/(24*time.Hour)))
	d.Status = "Active"
	d.CreatedAt, d.UpdatedAt = ts, ts
	d.PartitionCount = len(h.partitions)
	d.PartitionIDs.NS = arraysNS
	d.PartitionIDs.IDs = h.partitionIDs()
	data, err := xml.Marshal(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", atomEntryCT)
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(data)))
	w.WriteHeader(status)
	io.WriteString(w, xml.Header)
	w.Write(data)
}
