package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BusOptions configure Open, usually from config.NATS.
type BusOptions struct {
	// URL of an external NATS server or cluster (config nats.url); empty
	// starts the embedded server.
	URL       string
	CredsFile string // config nats.creds_file
	// DataDir is the gateway's data directory; the embedded store is
	// DataDir/nats.
	DataDir string
	// ListenAddr lets the embedded server also listen on TCP (config
	// nats.listen_addr).
	ListenAddr string
	// StoreKey encrypts the embedded store at rest (see EmbeddedOptions).
	StoreKey []byte
	// Stream configures CUSTODIAN_EVENTS (Replicas from config nats.replicas).
	Stream StreamOptions
	Log    *slog.Logger
}

// Bus is the gateway's NATS: the embedded server when there is one, the
// client connection and its JetStream handle.
type Bus struct {
	Server *server.Server // nil with an external server
	Conn   *nats.Conn
	JS     jetstream.JetStream
}

// Open starts the embedded server or connects to the external one
// (retrying while it is unreachable, until ctx ends) and ensures the
// stream CUSTODIAN_EVENTS.
func Open(ctx context.Context, o BusOptions) (*Bus, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{}
	var err error
	if o.URL == "" {
		if o.DataDir == "" {
			return nil, errors.New("events: open: no data directory for the embedded server")
		}
		b.Server, err = StartEmbedded(ctx, EmbeddedOptions{StoreDir: filepath.Join(o.DataDir, "nats"),
			ListenAddr: o.ListenAddr, StoreKey: o.StoreKey, Log: log})
		if err != nil {
			return nil, err
		}
		b.Conn, err = ConnectEmbedded(b.Server, log)
	} else {
		b.Conn, err = Connect(ctx, o.URL, o.CredsFile, log)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	if b.JS, err = jetstream.New(b.Conn); err != nil {
		b.Close()
		return nil, fmt.Errorf("events: open: %w", err)
	}
	if _, err := EnsureStream(ctx, b.JS, o.Stream); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Ping reports whether NATS answers: the connection is up and JetStream
// responds (readiness).
func (b *Bus) Ping(ctx context.Context) error {
	if b.Conn == nil || !b.Conn.IsConnected() {
		return errors.New("events: ping: nats not connected")
	}
	if _, err := b.JS.AccountInfo(ctx); err != nil {
		return fmt.Errorf("events: ping: jetstream: %w", err)
	}
	return nil
}

// EnsureStreamFunc returns a function for RelayOptions.EnsureStream.
func (b *Bus) EnsureStreamFunc(o StreamOptions) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := EnsureStream(ctx, b.JS, o)
		return err
	}
}

// Close drains the connection (pending publishes are flushed) and shuts
// the embedded server down, waiting for it to finish.
func (b *Bus) Close() error {
	var err error
	if b.Conn != nil {
		err = b.Conn.Drain()
		if errors.Is(err, nats.ErrConnectionClosed) {
			err = nil
		}
		b.Conn.Close()
	}
	if b.Server != nil {
		b.Server.Shutdown()
		b.Server.WaitForShutdown()
	}
	if err != nil {
		return fmt.Errorf("events: close: %w", err)
	}
	return nil
}
