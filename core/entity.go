package core

import (
	"fmt"
	"strings"
)

// EntityID identifies a durable entity: its (case-insensitive) name and
// its key. As an instance id it is written "@name@key".
type EntityID struct {
	Name string
	Key  string
}

// NewEntityID returns the id of entity name/key; the name is lower-cased,
// as in Durable Functions.
func NewEntityID(name, key string) EntityID {
	return EntityID{Name: strings.ToLower(name), Key: key}
}

// String returns the instance id of the entity, "@name@key".
func (id EntityID) String() string { return "@" + id.Name + "@" + id.Key }

// Validate reports a clear error for an id that cannot name an entity.
func (id EntityID) Validate() error {
	switch {
	case id.Name == "":
		return fmt.Errorf("entity id %q: empty entity name", id.String())
	case strings.Contains(id.Name, "@"):
		return fmt.Errorf("entity id %q: entity name must not contain '@'", id.String())
	case id.Name != strings.ToLower(id.Name):
		return fmt.Errorf("entity id %q: entity name must be lower case (use NewEntityID)", id.String())
	}
	return nil
}

// IsEntityInstanceID reports whether an instance id names an entity.
func IsEntityInstanceID(instanceID string) bool {
	return strings.HasPrefix(instanceID, "@") && strings.Count(instanceID, "@") >= 2
}

// ParseEntityID parses "@name@key".
func ParseEntityID(instanceID string) (EntityID, error) {
	if !strings.HasPrefix(instanceID, "@") {
		return EntityID{}, fmt.Errorf("entity id %q: must have the form @name@key", instanceID)
	}
	name, key, ok := strings.Cut(instanceID[1:], "@")
	if !ok {
		return EntityID{}, fmt.Errorf("entity id %q: must have the form @name@key", instanceID)
	}
	id := EntityID{Name: name, Key: key}
	return id, id.Validate()
}

// CompareEntityIDs orders entity ids by name, then key. Locks are acquired
// in this order.
func CompareEntityIDs(a, b EntityID) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return strings.Compare(a.Key, b.Key)
}

// EntityState is the durable record of an entity: its user state and its
// scheduler state (the orchestration holding its lock, and the requests
// deferred until the lock is released).
type EntityState struct {
	Exists bool
	Value  []byte
	// LockedBy is the instance id of the orchestration holding the lock,
	// or empty.
	LockedBy string
	// Queue holds requests that arrived while the entity was locked by
	// another orchestration, in arrival order.
	Queue []*HistoryEvent
}

// IsEmpty reports whether the record holds nothing and can be deleted.
func (s *EntityState) IsEmpty() bool {
	return s == nil || (!s.Exists && s.LockedBy == "" && len(s.Queue) == 0)
}

// Clone returns a deep copy of s.
func (s *EntityState) Clone() *EntityState {
	if s == nil {
		return nil
	}
	c := &EntityState{Exists: s.Exists, Value: cloneBytes(s.Value), LockedBy: s.LockedBy}
	for _, e := range s.Queue {
		c.Queue = append(c.Queue, e.Clone())
	}
	return c
}

// UndeliverableReply returns what an engine must send when it drops a
// message because its target orchestration no longer runs: for a lock
// grant, releases to every entity of the lock set, so the locks of an
// orchestration that ended while waiting for them are not held forever.
// For other messages it returns nil.
func UndeliverableReply(m *TaskMessage) []*TaskMessage {
	e := m.Event
	if e.Kind != EventEntityLockGranted || len(e.LockSet) == 0 {
		return nil
	}
	out := make([]*TaskMessage, 0, len(e.LockSet))
	for _, id := range e.LockSet {
		rel := NewEvent(EventEntityLockReleased, e.Timestamp)
		rel.InstanceID, rel.RequestID = id.String(), e.RequestID
		rel.Parent = &ParentInstance{InstanceID: m.Target.InstanceID, ExecutionID: m.Target.ExecutionID, TaskScheduledID: NoEventID}
		out = append(out, &TaskMessage{Target: Instance{InstanceID: id.String()}, Event: rel})
	}
	return out
}
