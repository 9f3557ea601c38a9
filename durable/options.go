package durable

import (
	"fmt"
	"math"
	"time"

	"github.com/netherite-go/netherite/core"
)

// CallOption adjusts a scheduling call of an orchestration. Each option
// applies to some calls only; passing it to another call fails that call
// with an error naming the option.
type CallOption func(*callOptions)

type callOptions struct {
	retry        *RetryPolicy
	instanceID   string
	timeout      time.Duration
	hasTimeout   bool
	signalTime   time.Time
	version      string
	tags         map[string]string
	used         []string
	keepUnproces bool
}

func (c *callOptions) use(name string) { c.used = append(c.used, name) }

// WithRetry retries a failed activity or sub-orchestration under policy.
// The waits between attempts are durable timers.
func WithRetry(policy RetryPolicy) CallOption {
	return func(c *callOptions) { c.retry = &policy; c.use("WithRetry") }
}

// WithInstanceID sets the instance id of a sub-orchestration (by default
// derived from the parent's id and the call's sequence number).
func WithInstanceID(id string) CallOption {
	return func(c *callOptions) { c.instanceID = id; c.use("WithInstanceID") }
}

// WithTimeout bounds WaitForExternalEvent: if no event arrives within d of
// the orchestration's current time, the task fails with a timeout
// (IsTimeout reports it). A zero d times out at once unless an event is
// already buffered.
func WithTimeout(d time.Duration) CallOption {
	return func(c *callOptions) { c.timeout, c.hasTimeout = d, true; c.use("WithTimeout") }
}

// WithSignalTime delivers an entity signal at t instead of now.
func WithSignalTime(t time.Time) CallOption {
	return func(c *callOptions) { c.signalTime = t; c.use("WithSignalTime") }
}

// WithVersion records a version string on a sub-orchestration.
func WithVersion(v string) CallOption {
	return func(c *callOptions) { c.version = v; c.use("WithVersion") }
}

// WithTags attaches key/value tags to a sub-orchestration.
func WithTags(tags map[string]string) CallOption {
	return func(c *callOptions) { c.tags = tags; c.use("WithTags") }
}

// collect applies opts and checks that each applies to the call.
func collectOptions(call string, allowed map[string]bool, opts []CallOption) (*callOptions, error) {
	c := &callOptions{}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	for _, u := range c.used {
		if !allowed[u] {
			return nil, fmt.Errorf("option %s does not apply to %s", u, call)
		}
	}
	return c, nil
}

var (
	activityOptions = map[string]bool{"WithRetry": true}
	subOrchOptions  = map[string]bool{"WithRetry": true, "WithInstanceID": true, "WithVersion": true, "WithTags": true}
	eventOptions    = map[string]bool{"WithTimeout": true}
	signalOptions   = map[string]bool{"WithSignalTime": true}
	noOptions       = map[string]bool{}
)

// RetryPolicy says how often and how fast to retry a failed activity or
// sub-orchestration. The n-th retry waits
// min(FirstRetryInterval * BackoffCoefficient^(n-1), MaxRetryInterval).
type RetryPolicy struct {
	// MaxAttempts counts the first attempt too; at least 1.
	MaxAttempts int
	// FirstRetryInterval is the wait before the first retry; more than 0.
	FirstRetryInterval time.Duration
	// BackoffCoefficient multiplies the wait at each retry; 0 means 1.
	BackoffCoefficient float64
	// MaxRetryInterval caps a single wait; 0 means no cap.
	MaxRetryInterval time.Duration
	// RetryTimeout stops retrying once this much time has passed since the
	// first attempt was scheduled: a failure at or after that point is
	// final. 0 means no limit.
	RetryTimeout time.Duration
	// Handle decides whether a failure is worth another attempt; nil
	// retries every failure except those the engine marks non-retriable.
	Handle func(*core.FailureDetails) bool
}

func (p *RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 1:
		return fmt.Errorf("retry policy: MaxAttempts must be at least 1, got %d", p.MaxAttempts)
	case p.FirstRetryInterval <= 0:
		return fmt.Errorf("retry policy: FirstRetryInterval must be positive, got %v", p.FirstRetryInterval)
	case p.BackoffCoefficient < 0 || math.IsNaN(p.BackoffCoefficient) || math.IsInf(p.BackoffCoefficient, 0):
		return fmt.Errorf("retry policy: BackoffCoefficient must be a finite number >= 0, got %v", p.BackoffCoefficient)
	case p.MaxRetryInterval < 0 || p.RetryTimeout < 0:
		return fmt.Errorf("retry policy: MaxRetryInterval and RetryTimeout must not be negative")
	}
	return nil
}

// Delay returns the wait before retry number n (n >= 1).
func (p *RetryPolicy) Delay(n int) time.Duration {
	coeff := p.BackoffCoefficient
	if coeff == 0 {
		coeff = 1
	}
	d := float64(p.FirstRetryInterval) * math.Pow(coeff, float64(n-1))
	if p.MaxRetryInterval > 0 && d > float64(p.MaxRetryInterval) {
		return p.MaxRetryInterval
	}
	if d > float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// shouldRetry runs the predicate, turning a panic in it into "no".
func (p *RetryPolicy) shouldRetry(f *core.FailureDetails) (retry bool, panicFailure *core.FailureDetails) {
	if f.NonRetriable {
		return false, nil
	}
	if p.Handle == nil {
		return true, nil
	}
	defer func() {
		if r := recover(); r != nil {
			retry = false
			panicFailure = panicDetails(r, "retry policy Handle panicked")
			panicFailure.Inner = f
		}
	}()
	return p.Handle(f), nil
}

// ContinueAsNewOption adjusts ContinueAsNew.
type ContinueAsNewOption func(*callOptions)

// DropUnprocessedEvents discards external events that arrived but were not
// awaited, instead of carrying them over to the new execution.
func DropUnprocessedEvents() ContinueAsNewOption {
	return func(c *callOptions) { c.keepUnproces = false }
}

// SignalTime returns the delivery time that opts give an entity signal
// (zero for now), for clients that send signals.
func SignalTime(opts []CallOption) (time.Time, error) {
	c, err := collectOptions("SignalEntity", signalOptions, opts)
	if err != nil {
		return time.Time{}, err
	}
	return c.signalTime, nil
}
