package events_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta/metatest"
)

// TestBusEmbeddedEndToEnd opens the embedded bus the way serve does, relays
// an event, closes, reopens the same data directory and finds it again.
func TestBusEmbeddedEndToEnd(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	key := []byte("0123456789abcdef0123456789abcdef")
	bus, err := events.Open(ctx, events.BusOptions{DataDir: dataDir, StoreKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nats", "jetstream")); err != nil {
		t.Fatalf("store not under DATA/nats: %v", err)
	}
	db := metatest.SQLite(t)
	tenant := uniqueTenant(t)
	emit(t, db, tenant, events.SessionStarted, 0, 3)
	r := events.NewRelay(db, bus.JS, events.RelayOptions{EnsureStream: bus.EnsureStreamFunc(events.StreamOptions{})})
	if n, err := r.Drain(ctx); err != nil || n != 3 {
		t.Fatalf("drain = %d, %v", n, err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Ping(ctx); err == nil {
		t.Fatal("ping after close succeeded")
	}
	bus, err = events.Open(ctx, events.BusOptions{DataDir: dataDir, StoreKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	checkEvents(t, collect(t, bus.JS, events.Subject(tenant, ">"), 3), tenant, events.SessionStarted, 0)
}

func TestBusExternal(t *testing.T) {
	url := os.Getenv(NATSEnv)
	if url == "" {
		t.Skipf("%s not set", NATSEnv)
	}
	ctx := context.Background()
	bus, err := events.Open(ctx, events.BusOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if bus.Server != nil {
		t.Fatal("embedded server started although a URL was given")
	}
	if err := bus.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
