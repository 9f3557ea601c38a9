package partitions

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netherite-go/netherite/faster"
)

// DurableStore keeps one partition's commit log and checkpoints on a
// faster device and metadata store. It implements CheckpointStore.
type DurableStore struct {
	name string
	meta faster.MetaStore
	dev  faster.Device
	log  *faster.Log

	mu      sync.Mutex // serializes appends and truncation
	bytes   atomic.Int64
	appends atomic.Int64
	entries atomic.Int64
}

const (
	lastCheckpointName = "last-checkpoint.json"
	checkpointPrefix   = "checkpoint-"
	commitLogMetaName  = "commit-log.meta"
)

// lastCheckpoint is the document that names the latest checkpoint.
type lastCheckpoint struct {
	Token   string    `json:"token"`
	LastPos uint64    `json:"lastPosition"`
	LogMark int64     `json:"commitLogPosition"`
	Input   uint64    `json:"inputPosition"`
	Written time.Time `json:"written"`
}

// OpenDurableStore opens (or creates) a partition's store. name appears in
// every error (for example "partition 3").
func OpenDurableStore(name string, dev faster.Device, meta faster.MetaStore) (*DurableStore, error) {
	log, err := faster.OpenLog(faster.LogOptions{Name: name + " commit log", Device: dev, Meta: meta, MetaName: commitLogMetaName})
	if err != nil {
		return nil, err
	}
	return &DurableStore{name: name, meta: meta, dev: dev, log: log}, nil
}

// Recover loads the latest checkpoint (or an empty state) and applies the
// logged events after it.
func (s *DurableStore) Recover(partition, count int) (*State, error) {
	st := NewState(partition, count)
	from := s.log.Begin()
	b, err := s.meta.ReadFile(lastCheckpointName)
	switch {
	case err == nil:
		var ck lastCheckpoint
		if err := json.Unmarshal(b, &ck); err != nil {
			return nil, fmt.Errorf("%s: recover: read %s: %w", s.name, lastCheckpointName, err)
		}
		snap, err := s.meta.ReadFile(checkpointPrefix + ck.Token)
		if err != nil {
			return nil, fmt.Errorf("%s: recover: checkpoint %s: %w", s.name, ck.Token, err)
		}
		if st, err = DecodeState(snap); err != nil {
			return nil, fmt.Errorf("%s: recover: checkpoint %s: %w", s.name, ck.Token, err)
		}
		if st.Partition != partition || st.Count != count {
			return nil, fmt.Errorf("%s: recover: checkpoint %s is of partition %d of %d, not %d of %d",
				s.name, ck.Token, st.Partition, st.Count, partition, count)
		}
		if st.LastPos != ck.LastPos {
			return nil, fmt.Errorf("%s: recover: checkpoint %s holds position %d, its record says %d", s.name, ck.Token, st.LastPos, ck.LastPos)
		}
		from = ck.LogMark
	case errors.Is(err, faster.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: recover: %w", s.name, err)
	}
	var fx Effects
	err = s.log.Scan(from, func(at int64, payload []byte) error {
		e, err := DecodeLogEntry(payload)
		if err != nil {
			return fmt.Errorf("log record at %d: %w", at, err)
		}
		if e.Pos <= st.LastPos {
			return nil // covered by the checkpoint
		}
		if e.Pos != st.LastPos+1 {
			return fmt.Errorf("log record at %d holds event %d, expected %d", at, e.Pos, st.LastPos+1)
		}
		st.Apply(e.Pos, e.At, e.Event, &fx)
		fx = Effects{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: recover: replay commit log: %w", s.name, err)
	}
	return st, nil
}

// Append logs entries durably (one group commit).
func (s *DurableStore) Append(entries []LogEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		b, err := EncodeLogEntry(e)
		if err != nil {
			return fmt.Errorf("%s: encode event %d: %w", s.name, e.Pos, err)
		}
		s.log.Append(b)
		s.bytes.Add(int64(len(b)))
	}
	s.appends.Add(1)
	s.entries.Add(int64(len(entries)))
	return s.log.Commit()
}

// Stats returns the number of group commits and of events logged.
func (s *DurableStore) Stats() (commits, entries int64) { return s.appends.Load(), s.entries.Load() }

// Mark is the log position after everything appended so far.
func (s *DurableStore) Mark() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.CommittedTail()
}

// LogBytes counts the bytes appended.
func (s *DurableStore) LogBytes() int64 { return s.bytes.Load() }

// SaveCheckpoint writes a snapshot, makes it the latest, removes older
// ones and truncates the log before mark.
func (s *DurableStore) SaveCheckpoint(snapshot []byte, lastPos, inputPos uint64, mark int64) error {
	token := fmt.Sprintf("%020d", lastPos)
	if err := s.meta.WriteFile(checkpointPrefix+token, snapshot); err != nil {
		return fmt.Errorf("%s: checkpoint %s: %w", s.name, token, err)
	}
	b, _ := json.Marshal(lastCheckpoint{Token: token, LastPos: lastPos, LogMark: mark, Input: inputPos, Written: time.Now().UTC()})
	if err := s.meta.WriteFile(lastCheckpointName, b); err != nil {
		return fmt.Errorf("%s: checkpoint %s: record: %w", s.name, token, err)
	}
	names, err := s.meta.List(checkpointPrefix)
	if err != nil {
		return fmt.Errorf("%s: checkpoint %s: list old ones: %w", s.name, token, err)
	}
	for _, n := range names {
		if strings.TrimPrefix(n, checkpointPrefix) != token {
			_ = s.meta.Remove(n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.log.Truncate(mark); err != nil {
		return fmt.Errorf("%s: checkpoint %s: truncate log: %w", s.name, token, err)
	}
	return nil
}

// Close closes the log and its device.
func (s *DurableStore) Close() error { return errors.Join(s.log.Close(), s.dev.Close()) }
