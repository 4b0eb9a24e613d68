package search

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	index "github.com/blevesearch/bleve_index_api"
	"golang.org/x/crypto/chacha20poly1305"
)

// Every byte bleve writes for an index passes through bleve's file
// callbacks (index.WriterHook / index.ReaderHook, bleve v2.6): zap segment
// sections (term dictionaries, postings, locations, stored fields, doc
// values, field names), the values root.bolt keeps (deletion bitmaps,
// internal values such as the mapping, stats) and index_meta.json. The hook
// is called with the file's path as context and returns an id that bleve
// stores in clear (in the zap footer, in root.bolt, after index_meta.json)
// and hands back to the reader hook. Our id is "cx1." followed by the
// generation id; the generation's key is a random 32-byte
// XChaCha20-Poly1305 key kept only in the tenant's sealed keys file
// (keys.go). Every call seals its chunk with a fresh random 24-byte nonce,
// bound by the associated data to the tenant and the generation.
//
// The hooks are process-wide variables of bleve; they find a file's keys
// by its directory in a registry. A file in a directory that is not
// registered is never written (the writer hook fails) and a file without
// a writer id is never read from a registered directory: nothing can fall
// back to plaintext.

// writerIDPrefix starts the writer id of files we encrypt (format version 1:
// XChaCha20-Poly1305, nonce ‖ ciphertext ‖ tag per chunk).
const writerIDPrefix = "cx1."

// Errors of the file encryption layer.
var (
	// ErrUnregisteredPath is returned by the writer hook for a file outside
	// every open index: bleve is never allowed to write it in clear.
	ErrUnregisteredPath = errors.New("search: index file outside any open encrypted index")
	// ErrUnencryptedFile is returned for a file in an index directory that
	// was not written through the encryption hook.
	ErrUnencryptedFile = errors.New("search: index file is not encrypted")
	// ErrGenerationUnknown is returned for a file encrypted under a
	// generation key that this index does not hold (destroyed by a purge,
	// or from another index).
	ErrGenerationUnknown = errors.New("search: index file key unknown or destroyed")
	// ErrFileAuthentication is returned when a chunk of an index file fails
	// authentication (tampered, truncated or under another key).
	ErrFileAuthentication = errors.New("search: index file chunk failed authentication")
)

// fileKeys holds the generation keys of one bleve index directory.
type fileKeys struct {
	tenant string
	cache  *chunkCache // decrypted segment chunks (nil: none)
	mu     sync.RWMutex
	cur    string // current generation id
	gens   map[string]cipher.AEAD
}

func newFileKeys(tenant string, cache *chunkCache) *fileKeys {
	return &fileKeys{tenant: tenant, cache: cache, gens: map[string]cipher.AEAD{}}
}

// add makes a generation key known (it does not make it current).
func (k *fileKeys) add(gen string, key []byte) error {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return fmt.Errorf("search: generation key: %w", err)
	}
	k.mu.Lock()
	k.gens[gen] = aead
	k.mu.Unlock()
	return nil
}

func (k *fileKeys) setCurrent(gen string) {
	k.mu.Lock()
	k.cur = gen
	k.mu.Unlock()
}

// keep forgets every generation but gen.
func (k *fileKeys) keep(gen string) {
	k.mu.Lock()
	for g := range k.gens {
		if g != gen {
			delete(k.gens, g)
		}
	}
	k.mu.Unlock()
}

func (k *fileKeys) current() (string, cipher.AEAD) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.cur, k.gens[k.cur]
}

func (k *fileKeys) get(gen string) cipher.AEAD {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.gens[gen]
}

// fileAD binds every chunk to the tenant and the generation.
func fileAD(tenant, gen string) []byte {
	return []byte("custodian-search-index\x00v1\x00" + tenant + "\x00" + gen)
}

var (
	hooksOnce sync.Once
	regMu     sync.RWMutex
	registry  = map[string]*fileKeys{} // bleve index directory → keys
)

// observeWrite, when set (tests only), sees every chunk written: its file,
// its plaintext and what was sealed from it.
var observeWrite atomic.Pointer[func(path string, plaintext, sealed []byte)]

// installHooks points bleve's file callbacks at this package, once per
// process.
func installHooks() {
	hooksOnce.Do(func() {
		index.WriterHook = writerHook
		index.ReaderHook = readerHook
	})
}

// register makes k the keys of the bleve index in dir: its
// index_meta.json in dir, its segments and root.bolt in dir/store.
func register(dir string, k *fileKeys) {
	regMu.Lock()
	registry[filepath.Clean(dir)] = k
	registry[filepath.Join(dir, "store")] = k
	regMu.Unlock()
}

func unregister(dir string) {
	regMu.Lock()
	delete(registry, filepath.Clean(dir))
	delete(registry, filepath.Join(dir, "store"))
	regMu.Unlock()
}

// lookup finds the keys of the index directory holding the file named by
// context (its path).
func lookup(context []byte) *fileKeys {
	if len(context) == 0 {
		return nil
	}
	dir := filepath.Dir(filepath.Clean(string(context)))
	regMu.RLock()
	defer regMu.RUnlock()
	return registry[dir]
}

func writerHook(context []byte) (string, func(data []byte) []byte, error) {
	k := lookup(context)
	if k == nil {
		return "", nil, fmt.Errorf("%w: %q", ErrUnregisteredPath, context)
	}
	gen, aead := k.current()
	if aead == nil {
		return "", nil, fmt.Errorf("%w: no current generation for %q", ErrGenerationUnknown, context)
	}
	ad := fileAD(k.tenant, gen)
	path := string(context)
	seal := func(data []byte) []byte {
		var nonce [chacha20poly1305.NonceSizeX]byte
		rand.Read(nonce[:]) // never fails (crypto/rand)
		out := make([]byte, len(nonce), len(nonce)+len(data)+aead.Overhead())
		copy(out, nonce[:])
		out = aead.Seal(out, nonce[:], data, ad)
		if fn := observeWrite.Load(); fn != nil {
			(*fn)(path, data, out)
		}
		return out
	}
	return writerIDPrefix + gen, seal, nil
}

func readerHook(id string, context []byte) (func(data []byte) ([]byte, error), error) {
	if id == "" {
		if len(context) == 0 {
			// In-memory segments: nothing was processed on the way in.
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %q", ErrUnencryptedFile, context)
	}
	gen, ok := strings.CutPrefix(id, writerIDPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: unknown writer id %q", ErrUnencryptedFile, id)
	}
	k := lookup(context)
	if k == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnregisteredPath, context)
	}
	aead := k.get(gen)
	if aead == nil {
		return nil, fmt.Errorf("%w: generation %s of %q", ErrGenerationUnknown, gen, context)
	}
	ad := fileAD(k.tenant, gen)
	open := func(data []byte) ([]byte, error) {
		if len(data) < chacha20poly1305.NonceSizeX+aead.Overhead() {
			return nil, fmt.Errorf("%w: chunk of %d bytes", ErrFileAuthentication, len(data))
		}
		// Never open in place: data is the read-only mmap of the file.
		pt, err := aead.Open(nil, data[:chacha20poly1305.NonceSizeX], data[chacha20poly1305.NonceSizeX:], ad)
		if err != nil {
			return nil, ErrFileAuthentication
		}
		return pt, nil
	}
	if strings.HasSuffix(string(context), ".zap") {
		return k.cache.wrap(open), nil
	}
	return open, nil
}

// newGenerationID returns a random generation id (16 hex digits).
func newGenerationID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writerID returns the writer id of files of generation gen.
func writerID(gen string) string { return writerIDPrefix + gen }
