package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/spool"
)

// sink uploads to a real disk blob store and records the upload order; it
// can be switched to fail (blob store unreachable) or to block.
type sink struct {
	blob *disk.Store

	mu       sync.Mutex
	order    []string
	inflight map[string]int // per group
	maxPer   int            // most concurrent uploads seen in one group
	down     bool
	gate     chan struct{} // if set, uploads wait on it
	attempts atomic.Int64
}

func newSink(tb testing.TB) *sink {
	tb.Helper()
	b, err := disk.New(filepath.Join(tb.TempDir(), "objects"))
	if err != nil {
		tb.Fatal(err)
	}
	return &sink{blob: b, inflight: map[string]int{}}
}

func (k *sink) upload(ctx context.Context, key string, data []byte, r spool.Retention) error {
	k.attempts.Add(1)
	g := filepath.Dir(key)
	k.mu.Lock()
	k.inflight[g]++
	k.maxPer = max(k.maxPer, k.inflight[g])
	down, gate := k.down, k.gate
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.inflight[g]--
		k.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if down {
		return errors.New("connection refused (test: blob store down)")
	}
	if err := k.blob.Put(ctx, key, data, storage.PutOptions{RetainUntil: r.Until, LegalHold: r.LegalHold}); err != nil {
		return err
	}
	k.mu.Lock()
	k.order = append(k.order, key)
	k.mu.Unlock()
	return nil
}

func (k *sink) setDown(v bool) {
	k.mu.Lock()
	k.down = v
	k.mu.Unlock()
}

func (k *sink) uploaded() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.order...)
}

func open(tb testing.TB, dir string, o spool.Options) *spool.Spool {
	tb.Helper()
	if o.MinBackoff == 0 {
		o.MinBackoff = 5 * time.Millisecond
		o.MaxBackoff = 50 * time.Millisecond
	}
	s, err := spool.Open(dir, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func put(tb testing.TB, s *spool.Spool, key string, data []byte) {
	tb.Helper()
	if err := s.Put(context.Background(), key, data, spool.Retention{}); err != nil {
		tb.Fatal(err)
	}
}

func flush(tb testing.TB, s *spool.Spool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
}

func spoolFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func body(key string, n int) []byte {
	return bytes.Repeat([]byte(key+";"), n/(len(key)+1)+1)[:n]
}

func TestPutGetUploadInOrder(t *testing.T) {
	dir := t.TempDir()
	var notified sync.Map
	s := open(t, dir, spool.Options{OnUploaded: func(k string) { notified.Store(k, true) }})
	k := newSink(t)
	var keys []string
	for i := range 5 {
		for _, rec := range []string{"t/recordings/a", "t/recordings/b"} {
			key := fmt.Sprintf("%s/part-%06d.age", rec, i)
			keys = append(keys, key)
			put(t, s, key, body(key, 1000+i))
		}
	}
	put(t, s, "t/recordings/a/manifest.age", []byte("manifest a"))
	// Before the uploader runs, Get serves from the spool.
	for _, key := range keys {
		got, err := s.Get(key)
		if err != nil || !bytes.Equal(got, body(key, len(got))) || len(got) < 1000 {
			t.Fatalf("get %s before upload: %v", key, err)
		}
	}
	if st := s.Stats(); st.Pending != 11 || st.Oldest.IsZero() {
		t.Fatalf("stats before upload: %+v", st)
	}
	s.Start(k.upload)
	flush(t, s)

	// Per recording, uploads happened in Put order, manifest last.
	for _, rec := range []string{"t/recordings/a/", "t/recordings/b/"} {
		var got []string
		for _, key := range k.uploaded() {
			if strings.HasPrefix(key, rec) {
				got = append(got, strings.TrimPrefix(key, rec))
			}
		}
		want := []string{"part-000000.age", "part-000001.age", "part-000002.age", "part-000003.age", "part-000004.age"}
		if rec == "t/recordings/a/" {
			want = append(want, "manifest.age")
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s upload order %v, want %v", rec, got, want)
		}
	}
	for _, key := range keys {
		data, err := k.blob.Get(context.Background(), key)
		if err != nil || len(data) < 1000 || !bytes.Equal(data, body(key, len(data))) {
			t.Errorf("blob %s: %v", key, err)
		}
		if _, err := s.Get(key); !errors.Is(err, spool.ErrNotFound) {
			t.Errorf("get %s after upload: %v, want ErrNotFound", key, err)
		}
		if _, ok := notified.Load(key); !ok {
			t.Errorf("OnUploaded not called for %s", key)
		}
	}
	if names := spoolFiles(t, dir); len(names) != 0 {
		t.Errorf("spool files left after upload: %v", names)
	}
	if st := s.Stats(); st.Pending != 0 || st.PendingBytes != 0 || st.Uploaded != 11 {
		t.Errorf("stats after upload: %+v", st)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		put(t, s, fmt.Sprintf("t/recordings/r/part-%06d.age", i), body("x", 500+i))
	}
	s.Close() // "crash" before any upload
	if err := s.Put(context.Background(), "t/recordings/r/late.age", nil, spool.Retention{}); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	// Leftovers of a crash: a temp file (Put never returned) and a
	// damaged spool file.
	os.WriteFile(filepath.Join(dir, "tmp-00000000000000ff"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "00000000000000fe.obj"), []byte("CSPOOL1\ngarbage"), 0o600)

	s2 := open(t, dir, spool.Options{})
	names := strings.Join(spoolFiles(t, dir), " ")
	if strings.Contains(names, "tmp-") {
		t.Errorf("temp file not removed: %s", names)
	}
	if !strings.Contains(names, "00000000000000fe.obj.bad") {
		t.Errorf("damaged file not set aside: %s", names)
	}
	if st := s2.Stats(); st.Pending != 4 {
		t.Fatalf("resumed %d objects, want 4", st.Pending)
	}
	put(t, s2, "t/recordings/r/manifest.age", []byte("m"))
	k := newSink(t)
	s2.Start(k.upload)
	flush(t, s2)
	want := "[t/recordings/r/part-000000.age t/recordings/r/part-000001.age t/recordings/r/part-000002.age t/recordings/r/part-000003.age t/recordings/r/manifest.age]"
	if got := fmt.Sprint(k.uploaded()); got != want {
		t.Fatalf("upload order after restart:\n got %s\nwant %s", got, want)
	}
}

func TestRetryWhileBlobDown(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{})
	k := newSink(t)
	k.setDown(true)
	s.Start(k.upload)
	for i := range 10 {
		put(t, s, fmt.Sprintf("t/recordings/r/part-%06d.age", i), body("p", 100+i))
	}
	testpoll.Until(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := s.Stats(); st.Failures < 3 || st.LastError == "" {
			return fmt.Errorf("stats %+v: want repeated failures", st)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := s.Flush(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "10 objects not uploaded") {
		t.Fatalf("flush while down: %v", err)
	}
	// Readers still get every part from the spool.
	for i := range 10 {
		if _, err := s.Get(fmt.Sprintf("t/recordings/r/part-%06d.age", i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(k.uploaded()) != 0 {
		t.Fatalf("uploaded while down: %v", k.uploaded())
	}
	k.setDown(false)
	flush(t, s)
	got := k.uploaded()
	if len(got) != 10 {
		t.Fatalf("uploaded %d, want 10", len(got))
	}
	for i, key := range got {
		if want := fmt.Sprintf("t/recordings/r/part-%06d.age", i); key != want {
			t.Fatalf("upload %d is %s, want %s", i, key, want)
		}
		data, _ := k.blob.Get(context.Background(), key)
		if !bytes.Equal(data, body("p", 100+i)) {
			t.Fatalf("%s arrived altered", key)
		}
	}
	if st := s.Stats(); st.LastError != "" {
		t.Errorf("last error not cleared after success: %q", st.LastError)
	}
}

func TestManyGroupsConcurrently(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{Concurrency: 6})
	k := newSink(t)
	s.Start(k.upload)
	var wg sync.WaitGroup
	const groups, parts = 12, 15
	for g := range groups {
		wg.Go(func() {
			for i := range parts {
				put(t, s, fmt.Sprintf("t/recordings/g%02d/part-%06d.age", g, i), body("z", 64+i))
			}
		})
	}
	wg.Wait()
	flush(t, s)
	seen := map[string]int{}
	for _, key := range k.uploaded() {
		g := filepath.Dir(key)
		want := fmt.Sprintf("%s/part-%06d.age", g, seen[g])
		if key != want {
			t.Fatalf("group %s: uploaded %s, want %s", g, key, want)
		}
		seen[g]++
	}
	if len(seen) != groups {
		t.Fatalf("%d groups uploaded, want %d", len(seen), groups)
	}
	if k.maxPer != 1 {
		t.Fatalf("%d concurrent uploads within one group, want 1", k.maxPer)
	}
}

func TestNewVersionOfKey(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{})
	put(t, s, "t/recordings/r/part-000000.age", []byte("header v1"))
	put(t, s, "t/recordings/r/part-000001.age", []byte("body"))
	put(t, s, "t/recordings/r/part-000000.age", []byte("header v2"))
	if got, err := s.Get("t/recordings/r/part-000000.age"); err != nil || string(got) != "header v2" {
		t.Fatalf("get: %q %v", got, err)
	}
	if keys := s.Keys("t/recordings/r/"); len(keys) != 2 {
		t.Fatalf("keys %v", keys)
	}
	k := newSink(t)
	s.Start(k.upload)
	flush(t, s)
	data, err := k.blob.Get(context.Background(), "t/recordings/r/part-000000.age")
	if err != nil || string(data) != "header v2" {
		t.Fatalf("blob has %q %v, want the newest version", data, err)
	}
}

func TestRemoveWaitsForInflight(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{})
	k := newSink(t)
	k.gate = make(chan struct{})
	for i := range 3 {
		put(t, s, fmt.Sprintf("t/recordings/gone/part-%06d.age", i), []byte("x"))
	}
	put(t, s, "t/recordings/kept/part-000000.age", []byte("y"))
	s.Start(k.upload)
	testpoll.Until(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := s.Stats(); st.InFlight != 2 {
			return fmt.Errorf("in flight %d, want 2", st.InFlight)
		}
		return nil
	})
	removed := make(chan error, 1)
	go func() {
		_, err := s.Remove(context.Background(), "t/recordings/gone/")
		removed <- err
	}()
	select {
	case err := <-removed:
		t.Fatalf("Remove returned (%v) while an upload under the prefix was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(k.gate)
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	for _, key := range k.uploaded() {
		if key == "t/recordings/gone/part-000001.age" || key == "t/recordings/gone/part-000002.age" {
			t.Fatalf("removed object %s was uploaded", key)
		}
	}
	if keys := s.Keys("t/recordings/gone/"); len(keys) != 0 {
		t.Fatalf("keys left: %v", keys)
	}
	if _, err := k.blob.Get(context.Background(), "t/recordings/kept/part-000000.age"); err != nil {
		t.Fatalf("other recording not uploaded: %v", err)
	}
}

func TestFullDiskInjected(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, spool.Options{})
	for i := range 3 {
		put(t, s, fmt.Sprintf("t/recordings/r/part-%06d.age", i), body("ok", 4096))
	}
	spool.SetWriteHook(s, func(f *os.File, p []byte) (int, error) {
		n, _ := f.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	})
	err := s.Put(context.Background(), "t/recordings/r/part-000003.age", body("no", 4096), spool.Retention{})
	if !spool.IsFull(err) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on full disk: %v, want ErrFull and ENOSPC", err)
	}
	if !strings.Contains(err.Error(), "part-000003") || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("error does not say what failed: %v", err)
	}
	checkIntact(t, s, dir, 3)
	spool.SetWriteHook(s, nil)
	put(t, s, "t/recordings/r/part-000003.age", body("ok", 4096))
	checkIntact(t, s, dir, 4)
}

// checkIntact asserts the spool holds exactly parts 0..n-1, readable and
// unaltered, with no temp files.
func checkIntact(tb testing.TB, s *spool.Spool, dir string, n int) {
	tb.Helper()
	for i := range n {
		key := fmt.Sprintf("t/recordings/r/part-%06d.age", i)
		got, err := s.Get(key)
		if err != nil || !bytes.Equal(got, body("ok", len(got))) || len(got) == 0 {
			tb.Fatalf("%s: %v", key, err)
		}
	}
	if keys := s.Keys(""); len(keys) != n {
		tb.Fatalf("spool holds %d keys, want %d: %v", len(keys), n, keys)
	}
	for _, name := range spoolFiles(tb, dir) {
		if strings.HasPrefix(name, "tmp-") {
			tb.Fatalf("temp file left behind: %s", name)
		}
	}
}

func TestMaxBytes(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{MaxBytes: 10000})
	put(t, s, "t/recordings/r/part-000000.age", make([]byte, 6000))
	err := s.Put(context.Background(), "t/recordings/r/part-000001.age", make([]byte, 6000), spool.Retention{})
	if !spool.IsFull(err) {
		t.Fatalf("put over MaxBytes: %v", err)
	}
}

func TestPing(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{})
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, t.TempDir(), spool.Options{MinFreeBytes: 1 << 62})
	if err := s2.Ping(context.Background()); !spool.IsFull(err) {
		t.Fatalf("ping with too little space: %v", err)
	}
	s.Close()
	if err := s.Ping(context.Background()); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, spool.Options{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				put(t, s, fmt.Sprintf("t/recordings/w%d/part-%06d.age", w, i), body("ok", 100))
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Pending != 200 {
		t.Fatalf("pending %d, want 200", st.Pending)
	}
	s.Close()
	s2 := open(t, dir, spool.Options{})
	if st := s2.Stats(); st.Pending != 200 {
		t.Fatalf("after reopen: pending %d, want 200", st.Pending)
	}
}
