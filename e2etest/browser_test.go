package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

const chromiumPath = "/usr/bin/chromium"

// requireBrowser skips (fails in CI) when Chromium or the e2e Node package
// is missing.
func requireBrowser(tb testing.TB) {
	tb.Helper()
	missing := ""
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = chromiumPath
	} else if _, err := os.Stat("../e2e/node_modules/playwright-core"); err != nil {
		missing = "e2e/node_modules/playwright-core (run scripts/deps.sh or npm ci in e2e/)"
	} else if _, err := exec.LookPath("node"); err != nil {
		missing = "node"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("browser test needs %s", missing)
	}
	tb.Skipf("browser test needs %s", missing)
}

type browserParticipant struct {
	ID          string `json:"id"`
	Location    string `json:"location"`
	ConnectedAt int64  `json:"connectedAt"` // ms since the epoch, in the page
	DeleteAt    int64  `json:"deleteAt"`
	SetupMS     int64  `json:"setupMs"`
	OfferMS     int64  `json:"offerMs"`
	Status      int    `json:"deleteStatus"`
	Stats       map[string]struct {
		PacketsSent int64 `json:"packetsSent"`
		BytesSent   int64 `json:"bytesSent"`
	} `json:"stats"`
}

// TestBrowserPublishers: two headless Chromium processes publish real
// speech (one of them with its fake camera) over WHIP into one session at
// the same time. Both recordings decrypt, ffprobe finds the right codecs
// and durations, their start offsets on the session clock agree with when
// the browsers connected (within 100 ms), and nothing under DATA holds an
// Ogg page or an EBML header in clear.
func TestBrowserPublishers(t *testing.T) {
	requireBrowser(t)
	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
	})
	tok, _, err := auth.CreateToken(context.Background(), g.DB, auth.Spec{Tenant: "default", Role: auth.RoleIngest, Name: "browser", CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	speech, err := filepath.Abs("../testdata/speech")
	if err != nil {
		t.Fatal(err)
	}
	const session = "browser-1"
	const seconds = 8
	arg, _ := json.Marshal(map[string]any{
		"url": g.URL(), "token": tok, "session": session, "seconds": seconds, "chromium": chromiumPath,
		"participants": []map[string]any{
			{"id": "agent", "name": "Agent", "audio": filepath.Join(speech, "call01.wav"), "video": false},
			{"id": "customer", "name": "Customer", "audio": filepath.Join(speech, "call02.wav"), "video": true},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "publish.mjs", string(arg))
	cmd.Dir = "../e2e"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("publish.mjs: %v\n%s", err, stderr.String())
	}
	t.Logf("browsers ran for %v", time.Since(began).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("publish.mjs:\n%s", stderr.String())
	}
	var res struct{ Participants []browserParticipant }
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Participants) != 2 {
		t.Fatalf("publish.mjs output %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	byID := map[string]browserParticipant{}
	for _, p := range res.Participants {
		byID[p.ID] = p
		t.Logf("%s: offer %d ms, POST to connected %d ms, DELETE %d, sent %+v", p.ID, p.OfferMS, p.SetupMS, p.Status, p.Stats)
		if p.Status != 200 {
			t.Errorf("%s: DELETE answered %d", p.ID, p.Status)
		}
	}

	recs := map[string]meta.Recording{}
	checkFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		var rows []meta.Recording
		g.DB.Where("session_id = ?", session).Find(&rows)
		for _, r := range rows {
			if r.Status != meta.StatusComplete {
				return fmt.Errorf("recording %s of %s is %s %s", r.ID, r.ParticipantID, r.Status, r.FailureReason)
			}
			recs[r.ParticipantID] = r
		}
		if len(rows) != 2 {
			return fmt.Errorf("%d recordings", len(rows))
		}
		return nil
	})
	want := map[string]struct {
		contentType string
		codecs      []string
	}{
		"agent":    {"audio/ogg", []string{"opus"}},
		"customer": {"video/webm", []string{"opus", "vp8"}},
	}
	for id, w := range want {
		rec, p := recs[id], byID[id]
		if rec.ContentType != w.contentType {
			t.Errorf("%s: content type %s, want %s", id, rec.ContentType, w.contentType)
		}
		out := filepath.Join(t.TempDir(), id+".media")
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
		span := time.Duration(p.DeleteAt-p.ConnectedAt) * time.Millisecond
		t.Logf("%s: %s %v, %v of media; browser connected→DELETE %v; starts at %d ms on the session clock",
			id, rec.ContentType, codecs, d, span, rec.StartOffsetMS)
		if !slices.Equal(codecs, w.codecs) {
			t.Errorf("%s: codecs %v, want %v", id, codecs, w.codecs)
		}
		if d < span-250*time.Millisecond || d > span+250*time.Millisecond {
			t.Errorf("%s: duration %v, browser span %v", id, d, span)
		}
		if !within(time.Duration(rec.DurationMS)*time.Millisecond, d, 50*time.Millisecond) {
			t.Errorf("%s: row duration %d ms, file %v", id, rec.DurationMS, d)
		}
		if id == "agent" {
			if r := speechRMS(t, out); r < 300 {
				t.Errorf("agent recording RMS %.0f: no speech", r)
			}
		}
	}
	// Both recordings are on the session clock: the difference of their
	// start offsets is the difference of when the browsers connected.
	dRec := recs["customer"].StartOffsetMS - recs["agent"].StartOffsetMS
	dBrowser := byID["customer"].ConnectedAt - byID["agent"].ConnectedAt
	t.Logf("start offset difference: recordings %d ms, browsers %d ms", dRec, dBrowser)
	if d := dRec - dBrowser; d > 100 || d < -100 {
		t.Errorf("start offsets differ by %d ms, the browsers connected %d ms apart", dRec, dBrowser)
	}

	g.Stop(t)
	scanPlaintext(t, g.Config.DataDir)
}

// scanPlaintext fails if any file under dir holds an Ogg page ("OggS")
// or an EBML header (1A 45 DF A3): media must only exist encrypted.
func scanPlaintext(tb testing.TB, dir string) {
	tb.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		if i := bytes.Index(b, []byte("OggS")); i >= 0 {
			tb.Errorf("%s holds \"OggS\" at offset %d", p, i)
		}
		if i := bytes.Index(b, []byte{0x1A, 0x45, 0xDF, 0xA3}); i >= 0 {
			tb.Errorf("%s holds an EBML header at offset %d", p, i)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Logf("scanned %d files under DATA: no plaintext media", n)
}

func within(got, want, tol time.Duration) bool {
	d := got - want
	return d <= tol && d >= -tol
}

// speechRMS decodes a recording's audio and returns its RMS level.
func speechRMS(tb testing.TB, path string) float64 {
	tb.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-").Output()
	if err != nil {
		tb.Fatalf("ffmpeg: %v", err)
	}
	var sum float64
	n := len(out) / 2
	for i := 0; i < n; i++ {
		v := float64(int16(uint16(out[2*i]) | uint16(out[2*i+1])<<8))
		sum += v * v
	}
	if n == 0 {
		return 0
	}
	m := sum / float64(n)
	z := m
	for range 50 {
		if z == 0 {
			break
		}
		z = (z + m/z) / 2
	}
	return z
}
