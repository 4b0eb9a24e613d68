package recorder_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/internal/netns"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"gopkg.in/yaml.v3"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

// startGateway starts a real gateway (embedded SQLite, NATS, disk store)
// with loopback ICE and the given policy document (YAML list of rules).
func startGateway(tb testing.TB, policies string, mutate ...func(*config.Config)) *gatewaytest.Gateway {
	tb.Helper()
	return gatewaytest.Start(tb, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
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

// token creates a token of role in tenant default.
func token(tb testing.TB, g *gatewaytest.Gateway, role auth.Role, dept string) string {
	tb.Helper()
	tok, _, err := auth.CreateToken(context.Background(), g.DB, auth.Spec{Tenant: "default", Role: role, Department: dept, Name: "test", CreatedBy: "test"})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

var (
	audioMedia *whip.Media
	videoMedia *whip.Media
)

// media loads the test media once.
func media(tb testing.TB) (audio, video *whip.Media) {
	tb.Helper()
	if audioMedia == nil {
		a, err := whip.OpenOpus("../testdata/calls-long.ogg")
		if err != nil {
			tb.Fatal(err)
		}
		v, err := whip.OpenIVF("../testdata/testsrc-360p30.ivf")
		if err != nil {
			tb.Fatal(err)
		}
		audioMedia, videoMedia = a, v
	}
	return audioMedia, videoMedia
}

// apiDo sends a JSON request and decodes a JSON answer into out (when not
// nil). It returns the status.
func apiDo(tb testing.TB, g *gatewaytest.Gateway, tok, method, path string, body, out any) int {
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
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	if resp.StatusCode/100 != 2 && testing.Verbose() {
		tb.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func getSession(tb testing.TB, g *gatewaytest.Gateway, tok, id string) recorder.SessionDoc {
	tb.Helper()
	var d recorder.SessionDoc
	if st := apiDo(tb, g, tok, "GET", "/v1/sessions/"+id, nil, &d); st != http.StatusOK {
		tb.Fatalf("GET session %s: %d", id, st)
	}
	return d
}

// recordingsOf returns the recording rows of a session's participant.
func recordingsOf(tb testing.TB, g *gatewaytest.Gateway, session, participant string) []meta.Recording {
	tb.Helper()
	var rows []meta.Recording
	if err := g.DB.Where("session_id = ? AND participant_id = ?", session, participant).Order("started_at").Find(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	return rows
}

// waitRecording waits for exactly one recording of the participant in a
// final status and returns it.
func waitRecording(tb testing.TB, g *gatewaytest.Gateway, session, participant string) meta.Recording {
	tb.Helper()
	var rec meta.Recording
	checkFor(tb, 20*time.Second, 50*time.Millisecond, func() error {
		rows := recordingsOf(tb, g, session, participant)
		if len(rows) != 1 {
			return fmt.Errorf("%d recordings of %s/%s", len(rows), session, participant)
		}
		switch rows[0].Status {
		case meta.StatusComplete, meta.StatusFailed, meta.StatusRecovered:
			rec = rows[0]
			return nil
		}
		return fmt.Errorf("recording %s is %s", rows[0].ID, rows[0].Status)
	})
	return rec
}

// decrypt reads a recording back through the store (the code path of
// `custodian recording get`) into a file and returns its path.
func decrypt(tb testing.TB, store *storage.Store, rec meta.Recording) string {
	tb.Helper()
	ctx := context.Background()
	r, err := store.Open(ctx, rec.TenantID, rec.ID, storage.ReadOptions{AllowIncomplete: rec.Status != meta.StatusComplete})
	if err != nil {
		tb.Fatalf("open recording %s: %v", rec.ID, err)
	}
	defer r.Close()
	ext := ".ogg"
	if rec.ContentType != "audio/ogg" {
		ext = ".webm"
	}
	path := filepath.Join(tb.TempDir(), rec.ID+ext)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := r.Stream(ctx, f); err != nil {
		tb.Fatalf("stream recording %s: %v", rec.ID, err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// probe is what ffprobe says about a file.
type probe struct {
	Duration time.Duration
	Codecs   []string // codec_name per stream, in order
}

func ffprobe(tb testing.TB, path string) probe {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
		"-of", "json", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	var v struct {
		Format  struct{ Duration string }
		Streams []struct {
			CodecName string `json:"codec_name"`
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		tb.Fatalf("ffprobe output %s: %v", out, err)
	}
	secs, err := strconv.ParseFloat(v.Format.Duration, 64)
	if err != nil {
		// No duration in the header (an unfinished WebM): the end of the
		// last packet, as players compute it.
		secs = lastPacketEnd(tb, path)
	}
	p := probe{Duration: time.Duration(secs * float64(time.Second))}
	for _, s := range v.Streams {
		p.Codecs = append(p.Codecs, s.CodecName)
	}
	return p
}

// pcm decodes a recording's audio to 48 kHz mono signed 16-bit samples.
func pcm(tb testing.TB, path string) []int16 {
	tb.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", "48000",
		"-f", "s16le", "-").Output()
	if err != nil {
		tb.Fatalf("ffmpeg decode %s: %v", path, err)
	}
	s := make([]int16, len(out)/2)
	for i := range s {
		s[i] = int16(uint16(out[2*i]) | uint16(out[2*i+1])<<8)
	}
	return s
}

// rms is the root mean square of samples[from:to] (sample indexes).
func rms(s []int16, from, to int) float64 {
	from, to = max(from, 0), min(to, len(s))
	if to <= from {
		return 0
	}
	var sum float64
	for _, v := range s[from:to] {
		sum += float64(v) * float64(v)
	}
	return sqrt(sum / float64(to-from))
}

func sqrt(x float64) float64 {
	if x <= 0 {
		return 0
	}
	z := x
	for range 50 {
		z = (z + x/z) / 2
	}
	return z
}

// outbox returns the events of kind with subject, oldest first.
func outbox(tb testing.TB, g *gatewaytest.Gateway, kind, subject string) []meta.OutboxEvent {
	tb.Helper()
	var rows []meta.OutboxEvent
	q := g.DB.Where("kind = ?", kind)
	if subject != "" {
		q = q.Where("subject = ?", subject)
	}
	if err := q.Order("seq").Find(&rows).Error; err != nil {
		tb.Fatal(err)
	}
	return rows
}

func completeness(tb testing.TB, rec meta.Recording) map[string]any {
	tb.Helper()
	if rec.Completeness.V == nil {
		tb.Fatalf("recording %s has no completeness report", rec.ID)
	}
	return rec.Completeness.V
}

func num(m map[string]any, key string) float64 {
	f, _ := m[key].(float64)
	return f
}

func within(got, want, tol time.Duration) bool {
	d := got - want
	return d <= tol && d >= -tol
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// lastPacketEnd is the largest pts+duration of any packet ffprobe reads.
func lastPacketEnd(tb testing.TB, path string) float64 {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe packets %s: %v", path, err)
	}
	var end float64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		pts, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		d := 0.0
		if len(f) > 1 {
			d, _ = strconv.ParseFloat(f[1], 64)
		}
		end = max(end, pts+d)
	}
	if end == 0 {
		tb.Fatalf("ffprobe %s: no packets", path)
	}
	return end
}
