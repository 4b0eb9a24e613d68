package spool

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors.
var (
	// ErrNotFound is returned by Get for a key with nothing spooled.
	ErrNotFound = errors.New("spool: object not spooled")
	// ErrFull is wrapped by Put when the disk (or Options.MaxBytes) is
	// full. The object was not spooled; objects spooled before are intact.
	ErrFull = errors.New("spool is full")
	// ErrClosed is returned by Put after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrReadOnly is returned by Put, Remove and Ping of a spool opened
	// with Options.ReadOnly.
	ErrReadOnly = errors.New("spool: opened read-only")
)

// IsFull reports whether err means the spool could not take an object
// because the disk or its quota is full.
func IsFull(err error) bool { return errors.Is(err, ErrFull) }

// Retention is passed through to the uploader with each object (S3 Object
// Lock). It mirrors storage.PutOptions, which this package cannot import.
type Retention struct {
	Until     time.Time `json:"until,omitzero"`
	LegalHold bool      `json:"legal_hold,omitempty"`
}

// Uploader sends one sealed object to the blob store and returns nil only
// once it is durable there. It must be idempotent: after a crash an object
// may be uploaded again.
type Uploader func(ctx context.Context, key string, data []byte, r Retention) error

// Adopter moves a spool file that holds exactly the object's bytes
// (already fsynced) into the blob store, typically by renaming it on the
// same filesystem, and reports whether it did; false (with a nil error)
// makes the spool upload the bytes with its Uploader instead. After a
// crash the file may be found in the spool again and adopted again, so
// adoption must be idempotent like an upload.
type Adopter func(ctx context.Context, key, path string, r Retention) (bool, error)

// Options configure a Spool. Zero values take the defaults.
type Options struct {
	// Concurrency is the number of uploads in flight (default 4). Objects
	// of one group are always uploaded one at a time, in Put order.
	Concurrency int
	// MinBackoff and MaxBackoff bound the retry delay of a group whose
	// upload failed (default 200 ms and 30 s, doubling, with jitter).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one upload attempt (default 2 minutes).
	AttemptTimeout time.Duration
	// Group maps a key to its ordering group (default path.Dir: one
	// recording's objects share a directory).
	Group func(key string) string
	// MaxBytes caps the spooled bytes; Put fails with ErrFull beyond it
	// (0: only the disk limits it).
	MaxBytes int64
	// MinFreeBytes is the free disk space below which Ping fails, so new
	// recordings are refused before the disk fills (default 64 MiB).
	MinFreeBytes int64
	// OnUploaded, if set, is called (outside any lock) after an object was
	// uploaded and removed from the spool.
	OnUploaded func(key string)
	// Logger receives upload failures and recoveries.
	Logger *slog.Logger
	// ReadOnly opens the spool for reading only, beside the process that
	// owns it (CLI commands next to a running `custodian serve`): nothing
	// in the directory is created, removed, renamed or uploaded, Put and
	// Remove fail with ErrReadOnly, Start does nothing and Flush returns
	// at once. Objects the owner uploads meanwhile read as not spooled.
	ReadOnly bool
}

// Stats is a snapshot for metrics.
type Stats struct {
	Pending      int       // objects spooled, not yet uploaded (incl. in flight)
	PendingBytes int64     // their sealed size
	InFlight     int       // uploads in progress
	Oldest       time.Time // when the oldest pending object was spooled; zero if none
	Uploaded     uint64    // objects uploaded since Open
	Failures     uint64    // failed upload attempts since Open
	LastError    string    // the last upload error, "" after a success
}

const (
	fileMagic  = "CSPOOL1\n"
	fileSuffix = ".obj"
	tmpPrefix  = "tmp-"
	badSuffix  = ".bad"
	maxHeader  = 1 << 16
	// bareSuffix marks a spool file that holds exactly the object's
	// bytes, its key and retention in the file name:
	// SEQ.BASE64URL(KEY).RETENTION.o2, RETENTION being the retain-until
	// time in unix nanoseconds (0: none), followed by "h" for a legal
	// hold. Such a file can become the blob object as it is (Adopter).
	// Keys too long for a file name use the header format (.obj).
	bareSuffix  = ".o2"
	maxBareName = 250
)

// fileHeader is the JSON header of a spool file in the header format
// (.obj): magic, uint32 length, header, then the object's bytes.
type fileHeader struct {
	Key       string    `json:"key"`
	Size      int64     `json:"size"`
	Retention Retention `json:"retention"`
	Time      time.Time `json:"time"`
}

type entry struct {
	seq      uint64
	key      string
	group    string
	path     string
	bare     bool // the file holds only the object's bytes (bareSuffix)
	size     int64
	ret      Retention
	added    time.Time
	inflight bool
	removed  bool
}

type group struct {
	queue     []*entry // Put order
	busy      bool
	fails     int
	notBefore time.Time
}

// Spool is a durable queue of sealed objects in one directory. It is safe
// for concurrent use.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	ds   dirSyncer

	mu       sync.Mutex
	seq      uint64
	groups   map[string]*group
	byKey    map[string][]*entry // Put order
	count    int
	bytes    int64
	inflight int
	// settling counts finished uploads whose spool file removal and
	// OnUploaded callback have not run yet; Flush waits for them too.
	settling int
	changed  chan struct{} // closed and replaced on every change
	started  bool
	closed   bool
	up       Uploader
	adopt    Adopter
	uploaded uint64
	failures uint64
	lastErr  string

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// writeData writes the object's bytes to the temp file; tests replace
	// it to inject write errors.
	writeData func(f *os.File, p []byte) (int, error)
}

// Open opens (creating, mode 0700) the spool directory, removes temp files
// left by a crash and queues every spooled object found, in Put order.
// Unreadable spool files are renamed to *.bad and logged, never deleted.
// Uploads begin with Start.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 2 * time.Minute
	}
	if opts.Group == nil {
		opts.Group = path.Dir
	}
	if opts.MinFreeBytes <= 0 {
		opts.MinFreeBytes = 64 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Spool{
		dir:       abs,
		opts:      opts,
		log:       log.With("component", "spool"),
		groups:    map[string]*group{},
		byKey:     map[string][]*entry{},
		changed:   make(chan struct{}),
		kick:      make(chan struct{}, 1),
		ctx:       ctx,
		cancel:    cancel,
		writeData: (*os.File).Write,
	}
	if err := s.rescan(); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

func (s *Spool) rescan() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: scan %s: %w", s.dir, err)
	}
	var found []*entry
	for _, de := range des {
		name := de.Name()
		p := filepath.Join(s.dir, name)
		switch {
		case strings.HasPrefix(name, tmpPrefix) && s.opts.ReadOnly:
			// The owner may be writing it right now.
		case strings.HasPrefix(name, tmpPrefix):
			// Never renamed into place: the Put that wrote it failed or
			// was interrupted, and its caller saw no success.
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("spool: remove temp file: %w", err)
			}
		case strings.HasSuffix(name, bareSuffix):
			seq, key, ret, ok := parseBareName(name)
			if !ok {
				s.quarantine(p, fmt.Errorf("bad file name"))
				continue
			}
			fi, err := os.Stat(p)
			if err != nil {
				if s.opts.ReadOnly {
					continue // uploaded (adopted) by the owner meanwhile
				}
				return fmt.Errorf("spool: scan %s: %w", s.dir, err)
			}
			found = append(found, &entry{seq: seq, key: key, group: s.opts.Group(key), path: p, bare: true,
				size: fi.Size(), ret: ret, added: fi.ModTime().UTC()})
		case strings.HasSuffix(name, fileSuffix):
			seq, err := strconv.ParseUint(strings.TrimSuffix(name, fileSuffix), 16, 64)
			if err != nil {
				s.quarantine(p, fmt.Errorf("bad file name"))
				continue
			}
			h, err := readHeader(p)
			if err != nil {
				if s.opts.ReadOnly {
					continue // the owner sets it aside (or uploaded it meanwhile)
				}
				s.quarantine(p, err)
				continue
			}
			found = append(found, &entry{seq: seq, key: h.Key, group: s.opts.Group(h.Key), path: p, size: h.Size, ret: h.Retention, added: h.Time})
		}
	}
	slices.SortFunc(found, func(a, b *entry) int { return cmpUint(a.seq, b.seq) })
	for _, e := range found {
		s.add(e)
		s.seq = max(s.seq, e.seq)
	}
	if len(found) > 0 && !s.opts.ReadOnly {
		s.log.Info("spool resumed", "objects", s.count, "bytes", s.bytes)
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Spool) quarantine(p string, why error) {
	s.log.Error("unreadable spool file set aside", "path", p, "err", why)
	if err := os.Rename(p, p+badSuffix); err != nil {
		s.log.Error("cannot set aside spool file", "path", p, "err", err)
	}
}

func readHeader(p string) (fileHeader, error) {
	f, err := os.Open(p)
	if err != nil {
		return fileHeader{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fileHeader{}, err
	}
	var pre [len(fileMagic) + 4]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil {
		return fileHeader{}, fmt.Errorf("short spool file: %w", err)
	}
	h, hlen, err := parseHeader(pre[:], f)
	if err != nil {
		return fileHeader{}, err
	}
	if want := int64(len(pre)) + int64(hlen) + h.Size; st.Size() != want {
		return fileHeader{}, fmt.Errorf("spool file is %d bytes, header says %d", st.Size(), want)
	}
	return h, nil
}

// bareName returns the file name of a bare spool file, or false when the
// key is too long for a file name.
func bareName(seq uint64, key string, r Retention) (string, bool) {
	ret := "0"
	if !r.Until.IsZero() {
		ret = strconv.FormatInt(r.Until.UnixNano(), 10)
	}
	if r.LegalHold {
		ret += "h"
	}
	name := fmt.Sprintf("%016x.%s.%s%s", seq, base64.RawURLEncoding.EncodeToString([]byte(key)), ret, bareSuffix)
	return name, len(name) <= maxBareName
}

// parseBareName reads a bare spool file's name.
func parseBareName(name string) (seq uint64, key string, r Retention, ok bool) {
	f := strings.Split(strings.TrimSuffix(name, bareSuffix), ".")
	if len(f) != 3 {
		return 0, "", r, false
	}
	seq, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil {
		return 0, "", r, false
	}
	k, err := base64.RawURLEncoding.DecodeString(f[1])
	if err != nil || len(k) == 0 {
		return 0, "", r, false
	}
	ret, hold := strings.CutSuffix(f[2], "h")
	until, err := strconv.ParseInt(ret, 10, 64)
	if err != nil {
		return 0, "", r, false
	}
	r.LegalHold = hold
	if until != 0 {
		r.Until = time.Unix(0, until).UTC()
	}
	return seq, string(k), r, true
}

func parseHeader(pre []byte, r io.Reader) (fileHeader, int, error) {
	var h fileHeader
	if string(pre[:len(fileMagic)]) != fileMagic {
		return h, 0, errors.New("not a spool file")
	}
	hlen := int(binary.BigEndian.Uint32(pre[len(fileMagic):]))
	if hlen > maxHeader {
		return h, 0, errors.New("spool file header too long")
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return h, 0, fmt.Errorf("short spool header: %w", err)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, 0, fmt.Errorf("spool header: %w", err)
	}
	if h.Key == "" || h.Size < 0 {
		return h, 0, errors.New("spool header without key or size")
	}
	return h, hlen, nil
}

// add indexes e. s.mu must be held (or s not yet shared).
func (s *Spool) add(e *entry) {
	g := s.groups[e.group]
	if g == nil {
		g = &group{}
		s.groups[e.group] = g
	}
	g.queue = append(g.queue, e)
	s.byKey[e.key] = append(s.byKey[e.key], e)
	s.count++
	s.bytes += e.size
}

// drop unindexes e. s.mu must be held.
func (s *Spool) drop(e *entry) {
	if g := s.groups[e.group]; g != nil {
		g.queue = slices.DeleteFunc(g.queue, func(x *entry) bool { return x == e })
		if len(g.queue) == 0 && !g.busy {
			delete(s.groups, e.group)
		}
	}
	ks := slices.DeleteFunc(s.byKey[e.key], func(x *entry) bool { return x == e })
	if len(ks) == 0 {
		delete(s.byKey, e.key)
	} else {
		s.byKey[e.key] = ks
	}
	s.count--
	s.bytes -= e.size
}

// notify wakes waiters and the dispatcher. s.mu must be held.
func (s *Spool) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Put makes data durable in the spool under key and queues it for upload
// after every object Put before it in the same group. It returns once the
// file and its directory entry are fsynced. Putting a key again queues the
// new version after the old; Get returns the newest. On failure nothing is
// queued and the error wraps ErrFull when the disk or quota is full.
func (s *Spool) Put(ctx context.Context, key string, data []byte, r Retention) error {
	if s.opts.ReadOnly {
		return fmt.Errorf("spool: put %s: %w", key, ErrReadOnly)
	}
	if key == "" {
		return errors.New("spool: put: empty key")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool: put %s: %w", key, err)
	}
	now := time.Now().UTC()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.opts.MaxBytes > 0 && s.bytes+int64(len(data)) > s.opts.MaxBytes {
		s.mu.Unlock()
		return fmt.Errorf("spool: put %s: %w: %d bytes spooled, limit %d", key, ErrFull, s.bytes, s.opts.MaxBytes)
	}
	s.seq++
	seq := s.seq
	s.mu.Unlock()

	name := fmt.Sprintf("%016x", seq)
	tmp := filepath.Join(s.dir, tmpPrefix+name)
	final, bare := bareName(seq, key, r)
	var hdr []byte
	if bare {
		final = filepath.Join(s.dir, final)
	} else {
		hj, err := json.Marshal(fileHeader{Key: key, Size: int64(len(data)), Retention: r, Time: now})
		if err != nil {
			return fmt.Errorf("spool: put %s: %w", key, err)
		}
		hdr = make([]byte, 0, len(fileMagic)+4+len(hj))
		hdr = append(hdr, fileMagic...)
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(hj)))
		hdr = append(hdr, hj...)
		final = filepath.Join(s.dir, name+fileSuffix)
	}
	if err := s.writeFile(tmp, hdr, data); err != nil {
		os.Remove(tmp)
		return putError(key, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return putError(key, err)
	}
	if err := s.ds.sync(s.dir); err != nil {
		// The rename may not survive a crash: report failure and take the
		// object back so no caller relies on it.
		os.Remove(final)
		return putError(key, err)
	}
	e := &entry{seq: seq, key: key, group: s.opts.Group(key), path: final, bare: bare, size: int64(len(data)), ret: r, added: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Durable on disk: the next Open will find and upload it.
		return nil
	}
	s.add(e)
	s.notify()
	return nil
}

func putError(key string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("spool: put %s: %w: %w", key, ErrFull, err)
	}
	return fmt.Errorf("spool: put %s: %w", key, err)
}

func (s *Spool) writeFile(p string, hdr, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if len(hdr) > 0 {
		_, err = f.Write(hdr)
	}
	if err == nil {
		_, err = s.writeData(f, data)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// Get returns the newest spooled version of key, or an error wrapping
// ErrNotFound when nothing is spooled under key (never spooled, or already
// uploaded: read the blob store then).
func (s *Spool) Get(key string) ([]byte, error) {
	s.mu.Lock()
	es := s.byKey[key]
	if len(es) == 0 {
		s.mu.Unlock()
		return nil, fmt.Errorf("spool: get %s: %w", key, ErrNotFound)
	}
	e := es[len(es)-1]
	s.mu.Unlock()
	data, err := readData(e.path, key)
	if errors.Is(err, os.ErrNotExist) {
		// Uploaded (and removed) since we looked.
		return nil, fmt.Errorf("spool: get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: get %s: %w", key, err)
	}
	return data, nil
}

func readData(p, key string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(p, bareSuffix) {
		return b, nil // the key is in the name, which we looked up by key
	}
	if len(b) < len(fileMagic)+4 {
		return nil, errors.New("short spool file")
	}
	rd := bytes.NewReader(b[len(fileMagic)+4:])
	h, hlen, err := parseHeader(b[:len(fileMagic)+4], rd)
	if err != nil {
		return nil, err
	}
	if h.Key != key {
		return nil, fmt.Errorf("spool file holds %q", h.Key)
	}
	off := len(fileMagic) + 4 + hlen
	if int64(len(b)-off) != h.Size {
		return nil, fmt.Errorf("spool file has %d bytes of data, header says %d", len(b)-off, h.Size)
	}
	return b[off:], nil
}

// Keys returns the distinct keys under prefix that have spooled objects,
// sorted.
func (s *Spool) Keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.byKey {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Remove drops every spooled object under prefix without uploading it and
// waits for uploads of such objects already in flight to end. It returns
// the number of objects dropped. After it returns nothing under prefix
// will be uploaded, so the caller can delete the blob objects.
func (s *Spool) Remove(ctx context.Context, prefix string) (int, error) {
	return s.remove(ctx, prefix, func(k string) bool { return strings.HasPrefix(k, prefix) })
}

// RemoveKey is Remove for exactly one key.
func (s *Spool) RemoveKey(ctx context.Context, key string) (int, error) {
	return s.remove(ctx, key, func(k string) bool { return k == key })
}

func (s *Spool) remove(ctx context.Context, what string, match func(string) bool) (int, error) {
	if s.opts.ReadOnly {
		return 0, fmt.Errorf("spool: remove %s: %w", what, ErrReadOnly)
	}
	s.mu.Lock()
	var paths []string
	n := 0
	for k, es := range s.byKey {
		if !match(k) {
			continue
		}
		for _, e := range slices.Clone(es) {
			n++
			if e.inflight {
				e.removed = true
				continue
			}
			s.drop(e)
			paths = append(paths, e.path)
		}
	}
	s.notify()
	s.mu.Unlock()
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("spool: remove %s: %w", what, err)
	}
	if err := s.wait(ctx, func() bool { return s.countLocked(match, true) == 0 }); err != nil {
		return n, fmt.Errorf("spool: remove %s: %w", what, err)
	}
	return n, nil
}

// countLocked counts spooled objects whose key matches (only those in
// flight if inflightOnly). s.mu must be held.
func (s *Spool) countLocked(match func(string) bool, inflightOnly bool) int {
	n := 0
	for k, es := range s.byKey {
		if match(k) {
			for _, e := range es {
				if e.inflight || !inflightOnly {
					n++
				}
			}
		}
	}
	return n
}

// pendingLocked counts spooled objects under prefix. s.mu must be held.
func (s *Spool) pendingLocked(prefix string) int {
	if prefix == "" {
		return s.count
	}
	return s.countLocked(func(k string) bool { return strings.HasPrefix(k, prefix) }, false)
}

// wait blocks until cond (evaluated with s.mu held) is true or ctx ends.
func (s *Spool) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		closed := s.closed && s.inflight == 0 && s.settling == 0
		s.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			// Nothing will change any more.
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Flush waits until every spooled object has been uploaded (its spool
// file removed and Options.OnUploaded returned), or ctx ends, or the
// spool is closed with objects left (ErrClosed).
func (s *Spool) Flush(ctx context.Context) error { return s.FlushPrefix(ctx, "") }

// FlushPrefix waits until every spooled object under prefix has been
// uploaded, or ctx ends.
func (s *Spool) FlushPrefix(ctx context.Context, prefix string) error {
	if s.opts.ReadOnly {
		return nil
	}
	err := s.wait(ctx, func() bool { return s.pendingLocked(prefix) == 0 && s.settling == 0 })
	if err != nil {
		s.mu.Lock()
		n := s.pendingLocked(prefix)
		last := s.lastErr
		s.mu.Unlock()
		if last != "" {
			return fmt.Errorf("spool: flush: %d objects not uploaded (last upload error: %s): %w", n, last, err)
		}
		return fmt.Errorf("spool: flush: %d objects not uploaded: %w", n, err)
	}
	return nil
}

// Stats returns counters and the backlog for metrics.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Pending: s.count, PendingBytes: s.bytes, InFlight: s.inflight, Uploaded: s.uploaded, Failures: s.failures, LastError: s.lastErr}
	for _, g := range s.groups {
		if len(g.queue) > 0 && (st.Oldest.IsZero() || g.queue[0].added.Before(st.Oldest)) {
			st.Oldest = g.queue[0].added
		}
	}
	return st
}

// Ping reports whether the spool can take objects: open, its directory
// writable, and at least Options.MinFreeBytes free.
func (s *Spool) Ping(ctx context.Context) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := unix.Access(s.dir, unix.W_OK); err != nil {
		return fmt.Errorf("spool: %s not writable: %w", s.dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return fmt.Errorf("spool: statfs %s: %w", s.dir, err)
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < s.opts.MinFreeBytes {
		return fmt.Errorf("spool: %w: %d bytes free in %s, need %d", ErrFull, free, s.dir, s.opts.MinFreeBytes)
	}
	return nil
}

// Start begins uploading with up in the background. It may be called once.
func (s *Spool) Start(up Uploader) { s.StartAdopting(up, nil) }

// StartAdopting is Start with an Adopter, tried first for files that hold
// only the object's bytes (a blob store on the spool's filesystem takes
// the file by rename: no second write and fsync). It may be called once,
// instead of Start.
func (s *Spool) StartAdopting(up Uploader, adopt Adopter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed || s.opts.ReadOnly {
		return
	}
	s.started = true
	s.up = up
	s.adopt = adopt
	s.wg.Add(1)
	go s.dispatch()
}

// Close stops the uploader, cancelling uploads in flight, and waits for it.
// Objects not yet uploaded stay on disk for the next Open. Put fails with
// ErrClosed afterwards.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notify()
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// dispatch starts uploads: for each group that is idle, not backing off
// and has objects, the oldest object, oldest groups first, up to
// Concurrency at once.
func (s *Spool) dispatch() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		now := time.Now()
		var ready []*group
		var wake time.Time
		for _, g := range s.groups {
			if g.busy || len(g.queue) == 0 {
				continue
			}
			if g.notBefore.After(now) {
				if wake.IsZero() || g.notBefore.Before(wake) {
					wake = g.notBefore
				}
				continue
			}
			ready = append(ready, g)
		}
		slices.SortFunc(ready, func(a, b *group) int { return cmpUint(a.queue[0].seq, b.queue[0].seq) })
		for _, g := range ready {
			if s.inflight >= s.opts.Concurrency {
				break
			}
			e := g.queue[0]
			g.busy = true
			e.inflight = true
			s.inflight++
			s.wg.Add(1)
			go s.upload(g, e)
		}
		s.mu.Unlock()

		d := time.Hour
		if !wake.IsZero() {
			d = max(time.Until(wake), time.Millisecond)
		}
		timer.Reset(d)
		select {
		case <-s.kick:
		case <-timer.C:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Spool) upload(g *group, e *entry) {
	defer s.wg.Done()
	if e.bare && s.adopt != nil {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.AttemptTimeout)
		adopted, err := s.adopt(ctx, e.key, e.path, e.ret)
		cancel()
		if err != nil || adopted {
			if err != nil {
				err = fmt.Errorf("adopt %s: %w", e.key, err)
			}
			s.finish(g, e, err)
			return
		}
	}
	data, err := readData(e.path, e.key)
	if err != nil {
		// The file was fsynced before Put returned, so this is disk
		// corruption: set it aside loudly rather than block the group.
		s.quarantine(e.path, err)
		s.mu.Lock()
		g.busy = false
		e.inflight = false
		s.inflight--
		s.drop(e)
		s.failures++
		s.lastErr = err.Error()
		if len(g.queue) == 0 && s.groups[e.group] == g {
			delete(s.groups, e.group)
		}
		s.notify()
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.AttemptTimeout)
	err = s.up(ctx, e.key, data, e.ret)
	cancel()
	if err != nil {
		err = fmt.Errorf("upload %s: %w", e.key, err)
	}
	s.finish(g, e, err)
}

// finish records the outcome of e's upload (or adoption): done, or a
// retry after a backoff. An uploaded file is removed (an adopted one is
// already gone).
func (s *Spool) finish(g *group, e *entry, err error) {
	s.mu.Lock()
	g.busy = false
	e.inflight = false
	s.inflight--
	done := err == nil || e.removed
	if done {
		s.drop(e)
		s.settling++
		if err == nil {
			s.uploaded++
			s.lastErr = ""
			if g.fails > 0 {
				s.log.Info("spool upload recovered", "key", e.key, "failed_attempts", g.fails)
			}
			g.fails = 0
			g.notBefore = time.Time{}
		}
	} else {
		s.failures++
		s.lastErr = err.Error()
		g.fails++
		delay := backoff(s.opts.MinBackoff, s.opts.MaxBackoff, g.fails)
		g.notBefore = time.Now().Add(delay)
		if g.fails == 1 || g.fails%10 == 0 {
			s.log.Warn("spool upload failed, will retry", "key", e.key, "attempt", g.fails, "retry_in", delay.String(), "backlog", s.count, "err", err)
		}
	}
	if len(g.queue) == 0 && s.groups[e.group] == g {
		delete(s.groups, e.group)
	}
	s.notify()
	s.mu.Unlock()

	if done {
		if rmErr := os.Remove(e.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			// Harmless: the next Open uploads it again (idempotent).
			s.log.Warn("cannot remove uploaded spool file", "path", e.path, "err", rmErr)
		}
		if err == nil && !e.removed && s.opts.OnUploaded != nil {
			s.opts.OnUploaded(e.key)
		}
		s.mu.Lock()
		s.settling--
		s.notify()
		s.mu.Unlock()
	}
}

func backoff(lo, hi time.Duration, fails int) time.Duration {
	d := lo
	for i := 1; i < fails && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	// ±20% jitter so groups that failed together do not retry together.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// dirSyncer fsyncs a directory on behalf of concurrent callers: a caller
// waits for the first fsync that starts after its rename, and one fsync
// serves everyone who renamed before it started (group commit).
type dirSyncer struct {
	mu      sync.Mutex
	running bool
	next    *syncRound
}

type syncRound struct {
	done chan struct{}
	err  error
}

func (d *dirSyncer) sync(dir string) error {
	d.mu.Lock()
	r := d.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		d.next = r
	}
	if !d.running {
		d.running = true
		d.next = nil
		d.mu.Unlock()
		d.run(dir, r)
	} else {
		d.mu.Unlock()
	}
	<-r.done
	return r.err
}

// run performs round r. A round queued meanwhile is handed to a new
// goroutine, so no caller waits for more than the round it joined.
func (d *dirSyncer) run(dir string, r *syncRound) {
	r.err = syncDir(dir)
	close(r.done)
	d.mu.Lock()
	defer d.mu.Unlock()
	if next := d.next; next != nil {
		d.next = nil
		go d.run(dir, next)
		return
	}
	d.running = false
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}
