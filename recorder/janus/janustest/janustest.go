// Package janustest runs Debian's Janus WebRTC Server for tests: only the
// HTTP transport and the VideoRoom plugin, bound to 127.0.0.1, rooms from
// the configuration, ICE restricted to a veth interface carrying
// 127.0.0.2 (Janus's ICE ignores loopback-flagged interfaces); and a pion
// publisher that joins a room through the Janus HTTP API.
//
// Place in the data flow: outside the gateway, as the media server and the
// meeting participants the Janus adapter (recorder/janus) records.
//
// It only runs inside the tests' loopback-only network namespace
// (internal/netns): it never adds an interface to any other namespace.
package janustest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custodian/custodian/internal/netns"
)

// Binary is Debian's janus.
const Binary = "/usr/bin/janus"

// libDir holds Debian's Janus plugins and transports.
const libDir = "/usr/lib/x86_64-linux-gnu/janus"

// ICEAddress is the address Janus's ICE uses (on the veth interface
// ICEInterface).
const (
	ICEAddress   = "127.0.0.2"
	ICEInterface = "jv0"
)

// Room is a VideoRoom room created by the configuration.
type Room struct {
	ID          string
	Description string
	// Publishers is the room's publisher limit (default 6).
	Publishers int
}

// Options configure Start.
type Options struct {
	Rooms []Room
	// SessionTimeout is Janus's session timeout in seconds (default 60).
	SessionTimeout int
	// APISecret, when set, is required on every request.
	APISecret string
	// DebugLevel is Janus's log level 0-7 (default 4).
	DebugLevel int
}

// Janus is a running Janus process.
type Janus struct {
	// URL is the HTTP API, http://127.0.0.1:PORT/janus.
	URL  string
	Dir  string
	opts Options
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Require skips the test (fails it under CI) when Janus cannot run here:
// no janus binary, no Janus plugins, or not inside the loopback-only test
// namespace.
func Require(tb testing.TB) {
	tb.Helper()
	missing := ""
	switch {
	case os.Getenv(netns.EnvMarker) != netns.MarkerValue:
		missing = "the loopback-only test network namespace (internal/netns; not with CUSTODIAN_TEST_NETNS=off)"
	default:
		if _, err := os.Stat(Binary); err != nil {
			missing = Binary + " (Debian package janus)"
		} else if _, err := os.Stat(filepath.Join(libDir, "plugins", "libjanus_videoroom.so")); err != nil {
			missing = "the Janus VideoRoom plugin"
		} else if _, err := exec.LookPath("ip"); err != nil {
			missing = "ip (iproute2)"
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("janus test needs %s", missing)
	}
	tb.Skipf("janus test needs %s", missing)
}

// Veth gives the namespace the interface Janus's ICE uses: a veth pair
// jv0/jv1 with 127.0.0.2/32 on jv0 (not loopback-flagged, so Janus
// gathers on it). Loopback-only namespace only; removed at cleanup when
// this call created it.
func Veth(tb testing.TB) {
	tb.Helper()
	if os.Getenv(netns.EnvMarker) != netns.MarkerValue {
		tb.Fatal("janustest: refusing to add an interface outside the loopback-only test namespace")
	}
	if _, err := net.InterfaceByName(ICEInterface); err == nil {
		return
	}
	for _, args := range [][]string{
		{"link", "add", ICEInterface, "type", "veth", "peer", "name", "jv1"},
		{"addr", "add", ICEAddress + "/32", "dev", ICEInterface},
		{"link", "set", ICEInterface, "up"},
		{"link", "set", "jv1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	tb.Cleanup(func() { _ = exec.Command("ip", "link", "del", ICEInterface).Run() })
	// The address is local: traffic between 127.0.0.1 and 127.0.0.2 is
	// delivered within the namespace.
	out, err := exec.Command("ip", "route", "get", ICEAddress).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "local") {
		tb.Fatalf("route to %s is not local: %v: %s", ICEAddress, err, out)
	}
}

// Start writes a minimal configuration into a temporary directory and
// starts Janus on it: HTTP transport on 127.0.0.1 (a free port), the
// VideoRoom plugin with opts.Rooms, ICE on 127.0.0.2 only. It stops at
// cleanup.
func Start(tb testing.TB, opts Options) *Janus {
	tb.Helper()
	Require(tb)
	Veth(tb)
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 60
	}
	if opts.DebugLevel <= 0 {
		opts.DebugLevel = 4
	}
	dir := tb.TempDir()
	j := &Janus{Dir: dir, opts: opts, port: freePort(tb)}
	j.URL = fmt.Sprintf("http://127.0.0.1:%d/janus", j.port)
	for _, sub := range []string{"plugins", "transports", "none"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, l := range [][2]string{
		{"plugins/libjanus_videoroom.so", "plugins"},
		{"transports/libjanus_http.so", "transports"},
	} {
		if err := os.Symlink(filepath.Join(libDir, l[0]), filepath.Join(dir, l[1], filepath.Base(l[0]))); err != nil {
			tb.Fatal(err)
		}
	}
	secret := ""
	if opts.APISecret != "" {
		secret = fmt.Sprintf("\tapi_secret = %q\n", opts.APISecret)
	}
	files := map[string]string{
		"janus.jcfg": fmt.Sprintf(`general: {
	configs_folder = %q
	plugins_folder = %q
	transports_folder = %q
	events_folder = %q
	loggers_folder = %q
	debug_level = %d
	session_timeout = %d
%s}
certificates: {
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	ice_enforce_list = %q
	ice_ignore_list = "vmnet"
}
plugins: {
}
transports: {
}
`, dir, filepath.Join(dir, "plugins"), filepath.Join(dir, "transports"), filepath.Join(dir, "none"), filepath.Join(dir, "none"),
			opts.DebugLevel, opts.SessionTimeout, secret, ICEInterface),
		"janus.transport.http.jcfg": fmt.Sprintf(`general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = %d
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
`, j.port),
		"janus.plugin.videoroom.jcfg": roomsConfig(opts.Rooms),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	j.Restart(tb)
	tb.Cleanup(func() { j.Stop() })
	return j
}

func roomsConfig(rooms []Room) string {
	var b strings.Builder
	b.WriteString("general: {\n}\n")
	for _, r := range rooms {
		n := r.Publishers
		if n == 0 {
			n = 6
		}
		fmt.Fprintf(&b, "room-%s: {\n\tdescription = %q\n\tpublishers = %d\n\taudiocodec = \"opus\"\n\tvideocodec = \"vp8\"\n\tbitrate = 512000\n\tfir_freq = 2\n}\n",
			r.ID, r.Description, n)
	}
	return b.String()
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Restart starts the Janus process (again, after Kill) with the same
// configuration and port, and waits until its API answers.
func (j *Janus) Restart(tb testing.TB) {
	tb.Helper()
	j.mu.Lock()
	if j.cmd != nil {
		j.mu.Unlock()
		tb.Fatal("janustest: already running")
	}
	logf, err := os.OpenFile(filepath.Join(j.Dir, "janus.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		j.mu.Unlock()
		tb.Fatal(err)
	}
	cmd := exec.Command(Binary, "-F", j.Dir, "-C", filepath.Join(j.Dir, "janus.jcfg"), "-o")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		j.mu.Unlock()
		logf.Close()
		tb.Fatalf("start janus: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	j.cmd, j.done = cmd, done
	j.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(j.URL + "/info")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			tb.Fatalf("janus exited at start:\n%s", j.LogTail(40))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("janus API not up within 15 s:\n%s", j.LogTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends Janus with SIGKILL (a crash: no hangups, no goodbyes) and
// waits for it.
func (j *Janus) Kill(tb testing.TB) {
	tb.Helper()
	j.mu.Lock()
	cmd, done := j.cmd, j.done
	j.cmd = nil
	j.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop ends Janus with SIGTERM (SIGKILL after 5 s) and waits for it.
func (j *Janus) Stop() {
	j.mu.Lock()
	cmd, done := j.cmd, j.done
	j.cmd = nil
	j.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// LogTail returns the last n lines of Janus's log.
func (j *Janus) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(j.Dir, "janus.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Destroy ends a Janus session from outside (as a session timeout would).
func (j *Janus) Destroy(ctx context.Context, session uint64) error {
	body := fmt.Sprintf(`{"janus":"destroy","transaction":"test"%s}`, secretField(j.opts.APISecret))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/%d", j.URL, session), strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func secretField(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(`,"apisecret":%q`, s)
}
