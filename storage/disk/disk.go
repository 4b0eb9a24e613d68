package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/custodian/custodian/storage"
)

// Interface guards.
var (
	_ storage.Blob        = (*Store)(nil)
	_ storage.Pinger      = (*Store)(nil)
	_ storage.FileAdopter = (*Store)(nil)
)

// ErrInvalidKey is returned (wrapped) for a key that is empty, absolute,
// contains "." or ".." segments, empty segments, a backslash or a NUL byte,
// or a segment starting with ".": such a key could escape the directory or
// collide with the store's temp files.
var ErrInvalidKey = errors.New("disk: invalid object key")

// ErrInvalidRange is returned (wrapped) by GetRange for a negative offset or
// length, or an offset at or beyond the end of a non-empty read.
var ErrInvalidRange = errors.New("disk: invalid range")

const (
	dirMode  = 0o700
	fileMode = 0o600
	// tmpPrefix starts every temp file; keys cannot contain a segment
	// starting with ".", so no key names a temp file.
	tmpPrefix = ".tmp-"
)

// Store keeps objects as files under one directory. It is safe for
// concurrent use.
type Store struct {
	dir string
}

// New returns a Store rooted at dir, creating it (mode 0700) if missing.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("disk: new: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: new %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("disk: new %s: %w", abs, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("disk: new %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("disk: new %s: not a directory", abs)
	}
	return &Store{dir: abs}, nil
}

// Dir returns the absolute directory the store writes to.
func (s *Store) Dir() string { return s.dir }

// ValidKey reports whether key is acceptable to the store (see ErrInvalidKey).
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w %q: backslash or NUL", ErrInvalidKey, key)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("%w %q: absolute", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w %q: empty segment", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w %q: %q segment", ErrInvalidKey, key, seg)
		case strings.HasPrefix(seg, "."):
			return fmt.Errorf("%w %q: segment starts with \".\"", ErrInvalidKey, key)
		}
	}
	return nil
}

// path returns the file path for a validated key.
func (s *Store) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// Put writes data to a temp file beside the object, fsyncs it, renames it
// over the object and fsyncs the directory. Directories it creates are made
// durable in their parents as well.
func (s *Store) Put(ctx context.Context, key string, data []byte, _ storage.PutOptions) error {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("disk: put: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk: put %s: %w", key, err)
	}
	// A concurrent Delete may prune the parent directory between mkdir and
	// create; try again a few times in that case.
	for attempt := 0; ; attempt++ {
		err = s.put(p, data)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("disk: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(p string, data []byte) (err error) {
	parent := filepath.Dir(p)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	f, err := os.CreateTemp(parent, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp) // best effort; the original error matters
		}
	}()
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Chmod(fileMode); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(parent)
}

// AdoptFile makes the file at src, which must hold exactly the object's
// bytes and be durable already (the spool fsynced it), the object key by
// renaming it: no second write and no second fsync. It reports false when
// src is on another filesystem (the caller then Puts the bytes). The
// rename is atomic; until the directory change reaches the disk's journal
// the file is, after a crash, still at src, where the spool finds it and
// adopts it again, so an object is never lost or half there.
func (s *Store) AdoptFile(ctx context.Context, key, src string, _ storage.PutOptions) (bool, error) {
	p, err := s.path(key)
	if err != nil {
		return false, fmt.Errorf("disk: adopt: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("disk: adopt %s: %w", key, err)
	}
	for attempt := 0; ; attempt++ {
		if err = s.mkdirAll(filepath.Dir(p)); err == nil {
			err = os.Rename(src, p)
		}
		// A concurrent Delete may prune the new parent directory before
		// the rename; try again a few times then.
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
		if _, serr := os.Stat(src); serr != nil {
			break // the source itself is missing
		}
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EXDEV):
		return false, nil
	}
	return false, fmt.Errorf("disk: adopt %s: %w", key, err)
}

// mkdirAll creates dir and its missing ancestors below s.dir, fsyncing the
// parent of every directory it creates so the new entries survive a crash.
func (s *Store) mkdirAll(dir string) error {
	if dir == s.dir {
		return nil
	}
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// Get returns the whole object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("disk: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("disk: get %s: %w", key, err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("disk: get %s: %w", key, mapErr(err))
	}
	return data, nil
}

// GetRange returns n bytes at off, fewer only at the end of the object.
// n == 0 returns an empty slice when off is within [0, size]; otherwise an
// off at or beyond the end is ErrInvalidRange.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("disk: get range: %w", err)
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("disk: get range %s [%d,+%d): %w", key, off, n, ErrInvalidRange)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("disk: get range %s: %w", key, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("disk: get range %s: %w", key, mapErr(err))
	}
	defer f.Close() // read-only: nothing to lose
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("disk: get range %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("disk: get range %s: %w", key, storage.ErrNotFound)
	}
	size := fi.Size()
	if off > size || (n > 0 && off == size) {
		return nil, fmt.Errorf("disk: get range %s [%d,+%d) of %d bytes: %w", key, off, n, size, ErrInvalidRange)
	}
	n = min(n, size-off)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("disk: get range %s: %w", key, err)
	}
	return buf, nil
}

// Size returns the object's length.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, fmt.Errorf("disk: size: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("disk: size %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, fmt.Errorf("disk: size %s: %w", key, mapErr(err))
	}
	if fi.IsDir() {
		return 0, fmt.Errorf("disk: size %s: %w", key, storage.ErrNotFound)
	}
	return fi.Size(), nil
}

// Delete removes the object; a missing object is not an error. Directories
// left empty are removed up to the store's root.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("disk: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk: delete %s: %w", key, err)
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("disk: delete %s: %w", key, err)
	case fi.IsDir():
		return nil // a "directory" key holds no object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: delete %s: %w", key, err)
	}
	parent := filepath.Dir(p)
	if err := syncDir(parent); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: delete %s: %w", key, err)
	}
	// Prune empty parents; os.Remove fails on a non-empty directory, which
	// ends the walk.
	for dir := parent; dir != s.dir && strings.HasPrefix(dir, s.dir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List returns the keys that start with prefix (a plain string prefix, as
// in S3), sorted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.ContainsAny(prefix, "\\\x00") || strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("disk: list %q: %w", prefix, ErrInvalidKey)
	}
	// Walk only the deepest directory the prefix names in full.
	root := s.dir
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := ValidKey(prefix[:i]); err != nil {
			return nil, fmt.Errorf("disk: list: %w", err)
		}
		root = filepath.Join(s.dir, filepath.FromSlash(prefix[:i]))
	}
	var keys []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // pruned concurrently, or prefix names nothing
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != root {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil // temp file
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk: list %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Ping reports whether the directory exists and accepts new files.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("disk: ping: %w", err)
	}
	f, err := os.CreateTemp(s.dir, tmpPrefix+"ping-*")
	if err != nil {
		return fmt.Errorf("disk: ping %s: %w", s.dir, err)
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

// mapErr turns "no such file" and "is a directory"-style failures into
// storage.ErrNotFound.
func mapErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return storage.ErrNotFound
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if fi, serr := os.Stat(pe.Path); serr == nil && fi.IsDir() {
			return storage.ErrNotFound
		}
	}
	return err
}
