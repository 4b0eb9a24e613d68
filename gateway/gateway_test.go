package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage/meta"
)

func get(tb testing.TB, url, token string) (int, []byte, http.Header) {
	tb.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func mode(tb testing.TB, path string) os.FileMode {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestServeOnEmbeddedDefaults(t *testing.T) {
	g := gatewaytest.Start(t)
	cfg := g.Config

	// first start: tenant default and an admin token in DATA/admin.token (0600)
	if g.AdminToken == "" || !strings.HasPrefix(g.AdminToken, auth.TokenPrefix) {
		t.Fatalf("admin token not written: %q", g.AdminToken)
	}
	if m := mode(t, gateway.AdminTokenPath(cfg)); m != 0o600 {
		t.Errorf("admin.token mode %o, want 600", m)
	}
	if m := mode(t, filepath.Join(cfg.DataDir, "keys", "keyring.json")); m != 0o600 {
		t.Errorf("keyring mode %o, want 600", m)
	}
	p, err := g.Auth.Authenticate(context.Background(), g.AdminToken)
	if err != nil || p.Role != auth.RoleAdmin || p.Tenant != gateway.DefaultTenant {
		t.Fatalf("admin token: %+v %v", p, err)
	}
	for _, d := range []string{"objects", "spool", "nats"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, d)); err != nil {
			t.Errorf("DATA/%s: %v", d, err)
		}
	}

	code, body, _ := get(t, g.URL()+"/healthz", "")
	if code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	code, body, _ = get(t, g.URL()+"/readyz", "")
	var ready struct {
		Ready  bool
		Checks map[string]string
	}
	json.Unmarshal(body, &ready)
	if code != 200 || !ready.Ready {
		t.Errorf("/readyz = %d %s", code, body)
	}
	for _, c := range []string{"database", "nats", "key_provider", "object_store"} {
		if ready.Checks[c] != "ok" {
			t.Errorf("readiness check %s = %q", c, ready.Checks[c])
		}
	}
	code, body, _ = get(t, g.URL()+"/metrics", "")
	for _, m := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "custodian_upload_backlog_objects", "custodian_events_pending", "custodian_http_request_duration_seconds"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if code != 200 {
		t.Errorf("/metrics = %d", code)
	}
	// unknown routes are problem+json
	code, _, h := get(t, g.URL()+"/v1/nothing-here", g.AdminToken)
	if code != 404 || h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown route = %d %s", code, h.Get("Content-Type"))
	}
}

func TestRestartKeepsStateAndToken(t *testing.T) {
	cfg := gatewaytest.Config(t)
	g := gatewaytest.StartConfig(t, cfg)
	token := g.AdminToken
	g.Stop(t)

	g2 := gatewaytest.StartConfig(t, cfg)
	if g2.AdminTokenCreated {
		t.Fatal("second start created another admin token")
	}
	if _, err := g2.Auth.Authenticate(context.Background(), token); err != nil {
		t.Fatalf("token from first start rejected: %v", err)
	}
	var n int64
	g2.DB.Model(&meta.Token{}).Count(&n)
	if n != 1 {
		t.Fatalf("%d tokens after restart, want 1", n)
	}
}

func TestMissingKeyringWithExistingDataRefusesToStart(t *testing.T) {
	cfg := gatewaytest.Config(t)
	g := gatewaytest.StartConfig(t, cfg)
	// create encrypted state
	if _, err := g.Store.NamedKey(context.Background(), "default", "test"); err != nil {
		t.Fatal(err)
	}
	g.Stop(t)
	kr := filepath.Join(cfg.DataDir, "keys", "keyring.json")
	if err := os.Rename(kr, kr+".moved"); err != nil {
		t.Fatal(err)
	}
	_, err := gateway.New(context.Background(), cfg, nil, gateway.Options{DBRetry: time.Second})
	if err == nil || !strings.Contains(err.Error(), "keyring") {
		t.Fatalf("start without keyring over existing data: err = %v", err)
	}
	if _, err := os.Stat(kr); err == nil {
		t.Fatal("a new keyring was created over existing data")
	}
}

func TestUnreachableDatabaseRetriesThenFailsClearly(t *testing.T) {
	cfg := gatewaytest.Config(t)
	cfg.Database.DSN = "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
	start := time.Now()
	_, err := gateway.New(context.Background(), cfg, nil, gateway.Options{DBRetry: 1500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("gave up after %v without retrying", time.Since(start))
	}
}

var _ = config.Default

func TestOneServerPerDataDirectory(t *testing.T) {
	cfg := gatewaytest.Config(t)
	gatewaytest.StartConfig(t, cfg)
	_, err := gateway.New(context.Background(), cfg, nil, gateway.Options{DBRetry: time.Second})
	if err == nil || !strings.Contains(err.Error(), "in use by another custodian serve") {
		t.Fatalf("second gateway on one data directory: err = %v", err)
	}
	// a CLI command beside the running server works and touches nothing
	g, err := gateway.New(context.Background(), cfg, nil, gateway.Options{LocalOnly: true})
	if err != nil {
		t.Fatalf("local-only beside a running server: %v", err)
	}
	g.Close(context.Background())
}
