package partitions

import (
	"container/list"
	"sync"
)

// CursorCache keeps suspended orchestration executions in memory between
// episodes, within a byte budget shared by all partitions of a host.
// Losing a cursor only costs a replay.
type CursorCache struct {
	mu     sync.Mutex
	budget int64
	used   int64
	lru    *list.List // of *cursorEntry, most recent at front
	byID   map[string]*list.Element
}

type cursorEntry struct {
	id     string
	gen    uint64
	cursor Cursor
	size   int64
}

// cursorOverhead approximates the memory a suspended execution holds
// beyond its history: its goroutine stack and bookkeeping.
const cursorOverhead = 8 << 10

// NewCursorCache returns a cache with the given budget in bytes; a budget
// of zero or less disables caching.
func NewCursorCache(budget int64) *CursorCache {
	return &CursorCache{budget: budget, lru: list.New(), byID: map[string]*list.Element{}}
}

// Enabled reports whether the cache keeps anything.
func (c *CursorCache) Enabled() bool { return c != nil && c.budget > 0 }

// Take removes and returns the cursor of an instance's session, if any.
func (c *CursorCache) Take(id string, gen uint64) Cursor {
	if !c.Enabled() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.byID[id]
	if el == nil {
		return nil
	}
	e := c.remove(el)
	if e.gen != gen {
		e.cursor.Release()
		return nil
	}
	return e.cursor
}

// Put stores a cursor, evicting the least recently used ones beyond the
// budget.
func (c *CursorCache) Put(id string, gen uint64, cur Cursor, historyBytes int64) {
	if cur == nil {
		return
	}
	if !c.Enabled() {
		cur.Release()
		return
	}
	var evicted []Cursor
	c.mu.Lock()
	if el := c.byID[id]; el != nil {
		evicted = append(evicted, c.remove(el).cursor)
	}
	e := &cursorEntry{id: id, gen: gen, cursor: cur, size: historyBytes + cursorOverhead}
	c.byID[id] = c.lru.PushFront(e)
	c.used += e.size
	for c.used > c.budget && c.lru.Len() > 1 {
		evicted = append(evicted, c.remove(c.lru.Back()).cursor)
	}
	c.mu.Unlock()
	for _, ev := range evicted {
		ev.Release()
	}
}

// Drop releases an instance's cursor, if cached.
func (c *CursorCache) Drop(id string) {
	if !c.Enabled() {
		return
	}
	c.mu.Lock()
	el := c.byID[id]
	var e *cursorEntry
	if el != nil {
		e = c.remove(el)
	}
	c.mu.Unlock()
	if e != nil {
		e.cursor.Release()
	}
}

// Len reports how many cursors are cached.
func (c *CursorCache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Clear releases every cursor.
func (c *CursorCache) Clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	var all []Cursor
	for el := c.lru.Front(); el != nil; el = el.Next() {
		all = append(all, el.Value.(*cursorEntry).cursor)
	}
	c.lru.Init()
	c.byID = map[string]*list.Element{}
	c.used = 0
	c.mu.Unlock()
	for _, cur := range all {
		cur.Release()
	}
}

func (c *CursorCache) remove(el *list.Element) *cursorEntry {
	e := c.lru.Remove(el).(*cursorEntry)
	delete(c.byID, e.id)
	c.used -= e.size
	return e
}
