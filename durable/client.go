package durable

import (
	"context"
	"errors"
	"time"

	"github.com/netherite-go/netherite/core"
)

// Client manages orchestration instances and entities from outside: it
// starts, inspects, signals, stops and deletes them. The engine (package
// netherite) and the HTTP API implement it. All methods are safe for
// concurrent use. Errors about a missing instance wrap ErrInstanceNotFound.
type Client interface {
	// StartOrchestration creates an instance of the named orchestrator and
	// returns its instance id (a new UUID unless WithStartInstanceID is
	// given). It returns once the creation is durable. If an instance with
	// that id exists, WithIDReusePolicy decides (by default it is an error
	// wrapping ErrInstanceExists unless the existing one has ended).
	StartOrchestration(ctx context.Context, orchestrator string, input any, opts ...StartOption) (string, error)

	// GetStatus returns the status of an instance, with input, output and
	// custom status if WithPayloads, and with history if WithHistory.
	GetStatus(ctx context.Context, instanceID string, opts ...StatusOption) (*OrchestrationStatus, error)
	// WaitForStart returns the status once the instance has started
	// running (or ended), or when ctx is done.
	WaitForStart(ctx context.Context, instanceID string, opts ...StatusOption) (*OrchestrationStatus, error)
	// WaitForCompletion returns the status once the instance has reached
	// a final status (Completed, Failed, Terminated, Canceled; not
	// ContinuedAsNew), or when ctx is done.
	WaitForCompletion(ctx context.Context, instanceID string, opts ...StatusOption) (*OrchestrationStatus, error)

	// RaiseEvent delivers an external event to an instance.
	RaiseEvent(ctx context.Context, instanceID, eventName string, payload any) error
	// Terminate ends a running instance with status Terminated; reason
	// becomes its output. WithRecursive terminates its sub-orchestrations
	// too. Terminating an ended instance does nothing.
	Terminate(ctx context.Context, instanceID string, reason any, opts ...TerminateOption) error
	// Suspend pauses an instance: events are kept until Resume.
	Suspend(ctx context.Context, instanceID, reason string) error
	// Resume continues a suspended instance.
	Resume(ctx context.Context, instanceID, reason string) error

	// Purge deletes an ended instance and its history. It returns the
	// number of instances deleted (0 or 1; more with WithRecursive).
	Purge(ctx context.Context, instanceID string, opts ...PurgeOption) (int, error)
	// PurgeWhere deletes every ended instance that the filter matches, on
	// every partition, and returns how many it deleted.
	PurgeWhere(ctx context.Context, filter PurgeFilter) (int, error)
	// Query lists instances that match q, one page at a time; pass the
	// returned ContinuationToken back in q to get the next page.
	Query(ctx context.Context, q InstanceQuery) (*InstancePage, error)

	// SignalEntity sends a one-way operation to an entity, creating it if
	// needed. WithSignalTime delays delivery.
	SignalEntity(ctx context.Context, id core.EntityID, operation string, input any, opts ...CallOption) error
	// GetEntity returns an entity's metadata, and its state if
	// includeState; an entity without state is ErrEntityNotFound.
	GetEntity(ctx context.Context, id core.EntityID, includeState bool) (*EntityMetadata, error)
	// ListEntities lists entities, one page at a time.
	ListEntities(ctx context.Context, q EntityQuery) (*EntityPage, error)
	// DeleteEntity deletes an entity's state, as if an operation had
	// called DeleteState; requests waiting for it are kept. An entity
	// without state is ErrEntityNotFound.
	DeleteEntity(ctx context.Context, id core.EntityID) error
}

// Errors the client methods wrap.
var (
	ErrInstanceNotFound = errors.New("instance not found")
	ErrInstanceExists   = errors.New("instance already exists")
	ErrEntityNotFound   = errors.New("entity not found")
	// ErrNotRunning is returned for operations that need a running
	// instance (raise, suspend, resume) on one that has ended.
	ErrNotRunning = errors.New("instance is not running")
	// ErrStillRunning is returned for operations that need an ended
	// instance (purge) on one that has not ended.
	ErrStillRunning = errors.New("instance is still running")
	// ErrInvalidArgument is wrapped by errors about bad input from the
	// caller: invalid ids, names, JSON, continuation tokens.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrPayloadTooLarge is wrapped by errors about payloads over the
	// host's limit.
	ErrPayloadTooLarge = errors.New("payload too large")
)

// IDReusePolicy says what StartOrchestration does when an instance with
// the requested id already exists.
type IDReusePolicy int

const (
	// ReuseIfEnded (the default) replaces an ended instance (Completed,
	// Failed, Terminated, Canceled) and fails with ErrInstanceExists if it
	// is Pending, Running or Suspended.
	ReuseIfEnded IDReusePolicy = iota
	// ReuseError fails with ErrInstanceExists whatever the state of the
	// existing instance.
	ReuseError
	// ReuseIgnore leaves a running instance alone and returns its id
	// without error; an ended instance is replaced.
	ReuseIgnore
	// ReuseTerminate terminates a running instance and replaces it.
	ReuseTerminate
)

// StartOption adjusts StartOrchestration.
type StartOption func(*StartOptions)

// StartOptions are the collected StartOption values; engines read them.
type StartOptions struct {
	InstanceID string
	StartAt    time.Time
	Reuse      IDReusePolicy
	Tags       map[string]string
	Version    string
}

// CollectStartOptions applies opts.
func CollectStartOptions(opts []StartOption) StartOptions {
	var s StartOptions
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// WithStartInstanceID sets the instance id instead of a new UUID.
func WithStartInstanceID(id string) StartOption {
	return func(s *StartOptions) { s.InstanceID = id }
}

// WithStartTime delays the start until t (never before).
func WithStartTime(t time.Time) StartOption { return func(s *StartOptions) { s.StartAt = t } }

// WithIDReusePolicy sets what happens when the instance id is taken.
func WithIDReusePolicy(p IDReusePolicy) StartOption { return func(s *StartOptions) { s.Reuse = p } }

// WithStartTags attaches key/value tags to the instance.
func WithStartTags(tags map[string]string) StartOption {
	return func(s *StartOptions) { s.Tags = tags }
}

// WithStartVersion records a version string on the instance.
func WithStartVersion(v string) StartOption { return func(s *StartOptions) { s.Version = v } }

// StatusOption adjusts what GetStatus and the waits return.
type StatusOption func(*StatusOptions)

// StatusOptions are the collected StatusOption values.
type StatusOptions struct {
	Payloads bool
	History  bool
}

// CollectStatusOptions applies opts.
func CollectStatusOptions(opts []StatusOption) StatusOptions {
	var s StatusOptions
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// WithPayloads includes input, output and custom status.
func WithPayloads() StatusOption { return func(s *StatusOptions) { s.Payloads = true } }

// WithHistory includes the history of the current execution.
func WithHistory() StatusOption { return func(s *StatusOptions) { s.History = true } }

// TerminateOption adjusts Terminate.
type TerminateOption func(*TerminateOptions)

// TerminateOptions are the collected TerminateOption values.
type TerminateOptions struct{ Recursive bool }

// CollectTerminateOptions applies opts.
func CollectTerminateOptions(opts []TerminateOption) TerminateOptions {
	var s TerminateOptions
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// WithRecursiveTerminate also terminates the instance's running
// sub-orchestrations, and theirs.
func WithRecursiveTerminate() TerminateOption {
	return func(s *TerminateOptions) { s.Recursive = true }
}

// PurgeOption adjusts Purge.
type PurgeOption func(*PurgeOptions)

// PurgeOptions are the collected PurgeOption values.
type PurgeOptions struct{ Recursive bool }

// CollectPurgeOptions applies opts.
func CollectPurgeOptions(opts []PurgeOption) PurgeOptions {
	var s PurgeOptions
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// WithRecursivePurge also purges the instance's sub-orchestrations.
func WithRecursivePurge() PurgeOption { return func(s *PurgeOptions) { s.Recursive = true } }

// OrchestrationStatus is what a client sees of an instance.
type OrchestrationStatus struct {
	InstanceID    string
	ExecutionID   string
	Name          string
	Version       string
	RuntimeStatus core.RuntimeStatus
	CreatedAt     time.Time
	LastUpdatedAt time.Time
	// ScheduledStartAt is set for an instance created with WithStartTime.
	ScheduledStartAt time.Time
	ParentInstanceID string
	Tags             map[string]string
	// Input, Output and CustomStatus are raw payloads, present only when
	// requested with WithPayloads. Output of a Terminated instance is the
	// termination reason.
	Input        []byte
	Output       []byte
	CustomStatus []byte
	// Failure is set for a Failed instance.
	Failure *core.FailureDetails
	// History is present only when requested with WithHistory.
	History []*core.HistoryEvent

	// Converter decodes the payloads; JSON if nil.
	Converter Converter
}

func (s *OrchestrationStatus) conv() Converter {
	if s.Converter == nil {
		return JSONConverter{}
	}
	return s.Converter
}

// ReadInput decodes the input into v.
func (s *OrchestrationStatus) ReadInput(v any) error { return s.conv().Unmarshal(s.Input, v) }

// ReadOutput decodes the output into v.
func (s *OrchestrationStatus) ReadOutput(v any) error { return s.conv().Unmarshal(s.Output, v) }

// ReadCustomStatus decodes the custom status into v.
func (s *OrchestrationStatus) ReadCustomStatus(v any) error {
	return s.conv().Unmarshal(s.CustomStatus, v)
}

// IsFinal reports whether the instance has reached a final status.
func (s *OrchestrationStatus) IsFinal() bool { return s.RuntimeStatus.IsTerminal() }

// PurgeFilter selects ended instances to purge. Zero times are open ends;
// empty Statuses means every final status.
type PurgeFilter struct {
	CreatedFrom time.Time
	CreatedTo   time.Time
	Statuses    []core.RuntimeStatus
}

// InstanceQuery selects instances. Zero fields do not filter.
type InstanceQuery struct {
	InstanceIDPrefix string
	CreatedFrom      time.Time
	CreatedTo        time.Time
	Statuses         []core.RuntimeStatus
	// PageSize caps the instances of one page (default 100).
	PageSize int
	// ContinuationToken resumes a query where the previous page ended.
	ContinuationToken string
	// WithPayloads includes input, output and custom status.
	WithPayloads bool
}

// InstancePage is one page of a query.
type InstancePage struct {
	Instances []*OrchestrationStatus
	// ContinuationToken is empty on the last page.
	ContinuationToken string
}

// EntityMetadata is what a client sees of an entity.
type EntityMetadata struct {
	ID            core.EntityID
	LastUpdatedAt time.Time
	// LockedBy is the orchestration holding the entity's lock, if any.
	LockedBy string
	// QueueLength counts requests waiting for the lock.
	QueueLength int
	// State is the raw state, present when requested.
	State []byte
	// Converter decodes the state; JSON if nil.
	Converter Converter
}

// ReadState decodes the state into v.
func (m *EntityMetadata) ReadState(v any) error {
	c := m.Converter
	if c == nil {
		c = JSONConverter{}
	}
	return c.Unmarshal(m.State, v)
}

// EntityQuery selects entities.
type EntityQuery struct {
	// Name, if set, restricts to entities of that name.
	Name string
	// KeyPrefix, if set, restricts to keys that start with it.
	KeyPrefix         string
	LastUpdatedFrom   time.Time
	LastUpdatedTo     time.Time
	IncludeState      bool
	PageSize          int
	ContinuationToken string
}

// EntityPage is one page of an entity listing.
type EntityPage struct {
	Entities          []*EntityMetadata
	ContinuationToken string
}
