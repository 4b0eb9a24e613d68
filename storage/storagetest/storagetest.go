package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/storage"
)

// Run runs the conformance suite. newBlob must return an empty Blob, fresh
// for each call (a new directory, or a new key prefix in a bucket).
func Run(t *testing.T, newBlob func(t testing.TB) storage.Blob) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Blob)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"GetRange", testGetRange},
		{"Delete", testDelete},
		{"List", testList},
		{"ConcurrentPuts", testConcurrentPuts},
		{"HostileKeys", testHostileKeys},
		{"CancelledContext", testCancelledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newBlob(t))
		})
	}
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// payload returns n deterministic pseudo-random bytes distinct per seed.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustPut(t testing.TB, b storage.Blob, key string, data []byte) {
	t.Helper()
	if err := b.Put(ctxT(t), key, data, storage.PutOptions{}); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func mustGet(t testing.TB, b storage.Blob, key string) []byte {
	t.Helper()
	got, err := b.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return got
}

func testRoundTrip(t *testing.T, b storage.Blob) {
	sizes := []int{0, 1, 1000, 8 << 10, 5<<20 + 3}
	for i, n := range sizes {
		key := fmt.Sprintf("tenants/t1/recordings/r1/parts/%06d", i)
		want := payload(uint64(i+1), n)
		mustPut(t, b, key, want)
		got := mustGet(t, b, key)
		if !bytes.Equal(got, want) {
			t.Fatalf("Get(%q): %d bytes differ from the %d put", key, len(got), len(want))
		}
		size, err := b.Size(ctxT(t), key)
		if err != nil {
			t.Fatalf("Size(%q): %v", key, err)
		}
		if size != int64(n) {
			t.Fatalf("Size(%q) = %d, want %d", key, size, n)
		}
	}
}

func testOverwrite(t *testing.T, b storage.Blob) {
	const key = "tenants/t1/recordings/r1/manifest"
	first, second := payload(1, 4096), payload(2, 100)
	mustPut(t, b, key, first)
	mustPut(t, b, key, second)
	if got := mustGet(t, b, key); !bytes.Equal(got, second) {
		t.Fatalf("after overwrite Get returned %d bytes, want the second object (%d bytes)", len(got), len(second))
	}
	if size, err := b.Size(ctxT(t), key); err != nil || size != int64(len(second)) {
		t.Fatalf("Size after overwrite = %d, %v; want %d", size, err, len(second))
	}
	keys, err := b.List(ctxT(t), "")
	if err != nil || !slices.Equal(keys, []string{key}) {
		t.Fatalf("List after overwrite = %q, %v; want one key", keys, err)
	}
}

func testNotFound(t *testing.T, b storage.Blob) {
	mustPut(t, b, "a/present", []byte("x"))
	for _, key := range []string{"missing", "a/missing", "a/present/below", "nodir/x"} {
		if _, err := b.Get(ctxT(t), key); !storage.IsNotFound(err) {
			t.Errorf("Get(%q) error = %v, want IsNotFound", key, err)
		}
		if _, err := b.Size(ctxT(t), key); !storage.IsNotFound(err) {
			t.Errorf("Size(%q) error = %v, want IsNotFound", key, err)
		}
		if _, err := b.GetRange(ctxT(t), key, 0, 1); !storage.IsNotFound(err) {
			t.Errorf("GetRange(%q) error = %v, want IsNotFound", key, err)
		}
	}
	// "a" is a key prefix of an object, not an object.
	if _, err := b.Get(ctxT(t), "a"); !storage.IsNotFound(err) {
		t.Errorf("Get(%q) (a prefix) error = %v, want IsNotFound", "a", err)
	}
}

func testGetRange(t *testing.T, b storage.Blob) {
	const key = "obj"
	const size = 1<<20 + 17
	data := payload(7, size)
	mustPut(t, b, key, data)
	tests := []struct {
		name   string
		off, n int64
		want   []byte
	}{
		{"start", 0, 100, data[:100]},
		{"one byte", 5, 1, data[5:6]},
		{"middle", 300_000, 65_536, data[300_000 : 300_000+65_536]},
		{"end exact", size - 10, 10, data[size-10:]},
		{"end short", size - 10, 1000, data[size-10:]},
		{"whole", 0, size, data},
		{"more than whole", 0, size * 2, data},
		{"last byte", size - 1, 1, data[size-1:]},
		{"zero length", 10, 0, []byte{}},
		{"zero length at end", size, 0, []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.GetRange(ctxT(t), key, tt.off, tt.n)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", tt.off, tt.n, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("GetRange(%d, %d): got %d bytes, want %d (contents differ: %v)",
					tt.off, tt.n, len(got), len(tt.want), len(got) == len(tt.want))
			}
		})
	}
	bad := []struct {
		name   string
		off, n int64
	}{
		{"at end", size, 1},
		{"beyond end", size + 100, 10},
		{"negative offset", -1, 10},
		{"negative length", 0, -1},
		{"zero length beyond end", size + 1, 0},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.GetRange(ctxT(t), key, tt.off, tt.n)
			if err == nil {
				t.Fatalf("GetRange(%d, %d) = %d bytes, nil error; want an error", tt.off, tt.n, len(got))
			}
			if storage.IsNotFound(err) {
				t.Fatalf("GetRange(%d, %d) error %v satisfies IsNotFound; the object exists", tt.off, tt.n, err)
			}
		})
	}
	t.Run("empty object", func(t *testing.T) {
		mustPut(t, b, "empty", nil)
		if _, err := b.GetRange(ctxT(t), "empty", 0, 1); err == nil || storage.IsNotFound(err) {
			t.Fatalf("GetRange on an empty object = %v, want a range error", err)
		}
		got, err := b.GetRange(ctxT(t), "empty", 0, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("GetRange(0, 0) on an empty object = %d bytes, %v", len(got), err)
		}
	})
}

func testDelete(t *testing.T, b storage.Blob) {
	const key = "tenants/t1/recordings/r1/parts/000000"
	mustPut(t, b, key, []byte("sealed"))
	mustPut(t, b, "tenants/t1/recordings/r2/parts/000000", []byte("other"))
	for i := range 2 { // second time: already gone
		if err := b.Delete(ctxT(t), key); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
		if _, err := b.Get(ctxT(t), key); !storage.IsNotFound(err) {
			t.Fatalf("Get after Delete #%d: %v, want IsNotFound", i+1, err)
		}
	}
	if err := b.Delete(ctxT(t), "never/existed"); err != nil {
		t.Fatalf("Delete of a key never written: %v", err)
	}
	keys, err := b.List(ctxT(t), "")
	if err != nil || !slices.Equal(keys, []string{"tenants/t1/recordings/r2/parts/000000"}) {
		t.Fatalf("List after Delete = %q, %v; want only the other recording's part", keys, err)
	}
	// The key can be written again after a Delete.
	mustPut(t, b, key, []byte("again"))
	if got := mustGet(t, b, key); string(got) != "again" {
		t.Fatalf("Get after re-Put = %q", got)
	}
}

func testList(t *testing.T, b storage.Blob) {
	keys := []string{
		"tenants/t1/recordings/r1/parts/000002",
		"tenants/t1/recordings/r1/parts/000000",
		"tenants/t1/recordings/r1/manifest",
		"tenants/t1/recordings/r10/parts/000000",
		"tenants/t1/recordings/r1/parts/000001",
		"tenants/t2/recordings/r1/parts/000000",
		"top",
		"tenants/t1/transcripts/r1",
	}
	// Put in a shuffled order so sorting is the back end's doing.
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(keys)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		mustPut(t, b, k, []byte(k))
	}
	sorted := slices.Sorted(slices.Values(keys))
	filter := func(prefix string) []string {
		var out []string
		for _, k := range sorted {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				out = append(out, k)
			}
		}
		return out
	}
	prefixes := []string{
		"",
		"tenants/",
		"tenants/t1/recordings/r1/",     // a directory
		"tenants/t1/recordings/r1",      // a partial name: r1 and r10
		"tenants/t1/recordings/r1/part", // partial segment
		"tenants/t1/recordings/r1/manifest",
		"tenants/t3/",
		"nothing",
		"to",
	}
	for _, p := range prefixes {
		got, err := b.List(ctxT(t), p)
		if err != nil {
			t.Fatalf("List(%q): %v", p, err)
		}
		if want := filter(p); !slices.Equal(got, want) {
			t.Errorf("List(%q) =\n  %q\nwant\n  %q", p, got, want)
		}
	}
}

func testConcurrentPuts(t *testing.T, b storage.Blob) {
	const writers = 8
	const perWriter = 6
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*2)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("rec/w%d/part%03d", w, i)
				if err := b.Put(ctxT(t), key, payload(uint64(w*1000+i), 10_000+i), storage.PutOptions{}); err != nil {
					errs <- err
				}
				// Every writer also races on one shared key.
				if err := b.Put(ctxT(t), "rec/shared", payload(uint64(w), 20_000), storage.PutOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	for w := range writers {
		for i := range perWriter {
			key := fmt.Sprintf("rec/w%d/part%03d", w, i)
			if got := mustGet(t, b, key); !bytes.Equal(got, payload(uint64(w*1000+i), 10_000+i)) {
				t.Errorf("Get(%q) after concurrent puts: wrong content", key)
			}
		}
	}
	shared := mustGet(t, b, "rec/shared")
	ok := false
	for w := range writers {
		ok = ok || bytes.Equal(shared, payload(uint64(w), 20_000))
	}
	if !ok {
		t.Errorf("rec/shared holds %d bytes matching no writer's object (torn write?)", len(shared))
	}
	keys, err := b.List(ctxT(t), "rec/")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != writers*perWriter+1 {
		t.Errorf("List(rec/) = %d keys, want %d", len(keys), writers*perWriter+1)
	}
}

// HostileKeys are keys every back end must reject: on disk they would
// escape the directory or collide with temp files.
var HostileKeys = []string{
	"",
	"/etc/passwd",
	"../escape",
	"a/../../escape",
	"a/..",
	"..",
	".",
	"./a",
	"a//b",
	"a/",
	"/",
	"a/./b",
	"a\\..\\b",
	"a\x00b",
	".hidden",
	"a/.tmp-123",
}

func testHostileKeys(t *testing.T, b storage.Blob) {
	ctx := ctxT(t)
	for _, key := range HostileKeys {
		if err := b.Put(ctx, key, []byte("evil"), storage.PutOptions{}); err == nil {
			t.Errorf("Put(%q) accepted a hostile key", key)
		}
		if _, err := b.Get(ctx, key); err == nil || storage.IsNotFound(err) {
			t.Errorf("Get(%q) error = %v, want a key error", key, err)
		}
		if _, err := b.GetRange(ctx, key, 0, 1); err == nil || storage.IsNotFound(err) {
			t.Errorf("GetRange(%q) error = %v, want a key error", key, err)
		}
		if _, err := b.Size(ctx, key); err == nil || storage.IsNotFound(err) {
			t.Errorf("Size(%q) error = %v, want a key error", key, err)
		}
		if err := b.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q) accepted a hostile key", key)
		}
	}
	for _, prefix := range []string{"/etc", "../", "a/../../", "a\\b"} {
		if keys, err := b.List(ctx, prefix); err == nil {
			t.Errorf("List(%q) = %q, nil; want an error", prefix, keys)
		}
	}
	keys, err := b.List(ctx, "")
	if err != nil || len(keys) != 0 {
		t.Errorf("List after hostile puts = %q, %v; want nothing stored", keys, err)
	}
}

func testCancelledContext(t *testing.T, b storage.Blob) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, "cancelled", []byte("x"), storage.PutOptions{}); err == nil {
		t.Fatalf("Put with a cancelled context succeeded")
	}
	if _, err := b.Get(ctxT(t), "cancelled"); !storage.IsNotFound(err) {
		t.Fatalf("Get after cancelled Put: %v, want IsNotFound", err)
	}
}
