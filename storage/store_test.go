package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/spool"
)

func TestRoundTrip(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		cases := []struct {
			name  string
			sizes []int
		}{
			{"empty part", []int{0}},
			{"1 byte", []int{1}},
			{"chunk-1", []int{chunk - 1}},
			{"chunk", []int{chunk}},
			{"chunk+1", []int{chunk + 1}},
			{"multi-part", []int{300, 8192, 0, chunk + 1, 1, 2*chunk + 5, 8000, 77}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				rec := newID()
				want, m := writeRecording(t, e.st, "acme", rec, c.sizes, true)
				// Readable straight from the spool, before any upload...
				if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{}); !bytes.Equal(got, want) {
					t.Fatal("read before upload differs")
				}
				e.flush()
				// ...and from the blob store after.
				if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{}); !bytes.Equal(got, want) {
					t.Fatal("read after upload differs")
				}
				if len(m.Parts) != len(c.sizes) || m.PlainSize != int64(len(want)) || !m.Complete || len(m.SHA256) != 64 {
					t.Fatalf("manifest %+v", m)
				}
				var rows []meta.Part
				if err := db.Where("recording_id = ?", rec).Order("n").Find(&rows).Error; err != nil {
					t.Fatal(err)
				}
				if len(rows) != len(c.sizes) {
					t.Fatalf("%d part rows, want %d", len(rows), len(c.sizes))
				}
				for i, r := range rows {
					p := m.Parts[i]
					if r.N != i || r.CipherSHA256 != p.CipherSHA256 || r.PlainSize != p.PlainSize || r.PlainOffset != p.PlainOffset || !r.Uploaded {
						t.Fatalf("row %d = %+v, manifest %+v", i, r, p)
					}
				}
				var rr meta.Recording
				m.Apply(&rr)
				if rr.Parts != len(c.sizes) || rr.Size != int64(len(want)) || rr.ManifestSHA256 != m.SHA256 || rr.CipherSize <= rr.Size {
					t.Fatalf("Apply: %+v", rr)
				}
			})
		}
	})
}

func TestRangesAndServeContent(t *testing.T) {
	e := newEnv(t, metatest.SQLite(t), envOptions{})
	rec := newID()
	sizes := make([]int, 40)
	for i := range sizes {
		sizes[i] = 5000 + 37*i
	}
	sizes[7] = 0
	want, _ := writeRecording(t, e.st, "acme", rec, sizes, true)
	e.flush()
	r, err := e.st.Open(context.Background(), "acme", rec, storage.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		off := rng.Int64N(int64(len(want)) + 10)
		n := rng.IntN(30000)
		p := make([]byte, n)
		got, err := r.ReadRange(context.Background(), p, off)
		end := min(off+int64(n), int64(len(want)))
		if off >= int64(len(want)) {
			if got != 0 || err != io.EOF {
				t.Fatalf("read at %d past end: %d %v", off, got, err)
			}
			continue
		}
		if wantN := int(end - off); got != wantN || (got < n) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadRange(%d, %d) = %d, %v; want %d", off, n, got, err, wantN)
		}
		if !bytes.Equal(p[:got], want[off:end]) {
			t.Fatalf("ReadRange(%d, %d) returned wrong bytes", off, n)
		}
	}

	// A read near the end of the recording fetches only the parts it needs.
	e.blob.resetGets()
	r2, err := e.st.Open(context.Background(), "acme", rec, storage.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	p := make([]byte, 100)
	if _, err := r2.ReadRange(context.Background(), p, int64(len(want))-50); err != io.EOF {
		t.Fatalf("tail read: %v", err)
	}
	gets := e.blob.resetGets()
	for k := range gets {
		if k != storage.ManifestKey("acme", rec) && k != storage.PartKey("acme", rec, 39) {
			t.Errorf("tail read fetched %s", k)
		}
	}
	if gets[storage.PartKey("acme", rec, 39)] != 1 {
		t.Errorf("tail read fetched the last part %d times", gets[storage.PartKey("acme", rec, 39)])
	}

	// http.ServeContent over the ReadSeeker answers range requests.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rd, err := e.st.Open(req.Context(), "acme", rec, storage.ReadOptions{})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer rd.Close()
		w.Header().Set("Content-Type", "audio/ogg")
		http.ServeContent(w, req, "", time.Time{}, rd.ReadSeeker(req.Context()))
	}))
	defer srv.Close()
	for _, rg := range []struct{ from, to int }{{0, 99}, {70000, 150000}, {len(want) - 10, len(want) - 1}} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", rg.from, rg.to))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[rg.from:rg.to+1]) {
			t.Fatalf("range %v: status %d, %d bytes", rg, resp.StatusCode, len(body))
		}
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, want) {
		t.Fatal("full GET differs")
	}
}

func flip(b []byte, i int, bit byte) []byte {
	c := bytes.Clone(b)
	c[i] ^= bit
	return c
}

// corrupt replaces an object in the blob store.
func corrupt(t testing.TB, e *env, key string, fn func([]byte) []byte) {
	t.Helper()
	data, err := e.disk.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.disk.Put(context.Background(), key, fn(bytes.Clone(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// mustFail asserts that reading the recording fails with an error
// matching is, and that nothing of part bad (or later) was returned.
func mustFail(t *testing.T, e *env, rec string, o storage.ReadOptions, want []byte, badPart int, is func(error) bool) {
	t.Helper()
	got, err := tryRead(e.st, "acme", rec, o)
	if err == nil {
		t.Fatalf("read succeeded")
	}
	if !is(err) {
		t.Fatalf("error %v not of the expected kind", err)
	}
	// Only whole parts before the bad one may have been delivered.
	r, _ := e.st.Open(context.Background(), "acme", rec, storage.ReadOptions{AllowIncomplete: true})
	limit := len(want)
	if r != nil {
		if badPart >= 0 && badPart < len(r.Manifest().Parts) {
			limit = int(r.Manifest().Parts[badPart].PlainOffset)
		}
		r.Close()
	}
	if len(got) > limit || !bytes.Equal(got, want[:len(got)]) {
		t.Fatalf("returned %d bytes (limit %d) before failing", len(got), limit)
	}
}

func TestTamperedObjectsRejected(t *testing.T) {
	e := newEnv(t, metatest.SQLite(t), envOptions{})
	rec := newID()
	want, m := writeRecording(t, e.st, "acme", rec, []int{1000, 2*chunk + 100, 500}, true)
	e.flush()
	rnd := rand.New(rand.NewPCG(3, 4))

	// Every byte of the manifest (tampered copies are served through the
	// blob wrapper's overlay; the stored object stays intact).
	mk := storage.ManifestKey("acme", rec)
	orig, _ := e.disk.Get(context.Background(), mk)
	for i := range orig {
		e.blob.setOverlay(mk, flip(orig, i, 0x01))
		if _, err := e.st.Open(context.Background(), "acme", rec, storage.ReadOptions{}); !storage.IsIntegrity(err) {
			t.Fatalf("manifest byte %d flipped: Open error %v", i, err)
		}
	}
	e.blob.setOverlay(mk, nil)

	// Header, body and tag bytes of each part.
	for n, p := range m.Parts {
		key := storage.PartKey("acme", rec, n)
		origPart, _ := e.disk.Get(context.Background(), key)
		positions := []int{0, 30, 100, 170, 200, int(p.CipherSize) - 1}
		for range 20 {
			positions = append(positions, rnd.IntN(int(p.CipherSize)))
		}
		for _, i := range positions {
			e.blob.setOverlay(key, flip(origPart, i, 0x80))
			mustFail(t, e, rec, storage.ReadOptions{}, want, n, storage.IsIntegrity)
		}
		e.blob.setOverlay(key, nil)
	}
	// The same through the real store: a tampered file on disk.
	orig1, _ := e.disk.Get(context.Background(), storage.PartKey("acme", rec, 1))
	corrupt(t, e, storage.PartKey("acme", rec, 1), func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	mustFail(t, e, rec, storage.ReadOptions{}, want, 1, storage.IsIntegrity)
	if err := e.disk.Put(context.Background(), storage.PartKey("acme", rec, 1), orig1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{}); !bytes.Equal(got, want) {
		t.Fatal("restored recording differs")
	}
	if e.st.Stats().IntegrityFailures == 0 {
		t.Error("integrity failures not counted")
	}
}

func TestStructuralAttacksRejected(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		ctx := context.Background()
		sizes := []int{100, 2*chunk + 7, 300, 400}
		type fixture struct {
			rec  string
			want []byte
			m    storage.Manifest
		}
		fresh := func(tenant string) fixture {
			rec := newID()
			want, m := writeRecording(t, e.st, tenant, rec, sizes, true)
			e.flush()
			return fixture{rec, want, m}
		}
		get := func(key string) []byte {
			b, err := e.disk.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		put := func(key string, b []byte) {
			if err := e.disk.Put(ctx, key, b, storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		other := fresh("acme")
		foreign := fresh("globex")
		tests := []struct {
			name    string
			attack  func(f fixture)
			badPart int
			is      func(error) bool
		}{
			{"truncated at a chunk boundary", func(f fixture) {
				k := storage.PartKey("acme", f.rec, 1)
				b := get(k)
				put(k, b[:len(b)-(7+16)]) // drop the final 7-byte chunk
			}, 1, storage.IsIntegrity},
			{"truncated inside a chunk", func(f fixture) {
				k := storage.PartKey("acme", f.rec, 1)
				put(k, get(k)[:chunk])
			}, 1, storage.IsIntegrity},
			{"dropped last part", func(f fixture) {
				e.disk.Delete(ctx, storage.PartKey("acme", f.rec, 3))
			}, 3, storage.IsIntegrity},
			{"missing middle part", func(f fixture) {
				e.disk.Delete(ctx, storage.PartKey("acme", f.rec, 2))
			}, 2, storage.IsIntegrity},
			{"extra part", func(f fixture) {
				put(storage.PartKey("acme", f.rec, 4), get(storage.PartKey("acme", f.rec, 3)))
			}, -1, storage.IsIntegrity},
			{"swapped parts", func(f fixture) {
				a, b := get(storage.PartKey("acme", f.rec, 2)), get(storage.PartKey("acme", f.rec, 3))
				put(storage.PartKey("acme", f.rec, 2), b)
				put(storage.PartKey("acme", f.rec, 3), a)
			}, 2, storage.IsIntegrity},
			{"duplicated part", func(f fixture) {
				put(storage.PartKey("acme", f.rec, 3), get(storage.PartKey("acme", f.rec, 2)))
			}, 3, storage.IsIntegrity},
			{"part from another recording", func(f fixture) {
				put(storage.PartKey("acme", f.rec, 2), get(storage.PartKey("acme", other.rec, 2)))
			}, 2, storage.IsIntegrity},
			{"part from another tenant", func(f fixture) {
				put(storage.PartKey("acme", f.rec, 2), get(storage.PartKey("globex", foreign.rec, 2)))
			}, 2, storage.IsIntegrity},
			{"manifest from another recording", func(f fixture) {
				put(storage.ManifestKey("acme", f.rec), get(storage.ManifestKey("acme", other.rec)))
			}, 0, storage.IsIntegrity},
			{"manifest deleted", func(f fixture) {
				e.disk.Delete(ctx, storage.ManifestKey("acme", f.rec))
			}, 0, storage.IsNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := fresh("acme")
				tt.attack(f)
				mustFail(t, e, f.rec, storage.ReadOptions{}, f.want, tt.badPart, tt.is)
			})
		}

		t.Run("incomplete manifest", func(t *testing.T) {
			rec := newID()
			want, m := writeRecording(t, e.st, "acme", rec, sizes, false)
			if m.Complete {
				t.Fatal("manifest marked complete")
			}
			if _, err := e.st.Open(ctx, "acme", rec, storage.ReadOptions{}); !errors.Is(err, storage.ErrIncomplete) {
				t.Fatalf("open: %v, want ErrIncomplete", err)
			}
			if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{AllowIncomplete: true}); !bytes.Equal(got, want) {
				t.Fatal("incomplete recording differs")
			}
		})

		t.Run("manifest differs from the database", func(t *testing.T) {
			f := fresh("acme")
			row := meta.Recording{ID: f.rec, TenantID: "acme", Status: meta.StatusComplete}
			f.m.Apply(&row)
			if err := db.Create(&row).Error; err != nil {
				t.Fatal(err)
			}
			readAll(t, e.st, "acme", f.rec, storage.ReadOptions{})
			// An authentic but different manifest: another incomplete
			// close of the same recording cannot be produced without the
			// key, so forge one with the writer of a twin recording that
			// shares nothing; instead replay this recording's manifest
			// after re-sealing it through Recover on a copy.
			mk := storage.ManifestKey("acme", f.rec)
			e.disk.Delete(ctx, mk)
			m2, err := e.st.Recover(ctx, "acme", f.rec)
			if err != nil {
				t.Fatal(err)
			}
			e.flush()
			if m2.SHA256 == f.m.SHA256 {
				t.Fatal("recovered manifest identical to the original")
			}
			if _, err := e.st.Open(ctx, "acme", f.rec, storage.ReadOptions{AllowIncomplete: true}); !errors.Is(err, storage.ErrIntegrity) {
				t.Fatalf("open with a manifest other than the recorded one: %v", err)
			}
			if _, err := e.st.Open(ctx, "acme", f.rec, storage.ReadOptions{AllowIncomplete: true, ManifestSHA256: m2.SHA256}); err != nil {
				t.Fatalf("open with the expected hash given: %v", err)
			}
		})

		t.Run("other tenant cannot open", func(t *testing.T) {
			if _, err := e.st.Open(ctx, "globex", other.rec, storage.ReadOptions{}); !storage.IsNotFound(err) {
				t.Fatalf("open as another tenant: %v", err)
			}
		})
	})
}

func TestWriterRewriteAndErrors(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		ctx := context.Background()
		rec := newID()
		w, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{}); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second writer: %v, want ErrExists", err)
		}
		for _, bad := range [][2]string{{"", rec}, {"acme", ""}, {"acme", "../x"}, {"a/b", rec}, {"acme", ".hidden"}} {
			if _, err := e.st.NewWriter(ctx, bad[0], bad[1], storage.WriterOptions{}); !errors.Is(err, storage.ErrInvalidID) {
				t.Errorf("NewWriter(%q, %q): %v, want ErrInvalidID", bad[0], bad[1], err)
			}
		}
		header := []byte("HEADER duration=unknown.....")
		w.WritePart(ctx, header)
		w.WritePart(ctx, []byte("cluster 1"))
		e.flush() // the old header version reaches the blob store first
		w.WritePart(ctx, []byte("cluster 2"))
		if err := w.RewritePart(ctx, 0, []byte("HEADER")); err == nil {
			t.Fatal("rewrite with another length accepted")
		}
		if err := w.RewritePart(ctx, 3, header); err == nil {
			t.Fatal("rewrite of an unwritten part accepted")
		}
		newHeader := []byte("HEADER duration=00:00:06.000")
		if err := w.RewritePart(ctx, 0, newHeader); err != nil {
			t.Fatal(err)
		}
		m, err := w.Close(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WritePart(ctx, []byte("late")); !errors.Is(err, storage.ErrWriterClosed) {
			t.Fatalf("write after close: %v", err)
		}
		e.flush()
		want := "HEADER duration=00:00:06.000cluster 1cluster 2"
		if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{}); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		var row meta.Part
		db.Where("recording_id = ? AND n = 0", rec).Take(&row)
		if row.CipherSHA256 != m.Parts[0].CipherSHA256 {
			t.Fatal("part row not updated by RewritePart")
		}
	})
}

func TestShred(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		ctx := context.Background()
		rec, kept := newID(), newID()
		writeRecording(t, e.st, "acme", rec, []int{100, 200}, true)
		writeRecording(t, e.st, "acme", kept, []int{100}, true)
		if _, err := e.st.PutObject(ctx, "acme", rec, "transcript", []byte("secret words"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		e.flush()
		// One more object still in the spool while the blob store is down.
		e.blob.setDown(true)
		if _, err := e.st.PutObject(ctx, "acme", rec, "transcript-unredacted", []byte("more secret words"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		e.blob.setDown(false)

		if err := e.st.Shred(ctx, "acme", rec); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Open(ctx, "acme", rec, storage.ReadOptions{}); !errors.Is(err, storage.ErrKeyDestroyed) {
			t.Fatalf("open after shred: %v", err)
		}
		if _, err := e.st.GetObject(ctx, "acme", rec, "transcript"); !errors.Is(err, storage.ErrKeyDestroyed) {
			t.Fatalf("get object after shred: %v", err)
		}
		if _, err := e.st.PutObject(ctx, "acme", rec, "transcript", []byte("x"), storage.PutOptions{}); !errors.Is(err, storage.ErrKeyDestroyed) {
			t.Fatalf("put object after shred: %v", err)
		}
		if err := e.st.Shred(ctx, "acme", rec); err != nil {
			t.Fatalf("second shred: %v", err)
		}
		e.flush()
		if keys, _ := e.disk.List(ctx, storage.RecordingPrefix("acme", rec)); len(keys) != 0 {
			t.Fatalf("objects left after shred: %v", keys)
		}
		if keys := e.spool.Keys(storage.RecordingPrefix("acme", rec)); len(keys) != 0 {
			t.Fatalf("spooled objects left after shred: %v", keys)
		}
		var dk meta.DataKey
		db.Where("recording_id = ?", rec).Take(&dk)
		if len(dk.Wrapped) != 0 || dk.ShreddedAt == nil {
			t.Fatalf("data key row after shred: wrapped %d bytes, shredded_at %v", len(dk.Wrapped), dk.ShreddedAt)
		}
		if err := e.st.Shred(ctx, "acme", newID()); !storage.IsNotFound(err) {
			t.Fatalf("shred of an unknown recording: %v", err)
		}
		readAll(t, e.st, "acme", kept, storage.ReadOptions{})
		if err := e.st.Shred(ctx, "globex", kept); !storage.IsNotFound(err) {
			t.Fatalf("shred by another tenant: %v", err)
		}
	})
}

func TestRewrapAfterRotation(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		ctx := context.Background()
		recs := []string{newID(), newID()}
		wants := map[string][]byte{}
		for _, rec := range recs {
			wants[rec], _ = writeRecording(t, e.st, "acme", rec, []int{5000, chunk + 3}, true)
		}
		if _, err := e.st.PutObject(ctx, "acme", recs[0], "transcript", []byte("hello"), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		shredded := newID()
		writeRecording(t, e.st, "acme", shredded, []int{10}, true)
		named, err := e.st.NamedKey(ctx, "acme", "search-index")
		if err != nil {
			t.Fatal(err)
		}
		e.flush()
		if err := e.st.Shred(ctx, "acme", shredded); err != nil {
			t.Fatal(err)
		}
		snapshot := func() map[string][]byte {
			keys, err := e.disk.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			m := map[string][]byte{}
			for _, k := range keys {
				m[k], _ = e.disk.Get(ctx, k)
			}
			return m
		}
		before := snapshot()
		oldKEK := e.kr.PrimaryID()
		newKEK, err := e.kr.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var calls, lastTotal int
		n, err := e.st.Rewrap(ctx, func(done, total int) { calls, lastTotal = done, total })
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 || calls != 3 || lastTotal != 3 {
			t.Fatalf("rewrapped %d keys (progress %d/%d), want 3 (2 recordings, 1 named key)", n, calls, lastTotal)
		}
		for _, k := range e.kr.Keys() {
			if k.ID == oldKEK && k.Status == "primary" {
				t.Fatal("old KEK still primary")
			}
		}
		after := snapshot()
		if len(after) != len(before) || len(after) == 0 {
			t.Fatalf("%d objects before, %d after", len(before), len(after))
		}
		for k, b := range before {
			if !bytes.Equal(after[k], b) {
				t.Fatalf("object %s changed by rewrap", k)
			}
		}
		var rows []meta.DataKey
		db.Order("recording_id").Find(&rows)
		for _, r := range rows {
			if r.ShreddedAt != nil {
				if len(r.Wrapped) != 0 {
					t.Fatal("rewrap resurrected a shredded key")
				}
				continue
			}
			if r.KEKID != newKEK {
				t.Fatalf("data key of %s still under %s", r.RecordingID, r.KEKID)
			}
		}
		for _, rec := range recs {
			if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{}); !bytes.Equal(got, wants[rec]) {
				t.Fatal("recording differs after rewrap")
			}
		}
		if got, err := e.st.GetObject(ctx, "acme", recs[0], "transcript"); err != nil || string(got) != "hello" {
			t.Fatalf("transcript after rewrap: %q %v", got, err)
		}
		named2, err := e.st.NamedKey(ctx, "acme", "search-index")
		if err != nil || !bytes.Equal(named, named2) {
			t.Fatalf("named key changed by rewrap: %v", err)
		}
		if n, err := e.st.Rewrap(ctx, nil); err != nil || n != 0 {
			t.Fatalf("second rewrap: %d %v, want 0 (all under the primary already)", n, err)
		}
	})
}

func TestRecover(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		e := newEnv(t, db, envOptions{})
		rec := newID()
		w, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i := range 3 {
			p := partData(rec, i, 3000+i)
			w.WritePart(ctx, p)
			want = append(want, p...)
		}
		e.flush()
		e.blob.setDown(true) // the last parts stay in the spool
		for i := 3; i < 5; i++ {
			p := partData(rec, i, 3000+i)
			if _, err := w.WritePart(ctx, p); err != nil {
				t.Fatal(err)
			}
			want = append(want, p...)
		}
		// The crash came after the last part was spooled but before its
		// row was stored.
		db.Where("recording_id = ? AND n = 4", rec).Delete(&meta.Part{})
		e.crash()

		e2 := newEnv(t, db, envOptions{data: e.data})
		if _, err := e2.st.Open(ctx, "acme", rec, storage.ReadOptions{AllowIncomplete: true}); !storage.IsNotFound(err) {
			t.Fatalf("open before recovery: %v", err)
		}
		m, err := e2.st.Recover(ctx, "acme", rec)
		if err != nil {
			t.Fatal(err)
		}
		if m.Complete || len(m.Parts) != 5 || m.PlainSize != int64(len(want)) || len(m.Discarded) != 0 {
			t.Fatalf("recovered manifest: complete=%v parts=%d size=%d discarded=%v", m.Complete, len(m.Parts), m.PlainSize, m.Discarded)
		}
		var rows int64
		db.Model(&meta.Part{}).Where("recording_id = ?", rec).Count(&rows)
		if rows != 5 {
			t.Fatalf("%d part rows after recovery, want 5", rows)
		}
		if _, err := e2.st.Open(ctx, "acme", rec, storage.ReadOptions{}); !errors.Is(err, storage.ErrIncomplete) {
			t.Fatalf("open recovered recording without AllowIncomplete: %v", err)
		}
		e2.flush()
		if got := readAll(t, e2.st, "acme", rec, storage.ReadOptions{AllowIncomplete: true}); !bytes.Equal(got, want) {
			t.Fatal("recovered recording differs")
		}
		m2, err := e2.st.Recover(ctx, "acme", rec)
		if err != nil || m2.SHA256 != m.SHA256 {
			t.Fatalf("second recover: %v (manifest %s, first %s)", err, m2.SHA256, m.SHA256)
		}

		// A gap and a tampered part: recovery keeps the run before them.
		rec2 := newID()
		w2, _ := e2.st.NewWriter(ctx, "acme", rec2, storage.WriterOptions{})
		var want2 []byte
		for i := range 6 {
			p := partData(rec2, i, 100)
			w2.WritePart(ctx, p)
			if i < 2 {
				want2 = append(want2, p...)
			}
		}
		e2.flush()
		corrupt(t, e2, storage.PartKey("acme", rec2, 2), func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
		e2.disk.Delete(ctx, storage.PartKey("acme", rec2, 4))
		m3, err := e2.st.Recover(ctx, "acme", rec2)
		if err != nil {
			t.Fatal(err)
		}
		if len(m3.Parts) != 2 || fmt.Sprint(m3.Discarded) != "[2 3 5]" {
			t.Fatalf("recovered %d parts, discarded %v; want 2 and [2 3 5]", len(m3.Parts), m3.Discarded)
		}
		if got := readAll(t, e2.st, "acme", rec2, storage.ReadOptions{AllowIncomplete: true}); !bytes.Equal(got, want2) {
			t.Fatal("recovered prefix differs")
		}
		db.Model(&meta.Part{}).Where("recording_id = ?", rec2).Count(&rows)
		if rows != 2 {
			t.Fatalf("%d part rows, want 2", rows)
		}
	})
}

func TestObjects(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		ctx := context.Background()
		rec := newID()
		writeRecording(t, e.st, "acme", rec, []int{10}, true)
		text := []byte(`{"segments":[{"text":"CANARY transcript words"}]}`)
		info, err := e.st.PutObject(ctx, "acme", rec, "transcript", text, storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != "acme/recordings/"+rec+"/transcript.age" || info.PlainSize != int64(len(text)) || len(info.CipherSHA256) != 64 {
			t.Fatalf("info %+v", info)
		}
		got, err := e.st.GetObject(ctx, "acme", rec, "transcript")
		if err != nil || !bytes.Equal(got, text) {
			t.Fatalf("get: %q %v", got, err)
		}
		e.flush()
		if got, err = e.st.GetObject(ctx, "acme", rec, "transcript"); err != nil || !bytes.Equal(got, text) {
			t.Fatalf("get after upload: %v", err)
		}
		// The named object does not disturb the recording's listing.
		readAll(t, e.st, "acme", rec, storage.ReadOptions{})
		// Bound to its name: copied under another name it is rejected.
		sealed, _ := e.disk.Get(ctx, info.Key)
		e.disk.Put(ctx, storage.ObjectKey("acme", rec, "transcript-unredacted"), sealed, storage.PutOptions{})
		if _, err := e.st.GetObject(ctx, "acme", rec, "transcript-unredacted"); !errors.Is(err, envelope.ErrWrongBinding) {
			t.Fatalf("renamed object: %v, want ErrWrongBinding", err)
		}
		for _, bad := range []string{"manifest", "part-000001", "", "../x", "a/b"} {
			if _, err := e.st.PutObject(ctx, "acme", rec, bad, text, storage.PutOptions{}); !errors.Is(err, storage.ErrInvalidID) {
				t.Errorf("PutObject(%q): %v, want ErrInvalidID", bad, err)
			}
		}
		if _, err := e.st.GetObject(ctx, "acme", rec, "missing"); !storage.IsNotFound(err) {
			t.Fatalf("get missing: %v", err)
		}
		if err := e.st.DeleteObject(ctx, "acme", rec, "transcript"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.GetObject(ctx, "acme", rec, "transcript"); !storage.IsNotFound(err) {
			t.Fatalf("get deleted: %v", err)
		}
		if err := e.st.DeleteObject(ctx, "acme", rec, "transcript"); err != nil {
			t.Fatalf("delete again: %v", err)
		}
	})
}

func TestNamedKey(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		ctx := context.Background()
		var wg sync.WaitGroup
		keys := make([][]byte, 8)
		errs := make([]error, 8)
		for i := range keys {
			wg.Go(func() { keys[i], errs[i] = e.st.NamedKey(ctx, "acme", "audit-signing") })
		}
		wg.Wait()
		for i := range keys {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if len(keys[i]) != 32 || !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("concurrent first calls disagree on the key")
			}
		}
		other, _ := e.st.NamedKey(ctx, "acme", "nats-store")
		foreign, _ := e.st.NamedKey(ctx, "globex", "audit-signing")
		if bytes.Equal(other, keys[0]) || bytes.Equal(foreign, keys[0]) {
			t.Fatal("named keys shared across purposes or tenants")
		}
		var n int64
		db.Model(&meta.NamedKey{}).Count(&n)
		if n != 3 {
			t.Fatalf("%d named key rows, want 3", n)
		}
		if _, err := e.st.NamedKey(ctx, "acme", "bad/purpose"); !errors.Is(err, storage.ErrInvalidID) {
			t.Fatalf("bad purpose: %v", err)
		}
	})
}

// TestFullSpool: when the spool cannot take a part the recording fails
// loudly and the parts before it stay intact and readable.
func TestFullSpool(t *testing.T) {
	e := newEnv(t, metatest.SQLite(t), envOptions{spoolOpts: spool.Options{MaxBytes: 40 << 10}})
	ctx := context.Background()
	e.blob.setDown(true) // nothing drains the spool
	rec := newID()
	w, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	var werr error
	for i := 0; i < 20; i++ {
		p := partData(rec, i, 8<<10)
		if _, werr = w.WritePart(ctx, p); werr != nil {
			break
		}
		want = append(want, p...)
	}
	if !spool.IsFull(werr) || !strings.Contains(werr.Error(), "write part 4") {
		t.Fatalf("write on a full spool: %v", werr)
	}
	if w.Parts() != 4 || e.st.Stats().SealFailures != 1 {
		t.Fatalf("parts %d, seal failures %d", w.Parts(), e.st.Stats().SealFailures)
	}
	// The recorder fails the recording: the small manifest still fits.
	m, err := w.Close(ctx, false)
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	e.blob.setDown(false)
	e.flush()
	if len(m.Parts) != 4 {
		t.Fatalf("manifest has %d parts, want 4", len(m.Parts))
	}
	if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{AllowIncomplete: true}); !bytes.Equal(got, want) {
		t.Fatal("earlier parts not intact")
	}
}

func TestPingAndStats(t *testing.T) {
	var mu sync.Mutex
	ops := map[string]int{}
	db := metatest.SQLite(t)
	e := newEnv(t, db, envOptions{})
	st := storage.New(db, e.blob, e.kr, e.spool, storage.Options{Observer: func(o storage.Observation) {
		mu.Lock()
		ops[o.Op]++
		mu.Unlock()
	}})
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := newID()
	writeRecording(t, st, "acme", rec, []int{10, 20, 30}, true)
	readAll(t, st, "acme", rec, storage.ReadOptions{})
	s := st.Stats()
	if s.PartsSealed != 3 || s.BytesSealed != 60 {
		t.Fatalf("stats %+v", s)
	}
	mu.Lock()
	if ops["seal_part"] != 3 || ops["open_part"] != 3 {
		t.Errorf("observations %v", ops)
	}
	mu.Unlock()
	e.spool.Close()
	if err := st.Ping(context.Background()); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("ping with the spool closed: %v", err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, envOptions{})
		const writers, parts = 16, 8
		recs := make([]string, writers)
		var wg sync.WaitGroup
		for i := range writers {
			recs[i] = newID()
			wg.Go(func() {
				ctx := context.Background()
				w, err := e.st.NewWriter(ctx, "acme", recs[i], storage.WriterOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				for n := range parts {
					if _, err := w.WritePart(ctx, partData(recs[i], n, 8<<10)); err != nil {
						t.Error(err)
						return
					}
				}
				if _, err := w.Close(ctx, true); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		e.flush()
		for _, rec := range recs {
			got := readAll(t, e.st, "acme", rec, storage.ReadOptions{})
			if len(got) != parts*8<<10 || !bytes.Equal(got[:8<<10], partData(rec, 0, 8<<10)) {
				t.Fatalf("recording %s damaged", rec)
			}
		}
	})
}

func TestRecoverRewritesHeader(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, metatest.SQLite(t), envOptions{})
	rec := newID()
	w, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var parts [][]byte
	for i := range 4 {
		p := partData(rec, i, 500)
		if _, err := w.WritePart(ctx, p); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	e.crash()
	e2 := newEnv(t, e.db, envOptions{data: e.data})
	var gotFirst, gotLast []byte
	m, err := e2.st.RecoverWith(ctx, "acme", rec, storage.RecoverOptions{
		RewriteHeader: func(first, last []byte) ([]byte, error) {
			gotFirst, gotLast = bytes.Clone(first), bytes.Clone(last)
			return bytes.ToUpper(first), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotFirst, parts[0]) || !bytes.Equal(gotLast, parts[3]) {
		t.Fatal("header fix did not get part 0 and the last part")
	}
	e2.flush()
	want := append(bytes.ToUpper(parts[0]), bytes.Join(parts[1:], nil)...)
	if got := readAll(t, e2.st, "acme", rec, storage.ReadOptions{AllowIncomplete: true}); !bytes.Equal(got, want) {
		t.Fatal("recovered recording does not start with the rewritten header")
	}
	if len(m.Parts) != 4 {
		t.Fatalf("%d parts", len(m.Parts))
	}
	// a fix of the wrong length keeps the original header
	rec2 := newID()
	w2, _ := e2.st.NewWriter(ctx, "acme", rec2, storage.WriterOptions{})
	w2.WritePart(ctx, partData(rec2, 0, 100))
	w2.WritePart(ctx, partData(rec2, 1, 100))
	if _, err := e2.st.RecoverWith(ctx, "acme", rec2, storage.RecoverOptions{
		RewriteHeader: func(first, last []byte) ([]byte, error) { return first[:1], nil },
	}); err != nil {
		t.Fatal(err)
	}
	e2.flush()
	if got := readAll(t, e2.st, "acme", rec2, storage.ReadOptions{AllowIncomplete: true}); !bytes.HasPrefix(got, partData(rec2, 0, 100)) {
		t.Fatal("bad header fix was applied")
	}
}
