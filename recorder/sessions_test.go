package recorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
)

// TestSessionLifecycle: sessions created ahead and by WHIP, ended by the
// API and by the idle timeout, each with session.started and one
// session.ended event; the session API's errors.
func TestSessionLifecycle(t *testing.T) {
	g := startGateway(t, `
- name: sales
  match: {department: sales}
  record: optional
  consent: none
  retention: 30d
`, func(c *config.Config) { c.Session.IdleTimeout = time.Second })
	admin := g.AdminToken
	ingest := token(t, g, auth.RoleIngest, "")
	audio, _ := media(t)

	var doc recorder.SessionDoc
	if st := apiDo(t, g, admin, "POST", "/v1/sessions", map[string]any{"id": "ahead-1", "department": "sales", "labels": map[string]string{"queue": "billing"}}, &doc); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if doc.RecordingStatus != meta.LiveNotRecording || doc.Decision["rule"] != "sales" || doc.Decision["record"] != "optional" ||
		doc.Decision["retention"] != "30d" || doc.Status != meta.SessionActive {
		t.Errorf("created session %+v", doc)
	}
	if st := apiDo(t, g, admin, "POST", "/v1/sessions", map[string]any{"id": "ahead-1"}, nil); st != http.StatusConflict {
		t.Errorf("duplicate create: %d", st)
	}
	if st := apiDo(t, g, admin, "POST", "/v1/sessions", map[string]any{"id": "../etc"}, nil); st != http.StatusBadRequest {
		t.Errorf("invalid id: %d", st)
	}
	if st := apiDo(t, g, admin, "POST", "/v1/sessions", map[string]any{"id": "x", "colour": "red"}, nil); st != http.StatusBadRequest {
		t.Errorf("unknown field: %d", st)
	}
	if st := apiDo(t, g, ingest, "GET", "/v1/sessions/ahead-1", nil, nil); st != http.StatusForbidden {
		t.Errorf("ingest token reading sessions: %d", st)
	}

	// A participant joins the session created ahead; its recording uses
	// the session's retention.
	pub, _ := publish(t, g, ingest, "ahead-1", "agent", whip.Options{Audio: audio})
	checkFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if d := getSession(t, g, admin, "ahead-1"); d.RecordingStatus != meta.LiveRecording || len(d.Participants) != 1 || d.Participants[0].Connections != 1 {
			return fmt.Errorf("recording_status %s participants %+v", d.RecordingStatus, d.Participants)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	// Ending the session ends the connection and finalizes the recording
	// before the answer.
	if st := apiDo(t, g, admin, "POST", "/v1/sessions/ahead-1/end", nil, &doc); st != http.StatusOK {
		t.Fatalf("end: %d", st)
	}
	if doc.Status != meta.SessionEnded || doc.EndedAt == nil || len(doc.Recordings) != 1 || doc.Recordings[0].Status != meta.StatusComplete {
		t.Errorf("ended session %+v", doc)
	}
	if rt := doc.Recordings[0].RetainUntil; rt == nil || !within(rt.Sub(doc.Recordings[0].StartedAt), 30*24*time.Hour, time.Second) {
		t.Errorf("retain_until %v, started %v: want 30 days", rt, doc.Recordings[0].StartedAt)
	}
	_ = pub.Close(context.Background())
	if st := apiDo(t, g, admin, "POST", "/v1/sessions/ahead-1/end", nil, nil); st != http.StatusConflict {
		t.Errorf("second end: %d", st)
	}

	// Idle timeout: a WHIP-created session ends a second after its last
	// participant left.
	pub2, _ := publish(t, g, ingest, "idle-1", "caller", whip.Options{Audio: audio, Duration: time.Second})
	_ = pub2.Wait(context.Background())
	_ = pub2.Close(context.Background())
	left := time.Now()
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if d := getSession(t, g, admin, "idle-1"); d.Status != meta.SessionEnded {
			return fmt.Errorf("status %s", d.Status)
		}
		return nil
	})
	t.Logf("idle session ended %v after its last participant left (idle_timeout 1s)", time.Since(left).Round(10*time.Millisecond))
	for id, reason := range map[string]string{"ahead-1": "api", "idle-1": "idle_timeout"} {
		if n := len(outbox(t, g, events.SessionStarted, id)); n != 1 {
			t.Errorf("%s: %d session.started events", id, n)
		}
		ev := outbox(t, g, events.SessionEnded, id)
		if len(ev) != 1 {
			t.Fatalf("%s: %d session.ended events", id, len(ev))
		}
		var d events.SessionData
		_ = json.Unmarshal(ev[0].Data, &d)
		if d.EndReason != reason || d.EndedAt == nil {
			t.Errorf("%s: session.ended %+v, want reason %s", id, d, reason)
		}
	}
}

// TestListSessions: scoped to the caller (a supervisor sees its own
// department only, 404 for others), newest first, cursor pagination
// without duplicates or gaps.
func TestListSessions(t *testing.T) {
	g := startGateway(t, "", func(c *config.Config) { c.Session.IdleTimeout = time.Hour })
	admin := g.AdminToken
	sales := token(t, g, auth.RoleSupervisor, "sales")
	var want []string
	for i := range 7 {
		dept := "sales"
		if i%3 == 2 {
			dept = "support"
		}
		id := fmt.Sprintf("list-%d", i)
		if st := apiDo(t, g, admin, "POST", "/v1/sessions", map[string]any{"id": id, "department": dept}, nil); st != http.StatusCreated {
			t.Fatalf("create %s: %d", id, st)
		}
		if dept == "sales" {
			want = append(want, id)
		}
	}
	slices.Reverse(want)
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("too many pages")
		}
		var page recorder.ListDoc[recorder.SessionDoc]
		path := "/v1/sessions?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if st := apiDo(t, g, sales, "GET", path, nil, &page); st != http.StatusOK {
			t.Fatalf("list: %d", st)
		}
		for _, d := range page.Items {
			got = append(got, d.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("supervisor of sales listed %v, want %v", got, want)
	}
	var all recorder.ListDoc[recorder.SessionDoc]
	apiDo(t, g, admin, "GET", "/v1/sessions?department=support", nil, &all)
	if len(all.Items) != 2 || all.Items[0].Department != "support" {
		t.Errorf("admin filtered by department: %+v", all.Items)
	}
	if st := apiDo(t, g, sales, "GET", "/v1/sessions/list-2", nil, nil); st != http.StatusNotFound {
		t.Errorf("supervisor reading another department's session: %d", st)
	}
	if st := apiDo(t, g, sales, "GET", "/v1/sessions?cursor=bm9wZQ", nil, nil); st != http.StatusBadRequest {
		t.Errorf("forged cursor: %d", st)
	}
	if st := apiDo(t, g, sales, "POST", "/v1/sessions", map[string]any{"id": "x-1", "department": "support"}, nil); st != http.StatusForbidden {
		t.Errorf("supervisor creating in another department: %d", st)
	}
	var own recorder.SessionDoc
	if st := apiDo(t, g, sales, "POST", "/v1/sessions", map[string]any{"id": "x-2"}, &own); st != http.StatusCreated || own.Department != "sales" {
		t.Errorf("supervisor creating without department: %d %+v", st, own)
	}
}
