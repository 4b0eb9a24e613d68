package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custodian/custodian/storage"
)

// Opened recordings are kept for a short while: a player seeks with many
// Range requests to one recording, and opening it (data key unwrap,
// manifest decryption and parsing, the listing check) costs far more than
// reading a part. The cache holds verified Readers (so their data keys)
// in memory only, keyed by the manifest hash recorded in the database, and
// the handler checks the recording's row and data key on every request,
// so a deleted or shredded recording is never served from it.
const (
	readerCacheTTL = time.Minute
	readerCacheMax = 128
)

// readerCacheOff disables the cache (benchmarks of the cold path).
var readerCacheOff atomic.Bool

type readerCache struct {
	mu      sync.Mutex
	entries map[string]*cachedReader
	now     func() time.Time
	closed  bool
}

type cachedReader struct {
	key      string
	rd       *storage.Reader
	refs     int
	lastUsed time.Time
	evicted  bool
}

func newReaderCache(now func() time.Time) *readerCache {
	return &readerCache{entries: map[string]*cachedReader{}, now: now}
}

// get returns the cached Reader for key, or opens one with open and
// caches it. Call release when done with it.
func (c *readerCache) get(ctx context.Context, key string, open func(context.Context) (*storage.Reader, error)) (*cachedReader, error) {
	c.mu.Lock()
	c.sweepLocked()
	if e, ok := c.entries[key]; ok && !c.closed {
		e.refs++
		e.lastUsed = c.now()
		c.mu.Unlock()
		return e, nil
	}
	c.mu.Unlock()
	rd, err := open(ctx)
	if err != nil {
		return nil, err
	}
	e := &cachedReader{key: key, rd: rd, refs: 1, lastUsed: c.now()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[key]; ok || c.closed || key == "" {
		// Lost a race (or not cacheable): use our own and close it after.
		if ok && !c.closed {
			old.refs++
			old.lastUsed = c.now()
			e.evicted = true
			e.refs--
			rd.Close()
			return old, nil
		}
		e.evicted = true
		return e, nil
	}
	c.entries[key] = e
	for len(c.entries) > readerCacheMax {
		c.evictOldestLocked()
	}
	return e, nil
}

// release returns a Reader from get.
func (c *readerCache) release(e *cachedReader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if e.evicted && e.refs == 0 {
		e.rd.Close()
	}
}

// drop removes key (a recording found shredded or deleted).
func (c *readerCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.evictLocked(e)
	}
}

// close evicts everything; Readers in use close when released.
func (c *readerCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.entries {
		c.evictLocked(e)
	}
}

func (c *readerCache) evictLocked(e *cachedReader) {
	delete(c.entries, e.key)
	e.evicted = true
	if e.refs == 0 {
		e.rd.Close()
	}
}

func (c *readerCache) evictOldestLocked() {
	var oldest *cachedReader
	for _, e := range c.entries {
		if oldest == nil || e.lastUsed.Before(oldest.lastUsed) {
			oldest = e
		}
	}
	if oldest != nil {
		c.evictLocked(oldest)
	}
}

func (c *readerCache) sweepLocked() {
	now := c.now()
	for _, e := range c.entries {
		if e.refs == 0 && now.Sub(e.lastUsed) > readerCacheTTL {
			c.evictLocked(e)
		}
	}
}

func (c *readerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
