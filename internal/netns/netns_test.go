package netns_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custodian/custodian/internal/netns"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }

func TestOnlyLoopback(t *testing.T) {
	if os.Getenv(netns.EnvOptOut) == "off" && os.Getenv(netns.EnvMarker) != netns.MarkerValue {
		t.Skip("running in the current namespace (CUSTODIAN_TEST_NETNS=off)")
	}
	if err := netns.CheckLoopbackOnly(); err != nil {
		t.Fatal(err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Fatalf("interfaces = %v, want only lo", ifaces)
	}
	// Loopback works in both directions.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("loopback read = %q, %v", buf[:n], err)
	}
	// Nothing else is reachable: there is no route off the host.
	if c, err := net.Dial("udp4", "192.0.2.1:9"); err == nil {
		_, err = c.Write([]byte("x"))
		c.Close()
		if err == nil {
			t.Fatal("sent a datagram to 192.0.2.1 from a loopback-only namespace")
		}
	}
}

func TestCheckLoopbackOnlyErrorWraps(t *testing.T) {
	// The check's error, when there is one, wraps the sentinel; inside the
	// namespace there is none.
	err := netns.CheckLoopbackOnly()
	if err != nil && !errors.Is(err, netns.ErrNotLoopbackOnly) {
		t.Fatalf("error %v does not wrap ErrNotLoopbackOnly", err)
	}
}

// TestUnprivilegedFailsClearly runs this test binary as user nobody, who may
// not create a network namespace: without the opt-out it must fail with a
// message naming the problem; with CUSTODIAN_TEST_NETNS=off it runs the tests.
func TestUnprivilegedFailsClearly(t *testing.T) {
	if os.Getenv("CUSTODIAN_NETNS_CHILD") != "" {
		t.Skip("child run")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to user nobody")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "netns-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "netns.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(extraEnv ...string) (string, int) {
		// A nested namespace with a second interface, so the child is not in
		// a loopback-only namespace and has to create one itself.
		cmd := exec.Command("unshare", "--net", "--", "sh", "-c",
			`ip link add v0 type veth peer name v1 && exec "$@"`, "sh",
			setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin,
			"-test.run=TestOnlyLoopback|TestCheckLoopbackOnlyErrorWraps", "-test.v")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, netns.EnvMarker+"=") && !strings.HasPrefix(kv, netns.EnvOptOut+"=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(append(env, "CUSTODIAN_NETNS_CHILD=1", "HOME="+dir), extraEnv...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		code := 0
		if exit, ok := errors.AsType[*exec.ExitError](err); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("run child: %v", err)
		}
		return string(out), code
	}

	out, code := run()
	if code == 0 || !strings.Contains(out, "must run in a loopback-only network namespace") || !strings.Contains(out, netns.EnvOptOut+"=off") {
		t.Fatalf("unprivileged run: exit %d, output:\n%s", code, out)
	}
	out, code = run(netns.EnvOptOut + "=off")
	if code != 0 || !strings.Contains(out, "WARNING") || !strings.Contains(out, "PASS") {
		t.Fatalf("unprivileged run with opt-out: exit %d, output:\n%s", code, out)
	}
}
