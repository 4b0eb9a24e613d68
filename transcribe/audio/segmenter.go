package audio

import (
	"math"
	"time"
)

const (
	frameSamples = outRate / 100 // 10 ms analysis frames
	frameMS      = 10
	silenceDB    = -100.0 // energy of a frame of digital silence
)

// segmenterConfig is the resolved form of Options for the segmenter, in
// frames of 10 ms.
type segmenterConfig struct {
	maxFrames       int     // longest chunk
	endPauseFrames  int     // a silence this long ends the chunk
	padFrames       int     // silence kept before and after speech
	minSpeechFrames int     // chunks with less speech are dropped (clicks)
	absFloorDB      float64 // frames quieter than this are never speech
	marginDB        float64 // speech is this far above the noise floor
}

func newSegmenterConfig(o Options) segmenterConfig {
	fr := func(d time.Duration) int { return int(d / (frameMS * time.Millisecond)) }
	c := segmenterConfig{
		maxFrames:       fr(o.MaxChunk),
		endPauseFrames:  max(fr(o.EndPause), 1),
		padFrames:       fr(o.Padding),
		minSpeechFrames: max(fr(o.MinSpeech), 1),
		absFloorDB:      o.SpeechFloorDB,
		marginDB:        o.SpeechMarginDB,
	}
	// Padding on both sides must leave room for speech in a chunk.
	c.padFrames = min(c.padFrames, c.maxFrames/4)
	return c
}

// segmenter cuts a stream of 16 kHz samples into chunks of speech at pauses.
// It holds at most maxFrames of audio plus one frame. It classifies each
// 10 ms frame as speech when its energy is above both an absolute floor and
// an adaptive noise floor by a margin, with the pause rules of
// segmenterConfig deciding where chunks end.
type segmenter struct {
	cfg  segmenterConfig
	emit func(offsetSamples int64, samples []int16) bool

	frame     []int16 // partial frame being filled
	pos       int64   // absolute sample index of the next frame start
	noiseDB   float64 // adaptive noise floor
	haveNoise bool

	// The current chunk (or, when idle, the last padFrames of audio).
	active    bool
	start     int64     // absolute sample index of buf[0]
	buf       []int16   // audio of the chunk, whole frames
	energy    []float64 // per frame of buf
	speech    []bool    // per frame of buf
	silence   int       // trailing non-speech frames
	lastVoice int       // frame index (in buf) after the last speech frame
	stopped   bool
}

func newSegmenter(cfg segmenterConfig, emit func(offsetSamples int64, samples []int16) bool) *segmenter {
	return &segmenter{
		cfg:   cfg,
		emit:  emit,
		frame: make([]int16, 0, frameSamples),
		buf:   make([]int16, 0, (cfg.maxFrames+1)*frameSamples),
	}
}

// write feeds samples; it returns false once emit has returned false.
func (s *segmenter) write(p []int16) bool {
	for len(p) > 0 && !s.stopped {
		n := min(frameSamples-len(s.frame), len(p))
		s.frame = append(s.frame, p[:n]...)
		p = p[n:]
		if len(s.frame) == frameSamples {
			s.addFrame(s.frame)
			s.frame = s.frame[:0]
		}
	}
	return !s.stopped
}

// writeSilence feeds n samples of digital silence without allocating.
func (s *segmenter) writeSilence(n int64) bool {
	var zeros [frameSamples]int16
	for n > 0 && !s.stopped {
		k := min(n, int64(frameSamples))
		s.write(zeros[:k])
		n -= k
	}
	return !s.stopped
}

func frameEnergyDB(f []int16) float64 {
	var sum float64
	for _, v := range f {
		x := float64(v)
		sum += x * x
	}
	if sum == 0 {
		return silenceDB
	}
	db := 10 * math.Log10(sum/float64(len(f))/(32768*32768))
	return max(db, silenceDB)
}

// classify updates the noise floor and says whether a frame is speech.
func (s *segmenter) classify(db float64) bool {
	if !s.haveNoise {
		s.noiseDB, s.haveNoise = db, true
	}
	isSpeech := db > s.cfg.absFloorDB && db > s.noiseDB+s.cfg.marginDB
	switch {
	case db < s.noiseDB:
		// Follow quieter frames quickly.
		s.noiseDB += 0.5 * (db - s.noiseDB)
	case !isSpeech:
		// Rise slowly with louder background (about 3 dB/s).
		s.noiseDB += min(db-s.noiseDB, 0.03)
	default:
		// Speech raises the floor very slowly, so a steady noise that
		// starts at a high level is eventually learned (about 0.5 dB/s).
		s.noiseDB += 0.005
	}
	return isSpeech
}

func (s *segmenter) addFrame(f []int16) {
	db := frameEnergyDB(f)
	isSpeech := s.classify(db)
	framePos := s.pos
	s.pos += frameSamples

	if !s.active {
		if isSpeech {
			s.active = true
			s.silence = 0
		} else {
			s.appendFrame(f, db, false)
			// Keep only the padding before speech starts.
			if extra := len(s.energy) - s.cfg.padFrames; extra > 0 {
				s.dropFront(extra)
			}
			if len(s.energy) == 0 {
				s.start = s.pos
			}
			return
		}
	}
	if len(s.energy) == 0 {
		s.start = framePos
	}
	if len(s.energy)+1 > s.cfg.maxFrames {
		s.forceCut()
		if s.stopped {
			return
		}
	}
	s.appendFrame(f, db, isSpeech)
	n := len(s.energy)
	if isSpeech {
		s.silence = 0
		s.lastVoice = n
		return
	}
	s.silence++
	if s.silence >= s.cfg.endPauseFrames {
		s.endChunk()
	}
}

func (s *segmenter) appendFrame(f []int16, db float64, isSpeech bool) {
	s.buf = append(s.buf, f...)
	s.energy = append(s.energy, db)
	s.speech = append(s.speech, isSpeech)
}

// dropFront removes the first n frames of the buffer.
func (s *segmenter) dropFront(n int) {
	n = min(n, len(s.energy))
	s.start += int64(n * frameSamples)
	s.buf = s.buf[:copy(s.buf, s.buf[n*frameSamples:])]
	s.energy = s.energy[:copy(s.energy, s.energy[n:])]
	s.speech = s.speech[:copy(s.speech, s.speech[n:])]
	s.lastVoice = max(s.lastVoice-n, 0)
}

// emitFrames sends frames [0, n) of the buffer as a chunk when they hold
// enough speech, then drops them.
func (s *segmenter) emitFrames(n int) {
	speech := 0
	for _, v := range s.speech[:n] {
		if v {
			speech++
		}
	}
	if speech >= s.cfg.minSpeechFrames {
		out := make([]int16, n*frameSamples)
		copy(out, s.buf)
		if !s.emit(s.start, out) {
			s.stopped = true
		}
	}
	s.dropFront(n)
}

// endChunk closes the chunk after a long pause: it ends padFrames after the
// last speech frame, and the segmenter goes idle.
func (s *segmenter) endChunk() {
	end := min(s.lastVoice+s.cfg.padFrames, len(s.energy))
	s.emitFrames(end)
	s.active = false
	s.silence = 0
	if extra := len(s.energy) - s.cfg.padFrames; extra > 0 {
		s.dropFront(extra)
	}
}

// forceCut is called when the chunk is full. It cuts in the middle of the
// longest non-speech run in the second half of the chunk (the latest if
// tied); with none there, the longest after the first quarter; with none
// at all, at the quietest frame of the second half. Audio after the cut
// starts the next chunk, so no sample is lost.
func (s *segmenter) forceCut() {
	n := len(s.energy)
	cut := -1
	for _, from := range []int{n / 2, n / 4} {
		bestLen := 0
		for i := from; i < n; {
			if s.speech[i] {
				i++
				continue
			}
			j := i
			for j < n && !s.speech[j] {
				j++
			}
			if j-i >= bestLen {
				bestLen, cut = j-i, (i+j)/2
			}
			i = j
		}
		if cut >= 0 {
			break
		}
	}
	if cut <= 0 {
		cut = n / 2
		for i := n / 2; i < n; i++ {
			if s.energy[i] <= s.energy[cut] {
				cut = i
			}
		}
		cut = max(cut, 1)
	}
	s.emitFrames(cut)
	// Recount the trailing silence of what is left.
	s.silence = 0
	for i := len(s.speech) - 1; i >= 0 && !s.speech[i]; i-- {
		s.silence++
	}
}

// flush ends the stream: a partial last frame is dropped (under 10 ms) and
// an open chunk is emitted up to padFrames after its last speech.
func (s *segmenter) flush() {
	if s.stopped || !s.active {
		return
	}
	end := min(s.lastVoice+s.cfg.padFrames, len(s.energy))
	s.emitFrames(end)
	s.active = false
}
