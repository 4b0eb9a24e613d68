package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/internal/mediatest"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/envelope"
	"github.com/pion/rtp/codecs"
)

// storage.Writer is the production Sink.
var _ Sink = (*storage.Writer)(nil)

// sealSink seals every part with storage/envelope under a data key, as
// storage.Writer does before spooling, and keeps only the sizes.
type sealSink struct {
	mu     sync.Mutex
	key    []byte
	buf    []byte
	n      int
	sealed int64
	plain  bool // only count parts (benchmark the pipeline without sealing)
}

func newSealSink(tb testing.TB) *sealSink {
	key := make([]byte, envelope.KeySize)
	if _, err := rand.Read(key); err != nil {
		tb.Fatal(err)
	}
	return &sealSink{key: key}
}

func (s *sealSink) WritePart(_ context.Context, p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plain {
		s.n++
		return s.n - 1, nil
	}
	var err error
	s.buf, err = envelope.AppendSeal(s.buf[:0], s.key, envelope.Binding{Tenant: "t", RecordingID: "r", Object: envelope.PartObject(s.n)}, p)
	if err != nil {
		return 0, err
	}
	s.sealed += int64(len(s.buf))
	s.n++
	return s.n - 1, nil
}

func (s *sealSink) RewritePart(_ context.Context, n int, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	s.buf, err = envelope.AppendSeal(s.buf[:0], s.key, envelope.Binding{Tenant: "t", RecordingID: "r", Object: envelope.PartObject(n)}, p)
	return err
}

// loopStream returns marshalled packets of one pass over the clip and the
// sender time of each, to be replayed with sequence numbers and
// timestamps continued.
func loopStream(tb testing.TB, pl mediatest.Payloader, frames []mediatest.Frame, rate uint32) ([][]byte, []time.Duration) {
	pkts, _ := mediatest.Stream{Payloader: pl, ClockRate: rate, PayloadType: 96, SSRC: 9}.Packets(frames)
	raws := make([][]byte, len(pkts))
	ats := make([]time.Duration, len(pkts))
	for i, s := range pkts {
		raw, err := s.Packet.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		raws[i], ats[i] = raw, s.Arrival
	}
	return raws, ats
}

// benchRecord pushes the looped packets through a recording whose parts
// are sealed: jitter buffer, depacketizer, clock, muxer, part cutting and
// encryption. One op is one RTP packet.
func benchRecord(b *testing.B, mime string, raws [][]byte, ats []time.Duration, loop time.Duration, rate uint32, seal bool) {
	sink := newSealSink(b)
	sink.plain = !seal
	cl := clock.NewSession(epoch)
	r := New(context.Background(), cl, sink, nil, Config{Queue: 1})
	if mime != "audio/opus" {
		// A video recording has an audio track too; it stays silent here.
		if _, err := r.AddTrack(TrackConfig{MimeType: "audio/opus"}); err != nil {
			b.Fatal(err)
		}
	}
	tr, err := r.AddTrack(TrackConfig{MimeType: mime})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1500)
	var bytes int64
	i, pass := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		raw := raws[i]
		n := copy(buf, raw)
		seq := binary.BigEndian.Uint16(raw[2:]) + uint16(pass*len(raws))
		ts := binary.BigEndian.Uint32(raw[4:]) + uint32(int64(pass)*int64(loop)*int64(rate)/int64(time.Second))
		binary.BigEndian.PutUint16(buf[2:], seq)
		binary.BigEndian.PutUint32(buf[4:], ts)
		if err := tr.WriteRTP(buf[:n], epoch.Add(time.Duration(pass)*loop+ats[i])); err != nil {
			b.Fatal(err)
		}
		bytes += int64(n)
		i++
		if i == len(raws) {
			i = 0
			pass++
		}
	}
	b.StopTimer()
	end := time.Duration(pass)*loop + ats[i] + time.Second
	if _, err := r.Close(context.Background(), epoch.Add(end)); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(bytes)*8/end.Seconds()/1e6, "Mbit/s")
	b.ReportMetric(float64(sink.n), "parts")
}

// BenchmarkRecordOpus: 20 ms Opus packets of real speech (32 kbit/s).
func BenchmarkRecordOpus(b *testing.B) {
	const loop = 12 * time.Second
	raws, ats := loopStream(b, &codecs.OpusPayloader{}, mediatest.Timed(mediatest.OpusPackets(b), 20*time.Millisecond, loop), 48000)
	benchRecord(b, "audio/opus", raws, ats, loop, 48000, true)
}

// BenchmarkRecordOpusUnsealed is BenchmarkRecordOpus without encryption.
func BenchmarkRecordOpusUnsealed(b *testing.B) {
	const loop = 12 * time.Second
	raws, ats := loopStream(b, &codecs.OpusPayloader{}, mediatest.Timed(mediatest.OpusPackets(b), 20*time.Millisecond, loop), 48000)
	benchRecord(b, "audio/opus", raws, ats, loop, 48000, false)
}

// BenchmarkRecordVP8: real VP8 at about 1.4 Mbit/s, 1200-byte packets,
// into WebM.
func BenchmarkRecordVP8(b *testing.B) {
	const loop = 4 * time.Second
	raws, ats := loopStream(b, &codecs.VP8Payloader{EnablePictureID: true}, mediatest.Timed(mediatest.IVF(b, "vp8.ivf"), time.Second/30, loop), 90000)
	benchRecord(b, "video/VP8", raws, ats, loop, 90000, true)
}

// BenchmarkRecordVP8Unsealed is BenchmarkRecordVP8 without encryption.
func BenchmarkRecordVP8Unsealed(b *testing.B) {
	const loop = 4 * time.Second
	raws, ats := loopStream(b, &codecs.VP8Payloader{EnablePictureID: true}, mediatest.Timed(mediatest.IVF(b, "vp8.ivf"), time.Second/30, loop), 90000)
	benchRecord(b, "video/VP8", raws, ats, loop, 90000, false)
}
