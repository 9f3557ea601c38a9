package durable

import (
	"errors"
	"fmt"

	"github.com/netherite-go/netherite/core"
)

// Task is the pending result of a scheduling call in an orchestration:
// an activity, a sub-orchestration, a timer, an external event, an entity
// call, or a combination of those (WhenAll, WhenAny).
//
// Tasks belong to the orchestration that created them and may only be
// awaited from its function (not from other goroutines).
type Task interface {
	// Await blocks the orchestration until the task is done, then decodes
	// its result into out (out may be nil). A failed task returns a
	// *TaskFailedError that carries the failure details.
	Await(out any) error
	// Done reports whether the task has completed.
	Done() bool

	base() *task
}

// Future is a Task whose result has a known type.
type Future[T any] struct{ Task }

// Get awaits the task and returns its result.
func (f Future[T]) Get() (T, error) {
	var v T
	err := f.Await(&v)
	return v, err
}

// Await awaits a task and returns its result as a T.
func Await[T any](t Task) (T, error) { return Future[T]{t}.Get() }

// TaskFailedError is returned by Await for a task that failed.
type TaskFailedError struct {
	// Kind is "activity", "sub-orchestration", "entity operation", "timer",
	// "external event" or "task".
	Kind    string
	Name    string
	TaskID  int32
	Failure *core.FailureDetails
}

func (e *TaskFailedError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("%s %q (task %d) failed: %v", e.Kind, e.Name, e.TaskID, e.Failure)
	}
	return fmt.Sprintf("%s (task %d) failed: %v", e.Kind, e.TaskID, e.Failure)
}

// Unwrap gives the failure details, so errors.As(err, &*core.FailureDetails)
// works.
func (e *TaskFailedError) Unwrap() error { return e.Failure }

// IsTimeout reports whether err is the timeout of an external event wait.
func IsTimeout(err error) bool {
	var f *core.FailureDetails
	return errors.As(err, &f) && f.Type == core.FailureTimeout
}

// task is the one implementation of Task. All its fields are touched only
// by whichever of the executor or the orchestration goroutine holds the
// baton (see orchestration.go), so it needs no locks.
type task struct {
	o         *orchestration
	kind      string
	name      string
	id        int32
	done      bool
	result    []byte
	failure   *core.FailureDetails
	callbacks []func()
	// decode, if set, interprets Await's out parameter (WhenAny).
	decode func(out any) error
	// failedChild is the task whose failure a WhenAll reports.
	failedChild *task
}

func (t *task) base() *task { return t }

func (t *task) Done() bool { return t.done }

func (t *task) Await(out any) error {
	for !t.done {
		if t.o == nil {
			panic("durable: Await on a task that can never complete")
		}
		t.o.suspend(t)
	}
	if t.failure != nil {
		src := t
		if t.failedChild != nil {
			src = t.failedChild
		}
		return &TaskFailedError{Kind: src.kind, Name: src.name, TaskID: src.id, Failure: src.failure}
	}
	if t.decode != nil {
		return t.decode(out)
	}
	if out == nil || len(t.result) == 0 {
		return nil
	}
	if err := t.o.converter.Unmarshal(t.result, out); err != nil {
		return fmt.Errorf("decode result of %s %q into %T: %w", t.kind, t.name, out, err)
	}
	return nil
}

func (t *task) complete(result []byte, failure *core.FailureDetails) {
	if t.done {
		return
	}
	t.done, t.result, t.failure = true, result, failure
	cbs := t.callbacks
	t.callbacks = nil
	for _, cb := range cbs {
		cb()
	}
}

// onDone runs cb when the task completes (at once if it already has).
func (t *task) onDone(cb func()) {
	if t.done {
		cb()
		return
	}
	t.callbacks = append(t.callbacks, cb)
}

func failedTask(o *orchestration, kind, name, typ, msg string) *task {
	t := &task{o: o, kind: kind, name: name, id: core.NoEventID}
	t.complete(nil, &core.FailureDetails{Type: typ, Message: msg, NonRetriable: true})
	return t
}

// WhenAll returns a task that completes when every task has completed. Its
// error is that of the first failed task in argument order; await each
// task for its own result. It is linear in the number of tasks.
func WhenAll(tasks ...Task) Task {
	all := &task{kind: "task", name: "WhenAll", id: core.NoEventID}
	remaining := len(tasks)
	finish := func() {
		for _, t := range tasks {
			if b := t.base(); b.failure != nil {
				all.failedChild = b
				all.complete(nil, b.failure)
				return
			}
		}
		all.complete(nil, nil)
	}
	for _, t := range tasks {
		b := t.base()
		if all.o == nil {
			all.o = b.o
		}
		b.onDone(func() {
			remaining--
			if remaining == 0 {
				finish()
			}
		})
	}
	if len(tasks) == 0 {
		all.complete(nil, nil)
	}
	return all
}

// WhenAny returns a task that completes as soon as one of the tasks has
// completed, successfully or not. Awaiting it never fails: it stores the
// index of the first completed task into an *int, or that task into a
// *Task.
func WhenAny(tasks ...Task) Task {
	anyT := &task{kind: "task", name: "WhenAny", id: core.NoEventID}
	winner := -1
	anyT.decode = func(out any) error {
		switch p := out.(type) {
		case nil:
		case *int:
			*p = winner
		case *Task:
			if winner >= 0 {
				*p = tasks[winner]
			}
		default:
			return fmt.Errorf("WhenAny: Await wants an *int or a *durable.Task, got %T", out)
		}
		return nil
	}
	for i, t := range tasks {
		b := t.base()
		if anyT.o == nil {
			anyT.o = b.o
		}
		b.onDone(func() {
			if winner < 0 {
				winner = i
				anyT.complete(nil, nil)
			}
		})
	}
	if len(tasks) == 0 {
		anyT.complete(nil, nil)
	}
	return anyT
}
