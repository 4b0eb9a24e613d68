package search_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/s3/s3test"
	"github.com/custodian/custodian/transcribe/search"
)

// consumerIdle waits until the instance's search consumer has nothing
// pending or unacknowledged.
func consumerIdle(tb testing.TB, g *gateway.Gateway) {
	tb.Helper()
	checkFor(tb, 30*time.Second, 20*time.Millisecond, func() error {
		c, err := g.JS.Consumer(context.Background(), events.StreamName, search.ConsumerName(g.InstanceID))
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending > 0 || info.NumAckPending > 0 {
			return fmt.Errorf("consumer pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

func TestReplicaFollowsEvents(t *testing.T) {
	g := gatewaytest.Start(t)
	x := g.SearchIndex()
	if x == nil {
		t.Fatal("search is not running")
	}
	rec, _ := seedCall(t, g.Gateway, call{Dept: "sales", Session: "s1", Participant: "cust", Speaker: "Dana",
		Text: speech(t, "call02")})
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := find(t, x, gateway.DefaultTenant, `"cancel my account"`); !slices.Equal(got, []string{rec.ID}) {
			return fmt.Errorf("hits %v", got)
		}
		return nil
	})

	// A redelivered or duplicated event does not duplicate hits.
	ce := events.CloudEvent{SpecVersion: "1.0", ID: meta.NewID("evt"), Source: events.Source,
		Type: events.TypePrefix + events.TranscriptCompleted, Subject: rec.ID, Time: time.Now().UTC(),
		DataContentType: "application/json", Tenant: gateway.DefaultTenant, Data: json.RawMessage(`{}`)}
	b, _ := json.Marshal(ce)
	subj := events.Subject(gateway.DefaultTenant, events.TranscriptCompleted)
	for range 3 {
		ce.ID = meta.NewID("evt")
		b, _ = json.Marshal(ce)
		if _, err := g.JS.Publish(context.Background(), subj, b, jetstream.WithMsgID(ce.ID)); err != nil {
			t.Fatal(err)
		}
	}
	// A malformed event is dropped, and does not stop the replica.
	if _, err := g.JS.Publish(context.Background(), subj, []byte("not a cloud event")); err != nil {
		t.Fatal(err)
	}
	consumerIdle(t, g.Gateway)
	if n, err := x.Count(context.Background(), gateway.DefaultTenant); err != nil || n != 1 {
		t.Fatalf("count %d %v after duplicate events", n, err)
	}
	rec2, _ := seedCall(t, g.Gateway, call{Dept: "sales", Session: "s2", Participant: "agent", Speaker: "Alex",
		Text: speech(t, "call05")})
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := find(t, x, gateway.DefaultTenant, "thirtieth"); !slices.Equal(got, []string{rec2.ID}) {
			return fmt.Errorf("hits %v", got)
		}
		return nil
	})

	// Shredding removes it; a late transcript.completed for it (replayed
	// after the deletion) does not bring it back.
	shredCall(t, g.Gateway, rec)
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := find(t, x, gateway.DefaultTenant, "cancel"); len(got) != 0 {
			return fmt.Errorf("shredded recording still found: %v", got)
		}
		return nil
	})
	ce.ID = meta.NewID("evt")
	b, _ = json.Marshal(ce)
	if _, err := g.JS.Publish(context.Background(), subj, b, jetstream.WithMsgID(ce.ID)); err != nil {
		t.Fatal(err)
	}
	consumerIdle(t, g.Gateway)
	if got := find(t, x, gateway.DefaultTenant, "cancel"); len(got) != 0 {
		t.Fatalf("replayed event re-indexed a shredded recording: %v", got)
	}
	// The deletion scheduled a purge that runs after the debounce delay.
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if p := x.PendingPurges(); len(p) > 0 {
			return fmt.Errorf("purge pending for %v", p)
		}
		return nil
	})
}

// A replica without state (new instance, wiped directory) is built from
// the database, and `custodian index rebuild` (search.Rebuild) rebuilds it
// from the stored transcripts while the gateway is stopped.
func TestReplicaBootstrapAndRebuild(t *testing.T) {
	cfg := gatewaytest.Config(t)
	g := gatewaytest.StartConfig(t, cfg)
	// Written without events: the replica does not learn about them.
	silent1, _ := seedCall(t, g.Gateway, call{Dept: "sales", Session: "s1", Participant: "a", Speaker: "A",
		Text: speech(t, "call01"), NoEvent: true})
	silent2, _ := seedCall(t, g.Gateway, call{Dept: "support", Session: "s2", Participant: "b", Speaker: "B",
		Text: speech(t, "call06"), NoEvent: true})
	loud, _ := seedCall(t, g.Gateway, call{Dept: "sales", Session: "s3", Participant: "c", Speaker: "C",
		Text: speech(t, "call03")})
	x := g.SearchIndex()
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := find(t, x, gateway.DefaultTenant, "digits"); !slices.Equal(got, []string{loud.ID}) {
			return fmt.Errorf("hits %v", got)
		}
		return nil
	})
	if got := find(t, x, gateway.DefaultTenant, "calling OR compliance"); len(got) != 0 {
		t.Fatalf("premise: recordings without events indexed: %v", got)
	}
	g.Stop(t)

	// Rebuild from the stored transcripts (the gateway is stopped).
	lg, err := gateway.New(context.Background(), cfg, nil, gateway.Options{LocalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var calls, last, total int
	st, err := search.Rebuild(context.Background(), lg.SearchOptions(), lg.SearchLoader(), search.ConsumerName(lg.InstanceID),
		func(done, tot int) { calls++; last, total = done, tot })
	if err != nil {
		t.Fatal(err)
	}
	lg.Close(context.Background())
	if st.Transcripts != 3 || st.Indexed != 3 || calls < 2 || last != 3 || total != 3 {
		t.Fatalf("rebuild stats %+v, progress calls %d last %d/%d", st, calls, last, total)
	}
	g2 := gatewaytest.StartConfig(t, cfg)
	want := []string{silent1.ID, silent2.ID}
	sort.Strings(want)
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		got := find(t, g2.SearchIndex(), gateway.DefaultTenant, "calling OR compliance")
		sort.Strings(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("after rebuild: hits %v, want %v", got, want)
		}
		return nil
	})
	// Rebuilding beside the running gateway is refused (its replica is locked).
	lg2, err := gateway.New(context.Background(), cfg, nil, gateway.Options{LocalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = search.Rebuild(context.Background(), lg2.SearchOptions(), lg2.SearchLoader(), "x", nil)
	lg2.Close(context.Background())
	if !errors.Is(err, search.ErrLocked) {
		t.Fatalf("rebuild beside a running gateway: %v, want ErrLocked", err)
	}
	g2.Stop(t)

	// A wiped replica is bootstrapped from the database at start.
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "index")); err != nil {
		t.Fatal(err)
	}
	g3 := gatewaytest.StartConfig(t, cfg)
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		got := find(t, g3.SearchIndex(), gateway.DefaultTenant, "calling OR compliance OR digits")
		if len(got) != 3 {
			return fmt.Errorf("after bootstrap: hits %v", got)
		}
		return nil
	})

	// A lost consumer (deleted while the instance was down, so events were
	// missed) makes the replica sync again, removing what was deleted
	// meanwhile.
	if err := g3.JS.DeleteConsumer(context.Background(), events.StreamName, search.ConsumerName(g3.InstanceID)); err != nil {
		t.Fatal(err)
	}
	g3.Stop(t)
	lg3, err := gateway.New(context.Background(), cfg, nil, gateway.Options{LocalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	lg3.DB.Model(&meta.Recording{}).Where("id = ?", silent1.ID).Updates(map[string]any{"status": meta.StatusDeleted, "deleted_at": time.Now().UTC()})
	lg3.DB.Model(&meta.Transcript{}).Where("recording_id = ?", silent1.ID).Update("status", meta.TranscriptDeleted)
	lg3.Close(context.Background())
	g4 := gatewaytest.StartConfig(t, cfg)
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		got := find(t, g4.SearchIndex(), gateway.DefaultTenant, "calling OR compliance OR digits")
		if len(got) != 2 || slices.Contains(got, silent1.ID) {
			return fmt.Errorf("after consumer loss: hits %v, want the two left", got)
		}
		return nil
	})
}

// Two instances on one NATS, one database and one object store, each
// with its own replica: a transcript completed on one becomes searchable
// on the other (through its HTTP API), and a deletion on one removes it
// from both.
func TestTwoInstancesShareOneNATS(t *testing.T) {
	s3 := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("AWS_REGION", s3test.Region)
	dsn := metatest.PostgresDSN(t)
	if dsn == "" {
		// Without the test PostgreSQL server both instances share one
		// SQLite file (SQLite supports several connections to one file).
		dsn = "sqlite:" + filepath.Join(t.TempDir(), "shared.db")
	}
	shared := func(c *config.Config) {
		c.Database.DSN = dsn
		c.S3.Bucket, c.S3.Endpoint, c.S3.Region, c.S3.ForcePathStyle = s3test.Bucket, s3.Endpoint, s3test.Region, true
		c.S3.Prefix = "two-instances-" + meta.NewID("p")
	}
	cfg1 := gatewaytest.Config(t)
	shared(&cfg1)
	cfg1.NATS.ListenAddr = "127.0.0.1:0"
	g1 := gatewaytest.StartConfig(t, cfg1)

	cfg2 := gatewaytest.Config(t)
	shared(&cfg2)
	cfg2.S3.Prefix = cfg1.S3.Prefix
	cfg2.NATS.URL = g1.NATSServer.ClientURL()
	// One key-encryption key for both (the keyring file; KMS in production).
	kr, err := os.ReadFile(filepath.Join(cfg1.DataDir, "keys", "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(cfg2.DataDir, "keys"), 0o700)
	if err := os.WriteFile(filepath.Join(cfg2.DataDir, "keys", "keyring.json"), kr, 0o600); err != nil {
		t.Fatal(err)
	}
	g2 := gatewaytest.StartConfig(t, cfg2)
	if g1.InstanceID == g2.InstanceID || g2.NATSServer != nil {
		t.Fatalf("premise: two instances, the second on the first's NATS (%s, %s)", g1.InstanceID, g2.InstanceID)
	}
	token := g1.AdminToken
	if token == "" {
		t.Fatal("no admin token")
	}
	supToken, _, err := auth.CreateToken(context.Background(), g1.DB, auth.Spec{Tenant: gateway.DefaultTenant,
		Role: auth.RoleSupervisor, Department: "support", Name: "sup", CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}

	searchHTTP := func(g *gatewaytest.Gateway, tok, q string) ([]string, int) {
		req, _ := http.NewRequest("GET", g.URL()+"/v1/search?q="+url.QueryEscape(q), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var out struct {
			Hits []struct {
				RecordingID string `json:"recording_id"`
			} `json:"hits"`
		}
		json.Unmarshal(body, &out)
		var ids []string
		for _, h := range out.Hits {
			ids = append(ids, h.RecordingID)
		}
		return ids, resp.StatusCode
	}
	waitHTTP := func(g *gatewaytest.Gateway, tok, q string, want []string) time.Duration {
		start := time.Now()
		checkFor(t, 30*time.Second, 5*time.Millisecond, func() error {
			got, status := searchHTTP(g, tok, q)
			if status != http.StatusOK || !slices.Equal(got, want) {
				return fmt.Errorf("%s on %s: status %d hits %v, want %v", q, g.InstanceID, status, got, want)
			}
			return nil
		})
		return time.Since(start)
	}

	var lags []time.Duration
	names := []string{"call02", "call05", "call06", "call03", "call01", "call04"}
	for i := range 10 {
		name := names[i%len(names)]
		src, dst := g1, g2
		if i%2 == 1 {
			src, dst = g2, g1
		}
		rec, _ := seedCall(t, src.Gateway, call{Dept: "support", Session: fmt.Sprint("two-", i), Participant: "p", Speaker: "P",
			Text: speech(t, name) + fmt.Sprintf(" marker%d", i)})
		lag := waitHTTP(dst, token, fmt.Sprintf("marker%d", i), []string{rec.ID})
		lags = append(lags, lag)
		waitHTTP(src, supToken, fmt.Sprintf("marker%d", i), []string{rec.ID})
		if i == 0 {
			shredCall(t, src.Gateway, rec)
			waitHTTP(dst, token, "marker0", nil)
			waitHTTP(src, token, "marker0", nil)
		}
	}
	slices.Sort(lags)
	t.Logf("transcript.completed committed on one instance → searchable through the other's API: min %v, median %v, max %v (n=%d)",
		lags[0], lags[len(lags)/2], lags[len(lags)-1], len(lags))
}
