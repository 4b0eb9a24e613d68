package search

import (
	"container/list"
	"sync"
	"sync/atomic"
	"unsafe"
)

// chunkCache keeps decrypted chunks of segment files in memory, so hot
// posting lists and stored fields are not decrypted again by every query
// (decryption was a quarter of the query CPU without it). Plaintext only
// ever lives in memory, as with any search engine's page cache.
//
// A chunk is identified by the reader that decrypted it (a number, unique
// for the process's lifetime: one per segment file opened) and its
// address and length in that segment's read-only memory map, which do not
// change while the segment is open. Only .zap segments are cached: they
// are immutable and mapped for as long as their reader lives. Entries of
// closed segments are never looked up again and age out.
type chunkCache struct {
	mu     sync.Mutex
	budget int64
	used   int64
	ll     *list.List // front: most recently used
	m      map[chunkKey]*list.Element

	hits, misses atomic.Uint64
}

type chunkKey struct {
	reader uint64
	addr   uintptr
	n      int
}

type chunkEntry struct {
	key chunkKey
	pt  []byte
}

// readerSeq numbers segment readers.
var readerSeq atomic.Uint64

func newChunkCache(budget int64) *chunkCache {
	if budget <= 0 {
		return nil
	}
	return &chunkCache{budget: budget, ll: list.New(), m: map[chunkKey]*list.Element{}}
}

// wrap returns open with the cache in front of it for one reader.
func (c *chunkCache) wrap(open func([]byte) ([]byte, error)) func([]byte) ([]byte, error) {
	if c == nil {
		return open
	}
	reader := readerSeq.Add(1)
	return func(data []byte) ([]byte, error) {
		if len(data) == 0 {
			return open(data)
		}
		k := chunkKey{reader: reader, addr: uintptr(unsafe.Pointer(unsafe.SliceData(data))), n: len(data)}
		if pt, ok := c.get(k); ok {
			return pt, nil
		}
		pt, err := open(data)
		if err != nil {
			return nil, err
		}
		c.put(k, pt)
		return pt, nil
	}
}

func (c *chunkCache) get(k chunkKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.ll.MoveToFront(e)
		c.hits.Add(1)
		return e.Value.(*chunkEntry).pt, true
	}
	c.misses.Add(1)
	return nil, false
}

func (c *chunkCache) put(k chunkKey, pt []byte) {
	size := int64(len(pt)) + 64
	if size > c.budget/8 {
		return // one chunk may not take a large share
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	c.m[k] = c.ll.PushFront(&chunkEntry{key: k, pt: pt})
	c.used += size
	for c.used > c.budget {
		e := c.ll.Back()
		ce := e.Value.(*chunkEntry)
		c.ll.Remove(e)
		delete(c.m, ce.key)
		c.used -= int64(len(ce.pt)) + 64
	}
}

// clear drops every entry (a purge destroys keys: nothing decrypted under
// them stays around).
func (c *chunkCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.ll.Init()
	clear(c.m)
	c.used = 0
	c.mu.Unlock()
}
