package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/spool"
)

const chunk = 64 << 10

// env is a Store on real components: a database, the disk blob store
// under DATA/objects (optionally wrapped), the local keyring under
// DATA/keys and a spool under DATA/spool.
type env struct {
	t     testing.TB
	data  string
	db    *gorm.DB
	disk  *disk.Store
	blob  *tapBlob
	kr    *keyring.Keyring
	spool *spool.Spool
	st    *storage.Store
}

type envOptions struct {
	data      string // reuse a DATA directory (restart); "" for a new one
	spoolOpts spool.Options
	wrap      func(storage.Blob) storage.Blob // e.g. an S3 store instead of disk
}

func newEnv(t testing.TB, db *gorm.DB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, db: db, data: o.data}
	if e.data == "" {
		e.data = t.TempDir()
	}
	var err error
	if e.disk, err = disk.New(filepath.Join(e.data, "objects")); err != nil {
		t.Fatal(err)
	}
	var inner storage.Blob = e.disk
	if o.wrap != nil {
		inner = o.wrap(e.disk)
	}
	e.blob = &tapBlob{Blob: inner, gets: map[string]int{}}
	krPath := filepath.Join(e.data, "keys", "keyring.json")
	if e.kr, _, err = keyring.OpenOrCreate(krPath, false); err != nil {
		t.Fatal(err)
	}
	so := o.spoolOpts
	if so.MinBackoff == 0 {
		so.MinBackoff, so.MaxBackoff = 5*time.Millisecond, 100*time.Millisecond
	}
	if e.spool, err = spool.Open(filepath.Join(e.data, "spool"), so); err != nil {
		t.Fatal(err)
	}
	e.st = storage.New(db, e.blob, e.kr, e.spool, storage.Options{Provider: "local"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.st.Close(ctx)
	})
	return e
}

func (e *env) flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.st.Flush(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// crash stops the spool without flushing, like a killed process: spooled
// objects stay on disk.
func (e *env) crash() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.st.Close(ctx)
}

// tapBlob passes through to a real blob store, counting Gets, recording
// the order of Puts, and able to simulate an outage.
type tapBlob struct {
	storage.Blob
	mu   sync.Mutex
	gets map[string]int
	puts []string
	down bool
	// overlay replaces what Get returns for a key: tampering without
	// rewriting (and fsyncing) the real object each time.
	overlay map[string][]byte
}

var errDown = errors.New("test: blob store unreachable")

func (b *tapBlob) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) error {
	b.mu.Lock()
	down := b.down
	b.mu.Unlock()
	if down {
		return errDown
	}
	if err := b.Blob.Put(ctx, key, data, o); err != nil {
		return err
	}
	b.mu.Lock()
	b.puts = append(b.puts, key)
	b.mu.Unlock()
	return nil
}

func (b *tapBlob) Get(ctx context.Context, key string) ([]byte, error) {
	b.mu.Lock()
	b.gets[key]++
	o, ok := b.overlay[key]
	b.mu.Unlock()
	if ok {
		return bytes.Clone(o), nil
	}
	return b.Blob.Get(ctx, key)
}

func (b *tapBlob) setOverlay(key string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overlay == nil {
		b.overlay = map[string][]byte{}
	}
	if data == nil {
		delete(b.overlay, key)
	} else {
		b.overlay[key] = data
	}
}

func (b *tapBlob) setDown(v bool) {
	b.mu.Lock()
	b.down = v
	b.mu.Unlock()
}

func (b *tapBlob) resetGets() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.gets
	b.gets = map[string]int{}
	return g
}

func (b *tapBlob) putOrder() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.puts...)
}

// Ping passes through when the wrapped store answers pings.
func (b *tapBlob) Ping(ctx context.Context) error {
	if p, ok := b.Blob.(storage.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// partData returns deterministic, recognizable part contents.
func partData(rec string, n, size int) []byte {
	p := bytes.Repeat([]byte(fmt.Sprintf("<%s part %d CANARY-PLAINTEXT>", rec, n)), size/20+1)
	return p[:size]
}

// writeRecording writes parts of the given sizes and closes the writer.
func writeRecording(t testing.TB, st *storage.Store, tenant, rec string, sizes []int, complete bool) ([]byte, storage.Manifest) {
	t.Helper()
	ctx := context.Background()
	w, err := st.NewWriter(ctx, tenant, rec, storage.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for i, n := range sizes {
		p := partData(rec, i, n)
		got, err := w.WritePart(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got != i {
			t.Fatalf("WritePart returned part %d, want %d", got, i)
		}
		all = append(all, p...)
	}
	m, err := w.Close(ctx, complete)
	if err != nil {
		t.Fatal(err)
	}
	return all, m
}

func readAll(t testing.TB, st *storage.Store, tenant, rec string, o storage.ReadOptions) []byte {
	t.Helper()
	r, err := st.Open(context.Background(), tenant, rec, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	n, err := r.Stream(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != r.Size() || int64(buf.Len()) != r.Size() {
		t.Fatalf("streamed %d bytes, size %d", n, r.Size())
	}
	return buf.Bytes()
}

// tryRead opens and streams a recording, returning what was written and
// the first error.
func tryRead(st *storage.Store, tenant, rec string, o storage.ReadOptions) ([]byte, error) {
	r, err := st.Open(context.Background(), tenant, rec, o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	_, err = r.Stream(context.Background(), &buf)
	if err == nil {
		err = r.Verify(context.Background(), nil)
	}
	return buf.Bytes(), err
}

var _ io.ReaderAt = (*bytes.Reader)(nil)

func newID() string { return meta.NewID("rec") }
