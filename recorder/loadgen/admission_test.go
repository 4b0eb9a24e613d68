package loadgen_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// saturate keeps n goroutines of this process (gateway and publishers
// alike) busy until the returned stop is called: more runnable work than
// cores, as when the gateway takes on more calls than it can handle.
func saturate(n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			x := uint64(1)
			for {
				for range 1 << 16 {
					x = x*6364136223846793005 + 1442695040888963407
				}
				select {
				case <-done:
					sink.Add(x)
					return
				default:
				}
			}
		})
	}
	return func() { close(done); wg.Wait() }
}

var sink atomic.Uint64

// TestAdmissionSchedDelay: at real saturation (more busy goroutines than
// cores in the gateway's process, on top of whatever else the machine
// runs) with the default recording.max_sched_delay, the scheduling delay
// signal passes the limit and a new session gets 503 with Retry-After
// naming recording.max_sched_delay, while the session already recording
// keeps recording and its recording is complete without loss (the
// saturation delays its packets but keeps their order, and the kernel's
// socket buffer holds them: late is not lost); once the load goes away,
// new sessions are admitted again. recording.max_cpu is off, so that
// only the new signal can shed. The signal is a measurement of the whole
// machine's effect on the gateway, so each step that expects an
// admission or a refusal tries again within a generous deadline rather
// than assume the signal's value at one instant.
func TestAdmissionSchedDelay(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
		c.Recording.MaxCPU = 0
		c.Recording.MaxSchedDelay = config.DefaultMaxSchedDelay
	})
	signal := func() (delay, limit float64) {
		body := metrics(t, g)
		return metric(t, body, "custodian_sched_delay_seconds"), metric(t, body, "custodian_admission_sched_delay_limit_seconds")
	}
	// Before the saturation: the signal measures the machine too, so
	// while other processes keep the cores busy (another copy of this
	// test, say) it may already refuse; then try again.
	var running *whip.Publisher
	deadline := time.Now().Add(60 * time.Second)
	for running == nil {
		p, err := publish(t, g, "running", "p1", 20*time.Second)
		if whip.StatusCode(err) == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			t.Logf("before the saturation: %v; trying again", err)
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		running = p
	}

	stop := saturate(8 * runtime.GOMAXPROCS(0))
	var shed *whip.HTTPError
	deadline = time.Now().Add(30 * time.Second)
	for shed == nil {
		if time.Now().After(deadline) {
			stop()
			d, l := signal()
			t.Fatalf("saturated for 30 s, no new session shed: scheduling delay %v s, limit %v s", d, l)
		}
		if d, l := signal(); d <= l {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		// The signal is a measurement: it may fall back under the limit
		// between the scrape and the offer; then the session is admitted,
		// closed and the offer tried again.
		p, err := publish(t, g, "new", "p1", time.Second)
		if err == nil {
			t.Logf("admitted while the signal was above the limit a moment before; trying again")
			_ = p.Close(context.Background())
			continue
		}
		he, ok := errors.AsType[*whip.HTTPError](err)
		if !ok || he.Status != http.StatusServiceUnavailable || he.Problem == nil ||
			!strings.HasSuffix(he.Problem.Type, "overloaded") || !strings.Contains(he.Problem.Detail, "recording.max_sched_delay") {
			stop()
			t.Fatalf("new session under saturation: %v, want 503 overloaded naming recording.max_sched_delay", err)
		}
		if d, ok := whip.RetryAfter(err); !ok || d <= 0 {
			t.Errorf("no Retry-After: %v", err)
		}
		shed = he
	}
	select {
	case <-running.Done():
		t.Errorf("the running session's publisher ended before the shedding; make it publish longer")
	default:
	}
	stop()
	t.Logf("shed: %s", shed.Problem.Detail)

	// The load gone, new sessions are admitted again.
	var after *whip.Publisher
	deadline = time.Now().Add(60 * time.Second)
	for after == nil {
		if d, l := signal(); d > l {
			if time.Now().After(deadline) {
				t.Fatalf("60 s after the load went away: scheduling delay %v s, above the limit %v s", d, l)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		p, err := publish(t, g, "after", "p1", 2*time.Second)
		if whip.StatusCode(err) == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			t.Logf("after the load: %v; trying again", err)
			continue
		}
		if err != nil {
			t.Fatalf("after the load: %v", err)
		}
		after = p
	}
	recordedWithoutLoss(t, g, "after", "p1", finish(t, after))
	recordedWithoutLoss(t, g, "running", "p1", finish(t, running))
	if v := metric(t, metrics(t, g), `custodian_admission_rejected_total{reason="sched_delay"}`); v < 1 {
		t.Errorf("rejected %v, want at least 1", v)
	}
}
