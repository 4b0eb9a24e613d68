package api

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/spool"
)

// cacheStore is a real encrypted store with a few small recordings.
func cacheStore(t *testing.T, n int) (*storage.Store, []string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db := metatest.SQLite(t)
	blob, err := disk.New(filepath.Join(dir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	kr, _, err := keyring.OpenOrCreate(filepath.Join(dir, "keys", "keyring.json"), false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := storage.New(db, blob, kr, sp, storage.Options{Provider: "local"})
	t.Cleanup(func() { st.Close(context.Background()) })
	var ids []string
	for range n {
		id := meta.NewID("rec")
		w, err := st.NewWriter(ctx, "t", id, storage.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.WritePart(ctx, []byte("hello "+id))
		if _, err := w.Close(ctx, true); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return st, ids
}

func readable(rd *storage.Reader) bool {
	_, err := rd.ReadRange(context.Background(), make([]byte, 5), 0)
	return err == nil
}

func TestReaderCache(t *testing.T) {
	st, ids := cacheStore(t, 3)
	now := time.Unix(1000, 0)
	c := newReaderCache(func() time.Time { return now })
	opens := 0
	open := func(id string) func(context.Context) (*storage.Reader, error) {
		return func(ctx context.Context) (*storage.Reader, error) {
			opens++
			return st.Open(ctx, "t", id, storage.ReadOptions{})
		}
	}
	ctx := context.Background()
	a, err := c.get(ctx, "a", open(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := c.get(ctx, "a", open(ids[0]))
	if a2 != a || opens != 1 {
		t.Fatalf("second get opened again (%d opens)", opens)
	}
	// Dropped while in use: stays readable until the last release.
	c.drop("a")
	if !readable(a.rd) {
		t.Fatal("reader closed while in use")
	}
	c.release(a)
	if !readable(a.rd) {
		t.Fatal("reader closed with one user left")
	}
	c.release(a2)
	if readable(a.rd) {
		t.Fatal("dropped reader not closed (its key not wiped) after the last release")
	}
	// Idle entries expire after the TTL.
	b, _ := c.get(ctx, "b", open(ids[1]))
	c.release(b)
	now = now.Add(readerCacheTTL + time.Second)
	x, _ := c.get(ctx, "c", open(ids[2]))
	if readable(b.rd) || c.len() != 1 {
		t.Fatalf("expired reader still open (%d cached)", c.len())
	}
	// Uncacheable (no manifest hash): closed on release.
	u, _ := c.get(ctx, "", open(ids[0]))
	c.release(u)
	if readable(u.rd) || c.len() != 1 {
		t.Fatal("uncached reader kept")
	}
	c.close()
	if !readable(x.rd) {
		t.Fatal("close wiped a reader in use")
	}
	c.release(x)
	if readable(x.rd) {
		t.Fatal("reader not closed after close and release")
	}
	if _, err := c.get(ctx, "z", open(ids[0])); err != nil || c.len() != 0 {
		t.Fatal("closed cache must not keep new readers")
	}
}

func TestReaderCacheBounded(t *testing.T) {
	st, ids := cacheStore(t, 1)
	now := time.Unix(0, 0)
	c := newReaderCache(func() time.Time { return now })
	var first *cachedReader
	for i := range readerCacheMax + 10 {
		now = now.Add(time.Millisecond)
		e, err := c.get(context.Background(), string(rune('a'+i%26))+time.Duration(i).String(), func(ctx context.Context) (*storage.Reader, error) {
			return st.Open(ctx, "t", ids[0], storage.ReadOptions{})
		})
		if err != nil {
			t.Fatal(err)
		}
		c.release(e)
		if first == nil {
			first = e
		}
	}
	if c.len() != readerCacheMax || readable(first.rd) {
		t.Fatalf("cache holds %d, oldest still open: %v", c.len(), readable(first.rd))
	}
}
