package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/recorder/report"
	"github.com/pion/rtp"
	"math/rand/v2"
)

// memSink keeps parts in memory, as plaintext (the storage writer would
// seal them). failAt > 0 makes WritePart fail from that part on.
type memSink struct {
	mu       sync.Mutex
	parts    [][]byte
	rewrites int
	failAt   int
}

var errSinkDown = errors.New("sink down")

func (s *memSink) WritePart(_ context.Context, p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && len(s.parts) >= s.failAt {
		return 0, errSinkDown
	}
	s.parts = append(s.parts, bytes.Clone(p))
	return len(s.parts) - 1, nil
}

func (s *memSink) RewritePart(_ context.Context, n int, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 || n >= len(s.parts) || len(s.parts[n]) != len(p) {
		return errors.New("rewrite: bad part or length")
	}
	s.parts[n] = bytes.Clone(p)
	s.rewrites++
	return nil
}

func (s *memSink) file() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.parts, nil)
}

// feedbackLog counts feedback calls. With rtx set, NACKed packets are
// retransmitted by the simulated sender.
type feedbackLog struct {
	nacks, keyframes int
	keyframesAt      []time.Duration // simulated time of each keyframe request
	rtx              *retransmitter
	now              time.Duration
}

func (f *feedbackLog) NACK(ssrc uint32, seqs []uint16) {
	f.nacks += len(seqs)
	if f.rtx != nil {
		for _, s := range seqs {
			f.rtx.nack(ssrc, s, f.now)
		}
	}
}
func (f *feedbackLog) RequestKeyframe(uint32) {
	f.keyframes++
	f.keyframesAt = append(f.keyframesAt, f.now)
}

// retransmitter is a simulated sender's retransmission: a NACKed packet
// arrives again one RTT later, unless the network drops it again.
type retransmitter struct {
	history map[[2]uint32]*rtp.Packet
	queue   []mediatest.Sent
	rtt     time.Duration
	loss    float64
	rng     *rand.Rand
	sent    int
}

func newRetransmitter(pkts []mediatest.Sent, rtt time.Duration, loss float64) *retransmitter {
	r := &retransmitter{history: map[[2]uint32]*rtp.Packet{}, rtt: rtt, loss: loss, rng: rand.New(rand.NewPCG(7, 7))}
	for _, s := range pkts {
		r.history[[2]uint32{s.Packet.SSRC, uint32(s.Packet.SequenceNumber)}] = s.Packet
	}
	return r
}

func (r *retransmitter) nack(ssrc uint32, seq uint16, now time.Duration) {
	p, ok := r.history[[2]uint32{ssrc, uint32(seq)}]
	if !ok || r.rng.Float64() < r.loss {
		return
	}
	r.sent++
	r.queue = append(r.queue, mediatest.Sent{Packet: p, Arrival: now + r.rtt})
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns the wall-clock time of simulated time d.
func at(d time.Duration) time.Time { return epoch.Add(d) }

// event is something that happens at a simulated time.
type event struct {
	at time.Duration
	do func()
}

// feed pushes packets to their tracks at their arrival times, running
// events and ticking every 100 ms of simulated time, as Run would.
func feed(tb testing.TB, r *Recording, tracks map[uint8]*Track, pkts []mediatest.Sent, events []event) {
	feedRTX(tb, r, tracks, pkts, events, nil)
}

// feedRTX is feed with a feedbackLog whose retransmitter answers NACKs.
func feedRTX(tb testing.TB, r *Recording, tracks map[uint8]*Track, pkts []mediatest.Sent, events []event, fb *feedbackLog) {
	tb.Helper()
	next := time.Duration(0)
	ev := 0
	for i := 0; i < len(pkts) || (fb != nil && fb.rtx != nil && len(fb.rtx.queue) > 0); {
		var s mediatest.Sent
		if fb != nil && fb.rtx != nil && len(fb.rtx.queue) > 0 && (i >= len(pkts) || fb.rtx.queue[0].Arrival <= pkts[i].Arrival) {
			s = fb.rtx.queue[0]
			fb.rtx.queue = fb.rtx.queue[1:]
		} else {
			s = pkts[i]
			i++
		}
		if s.Lost {
			continue
		}
		if fb != nil {
			fb.now = s.Arrival
		}
		for next <= s.Arrival {
			for ev < len(events) && events[ev].at <= next {
				events[ev].do()
				ev++
			}
			if fb != nil {
				fb.now = next
			}
			_ = r.Tick(at(next))
			next += 100 * time.Millisecond
		}
		raw, err := s.Packet.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		if fb != nil {
			fb.now = s.Arrival // feedback sent while writing happens now
		}
		_ = tracks[s.Packet.PayloadType].WriteRTP(raw, at(s.Arrival))
	}
	for ; ev < len(events); ev++ {
		events[ev].do()
	}
}

// probe runs ffprobe on data and returns duration (s) and codec names.
func probe(tb testing.TB, data []byte, ext string) (float64, string) {
	tb.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		tb.Skip("ffprobe not installed")
	}
	path := filepath.Join(tb.TempDir(), "rec."+ext)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name",
		"-of", "default=nw=1:nk=1", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("ffprobe: %v\n%s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		tb.Fatalf("ffprobe printed nothing")
	}
	d, err := strconv.ParseFloat(f[len(f)-1], 64)
	if err != nil {
		tb.Fatalf("ffprobe output %q", out)
	}
	return d, strings.Join(f[:len(f)-1], ":")
}

// decodeErrors decodes the whole file with ffmpeg and returns what it
// reports at level error.
func decodeErrors(tb testing.TB, data []byte, ext string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "dec."+ext)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, _ := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	return string(out)
}

// maxVolume returns ffmpeg's max_volume (dB) of the audio in [from, to).
func maxVolume(tb testing.TB, data []byte, ext string, from, to time.Duration) float64 {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "vol."+ext)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-i", path, "-vn", "-af",
		"atrim="+strconv.FormatFloat(from.Seconds(), 'f', 3, 64)+":"+strconv.FormatFloat(to.Seconds(), 'f', 3, 64)+",volumedetect",
		"-f", "null", "-").CombinedOutput()
	if err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	s := string(out)
	i := strings.Index(s, "max_volume: ")
	if i < 0 {
		tb.Fatalf("no max_volume in\n%s", s)
	}
	rest := s[i+len("max_volume: "):]
	v := rest[:strings.Index(rest, " ")]
	if v == "-inf" {
		return -200
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func newRecording(tb testing.TB, sink Sink, fb Feedback, cfg Config) *Recording {
	tb.Helper()
	return New(context.Background(), clock.NewSession(epoch), sink, fb, cfg)
}

func mustClose(tb testing.TB, r *Recording, end time.Duration) *report.Report {
	tb.Helper()
	rep, err := r.Close(context.Background(), at(end))
	if err != nil {
		tb.Fatalf("close: %v", err)
	}
	return rep
}

// checkFor polls cond until it holds or timeout passes.
func checkFor(tb testing.TB, timeout time.Duration, cond func() bool, msg string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// streamStarts returns each stream's start time (s) per ffprobe.
func streamStarts(tb testing.TB, data []byte, ext string) []float64 {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "st."+ext)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=start_time", "-of", "default=nw=1:nk=1", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var starts []float64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			tb.Fatalf("ffprobe start_time %q", f)
		}
		starts = append(starts, v)
	}
	if len(starts) < 2 {
		tb.Fatalf("start times %v", starts)
	}
	return starts
}
