package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/custodian/custodian/storage"
)

// Interface guards.
var (
	_ storage.KeyWrapper = (*Keyring)(nil)
	_ storage.Rotator    = (*Keyring)(nil)
	_ storage.Pinger     = (*Keyring)(nil)
)

var (
	// ErrMissing is returned (wrapped, together with fs.ErrNotExist) when
	// the keyring file does not exist.
	ErrMissing = errors.New("keyring: file missing")
	// ErrExists is returned by Create when the file already exists.
	ErrExists = errors.New("keyring: file already exists")
	// ErrCorrupt is returned (wrapped) for a file that cannot be parsed or
	// holds invalid keys.
	ErrCorrupt = errors.New("keyring: file corrupt")
	// ErrPermissions is returned (wrapped) when the file or its directory
	// is accessible to group or others.
	ErrPermissions = errors.New("keyring: permissions too open")
	// ErrEmpty is returned (wrapped) for a file that holds no keys.
	ErrEmpty = errors.New("keyring: no keys")
	// ErrDataWithoutKeyring is returned (wrapped) by OpenOrCreate when the
	// keyring is missing but earlier data exists.
	ErrDataWithoutKeyring = errors.New("keyring: missing while data exists")
	// ErrUnknownKEK is returned (wrapped) by Unwrap for a KEK id the
	// keyring does not hold.
	ErrUnknownKEK = errors.New("keyring: unknown key-encryption key")
	// ErrUnwrap is returned (wrapped) by Unwrap when authentication fails:
	// a different encryption context, a tampered or truncated wrapped key.
	ErrUnwrap = errors.New("keyring: cannot unwrap data key (wrong encryption context or damaged key)")
)

// Key statuses in the file.
const (
	StatusPrimary = "primary"
	StatusRetired = "retired"
)

const (
	fileVersion = 1
	wrapVersion = 1
	keySize     = chacha20poly1305.KeySize
	maxDEKSize  = 1024
	dirMode     = 0o700
	fileMode    = 0o600
)

// secret is key material. It never prints or logs its bytes.
type secret [keySize]byte

func (secret) String() string               { return "[redacted]" }
func (secret) GoString() string             { return "[redacted]" }
func (secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// kek is one key-encryption key.
type kek struct {
	ID      string
	Created time.Time
	Status  string
	Key     secret
}

// fileKey is kek as stored.
type fileKey struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Status  string    `json:"status"`
	Key     string    `json:"key"` // base64, 32 bytes
}

type file struct {
	Version int       `json:"version"`
	Keys    []fileKey `json:"keys"`
}

// Keyring is a loaded keyring file. It is safe for concurrent use, and
// notices when another process (`custodian keys rotate`) rewrote the file.
type Keyring struct {
	path string

	mu      sync.Mutex
	keys    []kek // file order; exactly one primary
	modTime time.Time
	size    int64
}

// String never includes key material.
func (k *Keyring) String() string { return "keyring(" + k.path + ")" }

// Path returns the file the keyring was loaded from.
func (k *Keyring) Path() string { return k.path }

// Create writes a new keyring with one primary KEK at path, creating its
// directory (0700). It refuses to replace an existing file (ErrExists).
func Create(path string) (*Keyring, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("keyring: create %s: %w", path, err)
	}
	if err := checkMode(dir, true); err != nil {
		return nil, fmt.Errorf("keyring: create %s: %w", path, err)
	}
	k, err := newKEK(StatusPrimary)
	if err != nil {
		return nil, fmt.Errorf("keyring: create %s: %w", path, err)
	}
	data, err := encode([]kek{k})
	if err != nil {
		return nil, fmt.Errorf("keyring: create %s: %w", path, err)
	}
	if err := writeFile(path, data, false); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("keyring: create %s: %w; refusing to overwrite it", path, ErrExists)
		}
		return nil, fmt.Errorf("keyring: create %s: %w", path, err)
	}
	return Open(path)
}

// Open loads the keyring at path. It fails with ErrMissing, ErrPermissions,
// ErrCorrupt or ErrEmpty (wrapped, with the path and what to do).
func Open(path string) (*Keyring, error) {
	kr := &Keyring{path: path}
	if err := kr.load(); err != nil {
		return nil, err
	}
	return kr, nil
}

// OpenOrCreate opens the keyring at path, or creates it when the file is
// missing and dataExists is false (a first start). When the file is missing
// but dataExists is true (a database or objects from earlier runs), it
// refuses with ErrDataWithoutKeyring: a new keyring could never decrypt the
// existing recordings. created reports whether a new keyring was written.
func OpenOrCreate(path string, dataExists bool) (kr *Keyring, created bool, err error) {
	kr, err = Open(path)
	if err == nil || !errors.Is(err, ErrMissing) {
		return kr, false, err
	}
	if dataExists {
		return nil, false, fmt.Errorf("keyring: %s is missing but data from earlier runs exists: %w. "+
			"Without the keyring that wrapped their data keys the existing recordings cannot be decrypted, "+
			"so a new keyring will not be created over them. Restore keyring.json from your backup "+
			"(mode 0600) or point --data at the matching directory", path, ErrDataWithoutKeyring)
	}
	kr, err = Create(path)
	if err != nil {
		return nil, false, err
	}
	return kr, true, nil
}

// load reads and validates the file and replaces the in-memory keys.
// The caller holds k.mu or owns k exclusively.
func (k *Keyring) load() error {
	if err := checkMode(filepath.Dir(k.path), true); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: open %s: %w", k.path, err)
	}
	f, err := os.Open(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keyring: open %s: %w (%w)", k.path, ErrMissing, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("keyring: open %s: %w", k.path, err)
	}
	defer f.Close() // read only
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("keyring: open %s: %w", k.path, err)
	}
	if err := checkFileInfo(k.path, fi, false); err != nil {
		return fmt.Errorf("keyring: open %s: %w", k.path, err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return fmt.Errorf("keyring: open %s: %w", k.path, err)
	}
	keys, err := decode(buf.Bytes())
	if err != nil {
		return fmt.Errorf("keyring: open %s: %w", k.path, err)
	}
	k.keys, k.modTime, k.size = keys, fi.ModTime(), fi.Size()
	return nil
}

// reloadIfChanged reloads the file when its size or modification time
// changed since the last load (another process rotated). The caller holds
// k.mu.
func (k *Keyring) reloadIfChanged() error {
	fi, err := os.Stat(k.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keyring: %s: %w (%w); restore it from backup before restarting", k.path, ErrMissing, fs.ErrNotExist)
		}
		return fmt.Errorf("keyring: %s: %w", k.path, err)
	}
	if fi.ModTime().Equal(k.modTime) && fi.Size() == k.size {
		return nil
	}
	return k.load()
}

func checkMode(path string, dir bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkFileInfo(path, fi, dir)
}

func checkFileInfo(path string, fi fs.FileInfo, dir bool) error {
	switch {
	case dir && !fi.IsDir():
		return fmt.Errorf("%s is not a directory", path)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		want := "0600"
		if dir {
			want = "0700"
		}
		return fmt.Errorf("%w: %s has mode %04o, readable or writable by group or others; "+
			"run `chmod %s %s` and check who may have copied it", ErrPermissions, path, perm, want, path)
	}
	return nil
}

func decode(data []byte) ([]kek, error) {
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrCorrupt)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, f.Version, fileVersion)
	}
	if len(f.Keys) == 0 {
		return nil, ErrEmpty
	}
	keys := make([]kek, 0, len(f.Keys))
	primaries := 0
	seen := map[string]bool{}
	for i, fk := range f.Keys {
		if fk.ID == "" || len(fk.ID) > 128 {
			return nil, fmt.Errorf("%w: key %d: bad id", ErrCorrupt, i)
		}
		if seen[fk.ID] {
			return nil, fmt.Errorf("%w: key id %s appears twice", ErrCorrupt, fk.ID)
		}
		seen[fk.ID] = true
		switch fk.Status {
		case StatusPrimary:
			primaries++
		case StatusRetired:
		default:
			return nil, fmt.Errorf("%w: key %s: status %q is not primary or retired", ErrCorrupt, fk.ID, fk.Status)
		}
		raw, err := base64.StdEncoding.DecodeString(fk.Key)
		if err != nil || len(raw) != keySize {
			return nil, fmt.Errorf("%w: key %s: not %d base64-encoded bytes", ErrCorrupt, fk.ID, keySize)
		}
		k := kek{ID: fk.ID, Created: fk.Created, Status: fk.Status}
		copy(k.Key[:], raw)
		clear(raw)
		keys = append(keys, k)
	}
	if primaries != 1 {
		return nil, fmt.Errorf("%w: %d primary keys, want exactly 1", ErrCorrupt, primaries)
	}
	return keys, nil
}

func encode(keys []kek) ([]byte, error) {
	f := file{Version: fileVersion}
	for _, k := range keys {
		f.Keys = append(f.Keys, fileKey{
			ID: k.ID, Created: k.Created.UTC(), Status: k.Status,
			Key: base64.StdEncoding.EncodeToString(k.Key[:]),
		})
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func newKEK(status string) (kek, error) {
	var id [8]byte
	k := kek{Created: time.Now().UTC().Truncate(time.Second), Status: status}
	if _, err := rand.Read(id[:]); err != nil {
		return kek{}, err
	}
	if _, err := rand.Read(k.Key[:]); err != nil {
		return kek{}, err
	}
	k.ID = "kek-" + hex.EncodeToString(id[:])
	return k, nil
}

// writeFile writes data to a temp file in path's directory (0600), fsyncs
// it and moves it to path: with replace, by rename; without, by link, which
// fails if path exists. Then it fsyncs the directory.
func writeFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".keyring-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = rerr
		}
	}()
	if err := f.Chmod(fileMode); err != nil {
		return errors.Join(err, f.Close())
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// lockFile takes an exclusive lock on path+".lock" so that two processes
// rotating at once do not lose a key.
func lockFile(path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return func() error {
		return errors.Join(syscall.Flock(int(f.Fd()), syscall.LOCK_UN), f.Close())
	}, nil
}

// KEKInfo describes a KEK without its key material.
type KEKInfo struct {
	ID      string
	Created time.Time
	Status  string
}

// Keys lists the KEKs (no key material), in file order.
func (k *Keyring) Keys() []KEKInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]KEKInfo, len(k.keys))
	for i, kk := range k.keys {
		out[i] = KEKInfo{ID: kk.ID, Created: kk.Created, Status: kk.Status}
	}
	return out
}

// PrimaryID returns the id of the primary KEK.
func (k *Keyring) PrimaryID() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.primary().ID
}

func (k *Keyring) primary() *kek {
	for i := range k.keys {
		if k.keys[i].Status == StatusPrimary {
			return &k.keys[i]
		}
	}
	panic("keyring: no primary key (decode guarantees one)")
}

func (k *Keyring) find(id string) *kek {
	for i := range k.keys {
		if k.keys[i].ID == id {
			return &k.keys[i]
		}
	}
	return nil
}

// Rotate makes a new KEK primary and retires the old one, rewriting the
// file atomically (temp file, fsync, rename, directory fsync) under a file
// lock. Data keys wrapped before stay unwrappable; re-wrapping them under
// the new KEK is the caller's job (storage.Store's Rewrap).
func (k *Keyring) Rotate(ctx context.Context) (id string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("keyring: rotate: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	unlock, err := lockFile(k.path)
	if err != nil {
		return "", fmt.Errorf("keyring: rotate %s: lock: %w", k.path, err)
	}
	defer func() {
		if uerr := unlock(); uerr != nil && err == nil {
			id, err = "", fmt.Errorf("keyring: rotate %s: unlock: %w", k.path, uerr)
		}
	}()
	// Start from the file as it is now: another process may have rotated.
	if err := k.load(); err != nil {
		return "", fmt.Errorf("keyring: rotate: %w", err)
	}
	nk, err := newKEK(StatusPrimary)
	if err != nil {
		return "", fmt.Errorf("keyring: rotate: %w", err)
	}
	keys := slices.Clone(k.keys)
	for i := range keys {
		keys[i].Status = StatusRetired
	}
	keys = append(keys, nk)
	data, err := encode(keys)
	if err != nil {
		return "", fmt.Errorf("keyring: rotate: %w", err)
	}
	if err := writeFile(k.path, data, true); err != nil {
		return "", fmt.Errorf("keyring: rotate %s: write: %w", k.path, err)
	}
	if err := k.load(); err != nil {
		return "", fmt.Errorf("keyring: rotate: reload: %w", err)
	}
	return nk.ID, nil
}

// Ping checks that the keyring file is still present with safe permissions
// and that a primary KEK is loaded.
func (k *Keyring) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keyring: ping: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadIfChanged(); err != nil {
		return fmt.Errorf("keyring: ping: %w", err)
	}
	if err := checkMode(k.path, false); err != nil {
		return fmt.Errorf("keyring: ping: %w", err)
	}
	return nil
}

// associatedData binds a wrapped key to the KEK id and the encryption
// context: a fixed label, then the id and every context pair in sorted key
// order, each length-prefixed (uvarint), so distinct contexts never encode
// alike.
func associatedData(kekID string, ec map[string]string) []byte {
	ad := []byte("custodian/keyring/v1\x00")
	put := func(s string) {
		ad = binary.AppendUvarint(ad, uint64(len(s)))
		ad = append(ad, s...)
	}
	put(kekID)
	ad = binary.AppendUvarint(ad, uint64(len(ec)))
	for _, key := range slices.Sorted(maps.Keys(ec)) {
		put(key)
		put(ec[key])
	}
	return ad
}

// Wrap encrypts dek under the primary KEK with XChaCha20-Poly1305 and the
// encryption context as associated data. The result is
// version(1) || nonce(24) || ciphertext+tag.
func (k *Keyring) Wrap(ctx context.Context, dek []byte, ec map[string]string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("keyring: wrap: %w", err)
	}
	if len(dek) == 0 || len(dek) > maxDEKSize {
		return nil, "", fmt.Errorf("keyring: wrap: data key of %d bytes", len(dek))
	}
	k.mu.Lock()
	if err := k.reloadIfChanged(); err != nil && !errors.Is(err, ErrMissing) {
		// A vanished file is reported by Ping; the loaded keys still work.
		k.mu.Unlock()
		return nil, "", fmt.Errorf("keyring: wrap: %w", err)
	}
	p := *k.primary()
	k.mu.Unlock()

	aead, err := chacha20poly1305.NewX(p.Key[:])
	if err != nil {
		return nil, "", fmt.Errorf("keyring: wrap: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(dek)+aead.Overhead())
	out[0] = wrapVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, "", fmt.Errorf("keyring: wrap: %w", err)
	}
	out = aead.Seal(out, out[1:], dek, associatedData(p.ID, ec))
	return out, p.ID, nil
}

// Unwrap decrypts a key wrapped by Wrap under KEK kekID (primary or
// retired). A different encryption context, or any change to wrapped,
// fails with ErrUnwrap; an id the keyring does not hold, even after
// re-reading the file, with ErrUnknownKEK.
func (k *Keyring) Unwrap(ctx context.Context, wrapped []byte, kekID string, ec map[string]string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keyring: unwrap: %w", err)
	}
	k.mu.Lock()
	kk := k.find(kekID)
	if kk == nil {
		// Another process may have rotated since we loaded.
		if err := k.reloadIfChanged(); err != nil && !errors.Is(err, ErrMissing) {
			k.mu.Unlock()
			return nil, fmt.Errorf("keyring: unwrap: %w", err)
		}
		kk = k.find(kekID)
	}
	if kk == nil {
		k.mu.Unlock()
		return nil, fmt.Errorf("keyring: unwrap with %q: %w", kekID, ErrUnknownKEK)
	}
	key := kk.Key
	k.mu.Unlock()

	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, fmt.Errorf("keyring: unwrap: %w", err)
	}
	if len(wrapped) < 1+aead.NonceSize()+aead.Overhead() || wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("keyring: unwrap with %s: %w", kekID, ErrUnwrap)
	}
	nonce := wrapped[1 : 1+aead.NonceSize()]
	dek, err := aead.Open(nil, nonce, wrapped[1+aead.NonceSize():], associatedData(kekID, ec))
	if err != nil {
		return nil, fmt.Errorf("keyring: unwrap with %s: %w", kekID, ErrUnwrap)
	}
	return dek, nil
}
