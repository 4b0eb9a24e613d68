package search

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// keysFileName holds a tenant index's generation keys, sealed under a key
// derived from the tenant's "search-index" named key (storage.NamedKey,
// wrapped by the keyring or KMS in the database).
const keysFileName = "keys.sealed"

// keysMagic starts a sealed keys file (format version 1).
const keysMagic = "CUSTODIAN-SEARCH-KEYS-1\n"

// HKDF info strings of the keys derived from a tenant's named key.
const (
	infoKeysFile = "custodian search index keys file v1"
	infoQuery    = "custodian search audit query v1"
)

// ErrKeysFile is returned for a keys file that cannot be opened: corrupt,
// tampered with, of another tenant, or sealed under another tenant key.
var ErrKeysFile = errors.New("search: index keys file cannot be opened")

// keysDoc is the plaintext of a keys file.
type keysDoc struct {
	Version int    `json:"version"`
	Tenant  string `json:"tenant"`
	Current string `json:"current"`
	// Generations maps generation ids to their 32-byte keys. After a purge
	// only the current one is left: the others are destroyed, and with
	// them whatever an old file or a freed disk block still holds.
	Generations map[string][]byte `json:"generations"`
	// PurgePending is set before recordings are deleted and cleared when
	// a purge has rewritten every file: a purge interrupted by a crash is
	// finished at the next open.
	PurgePending bool      `json:"purge_pending"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func (d *keysDoc) wipe() {
	for _, k := range d.Generations {
		clear(k)
	}
}

// derive returns a 32-byte key for purpose info from a tenant's named key.
func derive(tenantKey []byte, info string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, tenantKey, nil, []byte(info)), out); err != nil {
		panic("search: hkdf: " + err.Error()) // cannot happen for 32 bytes
	}
	return out
}

func keysAD(tenant string) []byte { return []byte(keysMagic + tenant) }

// sealKeys encrypts d under kfKey.
func sealKeys(kfKey []byte, d *keysDoc) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kfKey)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	out := make([]byte, len(keysMagic)+chacha20poly1305.NonceSizeX, len(keysMagic)+chacha20poly1305.NonceSizeX+len(pt)+aead.Overhead())
	copy(out, keysMagic)
	nonce := out[len(keysMagic):]
	rand.Read(nonce)
	n := append([]byte(nil), nonce...)
	return aead.Seal(out, n, pt, keysAD(d.Tenant)), nil
}

// openKeys decrypts a keys file of tenant.
func openKeys(kfKey []byte, tenant string, b []byte) (*keysDoc, error) {
	aead, err := chacha20poly1305.NewX(kfKey)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte(keysMagic)) || len(b) < len(keysMagic)+chacha20poly1305.NonceSizeX+aead.Overhead() {
		return nil, fmt.Errorf("%w: not a keys file", ErrKeysFile)
	}
	b = b[len(keysMagic):]
	pt, err := aead.Open(nil, b[:chacha20poly1305.NonceSizeX], b[chacha20poly1305.NonceSizeX:], keysAD(tenant))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (another tenant's key, or tampered)", ErrKeysFile)
	}
	defer clear(pt)
	var d keysDoc
	if err := json.Unmarshal(pt, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysFile, err)
	}
	if d.Version != 1 || d.Tenant != tenant || d.Generations[d.Current] == nil {
		d.wipe()
		return nil, fmt.Errorf("%w: version %d, tenant %q, current generation present %v",
			ErrKeysFile, d.Version, d.Tenant, d.Generations[d.Current] != nil)
	}
	for g, k := range d.Generations {
		if len(k) != chacha20poly1305.KeySize {
			d.wipe()
			return nil, fmt.Errorf("%w: generation %s key of %d bytes", ErrKeysFile, g, len(k))
		}
	}
	return &d, nil
}

// readKeys reads the keys file in dir; (nil, nil) when there is none.
func readKeys(kfKey []byte, tenant, dir string) (*keysDoc, error) {
	b, err := os.ReadFile(filepath.Join(dir, keysFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("search: read keys file: %w", err)
	}
	return openKeys(kfKey, tenant, b)
}

// writeKeys replaces the keys file in dir atomically and durably.
func writeKeys(kfKey []byte, dir string, d *keysDoc) error {
	d.UpdatedAt = time.Now().UTC()
	sealed, err := sealKeys(kfKey, d)
	if err != nil {
		return fmt.Errorf("search: seal keys file: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, keysFileName), sealed); err != nil {
		return fmt.Errorf("search: write keys file: %w", err)
	}
	return nil
}

// writeFileAtomic writes path through a temporary file, fsync and rename,
// then syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// newGeneration returns a fresh generation id and key.
func newGeneration() (string, []byte) {
	key := make([]byte, chacha20poly1305.KeySize)
	rand.Read(key)
	return newGenerationID(), key
}

// queryDigest is the keyed hash of a canonical query recorded in the audit
// log instead of its text: HMAC-SHA256 under a key derived from the
// tenant's search-index key, so that nobody without that key can test
// guesses against the log, while an investigator with it can check whether
// a given query was run.
func queryDigest(queryKey []byte, canonical string) string {
	m := hmac.New(sha256.New, queryKey)
	m.Write([]byte(canonical))
	return fmt.Sprintf("hmac-sha256:%x", m.Sum(nil))
}
