package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/internal/netns"
	"github.com/custodian/custodian/recorder/loadgen"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }

func media(tb testing.TB) (*whip.Media, *whip.Media) {
	tb.Helper()
	a, err := whip.OpenOpus("../../testdata/call01.ogg")
	if err != nil {
		tb.Fatal(err)
	}
	v, err := whip.OpenIVF("../../testdata/testsrc-360p30.ivf")
	if err != nil {
		tb.Fatal(err)
	}
	return a, v
}

// TestRun: a few sessions for a few seconds against a real in-process
// gateway. The result's numbers agree with what the publishers sent and
// with the recordings in the gateway's database, and nothing is lost.
func TestRun(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
	})
	audio, video := media(t)
	const sessions, participants = 3, 2
	const dur = 4 * time.Second
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: g.URL(), Token: g.AdminToken, Sessions: sessions, Participants: participants, Duration: dur,
		Ramp: 10, Audio: audio, Video: video, Pacers: 2, SessionPrefix: "lgtest", ReadBack: true,
		GatewayPID: os.Getpid(), Warmup: 500 * time.Millisecond, // the in-process gateway: this process
	})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())

	n := sessions * participants
	if res.Sessions != (loadgen.Counts{Attempted: sessions, Connected: sessions}) ||
		res.Publishers != (loadgen.Counts{Attempted: n, Connected: n}) {
		t.Fatalf("sessions %+v, publishers %+v", res.Sessions, res.Publishers)
	}
	wantAudio := uint64(n) * uint64(dur/(20*time.Millisecond))
	if res.Packets.AudioSent != wantAudio || res.Packets.VideoSent < uint64(n)*90 || res.Packets.OnWire != res.Packets.Sent {
		t.Errorf("packets %+v, want %d audio and 30 fps of video", res.Packets, wantAudio)
	}
	if res.Setup.P50MS <= 0 || res.Setup.P99MS < res.Setup.P50MS || res.Setup.MaxMS < res.Setup.P99MS {
		t.Errorf("setup latency %+v", res.Setup)
	}
	rt := res.Recordings
	if rt == nil || rt.Expected != n || rt.Found != n || rt.Complete != n || rt.NotFound != 0 {
		t.Fatalf("recordings %+v", rt)
	}
	if rt.PacketsSent != res.Packets.Sent || rt.PacketsReceived != rt.PacketsSent || rt.Missing != 0 || rt.PacketsLost != 0 {
		t.Errorf("recorded packets: sent %d received %d lost %d missing %d; publishers sent %d",
			rt.PacketsSent, rt.PacketsReceived, rt.PacketsLost, rt.Missing, res.Packets.Sent)
	}
	if rt.DurationErrorMaxMS > 500 { // setup and teardown on a busy machine under -race
		t.Errorf("a recording's duration is %d ms off the time its publisher was connected", rt.DurationErrorMaxMS)
	}

	// The gateway's measurement (here the test process, gateway and load
	// generator in one).
	gw := res.Gateway
	if gw == nil || len(gw.Problems) > 0 || gw.WindowSeconds < 2 || gw.Sessions != sessions || gw.Connections != n ||
		gw.PacketsReceived == 0 || gw.CPUMicrosPerPacket <= 0 || gw.RSSBytes == 0 || gw.RSSPerSessionKiB <= 0 ||
		gw.PartsSealed < uint64(n)*2 || gw.SealP99MS <= 0 || gw.SealP99MS < gw.SealP50MS {
		t.Errorf("gateway stats %+v", gw)
	}
	// About 50 audio + 30 fps × 1-2 packets of video per second and
	// connection in the window.
	if perSec := float64(gw.PacketsReceived) / gw.WindowSeconds / float64(n); perSec < 70 || perSec > 150 {
		t.Errorf("%.0f packets per second and connection in the window", perSec)
	}

	// Each per-recording line is the gateway's row.
	if len(res.PerRecording) != n {
		t.Fatalf("%d per-recording results", len(res.PerRecording))
	}
	for _, pr := range res.PerRecording {
		var row meta.Recording
		if err := g.DB.Where("id = ?", pr.RecordingID).Take(&row).Error; err != nil {
			t.Fatalf("recording %s: %v", pr.RecordingID, err)
		}
		c := row.Completeness.V
		if row.SessionID != pr.SessionID || row.ParticipantID != pr.ParticipantID || row.Status != pr.Status ||
			row.DurationMS != pr.DurationMS || c["packets_received"] != float64(pr.PacketsReceived) ||
			c["packets_lost"] != float64(pr.PacketsLost) || row.ContentType != "video/webm" {
			t.Errorf("result %+v, row %s %s/%s %s %d ms %v", pr, row.ID, row.SessionID, row.ParticipantID, row.Status, row.DurationMS, c)
		}
		if !strings.HasPrefix(pr.SessionID, "lgtest-") || pr.PacketsSent == 0 || pr.Missing != 0 {
			t.Errorf("per recording %+v", pr)
		}
	}

	// The JSON is the same result, snake_case.
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["sessions"].(map[string]any)["connected"] != float64(sessions) ||
		back["recordings"].(map[string]any)["packets_received"] != float64(rt.PacketsReceived) ||
		back["setup_latency"].(map[string]any)["p99_ms"] != res.Setup.P99MS {
		t.Errorf("JSON %s", b)
	}
	// The capacity report of this run (as scripts/perf.sh makes it).
	var md bytes.Buffer
	if err := loadgen.WriteReport(&md, []*loadgen.Result{res}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"**Audio + VP8 (call01.ogg, testsrc-360p30.ivf)**", "| 3 | 3 | ", " | 0 (0) | ",
		"Highest load with every session connected and nothing lost: **3 sessions**"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	for _, want := range []string{"sessions    3", "publishers  6", "6 of 6 found, 6 complete"} {
		if !strings.Contains(strings.Join(strings.Fields(table.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("table lacks %q", want)
		}
	}
}

// TestRunRejected: publishers the gateway refuses count as failed, by
// reason, and do not stop the run.
func TestRunRejected(t *testing.T) {
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
	})
	tok, _, err := auth.CreateToken(context.Background(), g.DB, auth.Spec{Tenant: "default", Role: auth.RoleAuditor, Name: "t", CreatedBy: "t"})
	if err != nil {
		t.Fatal(err)
	}
	audio, _ := media(t)
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: g.URL(), Token: tok, Sessions: 2, Duration: time.Second, Audio: audio, ReadBack: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Publishers.Failed != 2 || res.Failures["http_403"] != 2 || res.Sessions.Failed != 2 || len(res.FailureSamples) != 2 {
		t.Errorf("publishers %+v, failures %v %q", res.Publishers, res.Failures, res.FailureSamples)
	}
	if res.Recordings == nil || res.Recordings.Expected != 0 {
		t.Errorf("recordings %+v", res.Recordings)
	}
}

func TestOptionsValidate(t *testing.T) {
	audio, _ := media(t)
	ok := loadgen.Options{URL: "http://127.0.0.1:8080", Sessions: 1, Duration: time.Second, Audio: audio}
	tests := []struct {
		name string
		mod  func(*loadgen.Options)
	}{
		{"no url", func(o *loadgen.Options) { o.URL = "" }},
		{"not http", func(o *loadgen.Options) { o.URL = "ftp://x/" }},
		{"query", func(o *loadgen.Options) { o.URL = "http://x/?a=1" }},
		{"no sessions", func(o *loadgen.Options) { o.Sessions = 0 }},
		{"too many sessions", func(o *loadgen.Options) { o.Sessions = loadgen.MaxSessions + 1 }},
		{"participants", func(o *loadgen.Options) { o.Participants = 17 }},
		{"no duration", func(o *loadgen.Options) { o.Duration = 0 }},
		{"negative ramp", func(o *loadgen.Options) { o.Ramp = -1 }},
		{"no media", func(o *loadgen.Options) { o.Audio = nil }},
		{"no retransmit", func(o *loadgen.Options) { o.Impairment.NoRetransmit = true }},
		{"pacers", func(o *loadgen.Options) { o.Pacers = 65 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mod(&o)
			if err := o.Validate(); !errors.Is(err, loadgen.ErrOptions) {
				t.Errorf("Validate = %v, want ErrOptions", err)
			}
		})
	}
	o := ok
	if err := o.Validate(); err != nil || o.Participants != 1 || o.Pacers != 1 || o.SessionPrefix == "" {
		t.Errorf("valid options: %v %+v", err, o)
	}
}
