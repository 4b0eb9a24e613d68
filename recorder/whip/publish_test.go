package whip_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/whip"
)

var (
	loadOnce     sync.Once
	audio, video *whip.Media
	loadErr      error
)

func media(t *testing.T) (*whip.Media, *whip.Media) {
	t.Helper()
	loadOnce.Do(func() {
		audio, loadErr = whip.OpenOpus("../../testdata/call01.ogg")
		if loadErr == nil {
			video, loadErr = whip.OpenIVF("../../testdata/testsrc-360p30.ivf")
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return audio, video
}

func TestOpenMedia(t *testing.T) {
	a, v := media(t)
	if a.Kind != "audio" || a.ClockRate != 48000 || len(a.Frames) < 300 {
		t.Fatalf("audio: %s %d Hz %d frames", a.Kind, a.ClockRate, len(a.Frames))
	}
	for i, f := range a.Frames {
		if f.Duration != 20*time.Millisecond || f.RTPDuration != 960 || f.Packets != 1 {
			t.Fatalf("audio frame %d: %v %d ticks %d packets", i, f.Duration, f.RTPDuration, f.Packets)
		}
	}
	// ffprobe: 7.155 s including pre-skip; the packets cover 7.16 s.
	if a.Length < 7100*time.Millisecond || a.Length > 7200*time.Millisecond {
		t.Errorf("audio length %v", a.Length)
	}
	if v.Kind != "video" || len(v.Frames) != 120 || v.Length != 4*time.Second {
		t.Fatalf("video: %s %d frames, %v", v.Kind, len(v.Frames), v.Length)
	}
	keys := 0
	for _, f := range v.Frames {
		if f.RTPDuration != 3000 {
			t.Fatalf("video frame of %d ticks, want 3000 (30 fps)", f.RTPDuration)
		}
		if f.Keyframe {
			keys++
		}
	}
	if !v.Frames[0].Keyframe || keys != 4 {
		t.Errorf("keyframes: first %v, %d in all, want 4 (every 30 frames)", v.Frames[0].Keyframe, keys)
	}
	if _, err := whip.OpenOpus("../../testdata/testsrc-360p30.ivf"); err == nil {
		t.Error("OpenOpus accepted an IVF file")
	}
	if _, err := whip.OpenIVF("../../testdata/call01.ogg"); err == nil {
		t.Error("OpenIVF accepted an Ogg file")
	}
}

func TestPublishAudioVideo(t *testing.T) {
	a, v := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token,
		Name: "Ada L", Consent: "granted", Department: "trading",
		Labels: map[string]string{"desk": "fx", "case": "42"},
		Audio:  a, Video: v, Duration: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := e.srv.URL + "/whip/s1/p1/r1"; pub.Location() != want {
		t.Errorf("Location = %q, want %q", pub.Location(), want)
	}
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	if st.SetupLatency <= 0 || st.SetupLatency > 10*time.Second {
		t.Errorf("SetupLatency = %v", st.SetupLatency)
	}
	// 2 s of 20 ms packets and 30 fps frames.
	if st.Audio.Packets != 100 || st.Audio.Frames != 100 {
		t.Errorf("audio sent %d packets, %d frames, want 100", st.Audio.Packets, st.Audio.Frames)
	}
	if st.Video.Frames != 60 || st.Video.Packets < 60 {
		t.Errorf("video sent %d frames, %d packets, want 60 frames", st.Video.Frames, st.Video.Packets)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		as, vs := e.kind("audio"), e.kind("video")
		if len(as) != 1 || len(vs) != 1 {
			return fmt.Errorf("%d audio, %d video streams", len(as), len(vs))
		}
		if uint64(len(as[0].Seqs)) != st.Audio.Packets || uint64(len(vs[0].Seqs)) != st.Video.Packets {
			return fmt.Errorf("received %d/%d audio, %d/%d video packets", len(as[0].Seqs), st.Audio.Packets, len(vs[0].Seqs), st.Video.Packets)
		}
		return nil
	})
	vs := e.kind("video")[0]
	frames := 0
	for _, m := range vs.Markers {
		if m {
			frames++
		}
	}
	if frames != 60 {
		t.Errorf("received %d video frames (marker bits), want 60", frames)
	}
	// Real-time pacing: the audio arrived over about 2 s.
	as := e.kind("audio")[0]
	if span := as.Arrivals[len(as.Arrivals)-1].Sub(as.Arrivals[0]); span < 1800*time.Millisecond {
		t.Errorf("100 audio packets arrived within %v: not paced", span)
	}

	e.mu.Lock()
	r := e.posts[0]
	e.mu.Unlock()
	q := query(t, r)
	if q.Get("name") != "Ada L" || q.Get("consent") != "granted" || q.Get("department") != "trading" || q.Get("labels") != "case=42,desk=fx" {
		t.Errorf("query = %v", q)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	deletes := slices.Clone(e.deletes)
	e.mu.Unlock()
	if !slices.Equal(deletes, []string{"/whip/s1/p1/r1"}) {
		t.Errorf("DELETEs = %v", deletes)
	}
	if err := pub.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestPublishLossWithoutRetransmission: dropped packets show up as missing
// sequence numbers at the receiver.
func TestPublishLossWithoutRetransmission(t *testing.T) {
	a, v := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token, Audio: a, Video: v, Duration: 3 * time.Second,
		Impairment: whip.Impairment{LossPercent: 10, NoRetransmit: true, Seed: 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	for _, kind := range []string{"audio", "video"} {
		ss := st.Audio
		if kind == "video" {
			ss = st.Video
		}
		var got []received
		checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
			got = e.kind(kind)
			if len(got) != 1 || uint64(len(got[0].Seqs))+ss.Dropped != ss.Packets {
				return fmt.Errorf("%s: %d streams; want %d received", kind, len(got), ss.Packets-ss.Dropped)
			}
			return nil
		})
		lost, _ := missing(got[0].Seqs)
		// Drops at the very start or end leave no gap to see.
		if ss.Dropped == 0 || lost == 0 || uint64(lost) > ss.Dropped || ss.Dropped-uint64(lost) > 4 {
			t.Errorf("%s: dropped %d of %d, receiver sees %d missing", kind, ss.Dropped, ss.Packets, lost)
		}
		if pct := float64(ss.Dropped) * 100 / float64(ss.Packets); pct < 4 || pct > 18 {
			t.Errorf("%s: dropped %.1f%%, want about 10%%", kind, pct)
		}
	}
	if st.Video.NACKs == 0 {
		t.Error("receiver sent no NACK for lost video")
	}
}

// TestPublishLossRecoveredByNACK: with the NACK responder, the receiver's
// NACKs recover most dropped video packets.
func TestPublishLossRecoveredByNACK(t *testing.T) {
	_, v := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token, Video: v, Duration: 3 * time.Second,
		Impairment: whip.Impairment{LossPercent: 5, Seed: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) //nolint:forbidigo // let the last NACK round trip finish: nothing to poll for
	st := pub.Stats().Video
	got := e.kind("video")
	if len(got) != 1 {
		t.Fatalf("%d video streams", len(got))
	}
	lost, _ := missing(got[0].Seqs)
	if st.NACKs == 0 || st.Dropped == 0 {
		t.Fatalf("dropped %d, NACKs %d", st.Dropped, st.NACKs)
	}
	if lost*2 > int(st.Dropped) {
		t.Errorf("dropped %d, NACKs %d, still missing %d: retransmission recovered too little", st.Dropped, st.NACKs, lost)
	}
	t.Logf("video: sent %d, dropped %d (incl. retransmissions), NACKs %d, missing at the receiver %d", st.Packets, st.Dropped, st.NACKs, lost)
}

// TestPublishWrapAndDTX: sequence numbers and timestamps wrap during the run,
// and a DTX gap keeps time: the timestamp jumps by the gap while sequence
// numbers continue.
func TestPublishWrapAndDTX(t *testing.T) {
	a, _ := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token, Audio: a, Duration: 3 * time.Second,
		Impairment: whip.Impairment{WrapAfter: 500 * time.Millisecond, DTX: []whip.Gap{{Start: time.Second, Length: time.Second}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats().Audio; st.Packets != 100 {
		t.Errorf("sent %d packets, want 100 (3 s minus a 1 s gap)", st.Packets)
	}
	var s received
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		got := e.kind("audio")
		if len(got) != 1 || len(got[0].Seqs) != 100 {
			return fmt.Errorf("waiting for 100 packets")
		}
		s = got[0]
		return nil
	})
	// Sequence: first is 65536-25 (0.5 s of 20 ms packets), wraps once, no gaps.
	if s.Seqs[0] != 65511 {
		t.Errorf("first sequence number %d, want 65511", s.Seqs[0])
	}
	for i := 1; i < len(s.Seqs); i++ {
		if s.Seqs[i] != s.Seqs[i-1]+1 {
			t.Fatalf("sequence %d follows %d", s.Seqs[i], s.Seqs[i-1])
		}
	}
	if s.TSs[0] != uint32(1<<32-24000) {
		t.Errorf("first timestamp %d, want 2^32-24000", s.TSs[0])
	}
	var wraps, jumps int
	for i := 1; i < len(s.TSs); i++ {
		d := s.TSs[i] - s.TSs[i-1]
		if s.TSs[i] < s.TSs[i-1] {
			wraps++
		}
		switch d {
		case 960:
		case 960 * 51: // the frame before the gap + 1 s of DTX
			jumps++
			if i != 50 || !s.Markers[i] {
				t.Errorf("gap at packet %d (marker %v), want 50 with marker", i, s.Markers[i])
			}
		default:
			t.Errorf("timestamp step %d at packet %d", d, i)
		}
	}
	if wraps != 1 || jumps != 1 {
		t.Errorf("timestamp wraps %d, DTX jumps %d, want 1 and 1", wraps, jumps)
	}
	// Wall clock: the packets after the gap arrive about 1 s after those before.
	if d := s.Arrivals[50].Sub(s.Arrivals[49]); d < 900*time.Millisecond {
		t.Errorf("gap in arrivals %v, want about 1 s", d)
	}
}

// TestPublishSSRCChange: an audio-only offer without a=ssrc lines lets pion
// route the new SSRC to a new track.
func TestPublishSSRCChange(t *testing.T) {
	a, _ := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token, Audio: a, Duration: 2 * time.Second, OmitSSRC: true,
		Impairment: whip.Impairment{SSRCChangeAt: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	ssrcs := pub.Stats().Audio.SSRCs
	if len(ssrcs) != 2 || ssrcs[0] == ssrcs[1] {
		t.Fatalf("SSRCs %v, want two different", ssrcs)
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		got := e.kind("audio")
		if len(got) != 2 {
			return fmt.Errorf("%d audio streams, want 2", len(got))
		}
		if got[0].SSRC != ssrcs[0] || got[1].SSRC != ssrcs[1] {
			return fmt.Errorf("stream SSRCs %d, %d, want %v", got[0].SSRC, got[1].SSRC, ssrcs)
		}
		if n := len(got[0].Seqs) + len(got[1].Seqs); n != 100 {
			return fmt.Errorf("%d + %d packets, want 100", len(got[0].Seqs), len(got[1].Seqs))
		}
		return nil
	})
}

// TestPublishReorderAndJitter: held-back packets arrive after their
// successors; jitter keeps order and every packet arrives.
func TestPublishReorderAndJitter(t *testing.T) {
	a, _ := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token, Audio: a, Duration: 2 * time.Second,
		Impairment: whip.Impairment{ReorderPercent: 10, Jitter: 15 * time.Millisecond, Seed: 11},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats().Audio
	var s received
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		got := e.kind("audio")
		if len(got) != 1 || len(got[0].Seqs) != 100 {
			return fmt.Errorf("waiting for 100 packets")
		}
		s = got[0]
		return nil
	})
	lost, outOfOrder := missing(s.Seqs)
	if lost != 0 || st.Reordered == 0 || outOfOrder == 0 || uint64(outOfOrder) > st.Reordered {
		t.Errorf("reordered %d, receiver saw %d out of order, %d missing", st.Reordered, outOfOrder, lost)
	}
}

func TestPublishHTTPErrors(t *testing.T) {
	a, _ := media(t)
	e := newEndpoint(t)
	ctx := context.Background()

	_, err := whip.Publish(ctx, whip.Options{URL: e.url("s1", "p1"), Token: "wrong", Audio: a})
	var he *whip.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized || he.Problem == nil || he.Problem.Title != "unauthorized" {
		t.Fatalf("wrong token: %v", err)
	}

	e.mu.Lock()
	e.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "7")
		problem(w, http.StatusServiceUnavailable, "overloaded", "shedding load")
		return true
	}
	e.mu.Unlock()
	_, err = whip.Publish(ctx, whip.Options{URL: e.url("s1", "p1"), Token: e.token, Audio: a})
	if d, ok := whip.RetryAfter(err); !ok || d != 7*time.Second || whip.StatusCode(err) != 503 || !contains(err.Error(), "shedding load") {
		t.Fatalf("503: %v (retry after %v)", err, d)
	}

	e.mu.Lock()
	e.override = func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "plain failure", http.StatusInternalServerError)
		return true
	}
	e.mu.Unlock()
	_, err = whip.Publish(ctx, whip.Options{URL: e.url("s1", "p1"), Token: e.token, Audio: a})
	if !errors.As(err, &he) || he.Status != 500 || he.Problem != nil || he.Body != "plain failure" {
		t.Fatalf("500: %v", err)
	}

	e.mu.Lock()
	e.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/sdp")
		w.WriteHeader(http.StatusCreated) // no Location
		return true
	}
	e.mu.Unlock()
	_, err = whip.Publish(ctx, whip.Options{URL: e.url("s1", "p1"), Token: e.token, Audio: a})
	if !errors.Is(err, whip.ErrBadAnswer) {
		t.Fatalf("201 without Location: %v", err)
	}
	e.mu.Lock()
	e.override = nil
	e.mu.Unlock()

	if _, err := whip.Publish(ctx, whip.Options{URL: e.url("s1", "p1")}); !errors.Is(err, whip.ErrNoMedia) {
		t.Fatalf("no media: %v", err)
	}
	if _, err := whip.Publish(ctx, whip.Options{URL: "ftp://x", Audio: a}); err == nil {
		t.Fatal("ftp URL accepted")
	}
	if _, err := whip.Publish(ctx, whip.Options{URL: e.url("s", "p"), Audio: a, Impairment: whip.Impairment{LossPercent: 120}}); !errors.Is(err, whip.ErrBadImpairment) {
		t.Fatalf("loss 120%%: %v", err)
	}
	// Nothing listens on the port of a closed server.
	dead := newEndpoint(t)
	dead.srv.Close()
	if _, err := whip.Publish(ctx, whip.Options{URL: dead.url("s", "p"), Audio: a}); err == nil {
		t.Fatal("publish to a closed server succeeded")
	}
}
