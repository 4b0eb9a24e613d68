package audio

import (
	"math"
	"testing"
)

func TestDecodeToneRoundTrip(t *testing.T) {
	// tone.ogg: 2 s of 1 kHz at amplitude 0.25 (gen.sh). After pre-skip
	// removal the decoded sine must line up with the analytic one.
	ref := make([]int16, 2*outRate)
	for i := range ref {
		ref[i] = int16(0.25 * 32767 * math.Sin(2*math.Pi*1000*float64(i)/outRate))
	}
	for _, dec := range decoders() {
		t.Run(dec, func(t *testing.T) {
			got := decodeFile(t, "tone.ogg", dec)
			if len(got) != len(ref) {
				t.Fatalf("decoded %d samples, want %d", len(got), len(ref))
			}
			// Skip the codec's start-up and the end.
			mid := ref[outRate/10 : len(ref)-outRate/10]
			// A 1 kHz period is 16 samples: search less than half of it.
			lag, corr := alignment(mid, got[outRate/10:len(got)-outRate/10], 7)
			snr := snrDB(mid, got[outRate/10:len(got)-outRate/10], lag)
			t.Logf("lag %d samples, correlation %.5f, SNR %.1f dB, level %.2f dBFS", lag, corr, snr, levelDB(got))
			if lag < -1 || lag > 1 {
				t.Errorf("decoded tone is %d samples off the original (pre-skip not honoured?)", lag)
			}
			if snr < 25 {
				t.Errorf("SNR %.1f dB, want at least 25", snr)
			}
			if l := levelDB(got); math.Abs(l-levelDB(ref)) > 0.5 {
				t.Errorf("level %.2f dBFS, want %.2f", l, levelDB(ref))
			}
		})
	}
}

func TestDecodeNoAliasing(t *testing.T) {
	// alias.ogg: 1 kHz and 13 kHz at amplitude 0.4 each, fullband. At
	// 16 kHz, 13 kHz would fold to 3 kHz unless band-limited first.
	for _, dec := range decoders() {
		t.Run(dec, func(t *testing.T) {
			got := decodeFile(t, "alias.ogg", dec)
			mid := got[outRate/5 : len(got)-outRate/5]
			p1k := tonePowerDB(mid, 1000)
			p3k := tonePowerDB(mid, 3000)
			t.Logf("1 kHz %.1f dBFS, 3 kHz (alias of 13 kHz) %.1f dBFS", p1k, p3k)
			if want := 20 * math.Log10(0.4); math.Abs(p1k-want) > 1 {
				t.Errorf("1 kHz at %.1f dBFS, want %.1f", p1k, want)
			}
			if p1k-p3k < 60 {
				t.Errorf("alias at 3 kHz only %.1f dB below the 1 kHz tone, want 60", p1k-p3k)
			}
		})
	}
}

func TestDecodeSpeechRoundTrip(t *testing.T) {
	// The same utterance through three containers and two encoders,
	// compared with sox's 16 kHz rendering of the original WAV.
	ref := soxPCM(t, speechDir+"/call04.wav")
	for _, name := range []string{"call04.ogg", "call04.webm", "call04.mkv"} {
		for _, dec := range decoders() {
			t.Run(name+"/"+dec, func(t *testing.T) {
				got := decodeFile(t, name, dec)
				if d := len(got) - len(ref); d < -160 || d > 160 {
					t.Errorf("decoded %d samples, original has %d", len(got), len(ref))
				}
				lag, corr := alignment(ref, got, 160)
				snr := snrDB(ref, got, lag)
				t.Logf("lag %d samples, correlation %.4f, SNR %.1f dB", lag, corr, snr)
				if lag < -16 || lag > 16 {
					t.Errorf("decoded speech is %d samples (>1 ms) off the original", lag)
				}
				if corr < 0.98 || snr < 15 {
					t.Errorf("correlation %.4f, SNR %.1f dB with the original, want ≥ 0.98 and 15 dB", corr, snr)
				}
			})
		}
	}
}

func TestDecodersAgree(t *testing.T) {
	if DefaultDecoder() != DecoderLibopus {
		t.Skip("libopus needs cgo")
	}
	// Mono streams: the two decoders downmix stereo differently (libopus
	// keeps SILK's mid channel), which TestDecodeStereoDownmix covers.
	for _, name := range []string{"call04.ogg", "call04.webm", "tone.ogg"} {
		a := decodeFile(t, name, DecoderLibopus)
		b := decodeFile(t, name, DecoderPion)
		if len(a) != len(b) {
			t.Fatalf("%s: libopus %d samples, pion %d", name, len(a), len(b))
		}
		snr := snrDB(a, b, 0)
		t.Logf("%s: pion vs libopus SNR %.1f dB", name, snr)
		if snr < 40 {
			t.Errorf("%s: pion differs from libopus: SNR %.1f dB, want ≥ 40", name, snr)
		}
	}
}

func TestDecodeStereoDownmix(t *testing.T) {
	// stereo.webm: call01 left, call02 right; mono is their average.
	ref := soxPCM(t, "-M", speechDir+"/call01.wav", speechDir+"/call02.wav")
	for _, dec := range decoders() {
		got := decodeFile(t, "stereo.webm", dec)
		lag, corr := alignment(ref, got, 160)
		t.Logf("%s: lag %d, correlation %.4f", dec, lag, corr)
		if corr < 0.95 || lag < -16 || lag > 16 {
			t.Errorf("%s: downmix correlation %.4f at lag %d, want ≥ 0.95 within 1 ms", dec, corr, lag)
		}
	}
}

func TestDecodeVideoContainers(t *testing.T) {
	// The Opus track is found beside VP8 (WebM) and H.264 (Matroska).
	tests := []struct {
		name string
		wav  string
	}{
		{"av.webm", "call03.wav"},
		{"h264.mkv", "call05.wav"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := soxPCM(t, speechDir+"/"+tt.wav)
			got := decodeFile(t, tt.name, "")
			lag, corr := alignment(ref, got, 160)
			t.Logf("%d samples, lag %d, correlation %.4f", len(got), lag, corr)
			if corr < 0.95 {
				t.Errorf("correlation %.4f, want ≥ 0.95", corr)
			}
		})
	}
}
