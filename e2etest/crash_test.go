package e2etest

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

func ffprobeDuration(tb testing.TB, path string) (time.Duration, []string) {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name", "-of", "json", path).Output()
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
		tb.Fatal(err)
	}
	secs, err := strconv.ParseFloat(v.Format.Duration, 64)
	if err != nil {
		tb.Fatalf("ffprobe %s: no duration (%q)", path, v.Format.Duration)
	}
	var codecs []string
	for _, s := range v.Streams {
		codecs = append(codecs, s.CodecName)
	}
	return time.Duration(secs * float64(time.Second)), codecs
}

// TestCrashAndShutdown: a `custodian serve` subprocess is killed with
// SIGKILL in the middle of a recording and started again: the recording is
// recovered (every sealed part readable, manifest complete=false, at most
// part_seconds of media lost) and a recording.recovered event is on the
// NATS stream. Then a recording is running when the same server gets
// SIGTERM: it is finalized as complete before the process exits.
func TestCrashAndShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	audio, err := whip.OpenOpus("../testdata/calls-long.ogg")
	if err != nil {
		t.Fatal(err)
	}
	video, err := whip.OpenIVF("../testdata/testsrc-360p30.ivf")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t)
	srv.start()
	tok := srv.adminToken()
	ctx := context.Background()

	// 1. kill -9 in the middle of a recording.
	// Audio and video: the recovered WebM must get its duration from
	// the last cluster (the writer never patched the header).
	pub, err := whip.Publish(ctx, whip.Options{URL: srv.url() + "/whip/crash-1/agent", Token: tok, Audio: audio, Video: video})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(5500 * time.Millisecond)
	killAt := time.Now()
	if err := srv.signal(syscall.SIGKILL, 10*time.Second); err == nil {
		t.Fatal("SIGKILL: process exited cleanly?")
	}
	_ = pub.Close(ctx) // the DELETE finds no server
	sent := killAt.Sub(start)

	restart := time.Now()
	srv.start()
	t.Logf("restart with recovery took %v", time.Since(restart).Round(time.Millisecond))
	var doc recorder.SessionDoc
	if st := srv.api(tok, "GET", "/v1/sessions/crash-1", nil, &doc); st != 200 {
		t.Fatalf("GET session: %d", st)
	}
	if len(doc.Recordings) != 1 || doc.Recordings[0].Status != meta.StatusRecovered {
		t.Fatalf("recordings after restart: %+v\n%s", doc.Recordings, srv.logTail())
	}
	crashed := doc.Recordings[0]
	t.Logf("recovered %s: %d parts, %d ms (sent for %v)", crashed.ID, crashed.Parts, crashed.DurationMS, sent)

	// The recording.recovered event is on the stream.
	nc, err := nats.Connect("nats://" + srv.natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var recovered events.CloudEvent
	checkFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{events.Subject("default", events.RecordingRecovered)}})
		if err != nil {
			return err
		}
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			var ce events.CloudEvent
			if json.Unmarshal(m.Data(), &ce) == nil && ce.Subject == crashed.ID {
				recovered = ce
			}
		}
		if recovered.ID == "" {
			return errors.New("no recording.recovered event for the recording yet")
		}
		return nil
	})
	var rd events.RecordingData
	_ = json.Unmarshal(recovered.Data, &rd)
	if recovered.Type != "io.custodian.recording.recovered" || rd.Status != meta.StatusRecovered || rd.Parts != crashed.Parts {
		t.Errorf("recovered event %+v data %+v", recovered, rd)
	}

	// 2. SIGTERM while recording: finalized as complete before exit.
	pub2, err := whip.Publish(ctx, whip.Options{URL: srv.url() + "/whip/term-1/agent", Token: tok, Audio: audio, Video: video})
	if err != nil {
		t.Fatal(err)
	}
	start2 := time.Now()
	time.Sleep(3 * time.Second)
	termAt := time.Now()
	if err := srv.signal(syscall.SIGTERM, 60*time.Second); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, srv.logTail())
	}
	t.Logf("SIGTERM to exit: %v", time.Since(termAt).Round(time.Millisecond))
	_ = pub2.Close(ctx)

	// Read both back with the CLI (`custodian recording get/verify`).
	cfg := config.Default()
	cfg.DataDir = srv.data
	g, err := gateway.New(ctx, cfg, nil, gateway.Options{LocalOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	var term meta.Recording
	if err := g.DB.Where("session_id = ?", "term-1").Take(&term).Error; err != nil {
		t.Fatal(err)
	}
	if term.Status != meta.StatusComplete {
		t.Fatalf("recording at SIGTERM: %s %s", term.Status, term.FailureReason)
	}
	for _, tc := range []struct {
		id       string
		want     time.Duration
		lo, hi   time.Duration
		codecs   string
		complete bool
	}{
		{crashed.ID, sent, sent - 2*time.Second - 300*time.Millisecond, sent + 100*time.Millisecond, "opus,vp8", false},
		{term.ID, termAt.Sub(start2), termAt.Sub(start2) - 100*time.Millisecond, termAt.Sub(start2) + 300*time.Millisecond, "opus,vp8", true},
	} {
		r, err := g.Store.Open(ctx, "default", tc.id, storage.ReadOptions{AllowIncomplete: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(ctx, nil); err != nil {
			t.Errorf("%s: verify: %v", tc.id, err)
		}
		if m := r.Manifest(); m.Complete != tc.complete {
			t.Errorf("%s: manifest complete=%v, want %v", tc.id, m.Complete, tc.complete)
		}
		r.Close()
		out := filepath.Join(t.TempDir(), tc.id+".media")
		if msg, err := srv.cli("recording", "get", tc.id, "-o", out, "--data", srv.data); err != nil {
			t.Fatalf("recording get: %v\n%s", err, msg)
		}
		if msg, err := srv.cli("recording", "verify", tc.id, "--data", srv.data); err != nil {
			t.Errorf("recording verify %s: %v\n%s", tc.id, err, msg)
		}
		d, codecs := ffprobeDuration(t, out)
		t.Logf("%s: %v of media, wall-clock %v", tc.id, d, tc.want)
		if d < tc.lo || d > tc.hi {
			t.Errorf("%s: duration %v, want %v–%v", tc.id, d, tc.lo, tc.hi)
		}
		if strings.Join(codecs, ",") != tc.codecs {
			t.Errorf("%s: codecs %v, want %s", tc.id, codecs, tc.codecs)
		}
	}
}
