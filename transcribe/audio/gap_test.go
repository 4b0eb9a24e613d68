package audio

import (
	"testing"
)

// TestGaps drops packets from a recording (as lost RTP would, when the
// muxer kept their time) and checks that the timeline is kept: the audio
// after a gap lines up with the complete recording, a short gap is
// concealed by libopus and silent with pion, a long one is silent.
func TestGaps(t *testing.T) {
	s := readOpusStream(t, "call04.ogg")
	const (
		shortFrom, shortTo = 100, 103 // 60 ms at 2.0 s
		longFrom, longTo   = 150, 250 // 2 s from 3.0 s
	)
	drop := func(i int) bool { return i >= shortFrom && i < shortTo || i >= longFrom && i < longTo }
	ms := func(ms int) int { return ms * outRate / 1000 }
	// at is the output sample where packet i starts (after pre-skip).
	at := func(i int) int { return (i*960 - s.preSkip()) / rateRatio }
	builders := map[string]func(drop func(int) bool) ([]byte, string){
		"ogg":  func(d func(int) bool) ([]byte, string) { return buildOgg(t, s, d), ContentTypeOgg },
		"webm": func(d func(int) bool) ([]byte, string) { return buildWebM(t, s, "A_OPUS", d), ContentTypeWebM },
	}
	for cname, build := range builders {
		for _, dec := range decoders() {
			t.Run(cname+"/"+dec, func(t *testing.T) {
				whole, ct := build(nil)
				gapped, _ := build(drop)
				a, err := decodeBytes(t, whole, ct, Options{Decoder: dec})
				if err != nil {
					t.Fatal(err)
				}
				b, err := decodeBytes(t, gapped, ct, Options{Decoder: dec})
				if err != nil {
					t.Fatal(err)
				}
				if len(a) != len(b) {
					t.Fatalf("with gaps %d samples, complete %d: time was lost", len(b), len(a))
				}
				// After each gap, once the decoder has settled, the audio
				// is the same audio at the same time.
				for _, end := range []int{at(shortTo), at(longTo)} {
					seg := a[end+ms(100) : end+ms(800)]
					lag, c := alignment(seg, b[end+ms(100):end+ms(800)], 160)
					t.Logf("after the gap ending at %d ms: best lag %d, correlation %.3f", end*1000/outRate, lag, c)
					if lag < -1 || lag > 1 || c < 0.85 {
						t.Errorf("audio after the gap ending at %d ms is off its time: lag %d, correlation %.3f",
							end*1000/outRate, lag, c)
					}
				}
				short := b[at(shortFrom):at(shortTo)]
				mid := b[at(longFrom)+ms(200) : at(longTo)-ms(200)]
				t.Logf("short gap %.1f dBFS (complete: %.1f), long gap middle %.1f dBFS",
					levelDB(short), levelDB(a[at(shortFrom):at(shortTo)]), levelDB(mid))
				if levelDB(mid) > silenceDB {
					t.Errorf("middle of a 2 s gap is not silent: %.1f dBFS", levelDB(mid))
				}
				switch dec {
				case DecoderLibopus:
					if levelDB(short) < -60 {
						t.Errorf("60 ms gap not concealed: %.1f dBFS", levelDB(short))
					}
				case DecoderPion:
					if levelDB(short) > silenceDB {
						t.Errorf("pion filled a gap with %.1f dBFS, want silence", levelDB(short))
					}
				}
			})
		}
	}
}

func TestLeadingGap(t *testing.T) {
	// The first 10 packets (200 ms) missing: the recording starts late on
	// its own timeline and chunk offsets say so.
	s := readOpusStream(t, "call04.ogg")
	whole := buildOgg(t, s, nil)
	late := buildOgg(t, s, func(i int) bool { return i < 10 })
	a, err := decodeBytes(t, whole, ContentTypeOgg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBytes(t, late, ContentTypeOgg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("late start: %d samples, want %d", len(b), len(a))
	}
	if l := levelDB(b[:3000]); l > silenceDB {
		t.Errorf("missing start decoded at %.1f dBFS, want silence", l)
	}
	if c := correlation(a[8000:48000], b[8000:48000], 0); c < 0.95 {
		t.Errorf("audio after a late start is off its time: correlation %.3f", c)
	}
}
