package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/janus/janustest"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// janusParticipant is one browser's result from e2e/janus-publish.mjs.
type janusParticipant struct {
	ID          string   `json:"id"`
	Feed        string   `json:"feed"`
	ConnectedAt int64    `json:"connectedAt"` // ms since the epoch, in the page
	LeftAt      int64    `json:"leftAt"`
	SetupMS     int64    `json:"setupMs"`
	Candidates  []string `json:"candidates"`
	Stats       map[string]struct {
		PacketsSent int64 `json:"packetsSent"`
	} `json:"stats"`
}

// TestJanusVideoRoom: Debian's Janus runs in the test's namespace (HTTP
// transport and VideoRoom only, bound to 127.0.0.1, ICE on a veth carrying
// 127.0.0.2, room 4242 from its configuration). The gateway is configured
// to govern the room (config.Janus). Two headless Chromium publishers join
// the room through the Janus HTTP API with fake media (one with camera),
// a third joins five seconds later; all leave at different times. Custodian
// records each as a participant of session janus-4242 under its Janus
// display name: every recording decrypts, ffprobe finds the right codecs
// and a duration that matches the row; on the session clock each starts
// when its browser connected and ends when it left (the late joiner from
// its join time), the start offsets differ as the connects did, and the
// audio is speech. Nothing under DATA holds plaintext media.
func TestJanusVideoRoom(t *testing.T) {
	requireBrowser(t)
	j := janustest.Start(t, janustest.Options{Rooms: []janustest.Room{{ID: "4242", Description: "Trading floor desk=fx"}}})
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		// Janus (libnice) pins its sockets to its ICE interface, so the
		// recorder's candidates must be on it too.
		c.WebRTC.IPs = []string{janustest.ICEAddress}
		c.Janus = config.Janus{URL: j.URL, Rooms: []string{"4242"}, Tenant: "default"}
	})
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var s meta.Session
		return g.DB.Where("id = ?", "janus-4242").Take(&s).Error
	})
	speech, err := filepath.Abs("../testdata/speech")
	if err != nil {
		t.Fatal(err)
	}
	arg, _ := json.Marshal(map[string]any{
		"janus": j.URL, "room": 4242, "chromium": chromiumPath,
		"participants": []map[string]any{
			{"id": "alice", "display": "Alice (FX desk)", "audio": filepath.Join(speech, "call01.wav"), "video": true, "joinAfterMs": 0, "leaveAfterMs": 12000},
			{"id": "bob", "display": "Bob", "audio": filepath.Join(speech, "call02.wav"), "video": false, "joinAfterMs": 0, "leaveAfterMs": 13000},
			{"id": "carol", "display": "Carol", "audio": filepath.Join(speech, "call01.wav"), "video": false, "joinAfterMs": 7000, "leaveAfterMs": 12500},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "janus-publish.mjs", string(arg))
	cmd.Dir = "../e2e"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("janus-publish.mjs: %v\n%s\njanus:\n%s", err, stderr.String(), j.LogTail(30))
	}
	if testing.Verbose() {
		t.Logf("janus-publish.mjs:\n%s", stderr.String())
	}
	var res struct{ Participants []janusParticipant }
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Participants) != 3 {
		t.Fatalf("janus-publish.mjs output %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	byFeed := map[string]janusParticipant{}
	for _, p := range res.Participants {
		byFeed[p.Feed] = p
		t.Logf("%s: feed %s, publish to connected %d ms, candidates %v, sent %+v", p.ID, p.Feed, p.SetupMS, p.Candidates, p.Stats)
	}

	var recs []meta.Recording
	checkFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		recs = nil
		g.DB.Where("session_id = ?", "janus-4242").Order("started_at").Find(&recs)
		if len(recs) != 3 {
			return fmt.Errorf("%d recordings", len(recs))
		}
		for _, r := range recs {
			if r.Status != meta.StatusComplete {
				return fmt.Errorf("recording %s of %s is %s %s", r.ID, r.ParticipantID, r.Status, r.FailureReason)
			}
		}
		return nil
	})
	var sess meta.Session
	if err := g.DB.Where("id = ?", "janus-4242").Take(&sess).Error; err != nil {
		t.Fatal(err)
	}
	var parts []meta.Participant
	g.DB.Where("session_id = ?", "janus-4242").Find(&parts)
	names := map[string]string{}
	for _, p := range parts {
		names[p.ID] = p.Name
	}
	want := map[string]struct {
		name        string
		contentType string
		codecs      []string
	}{
		"alice": {"Alice (FX desk)", "video/webm", []string{"opus", "vp8"}},
		"bob":   {"Bob", "audio/ogg", []string{"opus"}},
		"carol": {"Carol", "audio/ogg", []string{"opus"}},
	}
	epoch := sess.StartedAt
	starts, ends := map[string]time.Time{}, map[string]time.Time{}
	for _, rec := range recs {
		p, ok := byFeed[rec.ParticipantID]
		if !ok {
			t.Fatalf("recording %s of participant %s: no such browser", rec.ID, rec.ParticipantID)
		}
		w := want[p.ID]
		out := filepath.Join(t.TempDir(), p.ID+".media")
		rd, err := g.Store.Open(ctx, rec.TenantID, rec.ID, storage.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Create(out)
		if _, err := rd.Stream(ctx, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		rd.Close()
		d, codecs := ffprobeDuration(t, out)
		start := epoch.Add(time.Duration(rec.StartOffsetMS) * time.Millisecond)
		end := start.Add(time.Duration(rec.DurationMS) * time.Millisecond)
		connected, left := time.UnixMilli(p.ConnectedAt), time.UnixMilli(p.LeftAt)
		starts[p.ID], ends[p.ID] = start, end
		t.Logf("%s (%q): %s %v, %v; session clock %d ms + %d ms; starts %v after the browser connected, ends %v after it left; end_reason %v",
			p.ID, names[rec.ParticipantID], rec.ContentType, codecs, d, rec.StartOffsetMS, rec.DurationMS,
			start.Sub(connected).Round(time.Millisecond), end.Sub(left).Round(time.Millisecond), rec.Completeness.V["end_reason"])
		if names[rec.ParticipantID] != w.name || rec.ContentType != w.contentType || !slices.Equal(codecs, w.codecs) {
			t.Errorf("%s: name %q, %s %v", p.ID, names[rec.ParticipantID], rec.ContentType, codecs)
		}
		if !within(time.Duration(rec.DurationMS)*time.Millisecond, d, 60*time.Millisecond) {
			t.Errorf("%s: row %d ms, ffprobe %v", p.ID, rec.DurationMS, d)
		}
		if s := start.Sub(connected); s < -100*time.Millisecond || s > 500*time.Millisecond {
			t.Errorf("%s: recording starts %v after the browser connected", p.ID, s)
		}
		if e := end.Sub(left); e < -400*time.Millisecond || e > 400*time.Millisecond {
			t.Errorf("%s: recording ends %v after the browser left", p.ID, e)
		}
		if rec.Completeness.V["end_reason"] != "publisher_left" {
			t.Errorf("%s: end_reason %v", p.ID, rec.Completeness.V["end_reason"])
		}
		if r := speechRMS(t, out); r < 300 {
			t.Errorf("%s: audio RMS %.0f: no speech", p.ID, r)
		}
	}
	// One clock: differences of start offsets are differences of connects
	// (each start also carries the adapter's subscription delay, up to
	// 500 ms under load: the bound above), and differences of ends are
	// differences of leaves.
	for _, pair := range [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"bob", "carol"}} {
		a, b := byID(res.Participants, pair[0]), byID(res.Participants, pair[1])
		dRec := starts[pair[1]].Sub(starts[pair[0]])
		dBrowser := time.Duration(b.ConnectedAt-a.ConnectedAt) * time.Millisecond
		dRecEnd := ends[pair[1]].Sub(ends[pair[0]])
		dLeft := time.Duration(b.LeftAt-a.LeftAt) * time.Millisecond
		t.Logf("%s→%s: recordings start %v apart, browsers connected %v apart; end %v apart, left %v apart",
			pair[0], pair[1], dRec.Round(time.Millisecond), dBrowser, dRecEnd.Round(time.Millisecond), dLeft)
		if !within(dRec, dBrowser, 500*time.Millisecond) {
			t.Errorf("%s→%s: recordings start %v apart, browsers connected %v apart", pair[0], pair[1], dRec, dBrowser)
		}
		if !within(dRecEnd, dLeft, 250*time.Millisecond) {
			t.Errorf("%s→%s: recordings end %v apart, browsers left %v apart", pair[0], pair[1], dRecEnd, dLeft)
		}
	}
	first := max(byID(res.Participants, "alice").ConnectedAt, byID(res.Participants, "bob").ConnectedAt)
	if late := time.Duration(byID(res.Participants, "carol").ConnectedAt-first) * time.Millisecond; late < 2*time.Second {
		t.Errorf("carol connected only %v after the others", late)
	}
	if sess.Labels.V["desk"] != "fx" || sess.Labels.V["source"] != "janus" {
		t.Errorf("session labels %v", sess.Labels.V)
	}
	stopAndScan(t, g)
}

func byID(ps []janusParticipant, id string) janusParticipant {
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	return janusParticipant{}
}

func stopAndScan(t *testing.T, g *gatewaytest.Gateway) {
	t.Helper()
	g.Stop(t)
	scanPlaintext(t, g.Config.DataDir)
}
