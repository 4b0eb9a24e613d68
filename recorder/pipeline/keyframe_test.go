package pipeline

import (
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/pion/rtp/codecs"
)

// TestKeyframeRequestsAtStartThrottled: a video track that joins a stream
// between keyframes (no loss at all) asks for a keyframe at its first
// packets, asks again at most once per KeyframeInterval while none comes,
// writes nothing before the keyframe, and stops asking once it arrives.
func TestKeyframeRequestsAtStartThrottled(t *testing.T) {
	const interval = 500 * time.Millisecond
	src := mediatest.Timed(mediatest.IVF(t, "vp8.ivf"), time.Second/30, 2*time.Second)
	isKey := func(f mediatest.Frame) bool { return len(f.Data) > 0 && f.Data[0]&1 == 0 }
	if !isKey(src[0]) {
		t.Fatal("test clip does not start with a keyframe")
	}
	// Two seconds of interframes only (the sender's keyframes are
	// skipped), then the clip again from its keyframe.
	const keyAt = 2 * time.Second
	var frames []mediatest.Frame
	for _, f := range src {
		if !isKey(f) {
			frames = append(frames, f)
		}
	}
	for _, f := range src {
		frames = append(frames, mediatest.Frame{Data: f.Data, At: keyAt + f.At})
	}
	const start = 100 * time.Millisecond
	s := mediatest.Stream{
		Payloader: &codecs.VP8Payloader{EnablePictureID: true}, ClockRate: 90000, PayloadType: ptVP8,
		SSRC: 0x4444, FirstSeq: 100, FirstTS: 1000, Start: start, Seed: 3,
	}
	pkts, lost := s.Packets(frames)
	if lost != 0 {
		t.Fatalf("%d packets lost in a lossless stream", lost)
	}

	sink := &memSink{}
	fb := &feedbackLog{}
	r := newRecording(t, sink, fb, Config{KeyframeInterval: interval})
	tv, err := r.AddTrack(TrackConfig{MimeType: "video/VP8", ClockRate: 90000})
	if err != nil {
		t.Fatal(err)
	}
	feedRTX(t, r, map[uint8]*Track{ptVP8: tv}, pkts, nil, fb)
	rep := mustClose(t, r, start+keyAt+2*time.Second)

	at := fb.keyframesAt
	t.Logf("keyframe requests at %v", at)
	if len(at) == 0 {
		t.Fatal("no keyframe request for a track that starts without a keyframe")
	}
	// The first request comes with the first tick after the first packet.
	if first := pkts[0].Arrival; at[0] < first || at[0] > first+100*time.Millisecond {
		t.Errorf("first keyframe request at %v, first packet at %v", at[0], first)
	}
	for i := 1; i < len(at); i++ {
		if at[i]-at[i-1] < interval {
			t.Errorf("requests %d and %d only %v apart (KeyframeInterval %v)", i-1, i, at[i]-at[i-1], interval)
		}
	}
	// While waiting (about 1.9 s) it asks about every interval, not more.
	if n, most := len(at), int(keyAt/interval)+1; n < 3 || n > most {
		t.Errorf("%d keyframe requests while waiting %v, want 3 to %d", n, keyAt, most)
	}
	// The keyframe ends the requests (it arrives at start+keyAt plus the
	// stream's jitter and the buffer's latency).
	if last := at[len(at)-1]; last > start+keyAt+300*time.Millisecond {
		t.Errorf("keyframe requested at %v, after the keyframe arrived at %v", last, start+keyAt)
	}
	v := rep.Tracks[0]
	if int(v.KeyframeRequests) != len(at) || v.FramesWritten == 0 || v.FramesDiscarded < 50 {
		t.Errorf("track report %+v: requests %d", v, len(at))
	}
}
