package loadgen_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/loadgen"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
)

func metrics(tb testing.TB, g *gatewaytest.Gateway) string {
	tb.Helper()
	resp, err := http.Get(g.URL() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metric(tb testing.TB, body, series string) float64 {
	tb.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		tb.Fatalf("no %s in /metrics", series)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// recordedWithoutLoss checks that a publisher's recording is complete and
// holds every packet it sent.
func recordedWithoutLoss(tb testing.TB, g *gatewaytest.Gateway, session, participant string, sent uint64) {
	tb.Helper()
	var rec meta.Recording
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := g.DB.Where("session_id = ? AND participant_id = ?", session, participant).Take(&rec).Error
		if err == nil && rec.Status == meta.StatusComplete {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("recording of %s/%s: %v, status %q", session, participant, err, rec.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := rec.Completeness.V
	if c["packets_received"] != float64(sent) || c["packets_lost"] != 0.0 {
		tb.Errorf("%s/%s: sent %d, recording received %v lost %v", session, participant, sent, c["packets_received"], c["packets_lost"])
	}
}

func publish(tb testing.TB, g *gatewaytest.Gateway, session, participant string, dur time.Duration) (*whip.Publisher, error) {
	tb.Helper()
	audio, _ := media(tb)
	return whip.Publish(context.Background(), whip.Options{URL: g.URL() + "/whip/" + session + "/" + participant,
		Token: g.AdminToken, Audio: audio, Duration: dur})
}

func finish(tb testing.TB, p *whip.Publisher) uint64 {
	tb.Helper()
	ctx := context.Background()
	if err := p.Wait(ctx); err != nil {
		tb.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the last packets on their way
	sent := p.Stats().Audio.Packets
	if err := p.Close(ctx); err != nil {
		tb.Fatal(err)
	}
	return sent
}

// TestAdmissionMaxSessions: at recording.max_sessions, new sessions get
// 503 with Retry-After (all at once: concurrent POSTs cannot slip under
// the limit), a participant joining a running session is admitted, and
// the recordings already running lose nothing.
func TestAdmissionMaxSessions(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
		c.Recording.MaxSessions = 2
	})
	held, err := publish(t, g, "held", "p1", 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	audio, _ := media(t)
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: g.URL(), Token: g.AdminToken, Sessions: 4, Duration: 2 * time.Second, Ramp: 0,
		Audio: audio, SessionPrefix: "shed", ReadBack: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions.Connected != 1 || res.Sessions.Rejected != 3 || res.Failures["http_503"] != 3 {
		t.Errorf("with 1 of 2 sessions taken: sessions %+v, failures %v", res.Sessions, res.Failures)
	}
	for _, s := range res.FailureSamples {
		if !strings.Contains(s, "503") || !strings.Contains(s, "retry after 5s") || !strings.Contains(s, "recording.max_sessions") {
			t.Errorf("failure %q: want 503 with Retry-After naming recording.max_sessions", s)
		}
	}
	if rt := res.Recordings; rt == nil || rt.Complete != 1 || rt.Missing != 0 || rt.PacketsLost != 0 {
		t.Errorf("admitted recordings: %+v", rt)
	}
	// The load generator's session ended: take the second place again;
	// then a participant joining a running session is admitted, and a new
	// session is not.
	second, err := publish(t, g, "second", "p1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	join, err := publish(t, g, "held", "p2", 2*time.Second)
	if err != nil {
		t.Fatalf("join to a running session: %v", err)
	}
	_, err = publish(t, g, "third", "p1", time.Second)
	if whip.StatusCode(err) != http.StatusServiceUnavailable {
		t.Errorf("third session: %v, want 503", err)
	} else if d, ok := whip.RetryAfter(err); !ok || d != 5*time.Second {
		t.Errorf("Retry-After %v", d)
	}
	recordedWithoutLoss(t, g, "second", "p1", finish(t, second))
	recordedWithoutLoss(t, g, "held", "p2", finish(t, join))
	recordedWithoutLoss(t, g, "held", "p1", finish(t, held))
	if v := metric(t, metrics(t, g), `custodian_admission_rejected_total{reason="max_sessions"}`); v != 4 {
		t.Errorf("rejected %v, want 4", v)
	}
}

// TestAdmissionCPU: with recording.max_cpu below what the gateway uses,
// new sessions are shed with 503 and Retry-After once the measurement
// shows it, while the running recording and a participant joining it
// lose nothing.
func TestAdmissionCPU(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
		c.Recording.MaxCPU = 0.0001 // 0.02% of 2 cores: any work is over it
	})
	running, err := publish(t, g, "running", "p1", 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		body := metrics(t, g)
		if metric(t, body, "custodian_process_cpu_cores") > metric(t, body, "custodian_admission_cpu_limit_cores") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("measured CPU never exceeded the limit:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err = publish(t, g, "new", "p1", time.Second)
	he, _ := err.(*whip.HTTPError)
	if whip.StatusCode(err) != http.StatusServiceUnavailable || he == nil || he.Problem == nil ||
		!strings.HasSuffix(he.Problem.Type, "overloaded") || !strings.Contains(he.Problem.Detail, "recording.max_cpu") {
		t.Fatalf("new session under CPU load: %v, want 503 overloaded naming recording.max_cpu", err)
	}
	if d, ok := whip.RetryAfter(err); !ok || d <= 0 {
		t.Errorf("no Retry-After: %v", err)
	}
	join, err := publish(t, g, "running", "p2", 2*time.Second)
	if err != nil {
		t.Fatalf("join to a running session: %v", err)
	}
	recordedWithoutLoss(t, g, "running", "p2", finish(t, join))
	recordedWithoutLoss(t, g, "running", "p1", finish(t, running))
	if v := metric(t, metrics(t, g), `custodian_admission_rejected_total{reason="cpu"}`); v != 1 {
		t.Errorf("rejected %v, want 1", v)
	}
	var n int64
	g.DB.Model(&meta.Session{}).Where("id = ?", "new").Count(&n)
	if n != 0 {
		t.Errorf("the shed session was created")
	}
}
