package wer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custodian/custodian/transcribe"
)

// LibriVoxDir is where Debian's pocketsphinx-testdata package installs its
// LibriVox read-speech utterances (16 kHz mono WAV) and references.
const LibriVoxDir = "/usr/share/pocketsphinx/test/data/librivox"

// Sample is one utterance with its reference transcript.
type Sample struct {
	ID        string
	Audio     transcribe.Audio
	Reference string
}

// Seconds is the sample's audio duration.
func (s Sample) Seconds() float64 {
	return float64(len(s.Audio.Samples)) / transcribe.SampleRate
}

// Result is the score of one utterance. It holds transcript text: for
// tests and reports, never for logs of production data.
type Result struct {
	ID         string
	Reference  string
	Hypothesis string
	Counts     Counts
	Ops        []Op
}

// Report sums results over a set.
type Report struct {
	Results []Result
	Total   Counts
	// AudioSeconds and Elapsed are filled by Evaluate: the audio
	// transcribed and the wall time spent in the engine (for the offline
	// engine, which decodes on the calling thread, close to its CPU time
	// when nothing else runs).
	AudioSeconds float64
	Elapsed      time.Duration
}

// Add scores one utterance and adds it to the report.
func (r *Report) Add(id, reference, hypothesis string) Result {
	c, ops := Align(Normalize(reference), Normalize(hypothesis))
	res := Result{ID: id, Reference: reference, Hypothesis: hypothesis, Counts: c, Ops: ops}
	r.Results = append(r.Results, res)
	r.Total = r.Total.Add(c)
	return res
}

// Rate is the WER over the whole set (errors summed over utterances
// divided by reference words summed, as sclite computes it).
func (r *Report) Rate() float64 { return r.Total.Rate() }

// RealTimeFactor is Elapsed divided by AudioSeconds.
func (r *Report) RealTimeFactor() float64 {
	if r.AudioSeconds == 0 {
		return 0
	}
	return r.Elapsed.Seconds() / r.AudioSeconds
}

// Text joins the words of an engine's answer with spaces.
func Text(words []transcribe.Word) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.Word)
	}
	return b.String()
}

// Evaluate transcribes every sample with e, each as one chunk, and scores
// the words against the references.
func Evaluate(ctx context.Context, e transcribe.Engine, samples []Sample) (Report, error) {
	var r Report
	for _, s := range samples {
		start := time.Now()
		words, err := e.Transcribe(ctx, s.Audio)
		r.Elapsed += time.Since(start)
		if err != nil {
			return r, fmt.Errorf("wer: transcribe %s: %w", s.ID, err)
		}
		r.AudioSeconds += s.Seconds()
		r.Add(s.ID, s.Reference, Text(words))
	}
	return r, nil
}

// LoadLibriVox reads a PocketSphinx test directory: the utterance ids in
// "fileids", the references in "transcription" (sclite trn format with
// <s> </s> markers) and each id's 16 kHz mono 16-bit WAV file.
func LoadLibriVox(dir string) ([]Sample, error) {
	ids, err := readLines(filepath.Join(dir, "fileids"))
	if err != nil {
		return nil, fmt.Errorf("wer: load %s: %w", dir, err)
	}
	f, err := os.Open(filepath.Join(dir, "transcription"))
	if err != nil {
		return nil, fmt.Errorf("wer: load %s: %w", dir, err)
	}
	defer f.Close()
	refs, err := ParseTRN(f)
	if err != nil {
		return nil, fmt.Errorf("wer: load %s: %w", dir, err)
	}
	samples := make([]Sample, 0, len(ids))
	for _, id := range ids {
		ref, ok := refs[id]
		if !ok {
			return nil, fmt.Errorf("wer: load %s: no reference for %s", dir, id)
		}
		a, err := ReadWAVFile(filepath.Join(dir, filepath.FromSlash(id)+".wav"))
		if err != nil {
			return nil, fmt.Errorf("wer: load %s: %w", dir, err)
		}
		samples = append(samples, Sample{ID: id, Audio: a, Reference: ref})
	}
	return samples, nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// ErrFormat reports a malformed reference or audio file.
var ErrFormat = errors.New("wer: bad format")

// ParseTRN reads sclite "trn" lines, "words ... (uttid)", into a map from
// utterance id to text (markers such as <s> are left for Normalize).
// Blank lines and lines starting with ';;' are skipped.
func ParseTRN(r io.Reader) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, ";;") {
			continue
		}
		open := strings.LastIndexByte(line, '(')
		if open < 0 || !strings.HasSuffix(line, ")") || open == len(line)-2 {
			return nil, fmt.Errorf("%w: trn line %d has no (uttid) at its end", ErrFormat, n)
		}
		id := line[open+1 : len(line)-1]
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%w: trn line %d repeats utterance %s", ErrFormat, n, id)
		}
		out[id] = strings.TrimSpace(line[:open])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("wer: read trn: %w", err)
	}
	return out, nil
}
