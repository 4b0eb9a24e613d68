package events_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage/meta"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gorm.io/gorm"
)

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

// uniqueTenant returns a tenant id no other test run uses, so leftovers on
// a shared NATS server never match this run's subjects.
func uniqueTenant(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// startEmbedded starts an embedded server listening on addr (port 0: any)
// and stops it at cleanup.
func startEmbedded(tb testing.TB, dir, addr string, key []byte) *server.Server {
	tb.Helper()
	s, err := events.StartEmbedded(context.Background(), events.EmbeddedOptions{StoreDir: dir, ListenAddr: addr, StoreKey: key})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

func port(tb testing.TB, s *server.Server) int {
	tb.Helper()
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		tb.Fatalf("server has no TCP address: %v", s.Addr())
	}
	return a.Port
}

// connect dials url with fast reconnects and returns a JetStream handle.
func connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := events.Connect(ctx, url, "", nil, nats.ReconnectWait(50*time.Millisecond),
		nats.IgnoreDiscoveredServers(), nats.DontRandomize())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// emit writes n state changes, each in its own committed transaction
// that also inserts a session row, each announcing one event whose data
// carries its index.
func emit(tb testing.TB, db *gorm.DB, tenant, kind string, from, n int) []string {
	tb.Helper()
	var subjects []string
	for i := from; i < from+n; i++ {
		sid := fmt.Sprintf("call-%s-%d", tenant, i)
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&meta.Session{TenantID: tenant, ID: sid, Status: meta.SessionActive, StartedAt: time.Now().UTC()}).Error; err != nil {
				return err
			}
			return events.Emit(tx, events.Event{Tenant: tenant, Kind: kind, Subject: sid,
				Data: map[string]any{"session_id": sid, "index": i}})
		})
		if err != nil {
			tb.Fatalf("emit %d: %v", i, err)
		}
		subjects = append(subjects, sid)
	}
	return subjects
}

// startRelay runs a relay until the test ends.
func startRelay(tb testing.TB, db *gorm.DB, pub events.Publisher, o events.RelayOptions) *events.Relay {
	tb.Helper()
	if o.MaxBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	r := events.NewRelay(db, pub, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("relay run: %v", err)
		}
	})
	return r
}

func waitDrained(tb testing.TB, r *events.Relay, total time.Duration) {
	tb.Helper()
	checkFor(tb, total, 20*time.Millisecond, func() error {
		n, err := r.Pending(context.Background())
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%d rows pending", n)
		}
		return nil
	})
}

type received struct {
	msgID string
	ce    events.CloudEvent
	raw   map[string]any
}

// collect reads every message of subject filter from the stream and
// checks that no more than want arrive.
func collect(tb testing.TB, js jetstream.JetStream, filter string, want int) []received {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		tb.Fatal(err)
	}
	var out []received
	for len(out) < want && ctx.Err() == nil {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			tb.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, decode(tb, m))
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			tb.Fatal(err)
		}
	}
	if len(out) != want {
		tb.Fatalf("received %d events on %s, want %d", len(out), filter, want)
	}
	// nothing beyond want
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	for m := range batch.Messages() {
		tb.Fatalf("unexpected extra event on %s: %s", m.Subject(), m.Data())
	}
	return out
}

func decode(tb testing.TB, m jetstream.Msg) received {
	tb.Helper()
	var ce events.CloudEvent
	dec := json.NewDecoder(bytes.NewReader(m.Data()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ce); err != nil {
		tb.Fatalf("event on %s is not CloudEvents JSON: %v: %s", m.Subject(), err, m.Data())
	}
	var raw map[string]any
	if err := json.Unmarshal(m.Data(), &raw); err != nil {
		tb.Fatal(err)
	}
	return received{msgID: m.Headers().Get(jetstream.MsgIDHeader), ce: ce, raw: raw}
}

// checkEvents asserts got are valid CloudEvents of kind for tenant,
// without duplicate ids, carrying indexes from..from+len(got)-1 in order.
func checkEvents(tb testing.TB, got []received, tenant, kind string, from int) {
	tb.Helper()
	seen := map[string]bool{}
	for i, r := range got {
		ce := r.ce
		for _, attr := range []string{"specversion", "id", "source", "type", "time", "datacontenttype", "data"} {
			if _, ok := r.raw[attr]; !ok {
				tb.Fatalf("event %d lacks %q: %v", i, attr, r.raw)
			}
		}
		if ce.SpecVersion != "1.0" || ce.Type != "io.custodian."+kind || ce.Source != events.Source ||
			ce.DataContentType != "application/json" || ce.Tenant != tenant || ce.Time.IsZero() {
			tb.Fatalf("event %d: bad attributes %+v", i, ce)
		}
		if ce.ID == "" || ce.ID != r.msgID {
			tb.Fatalf("event %d: id %q, Nats-Msg-Id %q", i, ce.ID, r.msgID)
		}
		if seen[ce.ID] {
			tb.Fatalf("event id %s delivered twice", ce.ID)
		}
		seen[ce.ID] = true
		var data struct {
			SessionID string `json:"session_id"`
			Index     int    `json:"index"`
		}
		if err := json.Unmarshal(ce.Data, &data); err != nil {
			tb.Fatal(err)
		}
		if data.Index != from+i || data.SessionID != ce.Subject {
			tb.Fatalf("event %d: data %+v subject %q: out of order or wrong", i, data, ce.Subject)
		}
	}
}

// proxy is a TCP proxy on loopback that a test can cut and restore, to
// make a NATS server it cannot stop unreachable.
type proxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	go p.serve(ln)
	tb.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // cut meanwhile
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(c, u)
		go pipe(u, c)
	}
}

// cut closes the listener and every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *proxy) restore(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	checkFor(tb, 5*time.Second, 20*time.Millisecond, func() (err error) {
		ln, err = net.Listen("tcp", p.addr)
		return err
	})
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

// logBuffer is a slog handler target that tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(substr string) int { return strings.Count(b.String(), substr) }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
