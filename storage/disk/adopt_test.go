package disk_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
)

// TestAdoptFile: a file becomes the object by rename (its bytes, and
// nothing left at the source); invalid keys are refused; a file on
// another filesystem is declined, so the caller writes the bytes.
func TestAdoptFile(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "spooled")
	if err := os.WriteFile(src, []byte("sealed bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok, err := s.AdoptFile(ctx, "acme/recordings/r1/part-000000.age", src, storage.PutOptions{})
	if err != nil || !ok {
		t.Fatalf("adopt: %v, %v", ok, err)
	}
	if got, err := s.Get(ctx, "acme/recordings/r1/part-000000.age"); err != nil || string(got) != "sealed bytes" {
		t.Fatalf("get: %q, %v", got, err)
	}
	if _, err := os.Stat(src); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("source still there: %v", err)
	}
	if keys, _ := s.List(ctx, "acme/"); len(keys) != 1 {
		t.Errorf("list %v", keys)
	}
	// Adopting again replaces the object (after a crash the spool may
	// adopt a file twice).
	os.WriteFile(src, []byte("sealed bytes"), 0o600)
	if ok, err := s.AdoptFile(ctx, "acme/recordings/r1/part-000000.age", src, storage.PutOptions{}); !ok || err != nil {
		t.Errorf("adopt again: %v, %v", ok, err)
	}
	if _, err := s.AdoptFile(ctx, "../escape", src, storage.PutOptions{}); !errors.Is(err, disk.ErrInvalidKey) {
		t.Errorf("invalid key: %v", err)
	}
	if _, err := s.AdoptFile(ctx, "acme/missing", filepath.Join(t.TempDir(), "none"), storage.PutOptions{}); err == nil {
		t.Error("adopting a missing file succeeded")
	}

	// Another filesystem: /dev/shm is tmpfs where it exists.
	shm, err := os.MkdirTemp("/dev/shm", "adopt")
	if err != nil {
		t.Skip("no /dev/shm")
	}
	defer os.RemoveAll(shm)
	var a, b syscall.Statfs_t
	if syscall.Statfs(shm, &a) != nil || syscall.Statfs(s.Dir(), &b) != nil || a.Type == b.Type {
		t.Skip("/dev/shm is on the store's filesystem type")
	}
	other := filepath.Join(shm, "spooled")
	os.WriteFile(other, []byte("x"), 0o600)
	ok, err = s.AdoptFile(ctx, "acme/recordings/r2/part-000000.age", other, storage.PutOptions{})
	if ok || err != nil {
		t.Errorf("across filesystems: %v, %v; want false, nil", ok, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("declined file gone: %v", err)
	}
}
