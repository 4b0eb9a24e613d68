// Package s3test starts a real S3-compatible server process, versitygw
// (github.com/versity/versitygw) with its posix back end, for tests of
// storage/s3 and of everything built on it (the spool's outage test uses
// Stop and Restart).
//
// The server listens on a free 127.0.0.1 port, stores buckets under a
// t.TempDir(), keeps object versions in a second directory (so buckets with
// Object Lock are versioned, as on AWS) and is stopped at cleanup. Start
// creates two buckets: Bucket (plain) and LockedBucket (Object Lock enabled
// at creation).
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/custodian/custodian/storage/s3"
)

// Buckets that Start creates.
const (
	Bucket       = "custodian"
	LockedBucket = "custodian-locked"
	Region       = "us-east-1"
)

// Version is the versitygw release `make test` installs.
const Version = "v1.8.0"

// Server is one versitygw process. Its methods are safe for concurrent use.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string

	bin     string
	addr    string
	rootDir string
	verDir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
	out  *syncBuffer
}

// Binary returns the path of the versitygw binary: $CUSTODIAN_VERSITYGW,
// then PATH, then $GOBIN, $GOPATH/bin and ~/go/bin.
func Binary() (string, error) {
	if p := os.Getenv("CUSTODIAN_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw not found in $CUSTODIAN_VERSITYGW, PATH or %s: "+
		"run `make test`, which installs it with `go install github.com/versity/versitygw/cmd/versitygw@%s`",
		strings.Join(dirs, ", "), Version)
}

// Start runs versitygw and creates Bucket and LockedBucket. It fails the
// test (never skips) when the binary is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	base := t.TempDir()
	s := &Server{
		AccessKey: "custodian-" + randHex(6),
		SecretKey: randHex(20),
		bin:       bin,
		addr:      freeAddr(t),
		rootDir:   filepath.Join(base, "root"),
		verDir:    filepath.Join(base, "versions"),
	}
	s.Endpoint = "http://" + s.addr
	for _, d := range []string{s.rootDir, s.verDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("s3test: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("s3test: stop versitygw: %v", err)
		}
		if t.Failed() {
			t.Logf("s3test: versitygw output:\n%s", s.output())
		}
	})
	if err := s.start(); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s.CreateBucket(t, Bucket, false)
	s.CreateBucket(t, LockedBucket, true)
	return s
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("versitygw already running")
	}
	cmd := exec.Command(s.bin,
		"--port", s.addr,
		"--region", Region,
		"--quiet",
		"posix",
		"--versioning-dir", s.verDir,
		s.rootDir,
	)
	env := []string{"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey}
	for _, kv := range os.Environ() {
		// Keep the caller's VGW_* and ROOT_* settings from changing the
		// server under test.
		if !strings.HasPrefix(kv, "VGW_") && !strings.HasPrefix(kv, "ROOT_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if s.out == nil {
		s.out = &syncBuffer{}
	}
	cmd.Stdout, cmd.Stderr = s.out, s.out
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // exit status is reported via output on failure
	s.cmd, s.done = cmd, done

	// Wait until it answers HTTP (any status: an unsigned request gets 403).
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			return fmt.Errorf("versitygw exited during start-up:\n%s", s.out.String())
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			s.cmd, s.done = nil, nil
			return fmt.Errorf("versitygw did not answer on %s within 20s: %v\n%s", s.addr, err, s.out.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	_ = cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-done
	return nil
}

// Stop ends the server process (an outage). Objects stay on disk.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(); err != nil {
		t.Fatalf("s3test: stop: %v", err)
	}
}

// Restart starts the server again on the same address and directories and
// waits until it answers.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("s3test: restart: %v", err)
	}
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Config returns an s3.Config for bucket on this server.
func (s *Server) Config(bucket string) s3.Config {
	return s3.Config{Bucket: bucket, Endpoint: s.Endpoint, Region: Region, ForcePathStyle: true}
}

// Options returns the s3.New options this server needs: its root
// credentials (the gateway itself takes them from the environment).
func (s *Server) Options() []s3.Option {
	return []s3.Option{s3.WithCredentials(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""))}
}

// NewStore returns a Store for cfg (usually Config(...) with changes).
func (s *Server) NewStore(t testing.TB, cfg s3.Config, opts ...s3.Option) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), cfg, append(s.Options(), opts...)...)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return st
}

var prefixSeq atomic.Int64

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Blob returns a Store on Bucket under a prefix unique to this call, so
// tests sharing one server do not see each other's objects.
func (s *Server) Blob(t testing.TB) *s3.Store {
	t.Helper()
	cfg := s.Config(Bucket)
	cfg.Prefix = fmt.Sprintf("%s-%d", unsafeChars.ReplaceAllString(t.Name(), "_"), prefixSeq.Add(1))
	return s.NewStore(t, cfg)
}

// CreateBucket creates a bucket, with Object Lock enabled at creation when
// objectLock is set (versitygw then enables versioning on it).
func (s *Server) CreateBucket(t testing.TB, name string, objectLock bool) {
	t.Helper()
	st := s.NewStore(t, s.Config(name))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := &awss3.CreateBucketInput{Bucket: aws.String(name)}
	if objectLock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := st.Client().CreateBucket(ctx, in); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
}

func (s *Server) output() string {
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("s3test: free port: %v", err)
	}
	return addr
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// syncBuffer collects the process output (it is written from the
// exec package's copying goroutine).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
