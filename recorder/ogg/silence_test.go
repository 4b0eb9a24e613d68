package ogg

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSilenceFramesDecodeToSilence writes 1 s of each silence frame size
// and has ffmpeg decode it: the result must be digital silence of the
// right length.
func TestSilenceFramesDecodeToSilence(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	for _, n := range SilenceSamples {
		w := NewWriter(1)
		var out []byte
		_ = w.WritePacket(OpusHead(1, 0, 48000), 0)
		out = w.Flush(out, false)
		_ = w.WritePacket(OpusTags("test"), 0)
		out = w.Flush(out, false)
		var g int64
		for g < SampleRate {
			g += int64(n)
			if err := w.WritePacket(SilenceFrame(n), g); err != nil {
				t.Fatal(err)
			}
			out = w.AppendPages(out)
		}
		out = w.Flush(out, true)
		path := filepath.Join(t.TempDir(), "s.ogg")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ffmpeg", "-hide_banner", "-i", path, "-af", "volumedetect", "-f", "null", "-")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, b)
		}
		s := string(b)
		if !strings.Contains(s, "max_volume: -91") && !strings.Contains(s, "max_volume: -inf") {
			t.Errorf("%d-sample silence frame is not silent:\n%s", n, grepLines(s, "volume"))
		}
		if !strings.Contains(s, "n_samples: 48000") {
			t.Errorf("%d-sample frames: want 48000 samples decoded:\n%s", n, grepLines(s, "n_samples"))
		}
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
