package recorder_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
)

// TestRecordImpairedPublishers: three pion publishers in one session, each
// with a hostile network: 5 % loss, reordering, jitter, a 3-second DTX
// silence, RTP sequence and timestamp wrap-around, an SSRC change. Every
// recording decrypts, ffprobe reads it with the right codecs, and its
// duration is within 100 ms of the wall-clock span of its connection. The
// completeness reports and events say what happened.
func TestRecordImpairedPublishers(t *testing.T) {
	g := startGateway(t, "")
	tok := token(t, g, auth.RoleIngest, "")
	audio, video := media(t)
	const session = "impaired-1"
	url := g.URL() + "/whip/" + session + "/"
	type run struct {
		name        string
		opts        whip.Options
		wantContent string
		wantCodecs  []string
		sendFor     time.Duration

		start, end time.Time
		pub        *whip.Publisher
	}
	runs := []*run{
		{name: "agent-audio", wantContent: "audio/ogg", wantCodecs: []string{"opus"}, sendFor: 9 * time.Second,
			opts: whip.Options{Audio: audio, Impairment: whip.Impairment{
				LossPercent: 5, ReorderPercent: 5, Jitter: 30 * time.Millisecond,
				DTX: []whip.Gap{{Start: 3 * time.Second, Length: 3 * time.Second}}, WrapAfter: 2 * time.Second, Seed: 1,
			}}},
		{name: "customer-video", wantContent: "video/webm", wantCodecs: []string{"opus", "vp8"}, sendFor: 9 * time.Second,
			opts: whip.Options{Audio: audio, Video: video, Impairment: whip.Impairment{
				LossPercent: 5, ReorderPercent: 5, Jitter: 30 * time.Millisecond,
				DTX: []whip.Gap{{Start: 2 * time.Second, Length: 3 * time.Second}}, WrapAfter: 4 * time.Second, Seed: 2,
			}}},
		{name: "restarting-encoder", wantContent: "audio/ogg", wantCodecs: []string{"opus"}, sendFor: 7 * time.Second,
			opts: whip.Options{Audio: audio, OmitSSRC: true, Impairment: whip.Impairment{SSRCChangeAt: 3 * time.Second, Seed: 3}}},
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, rn := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := rn.opts
			o.URL, o.Token, o.Duration, o.Name = url+rn.name, tok, rn.sendFor, rn.name
			pub, err := whip.Publish(ctx, o)
			rn.start = time.Now()
			if err != nil {
				t.Errorf("%s: publish: %v", rn.name, err)
				return
			}
			rn.pub = pub
			t.Logf("%s: setup latency %v", rn.name, pub.Stats().SetupLatency)
			_ = pub.Wait(ctx)
			time.Sleep(300 * time.Millisecond) // the connection outlives the media: the tail is silence
			rn.end = time.Now()
			if err := pub.Close(ctx); err != nil {
				t.Errorf("%s: close: %v", rn.name, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	tokAdmin := g.AdminToken
	doc := getSession(t, g, tokAdmin, session)
	if doc.Status != meta.SessionActive || len(doc.Participants) != 3 {
		t.Fatalf("session %+v", doc)
	}
	for _, rn := range runs {
		t.Run(rn.name, func(t *testing.T) {
			rec := waitRecording(t, g, session, rn.name)
			if rec.Status != meta.StatusComplete {
				t.Fatalf("status %s (%s)", rec.Status, rec.FailureReason)
			}
			if rec.ContentType != rn.wantContent {
				t.Errorf("content type %s, want %s", rec.ContentType, rn.wantContent)
			}
			path := decrypt(t, g.Store, rec)
			p := ffprobe(t, path)
			if !slices.Equal(p.Codecs, rn.wantCodecs) {
				t.Errorf("ffprobe codecs %v, want %v", p.Codecs, rn.wantCodecs)
			}
			span := rn.end.Sub(rn.start)
			t.Logf("wall-clock span %v, recording %v (row %d ms), ffprobe %v", span, rec.DurationMS, rec.DurationMS, p.Duration)
			if !within(p.Duration, span, 100*time.Millisecond) {
				t.Errorf("ffprobe duration %v, wall-clock span %v: off by more than 100 ms", p.Duration, span)
			}
			if !within(time.Duration(rec.DurationMS)*time.Millisecond, p.Duration, 50*time.Millisecond) {
				t.Errorf("row duration %d ms, file %v", rec.DurationMS, p.Duration)
			}
			c := completeness(t, rec)
			st := rn.pub.Stats()
			t.Logf("report: expected %v received %v lost %v late %v dup %v invalid %v keyframe_requests %v nacks %v ssrc_changes %v; publisher dropped audio %d video %d",
				c["packets_expected"], c["packets_received"], c["packets_lost"], c["packets_late"], c["packets_duplicate"],
				c["packets_dropped_invalid"], c["keyframe_requests"], c["nacks_sent"], c["ssrc_changes"], st.Audio.Dropped, st.Video.Dropped)
			if rn.opts.Impairment.LossPercent > 0 {
				if num(c, "packets_lost") == 0 || num(c, "packets_expected") < num(c, "packets_received") {
					t.Errorf("report shows no loss: %v", c)
				}
				if ranges, _ := c["lost_ranges"].([]any); len(ranges) == 0 {
					t.Errorf("no lost ranges in the report")
				}
			}
			if rn.opts.Impairment.SSRCChangeAt > 0 && num(c, "ssrc_changes") != 1 {
				t.Errorf("ssrc_changes %v, want 1", c["ssrc_changes"])
			}
			if rn.opts.Video != nil && num(c, "keyframe_requests") == 0 {
				t.Errorf("no keyframe requests for video with loss")
			}
			if len(outbox(t, g, "recording.started", rec.ID)) != 1 || len(outbox(t, g, "recording.completed", rec.ID)) != 1 {
				t.Errorf("want one recording.started and one recording.completed event")
			}
		})
	}
	if n := len(outbox(t, g, "session.started", session)); n != 1 {
		t.Errorf("%d session.started events", n)
	}
	// The recorder's metrics.
	resp, err := http.Get(g.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{
		`(?m)^custodian_recordings_total\{status="complete"\} 3$`,
		`(?m)^custodian_recordings_total\{status="recording"\} 3$`,
		`(?m)^custodian_whip_setup_seconds_count 3$`,
		`(?m)^custodian_recording_finalize_seconds_count 3$`,
		`(?m)^custodian_rtp_packets_received_total [1-9][0-9]{3}`,
		`(?m)^custodian_rtp_packets_lost_total [1-9]`,
		`(?m)^custodian_sessions_active 1$`,
		`(?m)^custodian_tracks_active 0$`,
	} {
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("/metrics does not match %s", re)
		}
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "custodian_whip_setup_seconds_sum") || strings.HasPrefix(line, "custodian_recording_finalize_seconds_sum") {
			t.Log(line)
		}
	}
}
