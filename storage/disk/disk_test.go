package disk_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/storagetest"
)

func newStore(t testing.TB) *disk.Store {
	t.Helper()
	s, err := disk.New(filepath.Join(t.TempDir(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t testing.TB) storage.Blob { return newStore(t) })
}

func TestModesAndNoTempFiles(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, k := range []string{"a/b/c", "a/b/d", "e"} {
		if err := s.Put(ctx, k, []byte(k), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("leftover temp file %s", p)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "t/r1/p0", []byte("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "t/r2/p0", []byte("y"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t/r1/p0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "t", "r1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty directory t/r1 left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "t", "r2", "p0")); err != nil {
		t.Errorf("sibling object gone: %v", err)
	}
	if _, err := os.Stat(s.Dir()); err != nil {
		t.Errorf("root directory removed: %v", err)
	}
}

// No key can name a path outside the directory.
func TestKeysStayInside(t *testing.T) {
	s := newStore(t)
	outside := filepath.Join(filepath.Dir(s.Dir()), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range storagetest.HostileKeys {
		if _, err := s.Get(context.Background(), key); !errors.Is(err, disk.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := s.Get(context.Background(), "../secret"); !errors.Is(err, disk.ErrInvalidKey) {
		t.Errorf("Get(../secret) = %v, want ErrInvalidKey", err)
	}
}

func TestPutUnderAnObjectFails(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if err := s.Put(ctx, "a", []byte("file"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", []byte("x"), storage.PutOptions{}); err == nil {
		t.Fatal("Put(a/b) with object a succeeded on disk")
	}
	if got, err := s.Get(ctx, "a"); err != nil || string(got) != "file" {
		t.Fatalf("object a after failed Put(a/b) = %q, %v", got, err)
	}
}

func TestNewRejectsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.New(f); err == nil {
		t.Fatal("New on a regular file succeeded")
	}
	if _, err := disk.New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
}

func TestPing(t *testing.T) {
	s := newStore(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping succeeded with the directory gone")
	}
}

func FuzzValidKey(f *testing.F) {
	for _, k := range storagetest.HostileKeys {
		f.Add(k)
	}
	f.Add("tenants/t/recordings/r/parts/000001")
	f.Fuzz(func(t *testing.T, key string) {
		if disk.ValidKey(key) != nil {
			return
		}
		// An accepted key must stay below the root after cleaning.
		root := "/root/objects"
		p := filepath.Join(root, filepath.FromSlash(key))
		if !strings.HasPrefix(p, root+"/") {
			t.Fatalf("ValidKey accepted %q, which resolves to %s", key, p)
		}
		if filepath.Clean(key) != key {
			t.Fatalf("ValidKey accepted unclean key %q", key)
		}
	})
}

// BenchmarkPut8KiB measures one durable Put of a 2-second audio part's size
// (temp file, fsync, rename, directory fsync) and reports p50/p99 latency.
func BenchmarkPut8KiB(b *testing.B) {
	s := newStore(b)
	data := make([]byte, 8<<10)
	ctx := context.Background()
	var lat []time.Duration
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if err := s.Put(ctx, fmt.Sprintf("bench/r1/part%06d", i), data, storage.PutOptions{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

func BenchmarkGetRange64KiB(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	data := make([]byte, 4<<20)
	if err := s.Put(ctx, "big", data, storage.PutOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(64 << 10)
	for b.Loop() {
		if _, err := s.GetRange(ctx, "big", 1<<20, 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}
