package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/internal/netns"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/job"
	"github.com/custodian/custodian/transcribe/render"
	"github.com/custodian/custodian/transcribe/sphinx"
	"github.com/custodian/custodian/transcribe/wer"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

// startGateway starts a gateway that records and transcribes everything,
// with loopback ICE and one offline transcription worker.
func startGateway(tb testing.TB) *gatewaytest.Gateway {
	tb.Helper()
	return gatewaytest.Start(tb, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
		c.Transcription.Workers = 1
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte("- name: everything\n  record: required\n  transcribe: true\n"), &doc); err != nil {
			tb.Fatal(err)
		}
		c.Policies = *doc.Content[0]
	})
}

// encodeOpus encodes a WAV file to Ogg Opus in dir the way WebRTC sends
// speech: mono, 20 ms frames, 32 kbit/s.
func encodeOpus(tb testing.TB, wav, dir string) string {
	tb.Helper()
	out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(wav), ".wav")+".ogg")
	cmd := exec.Command("opusenc", "--quiet", "--bitrate", "32", "--framesize", "20", wav, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Skipf("opusenc (Debian opus-tools) needed: %v %s", err, b)
	}
	return out
}

// publishFile sends an Ogg Opus file once over WHIP as session/participant
// and ends the publication (DELETE), which finalizes the recording.
func publishFile(tb testing.TB, g *gatewaytest.Gateway, session, participant, name string, m *whip.Media) error {
	tb.Helper()
	ctx := context.Background()
	p, err := whip.Publish(ctx, whip.Options{
		URL: g.URL() + "/whip/" + session + "/" + participant, Token: g.AdminToken, Name: name,
		Audio: m, Duration: m.Length,
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", participant, err)
	}
	wctx, cancel := context.WithTimeout(ctx, m.Length+30*time.Second)
	defer cancel()
	err = p.Wait(wctx)
	return errorsJoin(err, p.Close(ctx))
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// recordingOf waits for the one recording of a participant to have a
// completed transcript and returns both.
func recordingOf(tb testing.TB, g *gatewaytest.Gateway, session, participant string, total time.Duration) (meta.Recording, transcribe.Transcript) {
	tb.Helper()
	var rec meta.Recording
	checkFor(tb, total, 100*time.Millisecond, func() error {
		if err := g.DB.Where("session_id = ? AND participant_id = ?", session, participant).Take(&rec).Error; err != nil {
			return err
		}
		var row meta.Transcript
		if err := g.DB.Where("recording_id = ?", rec.ID).Take(&row).Error; err != nil {
			return fmt.Errorf("recording %s (%s): no transcript row: %w", rec.ID, rec.Status, err)
		}
		if row.Status != meta.TranscriptCompleted {
			return fmt.Errorf("transcript of %s is %s %s", rec.ID, row.Status, row.FailureReason)
		}
		return nil
	})
	pt, err := g.Store.GetObject(context.Background(), rec.TenantID, rec.ID, job.ObjectTranscript)
	if err != nil {
		tb.Fatal(err)
	}
	var tr transcribe.Transcript
	if err := json.Unmarshal(pt, &tr); err != nil {
		tb.Fatal(err)
	}
	return rec, tr
}

func allWords(tr transcribe.Transcript) []transcribe.Word {
	var ws []transcribe.Word
	for _, s := range tr.Segments {
		ws = append(ws, s.Words...)
	}
	return ws
}

// TestPipelineWER: the word error rate of every LibriVox utterance in
// Debian's pocketsphinx-testdata sent as Opus over WHIP, recorded,
// decoded and transcribed by the gateway must stay within 3 points of the
// same engine on the original WAV files. The Opus files alone (decoded
// and transcribed the way a job does, without the network and the
// recorder) are scored too, to tell codec loss from transport loss.
func TestPipelineWER(t *testing.T) {
	samples, err := wer.LoadLibriVox(wer.LibriVoxDir)
	if err != nil {
		t.Skipf("LibriVox test data (Debian pocketsphinx-testdata): %v", err)
	}
	en, err := sphinx.New(config.Offline{})
	if err != nil {
		t.Skipf("offline engine: %v", err)
	}
	defer en.Close()
	ctx := context.Background()
	base, err := wer.Evaluate(ctx, en, samples)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	oggs := make([]string, len(samples))
	var opusRep wer.Report
	for i, s := range samples {
		oggs[i] = encodeOpus(t, filepath.Join(wer.LibriVoxDir, s.ID+".wav"), dir)
		opusRep.Add(s.ID, s.Reference, wer.Text(transcribeFile(t, en, oggs[i])))
	}

	g := startGateway(t)
	if g.Transcription() == nil || g.Transcription().Engines == nil {
		t.Skip("gateway has no transcription worker")
	}
	// All five publishers at once; one at a time under the race
	// detector, which slows pion too much for five real-time streams on
	// two cores.
	var wg sync.WaitGroup
	errs := make([]error, len(samples))
	for i := range samples {
		m, err := whip.OpenOpus(oggs[i])
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = publishFile(t, g, fmt.Sprintf("wer-%d", i), "reader", "Reader", m) })
		if raceEnabled {
			wg.Wait()
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var pipe wer.Report
	for i, s := range samples {
		rec, tr := recordingOf(t, g, fmt.Sprintf("wer-%d", i), "reader", 3*time.Minute)
		res := pipe.Add(s.ID, s.Reference, wer.Text(allWords(tr)))
		// The recorded audio against the sent file's, both decoded.
		off, snr := compareAudio(decodeOgg(t, recordingBytes(t, g, rec)), decodeOggFile(t, oggs[i]))
		t.Logf("%s: recording = sent audio delayed %.1f ms, SNR %.1f dB", s.ID, float64(off)/16, snr)
		if snr < 30 {
			t.Errorf("%s: recorded audio differs from the sent audio (SNR %.1f dB)", s.ID, snr)
		}
		t.Logf("%s: %.1fs recorded (%v packets lost), WER wav %.1f%% opus %.1f%% whip %.1f%%\n  wav:  %s\n  opus: %s\n  whip: %s", s.ID, float64(rec.DurationMS)/1000,
			packetsLost(rec), 100*base.Results[i].Counts.Rate(), 100*opusRep.Results[i].Counts.Rate(), 100*res.Counts.Rate(),
			base.Results[i].Hypothesis, opusRep.Results[i].Hypothesis, res.Hypothesis)
	}
	t.Logf("WER over %d utterances (%d words): WAV %.1f%% (%v), Opus file %.1f%% (%v), WHIP recording %.1f%% (%v)",
		len(samples), base.Total.Ref, 100*base.Rate(), base.Total, 100*opusRep.Rate(), opusRep.Total, 100*pipe.Rate(), pipe.Total)
	if d := pipe.Rate() - base.Rate(); d > 0.03 {
		t.Errorf("the pipeline makes the engine worse by %.1f points (WAV %.1f%%, WHIP %.1f%%); the bound is 3",
			100*d, 100*base.Rate(), 100*pipe.Rate())
	}
}

// recordingBytes decrypts a recording into memory.
func recordingBytes(tb testing.TB, g *gatewaytest.Gateway, rec meta.Recording) []byte {
	tb.Helper()
	r, err := g.Store.Open(context.Background(), rec.TenantID, rec.ID, storage.ReadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	var b bytes.Buffer
	if _, err := r.Stream(context.Background(), &b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func decodeOggFile(tb testing.TB, path string) []int16 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return decodeOgg(tb, b)
}

func decodeOgg(tb testing.TB, b []byte) []int16 {
	tb.Helper()
	var out []int16
	err := audio.Decode(context.Background(), bytes.NewReader(b), audio.ContentTypeOgg, audio.Options{}, func(p []int16) error {
		out = append(out, p...)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// compareAudio finds the delay of got against want (±125 ms) by cross
// correlation and returns it with the signal-to-noise ratio of got
// against want at that delay (+Inf when identical).
func compareAudio(got, want []int16) (delay int, snrDB float64) {
	best := math.Inf(-1)
	for off := -2000; off <= 2000; off++ {
		var s float64
		for i := 0; i < len(want); i += 4 {
			if j := i + off; j >= 0 && j < len(got) {
				s += float64(got[j]) * float64(want[i])
			}
		}
		if s > best {
			best, delay = s, off
		}
	}
	var sig, noise float64
	for i, w := range want {
		if j := i + delay; j >= 0 && j < len(got) {
			d := float64(got[j]) - float64(w)
			sig += float64(w) * float64(w)
			noise += d * d
		}
	}
	return delay, 10 * math.Log10(sig/noise)
}

// packetsLost reads the lost packet count from a recording's
// completeness report.
func packetsLost(rec meta.Recording) any { return rec.Completeness.V["packets_lost"] }

// transcribeFile decodes an Ogg Opus file in chunks, as a job does, and
// transcribes each chunk.
func transcribeFile(tb testing.TB, en transcribe.Engine, path string) []transcribe.Word {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []transcribe.Word
	for a, err := range audio.Chunks(context.Background(), f, audio.ContentTypeOgg, audio.Options{}) {
		if err != nil {
			tb.Fatal(err)
		}
		ws, err := en.Transcribe(context.Background(), a)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, ws...)
	}
	return out
}

// TestSessionTranscriptOverWHIP: Bob publishes first, Alice joins four
// seconds later; both recordings are transcribed and GET
// /v1/sessions/{id}/transcript merges them on the session clock: segments
// in time order, each under its speaker's display name, Alice's words no
// earlier than her recording's start.
func TestSessionTranscriptOverWHIP(t *testing.T) {
	g := startGateway(t)
	if g.Transcription() == nil || g.Transcription().Engines == nil {
		t.Skip("gateway has no transcription worker")
	}
	bobMedia, err := whip.OpenOpus("../../../testdata/call02.ogg")
	if err != nil {
		t.Fatal(err)
	}
	aliceMedia, err := whip.OpenOpus("../../../testdata/call01.ogg")
	if err != nil {
		t.Fatal(err)
	}
	const session = "two-speakers"
	var wg sync.WaitGroup
	var bobErr, aliceErr error
	wg.Go(func() { bobErr = publishFile(t, g, session, "bob", "Bob", bobMedia) })
	time.Sleep(4 * time.Second)
	wg.Go(func() { aliceErr = publishFile(t, g, session, "alice", "Alice", aliceMedia) })
	wg.Wait()
	if bobErr != nil || aliceErr != nil {
		t.Fatal(bobErr, aliceErr)
	}
	bob, _ := recordingOf(t, g, session, "bob", 3*time.Minute)
	alice, _ := recordingOf(t, g, session, "alice", 3*time.Minute)
	t.Logf("start offsets: bob %d ms, alice %d ms", bob.StartOffsetMS, alice.StartOffsetMS)
	if alice.StartOffsetMS < bob.StartOffsetMS+3000 {
		t.Fatalf("alice starts at %d ms, bob at %d ms: want alice about 4 s later", alice.StartOffsetMS, bob.StartOffsetMS)
	}

	req, _ := http.NewRequest("GET", g.URL()+"/v1/sessions/"+session+"/transcript", nil)
	req.Header.Set("Authorization", "Bearer "+g.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET session transcript: %d %s", resp.StatusCode, body)
	}
	var m render.Merged
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, s := range m.Segments {
		if i > 0 && s.StartMS < m.Segments[i-1].StartMS {
			t.Errorf("segment %d at %d ms before segment %d at %d ms", i, s.StartMS, i-1, m.Segments[i-1].StartMS)
		}
		seen[s.Speaker] = true
		switch s.Speaker {
		case "Alice":
			if s.StartMS < alice.StartOffsetMS || s.RecordingID != alice.ID {
				t.Errorf("Alice's segment at %d ms (recording %s), her recording starts at %d ms", s.StartMS, s.RecordingID, alice.StartOffsetMS)
			}
		case "Bob":
			if s.StartMS < bob.StartOffsetMS || s.EndMS > bob.StartOffsetMS+bob.DurationMS+100 || s.RecordingID != bob.ID {
				t.Errorf("Bob's segment [%d, %d] ms outside his recording", s.StartMS, s.EndMS)
			}
		default:
			t.Errorf("segment with speaker %q", s.Speaker)
		}
	}
	if !seen["Alice"] || !seen["Bob"] {
		t.Errorf("speakers %v, want Alice and Bob", seen)
	}
	var txt strings.Builder
	render.Text(&txt, m.Segments, 0)
	t.Logf("session transcript:\n%s", txt.String())
}
