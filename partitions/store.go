package partitions

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netherite-go/netherite/faster"
	"github.com/netherite-go/netherite/partitions/partitionspb"
)

// DurableStore keeps one partition's commit log and checkpoints on a
// faster device and metadata store. It implements CheckpointStore.
//
// Without a key-value store, a checkpoint is a snapshot of the whole state
// in the metadata store. With one (StoreOptions.KVDevice), instances live
// in a faster hybrid-log KV, only the instances changed since the last
// checkpoint are written, and memory holds a bounded set of them.
type DurableStore struct {
	name string
	meta faster.MetaStore
	dev  faster.Device
	log  *faster.Log
	kv   *faster.KV
	opts StoreOptions

	mu      sync.Mutex // serializes appends and truncation
	bytes   atomic.Int64
	appends atomic.Int64
	entries atomic.Int64
	// replayedEvents and replayedBytes count what Recover applied from
	// the commit log after the checkpoint (read-only statistics).
	replayedEvents atomic.Int64
	replayedBytes  atomic.Int64
}

// StoreOptions configure the instance store of a DurableStore.
type StoreOptions struct {
	// KVDevice, if set, holds the instances in a hybrid-log KV.
	KVDevice faster.Device
	// KVMemoryBytes bounds the KV's in-memory log pages.
	KVMemoryBytes int64
	// KVPageSize is the KV's page size (default 64 KiB).
	KVPageSize int
	// ResidentBytes bounds the decoded instances kept in memory.
	ResidentBytes int64
	// CompactBytes: when the KV's log spans more than this and less than
	// half of it is live, checkpoints compact its older half (default
	// 64 MiB).
	CompactBytes int64
}

const (
	lastCheckpointName = "last-checkpoint.json"
	checkpointPrefix   = "checkpoint-"
	commitLogMetaName  = "commit-log.meta"
	storeMetaPrefix    = "store/"
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
func OpenDurableStore(name string, dev faster.Device, meta faster.MetaStore, opts ...StoreOptions) (*DurableStore, error) {
	log, err := faster.OpenLog(faster.LogOptions{Name: name + " commit log", Device: dev, Meta: meta, MetaName: commitLogMetaName})
	if err != nil {
		return nil, err
	}
	s := &DurableStore{name: name, meta: meta, dev: dev, log: log}
	if len(opts) > 0 {
		s.opts = opts[0]
	}
	if s.opts.KVDevice != nil {
		s.kv, err = faster.OpenKV(faster.KVOptions{Name: name + " store", Device: s.opts.KVDevice, Meta: meta,
			MetaPrefix: storeMetaPrefix, MemoryBudget: s.opts.KVMemoryBytes, PageSize: s.opts.KVPageSize})
		if err != nil {
			log.Close()
			return nil, err
		}
	}
	return s, nil
}

// Recover loads the latest checkpoint (or an empty state) and applies the
// logged events after it.
func (s *DurableStore) Recover(partition, count int) (*State, error) {
	st := NewState(partition, count)
	from := s.log.Begin()
	if s.kv != nil {
		var err error
		if st, from, err = s.recoverKV(partition, count); err != nil {
			return nil, err
		}
		return st, s.replay(st, from)
	}
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
	return st, s.replay(st, from)
}

// recoverKV loads the state saved with the KV's latest checkpoint.
func (s *DurableStore) recoverKV(partition, count int) (*State, int64, error) {
	st := NewState(partition, count)
	from := s.log.Begin()
	token, meta, err := s.kv.LatestCheckpoint()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: recover: %w", s.name, err)
	}
	var pending []string
	if token != "" {
		var ck partitionspb.StoreCheckpoint
		if err := proto.Unmarshal(meta, &ck); err != nil {
			return nil, 0, fmt.Errorf("%s: recover: checkpoint %s: %w", s.name, token, err)
		}
		if st, err = DecodeState(ck.State); err != nil {
			return nil, 0, fmt.Errorf("%s: recover: checkpoint %s: %w", s.name, token, err)
		}
		if st.Partition != partition || st.Count != count {
			return nil, 0, fmt.Errorf("%s: recover: checkpoint %s is of partition %d of %d, not %d of %d",
				s.name, token, st.Partition, st.Count, partition, count)
		}
		if st.Instances == nil {
			st.Instances = map[string]*Instance{}
		}
		from, pending = ck.LogMark, ck.Pending
	}
	st.AttachBacking(s.kv, s.opts.ResidentBytes, pending)
	return st, from, nil
}

// replay applies the logged events after the state's last position.
func (s *DurableStore) replay(st *State, from int64) error {
	var fx Effects
	err := s.log.Scan(from, func(at int64, payload []byte) error {
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
		s.replayedEvents.Add(1)
		s.replayedBytes.Add(int64(len(payload)))
		if err := st.BackingErr(); err != nil {
			return err
		}
		st.Evict(nil)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: recover: replay commit log: %w", s.name, err)
	}
	return nil
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

// CommitStats returns the commit log's statistics (commits, flush times).
func (s *DurableStore) CommitStats() faster.CommitStats { return s.log.CommitStats() }

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

// Snapshot captures the state: all of it, or, with a KV, the instances
// changed since the last checkpoint (encoded here, written to the KV by
// SaveCheckpoint in the background) and the rest of the state.
func (s *DurableStore) Snapshot(st *State) (*Snapshot, error) {
	if s.kv == nil {
		b, err := EncodeState(st)
		return &Snapshot{State: b}, err
	}
	flush, pending, err := st.TakeDirty()
	if err != nil {
		return nil, fmt.Errorf("%s: checkpoint: %w", s.name, err)
	}
	rest := *st
	rest.Instances, rest.backing = nil, nil
	b, err := EncodeState(&rest)
	return &Snapshot{State: b, Pending: pending, flush: flush}, err
}

// SaveCheckpoint writes a snapshot, makes it the latest, removes older
// ones and truncates the log before mark. With a KV it first writes the
// snapshot's instances and compacts the KV if due: all of it off the
// partition's loop.
func (s *DurableStore) SaveCheckpoint(snap *Snapshot, lastPos, inputPos uint64, mark int64) error {
	token := fmt.Sprintf("%020d", lastPos)
	if s.kv != nil {
		if snap.flush != nil {
			if err := snap.flush.WriteTo(s.kv); err != nil {
				return fmt.Errorf("%s: checkpoint %s: write instances: %w", s.name, token, err)
			}
		}
		// Compaction copies live records to the tail; the checkpoint that
		// follows lets the store drop the segments below.
		limit := s.opts.CompactBytes
		if limit <= 0 {
			limit = 64 << 20
		}
		if ks := s.kv.Stats(); ks.Tail-ks.Begin > limit && 2*ks.LiveBytes < ks.Tail-ks.Begin {
			if err := s.kv.Compact(ks.Begin + (ks.Tail-ks.Begin)/2); err != nil {
				return fmt.Errorf("%s: checkpoint %s: compact: %w", s.name, token, err)
			}
		}
		meta, err := proto.Marshal(&partitionspb.StoreCheckpoint{State: snap.State, Pending: snap.Pending,
			LastPos: lastPos, LogMark: mark, InputPos: inputPos})
		if err != nil {
			return fmt.Errorf("%s: checkpoint %s: %w", s.name, token, err)
		}
		if _, err := s.kv.Checkpoint(meta); err != nil {
			return fmt.Errorf("%s: checkpoint %s: %w", s.name, token, err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.log.Truncate(mark); err != nil {
			return fmt.Errorf("%s: checkpoint %s: truncate log: %w", s.name, token, err)
		}
		return nil
	}
	if err := s.meta.WriteFile(checkpointPrefix+token, snap.State); err != nil {
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

// Close closes the log, the KV and their devices.
func (s *DurableStore) Close() error {
	errs := []error{s.log.Close(), s.dev.Close()}
	if s.kv != nil {
		errs = append(errs, s.kv.Close(), s.opts.KVDevice.Close())
	}
	return errors.Join(errs...)
}

// KVStats reports the instance store's statistics (zero without a KV).
func (s *DurableStore) KVStats() faster.KVStats {
	if s.kv == nil {
		return faster.KVStats{}
	}
	return s.kv.Stats()
}

// Replayed reports the commit log that recovery replayed after the
// checkpoint: events applied and their encoded bytes.
func (s *DurableStore) Replayed() (events, bytes int64) {
	return s.replayedEvents.Load(), s.replayedBytes.Load()
}
