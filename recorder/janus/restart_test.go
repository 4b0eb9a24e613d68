package janus_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/janus"
	"github.com/custodian/custodian/recorder/janus/janustest"
	"github.com/custodian/custodian/storage/meta"
)

const requiredJanus = `
- name: janus-rooms
  match: {labels: {source: janus}}
  record: required
  consent: notice
`

func waitRecording(tb testing.TB, g *gatewaytest.Gateway, sessionID string, n int) {
	tb.Helper()
	checkFor(tb, 15*time.Second, 50*time.Millisecond, func() error {
		if r := recordings(tb, g, sessionID); len(r) != n {
			return fmt.Errorf("%d recordings in %s, want %d", len(r), sessionID, n)
		}
		return nil
	})
}

func failedEventFor(tb testing.TB, g *gatewaytest.Gateway, sessionID string) meta.OutboxEvent {
	tb.Helper()
	var ev meta.OutboxEvent
	checkFor(tb, 5*time.Second, 50*time.Millisecond, func() error {
		return g.DB.Where("kind = ? AND subject = ?", "recording.failed", sessionID).Take(&ev).Error
	})
	return ev
}

// TestAdapterJanusRestart: Janus is killed (SIGKILL) while a publisher is
// recorded. The recording ends at once (end_reason janus_session_lost) and
// is complete; once Janus has been unreachable for the grace period, the
// room's session (its policy requires recording) fails closed with a
// recording.failed event. Janus comes back: the adapter attaches again,
// joins the room, and a publisher who joins is recorded in the same
// session.
func TestAdapterJanusRestart(t *testing.T) {
	j := janustest.Start(t, janustest.Options{Rooms: []janustest.Room{{ID: "2001", Description: "Desk 2"}}})
	g := gateway(t, requiredJanus)
	a := runAdapter(t, g, config.Janus{URL: j.URL, Rooms: []string{"2001"}}, 2*time.Second)
	audio, _ := media(t)
	ctx := context.Background()
	pub, err := janustest.Publish(ctx, j.URL, "", "2001", "Ann", audio, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitRecording(t, g, "janus-2001", 1)
	time.Sleep(2 * time.Second)
	killed := time.Now()
	j.Kill(t)
	recs := waitFinal(t, g, "janus-2001", 1)
	t.Logf("recording ended %v after the kill: %d ms, end_reason %v", recs[0].EndedAt.Sub(killed).Round(time.Millisecond),
		recs[0].DurationMS, recs[0].Completeness.V["end_reason"])
	if recs[0].Completeness.V["end_reason"] != janus.EndJanusLost {
		t.Errorf("end_reason %v", recs[0].Completeness.V["end_reason"])
	}
	if st := a.Status(); st.Connected || !strings.Contains(st.Error, "unreachable") {
		t.Errorf("status while Janus is down: %+v", st)
	}
	ev := failedEventFor(t, g, "janus-2001")
	s := session(t, g, "janus-2001")
	t.Logf("session failed %v after the kill: %s", ev.CreatedAt.Sub(killed).Round(time.Millisecond), ev.Data)
	if s.RecordingStatus != meta.LiveFailed || s.FailureReason != "source_unavailable" || !strings.Contains(string(ev.Data), "source_unavailable") {
		t.Errorf("session %s %s", s.RecordingStatus, s.FailureReason)
	}
	_ = pub.Leave(ctx) // its Janus is gone; nothing to leave

	j.Restart(t)
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if st := a.Status(); !st.Connected || st.Attaches != 2 || st.Rooms["2001"] != 0 {
			return fmt.Errorf("adapter %+v", st)
		}
		return nil
	})
	pub2, err := janustest.Publish(ctx, j.URL, "", "2001", "Ann again", audio, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitRecording(t, g, "janus-2001", 2)
	time.Sleep(time.Second)
	if err := pub2.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	recs = waitFinal(t, g, "janus-2001", 2)
	if recs[1].ParticipantID != pub2.ID.String() || recs[1].Completeness.V["end_reason"] != janus.EndPublisherLeft {
		t.Errorf("second recording %s %v", recs[1].ParticipantID, recs[1].Completeness.V["end_reason"])
	}
	if s := session(t, g, "janus-2001"); s.Status != meta.SessionActive {
		t.Errorf("session %s", s.Status)
	}
}

// TestAdapterKeepalive: Janus runs with a 3-second session timeout. The
// adapter's keepalives keep its session for 8 seconds (one attach, one
// recording). Then the session is destroyed behind its back, as a timeout
// would: the adapter attaches again and records the publisher, who is
// still in the room, on a new connection.
func TestAdapterKeepalive(t *testing.T) {
	j := janustest.Start(t, janustest.Options{SessionTimeout: 3, Rooms: []janustest.Room{{ID: "2101"}}})
	g := gateway(t, "")
	a := runAdapter(t, g, config.Janus{URL: j.URL, Rooms: []string{"2101"}}, 5*time.Second)
	audio, _ := media(t)
	ctx := context.Background()
	pub, err := janustest.Publish(ctx, j.URL, "", "2101", "Kim", audio, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitRecording(t, g, "janus-2101", 1)
	time.Sleep(8 * time.Second)
	st := a.Status()
	if st.Attaches != 1 || !st.Connected {
		t.Fatalf("after 8 s with a 3 s session timeout: %+v\n%s", st, j.LogTail(20))
	}
	if r := recordings(t, g, "janus-2101"); len(r) != 1 || r[0].Status != meta.StatusRecording {
		t.Fatalf("recordings %+v", r)
	}
	if err := j.Destroy(ctx, st.SessionID); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if st := a.Status(); st.Attaches != 2 || !st.Connected {
			return fmt.Errorf("adapter %+v", st)
		}
		return nil
	})
	waitRecording(t, g, "janus-2101", 2)
	time.Sleep(time.Second)
	_ = pub.Leave(ctx)
	recs := waitFinal(t, g, "janus-2101", 2)
	// The first ends when Janus hangs up the destroyed session's peer
	// connection or when the adapter finds the session gone, whichever
	// comes first.
	for i, want := range [][]string{{janus.EndJanusLost, "peer_closed"}, {janus.EndPublisherLeft}} {
		reason, _ := recs[i].Completeness.V["end_reason"].(string)
		if recs[i].ParticipantID != pub.ID.String() || !slices.Contains(want, reason) {
			t.Errorf("recording %d: %s %v, want end_reason in %v", i, recs[i].ParticipantID, reason, want)
		}
	}
}

// TestAdapterBadInput: Janus unreachable, a governed room that does not
// exist (and is created later), and a wrong API secret. Each is logged
// and shown in the adapter's status; the sessions of rooms whose policy
// requires recording fail closed (source_unavailable) with an event; the
// room created later is joined at the next scan.
func TestAdapterBadInput(t *testing.T) {
	g := gateway(t, requiredJanus)
	t.Run("unreachable", func(t *testing.T) {
		a := runAdapter(t, g, config.Janus{URL: "http://127.0.0.1:1/janus", Rooms: []string{"3001"}}, time.Second)
		failedEventFor(t, g, "janus-3001")
		s := session(t, g, "janus-3001")
		st := a.Status()
		t.Logf("status %+v; session %s (%s)", st, s.RecordingStatus, s.FailureReason)
		if s.RecordingStatus != meta.LiveFailed || s.FailureReason != "source_unavailable" || !strings.Contains(st.Error, "connection refused") {
			t.Errorf("session %s %s, adapter %+v", s.RecordingStatus, s.FailureReason, st)
		}
	})
	t.Run("missing room", func(t *testing.T) {
		j := janustest.Start(t, janustest.Options{Rooms: []janustest.Room{{ID: "4001"}}})
		a := runAdapter(t, g, config.Janus{URL: j.URL, Rooms: []string{"4001", "4999"}}, time.Second)
		failedEventFor(t, g, "janus-4999")
		if s := session(t, g, "janus-4999"); s.RecordingStatus != meta.LiveFailed || s.FailureReason != "source_unavailable" {
			t.Errorf("janus-4999: %s %s", s.RecordingStatus, s.FailureReason)
		}
		if s := session(t, g, "janus-4001"); s.RecordingStatus == meta.LiveFailed {
			t.Errorf("janus-4001 failed: %s", s.FailureReason)
		}
		// The room is created on the running Janus: the next scan joins it.
		createRoom(t, j, "4999")
		checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
			if st := a.Status(); len(st.Rooms) != 2 {
				return fmt.Errorf("adapter %+v", st)
			}
			return nil
		})
	})
	t.Run("wrong secret", func(t *testing.T) {
		j := janustest.Start(t, janustest.Options{APISecret: "right-secret", Rooms: []janustest.Room{{ID: "5001"}}})
		a := runAdapter(t, g, config.Janus{URL: j.URL, Secret: "wrong-secret", Rooms: []string{"5001"}}, time.Second)
		failedEventFor(t, g, "janus-5001")
		st := a.Status()
		t.Logf("status %+v", st)
		if !strings.Contains(st.Error, "403") || strings.Contains(st.Error, "secret\"") || strings.Contains(st.Error, "wrong-secret") {
			t.Errorf("adapter error %q", st.Error)
		}
		// The right secret works.
		a2 := runAdapter(t, g, config.Janus{URL: j.URL, Secret: "right-secret", Rooms: []string{"5001"}}, time.Second)
		checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
			if st := a2.Status(); !st.Connected || len(st.Rooms) != 1 {
				return fmt.Errorf("adapter %+v", st)
			}
			return nil
		})
	})
}

// createRoom creates a VideoRoom room through the Janus API.
func createRoom(tb testing.TB, j *janustest.Janus, id string) {
	tb.Helper()
	ctx := context.Background()
	c := &janus.Client{URL: j.URL}
	sess, err := c.Create(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer sess.Destroy(ctx)
	h, err := sess.Attach(ctx, janus.Plugin)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := h.Request(ctx, map[string]any{"request": "create", "room": janus.ParseID(id), "description": "created later"}); err != nil {
		tb.Fatal(err)
	}
	_ = http.StatusOK
}
