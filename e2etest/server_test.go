package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custodian/custodian/internal/netns"
	"github.com/custodian/custodian/internal/testpoll"
)

func TestMain(m *testing.M) {
	code := netns.RunLoopbackOnly(m)
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/custodian once per test run and returns its path.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "custodian-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "custodian")
		start := time.Now()
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/custodian/custodian/cmd/custodian").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		tb.Logf("built %s in %v", binPath, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
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

// server is a `custodian serve` subprocess on a data directory.
type server struct {
	tb       testing.TB
	data     string
	addr     string
	natsAddr string
	env      []string
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	waitErr  error
}

// newServer prepares a gateway on a fresh data directory with loopback
// ICE, a NATS listener for the test, and the given extra environment.
func newServer(tb testing.TB, env ...string) *server {
	tb.Helper()
	s := &server{
		tb:       tb,
		data:     tb.TempDir(),
		addr:     "127.0.0.1:" + strconv.Itoa(freePort(tb)),
		natsAddr: "127.0.0.1:" + strconv.Itoa(freePort(tb)),
	}
	// Only real config keys: the gateway refuses unknown CUSTODIAN_
	// variables (such as the netns marker of this test binary).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUSTODIAN_") {
			s.env = append(s.env, kv)
		}
	}
	s.env = append(s.env,
		"CUSTODIAN_WEBRTC_INCLUDE_LOOPBACK=true",
		"CUSTODIAN_WEBRTC_IPS=127.0.0.1",
		"CUSTODIAN_NATS_LISTEN_ADDR="+s.natsAddr,
		"CUSTODIAN_TRANSCRIPTION_WORKERS=0",
		"CUSTODIAN_LOG_LEVEL=info",
		// Admission by scheduling delay off, as in gatewaytest: Chromium
		// and the test's publishers share the cores, and these tests are
		// not about shedding load.
		"CUSTODIAN_RECORDING_MAX_SCHED_DELAY=0",
	)
	s.env = append(s.env, env...)
	return s
}

func (s *server) url() string { return "http://" + s.addr }

// start runs `custodian serve` and waits until /healthz answers.
func (s *server) start() {
	tb := s.tb
	tb.Helper()
	s.logPath = filepath.Join(s.data, fmt.Sprintf("serve-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(s.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	s.cmd = exec.Command(binary(tb), "serve", "--data", s.data, "--http", s.addr)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	tb.Cleanup(func() { s.kill() })
	start := time.Now()
	checkFor(tb, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-s.exited:
			tb.Fatalf("custodian serve exited: %v\n%s", s.waitErr, s.logTail())
		default:
		}
		resp, err := http.Get(s.url() + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	tb.Logf("custodian serve up in %v (pid %d)", time.Since(start).Round(time.Millisecond), s.cmd.Process.Pid)
}

// signal sends sig and waits (bounded) for the process to exit.
func (s *server) signal(sig syscall.Signal, timeout time.Duration) error {
	s.tb.Helper()
	if err := syscall.Kill(s.cmd.Process.Pid, sig); err != nil {
		s.tb.Fatal(err)
	}
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(timeout):
		s.tb.Fatalf("custodian serve did not exit within %v of %v\n%s", timeout, sig, s.logTail())
	}
	return nil
}

func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

func (s *server) adminToken() string {
	s.tb.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		s.tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// api sends a JSON request to the server and decodes the answer.
func (s *server) api(tok, method, path string, body, out any) int {
	s.tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, s.url()+path, rd)
	if err != nil {
		s.tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			s.tb.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// cli runs a custodian subcommand on the server's data directory.
func (s *server) cli(args ...string) (string, error) {
	s.tb.Helper()
	cmd := exec.Command(binary(s.tb), args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
