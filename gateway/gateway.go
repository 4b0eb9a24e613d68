package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/awskms"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/s3"
	"github.com/custodian/custodian/storage/spool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
)

// Gateway is one running Custodian process (or, for the CLI, the subset of
// it that works on local state).
type Gateway struct {
	Config     config.Config
	Log        *slog.Logger
	InstanceID string

	DB    *gorm.DB
	Keys  storage.KeyWrapper
	Blob  storage.Blob
	Spool *spool.Spool
	Store *storage.Store

	NATSServer *server.Server // nil with an external NATS
	NC         *nats.Conn
	JS         jetstream.JetStream
	Relay      *events.Relay

	// Recorder is the WebRTC recorder (nil for LocalOnly gateways).
	Recorder *recorder.Recorder

	// Policies is the policy set in force (config or PUT /v1/policies).
	Policies *Policies

	Auth    *auth.Authenticator
	API     *api.Server
	Metrics *Metrics

	// AdminTokenCreated is set when this start created the first admin
	// token (written to DATA/admin.token).
	AdminTokenCreated bool

	httpServer *http.Server
	listener   net.Listener
	tls        bool

	mu      sync.Mutex
	stops   []stopFunc // run in reverse order by Close
	bg      sync.WaitGroup
	bgStop  context.CancelFunc
	bgCtx   context.Context
	closed  bool
	readyFn []namedCheck
}

type stopFunc struct {
	name string
	fn   func(ctx context.Context) error
}

type namedCheck struct {
	name string
	fn   func(ctx context.Context) error
}

// Options adjust New for tests and subcommands.
type Options struct {
	// Listener, if set, is used instead of listening on cfg.HTTP.Addr.
	Listener net.Listener
	// LocalOnly opens only what works on local state (database, keys,
	// object store): no NATS, no relay, no HTTP, no workers. For CLI
	// subcommands such as `recording get` beside a running server.
	LocalOnly bool
	// DBRetry is how long an unreachable database is retried at start
	// (default 2 minutes for serve, 0 for LocalOnly).
	DBRetry time.Duration
}

// New builds a gateway from cfg. It does not serve HTTP yet: call Serve.
// On error everything opened so far is closed.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (g *Gateway, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g = &Gateway{Config: cfg, Log: log}
	g.bgCtx, g.bgStop = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			g.Close(cctx)
			cancel()
			g = nil
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return g, fmt.Errorf("gateway: create data directory: %w", err)
	}
	if g.InstanceID, err = instanceID(cfg.DataDir); err != nil {
		return g, err
	}
	if !opts.LocalOnly {
		// One serving process per data directory: its spool, embedded
		// NATS store and crash recovery belong to exactly one owner.
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return g, err
		}
		g.OnStop("data directory lock", func(context.Context) error { return unlock() })
	}
	g.Metrics = newMetrics()

	if err := g.openDatabase(ctx, opts); err != nil {
		return g, err
	}
	if g.Policies, err = loadPolicies(ctx, g.DB, cfg); err != nil {
		return g, err
	}
	if err := g.openKeys(ctx, opts); err != nil {
		return g, err
	}
	if err := g.openStore(ctx, opts); err != nil {
		return g, err
	}
	if opts.LocalOnly {
		return g, nil
	}
	if err := g.openNATS(ctx); err != nil {
		return g, err
	}
	if err := g.firstStart(ctx); err != nil {
		return g, err
	}
	if err := g.buildAPI(ctx, opts); err != nil {
		return g, err
	}
	for _, c := range components {
		if err := c.start(ctx, g); err != nil {
			return g, fmt.Errorf("gateway: start %s: %w", c.name, err)
		}
	}
	return g, nil
}

// component is a part of the gateway started after the core (recorder,
// transcription, search, governance, console). Each lives in its own file
// and registers itself with registerComponent in init, in start order.
type component struct {
	name  string
	order int
	start func(ctx context.Context, g *Gateway) error
}

var components []component

func registerComponent(c component) {
	components = append(components, c)
	for i := len(components) - 1; i > 0 && components[i].order < components[i-1].order; i-- {
		components[i], components[i-1] = components[i-1], components[i]
	}
}

// OnStop registers fn to run at Close, before everything registered
// earlier (reverse order of registration).
func (g *Gateway) OnStop(name string, fn func(ctx context.Context) error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stops = append(g.stops, stopFunc{name, fn})
}

// AddReadyCheck adds a check to /readyz.
func (g *Gateway) AddReadyCheck(name string, fn func(ctx context.Context) error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.readyFn = append(g.readyFn, namedCheck{name, fn})
}

// Go runs fn in the background until Close; fn must return when ctx ends.
func (g *Gateway) Go(name string, fn func(ctx context.Context) error) {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		if err := fn(g.bgCtx); err != nil && g.bgCtx.Err() == nil {
			g.Log.Error("background task stopped", "task", name, "err", err)
		}
	}()
}

func (g *Gateway) openDatabase(ctx context.Context, opts Options) error {
	retry := opts.DBRetry
	if retry == 0 && !opts.LocalOnly {
		retry = 2 * time.Minute
	}
	db, err := meta.Open(ctx, meta.Options{
		DSN:          g.Config.Database.DSN,
		SQLitePath:   g.Config.Path("custodian.db"),
		MaxOpenConns: g.Config.Database.MaxOpenConns,
		Logger:       g.Log,
		RetryFor:     retry,
	})
	if err != nil {
		return err
	}
	g.DB = db
	g.OnStop("database", func(context.Context) error { return meta.Close(db) })
	g.AddReadyCheck("database", func(ctx context.Context) error { return meta.Ping(ctx, db) })
	return nil
}

func (g *Gateway) openKeys(ctx context.Context, opts Options) error {
	switch g.Config.KMS.Provider {
	case "aws":
		p, err := awskms.New(ctx, awskms.Config{
			KeyID:        g.Config.KMS.AWS.KeyID,
			TenantKeyIDs: g.Config.KMS.AWS.TenantKeyIDs,
			Region:       g.Config.KMS.AWS.Region,
			Endpoint:     g.Config.KMS.AWS.Endpoint,
		})
		if err != nil {
			return err
		}
		g.Keys = p
	default:
		path := g.Config.Path("keys", "keyring.json")
		if opts.LocalOnly {
			// CLI commands never create a keyring.
			kr, err := keyring.Open(path)
			if err != nil {
				return err
			}
			g.Keys = kr
			break
		}
		kr, created, err := keyring.OpenOrCreate(path, g.dataExists(ctx))
		if err != nil {
			return err
		}
		if created {
			g.Log.Info("created local keyring; back it up: without it no recording can be decrypted", "path", path)
		}
		g.Keys = kr
	}
	if p, ok := g.Keys.(storage.Pinger); ok {
		g.AddReadyCheck("key_provider", p.Ping)
	}
	return nil
}

// dataExists reports whether the database or the data directory holds
// encrypted state from earlier runs (a missing keyring is then an error).
func (g *Gateway) dataExists(ctx context.Context) bool {
	var n int64
	g.DB.WithContext(ctx).Model(&meta.DataKey{}).Count(&n)
	if n > 0 {
		return true
	}
	g.DB.WithContext(ctx).Model(&meta.NamedKey{}).Count(&n)
	if n > 0 {
		return true
	}
	for _, d := range []string{g.Config.Path("objects"), g.Config.Path("spool")} {
		if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 {
			return true
		}
	}
	return false
}

func (g *Gateway) openStore(ctx context.Context, opts Options) error {
	// One S3 attempt: the spool retries with its own backoff.
	if err := g.openBlob(ctx, s3.WithMaxAttempts(1)); err != nil {
		return err
	}
	// CLI commands beside a running server read the spool but never
	// touch it (no cleanup, no uploads): the server owns it.
	sp, err := spool.Open(g.Config.Path("spool"), spool.Options{Logger: g.Log, ReadOnly: opts.LocalOnly})
	if err != nil {
		return err
	}
	g.attachStore(sp)
	g.AddReadyCheck("object_store", g.Store.Ping)
	return nil
}

// openBlob opens the configured object store: S3 when a bucket is set
// (with s3opts), else the disk store under DATA/objects.
func (g *Gateway) openBlob(ctx context.Context, s3opts ...s3.Option) error {
	if b := g.Config.S3.Bucket; b != "" {
		st, err := s3.New(ctx, s3.Config{
			Bucket:         b,
			Endpoint:       g.Config.S3.Endpoint,
			Region:         g.Config.S3.Region,
			Prefix:         g.Config.S3.Prefix,
			ForcePathStyle: g.Config.S3.ForcePathStyle,
			ObjectLock:     g.Config.S3.ObjectLock,
		}, s3opts...)
		if err != nil {
			return err
		}
		g.Blob = st
		return nil
	}
	st, err := disk.New(g.Config.Path("objects"))
	if err != nil {
		return err
	}
	g.Blob = st
	return nil
}

// attachStore builds the encrypted store over g.Blob and the spool sp,
// with metrics, and closes it when the gateway stops.
func (g *Gateway) attachStore(sp *spool.Spool) {
	g.Spool = sp
	g.Store = storage.New(g.DB, g.Blob, g.Keys, sp, storage.Options{
		Provider: g.Config.KMS.Provider,
		Logger:   g.Log,
		Observer: g.Metrics.observeStorage,
	})
	g.Metrics.registerStore(g.Store)
	g.OnStop("object store", func(ctx context.Context) error { return g.Store.Close(ctx) })
}

func (g *Gateway) openNATS(ctx context.Context) error {
	if g.Config.NATS.URL == "" {
		key, err := g.Store.NamedKey(ctx, systemTenant, "nats-store")
		if err != nil {
			return fmt.Errorf("gateway: nats store key: %w", err)
		}
		srv, err := events.StartEmbedded(ctx, events.EmbeddedOptions{
			StoreDir:   g.Config.Path("nats"),
			ListenAddr: g.Config.NATS.ListenAddr,
			StoreKey:   key,
			Log:        g.Log.With("component", "nats"),
		})
		clear(key)
		if err != nil {
			return err
		}
		g.NATSServer = srv
		g.OnStop("nats server", func(context.Context) error {
			srv.Shutdown()
			srv.WaitForShutdown()
			return nil
		})
		nc, err := events.ConnectEmbedded(srv, g.Log)
		if err != nil {
			return err
		}
		g.NC = nc
	} else {
		nc, err := events.Connect(ctx, g.Config.NATS.URL, g.Config.NATS.CredsFile, g.Log)
		if err != nil {
			return err
		}
		g.NC = nc
	}
	nc := g.NC
	g.OnStop("nats connection", func(context.Context) error { nc.Close(); return nil })
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("gateway: jetstream: %w", err)
	}
	g.JS = js
	streamOpts := events.StreamOptions{Replicas: g.Config.NATS.Replicas}
	if _, err := events.EnsureStream(ctx, js, streamOpts); err != nil {
		return err
	}
	g.AddReadyCheck("nats", func(ctx context.Context) error {
		if !nc.IsConnected() {
			return errors.New("not connected")
		}
		_, err := js.AccountInfo(ctx)
		return err
	})
	g.Relay = events.NewRelay(g.DB, js, events.RelayOptions{
		Owner: g.InstanceID,
		Log:   g.Log.With("component", "relay"),
		EnsureStream: func(ctx context.Context) error {
			_, err := events.EnsureStream(ctx, js, streamOpts)
			return err
		},
	})
	g.Metrics.registerRelay(g.Relay)
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Relay.Run(relayCtx); err != nil {
			g.Log.Error("event relay stopped", "err", err)
		}
	}()
	g.OnStop("event relay", func(ctx context.Context) error {
		// Publish what the shutdown itself emitted, then stop.
		_, err := g.Relay.Drain(ctx)
		stopRelay()
		<-done
		return err
	})
	return nil
}

// systemTenant owns process-wide keys (NATS store, audit signing).
const systemTenant = "_system"

// DefaultTenant is created on first start.
const DefaultTenant = "default"

// firstStart creates tenant default and an admin token on an empty
// database, writing the token to DATA/admin.token (0600) and logging only
// the path.
func (g *Gateway) firstStart(ctx context.Context) error {
	var n int64
	if err := g.DB.WithContext(ctx).Model(&meta.Tenant{}).Count(&n).Error; err != nil {
		return fmt.Errorf("gateway: first start: %w", err)
	}
	if n > 0 {
		return nil
	}
	path := g.Config.Path("admin.token")
	plaintext, _, err := auth.CreateToken(ctx, g.DB, auth.Spec{
		Tenant: DefaultTenant, Role: auth.RoleAdmin, Name: "first-start admin", CreatedBy: "serve",
	})
	if err != nil {
		return fmt.Errorf("gateway: first start: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(plaintext+"\n"), 0o600); err != nil {
		return fmt.Errorf("gateway: write admin token: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("gateway: write admin token: %w", err)
	}
	g.AdminTokenCreated = true
	g.Log.Info("first start: created tenant and admin token", "tenant", DefaultTenant, "token_file", path)
	return nil
}

func (g *Gateway) buildAPI(ctx context.Context, opts Options) error {
	var aopts []auth.Option
	aopts = append(aopts, auth.WithLogger(g.Log))
	if g.Config.OIDC.Issuer != "" {
		o, err := auth.NewOIDC(g.Config.OIDC, auth.WithOIDCLogger(g.Log))
		if err != nil {
			return err
		}
		if err := o.Discover(ctx); err != nil {
			g.Log.Warn("oidc issuer not reachable yet; will retry on first use", "issuer", g.Config.OIDC.Issuer, "err", err)
		}
		aopts = append(aopts, auth.WithOIDC(o))
	}
	g.Auth = auth.NewAuthenticator(g.DB, aopts...)
	g.API = api.NewServer(api.Options{
		Authenticator: g.Auth,
		Logger:        g.Log,
		MaxBodyBytes:  g.Config.HTTP.MaxBodyBytes,
		CORSOrigins:   g.Config.HTTP.CORSOrigins,
		TrustProxy:    g.Config.HTTP.TrustProxy,
		OnRequest:     g.Metrics.observeRequest,
	})
	g.registerHealth()
	if opts.Listener != nil {
		g.listener = opts.Listener
	} else {
		ln, err := net.Listen("tcp", g.Config.HTTP.Addr)
		if err != nil {
			return fmt.Errorf("gateway: listen %s: %w", g.Config.HTTP.Addr, err)
		}
		g.listener = ln
	}
	g.httpServer = &http.Server{
		Handler:           g.API,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(g.Log.Handler(), slog.LevelWarn),
	}
	if g.Config.HTTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(g.Config.HTTP.TLSCert, g.Config.HTTP.TLSKey)
		if err != nil {
			return fmt.Errorf("gateway: load TLS certificate: %w", err)
		}
		g.httpServer.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		g.tls = true
	}
	return nil
}

// URL returns the base URL the gateway serves on.
func (g *Gateway) URL() string {
	if g.listener == nil {
		return ""
	}
	scheme := "http"
	if g.tls {
		scheme = "https"
	}
	return scheme + "://" + g.listener.Addr().String()
}

// Serve serves HTTP until ctx ends, then closes the gateway.
func (g *Gateway) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if g.tls {
			err = g.httpServer.ServeTLS(g.listener, "", "")
		} else {
			err = g.httpServer.Serve(g.listener)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	g.Log.Info("custodian serving", "url", g.URL(), "data", g.Config.DataDir, "instance", g.InstanceID)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	return errors.Join(serveErr, g.Close(cctx))
}

// Close shuts everything down in reverse order of start: HTTP first (no
// new sessions), then components (recordings finalized), then the object
// store (spool flushed), the relay (events drained), NATS and the database.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	stops := g.stops
	g.mu.Unlock()
	var errs []error
	if g.httpServer != nil {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := g.httpServer.Shutdown(hctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
		cancel()
	} else if g.listener != nil {
		g.listener.Close()
	}
	for i := len(stops) - 1; i >= 0; i-- {
		s := stops[i]
		if s.name == "database" {
			// background tasks may still use the database until here
			g.bgStop()
			g.bg.Wait()
		}
		if err := s.fn(ctx); err != nil {
			g.Log.Warn("shutdown step failed", "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	g.bgStop()
	g.bg.Wait()
	return errors.Join(errs...)
}

func (g *Gateway) registerHealth() {
	g.API.Handle(api.Route{Method: "GET", Pattern: "/healthz", Summary: "liveness",
		Handler: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
			api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}})
	g.API.Handle(api.Route{Method: "GET", Pattern: "/readyz", Summary: "readiness: database, NATS and key provider answer",
		Handler: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			checks, ok := g.Ready(ctx)
			status := http.StatusOK
			if !ok {
				status = http.StatusServiceUnavailable
			}
			api.WriteJSON(w, status, map[string]any{"ready": ok, "checks": checks})
		}})
	g.API.Handle(api.Route{Method: "GET", Pattern: "/metrics", Summary: "Prometheus metrics",
		Handler: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
			g.Metrics.handler().ServeHTTP(w, r)
		}})
}

// Ready runs every readiness check; the map holds "ok" or the error text.
func (g *Gateway) Ready(ctx context.Context) (map[string]string, bool) {
	g.mu.Lock()
	checks := append([]namedCheck(nil), g.readyFn...)
	g.mu.Unlock()
	out := make(map[string]string, len(checks))
	ok := true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			if err := c.fn(ctx); err != nil {
				res = oneLine(err.Error())
			}
			mu.Lock()
			out[c.name] = res
			if res != "ok" {
				ok = false
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, ok
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Run starts a gateway from cfg and serves until ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	g, err := New(ctx, cfg, log, Options{})
	if err != nil {
		return err
	}
	return g.Serve(ctx)
}

// AdminTokenPath is where the first start writes the admin token.
func AdminTokenPath(cfg config.Config) string { return filepath.Join(cfg.DataDir, "admin.token") }

// SigningKey returns the gateway's Ed25519 key for audit checkpoints and
// export manifests: derived from a named data key of the system tenant,
// wrapped by the key provider (so it lives under the keyring or KMS like
// every other key). keyID names it in signatures.
func (g *Gateway) SigningKey(ctx context.Context) (ed25519.PrivateKey, string, error) {
	seed, err := g.Store.NamedKey(ctx, systemTenant, "audit-signing")
	if err != nil {
		return nil, "", fmt.Errorf("gateway: signing key: %w", err)
	}
	defer clear(seed)
	key := ed25519.NewKeyFromSeed(seed)
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	return key, "ed25519:" + hex.EncodeToString(sum[:8]), nil
}
