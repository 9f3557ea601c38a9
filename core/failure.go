package core

import "strings"

// FailureDetails describes why a task or an orchestration failed. It is an
// error, so failures can travel through ordinary Go error handling.
type FailureDetails struct {
	// Type names the kind of failure: the Go type of the error, "panic",
	// or one of the engine's kinds such as "NonDeterminismError".
	Type       string
	Message    string
	StackTrace string
	Inner      *FailureDetails
	// NonRetriable is set by the engine for failures that a retry cannot
	// fix (unknown names, bad input).
	NonRetriable bool
}

// Error returns "Type: Message", followed by the inner failures.
func (f *FailureDetails) Error() string {
	if f == nil {
		return "<nil failure>"
	}
	var b strings.Builder
	for i, cur := 0, f; cur != nil; i, cur = i+1, cur.Inner {
		if i > 0 {
			b.WriteString(" <- ")
		}
		if cur.Type != "" {
			b.WriteString(cur.Type)
			b.WriteString(": ")
		}
		b.WriteString(cur.Message)
	}
	return b.String()
}

// Clone returns a deep copy of f.
func (f *FailureDetails) Clone() *FailureDetails {
	if f == nil {
		return nil
	}
	c := *f
	c.Inner = f.Inner.Clone()
	return &c
}

// Failure kinds produced by the engine and the SDK.
const (
	FailureNonDeterminism = "NonDeterminismError"
	FailureNotRegistered  = "NotRegisteredError"
	FailureInvalidInput   = "InvalidInputError"
	FailurePanic          = "panic"
	FailureTimeout        = "TimeoutError"
	FailureLockingRules   = "LockingRulesViolation"
	FailureTaskFailed     = "TaskFailedError"
	FailureSerialization  = "SerializationError"
	FailureTerminated     = "Terminated"
)
