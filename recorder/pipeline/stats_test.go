package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/pion/rtp/codecs"
)

// TestLiveStats: Stats follows the recording while it runs (lost packets
// are visible before Close) and ends equal to the completeness report;
// Started is the report's start.
func TestLiveStats(t *testing.T) {
	sink := &memSink{}
	fb := &feedbackLog{}
	r := newRecording(t, sink, fb, Config{})
	if s := r.Stats(); s != (Stats{}) {
		t.Fatalf("stats before any packet: %+v", s)
	}
	if _, ok := r.Started(); ok {
		t.Fatal("started before any packet")
	}
	tr, err := r.AddTrack(TrackConfig{MimeType: "audio/opus", ClockRate: 48000, PayloadTypes: []uint8{ptOpus}})
	if err != nil {
		t.Fatal(err)
	}
	frames := mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 6*time.Second)
	pkts, lost := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus,
		SSRC: 0x1111, FirstSeq: 100, FirstTS: 1000, Start: 200 * time.Millisecond, Loss: 0.05, Seed: 3}.Packets(frames)
	if lost == 0 {
		t.Fatal("the stream lost nothing")
	}
	half := len(pkts) / 2
	feed(t, r, map[uint8]*Track{ptOpus: tr}, pkts[:half], nil)
	mid := r.Stats()
	if mid.PacketsReceived == 0 || mid.PacketsLost == 0 || mid.Parts == 0 || mid.Bytes == 0 {
		t.Errorf("live stats half way: %+v", mid)
	}
	st, ok := r.Started()
	if !ok {
		t.Fatal("not started half way")
	}
	feed(t, r, map[uint8]*Track{ptOpus: tr}, pkts[half:], nil)
	rep := mustClose(t, r, 7*time.Second)
	end := r.Stats()
	if end.PacketsReceived != rep.PacketsReceived || end.PacketsLost != rep.PacketsLost || end.PacketsLate != rep.PacketsLate ||
		end.PacketsDuplicate != rep.PacketsDuplicate || end.PacketsInvalid != rep.PacketsDroppedInvalid ||
		end.NACKsSent != rep.NACKsSent || end.Parts != uint64(rep.Parts) || end.Bytes != uint64(rep.Bytes) {
		t.Errorf("stats after close %+v differ from the report %+v", end, rep)
	}
	if end.PacketsReceived < mid.PacketsReceived || end.PacketsLost < mid.PacketsLost {
		t.Errorf("counters went back: %+v then %+v", mid, end)
	}
	if rep.StartedAt == nil || !st.Equal(*rep.StartedAt) {
		t.Errorf("Started %v, report started_at %v", st, rep.StartedAt)
	}
}

// reentrantSink calls the Recording's lock-free methods from the
// part-writing goroutine, slowly, while the packet path fills the queue.
type reentrantSink struct {
	memSink
	r *Recording

	mu           sync.Mutex
	startedFirst bool // Started was set when the first part arrived
	calls        int
}

func (s *reentrantSink) WritePart(ctx context.Context, p []byte) (int, error) {
	_, ok := s.r.Started()
	_ = s.r.Stats()
	_ = s.r.Err()
	select {
	case <-s.r.Failed():
	default:
	}
	s.mu.Lock()
	if s.calls == 0 {
		s.startedFirst = ok
	}
	s.calls++
	s.mu.Unlock()
	time.Sleep(time.Millisecond) // slower than the packet path: the queue fills
	return s.memSink.WritePart(ctx, p)
}

// TestSinkMayReadStats: a sink that calls Started, Stats, Err and Failed
// while the recording waits for queue room does not deadlock, and sees
// the timeline's start from the first part on (the recorder's sink takes
// the recording's start time from there).
func TestSinkMayReadStats(t *testing.T) {
	sink := &reentrantSink{}
	r := newRecording(t, sink, nil, Config{Queue: 1, PartDuration: 20 * time.Millisecond})
	sink.r = r
	tr, err := r.AddTrack(TrackConfig{MimeType: "audio/opus", ClockRate: 48000, PayloadTypes: []uint8{ptOpus}})
	if err != nil {
		t.Fatal(err)
	}
	frames := mediatest.Timed(mediatest.OpusPackets(t), 20*time.Millisecond, 3*time.Second)
	pkts, _ := mediatest.Stream{Payloader: &codecs.OpusPayloader{}, ClockRate: 48000, PayloadType: ptOpus,
		SSRC: 0x1111, FirstSeq: 1, FirstTS: 1}.Packets(frames)
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(t, r, map[uint8]*Track{ptOpus: tr}, pkts, nil)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: the packet path did not finish")
	}
	rep := mustClose(t, r, 3500*time.Millisecond)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if !sink.startedFirst {
		t.Error("Started was not set when the first part reached the sink")
	}
	if sink.calls < 50 || rep.Parts != sink.calls {
		t.Errorf("sink saw %d parts, report %d", sink.calls, rep.Parts)
	}
}
