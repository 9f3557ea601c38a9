package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/google/uuid"
)

// ErrLeaseLost is wrapped by every write refused or rejected because this
// host no longer holds (or can no longer be sure it holds) the partition
// lease: the lease was lost or released, it was not renewed in time, the
// service rejected a write conditioned on it, or another writer changed a
// blob this host writes.
var ErrLeaseLost = errors.New("blobstore: partition lease lost")

// ErrConflict is wrapped when a write conditioned on an ETag finds the
// blob changed by someone else (with a lease, ErrLeaseLost is wrapped
// too).
var ErrConflict = errors.New("blobstore: blob changed by another writer")

// LeaseOptions configure AcquireLease. Zero fields take the defaults.
type LeaseOptions struct {
	// Duration is the lease duration the service enforces: whole seconds
	// from 15 to 60 (default 45 s).
	Duration time.Duration
	// RenewEvery is the renewal period, measured from the start of the
	// last successful renewal (default 30 s).
	RenewEvery time.Duration
	// Guard: once this long has passed since the start of the last
	// successful renewal, the lease counts as lost and writes are refused
	// (default 40 s). It must be below Duration, so that this host stops
	// writing before the service can give the lease to another.
	Guard time.Duration
	// PollEvery is how often AcquireLease retries while another owner
	// holds the lease (default 2 s).
	PollEvery time.Duration
	// ID is the proposed lease id (a GUID); default a new random one.
	ID string
}

func (o LeaseOptions) withDefaults() (LeaseOptions, error) {
	if o.Duration == 0 {
		o.Duration = 45 * time.Second
	}
	if o.RenewEvery == 0 {
		o.RenewEvery = min(30*time.Second, o.Duration*2/3)
	}
	if o.Guard == 0 {
		o.Guard = min(40*time.Second, o.Duration*8/9)
	}
	if o.PollEvery == 0 {
		o.PollEvery = 2 * time.Second
	}
	if o.ID == "" {
		o.ID = uuid.NewString()
	}
	switch {
	case o.Duration < 15*time.Second || o.Duration > 60*time.Second || o.Duration%time.Second != 0:
		return o, fmt.Errorf("blobstore: lease duration %v: Azure Storage takes whole seconds from 15 to 60", o.Duration)
	case o.Guard <= 0 || o.Guard >= o.Duration:
		return o, fmt.Errorf("blobstore: lease guard %v must be positive and below the duration %v (a host must stop writing before its lease can expire)", o.Guard, o.Duration)
	case o.RenewEvery <= 0 || o.RenewEvery >= o.Duration:
		return o, fmt.Errorf("blobstore: lease renewal period %v must be positive and below the duration %v", o.RenewEvery, o.Duration)
	case o.PollEvery < 0:
		return o, fmt.Errorf("blobstore: lease poll period %v is negative", o.PollEvery)
	}
	if _, err := uuid.Parse(o.ID); err != nil {
		return o, fmt.Errorf("blobstore: lease id %q is not a GUID", o.ID)
	}
	return o, nil
}

// Lease is a blob lease held by this host and renewed in the background.
// While it is held, Check returns nil; once it is lost (renewal rejected
// or not done within Guard, a write conditioned on it rejected), Lost is
// closed, Check and Err return an error wrapping ErrLeaseLost, and the
// devices and metadata stores given this lease refuse to write.
type Lease struct {
	c     *Container
	name  string // blob name
	opts  LeaseOptions
	blob  *blockblob.Client
	lc    *lease.BlobClient
	retry RetryOptions

	mu        sync.Mutex
	renewedAt time.Time // start of the last successful acquire or renew
	err       error     // why the lease is not held (nil while held)
	lost      chan struct{}
	renewals  int

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// AcquireLease acquires the lease on blob name in c (an empty block blob
// is created if the blob is missing), waiting while another owner holds
// it (until it is released or expires) for as long as ctx allows. The
// lease is then renewed in the background until Release.
func AcquireLease(ctx context.Context, c *Container, name string, opts LeaseOptions) (*Lease, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Lease{c: c, name: name, opts: o, blob: c.client.NewBlockBlobClient(name), retry: c.acct.retry,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	l.lc, err = lease.NewBlobClient(l.blob, &lease.BlobClientOptions{LeaseID: to.Ptr(o.ID)})
	if err != nil {
		return nil, fmt.Errorf("blobstore: lease %s: %w", l.where(), err)
	}

	// Create the blob if it is missing; an existing one is left alone.
	err = l.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := l.blob.Upload(ctx, streaming.NopCloser(bytes.NewReader(nil)), &blockblob.UploadOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || isLeaseErr(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("blobstore: lease %s: creating the lease blob: %w", l.where(), err)
	}

	// uncertain: the last Acquire Lease request got no answer from the
	// service (the caller gave up, the connection failed, the attempt timed
	// out), so the service may have granted the lease unseen. Giving up
	// then releases it by its id, or it would block every other owner until
	// it expires.
	uncertain := false
	fail := func(err error) (*Lease, error) {
		if uncertain {
			if rerr := l.releaseUnseen(); rerr != nil {
				err = fmt.Errorf("%w (the service may have granted the lease unseen, and releasing it failed: %s; it expires within %v)", err, describe(rerr), o.Duration)
			}
		}
		return nil, err
	}
	waited := false
	for {
		start := time.Now()
		var busy bool
		err := l.retry.do(ctx, nil, func(ctx context.Context) error {
			busy = false
			err := l.acquireOnce(ctx, int32(o.Duration/time.Second))
			uncertain = err != nil && !answered(err)
			if bloberror.HasCode(err, bloberror.LeaseAlreadyPresent, bloberror.LeaseIsBreakingAndCannotBeAcquired) {
				busy = true
				return nil
			}
			return err
		})
		if err != nil {
			if waited && ctx.Err() != nil {
				return fail(fmt.Errorf("blobstore: lease %s is held by another owner; gave up waiting for its release or expiry: %w", l.where(), ctx.Err()))
			}
			return fail(fmt.Errorf("blobstore: lease %s: acquire: %w", l.where(), err))
		}
		if !busy {
			if ctx.Err() != nil {
				// Granted, but the caller has given up meanwhile: let
				// the next owner in at once.
				uncertain = true
				return fail(fmt.Errorf("blobstore: lease %s: acquired after the caller gave up, so released it again: %w", l.where(), ctx.Err()))
			}
			l.renewedAt = start
			break
		}
		waited = true
		t := time.NewTimer(o.PollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("blobstore: lease %s is held by another owner; gave up waiting for its release or expiry: %w", l.where(), ctx.Err())
		case <-t.C:
		}
	}
	go l.renewLoop()
	return l, nil
}

// acquireGrace: once the caller of AcquireLease gives up, how long an
// Acquire Lease request already sent may still take to answer. Its answer
// tells whether the service granted the lease (to be released then); a
// request cancelled at once would leave that unknown.
const acquireGrace = 3 * time.Second

// acquireOnce sends one Acquire Lease request. The end of ctx does not
// abort it at once (acquireGrace).
func (l *Lease) acquireOnce(ctx context.Context, seconds int32) error {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(acquireGrace, cancel)
		context.AfterFunc(rctx, func() { t.Stop() })
	})
	defer stop()
	_, err := l.lc.AcquireLease(rctx, seconds, nil)
	if err != nil && ctx.Err() != nil && rctx.Err() != nil {
		// Cut short after the grace: report the caller's reason.
		return fmt.Errorf("%w (no answer within %v after the caller gave up: %s)", ctx.Err(), acquireGrace, describe(err))
	}
	return err
}

// answered reports whether err is the service's answer to a request
// (which then was not applied, except for server errors), rather than a
// request whose fate is unknown.
func answered(err error) bool {
	re, ok := errors.AsType[*azcore.ResponseError](err)
	if !ok {
		return false
	}
	return re.StatusCode < 500 || re.ErrorCode == string(bloberror.ServerBusy)
}

// releaseUnseen releases the lease by its id when AcquireLease gives up
// after a request whose answer it did not see: the service may hold the
// lease for this id. A lease with another id, or none, is left alone (the
// service refuses the release).
func (l *Lease) releaseUnseen() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := l.lc.ReleaseLease(ctx, nil)
		if bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation) {
			return nil // not ours: nothing to release
		}
		return err
	})
}

func (l *Lease) where() string { return l.c.name + "/" + l.name }

// ID returns the lease id.
func (l *Lease) ID() string { return l.opts.ID }

// Blob returns the name of the leased blob.
func (l *Lease) Blob() string { return l.name }

// Container returns the leased blob's container.
func (l *Lease) Container() *Container { return l.c }

// Lost is closed when the lease is lost (not when it is released).
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns nil while the lease is held, else why it is not (an error
// wrapping ErrLeaseLost).
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Renewals reports how many renewals succeeded (for tests and metrics).
func (l *Lease) Renewals() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewals
}

// Check returns nil if this host may write now: the lease is held and was
// renewed less than Guard ago. Otherwise it returns an error wrapping
// ErrLeaseLost (and, the first time the guard passes, declares the lease
// lost).
func (l *Lease) Check() error {
	_, err := l.guard()
	return err
}

// guard is Check that also returns the latest time a write that starts
// now may still be running: halfway between the guard and the expiry the
// service enforces, measured from the last renewal's start (the service
// starts its clock when the renewal arrives, which is later).
func (l *Lease) guard() (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return time.Time{}, l.err
	}
	since := time.Since(l.renewedAt)
	if since >= l.opts.Guard {
		l.loseLocked(fmt.Errorf("not renewed for %v (guard %v, lease duration %v)", since.Round(time.Millisecond), l.opts.Guard, l.opts.Duration))
		return time.Time{}, l.err
	}
	return l.renewedAt.Add(l.opts.Guard + (l.opts.Duration-l.opts.Guard)/2), nil
}

// markLost declares the lease lost because a write conditioned on it (or
// on a blob this host writes) was rejected.
func (l *Lease) markLost(reason error) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loseLocked(reason)
}

func (l *Lease) loseLocked(reason error) {
	if l.err != nil {
		return
	}
	l.err = fmt.Errorf("%w: %s: %w", ErrLeaseLost, l.where(), reason)
	close(l.lost)
}

// renewLoop renews the lease every RenewEvery; a renewal that fails with
// a transient error is retried until the guard passes.
func (l *Lease) renewLoop() {
	defer close(l.done)
	retryDelay := time.Duration(0)
	for {
		l.mu.Lock()
		if l.err != nil {
			l.mu.Unlock()
			return
		}
		guardAt := l.renewedAt.Add(l.opts.Guard)
		next := l.renewedAt.Add(l.opts.RenewEvery)
		if retryDelay > 0 {
			next = time.Now().Add(retryDelay)
		}
		if next.After(guardAt) {
			next = guardAt
		}
		l.mu.Unlock()

		t := time.NewTimer(time.Until(next))
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(guardAt) {
			l.Check() // declares the loss
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), guardAt)
		go func() { // Release stops a renewal in flight
			select {
			case <-l.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		start := time.Now()
		_, err := l.lc.RenewLease(ctx, nil)
		expired := ctx.Err() != nil
		cancel()
		if err == nil {
			l.mu.Lock()
			if l.err == nil {
				l.renewedAt = start
				l.renewals++
			}
			l.mu.Unlock()
			retryDelay = 0
			continue
		}
		select {
		case <-l.stop:
			return
		default:
		}
		if transient, _ := classify(err, expired); !transient {
			l.markLost(fmt.Errorf("renewal rejected: %s", describe(err)))
			return
		}
		retryDelay = min(max(2*retryDelay, 100*time.Millisecond), 2*time.Second, l.opts.RenewEvery)
	}
}

// Verify asks the service whether this host still holds the lease (by
// renewing it). If the service says no, the lease is lost.
func (l *Lease) Verify() error {
	if err := l.Check(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := l.lc.RenewLease(ctx, nil)
	if err == nil {
		l.mu.Lock()
		if l.err == nil {
			l.renewedAt = start
			l.renewals++
		}
		l.mu.Unlock()
		return nil
	}
	if transient, _ := classify(err, ctx.Err() != nil); !transient {
		l.markLost(fmt.Errorf("renewal rejected: %s", describe(err)))
		return l.Check()
	}
	return fmt.Errorf("%w: could not verify the lease: %s", ErrLeaseLost, describe(err))
}

// Release stops the renewals and releases the lease, so that another
// owner can acquire it at once. Afterwards writes under this lease are
// refused (ErrLeaseLost, "released"); Lost is not closed. Releasing a
// lost lease only stops the renewals.
func (l *Lease) Release() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return nil
	}
	l.err = fmt.Errorf("%w: %s: released", ErrLeaseLost, l.where())
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := l.lc.ReleaseLease(ctx, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: lease %s: release: %w", l.where(), err)
	}
	return nil
}

// Abandon stops the renewals without releasing the lease, as a host that
// dies would: the service keeps the lease until it expires, and then
// gives it to the next owner. Writes under it are refused from now on
// (ErrLeaseLost, "abandoned"); Lost is not closed. Tests kill hosts with
// it; Release is the graceful way.
func (l *Lease) Abandon() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = fmt.Errorf("%w: %s: abandoned", ErrLeaseLost, l.where())
	}
}

// leaseConditions conditions a write on this lease.
func (l *Lease) leaseConditions() *blob.LeaseAccessConditions {
	return &blob.LeaseAccessConditions{LeaseID: to.Ptr(l.opts.ID)}
}

// isLeaseErr reports a write rejected because of the blob's lease.
func isLeaseErr(err error) bool {
	return bloberror.HasCode(err, bloberror.LeaseIDMismatchWithBlobOperation, bloberror.LeaseLost,
		bloberror.LeaseNotPresentWithBlobOperation, bloberror.LeaseIDMissing)
}

// BreakLease breaks the lease on blob name at once (break period 0), for
// operators and tests: the holder's next conditioned write fails and it
// loses the lease at its next renewal.
func BreakLease(ctx context.Context, c *Container, name string) error {
	lc, err := lease.NewBlobClient(c.client.NewBlobClient(name), nil)
	if err != nil {
		return fmt.Errorf("blobstore: break lease %s/%s: %w", c.name, name, err)
	}
	err = c.acct.retry.do(ctx, nil, func(ctx context.Context) error {
		_, err := lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to.Ptr(int32(0))})
		return err
	})
	if err != nil {
		return fmt.Errorf("blobstore: break lease %s/%s: %w", c.name, name, err)
	}
	return nil
}
