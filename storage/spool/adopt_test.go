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
	"testing"
	"time"

	"github.com/custodian/custodian/storage/spool"
)

// TestBareFilesAdopted: a spooled object's file holds exactly its bytes
// (key and retention in the name), survives a restart with its key and
// retention, and is adopted by the blob store by rename; an adopter that
// declines falls back to the uploader, a failing one is retried; keys too
// long for a file name keep the header format.
func TestBareFilesAdopted(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	long := "t/recordings/" + strings.Repeat("r", 200) + "/part-000000.age"
	objs := []struct {
		key string
		ret spool.Retention
	}{
		{"t/recordings/r1/part-000000.age", spool.Retention{}},
		{"t/recordings/r1/part-000001.age", spool.Retention{Until: until, LegalHold: true}},
		{"t/recordings/r2/part-000000.age", spool.Retention{LegalHold: true}},
		{long, spool.Retention{Until: until}},
	}
	for i, o := range objs {
		if err := s.Put(context.Background(), o.key, body(o.key, 300+i), o.ret); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	names := spoolFiles(t, dir)
	bare := 0
	for _, n := range names {
		if strings.HasSuffix(n, ".o2") {
			bare++
			b, _ := os.ReadFile(filepath.Join(dir, n))
			if bytes.Contains(b, []byte("CSPOOL")) || !bytes.HasPrefix(b, []byte("t/recordings/")) {
				t.Errorf("bare file %s holds more than the object: %q", n, b[:20])
			}
		}
	}
	if bare != 3 || len(names) != 4 {
		t.Fatalf("spool files %v: want 3 bare and 1 with a header (long key)", names)
	}

	// Restart: key and retention come back from the names.
	s2 := open(t, dir, spool.Options{})
	if st := s2.Stats(); st.Pending != 4 || st.Oldest.IsZero() {
		t.Fatalf("resumed %+v", st)
	}
	for i, o := range objs {
		if got, err := s2.Get(o.key); err != nil || !bytes.Equal(got, body(o.key, 300+i)) {
			t.Fatalf("get %s after restart: %v", o.key, err)
		}
	}
	objects := t.TempDir()
	var mu sync.Mutex
	adopted := map[string]spool.Retention{}
	failOnce := true
	k := newSink(t)
	s2.StartAdopting(k.upload, func(ctx context.Context, key, path string, r spool.Retention) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(key, "r2/") {
			if failOnce {
				failOnce = false
				return false, errors.New("test: adoption failed")
			}
			return false, nil // declined: uploaded instead
		}
		dst := filepath.Join(objects, strings.ReplaceAll(key, "/", "_"))
		if err := os.Rename(path, dst); err != nil {
			return false, err
		}
		adopted[key] = r
		return true, nil
	})
	flush(t, s2)
	if len(spoolFiles(t, dir)) != 0 {
		t.Errorf("spool not empty: %v", spoolFiles(t, dir))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(adopted) != 2 || adopted[objs[0].key] != objs[0].ret || !adopted[objs[1].key].Until.Equal(until) || !adopted[objs[1].key].LegalHold {
		t.Errorf("adopted %v", adopted)
	}
	for _, o := range objs[:2] {
		b, err := os.ReadFile(filepath.Join(objects, strings.ReplaceAll(o.key, "/", "_")))
		if err != nil || !bytes.HasPrefix(b, []byte(o.key)) {
			t.Errorf("adopted object %s: %v", o.key, err)
		}
	}
	if got := fmt.Sprint(k.uploaded()); got != fmt.Sprint([]string{objs[2].key, long}) && got != fmt.Sprint([]string{long, objs[2].key}) {
		t.Errorf("uploaded %s, want the declined object and the long key", got)
	}
	if st := s2.Stats(); st.Failures != 1 || st.Uploaded != 4 {
		t.Errorf("stats %+v: want 1 failed adoption, 4 objects done", st)
	}
	if _, err := k.blob.Get(context.Background(), long); err != nil {
		t.Errorf("long key: %v", err)
	}
}
