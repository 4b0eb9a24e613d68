package recorder_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/recorder/whep/wheptest"
	"github.com/custodian/custodian/storage/meta"
)

// apiRaw sends a JSON request and returns the status and the body.
func apiRaw(tb testing.TB, g *gatewaytest.Gateway, tok, method, path string, body any) (int, []byte) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, g.URL()+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func pullOf(tb testing.TB, d recorder.SessionDoc, id string) recorder.PullDoc {
	tb.Helper()
	for _, p := range d.Pulls {
		if p.ID == id {
			return p
		}
	}
	tb.Fatalf("session %s has no pull %s: %+v", d.ID, id, d.Pulls)
	return recorder.PullDoc{}
}

// TestPullWHEP: Custodian pulls Opus and VP8 from a pion WHEP server (with
// a bearer token), the server crashes mid-stream and comes back on the same
// address, Custodian reconnects and keeps recording until the pull is
// deleted. The two media connections are two recordings on the session
// clock: each decrypts and passes ffprobe with a duration that matches its
// wall-clock span, the first ends at its last packet, and the second's
// completeness report (and its recording.completed event) names the gap
// between them. Neither the token nor the URL's query is stored.
func TestPullWHEP(t *testing.T) {
	g := startGateway(t, "")
	audio, video := media(t)
	const whepToken = "whep-secret-token-4711"
	srv := wheptest.Start(t, wheptest.Options{Audio: audio, Video: video, Token: whepToken})
	const session = "pull-1"
	body := map[string]any{"whep_url": srv.URL() + "?key=query-secret-0815", "token": whepToken,
		"participant_id": "remote", "name": "Remote speaker"}
	posted := time.Now()
	st, b := apiRaw(t, g, g.AdminToken, "POST", "/v1/sessions/"+session+"/pull", body)
	if st != http.StatusCreated {
		t.Fatalf("POST pull: %d %s", st, b)
	}
	connected := time.Now()
	var pd recorder.PullDoc
	if err := json.Unmarshal(b, &pd); err != nil {
		t.Fatal(err)
	}
	t.Logf("pull %s: POST to connected %v", pd.ID, connected.Sub(posted).Round(time.Millisecond))
	if pd.Status != recorder.PullActive || pd.Connections != 1 || strings.Contains(pd.URL, "query-secret") || pd.URL != srv.URL() {
		t.Fatalf("pull %+v", pd)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if d := getSession(t, g, g.AdminToken, session); d.RecordingStatus != meta.LiveRecording {
			return errorf("recording_status %s", d.RecordingStatus)
		}
		return nil
	})

	time.Sleep(4 * time.Second) // media flows
	crashed := time.Now()
	srv.Crash()
	checkFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if p := pullOf(t, getSession(t, g, g.AdminToken, session), pd.ID); p.Status != recorder.PullReconnecting {
			return errorf("pull status %s", p.Status)
		}
		return nil
	})
	detected := time.Now()
	srv.Restart(t)
	checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		p := pullOf(t, getSession(t, g, g.AdminToken, session), pd.ID)
		if p.Status != recorder.PullActive || p.Connections != 2 {
			return errorf("pull status %s, %d connections (%s)", p.Status, p.Connections, p.Error)
		}
		return nil
	})
	reconnected := time.Now()
	t.Logf("crash detected after %v, reconnected %v after the restart", detected.Sub(crashed).Round(time.Millisecond), reconnected.Sub(detected).Round(time.Millisecond))
	time.Sleep(4 * time.Second)
	stopped := time.Now()
	st, b = apiRaw(t, g, g.AdminToken, "DELETE", "/v1/sessions/"+session+"/pull/"+pd.ID, nil)
	if st != http.StatusOK {
		t.Fatalf("DELETE pull: %d %s", st, b)
	}
	var stoppedDoc recorder.PullDoc
	_ = json.Unmarshal(b, &stoppedDoc)
	if stoppedDoc.Status != recorder.PullStopped || stoppedDoc.EndedAt == nil {
		t.Errorf("after DELETE: %+v", stoppedDoc)
	}
	if srv.Deletes() < 1 {
		t.Errorf("the WHEP resource was not deleted (%d DELETEs)", srv.Deletes())
	}

	var recs []meta.Recording
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		recs = recordingsOf(t, g, session, "remote")
		if len(recs) != 2 {
			return errorf("%d recordings", len(recs))
		}
		for _, r := range recs {
			if r.Status != meta.StatusComplete {
				return errorf("recording %s is %s", r.ID, r.Status)
			}
		}
		return nil
	})
	first, second := recs[0], recs[1]
	spans := []time.Duration{crashed.Sub(connected), stopped.Sub(reconnected)}
	for i, rec := range recs {
		path := decrypt(t, g.Store, rec)
		p := ffprobe(t, path)
		c := completeness(t, rec)
		t.Logf("recording %d: %s, start %d ms, %d ms (ffprobe %v), wall-clock about %v, end_reason %v",
			i+1, rec.ContentType, rec.StartOffsetMS, rec.DurationMS, p.Duration, spans[i].Round(time.Millisecond), c["end_reason"])
		if rec.ContentType != "video/webm" || !slices.Equal(p.Codecs, []string{"opus", "vp8"}) {
			t.Errorf("recording %d: %s %v", i+1, rec.ContentType, p.Codecs)
		}
		if !within(time.Duration(rec.DurationMS)*time.Millisecond, p.Duration, 60*time.Millisecond) {
			t.Errorf("recording %d: row %d ms, ffprobe %v", i+1, rec.DurationMS, p.Duration)
		}
		if !within(p.Duration, spans[i], 400*time.Millisecond) {
			t.Errorf("recording %d: ffprobe %v, wall-clock span %v", i+1, p.Duration, spans[i])
		}
		src, _ := c["source"].(map[string]any)
		if src["kind"] != "whep" || src["pull_id"] != pd.ID || src["connection"] != float64(i+1) || strings.Contains(fmt.Sprint(src["url"]), "secret") {
			t.Errorf("recording %d: source %v", i+1, src)
		}
	}
	if r := completeness(t, first)["end_reason"]; r != "source_disconnected" {
		t.Errorf("first recording end_reason %v", r)
	}
	if r := completeness(t, second)["end_reason"]; r != "pull_stopped" {
		t.Errorf("second recording end_reason %v", r)
	}
	gap, _ := completeness(t, second)["gap_before"].(map[string]any)
	firstEnd := first.StartOffsetMS + first.DurationMS
	t.Logf("gap_before: %v (first recording ends at %d ms, second starts at %d ms)", gap, firstEnd, second.StartOffsetMS)
	if gap == nil || gap["previous_recording_id"] != first.ID || gap["kind"] != "disconnected" {
		t.Fatalf("gap_before %v", gap)
	}
	if d := int64(num(gap, "session_start_ms")) - firstEnd; d < -60 || d > 60 {
		t.Errorf("gap starts at %v ms, the first recording ends at %d ms", gap["session_start_ms"], firstEnd)
	}
	if int64(num(gap, "session_end_ms")) != second.StartOffsetMS || int64(num(gap, "ms")) != second.StartOffsetMS-int64(num(gap, "session_start_ms")) {
		t.Errorf("gap %v, second recording starts at %d ms", gap, second.StartOffsetMS)
	}
	if want := reconnected.Sub(crashed); !within(time.Duration(num(gap, "ms"))*time.Millisecond, want, time.Second) {
		t.Errorf("gap of %v ms, the source was away about %v", gap["ms"], want)
	}
	// The event carries the report with the gap.
	ev := outbox(t, g, "recording.completed", second.ID)
	if len(ev) != 1 || !strings.Contains(string(ev[0].Data), `"gap_before"`) {
		t.Errorf("recording.completed of the second recording: %d events, gap_before missing", len(ev))
	}

	// The token and the URL's query are nowhere in the database or its
	// log; the pull row shows the redacted URL and the final state.
	var row meta.Pull
	if err := g.DB.Where("id = ?", pd.ID).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.Status != recorder.PullStopped || row.URL != srv.URL() {
		t.Errorf("pull row %+v", row)
	}
	g.Stop(t)
	for _, name := range []string{"custodian.db", "custodian.db-wal"} {
		b, err := os.ReadFile(filepath.Join(g.Config.DataDir, name))
		if err != nil {
			continue
		}
		for _, secret := range []string{whepToken, "query-secret-0815"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds %q", name, secret)
			}
		}
	}
}

const pullPolicy = `
- name: bots-off
  match: {participant: {role: bot}}
  record: off
- name: trading
  match: {labels: {desk: trading}}
  record: required
  consent: notice
- name: default
  record: optional
  consent: notice
`

// TestPullBadInput: a malformed body, an unreachable WHEP URL, a wrong
// token, an answer without media, a participant the policy does not
// record, a duplicate pull, an unknown pull: each gets a clear error and
// leaves the pull's state visible. Where the policy requires recording, a
// source that cannot be pulled fails the session closed.
func TestPullBadInput(t *testing.T) {
	g := startGateway(t, pullPolicy)
	audio, _ := media(t)
	good := wheptest.Start(t, wheptest.Options{Audio: audio, Token: "right"})
	empty := wheptest.Start(t, wheptest.Options{Audio: audio, NoMedia: true})
	ingest := token(t, g, auth.RoleIngest, "")
	admin := g.AdminToken
	ch := failedEvents(t, g)

	if st := apiDo(t, g, admin, "POST", "/v1/sessions", map[string]any{"id": "desk-1", "labels": map[string]string{"desk": "trading"}}, nil); st != http.StatusCreated {
		t.Fatalf("create session: %d", st)
	}
	tests := []struct {
		name     string
		tok      string
		session  string
		body     map[string]any
		status   int
		problem  string
		detail   string
		rowState string // the pull row's status afterwards ("" = no row)
	}{
		{"bad url", admin, "bad-1", map[string]any{"whep_url": "ftp://x/y", "participant_id": "p"}, 400, "invalid-request", "whep_url", ""},
		{"bad participant", admin, "bad-1", map[string]any{"whep_url": good.URL(), "participant_id": ".hidden"}, 400, "invalid-request", "participant_id", ""},
		{"unknown field", admin, "bad-1", map[string]any{"url": good.URL(), "participant_id": "p"}, 400, "invalid-json", "unknown field", ""},
		{"ingest role", ingest, "bad-1", map[string]any{"whep_url": good.URL(), "participant_id": "p"}, 403, "forbidden", "", ""},
		{"unreachable", admin, "bad-2", map[string]any{"whep_url": "http://127.0.0.1:1/whep", "participant_id": "p"}, 502, "whep-unreachable", "connection refused", recorder.PullFailed},
		{"wrong token", admin, "bad-3", map[string]any{"whep_url": good.URL(), "token": "wrong", "participant_id": "p"}, 502, "whep-refused", "HTTP 401", recorder.PullFailed},
		{"answer without media", admin, "bad-4", map[string]any{"whep_url": empty.URL(), "participant_id": "p"}, 502, "whep-no-media", "none sends", recorder.PullFailed},
		{"record off", admin, "bad-5", map[string]any{"whep_url": good.URL(), "token": "right", "participant_id": "p", "attributes": map[string]string{"role": "bot"}}, 403, "recording-forbidden", "bots-off", recorder.PullFailed},
		{"required and unreachable", admin, "desk-1", map[string]any{"whep_url": "http://127.0.0.1:1/whep", "participant_id": "trader"}, 502, "whep-unreachable", "", recorder.PullFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, b := apiRaw(t, g, tc.tok, "POST", "/v1/sessions/"+tc.session+"/pull", tc.body)
			var prob struct {
				Type, Detail string
				Errors       []struct{ Field string }
			}
			_ = json.Unmarshal(b, &prob)
			t.Logf("%d %s: %s %v", st, prob.Type, prob.Detail, prob.Errors)
			if st != tc.status || !strings.HasSuffix(prob.Type, "/"+tc.problem) || !strings.Contains(string(b), tc.detail) {
				t.Fatalf("got %d %s, want %d %s containing %q", st, b, tc.status, tc.problem, tc.detail)
			}
			if strings.Contains(string(b), "right") && tc.name == "wrong token" {
				t.Errorf("the answer quotes a token: %s", b)
			}
			var rows []meta.Pull
			g.DB.Where("session_id = ?", tc.session).Find(&rows)
			switch {
			case tc.rowState == "" && len(rows) > 0:
				t.Errorf("pull rows %+v", rows)
			case tc.rowState != "":
				d := getSession(t, g, admin, tc.session)
				if len(d.Pulls) != 1 || d.Pulls[0].Status != tc.rowState || d.Pulls[0].Error == "" {
					t.Errorf("session pulls %+v", d.Pulls)
				}
			}
		})
	}
	// The session whose policy requires recording failed closed.
	d := getSession(t, g, admin, "desk-1")
	if d.RecordingStatus != meta.LiveFailed || d.FailureReason != "source_unavailable" {
		t.Errorf("desk-1: recording_status %s (%s)", d.RecordingStatus, d.FailureReason)
	}
	_, ev := waitEvent(t, ch, 3*time.Second)
	if ev.SessionID != "desk-1" || ev.Reason != "source_unavailable" || ev.ParticipantID != "trader" {
		t.Errorf("recording.failed %+v", ev)
	}
	// An optional session is not failed by an unreachable source.
	if d := getSession(t, g, admin, "bad-2"); d.RecordingStatus == meta.LiveFailed {
		t.Errorf("bad-2 (record optional): %s", d.RecordingStatus)
	}

	// A second pull for the same participant is refused while the first is
	// live; DELETE of an unknown pull is 404; DELETE twice answers the
	// final state.
	st, b := apiRaw(t, g, admin, "POST", "/v1/sessions/dup-1/pull", map[string]any{"whep_url": good.URL(), "token": "right", "participant_id": "p"})
	if st != http.StatusCreated {
		t.Fatalf("pull: %d %s", st, b)
	}
	var pd recorder.PullDoc
	_ = json.Unmarshal(b, &pd)
	if st, b := apiRaw(t, g, admin, "POST", "/v1/sessions/dup-1/pull", map[string]any{"whep_url": good.URL(), "token": "right", "participant_id": "p"}); st != http.StatusConflict || !strings.Contains(string(b), "pull-exists") {
		t.Errorf("duplicate pull: %d %s", st, b)
	}
	if st, _ := apiRaw(t, g, admin, "DELETE", "/v1/sessions/dup-1/pull/pull_nonexistent", nil); st != http.StatusNotFound {
		t.Errorf("DELETE unknown pull: %d", st)
	}
	if st, _ := apiRaw(t, g, ingest, "DELETE", "/v1/sessions/dup-1/pull/"+pd.ID, nil); st != http.StatusForbidden {
		t.Errorf("DELETE with an ingest token: %d", st)
	}
	for range 2 {
		st, b := apiRaw(t, g, admin, "DELETE", "/v1/sessions/dup-1/pull/"+pd.ID, nil)
		if st != http.StatusOK || !strings.Contains(string(b), `"status":"stopped"`) {
			t.Errorf("DELETE pull: %d %s", st, b)
		}
	}
	// Ending the session stops its pulls.
	st, b = apiRaw(t, g, admin, "POST", "/v1/sessions/end-1/pull", map[string]any{"whep_url": good.URL(), "token": "right", "participant_id": "p"})
	if st != http.StatusCreated {
		t.Fatalf("pull: %d %s", st, b)
	}
	_ = json.Unmarshal(b, &pd)
	if st := apiDo(t, g, admin, "POST", "/v1/sessions/end-1/end", nil, nil); st != http.StatusOK {
		t.Fatalf("end session: %d", st)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if p := pullOf(t, getSession(t, g, admin, "end-1"), pd.ID); p.Status != recorder.PullStopped {
			return errorf("pull %s (%s)", p.Status, p.Error)
		}
		return nil
	})
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := good.Subscribers(); n != 0 {
			return errorf("%d subscribers left on the WHEP server", n)
		}
		return nil
	})
}

// TestPullOutageFailsClosed: the source of a pull in a session whose
// policy requires recording goes away and stays away. Beyond the media
// grace period the session fails closed (recording.failed); the pull keeps
// trying, showing the last error; when the source returns, recording
// resumes on a new connection.
func TestPullOutageFailsClosed(t *testing.T) {
	g := startGateway(t, requiredPolicy, func(c *config.Config) { c.Recording.MediaGracePeriod = 2 * time.Second })
	audio, _ := media(t)
	srv := wheptest.Start(t, wheptest.Options{Audio: audio})
	ch := failedEvents(t, g)
	st, b := apiRaw(t, g, g.AdminToken, "POST", "/v1/sessions/outage-1/pull", map[string]any{"whep_url": srv.URL(), "participant_id": "feed"})
	if st != http.StatusCreated {
		t.Fatalf("pull: %d %s", st, b)
	}
	var pd recorder.PullDoc
	_ = json.Unmarshal(b, &pd)
	time.Sleep(time.Second)
	crashed := time.Now()
	srv.Crash()
	_, ev := waitEvent(t, ch, 10*time.Second)
	t.Logf("recording.failed %v after the crash: reason %s", time.Since(crashed).Round(time.Millisecond), ev.Reason)
	if ev.SessionID != "outage-1" || (ev.Reason != "no_media" && ev.Reason != "source_unavailable") {
		t.Errorf("event %+v", ev)
	}
	checkFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		d := getSession(t, g, g.AdminToken, "outage-1")
		p := pullOf(t, d, pd.ID)
		if d.RecordingStatus != meta.LiveFailed || p.Status != recorder.PullReconnecting || !strings.Contains(p.Error, "unreachable") {
			return errorf("session %s, pull %s (%s)", d.RecordingStatus, p.Status, p.Error)
		}
		return nil
	})
	srv.Restart(t)
	checkFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if p := pullOf(t, getSession(t, g, g.AdminToken, "outage-1"), pd.ID); p.Status != recorder.PullActive || p.Connections != 2 {
			return errorf("pull %s, %d connections (%s)", p.Status, p.Connections, p.Error)
		}
		return nil
	})
	time.Sleep(time.Second)
	if st, b := apiRaw(t, g, g.AdminToken, "DELETE", "/v1/sessions/outage-1/pull/"+pd.ID, nil); st != http.StatusOK {
		t.Fatalf("DELETE: %d %s", st, b)
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		recs := recordingsOf(t, g, "outage-1", "feed")
		if len(recs) != 2 || recs[1].Status != meta.StatusComplete {
			return errorf("%d recordings", len(recs))
		}
		if gap, _ := recs[1].Completeness.V["gap_before"].(map[string]any); gap == nil || num(gap, "ms") < 4000 {
			return errorf("gap_before %v", recs[1].Completeness.V["gap_before"])
		}
		return nil
	})
}
