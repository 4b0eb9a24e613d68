// Package gatewaytest starts real, in-process gateways for tests: embedded
// defaults in a temporary data directory, listening on 127.0.0.1.
package gatewaytest

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway"
)

// Gateway is a started test gateway.
type Gateway struct {
	*gateway.Gateway
	// AdminToken is the first-start admin token of tenant "default".
	AdminToken string
	cancel     context.CancelFunc
	done       chan error
}

// Start starts a gateway on embedded defaults in tb.TempDir() (or
// cfg.DataDir when set by mutate) and stops it at cleanup.
func Start(tb testing.TB, mutate ...func(*config.Config)) *Gateway {
	tb.Helper()
	cfg := Config(tb)
	for _, m := range mutate {
		m(&cfg)
	}
	return StartConfig(tb, cfg)
}

// Config returns the embedded-default configuration tests start from:
// temporary data directory, loopback listener, transcription off, and
// admission by scheduling delay off (recording.max_sched_delay 0): the
// signal measures the whole test process on a machine busy with other
// packages' tests (publishers, other gateways, -race), not the load of
// the gateway under test, and a test that is not about admission must
// not be refused a session because the machine is busy. Tests of
// admission control turn it on.
func Config(tb testing.TB) config.Config {
	cfg := config.Default()
	cfg.DataDir = tb.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Transcription.Workers = 0
	cfg.Recording.MaxSchedDelay = 0
	cfg.Log.Level = "warn"
	if testing.Verbose() {
		cfg.Log.Level = "info"
	}
	return cfg
}

// StartConfig starts a gateway from cfg exactly.
func StartConfig(tb testing.TB, cfg config.Config) *Gateway {
	tb.Helper()
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	log := gateway.NewLogger(cfg.Log, os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, log, gateway.Options{Listener: ln, DBRetry: time.Second})
	if err != nil {
		cancel()
		tb.Fatalf("start gateway: %v", err)
	}
	tg := &Gateway{Gateway: g, cancel: cancel, done: make(chan error, 1)}
	if b, err := os.ReadFile(gateway.AdminTokenPath(cfg)); err == nil {
		tg.AdminToken = strings.TrimSpace(string(b))
	}
	go func() { tg.done <- g.Serve(ctx) }()
	tb.Cleanup(func() { tg.Stop(tb) })
	return tg
}

// Stop shuts the gateway down (SIGTERM-equivalent) and waits for it.
func (g *Gateway) Stop(tb testing.TB) {
	tb.Helper()
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil {
			tb.Errorf("gateway shutdown: %v", err)
		}
	case <-time.After(90 * time.Second):
		tb.Errorf("gateway did not shut down within 90 s")
	}
}
