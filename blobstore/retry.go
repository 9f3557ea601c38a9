package blobstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// RetryOptions bound the retries of storage requests. Throttling (HTTP
// 429, 503), server errors (500, 502, 504), request timeouts (408) and
// transport errors (connection refused or reset, per-attempt timeouts)
// are retried with exponential backoff and jitter, honouring the
// service's Retry-After; any other error is returned at once. When the
// attempts run out, the error says how many were made and wraps the last
// one.
type RetryOptions struct {
	// MaxAttempts is the number of attempts, the first included
	// (default 8).
	MaxAttempts int
	// InitialDelay is the delay before the second attempt; it doubles
	// with each further one (default 200 ms).
	InitialDelay time.Duration
	// MaxDelay caps one delay (default 10 s).
	MaxDelay time.Duration
	// TryTimeout bounds one attempt (default 60 s).
	TryTimeout time.Duration
}

func (r RetryOptions) withDefaults() (RetryOptions, error) {
	if r.MaxAttempts < 0 || r.InitialDelay < 0 || r.MaxDelay < 0 || r.TryTimeout < 0 {
		return r, fmt.Errorf("blobstore: RetryOptions must not be negative: %+v", r)
	}
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 8
	}
	if r.InitialDelay == 0 {
		r.InitialDelay = 200 * time.Millisecond
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = 10 * time.Second
	}
	if r.TryTimeout == 0 {
		r.TryTimeout = 60 * time.Second
	}
	return r, nil
}

// permanent marks an error an attempt returns that must not be retried.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// attemptsError is returned when the attempts run out.
type attemptsError struct {
	attempts int
	elapsed  time.Duration
	last     error
}

func (e *attemptsError) Error() string {
	return fmt.Sprintf("gave up after %d attempts over %v; last error: %s", e.attempts, e.elapsed.Round(time.Millisecond), describe(e.last))
}
func (e *attemptsError) Unwrap() error { return e.last }

// guardFunc is called before each attempt; an error stops the retries
// (the lease is lost). It returns the latest time the attempt may run
// until (zero: no limit).
type guardFunc func() (time.Time, error)

// do runs fn until it succeeds, fails with an error that is not
// transient, or the attempts run out. Each attempt gets a context bounded
// by TryTimeout (and by the guard's deadline).
func (r RetryOptions) do(ctx context.Context, guard guardFunc, fn func(ctx context.Context) error) error {
	_, err := r.doTracked(ctx, guard, fn)
	return err
}

// doTracked is do, also reporting whether an attempt failed in a way
// that leaves its effect unknown (a transport error or timeout, or a
// server error after the request reached the service): a write that
// then fails on a condition may have been applied by that attempt.
func (r RetryOptions) doTracked(ctx context.Context, guard guardFunc, fn func(ctx context.Context) error) (ambiguous bool, err error) {
	start := time.Now()
	var last error
	for attempt := 1; ; attempt++ {
		var limit time.Time
		if guard != nil {
			var gerr error
			if limit, gerr = guard(); gerr != nil {
				if last != nil {
					return ambiguous, fmt.Errorf("%w (after %d attempts; last error: %s)", gerr, attempt-1, describe(last))
				}
				return ambiguous, gerr
			}
		}
		tryCtx, cancel := context.WithTimeout(ctx, r.TryTimeout)
		if !limit.IsZero() {
			tryCtx, cancel = withDeadline(tryCtx, cancel, limit)
		}
		err := fn(tryCtx)
		tryExpired := tryCtx.Err() != nil
		cancel()
		if err == nil {
			return ambiguous, nil
		}
		if p, ok := errors.AsType[*permanent](err); ok {
			return ambiguous, p.err
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return ambiguous, fmt.Errorf("%w (after %d attempts; last error: %s)", ctx.Err(), attempt, describe(last))
		}
		transient, maybeApplied := classify(err, tryExpired)
		if !transient {
			return ambiguous, short(err)
		}
		ambiguous = ambiguous || maybeApplied
		last = err
		if attempt >= r.MaxAttempts {
			return ambiguous, &attemptsError{attempts: attempt, elapsed: time.Since(start), last: last}
		}
		delay := r.backoff(attempt, err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ambiguous, fmt.Errorf("%w (after %d attempts; last error: %s)", ctx.Err(), attempt, describe(last))
		case <-t.C:
		}
	}
}

func withDeadline(ctx context.Context, cancel context.CancelFunc, d time.Time) (context.Context, context.CancelFunc) {
	c2, cancel2 := context.WithDeadline(ctx, d)
	return c2, func() { cancel2(); cancel() }
}

// backoff returns the delay after the given (1-based) failed attempt:
// exponential with jitter in [d/2, d], at least the service's Retry-After,
// at most MaxDelay.
func (r RetryOptions) backoff(attempt int, err error) time.Duration {
	d := r.InitialDelay << min(attempt-1, 30)
	if d <= 0 || d > r.MaxDelay {
		d = r.MaxDelay
	}
	d = d/2 + rand.N(d/2+1)
	if ra := retryAfter(err); ra > d {
		d = min(ra, r.MaxDelay)
	}
	return d
}

func retryAfter(err error) time.Duration {
	re, ok := errors.AsType[*azcore.ResponseError](err)
	if !ok || re.RawResponse == nil {
		return 0
	}
	h := re.RawResponse.Header
	if ms, err := strconv.Atoi(h.Get("x-ms-retry-after-ms")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// classify tells whether err is transient and whether the failed request
// may nevertheless have been applied.
func classify(err error, tryExpired bool) (transient, maybeApplied bool) {
	if re, ok := errors.AsType[*azcore.ResponseError](err); ok {
		switch re.StatusCode {
		case http.StatusTooManyRequests, http.StatusRequestTimeout:
			return true, false
		case http.StatusServiceUnavailable:
			// ServerBusy is returned before the request is processed.
			return true, re.ErrorCode != "ServerBusy"
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
			return true, true
		}
		return false, false
	}
	if errors.Is(err, context.Canceled) && !tryExpired {
		return false, false
	}
	// Transport errors and per-attempt timeouts: the request may or may
	// not have reached the service.
	return true, true
}

// describe renders an error briefly: for a service error its status and
// code (the SDK's message spans lines and repeats headers), for a
// transport error the operation with the URL's query removed (a SAS lives
// there).
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	if re, ok := errors.AsType[*azcore.ResponseError](err); ok {
		s := fmt.Sprintf("HTTP %d", re.StatusCode)
		if re.ErrorCode != "" {
			s += " " + re.ErrorCode
		}
		return s
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		u := ue.URL
		if p, perr := url.Parse(u); perr == nil {
			p.RawQuery = ""
			u = p.String()
		} else if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		return fmt.Sprintf("%s %s: %v", ue.Op, u, ue.Err)
	}
	return err.Error()
}

// statusError wraps a service error so that its message is the short
// description; errors.As still finds the *azcore.ResponseError.
type statusError struct{ err error }

func (e *statusError) Error() string { return describe(e.err) }
func (e *statusError) Unwrap() error { return e.err }

// short makes an error from the SDK printable on one line.
func short(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*azcore.ResponseError](err); ok {
		if _, already := err.(*statusError); !already {
			return &statusError{err}
		}
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		return &statusError{err}
	}
	return err
}
