// Package emulator is a local Event Hubs: an AMQP 1.0 broker with Event
// Hubs semantics that the real azeventhubs client uses unchanged with
// UseDevelopmentEmulator=true. It reads the Config.json of Microsoft's
// emulator, keeps partitions as logs with dense 0-based sequence numbers
// and byte-position offsets (on disk with a data directory, through the
// faster commit log), serves $cbs and $management, applies owner levels
// (epochs), serves an admin API in the shape of the Service Bus REST API,
// and has fault hooks for tests.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/netherite-go/netherite/eventhubs/emulator/amqpserver"
)

// Emulator is a running emulator.
type Emulator struct {
	// ConnectionString is what clients use, e.g.
	// "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=...;SharedAccessKey=...;UseDevelopmentEmulator=true".
	ConnectionString string
	// Addr is the AMQP address (host:port).
	Addr string
	// AdminURL is the base URL of /health and the admin API, e.g. "http://127.0.0.1:5300".
	AdminURL string

	cfg Config

	restartMu sync.Mutex // one Restart or Stop at a time
	mu        sync.Mutex // guards the fields below
	b         *broker
	srv       *amqpserver.Server
	serveDone chan struct{}
	stopped   bool
	restarts  int

	httpSrv  *http.Server
	httpDone chan struct{}

	linksMu sync.Mutex
	links   map[*amqpserver.Link]*LinkInfo
	replies map[replyKey]*amqpserver.Link
	replyCh chan struct{} // closed and replaced when a reply link attaches
	claims  map[*amqpserver.Conn]map[string]time.Time

	faultMu    sync.Mutex
	sendDelay  time.Duration
	rejectN    int
	rejectCond string

	janitorStop chan struct{}
	wg          sync.WaitGroup // link goroutines and the janitor
}

type replyKey struct {
	conn *amqpserver.Conn
	addr string
}

// Start starts an emulator. Cancelling ctx stops it too; call Stop to
// stop it and wait.
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	cfg = cfg.withDefaults()
	e := &Emulator{
		cfg:         cfg,
		links:       map[*amqpserver.Link]*LinkInfo{},
		replies:     map[replyKey]*amqpserver.Link{},
		replyCh:     make(chan struct{}),
		claims:      map[*amqpserver.Conn]map[string]time.Time{},
		janitorStop: make(chan struct{}),
	}
	b, err := openBroker(cfg)
	if err != nil {
		return nil, err
	}
	e.b = b
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("emulator: AMQP listener: %w", err)
	}
	e.Addr = ln.Addr().String()
	hln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		ln.Close()
		b.close()
		return nil, fmt.Errorf("emulator: admin listener: %w", err)
	}
	e.AdminURL = "http://" + clientAddr(hln.Addr().String())
	e.ConnectionString = fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true",
		clientAddr(e.Addr), cfg.KeyName, cfg.Key)

	e.serve(ln)
	e.httpSrv = &http.Server{Handler: e.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	e.httpDone = make(chan struct{})
	go func() {
		defer close(e.httpDone)
		e.httpSrv.Serve(hln)
	}()
	e.wg.Add(1)
	go e.janitor()
	if ctx.Done() != nil {
		context.AfterFunc(ctx, func() { e.Stop() })
	}
	cfg.Logger.Info("event hubs emulator started", "amqp", e.Addr, "admin", e.AdminURL, "data", cfg.DataDir, "hubs", len(b.hubNames()))
	return e, nil
}

// clientAddr turns a listen address into one clients can dial.
func clientAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// serve starts the AMQP server on ln.
func (e *Emulator) serve(ln net.Listener) {
	e.srv = amqpserver.NewServer(amqpserver.Config{
		ContainerID:  "netherite-eventhubs-emulator",
		MaxFrameSize: 65536,
		IdleTimeout:  60 * time.Second,
		Handler:      e,
		Logger:       e.cfg.Logger,
	})
	srv, done := e.srv, make(chan struct{})
	e.serveDone = done
	go func() {
		defer close(done)
		defer ln.Close() // a Restart listens on the same address again
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			e.cfg.Logger.Error("event hubs emulator: AMQP server stopped", "err", err)
		}
	}()
}

func (e *Emulator) currentBroker() *broker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.b
}

// janitor applies retention by age and truncates the logs.
func (e *Emulator) janitor() {
	defer e.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.janitorStop:
			return
		case <-t.C:
			e.currentBroker().enforceRetention()
		}
	}
}

// Stop stops the emulator: it closes every connection and the listeners,
// and closes the partition logs. It is safe to call more than once.
func (e *Emulator) Stop() error {
	e.restartMu.Lock()
	defer e.restartMu.Unlock()
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	srv, done, b := e.srv, e.serveDone, e.b
	e.mu.Unlock()
	close(e.janitorStop)
	srv.Close()
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.httpSrv.Shutdown(ctx)
	<-e.httpDone
	b.close()
	e.wg.Wait()
	e.cfg.Logger.Info("event hubs emulator stopped", "amqp", e.Addr)
	return nil
}

// Restart simulates a restart of the emulator process: every connection is
// dropped, and with a data directory the hubs are reopened from disk (every
// acknowledged event keeps its sequence number and offset). It listens
// again on the same address; clients reconnect by themselves.
func (e *Emulator) Restart(ctx context.Context) error {
	e.restartMu.Lock()
	defer e.restartMu.Unlock()
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return errClosed
	}
	srv, done, b := e.srv, e.serveDone, e.b
	e.mu.Unlock()
	// Not under e.mu: link handlers take it.
	srv.Close()
	<-done
	if e.cfg.DataDir != "" {
		b.close()
		// Link goroutines end with their connections; wait for them so
		// that nothing touches the old broker.
		e.waitLinks(ctx)
		nb, err := openBroker(e.cfg)
		if err != nil {
			return fmt.Errorf("emulator: restart: %w", err)
		}
		b = nb
	}
	var ln net.Listener
	var err error
	for {
		ln, err = net.Listen("tcp", e.Addr)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("emulator: restart: listening on %s: %w", e.Addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	e.mu.Lock()
	e.b = b
	e.restarts++
	e.serve(ln)
	e.mu.Unlock()
	e.cfg.Logger.Info("event hubs emulator restarted", "amqp", e.Addr)
	return nil
}

// waitLinks waits until no link is registered (or ctx ends).
func (e *Emulator) waitLinks(ctx context.Context) {
	for {
		e.linksMu.Lock()
		n := len(e.links)
		e.linksMu.Unlock()
		if n == 0 || ctx.Err() != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CreateHub creates an event hub (ErrHubExists if it does).
func (e *Emulator) CreateHub(hc HubConfig) error {
	_, err := e.currentBroker().createHub(hc)
	return err
}

// DeleteHub deletes an event hub and its events; its links are detached
// with amqp:not-found.
func (e *Emulator) DeleteHub(name string) error {
	return e.deleteHub(name)
}

func (e *Emulator) deleteHub(name string) error {
	return e.currentBroker().deleteHub(name)
}

// Hubs returns the names of the hubs.
func (e *Emulator) Hubs() []string { return e.currentBroker().hubNames() }

// LinkKind says what a link does.
type LinkKind string

// Kinds of links.
const (
	LinkSender     LinkKind = "sender"     // the client sends events
	LinkReceiver   LinkKind = "receiver"   // the client receives events
	LinkManagement LinkKind = "management" // $management requests or replies
	LinkCBS        LinkKind = "cbs"        // $cbs requests or replies
)

// LinkInfo describes an attached link, for fault hooks.
type LinkInfo struct {
	Kind          LinkKind
	Name          string
	Address       string // the entity address (target of senders, source of receivers)
	Hub           string
	Partition     int // -1 for a sender to the hub
	ConsumerGroup string
	Epoch         *int64
}

// Links returns the attached links.
func (e *Emulator) Links() []LinkInfo {
	e.linksMu.Lock()
	defer e.linksMu.Unlock()
	out := make([]LinkInfo, 0, len(e.links))
	for _, in := range e.links {
		out = append(out, *in)
	}
	return out
}

// Fault hooks. Conditions the azeventhubs client recovers from:
// amqp:link:detach-forced (rebuilds the link), amqp:connection:forced
// (reconnects), com.microsoft:server-busy (retries).

// DetachLinks force-detaches the links match selects (nil: all), with the
// condition (default amqp:link:detach-forced). It returns how many.
func (e *Emulator) DetachLinks(match func(LinkInfo) bool, condition string) int {
	if condition == "" {
		condition = "amqp:link:detach-forced"
	}
	e.linksMu.Lock()
	var sel []*amqpserver.Link
	for l, in := range e.links {
		if match == nil || match(*in) {
			sel = append(sel, l)
		}
	}
	e.linksMu.Unlock()
	for _, l := range sel {
		l.Detach(&amqpserver.Error{Condition: condition, Description: "detached by the emulator's fault hook"})
	}
	return len(sel)
}

// DropConnections closes every client connection abruptly (no close
// frame) and returns how many.
func (e *Emulator) DropConnections() int {
	e.mu.Lock()
	conns := e.srv.Conns()
	e.mu.Unlock()
	for _, c := range conns {
		c.Drop()
	}
	return len(conns)
}

// CloseConnections closes every client connection with a close frame
// carrying the condition (default amqp:connection:forced).
func (e *Emulator) CloseConnections(condition string) int {
	if condition == "" {
		condition = "amqp:connection:forced"
	}
	e.mu.Lock()
	conns := e.srv.Conns()
	e.mu.Unlock()
	for _, c := range conns {
		c.Close(&amqpserver.Error{Condition: condition, Description: "closed by the emulator's fault hook"})
	}
	return len(conns)
}

// SetSendDelay delays every send delivery by d before it is stored and
// settled (0 turns it off).
func (e *Emulator) SetSendDelay(d time.Duration) {
	e.faultMu.Lock()
	e.sendDelay = d
	e.faultMu.Unlock()
}

// RejectSends rejects the next n send deliveries, without storing them,
// with the condition (default com.microsoft:server-busy).
func (e *Emulator) RejectSends(n int, condition string) {
	if condition == "" {
		condition = "com.microsoft:server-busy"
	}
	e.faultMu.Lock()
	e.rejectN, e.rejectCond = n, condition
	e.faultMu.Unlock()
}

// sendFault returns the delay and the rejection (if any) for one delivery.
func (e *Emulator) sendFault() (time.Duration, *amqpserver.Error) {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	if e.rejectN > 0 {
		e.rejectN--
		return e.sendDelay, &amqpserver.Error{Condition: e.rejectCond, Description: "rejected by the emulator's fault hook"}
	}
	return e.sendDelay, nil
}

func partitionString(p int) string {
	if p < 0 {
		return ""
	}
	return strconv.Itoa(p)
}
