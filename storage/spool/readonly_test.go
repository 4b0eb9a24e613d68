package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadOnlyBesideOwner(t *testing.T) {
	dir := t.TempDir()
	owner, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	ctx := context.Background()
	if err := owner.Put(ctx, "t/recordings/r/part-000000.age", []byte("sealed-0"), Retention{}); err != nil {
		t.Fatal(err)
	}
	// a temp file the owner is writing right now, and an unreadable file
	tmp := filepath.Join(dir, tmpPrefix+"inflight")
	if err := os.WriteFile(tmp, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "00000000000000ff"+fileSuffix)
	if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)

	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ro.Get("t/recordings/r/part-000000.age")
	if err != nil || string(got) != "sealed-0" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	ro.Start(func(context.Context, string, []byte, Retention) error {
		t.Error("read-only spool uploaded")
		return nil
	})
	if err := ro.Put(ctx, "x/y", []byte("z"), Retention{}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Put = %v, want ErrReadOnly", err)
	}
	if _, err := ro.Remove(ctx, "t/"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Remove = %v, want ErrReadOnly", err)
	}
	if err := ro.Flush(ctx); err != nil {
		t.Errorf("Flush = %v", err)
	}
	ro.Close()
	after, _ := os.ReadDir(dir)
	if len(before) != len(after) {
		t.Fatalf("read-only open changed the directory: %d entries before, %d after", len(before), len(after))
	}
	for i := range before {
		if before[i].Name() != after[i].Name() {
			t.Fatalf("entry %q became %q", before[i].Name(), after[i].Name())
		}
	}
}
