package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
)

// NATSEnv names the variable holding the URL of the machine's NATS server.
const NATSEnv = "CUSTODIAN_TEST_NATS_URL"

// TestRelayAcrossEmbeddedNATSOutage stops the embedded server, causes 100
// state changes, restarts it on the same port and store directory, and
// expects exactly those 100 events, once each, in order.
func TestRelayAcrossEmbeddedNATSOutage(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		dir := t.TempDir()
		s := startEmbedded(t, dir, "127.0.0.1:0", nil)
		p := port(t, s)
		_, js := connect(t, s.ClientURL())
		if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		tenant := uniqueTenant(t)
		r := startRelay(t, db, js, events.RelayOptions{})

		emit(t, db, tenant, events.SessionStarted, 0, 1) // warm-up while up
		waitDrained(t, r, 10*time.Second)

		stopServer(s)
		emit(t, db, tenant, events.RecordingStarted, 1, 100)
		checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if st := r.Stats(); st.Failures < 2 || !st.Down {
				return fmt.Errorf("relay has not failed to publish yet: %+v", st)
			}
			return nil
		})
		if n, err := r.Pending(ctx); err != nil || n != 100 {
			t.Fatalf("pending while NATS is down = %d, %v; want 100", n, err)
		}

		s2 := startEmbedded(t, dir, fmt.Sprintf("127.0.0.1:%d", p), nil)
		_ = s2
		waitDrained(t, r, 30*time.Second)

		got := collect(t, js, events.Subject(tenant, ">"), 101)
		checkEvents(t, got[:1], tenant, events.SessionStarted, 0)
		checkEvents(t, got[1:], tenant, events.RecordingStarted, 1)
		var rows []meta.OutboxEvent
		if err := db.Where("tenant_id = ?", tenant).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			if row.SentAt == nil || row.LeaseOwner != "" {
				t.Fatalf("row %s after delivery: sent_at %v lease_owner %q", row.ID, row.SentAt, row.LeaseOwner)
			}
		}
	})
}

// TestRelayAcrossExternalNATSOutage does the same against the machine's
// NATS server, made unreachable by cutting a loopback proxy in between.
func TestRelayAcrossExternalNATSOutage(t *testing.T) {
	url := os.Getenv(NATSEnv)
	if url == "" {
		t.Skipf("%s not set", NATSEnv)
	}
	target := hostPort(t, url)
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		px := newProxy(t, target)
		_, js := connect(t, "nats://"+px.addr)
		if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		tenant := uniqueTenant(t)
		t.Cleanup(func() { purge(t, url, tenant) })
		r := startRelay(t, db, js, events.RelayOptions{})

		emit(t, db, tenant, events.SessionStarted, 0, 1)
		waitDrained(t, r, 10*time.Second)

		px.cut()
		emit(t, db, tenant, events.RecordingStarted, 1, 100)
		checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if st := r.Stats(); st.Failures < 2 || !st.Down {
				return fmt.Errorf("relay has not failed to publish yet: %+v", st)
			}
			return nil
		})
		if n, err := r.Pending(ctx); err != nil || n != 100 {
			t.Fatalf("pending while NATS is unreachable = %d, %v; want 100", n, err)
		}
		px.restore(t)
		waitDrained(t, r, 30*time.Second)

		got := collect(t, js, events.Subject(tenant, ">"), 101)
		checkEvents(t, got[:1], tenant, events.SessionStarted, 0)
		checkEvents(t, got[1:], tenant, events.RecordingStarted, 1)
	})
}

func hostPort(tb testing.TB, url string) string {
	tb.Helper()
	for _, p := range []string{"nats://", "tls://"} {
		if len(url) > len(p) && url[:len(p)] == p {
			return url[len(p):]
		}
	}
	return url
}

// purge removes this run's events from the shared server's stream.
func purge(tb testing.TB, url, tenant string) {
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Logf("purge: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		tb.Logf("purge: %v", err)
		return
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(events.Subject(tenant, ">"))); err != nil {
		tb.Logf("purge: %v", err)
	}
}

// TestRolledBackTransactionEmitsNothing: an event emitted in a
// transaction that rolls back is never published.
func TestRolledBackTransactionEmitsNothing(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := startEmbedded(t, t.TempDir(), "", nil)
		nc, err := events.ConnectEmbedded(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		tenant := uniqueTenant(t)
		r := startRelay(t, db, js, events.RelayOptions{})

		errRollback := errors.New("rollback")
		err = db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&meta.Session{TenantID: tenant, ID: "doomed", StartedAt: time.Now()}).Error; err != nil {
				return err
			}
			if err := events.Emit(tx, events.Event{Tenant: tenant, Kind: events.SessionStarted, Subject: "doomed",
				Data: map[string]any{"session_id": "doomed", "index": -1}}); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("transaction: %v", err)
		}
		emit(t, db, tenant, events.SessionStarted, 0, 1) // a committed one after it
		waitDrained(t, r, 10*time.Second)
		got := collect(t, js, events.Subject(tenant, ">"), 1)
		checkEvents(t, got, tenant, events.SessionStarted, 0)
		var n int64
		db.Model(&meta.OutboxEvent{}).Where("tenant_id = ?", tenant).Count(&n)
		if n != 1 {
			t.Fatalf("%d outbox rows, want 1", n)
		}
	})
}

// countingPublisher publishes through JetStream and records every
// publish, so a row published twice is caught even though JetStream's
// deduplication would hide it from consumers.
type countingPublisher struct {
	js jetstream.JetStream

	mu     sync.Mutex
	counts map[string]int
	dups   int
}

func (c *countingPublisher) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := c.js.PublishMsg(ctx, msg, opts...)
	if err == nil {
		c.mu.Lock()
		c.counts[msg.Header.Get(jetstream.MsgIDHeader)]++
		if ack.Duplicate {
			c.dups++
		}
		c.mu.Unlock()
	}
	return ack, err
}

// TestTwoRelaysDeliverEachEventOnce runs two relays (two gateway
// instances) on one database while events are emitted concurrently.
func TestTwoRelaysDeliverEachEventOnce(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := startEmbedded(t, t.TempDir(), "", nil)
		nc, err := events.ConnectEmbedded(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		pub := &countingPublisher{js: js, counts: map[string]int{}}
		tenant := uniqueTenant(t)
		// Small batches and short polls make the relays contend often.
		o := events.RelayOptions{BatchSize: 7, PollInterval: 5 * time.Millisecond}
		o.Owner = "instance-a"
		r1 := startRelay(t, db, pub, o)
		o.Owner = "instance-b"
		r2 := startRelay(t, db, pub, o)

		const writers, each = 4, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				emit(t, db, tenant, events.RecordingCompleted, w*each, each)
			}()
		}
		wg.Wait()
		waitDrained(t, r1, 30*time.Second)

		pub.mu.Lock()
		defer pub.mu.Unlock()
		if len(pub.counts) != writers*each {
			t.Fatalf("%d distinct events published, want %d", len(pub.counts), writers*each)
		}
		for id, n := range pub.counts {
			if n != 1 {
				t.Fatalf("event %s published %d times", id, n)
			}
		}
		if pub.dups != 0 {
			t.Fatalf("%d duplicate publishes", pub.dups)
		}
		st1, st2 := r1.Stats(), r2.Stats()
		if st1.Published+st2.Published != writers*each {
			t.Fatalf("relays report %d + %d published", st1.Published, st2.Published)
		}
		t.Logf("relay a published %d, relay b %d", st1.Published, st2.Published)
		got := collect(t, js, events.Subject(tenant, ">"), writers*each)
		seen := map[string]bool{}
		for _, g := range got {
			if seen[g.ce.ID] {
				t.Fatalf("event %s on the stream twice", g.ce.ID)
			}
			seen[g.ce.ID] = true
		}
	})
}

// TestRelayPublishesInOutboxOrder: one relay keeps the outbox order, also
// across batches.
func TestRelayPublishesInOutboxOrder(t *testing.T) {
	db := metatest.SQLite(t)
	ctx := context.Background()
	s := startEmbedded(t, t.TempDir(), "", nil)
	nc, err := events.ConnectEmbedded(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	tenant := uniqueTenant(t)
	emit(t, db, tenant, events.TranscriptCompleted, 0, 25)
	r := events.NewRelay(db, js, events.RelayOptions{BatchSize: 4})
	n, err := r.Drain(ctx)
	if err != nil || n != 25 {
		t.Fatalf("drain = %d, %v; want 25", n, err)
	}
	checkEvents(t, collect(t, js, events.Subject(tenant, ">"), 25), tenant, events.TranscriptCompleted, 0)
}

// TestRelayRowsHeldByAnotherRelayWait: rows leased by another live relay
// are not published; once its lease expires they are.
func TestRelayRowsHeldByAnotherRelayWait(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		s := startEmbedded(t, t.TempDir(), "", nil)
		nc, err := events.ConnectEmbedded(s, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		tenant := uniqueTenant(t)
		emit(t, db, tenant, events.SessionEnded, 0, 3)
		until := time.Now().UTC().Add(400 * time.Millisecond)
		if err := db.Model(&meta.OutboxEvent{}).Where("tenant_id = ?", tenant).
			Updates(map[string]any{"lease_owner": "crashed-instance", "lease_until": until}).Error; err != nil {
			t.Fatal(err)
		}
		r := events.NewRelay(db, js, events.RelayOptions{})
		if n, err := r.Drain(ctx); err != nil || n != 0 {
			t.Fatalf("drain while leased elsewhere = %d, %v; want 0", n, err)
		}
		checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			n, err := r.Drain(ctx)
			if err != nil {
				return err
			}
			if n != 3 {
				return fmt.Errorf("published %d", n)
			}
			return nil
		})
		checkEvents(t, collect(t, js, events.Subject(tenant, ">"), 3), tenant, events.SessionEnded, 0)
	})
}

func TestRelayPrunesOldSentRows(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		tenant := uniqueTenant(t)
		emit(t, db, tenant, events.SessionStarted, 0, 5)
		old := time.Now().UTC().Add(-48 * time.Hour)
		recent := time.Now().UTC().Add(-time.Hour)
		db.Model(&meta.OutboxEvent{}).Where("seq IN (SELECT seq FROM outbox_events ORDER BY seq LIMIT 2)").Update("sent_at", old)
		db.Model(&meta.OutboxEvent{}).Where("sent_at IS NULL AND seq IN (SELECT seq FROM outbox_events ORDER BY seq LIMIT 3)").Update("sent_at", recent)
		r := events.NewRelay(db, nil, events.RelayOptions{})
		n, err := r.Prune(ctx, 24*time.Hour)
		if err != nil || n != 2 {
			t.Fatalf("prune = %d, %v; want 2", n, err)
		}
		var left int64
		db.Model(&meta.OutboxEvent{}).Count(&left)
		if p, _ := r.Pending(ctx); left != 3 || p != 2 {
			t.Fatalf("after prune: %d rows, %d pending; want 3 and 2", left, p)
		}
	})
}

func TestEmitRejectsUnpublishableEvents(t *testing.T) {
	db := metatest.SQLite(t)
	tests := []struct {
		name string
		e    events.Event
	}{
		{"no tenant", events.Event{Kind: events.SessionStarted}},
		{"no kind", events.Event{Tenant: "default"}},
		{"dotted tenant", events.Event{Tenant: "a.b", Kind: events.SessionStarted}},
		{"wildcard tenant", events.Event{Tenant: "*", Kind: events.SessionStarted}},
		{"tenant with space", events.Event{Tenant: "a b", Kind: events.SessionStarted}},
		{"wildcard kind", events.Event{Tenant: "default", Kind: "session.>"}},
		{"empty kind token", events.Event{Tenant: "default", Kind: "session..started"}},
		{"upper-case kind", events.Event{Tenant: "default", Kind: "Session.Started"}},
		{"oversized data", events.Event{Tenant: "default", Kind: events.SessionStarted, Data: make([]byte, events.MaxDataBytes)}},
		{"unencodable data", events.Event{Tenant: "default", Kind: events.SessionStarted, Data: func() {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := db.Transaction(func(tx *gorm.DB) error { return events.Emit(tx, tc.e) })
			if !errors.Is(err, events.ErrInvalidEvent) {
				t.Fatalf("Emit = %v, want ErrInvalidEvent", err)
			}
			var n int64
			db.Model(&meta.OutboxEvent{}).Count(&n)
			if n != 0 {
				t.Fatalf("%d rows written", n)
			}
		})
	}
	if err := db.Transaction(func(tx *gorm.DB) error {
		return events.Emit(tx, events.Event{Tenant: "default", Kind: events.SessionStarted})
	}); err != nil {
		t.Fatalf("valid event: %v", err)
	}
}
