//go:build linux

package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/custodian/custodian/storage/spool"
)

const tmpfsChildEnv = "CUSTODIAN_SPOOL_TMPFS_DIR"

// TestFullDiskTmpfs fills a real 512 KiB tmpfs. As root it re-runs itself
// in a private mount namespace (unshare -m), so the mount vanishes with the
// process; elsewhere TestFullDiskInjected covers the same path.
func TestFullDiskTmpfs(t *testing.T) {
	dir := os.Getenv(tmpfsChildEnv)
	if dir == "" {
		if os.Geteuid() != 0 {
			t.Skip("mounting a tmpfs needs root; TestFullDiskInjected covers this without")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("unshare(1) not installed")
		}
		cmd := exec.Command(unshare, "-m", "--propagation", "private", os.Args[0], "-test.run=^TestFullDiskTmpfs$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), tmpfsChildEnv+"="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if !bytes.Contains(out, []byte("tmpfs mounted")) {
			t.Skipf("cannot mount a tmpfs in a new mount namespace here: %v\n%s", err, out)
		}
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFullDiskTmpfs")) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "tmpfs_test.go") {
				t.Log(strings.TrimSpace(line))
			}
		}
		return
	}

	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, 0)
	t.Logf("tmpfs mounted at %s (512 KiB)", dir)

	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	var putErr error
	for n = 0; n < 100; n++ {
		putErr = s.Put(context.Background(), fmt.Sprintf("t/recordings/r/part-%06d.age", n), body("ok", 60<<10), spool.Retention{})
		if putErr != nil {
			break
		}
	}
	if putErr == nil {
		t.Fatal("a 512 KiB tmpfs took 100 objects of 60 KiB")
	}
	t.Logf("disk full after %d objects: %v", n, putErr)
	if !spool.IsFull(putErr) || !errors.Is(putErr, syscall.ENOSPC) {
		t.Fatalf("put on full tmpfs: %v, want ErrFull wrapping ENOSPC", putErr)
	}
	if n == 0 {
		t.Fatal("no object fit at all")
	}
	checkIntact(t, s, dir, n)
	if err := s.Ping(context.Background()); !spool.IsFull(err) {
		t.Errorf("ping on a full spool disk: %v, want ErrFull", err)
	}

	// Reopen: everything spooled before the failure is still queued.
	s.Close()
	s2, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	checkIntact(t, s2, dir, n)
	k := newSink(t)
	s2.Start(k.upload)
	flush(t, s2)
	if got := len(k.uploaded()); got != n {
		t.Fatalf("uploaded %d objects, want %d", got, n)
	}
	for i := range n {
		data, err := k.blob.Get(context.Background(), fmt.Sprintf("t/recordings/r/part-%06d.age", i))
		if err != nil || !bytes.Equal(data, body("ok", 60<<10)) {
			t.Fatalf("part %d arrived damaged: %v", i, err)
		}
	}
	// Uploads freed the space: the spool takes objects again.
	if err := s2.Put(context.Background(), "t/recordings/r/after.age", body("ok", 60<<10), spool.Retention{}); err != nil {
		t.Fatalf("put after the spool drained: %v", err)
	}
}
