package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

const (
	// EnvMarker is set to MarkerValue in the environment of a test binary
	// that RunLoopbackOnly re-executed inside a new network namespace.
	EnvMarker = "CUSTODIAN_NETNS"
	// MarkerValue is the value of EnvMarker inside the namespace.
	MarkerValue = "loopback"
	// EnvOptOut, set to "off", makes RunLoopbackOnly run the tests in the
	// current network namespace (with a warning) when it cannot create one.
	EnvOptOut = "CUSTODIAN_TEST_NETNS"
)

// ErrNotLoopbackOnly is returned by CheckLoopbackOnly when the current network
// namespace has an interface other than lo, or lo is down.
var ErrNotLoopbackOnly = errors.New("netns: network namespace is not loopback-only")

// RunLoopbackOnly runs m inside a network namespace whose only interface is
// loopback and returns the exit code for os.Exit. See the package comment.
func RunLoopbackOnly(m *testing.M) int {
	inside := os.Getenv(EnvMarker) == MarkerValue
	if err := CheckLoopbackOnly(); err == nil {
		return m.Run()
	} else if inside {
		fmt.Fprintf(os.Stderr, "%v: re-executed with %s=%s but the namespace check failed\n", err, EnvMarker, MarkerValue)
		return 1
	}
	if err := canUnshare(); err != nil {
		if os.Getenv(EnvOptOut) == "off" {
			fmt.Fprintf(os.Stderr, "netns: WARNING: %v; %s=off, so the tests run in the current network namespace and may use non-loopback interfaces\n", err, EnvOptOut)
			return m.Run()
		}
		fmt.Fprintf(os.Stderr, "netns: WebRTC tests must run in a loopback-only network namespace: %v\n"+
			"netns: run as root (or with CAP_SYS_ADMIN), or set %s=off to run them in the current namespace\n", err, EnvOptOut)
		return 1
	}
	code, err := reexec()
	if err != nil {
		fmt.Fprintf(os.Stderr, "netns: %v\n", err)
		return 1
	}
	return code
}

// CheckLoopbackOnly returns nil when the current network namespace has
// exactly one interface, the loopback interface, and it is up. Otherwise it
// returns an error wrapping ErrNotLoopbackOnly that names the interfaces.
func CheckLoopbackOnly() error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("netns: list interfaces: %w", err)
	}
	var names []string
	ok := len(ifaces) == 1
	for _, ifc := range ifaces {
		names = append(names, ifc.Name)
		if ifc.Flags&net.FlagLoopback == 0 || ifc.Flags&net.FlagUp == 0 {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: interfaces %s", ErrNotLoopbackOnly, strings.Join(names, ", "))
	}
	return nil
}

// canUnshare checks that this process may create a network namespace.
func canUnshare() error {
	path, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("unshare not found (util-linux): %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("ip not found (iproute2): %w", err)
	}
	out, err := exec.Command(path, "--net", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cannot create a network namespace (need root or CAP_SYS_ADMIN): %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// reexec runs this executable again with the same arguments inside a new
// network namespace with lo up, forwarding SIGINT and SIGTERM, and returns
// its exit code.
func reexec() (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find test binary: %w", err)
	}
	// sh -c 'ip link set lo up && exec "$0" "$@"' self args...
	args := append([]string{"--net", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, self}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), EnvMarker+"="+MarkerValue)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s in a new network namespace: %w", self, err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	signal.Stop(sigs)
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("run %s in a new network namespace: %w", self, err)
	}
	return 0, nil
}
