package storage

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
)

// ReadOptions configure Open.
type ReadOptions struct {
	// AllowIncomplete accepts a manifest whose complete flag is false
	// (failed and recovered recordings). Without it Open returns
	// ErrIncomplete for them.
	AllowIncomplete bool
	// ManifestSHA256, if set, is the hex SHA-256 the manifest object must
	// have. When empty, Open uses meta.Recording.ManifestSHA256 if the
	// recording's row has one.
	ManifestSHA256 string
}

// Reader reads one verified recording. Every part is checked against the
// manifest (size and SHA-256 of the sealed object) and authenticated as
// exactly its part of this recording before any of its bytes are
// returned. It is safe for concurrent use. Close wipes the data key.
type Reader struct {
	s      *Store
	tenant string
	rec    string
	m      Manifest

	mu     sync.Mutex
	key    []byte
	closed bool
	cacheN int // part held in cache, -1 if none
	cache  []byte
}

// Open verifies a recording's manifest and returns a Reader. It fails
// with an error wrapping ErrNotFound (no such recording, or no manifest
// yet: the recording is still being written or needs Recover),
// ErrKeyDestroyed (shredded), ErrIncomplete (manifest not complete and not
// allowed), or an integrity error (IsIntegrity: manifest tampered or not
// the one in the database, a part missing, or a part object present that
// the manifest does not list). Parts themselves are verified as they are
// read; Verify checks them all.
func (s *Store) Open(ctx context.Context, tenant, recordingID string, opts ReadOptions) (*Reader, error) {
	r, err := s.open(ctx, tenant, recordingID, opts)
	if err != nil {
		if IsIntegrity(err) {
			s.integrityFailures.Add(1)
		}
		return nil, fmt.Errorf("storage: open recording %s: %w", recordingID, err)
	}
	return r, nil
}

func (s *Store) open(ctx context.Context, tenant, recordingID string, opts ReadOptions) (*Reader, error) {
	if err := checkIDs(tenant, recordingID); err != nil {
		return nil, err
	}
	key, err := s.dataKey(ctx, tenant, recordingID)
	if err != nil {
		return nil, err
	}
	r := &Reader{s: s, tenant: tenant, rec: recordingID, key: key, cacheN: -1}
	m, err := s.loadManifest(ctx, key, tenant, recordingID, opts.ManifestSHA256)
	if err == nil && !m.Complete && !opts.AllowIncomplete {
		err = ErrIncomplete
	}
	if err == nil {
		r.m = m
		err = r.checkListing(ctx)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// loadManifest fetches, authenticates and validates the manifest, and
// checks it against the expected hash (want, or the recording row's).
func (s *Store) loadManifest(ctx context.Context, key []byte, tenant, recordingID, want string) (Manifest, error) {
	sealed, err := s.fetch(ctx, ManifestKey(tenant, recordingID))
	if err != nil {
		if IsNotFound(err) {
			return Manifest{}, fmt.Errorf("no manifest (recording not closed or not recovered): %w", ErrNotFound)
		}
		return Manifest{}, fmt.Errorf("fetch manifest: %w", err)
	}
	if want == "" {
		var row meta.Recording
		err := s.db.WithContext(ctx).Select("manifest_sha256").Where("id = ? AND tenant_id = ?", recordingID, tenant).Limit(1).Find(&row).Error
		if err != nil {
			return Manifest{}, fmt.Errorf("load recording row: %w", err)
		}
		want = row.ManifestSHA256
	}
	got := sha256Hex(sealed)
	if want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return Manifest{}, fmt.Errorf("%w: manifest object has SHA-256 %s, the recording's is %s", ErrIntegrity, got, want)
	}
	return openManifest(key, tenant, recordingID, sealed)
}

// checkListing compares the part objects present with the manifest.
func (r *Reader) checkListing(ctx context.Context) error {
	names, err := r.s.listKeys(ctx, r.tenant, r.rec)
	if err != nil {
		return err
	}
	present := map[int]bool{}
	for name := range names {
		if n, ok := parsePartName(name); ok {
			present[n] = true
		}
	}
	for i := range r.m.Parts {
		if !present[i] {
			return fmt.Errorf("%w: part %d listed in the manifest is missing", ErrIntegrity, i)
		}
		delete(present, i)
	}
	for _, n := range r.m.Discarded {
		delete(present, n)
	}
	if len(present) > 0 {
		extra := slices.Sorted(func(yield func(int) bool) {
			for n := range present {
				if !yield(n) {
					return
				}
			}
		})
		return fmt.Errorf("%w: part objects %v are not in the manifest", ErrIntegrity, extra)
	}
	return nil
}

// Manifest returns the verified manifest.
func (r *Reader) Manifest() Manifest { return r.m }

// Size returns the recording's length in bytes.
func (r *Reader) Size() int64 { return r.m.PlainSize }

// Close wipes the data key and cached plaintext. Reads fail afterwards.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.key)
	clear(r.cache)
	r.cache, r.cacheN, r.closed = nil, -1, true
	return nil
}

func (r *Reader) dataKey() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("storage: reader closed")
	}
	return r.key, nil
}

// readPart fetches, verifies and decrypts part n.
func (r *Reader) readPart(ctx context.Context, n int) ([]byte, error) {
	start := time.Now()
	data, err := r.readPart1(ctx, n)
	r.s.observe("open_part", start, len(data), err)
	if err != nil {
		if IsIntegrity(err) {
			r.s.integrityFailures.Add(1)
		}
		return nil, fmt.Errorf("storage: recording %s part %d: %w", r.rec, n, err)
	}
	return data, nil
}

func (r *Reader) readPart1(ctx context.Context, n int) ([]byte, error) {
	key, err := r.dataKey()
	if err != nil {
		return nil, err
	}
	p := r.m.Parts[n]
	sealed, err := r.s.fetch(ctx, PartKey(r.tenant, r.rec, n))
	if err != nil {
		if IsNotFound(err) {
			return nil, fmt.Errorf("%w: part missing: %w", ErrIntegrity, err)
		}
		return nil, err
	}
	if int64(len(sealed)) != p.CipherSize {
		return nil, fmt.Errorf("%w: sealed part is %d bytes, manifest says %d", ErrIntegrity, len(sealed), p.CipherSize)
	}
	if got := sha256Hex(sealed); subtle.ConstantTimeCompare([]byte(got), []byte(p.CipherSHA256)) != 1 {
		return nil, fmt.Errorf("%w: sealed part has SHA-256 %s, manifest says %s", ErrIntegrity, got, p.CipherSHA256)
	}
	pt, err := envelope.Open(key, partBinding(r.tenant, r.rec, n), sealed)
	if err != nil {
		return nil, err
	}
	if int64(len(pt)) != p.PlainSize {
		return nil, fmt.Errorf("%w: part decrypts to %d bytes, manifest says %d", ErrIntegrity, len(pt), p.PlainSize)
	}
	return pt, nil
}

// cachedPart returns part n, from the one-part cache when possible, so
// small sequential reads do not fetch a part repeatedly.
func (r *Reader) cachedPart(ctx context.Context, n int) ([]byte, error) {
	r.mu.Lock()
	if r.cacheN == n {
		c := r.cache
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()
	data, err := r.readPart(ctx, n)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if !r.closed {
		r.cacheN, r.cache = n, data
	}
	r.mu.Unlock()
	return data, nil
}

// ReadRange reads len(p) bytes at offset off with io.ReaderAt semantics
// (io.EOF when fewer bytes remain). It fetches only the parts covering the
// range.
func (r *Reader) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read recording %s: negative offset %d", r.rec, off)
	}
	if off >= r.m.PlainSize {
		return 0, io.EOF
	}
	parts := r.m.Parts
	// The last part starting at or before off.
	i := sort.Search(len(parts), func(i int) bool { return parts[i].PlainOffset > off }) - 1
	n := 0
	for ; n < len(p) && i < len(parts); i++ {
		if parts[i].PlainSize == 0 {
			continue
		}
		data, err := r.cachedPart(ctx, i)
		if err != nil {
			return n, err
		}
		rel := off + int64(n) - parts[i].PlainOffset
		n += copy(p[n:], data[rel:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReadSeeker returns an io.ReadSeeker over the recording for
// http.ServeContent; its reads use ctx (the request's context).
func (r *Reader) ReadSeeker(ctx context.Context) io.ReadSeeker {
	return io.NewSectionReader(readerAt{ctx, r}, 0, r.m.PlainSize)
}

type readerAt struct {
	ctx context.Context
	r   *Reader
}

func (a readerAt) ReadAt(p []byte, off int64) (int, error) { return a.r.ReadRange(a.ctx, p, off) }

// Stream writes the whole recording to w, fetching and decrypting up to
// Options.ReadAhead parts ahead. It stops at the first error; bytes
// written before it belong to parts that verified.
func (r *Reader) Stream(ctx context.Context, w io.Writer) (int64, error) {
	var written int64
	err := r.each(ctx, func(n int, data []byte, err error) error {
		if err != nil {
			return err
		}
		m, err := w.Write(data)
		written += int64(m)
		if err != nil {
			return fmt.Errorf("storage: write recording %s: %w", r.rec, err)
		}
		return nil
	})
	return written, err
}

// Verify checks the listing and every part against the manifest (size,
// SHA-256, authentication as exactly that part). It checks all parts and
// returns every failure joined, or nil. progress, if not nil, is called
// after each part with the number checked and the total.
func (r *Reader) Verify(ctx context.Context, progress func(done, total int)) error {
	var errs []error
	if err := r.checkListing(ctx); err != nil {
		errs = append(errs, fmt.Errorf("storage: verify recording %s: %w", r.rec, err))
	}
	done := 0
	err := r.each(ctx, func(n int, data []byte, err error) error {
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
		done++
		if progress != nil {
			progress(done, len(r.m.Parts))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// each reads every part in order with read-ahead and calls fn with each
// (data or error). fn's error stops the walk and is returned.
func (r *Reader) each(ctx context.Context, fn func(n int, data []byte, err error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	nparts := len(r.m.Parts)
	results := make([]chan result, nparts)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, r.s.opts.ReadAhead)
	go func() {
		for i := range nparts {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := r.readPart(ctx, i)
				results[i] <- result{data, err}
			}()
		}
	}()
	for i := range nparts {
		var res result
		select {
		case res = <-results[i]:
		case <-ctx.Done():
			return fmt.Errorf("storage: read recording %s: %w", r.rec, ctx.Err())
		}
		<-sem
		err := fn(i, res.data, res.err)
		clear(res.data)
		if err != nil {
			return err
		}
	}
	return nil
}
