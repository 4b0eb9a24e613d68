package events

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configure StartEmbedded.
type EmbeddedOptions struct {
	// StoreDir is the JetStream store directory (DATA/nats). Required.
	StoreDir string
	// ListenAddr, when set, also serves NATS clients on TCP at this
	// address ("host:port"; an empty host means 127.0.0.1, port 0 picks a
	// free one). Empty: in-process connections only, no listener at all.
	ListenAddr string
	// StoreKey, when set, encrypts the JetStream store at rest (AES-GCM,
	// per-stream keys derived from it by nats-server), so DATA/nats holds
	// no message, subject or stream metadata in clear. The same key must
	// be given on every start; it is never logged.
	StoreKey []byte
	// SyncAlways makes JetStream fsync every message before acknowledging
	// it. Off by default (nats-server syncs periodically): acknowledged
	// events survive a process crash either way, a power loss only with it.
	SyncAlways bool
	// ServerName names the server (default "custodian-embedded").
	ServerName string
	// Log receives the server's warnings and errors (and its notices at
	// debug level). Default: discarded.
	Log *slog.Logger
	// ReadyTimeout bounds the wait for the server to start (default 30 s).
	ReadyTimeout time.Duration
}

// StartEmbedded starts an in-process nats-server with JetStream storing in
// o.StoreDir and waits until it accepts connections. Stop it with
// Shutdown then WaitForShutdown. Connect to it with ConnectEmbedded (no
// network) or, when o.ListenAddr is set, at its ClientURL.
func StartEmbedded(ctx context.Context, o EmbeddedOptions) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("events: start embedded nats: no store directory")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &server.Options{
		ServerName:            o.ServerName,
		JetStream:             true,
		StoreDir:              o.StoreDir,
		DontListen:            true,
		NoSigs:                true,
		SyncAlways:            o.SyncAlways,
		MaxPayload:            server.MAX_PAYLOAD_SIZE,
		DisableShortFirstPing: true,
	}
	if opts.ServerName == "" {
		opts.ServerName = "custodian-embedded"
	}
	if o.ListenAddr != "" {
		host, port, err := splitListenAddr(o.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("events: start embedded nats: listen address %q: %w", o.ListenAddr, err)
		}
		opts.DontListen = false
		opts.Host = host
		opts.Port = port
	}
	if len(o.StoreKey) > 0 {
		opts.JetStreamKey = base64.RawStdEncoding.EncodeToString(o.StoreKey)
		opts.JetStreamCipher = server.AES
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: start embedded nats: %w", err)
	}
	sl := &serverLogger{log: log.With("component", "nats-server")}
	s.SetLoggerV2(sl, false, false, false)
	go s.Start()

	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for !s.ReadyForConnections(50*time.Millisecond) || !s.JetStreamEnabled() {
		if msg := sl.fatal(); msg != "" {
			s.Shutdown()
			return nil, fmt.Errorf("events: start embedded nats: %s", msg)
		}
		if err := ctx.Err(); err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("events: start embedded nats: %w", err)
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, fmt.Errorf("events: start embedded nats: not ready after %v", timeout)
		}
	}
	log.Info("embedded nats started", "store_dir", o.StoreDir, "listen", listenDesc(s, opts),
		"encrypted", len(o.StoreKey) > 0)
	return s, nil
}

func listenDesc(s *server.Server, opts *server.Options) string {
	if opts.DontListen {
		return "in-process only"
	}
	return s.ClientURL()
}

// splitListenAddr maps "host:port" to nats-server's Host and Port: an
// empty host is loopback, port 0 a random free port.
func splitListenAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// ConnectEmbedded opens a client connection to an embedded server through
// memory (no socket). It reconnects for as long as the server lives.
func ConnectEmbedded(s *server.Server, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	all := append(clientOptions(log), nats.InProcessServer(s))
	nc, err := nats.Connect("", append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("events: connect embedded nats: %w", err)
	}
	return nc, nil
}

// Connect connects to an external NATS server or cluster (url may list
// several servers separated by commas) with the credentials file
// credsFile, if any. While no server is reachable it retries with capped
// exponential backoff, logging one line per attempt, until ctx ends. Once
// connected, the connection reconnects forever. opts are applied last.
func Connect(ctx context.Context, url, credsFile string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	all := clientOptions(log)
	if credsFile != "" {
		all = append(all, nats.UserCredentials(credsFile))
	}
	all = append(all, opts...)
	shown := redactURLs(url)
	backoff := 250 * time.Millisecond
	const maxBackoff = 15 * time.Second
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(url, all...)
		if err == nil {
			log.Info("nats connected", "url", shown, "server", nc.ConnectedUrlRedacted(), "attempts", attempt)
			return nc, nil
		}
		log.Warn("nats unreachable, retrying", "url", shown, "attempt", attempt,
			"retry_in", backoff.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("events: connect nats %s: %w", shown, errors.Join(err, ctx.Err()))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// clientOptions are the options every Custodian NATS connection uses:
// reconnect forever, log connection changes, and fail publishes at once
// while disconnected (no reconnect buffer) so the relay's backoff, not a
// hidden buffer, decides what is retried.
func clientOptions(log *slog.Logger) []nats.Option {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return []nats.Option{
		nats.Name("custodian"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			} else {
				log.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("nats connection closed", "err", err)
			}
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			log.Warn("nats async error", "err", err)
		}),
	}
}

// redactURLs hides passwords and tokens in a comma-separated server list.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = url.User("redacted")
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// serverLogger adapts nats-server's logger to slog. Notices are logged at
// debug level (the server is chatty at start); a fatal message is kept so
// StartEmbedded can report why the server did not start.
type serverLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalMsg string
}

var _ server.Logger = (*serverLogger)(nil)

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(string, ...any)           {}
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	l.fatalMsg = msg
	l.mu.Unlock()
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}
