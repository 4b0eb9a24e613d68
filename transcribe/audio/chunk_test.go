package audio

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/custodian/custodian/transcribe"
)

func chunksOf(tb testing.TB, data []byte, ct string, opts Options) ([]transcribe.Audio, error) {
	tb.Helper()
	var out []transcribe.Audio
	for a, err := range Chunks(context.Background(), bytes.NewReader(data), ct, opts) {
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

// speechFrames marks the 10 ms frames of pcm louder than -35 dBFS: speech
// for these clean clips.
func speechFrames(pcm []int16) []bool {
	out := make([]bool, len(pcm)/frameSamples)
	for i := range out {
		out[i] = frameEnergyDB(pcm[i*frameSamples:(i+1)*frameSamples]) > -35
	}
	return out
}

func TestChunksConversation(t *testing.T) {
	// conversation.*: six clips with 1.2 s pauses, then three clips with
	// 0.25 s gaps (gen.sh). With defaults each utterance is a chunk.
	for _, name := range []string{"conversation.ogg", "conversation.webm"} {
		t.Run(name, func(t *testing.T) {
			data := readTestdata(t, name)
			full := decodeFile(t, name, "")
			chunks, err := chunksOf(t, data, contentTypeOf(name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, full, chunks, 30*time.Second)
			if len(chunks) != 9 {
				t.Errorf("%d chunks, want 9 (one per utterance)", len(chunks))
			}
			// Each chunk is a slice of the decoded recording at its offset.
			for _, c := range chunks {
				start := int(c.OffsetMS) * outRate / 1000
				if !equalPCM(full[start:start+len(c.Samples)], c.Samples) {
					t.Errorf("chunk at %d ms differs from the recording there", c.OffsetMS)
				}
			}
		})
	}
}

func TestChunksCutInPauses(t *testing.T) {
	// A maximum shorter than the turns forces cuts inside speech turns:
	// they land in pauses when the turn has one in the second half of
	// the chunk, else (espeak reads digits without a gap) at the quietest
	// 10 ms of that half; never in the middle of loud speech.
	data := readTestdata(t, "conversation.ogg")
	full := decodeFile(t, "conversation.ogg", "")
	energy := make([]float64, len(full)/frameSamples)
	for i := range energy {
		energy[i] = frameEnergyDB(full[i*frameSamples : (i+1)*frameSamples])
	}
	speech := speechFrames(full)
	for _, max := range []time.Duration{4 * time.Second, 8 * time.Second, 15 * time.Second} {
		t.Run(max.String(), func(t *testing.T) {
			chunks, err := chunksOf(t, data, ContentTypeOgg, Options{MaxChunk: max, EndPause: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, full, chunks, max)
			cuts, quietest := 0, 0
			for i := 1; i < len(chunks); i++ {
				prev := chunks[i-1]
				prevEnd := prev.OffsetMS + int64(len(prev.Samples)*1000/outRate)
				if prevEnd != chunks[i].OffsetMS {
					continue // ended by a pause, not cut
				}
				cuts++
				f := int(prevEnd / frameMS)
				if !speech[f-1] && !speech[f] {
					continue // in a pause
				}
				quietest++
				half := int(prev.OffsetMS/frameMS) + len(prev.Samples)/frameSamples/2
				for k := half; k < f; k++ {
					if energy[k] < energy[f]-0.5 {
						t.Errorf("cut at %d ms (%.1f dBFS) is inside speech: %d ms is quieter (%.1f dBFS)",
							prevEnd, energy[f], k*frameMS, energy[k])
						break
					}
				}
			}
			t.Logf("%d chunks, %d forced cuts, %d of them at the quietest frame", len(chunks), cuts, quietest)
			if cuts == 0 {
				t.Error("no forced cut: the test does not test cutting")
			}
			if max >= 8*time.Second && quietest > 0 {
				t.Errorf("%d cuts outside pauses with a %v maximum", quietest, max)
			}
		})
	}
}

// checkChunks checks ordering, the maximum length, and that every speech
// frame of the recording is inside a chunk.
func checkChunks(t *testing.T, full []int16, chunks []transcribe.Audio, max time.Duration) {
	t.Helper()
	maxSamples := int(max.Seconds() * outRate)
	covered := make([]bool, len(full)/frameSamples+1)
	var prevEnd int64
	for i, c := range chunks {
		if len(c.Samples) == 0 || len(c.Samples) > maxSamples {
			t.Errorf("chunk %d has %d samples, max %d", i, len(c.Samples), maxSamples)
		}
		if c.OffsetMS < prevEnd {
			t.Errorf("chunk %d starts at %d ms, before the previous end %d", i, c.OffsetMS, prevEnd)
		}
		prevEnd = c.OffsetMS + int64(len(c.Samples)*1000/outRate)
		for f := c.OffsetMS / frameMS; f < prevEnd/frameMS && int(f) < len(covered); f++ {
			covered[f] = true
		}
	}
	for f, s := range speechFrames(full) {
		if s && !covered[f] {
			t.Errorf("speech at %d ms is in no chunk", f*frameMS)
			return
		}
	}
}

func equalPCM(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestChunksSilenceAndEmpty(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		ct   string
	}{
		{"silence.ogg", readTestdata(t, "silence.ogg"), ContentTypeOgg},
		{"silence.webm", readTestdata(t, "silence.webm"), ContentTypeWebM},
		{"empty ogg", nil, ContentTypeOgg},
		{"empty webm", nil, ContentTypeWebM},
		{"empty matroska", []byte{}, ContentTypeMatroska},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks, err := chunksOf(t, tt.data, tt.ct, Options{})
			if err != nil || len(chunks) != 0 {
				t.Errorf("got %d chunks, err %v; want none and no error", len(chunks), err)
			}
		})
	}
	// The silence is still decoded as time.
	pcm := decodeFile(t, "silence.webm", "")
	if len(pcm) != 3*outRate || levelDB(pcm) > -90 {
		t.Errorf("silence.webm: %d samples at %.1f dBFS, want 48000 silent", len(pcm), levelDB(pcm))
	}
}

func TestChunksStopEarly(t *testing.T) {
	data := readTestdata(t, "conversation.webm")
	n := 0
	for range Chunks(context.Background(), bytes.NewReader(data), ContentTypeWebM, Options{}) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("got %d chunks", n)
	}
}

func TestChunksCancel(t *testing.T) {
	for _, name := range []string{"conversation.ogg", "conversation.webm"} {
		ctx, cancel := context.WithCancel(context.Background())
		var err error
		n := 0
		for _, e := range Chunks(ctx, bytes.NewReader(readTestdata(t, name)), contentTypeOf(name), Options{}) {
			if e != nil {
				err = e
				break
			}
			n++
			cancel()
		}
		cancel()
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Errorf("%s: after cancel got %d chunks and %v, want 1 and context.Canceled", name, n, err)
		}
	}
}

// TestSegmenterBoundedMemory feeds an hour of unbroken noise-like "speech"
// and then an hour of speech with pauses: chunks never exceed the maximum
// and the buffer never grows past it.
func TestSegmenterBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("an hour of audio")
	}
	cfg := newSegmenterConfig(Options{MaxChunk: 30 * time.Second}.withDefaults())
	maxSamples := cfg.maxFrames * frameSamples
	var count, total int
	s := newSegmenter(cfg, func(off int64, pcm []int16) bool {
		if len(pcm) > maxSamples {
			t.Fatalf("chunk of %d samples > %d", len(pcm), maxSamples)
		}
		count++
		total += len(pcm)
		return true
	})
	capBefore := cap(s.buf)
	// Precomputed 25 ms blocks of noise, loud and 18 dB softer.
	rng := rand.New(rand.NewPCG(1, 2))
	loudBlock, softBlock, silent := make([]int16, 400), make([]int16, 400), make([]int16, 400)
	for i := range loudBlock {
		loudBlock[i] = int16(rng.IntN(16001) - 8000)
		softBlock[i] = loudBlock[i] / 8
	}
	const hour = 3600 * outRate
	for fed := 0; fed < 2*hour; fed += len(silent) {
		// First hour: syllables (150 ms loud, 100 ms soft) without a
		// pause. Second hour: 4 s of that, 1.5 s of silence.
		block := silent
		if fed < hour || (fed*10/outRate)%55 < 40 {
			block = loudBlock
			if (fed*100/outRate)%25 >= 15 {
				block = softBlock
			}
		}
		s.write(block)
		if cap(s.buf) != capBefore {
			t.Fatalf("buffer grew to %d samples", cap(s.buf))
		}
	}
	s.flush()
	t.Logf("%d chunks, %.0f s of audio", count, float64(total)/outRate)
	// 120 full chunks in the first hour, one per 5.5 s in the second.
	if want := 120 + 3600*10/55; count < want-5 || count > want+5 {
		t.Errorf("%d chunks for two hours, want about %d", count, want)
	}
}
