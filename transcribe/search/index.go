package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/custodian/custodian/storage/meta"
)

// KeyFunc returns a tenant's 32-byte search-index key (the gateway passes
// storage.Store.NamedKey(ctx, tenant, "search-index")). The index clears
// the returned slice after deriving its keys from it.
type KeyFunc func(ctx context.Context, tenant string) ([]byte, error)

// Options configure an Index.
type Options struct {
	// Dir holds the replica: tenants/{tenant}/ with a sealed keys file and
	// the bleve index, a lock file and the replica state.
	Dir string
	// Key gives each tenant's key. Required.
	Key    KeyFunc
	Logger *slog.Logger
	// CompactDelay is how long after the last deletion a purge starts
	// (default 5 s); CompactMaxDelay bounds the wait while deletions keep
	// coming (default 1 min). A purge rewrites every file of the tenant's
	// index under a new key and destroys the old key.
	CompactDelay    time.Duration
	CompactMaxDelay time.Duration
	// LockTimeout bounds the wait for the directory lock (default 0: fail
	// at once when another process holds it).
	LockTimeout time.Duration
	// CacheBytes bounds the memory kept for decrypted index chunks
	// (default 128 MiB; negative: no cache, every read decrypts).
	CacheBytes int64

	// mergePlan overrides bleve's background merge plan (tests).
	mergePlan map[string]any
}

// Errors of the Index.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("search: index closed")
	// ErrLocked is returned by Open when another process (a running
	// gateway, or `custodian index rebuild`) holds the index directory.
	ErrLocked = errors.New("search: index directory in use by another process")
)

// Index is one replica of the search index: one encrypted bleve index per
// tenant under Options.Dir. It is safe for concurrent use.
type Index struct {
	opts    Options
	log     *slog.Logger
	dir     string
	lock    *os.File
	mapping *mapping.IndexMappingImpl
	an      analysis.Analyzer
	pairs   analysis.Analyzer
	m       *metrics
	cache   *chunkCache

	mu        sync.Mutex
	tenants   map[string]*tenantIndex
	opening   map[string]*sync.Mutex
	queryKeys map[string][]byte // tenants without an index (QueryDigest)
	closed    bool

	compactMu   sync.Mutex
	compactWant map[string]*pendingCompact
	wake        chan struct{}
	stop        chan struct{}
	done        chan struct{}
}

type pendingCompact struct {
	first, last time.Time
}

// tenantIndex is one tenant's bleve index.
type tenantIndex struct {
	tenant   string
	dir      string // tenants/{tenant}
	bdir     string // tenants/{tenant}/bleve
	bi       bleve.Index
	fk       *fileKeys
	kfKey    []byte // seals the keys file
	queryKey []byte // audit digests

	writeMu sync.Mutex // batches and purges, one at a time
	kd      *keysDoc   // under writeMu
}

// scorchConfig is the runtime configuration of every tenant's index.
func (x *Index) scorchConfig() map[string]any {
	c := map[string]any{"bolt_timeout": "2s"}
	if x.opts.mergePlan != nil {
		c["scorchMergePlanOptions"] = x.opts.mergePlan
	}
	return c
}

// Open opens (creating if needed) the replica in opts.Dir and every tenant
// index in it. A tenant index that cannot be opened is logged and retried
// on its next use.
func Open(ctx context.Context, opts Options) (*Index, error) {
	if opts.Dir == "" || opts.Key == nil {
		return nil, errors.New("search: open: Dir and Key are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CompactDelay <= 0 {
		opts.CompactDelay = 5 * time.Second
	}
	if opts.CompactMaxDelay <= 0 {
		opts.CompactMaxDelay = time.Minute
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 128 << 20
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("search: open %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tenants"), 0o700); err != nil {
		return nil, fmt.Errorf("search: open %s: %w", dir, err)
	}
	lock, err := lockDir(ctx, filepath.Join(dir, "lock"), opts.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("search: open %s: %w", dir, err)
	}
	im, err := newMapping()
	if err != nil {
		lock.Close()
		return nil, err
	}
	an := im.AnalyzerNamed(analyzerName)
	if an == nil {
		lock.Close()
		return nil, errors.New("search: analyzer missing")
	}
	pairs := im.AnalyzerNamed(bigramAnalyzer)
	if pairs == nil {
		lock.Close()
		return nil, errors.New("search: analyzer missing")
	}
	installHooks()
	x := &Index{
		opts: opts, log: opts.Logger.With("component", "search"), dir: dir, lock: lock,
		mapping: im, an: an, pairs: pairs, m: newMetrics(), cache: newChunkCache(opts.CacheBytes),
		tenants: map[string]*tenantIndex{}, opening: map[string]*sync.Mutex{}, queryKeys: map[string][]byte{},
		compactWant: map[string]*pendingCompact{},
		wake:        make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go x.compactor()
	ents, err := os.ReadDir(filepath.Join(dir, "tenants"))
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("search: open %s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.IsDir() || !meta.ValidID(e.Name()) {
			continue
		}
		if _, err := x.tenant(ctx, e.Name(), false); err != nil {
			x.log.Error("tenant index not opened; retried on next use", "tenant", e.Name(), "err", err)
		}
	}
	return x, nil
}

// Dir returns the replica's directory (absolute).
func (x *Index) Dir() string { return x.dir }

// Close stops background purges (waiting for one in progress) and closes
// every tenant index.
func (x *Index) Close() error {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil
	}
	x.closed = true
	x.mu.Unlock()
	close(x.stop)
	<-x.done
	x.mu.Lock()
	defer x.mu.Unlock()
	var errs []error
	for name, t := range x.tenants {
		t.writeMu.Lock()
		if err := t.bi.Close(); err != nil {
			errs = append(errs, fmt.Errorf("search: close tenant %s: %w", name, err))
		}
		t.writeMu.Unlock()
		unregister(t.bdir)
		clear(t.kfKey)
		clear(t.queryKey)
		if t.kd != nil {
			t.kd.wipe()
		}
	}
	x.tenants = map[string]*tenantIndex{}
	for _, k := range x.queryKeys {
		clear(k)
	}
	errs = append(errs, x.lock.Close())
	return errors.Join(errs...)
}

// tenant returns the open index of tenant, opening it first. With create
// false it returns (nil, nil) for a tenant that has no index yet.
func (x *Index) tenant(ctx context.Context, tenant string, create bool) (*tenantIndex, error) {
	if !meta.ValidID(tenant) {
		return nil, fmt.Errorf("search: invalid tenant id %q", tenant)
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil, ErrClosed
	}
	if t := x.tenants[tenant]; t != nil {
		x.mu.Unlock()
		return t, nil
	}
	om := x.opening[tenant]
	if om == nil {
		om = &sync.Mutex{}
		x.opening[tenant] = om
	}
	x.mu.Unlock()

	om.Lock()
	defer om.Unlock()
	x.mu.Lock()
	t := x.tenants[tenant]
	closed := x.closed
	x.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if t != nil {
		return t, nil
	}
	t, err := x.openTenant(ctx, tenant, create)
	if err != nil || t == nil {
		return nil, err
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		t.bi.Close()
		unregister(t.bdir)
		return nil, ErrClosed
	}
	x.tenants[tenant] = t
	x.mu.Unlock()
	if t.kd.PurgePending {
		x.requestCompact(tenant)
	}
	return t, nil
}

func (x *Index) openTenant(ctx context.Context, tenant string, create bool) (*tenantIndex, error) {
	dir := filepath.Join(x.dir, "tenants", tenant)
	bdir := filepath.Join(dir, "bleve")
	_, err := os.Stat(filepath.Join(bdir, "index_meta.json"))
	exists := err == nil
	if !exists && !create {
		return nil, nil
	}
	tk, err := x.opts.Key(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("search: tenant %s key: %w", tenant, err)
	}
	if len(tk) != 32 {
		clear(tk)
		return nil, fmt.Errorf("search: tenant %s key of %d bytes", tenant, len(tk))
	}
	t := &tenantIndex{tenant: tenant, dir: dir, bdir: bdir,
		kfKey: derive(tk, infoKeysFile), queryKey: derive(tk, infoQuery)}
	clear(tk)
	ok := false
	defer func() {
		if !ok {
			clear(t.kfKey)
			clear(t.queryKey)
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("search: tenant %s: %w", tenant, err)
	}
	kd, err := readKeys(t.kfKey, tenant, dir)
	if err != nil {
		return nil, fmt.Errorf("search: tenant %s: %w", tenant, err)
	}
	if kd == nil {
		if exists {
			return nil, fmt.Errorf("search: tenant %s: %w: keys file missing (rebuild the index)", tenant, ErrKeysFile)
		}
		// A directory left by a creation that failed half way holds
		// nothing readable: start over.
		if err := os.RemoveAll(bdir); err != nil {
			return nil, fmt.Errorf("search: tenant %s: %w", tenant, err)
		}
		gen, key := newGeneration()
		kd = &keysDoc{Version: 1, Tenant: tenant, Current: gen, Generations: map[string][]byte{gen: key}}
		if err := writeKeys(t.kfKey, dir, kd); err != nil {
			kd.wipe()
			return nil, err
		}
	}
	t.kd = kd
	t.fk = newFileKeys(tenant, x.cache)
	for g, k := range kd.Generations {
		if err := t.fk.add(g, k); err != nil {
			kd.wipe()
			return nil, err
		}
	}
	t.fk.setCurrent(kd.Current)
	register(bdir, t.fk)
	if exists {
		t.bi, err = bleve.OpenUsing(bdir, x.scorchConfig())
	} else {
		t.bi, err = bleve.NewUsing(bdir, x.mapping, scorch.Name, scorch.Name, x.scorchConfig())
	}
	if err != nil {
		unregister(bdir)
		kd.wipe()
		return nil, fmt.Errorf("search: tenant %s: open bleve index: %w", tenant, err)
	}
	ok = true
	return t, nil
}

// Tenants lists the tenants that have an index in this replica.
func (x *Index) Tenants() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(x.dir, "tenants"))
	if err != nil {
		return nil, fmt.Errorf("search: list tenants: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && meta.ValidID(e.Name()) {
			if _, err := os.Stat(filepath.Join(x.dir, "tenants", e.Name(), "bleve", "index_meta.json")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// versionOf returns the stored version of a recording's document ("" when
// it is not indexed).
func (t *tenantIndex) versionOf(id string) (string, error) {
	doc, err := t.bi.Document(id)
	if err != nil || doc == nil {
		return "", err
	}
	v := ""
	doc.VisitFields(func(f index.Field) {
		if f.Name() == fieldVersion {
			v = string(f.Value())
		}
	})
	return v, nil
}

// Apply makes tenant's index hold the documents in put (replacing any
// earlier version of the same recordings; a document whose Version is
// already indexed is skipped) and none of the recordings in del, in one
// durable batch: when Apply returns nil the change is on disk. Deletions
// schedule a purge (Compact) of the tenant's index files.
func (x *Index) Apply(ctx context.Context, tenant string, put []Document, del []string) error {
	_, err := x.apply(ctx, tenant, put, del)
	return err
}

// apply is Apply; it returns how many documents of put were written.
func (x *Index) apply(ctx context.Context, tenant string, put []Document, del []string) (int, error) {
	start := time.Now()
	t, err := x.tenant(ctx, tenant, len(put) > 0)
	if err != nil {
		return 0, err
	}
	if t == nil {
		return 0, nil // nothing indexed for this tenant: nothing to delete
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b := t.bi.NewBatch()
	words, written := 0, 0
	for _, d := range put {
		if d.Tenant != tenant || !meta.ValidID(d.RecordingID) {
			return 0, fmt.Errorf("search: apply: document %q of tenant %q in tenant %s", d.RecordingID, d.Tenant, tenant)
		}
		if d.Version != "" {
			v, err := t.versionOf(d.RecordingID)
			if err != nil {
				return 0, fmt.Errorf("search: apply: look up %s: %w", d.RecordingID, err)
			}
			if v == d.Version {
				continue
			}
		}
		f := d.fields()
		if err := b.Index(d.RecordingID, f); err != nil {
			return 0, fmt.Errorf("search: apply: %s: %w", d.RecordingID, err)
		}
		words += len(d.Words)
		written++
	}
	var deleted []string
	for _, id := range del {
		doc, err := t.bi.Document(id)
		if err != nil {
			return 0, fmt.Errorf("search: apply: look up %s: %w", id, err)
		}
		if doc != nil {
			b.Delete(id)
			deleted = append(deleted, id)
		}
	}
	if b.Size() == 0 {
		return 0, nil
	}
	if len(deleted) > 0 && !t.kd.PurgePending {
		t.kd.PurgePending = true
		if err := writeKeys(t.kfKey, t.dir, t.kd); err != nil {
			return 0, err
		}
	}
	if err := t.bi.Batch(b); err != nil {
		return 0, fmt.Errorf("search: apply %d changes to tenant %s: %w", b.Size(), tenant, err)
	}
	x.m.applied(written, len(deleted), words, time.Since(start))
	if len(deleted) > 0 {
		x.requestCompact(tenant)
	}
	return written, nil
}

// Recordings returns the ids of the recordings tenant's index holds.
func (x *Index) Recordings(ctx context.Context, tenant string) ([]string, error) {
	t, err := x.tenant(ctx, tenant, false)
	if err != nil || t == nil {
		return nil, err
	}
	adv, err := t.bi.Advanced()
	if err != nil {
		return nil, err
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	it, err := r.DocIDReaderAll()
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for {
		id, err := it.Next()
		if err != nil {
			return nil, err
		}
		if id == nil {
			break
		}
		ext, err := r.ExternalID(id)
		if err != nil {
			return nil, err
		}
		out = append(out, ext)
		if len(out)%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	slices.Sort(out)
	return out, nil
}

// Count returns how many recordings tenant's index holds.
func (x *Index) Count(ctx context.Context, tenant string) (uint64, error) {
	t, err := x.tenant(ctx, tenant, false)
	if err != nil || t == nil {
		return 0, err
	}
	return t.bi.DocCount()
}

// QueryDigest returns the keyed digest of a canonical query text
// (Query.String) for the audit log; see queryDigest. It needs the
// tenant's key, not its index (a tenant without transcripts has none).
func (x *Index) QueryDigest(ctx context.Context, tenant, canonical string) (string, error) {
	t, err := x.tenant(ctx, tenant, false)
	if err != nil {
		return "", err
	}
	if t != nil {
		return queryDigest(t.queryKey, canonical), nil
	}
	x.mu.Lock()
	qk := x.queryKeys[tenant]
	x.mu.Unlock()
	if qk == nil {
		tk, err := x.opts.Key(ctx, tenant)
		if err != nil {
			return "", fmt.Errorf("search: tenant %s key: %w", tenant, err)
		}
		qk = derive(tk, infoQuery)
		clear(tk)
		x.mu.Lock()
		x.queryKeys[tenant] = qk
		x.mu.Unlock()
	}
	return queryDigest(qk, canonical), nil
}

// Compact purges tenant's index files now: every file is rewritten under
// a fresh generation key (deleted documents are left out of the rewritten
// segments), the files of the old generation are removed, and the old
// generation keys are destroyed in the keys file, so nothing of a deleted
// recording can be found or decrypted from the index directory any more.
func (x *Index) Compact(ctx context.Context, tenant string) error {
	t, err := x.tenant(ctx, tenant, false)
	if err != nil || t == nil {
		return err
	}
	start := time.Now()
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	// Deletions wait for writeMu: whatever was requested so far is covered.
	x.compactMu.Lock()
	delete(x.compactWant, tenant)
	x.compactMu.Unlock()
	err = x.compact(t)
	x.m.compacted(time.Since(start), err)
	if err != nil {
		x.requestCompact(tenant) // retried in the background
		return fmt.Errorf("search: purge tenant %s: %w", tenant, err)
	}
	return nil
}

func (x *Index) compact(t *tenantIndex) error {
	cb, ok := t.bi.(bleve.IndexWithCallbacks)
	if !ok {
		return errors.New("bleve index without file callbacks")
	}
	gen, key := newGeneration()
	t.kd.Generations[gen] = key
	t.kd.Current = gen
	t.kd.PurgePending = true
	if err := writeKeys(t.kfKey, t.dir, t.kd); err != nil {
		return err
	}
	if err := t.fk.add(gen, key); err != nil {
		return err
	}
	t.fk.setCurrent(gen)
	ids, err := cb.FileWriterIDsInUse()
	if err != nil {
		return fmt.Errorf("writer ids in use: %w", err)
	}
	drop := map[string]struct{}{}
	for id := range ids {
		if id != writerID(gen) && id != "" {
			drop[id] = struct{}{}
		}
	}
	if len(drop) > 0 {
		if err := cb.DropFileWriterIDs(drop); err != nil {
			return fmt.Errorf("rewrite files: %w", err)
		}
	}
	ids, err = cb.FileWriterIDsInUse()
	if err != nil {
		return fmt.Errorf("writer ids in use: %w", err)
	}
	for id := range ids {
		if id != writerID(gen) && id != "" {
			return fmt.Errorf("file writer id %s still in use after the rewrite", id)
		}
	}
	// Segments the background merger replaced before the rewrite are
	// removed by bleve's persister once no snapshot uses them; wait for
	// that (their key is destroyed below in any case).
	deadline := time.Now().Add(30 * time.Second)
	for {
		stray, err := t.strayFiles()
		if err != nil {
			return err
		}
		if len(stray) == 0 {
			break
		}
		if time.Now().After(deadline) {
			x.log.Warn("old index segments not removed yet; their key is destroyed", "tenant", t.tenant, "files", len(stray))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for g, k := range t.kd.Generations {
		if g != gen {
			clear(k)
			delete(t.kd.Generations, g)
		}
	}
	t.kd.PurgePending = false
	if err := writeKeys(t.kfKey, t.dir, t.kd); err != nil {
		return err
	}
	t.fk.keep(gen)
	x.cache.clear()
	return nil
}

// strayFiles lists the segment files on disk that the current snapshot
// does not use.
func (t *tenantIndex) strayFiles() ([]string, error) {
	adv, err := t.bi.Advanced()
	if err != nil {
		return nil, err
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	snap, ok := r.(*scorch.IndexSnapshot)
	if !ok {
		return nil, fmt.Errorf("unexpected index reader %T", r)
	}
	used := map[string]bool{}
	for _, s := range snap.Segments() {
		used[fmt.Sprintf("%012x.zap", s.Id())] = true
	}
	files, err := filepath.Glob(filepath.Join(t.bdir, "store", "*.zap"))
	if err != nil {
		return nil, err
	}
	var stray []string
	for _, f := range files {
		if !used[filepath.Base(f)] {
			stray = append(stray, f)
		}
	}
	return stray, nil
}

// requestCompact schedules a purge of tenant (debounced, see Options).
func (x *Index) requestCompact(tenant string) {
	now := time.Now()
	x.compactMu.Lock()
	p := x.compactWant[tenant]
	if p == nil {
		p = &pendingCompact{first: now}
		x.compactWant[tenant] = p
	}
	p.last = now
	x.compactMu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// PendingPurges returns the tenants with a purge scheduled.
func (x *Index) PendingPurges() []string {
	x.compactMu.Lock()
	defer x.compactMu.Unlock()
	var out []string
	for t := range x.compactWant {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (x *Index) compactor() {
	defer close(x.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-x.stop:
			return
		case <-tick.C:
		case <-x.wake:
		}
		now := time.Now()
		var due []string
		x.compactMu.Lock()
		for t, p := range x.compactWant {
			if now.Sub(p.last) >= x.opts.CompactDelay || now.Sub(p.first) >= x.opts.CompactMaxDelay {
				due = append(due, t)
				delete(x.compactWant, t)
			}
		}
		x.compactMu.Unlock()
		for _, tenant := range due {
			select {
			case <-x.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			err := x.Compact(ctx, tenant)
			cancel()
			if err != nil && !errors.Is(err, ErrClosed) {
				x.log.Error("index purge failed; retrying", "tenant", tenant, "err", err)
			}
		}
	}
}

// replicaState is the replica's bookkeeping file (no transcript data).
type replicaState struct {
	Format int `json:"format"`
	// Consumer is the JetStream consumer that feeds this replica.
	Consumer string    `json:"consumer"`
	SyncedAt time.Time `json:"synced_at"`
}

const stateFileName = "replica.json"

// readState returns the replica state (ok false when there is none).
func (x *Index) readState() (replicaState, bool) {
	b, err := os.ReadFile(filepath.Join(x.dir, stateFileName))
	if err != nil {
		return replicaState{}, false
	}
	var s replicaState
	if json.Unmarshal(b, &s) != nil || s.Format != 1 {
		return replicaState{}, false
	}
	return s, true
}

func (x *Index) writeState(s replicaState) error {
	s.Format = 1
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(x.dir, stateFileName), b); err != nil {
		return fmt.Errorf("search: write replica state: %w", err)
	}
	return nil
}

func (x *Index) clearState() error {
	err := os.Remove(filepath.Join(x.dir, stateFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
