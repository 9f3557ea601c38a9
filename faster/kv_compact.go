package faster

import (
	"cmp"
	"fmt"
	"slices"
)

// Compact copies every live record whose address is below until to the
// tail and then moves the log's Begin to until (clamped to the tail):
// in-memory pages wholly below it are dropped. until need not be aligned.
//
// Device segments wholly below until are not removed now: the latest
// durable checkpoint's index may still point into them, and a crash before
// the next checkpoint recovers from it. They are removed by the first
// Checkpoint after Compact, once its record (with Begin >= until) is
// durable. So Compact followed by Checkpoint reclaims the space, and a
// crash anywhere in between loses nothing the previous checkpoint needs.
//
// Records are read one by one (in address order), from memory or the
// device; device reads happen without the store's lock, so Gets and
// Upserts proceed meanwhile (a key updated or deleted during the read is
// not copied: its new record is already above until). If Compact fails
// midway, the records copied so far stay copied and Begin does not move;
// calling it again is safe.
func (kv *KV) Compact(until int64) error {
	kv.maint.Lock()
	defer kv.maint.Unlock()
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if err := kv.kvCheck("compact"); err != nil {
		return err
	}
	until = min(until, kv.tail)
	if until <= kv.begin {
		return nil
	}
	type item struct {
		key string
		e   kvEntry
	}
	var items []item
	for k, e := range kv.index {
		if e.addr < until {
			items = append(items, item{k, e})
		}
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.e.addr, b.e.addr) })
	for _, it := range items {
		var v []byte
		var tomb bool
		var err error
		if f := kv.kvFrameAt(it.e.addr); f != nil {
			v, tomb, err = kv.kvReadMemory(f, it.e, it.key, false)
		} else {
			end := kv.kvBeginDeviceRead(it.e)
			kv.mu.Unlock()
			v, tomb, err = kv.kvReadDevice(it.e, it.key)
			kv.mu.Lock()
			end()
			if err == nil {
				kv.kvCountRead(it.e)
			}
			if kv.closed {
				return kv.kvErr("compact", ErrClosed)
			}
		}
		if err == nil && tomb {
			err = fmt.Errorf("index points to a tombstone at %d", it.e.addr)
		}
		if err != nil {
			return kv.kvErr(fmt.Sprintf("compact below %d: key %q", until, kvShortKey(it.key)), err)
		}
		if cur, ok := kv.index[it.key]; !ok || cur != it.e {
			continue // updated or deleted meanwhile
		}
		addr, size, err := kv.kvAppend(it.key, v, false)
		if err != nil {
			return kv.kvErr(fmt.Sprintf("compact below %d", until), err)
		}
		kv.idxMu.Lock()
		kv.index[it.key] = kvEntry{addr: addr, size: size}
		kv.idxMu.Unlock()
		kv.liveBytes += size - it.e.size
		kv.stats.CompactedRecords++
	}
	kv.begin = until
	// Frames wholly below until hold nothing live; nothing durable needs
	// them either (the latest checkpoint's pages were written at that
	// checkpoint). Drop them once their writes, if any, are done.
	for len(kv.frames) > 0 && kv.frames[0].end() <= until {
		kv.kvWaitFrame(kv.frames[0])
		kv.kvDropFirstFrame()
	}
	kv.kvShiftReadOnly(kv.kvHead())
	kv.stats.Compactions++
	return kv.kvIOErr()
}
