package audio

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// speechDir holds the 48 kHz speech clips (copied into the repository
// from the shared speech set).
const speechDir = "../../testdata/speech"

// decoders lists the decoders this build can test.
func decoders() []string {
	if DefaultDecoder() == DecoderLibopus {
		return []string{DecoderLibopus, DecoderPion}
	}
	return []string{DecoderPion}
}

func contentTypeOf(name string) string {
	switch filepath.Ext(name) {
	case ".ogg":
		return ContentTypeOgg
	case ".mkv":
		return ContentTypeMatroska
	}
	return ContentTypeWebM
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// decodeBytes decodes a whole recording to 16 kHz PCM.
func decodeBytes(tb testing.TB, data []byte, ct string, opts Options) ([]int16, error) {
	tb.Helper()
	var pcm []int16
	err := Decode(context.Background(), bytes.NewReader(data), ct, opts, func(p []int16) error {
		pcm = append(pcm, p...)
		return nil
	})
	return pcm, err
}

func decodeFile(tb testing.TB, name, decoder string) []int16 {
	tb.Helper()
	pcm, err := decodeBytes(tb, readTestdata(tb, name), contentTypeOf(name), Options{Decoder: decoder})
	if err != nil {
		tb.Fatalf("decode %s with %s: %v", name, decoder, err)
	}
	return pcm
}

// soxPCM renders a WAV (or several, mixed) to 16 kHz mono PCM with sox's
// own resampler, an independent reference; the test is skipped without
// sox. Nothing is written to disk.
func soxPCM(tb testing.TB, args ...string) []int16 {
	tb.Helper()
	if _, err := exec.LookPath("sox"); err != nil {
		tb.Skip("sox not installed")
	}
	args = append(args, "-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1", "-L", "-")
	out, err := exec.Command("sox", args...).Output()
	if err != nil {
		tb.Fatalf("sox %s: %v", strings.Join(args, " "), err)
	}
	pcm := make([]int16, len(out)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
	}
	return pcm
}

// alignment finds the lag (got[i+lag] ≈ ref[i]) within ±maxLag samples
// that maximizes the normalized correlation over the common part.
func alignment(ref, got []int16, maxLag int) (lag int, corr float64) {
	corr = -2
	for l := -maxLag; l <= maxLag; l++ {
		c := correlation(ref, got, l)
		if c > corr {
			lag, corr = l, c
		}
	}
	return lag, corr
}

func correlation(ref, got []int16, lag int) float64 {
	var sxy, sxx, syy float64
	for i := range ref {
		j := i + lag
		if j < 0 || j >= len(got) {
			continue
		}
		x, y := float64(ref[i]), float64(got[j])
		sxy += x * y
		sxx += x * x
		syy += y * y
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// snrDB is the signal-to-noise ratio of got against ref at lag, with the
// best least-squares gain applied (codecs may change level slightly).
func snrDB(ref, got []int16, lag int) float64 {
	var sxy, syy, sxx float64
	for i := range ref {
		j := i + lag
		if j < 0 || j >= len(got) {
			continue
		}
		x, y := float64(ref[i]), float64(got[j])
		sxy += x * y
		syy += y * y
		sxx += x * x
	}
	g := sxy / syy
	var noise float64
	for i := range ref {
		j := i + lag
		if j < 0 || j >= len(got) {
			continue
		}
		d := float64(ref[i]) - g*float64(got[j])
		noise += d * d
	}
	return 10 * math.Log10(sxx/noise)
}

// tonePower is the power of x at freq (Goertzel), normalized so a full
// scale sine gives 0 dB.
func tonePowerDB(x []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / outRate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v)/32768 + c*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	amp := 2 * math.Sqrt(p) / float64(len(x))
	return 20 * math.Log10(amp+1e-12)
}

// levelDB is the RMS level of x in dBFS.
func levelDB(x []int16) float64 {
	if len(x) == 0 {
		return silenceDB
	}
	return frameEnergyDB(x)
}
