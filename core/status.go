package core

import (
	"fmt"
	"strings"
)

// RuntimeStatus is the status of an orchestration instance. The numeric
// values are part of the persisted format.
type RuntimeStatus int32

// The runtime statuses of Durable Functions.
const (
	StatusPending RuntimeStatus = iota
	StatusRunning
	StatusCompleted
	StatusContinuedAsNew
	StatusFailed
	StatusCanceled
	StatusTerminated
	StatusSuspended
	statusCount
)

var statusNames = [...]string{
	StatusPending:        "Pending",
	StatusRunning:        "Running",
	StatusCompleted:      "Completed",
	StatusContinuedAsNew: "ContinuedAsNew",
	StatusFailed:         "Failed",
	StatusCanceled:       "Canceled",
	StatusTerminated:     "Terminated",
	StatusSuspended:      "Suspended",
}

// String returns the Durable Functions name of the status.
func (s RuntimeStatus) String() string {
	if s >= 0 && s < statusCount {
		return statusNames[s]
	}
	return fmt.Sprintf("RuntimeStatus(%d)", int32(s))
}

// IsTerminal reports whether an instance in this status will not run again
// unless it is recreated.
func (s RuntimeStatus) IsTerminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCanceled, StatusTerminated:
		return true
	}
	return false
}

// ParseRuntimeStatus parses a status name, ignoring case.
func ParseRuntimeStatus(name string) (RuntimeStatus, error) {
	for i, n := range statusNames {
		if strings.EqualFold(n, name) {
			return RuntimeStatus(i), nil
		}
	}
	return 0, fmt.Errorf("unknown runtime status %q (want one of %s)", name, strings.Join(statusNames[:], ", "))
}
