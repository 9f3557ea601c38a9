package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/netherite-go/netherite/core"
	"github.com/netherite-go/netherite/durable"
)

// Time formats of Durable Functions: the status times are written with
// .NET's "s" format plus "Z" (whole seconds); history and entity times are
// Json.NET DateTimes (up to 7 fractional digits, trailing zeros dropped).
const (
	statusTimeLayout = "2006-01-02T15:04:05Z"
	eventTimeLayout  = "2006-01-02T15:04:05.9999999Z07:00"
)

func statusTime(t time.Time) string { return t.UTC().Format(statusTimeLayout) }
func eventTime(t time.Time) string  { return t.UTC().Format(eventTimeLayout) }

// payloadJSON returns a stored payload as JSON: the payload itself if it
// is JSON, null if it is empty, and otherwise the payload as a JSON string
// (as Durable Functions does for, say, a plain-text termination reason).
func payloadJSON(b []byte) json.RawMessage {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(bytes.Clone(b))
	}
	s, _ := json.Marshal(string(b))
	return s
}

// statusPayload is the status of an instance, as Durable Functions'
// StatusResponsePayload.
type statusPayload struct {
	Name            string          `json:"name"`
	InstanceID      string          `json:"instanceId"`
	RuntimeStatus   string          `json:"runtimeStatus"`
	Input           json.RawMessage `json:"input"`
	CustomStatus    json.RawMessage `json:"customStatus"`
	Output          json.RawMessage `json:"output"`
	CreatedTime     string          `json:"createdTime"`
	LastUpdatedTime string          `json:"lastUpdatedTime"`
	HistoryEvents   *[]jsonObject   `json:"historyEvents,omitempty"`
}

type statusView struct {
	showInput, showHistory, showHistoryOutput bool
}

func newStatusPayload(s *durable.OrchestrationStatus, v statusView) *statusPayload {
	p := &statusPayload{
		Name: s.Name, InstanceID: s.InstanceID, RuntimeStatus: s.RuntimeStatus.String(),
		CustomStatus: payloadJSON(s.CustomStatus), Output: payloadJSON(s.Output),
		CreatedTime: statusTime(s.CreatedAt), LastUpdatedTime: statusTime(s.LastUpdatedAt),
	}
	if v.showInput {
		p.Input = payloadJSON(s.Input)
	}
	if s.RuntimeStatus == core.StatusFailed && p.Output == nil && s.Failure != nil {
		// Durable Functions' output of a failed orchestration is the
		// message of its exception.
		p.Output, _ = json.Marshal(fmt.Sprintf("Orchestrator function '%s' failed: %s", s.Name, s.Failure.Message))
	}
	if v.showHistory && s.RuntimeStatus != core.StatusPending {
		h := convertHistory(s.History, v)
		p.HistoryEvents = &h
	}
	return p
}

// jsonObject is a JSON object whose fields keep their order, as the
// JObjects of Durable Functions' history do.
type jsonObject []field

type field struct {
	k string
	v any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		b.Write(k)
		b.WriteByte(':')
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(f.v); err != nil {
			return nil, err
		}
		b.Write(bytes.TrimRight(buf.Bytes(), "\n"))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o *jsonObject) add(k string, v any) { *o = append(*o, field{k, v}) }

// failureJSON is DurableTask.Core's FailureDetails.
type failureJSON struct {
	ErrorType      string       `json:"ErrorType"`
	ErrorMessage   string       `json:"ErrorMessage"`
	StackTrace     string       `json:"StackTrace,omitempty"`
	InnerFailure   *failureJSON `json:"InnerFailure,omitempty"`
	IsNonRetriable bool         `json:"IsNonRetriable"`
}

func newFailureJSON(f *core.FailureDetails) *failureJSON {
	if f == nil {
		return nil
	}
	return &failureJSON{ErrorType: f.Type, ErrorMessage: f.Message, StackTrace: f.StackTrace,
		InnerFailure: newFailureJSON(f.Inner), IsNonRetriable: f.NonRetriable}
}

// eventTypeName gives the DurableTask.Core EventType name of a kind.
func eventTypeName(k core.EventKind) string {
	switch k {
	case core.EventContinuedAsNew:
		return "ContinueAsNew"
	case core.EventEntityLockReleased:
		return "EntityUnlockSent"
	}
	return k.String()
}

// convertHistory shapes the history as Durable Functions' status API
// does: event types by name, OrchestratorStarted/Completed dropped, each
// completed TaskScheduled and SubOrchestrationInstanceCreated folded into
// its completion (which gains FunctionName and ScheduledTime), inputs only
// with showInput and results only with showHistoryOutput.
func convertHistory(events []*core.HistoryEvent, v statusView) []jsonObject {
	completed := map[int32]bool{}
	scheduled := map[int32]*core.HistoryEvent{}
	for _, e := range events {
		switch e.Kind {
		case core.EventTaskScheduled, core.EventSubOrchestrationCreated:
			scheduled[e.EventID] = e
		case core.EventTaskCompleted, core.EventTaskFailed,
			core.EventSubOrchestrationCompleted, core.EventSubOrchestrationFailed:
			completed[e.TaskScheduledID] = true
		}
	}
	out := make([]jsonObject, 0, len(events))
	for _, e := range events {
		o := jsonObject{{"EventType", eventTypeName(e.Kind)}, {"Timestamp", eventTime(e.Timestamp)}}
		input := func(key string, b []byte) {
			if v.showInput {
				o.add(key, payloadJSON(b))
			}
		}
		result := func(key string, b []byte) {
			if v.showHistoryOutput {
				o.add(key, payloadJSON(b))
			}
		}
		folded := func() {
			if s := scheduled[e.TaskScheduledID]; s != nil {
				o.add("ScheduledTime", eventTime(s.Timestamp))
				o.add("FunctionName", s.Name)
				input("Input", s.Input)
			}
		}
		failure := func() {
			if e.Failure != nil {
				o.add("Reason", e.Failure.Message)
				o.add("Details", e.Failure.StackTrace)
				o.add("FailureDetails", newFailureJSON(e.Failure))
			}
		}
		switch e.Kind {
		case core.EventOrchestratorStarted, core.EventOrchestratorCompleted:
			continue
		case core.EventExecutionStarted:
			o.add("FunctionName", e.Name)
			input("Input", e.Input)
			if !e.FireAt.IsZero() {
				o.add("ScheduledStartTime", eventTime(e.FireAt))
			}
		case core.EventExecutionCompleted:
			o.add("OrchestrationStatus", e.Status.String())
			result("Result", e.Result)
			if e.Failure != nil {
				o.add("FailureDetails", newFailureJSON(e.Failure))
			}
		case core.EventContinuedAsNew:
			o.add("OrchestrationStatus", core.StatusContinuedAsNew.String())
			if len(e.Result) > 0 {
				result("Result", e.Result)
			} else {
				result("Result", e.Input)
			}
		case core.EventExecutionTerminated:
			input("Input", e.Input)
		case core.EventExecutionSuspended, core.EventExecutionResumed:
			o.add("Reason", e.Reason)
		case core.EventTaskScheduled:
			if completed[e.EventID] {
				continue
			}
			o.add("Name", e.Name)
			input("Input", e.Input)
		case core.EventSubOrchestrationCreated:
			if completed[e.EventID] {
				continue
			}
			o.add("Name", e.Name)
			o.add("InstanceId", e.InstanceID)
			input("Input", e.Input)
		case core.EventTaskCompleted, core.EventSubOrchestrationCompleted:
			result("Result", e.Result)
			folded()
		case core.EventTaskFailed, core.EventSubOrchestrationFailed:
			failure()
			folded()
		case core.EventTimerCreated, core.EventTimerFired:
			o.add("FireAt", eventTime(e.FireAt))
		case core.EventEventRaised:
			o.add("Name", e.Name)
			input("Input", e.Input)
		case core.EventEventSent:
			o.add("InstanceId", e.InstanceID)
			o.add("Name", e.Name)
			input("Input", e.Input)
		case core.EventEntityOperationCalled, core.EventEntityOperationSignaled:
			o.add("RequestId", e.RequestID)
			o.add("Operation", e.Name)
			o.add("TargetInstanceId", e.InstanceID)
			if !e.FireAt.IsZero() {
				o.add("ScheduledTime", eventTime(e.FireAt))
			}
			input("Input", e.Input)
		case core.EventEntityOperationCompleted:
			o.add("RequestId", e.RequestID)
			result("Output", e.Result)
		case core.EventEntityOperationFailed:
			o.add("RequestId", e.RequestID)
			o.add("FailureDetails", newFailureJSON(e.Failure))
		case core.EventEntityLockRequested:
			o.add("CriticalSectionId", e.RequestID)
			set := make([]string, len(e.LockSet))
			for i, id := range e.LockSet {
				set[i] = id.String()
			}
			o.add("LockSet", set)
			o.add("Position", e.LockPosition)
		case core.EventEntityLockGranted:
			o.add("CriticalSectionId", e.RequestID)
		case core.EventEntityLockReleased:
			o.add("CriticalSectionId", e.RequestID)
			o.add("TargetInstanceId", e.InstanceID)
		}
		out = append(out, o)
	}
	return out
}

// checkStatus is the payload of Durable Functions' check-status response
// (CreateCheckStatusResponse), in its field order.
type checkStatus struct {
	ID                    string `json:"id"`
	StatusQueryGetURI     string `json:"statusQueryGetUri"`
	SendEventPostURI      string `json:"sendEventPostUri"`
	TerminatePostURI      string `json:"terminatePostUri"`
	PurgeHistoryDeleteURI string `json:"purgeHistoryDeleteUri"`
	RestartPostURI        string `json:"restartPostUri"`
	SuspendPostURI        string `json:"suspendPostUri"`
	ResumePostURI         string `json:"resumePostUri"`
}

// baseURL returns scheme://host of the links.
func (h *handler) baseURL(r *http.Request) string {
	if h.opts.BaseURL != nil {
		return strings.TrimRight(h.opts.BaseURL(r), "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// querySuffix is the taskHub and connection parameters of links.
func (h *handler) querySuffix() string {
	s := "connection=" + url.QueryEscape(h.opts.ConnectionName)
	if h.opts.TaskHub != "" {
		s = "taskHub=" + url.QueryEscape(h.opts.TaskHub) + "&" + s
	}
	return s
}

func (h *handler) links(r *http.Request, id string) *checkStatus {
	inst := h.baseURL(r) + Prefix + "/instances/" + url.PathEscape(id)
	sfx := h.querySuffix()
	return &checkStatus{
		ID:                    id,
		StatusQueryGetURI:     inst + "?" + sfx,
		SendEventPostURI:      inst + "/raiseEvent/{eventName}?" + sfx,
		TerminatePostURI:      inst + "/terminate?reason={text}&" + sfx,
		PurgeHistoryDeleteURI: inst + "?" + sfx,
		RestartPostURI:        inst + "/restart?" + sfx,
		SuspendPostURI:        inst + "/suspend?reason={text}&" + sfx,
		ResumePostURI:         inst + "/resume?reason={text}&" + sfx,
	}
}

// writeCheckStatus answers 202 with the check-status payload, Location
// and Retry-After, as CreateCheckStatusResponse.
func (h *handler) writeCheckStatus(w http.ResponseWriter, r *http.Request, id string) {
	l := h.links(r, id)
	w.Header().Set("Location", l.StatusQueryGetURI)
	w.Header().Set("Retry-After", retryAfterStart)
	writeJSON(w, http.StatusAccepted, l)
}

// entityStatus is Durable Functions' DurableEntityStatus.
type entityStatus struct {
	EntityID          entityIDJSON    `json:"entityId"`
	LastOperationTime string          `json:"lastOperationTime"`
	State             json.RawMessage `json:"state,omitempty"`
}

type entityIDJSON struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

func newEntityStatus(m *durable.EntityMetadata, withState bool) entityStatus {
	e := entityStatus{EntityID: entityIDJSON{Key: m.ID.Key, Name: m.ID.Name}, LastOperationTime: eventTime(m.LastUpdatedAt)}
	if withState {
		e.State = payloadJSON(m.State)
		if e.State == nil {
			e.State = json.RawMessage("null")
		}
	}
	return e
}
