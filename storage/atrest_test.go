package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/s3"
	"github.com/custodian/custodian/storage/s3/s3test"
)

// Needles that must never appear in any file under DATA.
var (
	canary    = []byte("CUSTODIAN-CANARY-7f3a9c1e transcript words that must never reach the disk")
	oggMagic  = []byte("OggS")
	ebmlMagic = []byte{0x1A, 0x45, 0xDF, 0xA3}
)

// scanForPlaintext walks dir and reports every file holding a needle.
func scanForPlaintext(t testing.TB, dir string) (files int, found []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, n := range [][]byte{canary, oggMagic, ebmlMagic} {
			if i := bytes.Index(b, n); i >= 0 {
				found = append(found, fmt.Sprintf("%s: %q at offset %d", p, n, i))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, found
}

// TestNoPlaintextAtRest writes Ogg, WebM (EBML) and canary text through
// the store, with some objects still spooled, then reads every file under
// DATA (objects, spool, keyring, SQLite database and its WAL) and finds
// none of them in clear.
func TestNoPlaintextAtRest(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	db, err := meta.Open(ctx, meta.Options{SQLitePath: filepath.Join(data, "custodian.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { meta.Close(db) })
	e := newEnv(t, db, envOptions{data: data})

	// Positive control: the scanner finds each needle in a plaintext file.
	ctl := t.TempDir()
	os.WriteFile(filepath.Join(ctl, "plain"), bytes.Join([][]byte{canary, oggMagic, ebmlMagic}, []byte("..")), 0o600)
	if _, found := scanForPlaintext(t, ctl); len(found) != 3 {
		t.Fatalf("scanner control found %v", found)
	}

	write := func(parts [][]byte) string {
		rec := newID()
		w, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			if _, err := w.WritePart(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Close(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.PutObject(ctx, "acme", rec, "transcript", append([]byte(`{"text":"`), append(canary, `"}`...)...), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	split := func(b []byte, n int) [][]byte {
		var out [][]byte
		for len(b) > n {
			out = append(out, b[:n])
			b = b[n:]
		}
		return append(out, b)
	}
	ogg, err := os.ReadFile(filepath.Join("..", "testdata", "call01.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ogg, oggMagic) {
		t.Fatal("test media is not Ogg")
	}
	webm := append(append([]byte{}, ebmlMagic...), []byte("\x9fB\x86\x81\x01B\xf7\x81\x01webm header")...)
	webm = append(webm, bytes.Repeat(append(append([]byte{}, ebmlMagic...), canary...), 50)...)
	recOgg := write(split(ogg, 8<<10))
	recWebm := write(split(webm, 1000))
	if _, err := e.st.NamedKey(ctx, "acme", "search-index"); err != nil {
		t.Fatal(err)
	}
	e.flush()
	// More while the blob store is down: these stay in the spool.
	e.blob.setDown(true)
	recSpooled := write([][]byte{ogg[:4000], canary, webm[:500]})
	if st := e.st.Stats(); st.Spool.Pending == 0 {
		t.Fatal("nothing left in the spool")
	}

	files, found := scanForPlaintext(t, data)
	for _, f := range found {
		t.Error("plaintext at rest: " + f)
	}
	var kinds []string
	for _, p := range []string{"objects", "spool", "keys", "custodian.db", "custodian.db-wal"} {
		if _, err := os.Stat(filepath.Join(data, p)); err != nil {
			t.Errorf("expected %s under DATA: %v", p, err)
		} else {
			kinds = append(kinds, p)
		}
	}
	t.Logf("scanned %d files (%s): no canary, OggS or EBML header", files, strings.Join(kinds, ", "))

	// And everything reads back.
	e.blob.setDown(false)
	e.flush()
	if got := readAll(t, e.st, "acme", recOgg, storage.ReadOptions{}); !bytes.Equal(got, ogg) {
		t.Fatal("ogg recording differs")
	}
	if got := readAll(t, e.st, "acme", recWebm, storage.ReadOptions{}); !bytes.Equal(got, webm) {
		t.Fatal("webm recording differs")
	}
	readAll(t, e.st, "acme", recSpooled, storage.ReadOptions{})
}

// TestS3SpoolOutage writes parts while a real S3 server (versitygw) is
// stopped, restarts it, and checks that every object arrives intact and
// in order (parts, then the manifest).
func TestS3SpoolOutage(t *testing.T) {
	srv := s3test.Start(t)
	// The spool does the retrying, so the SDK makes one attempt per upload.
	cfg := srv.Config(s3test.Bucket)
	cfg.Prefix = "outage"
	blob := srv.NewStore(t, cfg, s3.WithMaxAttempts(1))
	e := newEnv(t, metatest.SQLite(t), envOptions{wrap: func(storage.Blob) storage.Blob { return blob }})
	ctx := context.Background()
	rec := newID()
	w, err := e.st.NewWriter(ctx, "acme", rec, storage.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	writePart := func(i int) {
		p := partData(rec, i, 8000+i)
		if _, err := w.WritePart(ctx, p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
	}
	for i := range 3 {
		writePart(i)
	}
	e.flush()
	if err := e.st.PingBlob(ctx); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	for i := 3; i < 12; i++ {
		writePart(i)
	}
	if err := w.RewritePart(ctx, 0, partData(rec, 100, 8000)); err != nil {
		t.Fatal(err)
	}
	copy(want, partData(rec, 100, 8000))
	if _, err := w.Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, 20*time.Second, 10*time.Millisecond, func() error {
		if st := e.st.Stats().Spool; st.Pending != 11 || st.Failures == 0 {
			return fmt.Errorf("spool %+v: want 11 pending and failed attempts", st)
		}
		return nil
	})
	if err := e.st.PingBlob(ctx); err == nil {
		t.Fatal("PingBlob succeeded with the server stopped")
	}
	if err := e.st.Ping(ctx); err != nil {
		t.Fatalf("Ping (admission) must not depend on the blob store: %v", err)
	}

	srv.Restart(t)
	e.flush()
	var order []string
	for _, k := range e.blob.putOrder() {
		order = append(order, strings.TrimPrefix(k, storage.RecordingPrefix("acme", rec)))
	}
	wantOrder := []string{"part-000000.age", "part-000001.age", "part-000002.age"}
	for i := 3; i < 12; i++ {
		wantOrder = append(wantOrder, fmt.Sprintf("part-%06d.age", i))
	}
	wantOrder = append(wantOrder, "part-000000.age", "manifest.age")
	if fmt.Sprint(order) != fmt.Sprint(wantOrder) {
		t.Fatalf("upload order:\n got %v\nwant %v", order, wantOrder)
	}
	if got := readAll(t, e.st, "acme", rec, storage.ReadOptions{}); !bytes.Equal(got, want) {
		t.Fatal("recording read back from S3 differs")
	}
	r, err := e.st.Open(ctx, "acme", rec, storage.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Verify(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestS3LegalHold: objects under an S3 Object Lock legal hold survive
// Shred (the key is destroyed regardless) until the hold is released.
func TestS3LegalHold(t *testing.T) {
	srv := s3test.Start(t)
	cfg := srv.Config(s3test.LockedBucket)
	cfg.Prefix = "hold"
	cfg.ObjectLock = "governance"
	blob := srv.NewStore(t, cfg, s3.WithMaxAttempts(1))
	e := newEnv(t, metatest.SQLite(t), envOptions{wrap: func(storage.Blob) storage.Blob { return blob }})
	ctx := context.Background()
	st := storage.New(e.db, blob, e.kr, e.spool, storage.Options{}) // blob unwrapped: LegalHolder visible
	rec := newID()
	writeRecording(t, st, "acme", rec, []int{100, 200}, true)
	e.flush()
	if err := st.SetLegalHold(ctx, "acme", rec, true); err != nil {
		t.Fatal(err)
	}
	err := st.Shred(ctx, "acme", rec)
	if err == nil || !strings.Contains(err.Error(), "key destroyed") {
		t.Fatalf("shred under legal hold: %v, want objects kept and the key destroyed", err)
	}
	if keys, _ := blob.List(ctx, storage.RecordingPrefix("acme", rec)); len(keys) != 3 {
		t.Fatalf("held objects after shred: %v", keys)
	}
	if _, err := st.Open(ctx, "acme", rec, storage.ReadOptions{}); !errors.Is(err, storage.ErrKeyDestroyed) {
		t.Fatalf("open after shred: %v", err)
	}
	if err := st.SetLegalHold(ctx, "acme", rec, false); err != nil {
		t.Fatal(err)
	}
	if err := st.Shred(ctx, "acme", rec); err != nil {
		t.Fatalf("shred after release: %v", err)
	}
	if keys, _ := blob.List(ctx, storage.RecordingPrefix("acme", rec)); len(keys) != 0 {
		t.Fatalf("objects after shred: %v", keys)
	}

	// A recording started under a hold gets it on every object at upload.
	rec2 := newID()
	w, err := st.NewWriter(ctx, "acme", rec2, storage.WriterOptions{LegalHold: true})
	if err != nil {
		t.Fatal(err)
	}
	w.WritePart(ctx, []byte("held"))
	w.Close(ctx, true)
	e.flush()
	if err := st.Shred(ctx, "acme", rec2); err == nil {
		t.Fatal("shred of a recording written under a hold deleted its objects")
	}
}
