// Package transport moves packets between clients, partitions and the load
// monitor. Each partition has one ordered, positioned input queue; each
// client has a response queue; the load monitor has one queue. The
// in-process implementation (Memory) is shared by every host in a
// process, so several hosts in one test behave like several machines.
package transport

import (
	"context"
	"errors"
	"time"

	"github.com/netherite-go/netherite/core"
)

// ErrClosed is returned by operations on a closed transport.
var ErrClosed = errors.New("transport: closed")

// ErrPositionGone is wrapped by ReceivePartition's error when the position
// asked for is no longer in the queue (trimmed or expired): the reader
// would silently skip packets, so a partition fails loudly on it.
var ErrPositionGone = errors.New("transport: position is gone from the queue")

// Packet is one unit delivered through a queue. Exactly one of the
// payload fields is set (SpecEpoch goes with Messages).
type Packet struct {
	// Messages from another partition: task messages stamped with their
	// origin for deduplication.
	Messages *MessageBatch
	// SpecEpoch, if not 0, says that Messages left before the step that
	// produced them was durable (global speculation): the receiver must
	// not make anything durable that depends on them until the origin
	// confirms the step in its incarnation SpecEpoch (see Confirm). A
	// transport that cannot carry it must not carry speculative batches.
	SpecEpoch uint64
	// Confirm tells which of the sender's steps are durable.
	Confirm *Confirm
	// Request from a client to a partition.
	Request *ClientRequest
	// Response from a partition to a client.
	Response *ClientResponse
	// Ack from a partition: it has durably applied messages from the
	// destination partition up to a position.
	Ack *Ack
	// Resend asks a partition to resend the batches it sent to the
	// requester after a position (the requester saw a gap).
	Resend *ResendRequest
	// Load is a report for the load monitor.
	Load *LoadReport
	// Placement is the load monitor's placement, sent to a host's client.
	Placement *PlacementUpdate
}

// MessageBatch is a batch of task messages from one partition to another.
// Message i has sub-position FirstSub+i of the origin's commit position.
// Prev is the origin position of the previous batch from the same origin
// to the same destination (0 if there was none), so that the receiver can
// tell a lost batch (a gap) from the next one. A transport delivers a
// batch whole or not at all.
type MessageBatch struct {
	Origin    int
	OriginPos uint64
	FirstSub  uint32
	Prev      uint64
	Messages  []*core.TaskMessage
}

// Confirm is a partition's word on which of its steps are durable, for
// the receivers of its speculative batches. An incarnation of a partition
// is named by the commit position of the recovery that started it; a
// step is (incarnation, position). Epochs lists the sender's latest
// incarnations in ascending order, the current one last: the steps of an
// earlier incarnation that are durable are exactly those before the start
// of the next one, and the steps of the current one are durable up to
// Durable. Want asks the receiver for its own Confirm (the sender waits
// on the receiver's steps).
type Confirm struct {
	From    int
	Epochs  []uint64
	Durable uint64
	Want    bool
}

// ResendRequest asks the partition it is sent to to resend what it sent
// to partition From after origin position After: From saw a gap.
type ResendRequest struct {
	From  int
	After uint64
}

// Ack tells a partition that messages it sent were durably applied.
type Ack struct {
	From int
	// UpTo is the highest origin commit position applied.
	UpTo uint64
}

// LoadReport is a host's periodic report to the load monitor: its
// heartbeat, and the load of each partition it runs.
type LoadReport struct {
	// Host is the host's id (Options.HostID).
	Host string
	// ClientID is the host's client: placement updates are sent there.
	ClientID string
	// At is when the host sent the report (its clock).
	At time.Time
	// Stopping says the host shuts down: its partitions go elsewhere now.
	Stopping bool
	// Partitions has one entry per partition the host runs.
	Partitions []PartitionLoad
}

// PartitionLoad is one partition's load, as its host measures it.
type PartitionLoad struct {
	Partition int
	// WorkItems counts orchestration and entity work items ready or
	// running; Activities the activities queued or running.
	WorkItems  int
	Activities int
	// Timers counts the pending timers (and scheduled starts); NextTimer is
	// when the earliest is due (zero: none).
	Timers    int
	NextTimer time.Time
	// Outbox counts messages sent to other partitions and not yet
	// acknowledged.
	Outbox int
	// InputLag counts packets in the partition's input queue that it has
	// not yet read (as far as the transport can tell).
	InputLag int64
	// InputPosition is the input queue position after the last packet the
	// partition took in (applied or answered; not what it read and left,
	// such as input a stopping partition leaves for the next owner): what
	// is at or after it, no host has handled. With it, an InputProber
	// tells whether a task hub with no host running has work waiting
	// (scale from zero).
	InputPosition uint64
	// Events counts the events the partition processed since it started
	// on this host (the monitor computes rates from it).
	Events int64
	// CacheBytes is the memory its state uses; Instances counts its
	// instances.
	CacheBytes int64
	Instances  int64
	// Latency is the partition's latency trend: one letter per report
	// period, oldest first: I idle, L low, M medium, H high (see
	// doc/scaling.md).
	Latency string
}

// PlacementUpdate tells a host the load monitor's newest placement.
type PlacementUpdate struct {
	// Version increases with every change of Owners.
	Version uint64
	// Owners[p] is the id of the host that should run partition p ("" if
	// none).
	Owners []string
	// Monitor is the id of the host running the load monitor.
	Monitor string
}

// RequestKind says what a client asks of a partition.
type RequestKind int

// The client requests.
const (
	RequestCreate RequestKind = iota + 1
	RequestRaiseEvent
	RequestTerminate
	RequestSuspend
	RequestResume
	RequestPurge
	RequestPurgeWhere
	RequestSignalEntity
	RequestStatus
	RequestWaitStart
	RequestWaitCompletion
	RequestQuery
	RequestGetEntity
	RequestListEntities
	RequestDeleteEntity
	// RequestCancel withdraws the wait (RequestWaitStart,
	// RequestWaitCompletion) with the same client and request id; it gets
	// no response.
	RequestCancel
)

var requestNames = map[RequestKind]string{
	RequestCreate: "create", RequestRaiseEvent: "raise-event", RequestTerminate: "terminate",
	RequestSuspend: "suspend", RequestResume: "resume", RequestPurge: "purge",
	RequestPurgeWhere: "purge-where", RequestSignalEntity: "signal-entity", RequestStatus: "status",
	RequestWaitStart: "wait-start", RequestWaitCompletion: "wait-completion", RequestQuery: "query",
	RequestGetEntity: "get-entity", RequestListEntities: "list-entities", RequestDeleteEntity: "delete-entity",
	RequestCancel: "cancel",
}

func (k RequestKind) String() string {
	if s, ok := requestNames[k]; ok {
		return s
	}
	return "request?"
}

// IsUpdate reports whether the request changes partition state (and is
// therefore logged), as opposed to only reading it.
func (k RequestKind) IsUpdate() bool {
	switch k {
	case RequestCreate, RequestRaiseEvent, RequestTerminate, RequestSuspend, RequestResume,
		RequestPurge, RequestPurgeWhere, RequestSignalEntity, RequestDeleteEntity:
		return true
	}
	return false
}

// ReusePolicy mirrors durable.IDReusePolicy on the wire.
type ReusePolicy int

// ClientRequest is a request from a client to one partition.
type ClientRequest struct {
	Kind      RequestKind
	ClientID  string
	RequestID uint64
	// Timestamp is when the client sent the request.
	Timestamp  time.Time
	InstanceID string
	// Event carries the request's payload event: ExecutionStarted for
	// create, EventRaised, ExecutionTerminated, ExecutionSuspended,
	// ExecutionResumed, EntityOperationSignaled.
	Event  *core.HistoryEvent
	Reuse  ReusePolicy
	Filter *Filter
	// Include* select what status responses carry.
	IncludePayloads bool
	IncludeHistory  bool
	// Deadline is when the client stops waiting for the answer (zero:
	// never). A partition drops waits (RequestWaitStart,
	// RequestWaitCompletion) past it.
	Deadline time.Time
}

// Filter selects instances or entities for queries and purges.
type Filter struct {
	InstanceIDPrefix string
	CreatedFrom      time.Time
	CreatedTo        time.Time
	Statuses         []core.RuntimeStatus
	// After continues a listing after this instance id.
	After    string
	PageSize int
	// EntityName restricts an entity listing.
	EntityName string
}

// ClientResponse answers one ClientRequest.
type ClientResponse struct {
	RequestID uint64
	// Error is a failure message; ErrorCode classifies it.
	Error     string
	ErrorCode ErrorCode
	Status    *InstanceStatus
	Instances []*InstanceStatus
	Entities  []*EntityStatus
	Count     int
	// More is set when a listing stopped at its page size.
	More bool
}

// ErrorCode classifies response errors so clients can map them to
// sentinel errors.
type ErrorCode int

// The error codes.
const (
	CodeNone ErrorCode = iota
	CodeNotFound
	CodeExists
	CodeNotRunning
	CodeInvalid
	CodeRunning
)

// InstanceStatus is an instance's status as a partition reports it.
type InstanceStatus struct {
	InstanceID       string
	ExecutionID      string
	Name             string
	Version          string
	Status           core.RuntimeStatus
	CreatedAt        time.Time
	LastUpdatedAt    time.Time
	ScheduledStartAt time.Time
	ParentInstanceID string
	Tags             map[string]string
	Input            []byte
	Output           []byte
	CustomStatus     []byte
	Failure          *core.FailureDetails
	History          []*core.HistoryEvent
}

// EntityStatus is an entity's state as a partition reports it.
type EntityStatus struct {
	ID            core.EntityID
	LastUpdatedAt time.Time
	LockedBy      string
	QueueLength   int
	State         []byte
}

// Transport is what hosts use to send and receive packets.
type Transport interface {
	// SendToPartition appends packets to a partition's input queue, in
	// order.
	SendToPartition(partition int, packets ...*Packet) error
	// ReceivePartition blocks until the partition's queue holds packets at
	// or after position from, and returns them with the position after the
	// last one.
	ReceivePartition(ctx context.Context, partition int, from uint64) ([]*Packet, uint64, error)
	// TrimPartition tells the transport that positions before upTo are no
	// longer needed.
	TrimPartition(partition int, upTo uint64)
	// SendToClient delivers packets to a client's response queue. Packets
	// for a client that is not listening are dropped.
	SendToClient(clientID string, packets ...*Packet) error
	// ListenClient opens a client's response queue.
	ListenClient(clientID string) (<-chan *Packet, func(), error)
	// SendToLoadMonitor appends packets to the load monitor's queue.
	SendToLoadMonitor(packets ...*Packet) error
	// PartitionCount is the number of partition queues.
	PartitionCount() int
}

// QueueLengther is implemented by transports that can tell how many
// packets of a partition's input queue are at or after a position (its
// reader's lag, for load reports). The memory transport does; Event Hubs
// does not (a partition's load report then counts only what it has read
// and not yet handled). ok is false when the transport cannot tell.
type QueueLengther interface {
	PartitionQueueLength(partition int, from uint64) (n int64, ok bool)
}

// InputProber is implemented by transports that can look into a
// partition's input queue without being its reader: what a platform that
// scales a task hub down to zero hosts asks to know when to start one
// again.
type InputProber interface {
	// UnreadWork counts the packets at or after position from in
	// partition p's input queue that make work for it: client requests
	// and messages from other partitions, not acknowledgements or
	// speculation confirmations. It looks at no more than limit packets,
	// and may count more than there are (a packet it cannot classify
	// counts as work), never fewer.
	UnreadWork(ctx context.Context, p int, from uint64, limit int) (int, error)
}

// IsWork reports whether a packet in a partition's input queue makes work
// for the partition (see InputProber).
func IsWork(pk *Packet) bool {
	return pk == nil || pk.Request != nil || pk.Messages != nil
}
