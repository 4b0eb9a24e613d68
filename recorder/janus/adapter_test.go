package janus_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/internal/netns"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/recorder/janus"
	"github.com/custodian/custodian/recorder/janus/janustest"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
	"gopkg.in/yaml.v3"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

var audioMedia, videoMedia *whip.Media

func media(tb testing.TB) (*whip.Media, *whip.Media) {
	tb.Helper()
	if audioMedia == nil {
		a, err := whip.OpenOpus("../../testdata/calls-long.ogg")
		if err != nil {
			tb.Fatal(err)
		}
		v, err := whip.OpenIVF("../../testdata/testsrc-360p30.ivf")
		if err != nil {
			tb.Fatal(err)
		}
		audioMedia, videoMedia = a, v
	}
	return audioMedia, videoMedia
}

// gateway starts a gateway with the policy rules. Its ICE uses the
// address of Janus's interface: Janus (libnice) pins its sockets to the
// enforced interface (IP_UNICAST_IF), so it cannot send to 127.0.0.1 on lo.
func gateway(tb testing.TB, policies string, mutate ...func(*config.Config)) *gatewaytest.Gateway {
	tb.Helper()
	return gatewaytest.Start(tb, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{janustest.ICEAddress}
		if policies != "" {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(policies), &doc); err != nil {
				tb.Fatal(err)
			}
			c.Policies = *doc.Content[0]
		}
		for _, m := range mutate {
			m(c)
		}
	})
}

// runAdapter runs an adapter on the gateway's recorder until cleanup.
func runAdapter(tb testing.TB, g *gatewaytest.Gateway, cfg config.Janus, grace time.Duration) *janus.Adapter {
	tb.Helper()
	if cfg.Tenant == "" {
		cfg.Tenant = "default"
	}
	a, err := janus.New(janus.Options{Config: cfg, Recorder: g.Recorder, Logger: g.Log, RescanInterval: 500 * time.Millisecond, GracePeriod: grace})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

func recordings(tb testing.TB, g *gatewaytest.Gateway, session string) []meta.Recording {
	tb.Helper()
	var rows []meta.Recording
	if err := g.DB.Where("session_id = ?", session).Order("started_at").Find(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	return rows
}

func session(tb testing.TB, g *gatewaytest.Gateway, id string) meta.Session {
	tb.Helper()
	var row meta.Session
	if err := g.DB.Where("id = ?", id).Take(&row).Error; err != nil {
		tb.Fatalf("session %s: %v", id, err)
	}
	return row
}

func waitFinal(tb testing.TB, g *gatewaytest.Gateway, sessionID string, n int) []meta.Recording {
	tb.Helper()
	var recs []meta.Recording
	checkFor(tb, 20*time.Second, 50*time.Millisecond, func() error {
		recs = recordings(tb, g, sessionID)
		if len(recs) != n {
			return fmt.Errorf("%d recordings in %s, want %d", len(recs), sessionID, n)
		}
		for _, r := range recs {
			if r.Status != meta.StatusComplete {
				return fmt.Errorf("recording %s of %s is %s %s", r.ID, r.ParticipantID, r.Status, r.FailureReason)
			}
		}
		return nil
	})
	return recs
}

const roomPolicy = `
- name: quiet-rooms
  match: {labels: {mode: quiet}}
  record: off
- name: equities
  match: {department: sales, labels: {desk: equities}}
  record: required
  consent: notice
- name: default
  record: optional
  consent: notice
`

// TestAdapterRooms: all rooms governed. A room whose description says
// department=sales desk=equities gets a session with that department and
// labels (and the required policy); a room whose description labels it
// mode=quiet (record: off) is not joined and gets no session. A pion
// publisher joins the sales room: it is recorded under its Janus display
// name from when it connected until it leaves, then a second one, and the
// completeness reports name the source and end reasons.
func TestAdapterRooms(t *testing.T) {
	j := janustest.Start(t, janustest.Options{Rooms: []janustest.Room{
		{ID: "1001", Description: "Sales floor department=sales desk=equities"},
		{ID: "1002", Description: "Break room mode=quiet"},
	}})
	g := gateway(t, roomPolicy)
	a := runAdapter(t, g, config.Janus{URL: j.URL, AllRooms: true}, 5*time.Second)
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if st := a.Status(); !st.Connected || len(st.Rooms) != 1 {
			return fmt.Errorf("adapter %+v", st)
		}
		return nil
	})
	s := session(t, g, "janus-1001")
	if s.Department != "sales" || s.Labels.V["desk"] != "equities" || s.Labels.V["source"] != "janus" || s.Labels.V["janus_room"] != "1001" || s.PolicyName != "equities" {
		t.Errorf("session janus-1001: department %q labels %v policy %q", s.Department, s.Labels.V, s.PolicyName)
	}
	var n int64
	g.DB.Model(&meta.Session{}).Where("id LIKE ?", "janus-1002%").Count(&n)
	if n != 0 {
		t.Errorf("the record: off room has %d sessions", n)
	}

	audio, video := media(t)
	ctx := context.Background()
	alice, err := janustest.Publish(ctx, j.URL, "", "1001", "Alice Trader", audio, video)
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, j.LogTail(30))
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if r := recordings(t, g, "janus-1001"); len(r) != 1 {
			return fmt.Errorf("%d recordings", len(r))
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	bob, err := janustest.Publish(ctx, j.URL, "", "1001", "Bob", audio, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	aliceLeft := time.Now()
	if err := alice.Leave(ctx); err != nil {
		t.Errorf("alice leave: %v", err)
	}
	time.Sleep(time.Second)
	bobLeft := time.Now()
	if err := bob.Leave(ctx); err != nil {
		t.Errorf("bob leave: %v", err)
	}
	recs := waitFinal(t, g, "janus-1001", 2)
	var parts []meta.Participant
	g.DB.Where("session_id = ?", "janus-1001").Find(&parts)
	names := map[string]string{}
	for _, p := range parts {
		names[p.ID] = p.Name
	}
	want := []struct {
		pub         *janustest.Publisher
		name        string
		left        time.Time
		contentType string
	}{{alice, "Alice Trader", aliceLeft, "video/webm"}, {bob, "Bob", bobLeft, "audio/ogg"}}
	for i, w := range want {
		rec := recs[i]
		span := w.left.Sub(w.pub.ConnectedAt)
		c := rec.Completeness.V
		src, _ := c["source"].(map[string]any)
		t.Logf("%s: %s %d ms (connected→left %v), start %d ms, end_reason %v, source %v", w.name, rec.ContentType, rec.DurationMS,
			span.Round(time.Millisecond), rec.StartOffsetMS, c["end_reason"], src)
		if rec.ParticipantID != w.pub.ID.String() || names[rec.ParticipantID] != w.name || rec.ContentType != w.contentType {
			t.Errorf("recording %d: participant %s (%q), %s", i, rec.ParticipantID, names[rec.ParticipantID], rec.ContentType)
		}
		// On the session clock (epoch: the session's started_at): the
		// recording starts when the publisher's media reached the recorder
		// and ends when it left.
		epoch := session(t, g, "janus-1001").StartedAt
		start := epoch.Add(time.Duration(rec.StartOffsetMS) * time.Millisecond)
		end := start.Add(time.Duration(rec.DurationMS) * time.Millisecond)
		if d := start.Sub(w.pub.ConnectedAt); d < -100*time.Millisecond || d > 400*time.Millisecond {
			t.Errorf("%s: recording starts %v after the publisher connected", w.name, d)
		}
		if d := end.Sub(w.left); d < -300*time.Millisecond || d > 300*time.Millisecond {
			t.Errorf("%s: recording ends %v after the publisher left", w.name, d)
		}
		if c["end_reason"] != janus.EndPublisherLeft || src["kind"] != "janus" || src["room"] != "1001" || src["feed"] != w.pub.ID.String() {
			t.Errorf("%s: completeness %v", w.name, c)
		}
	}
	if st := a.Status(); st.Attaches != 1 {
		t.Errorf("attached %d times", st.Attaches)
	}
	if got := session(t, g, "janus-1001"); got.Status != meta.SessionActive {
		t.Errorf("the room's session is %s; the adapter holds it open", got.Status)
	}
	_ = recorder.PullActive
}
