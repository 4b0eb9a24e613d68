package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/custodian/custodian/transcribe"
)

// ErrBadResponse is wrapped by errors for answers that are not a usable
// verbose_json transcription. The error text never quotes the answer.
var ErrBadResponse = errors.New("openai: unusable answer")

// verboseJSON is the union of the verbose_json shapes of OpenAI,
// faster-whisper servers and whisper.cpp's server.
type verboseJSON struct {
	Text     *string          `json:"text"`
	Duration float64          `json:"duration"`
	Words    []verboseWord    `json:"words"`
	Segments []verboseSegment `json:"segments"`
	// Error: whisper.cpp answers 200 with {"error": "message"}; OpenAI
	// answers 4xx/5xx with {"error": {"message", "type", "code"}}.
	Error json.RawMessage `json:"error"`
}

type verboseWord struct {
	Word        string   `json:"word"`
	Start       *float64 `json:"start"`
	End         *float64 `json:"end"`
	Probability *float64 `json:"probability"` // faster-whisper, whisper.cpp; absent from OpenAI
}

type verboseSegment struct {
	Start        *float64      `json:"start"`
	End          *float64      `json:"end"`
	Text         string        `json:"text"`
	AvgLogprob   *float64      `json:"avg_logprob"`
	NoSpeechProb *float64      `json:"no_speech_prob"`
	Words        []verboseWord `json:"words"` // faster-whisper: words; whisper.cpp: tokens
}

// Whisper's own rule for dropping a hallucinated segment over silence
// (openai/whisper transcribe: no_speech_threshold, logprob_threshold).
const (
	noSpeechThreshold = 0.6
	logprobThreshold  = -1.0
)

func (s verboseSegment) isNoSpeech() bool {
	return s.NoSpeechProb != nil && *s.NoSpeechProb > noSpeechThreshold &&
		s.AvgLogprob != nil && *s.AvgLogprob < logprobThreshold
}

// segmentConfidence is exp(avg_logprob): the geometric mean of the
// segment's token probabilities. Without avg_logprob it is 1.
func (s verboseSegment) confidence() float64 {
	if s.AvgLogprob == nil {
		return 1
	}
	return clamp01(math.Exp(*s.AvgLogprob))
}

// parseVerbose turns a verbose_json answer into words with times in
// milliseconds from the chunk start, clamped to [0, durMS].
//
// Words come from, in order of preference:
//  1. the top-level "words" (OpenAI, faster-whisper with
//     timestamp_granularities[]=word); each entry is one word;
//  2. each segment's "words" (faster-whisper: words; whisper.cpp: tokens,
//     merged into words: a token not starting with a space continues the
//     previous word);
//  3. each segment's text, split at spaces, with the segment's time span
//     shared out in proportion to word length (servers without word
//     timestamps).
//
// Confidence is the word's "probability" when the server gives one
// (faster-whisper, whisper.cpp: mean over a word's tokens), otherwise
// exp(avg_logprob) of the segment the word falls in, otherwise 1.
// Segments that Whisper's own rule marks as no speech (no_speech_prob >
// 0.6 and avg_logprob < -1) are dropped with their words, so silence gives
// no words. Punctuation stays attached to words as the server wrote it
// ("Hello,"); surrounding spaces are removed.
func parseVerbose(body []byte, durMS int64) ([]transcribe.Word, error) {
	var v verboseJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: not verbose_json (%s)", ErrBadResponse, jsonErrorKind(err))
	}
	if len(v.Error) > 0 && !bytes.Equal(v.Error, []byte("null")) {
		return nil, &StatusError{StatusCode: 200, Message: errorMessage(v.Error)}
	}
	if v.Text == nil && v.Words == nil && v.Segments == nil {
		return nil, fmt.Errorf("%w: no text, words or segments", ErrBadResponse)
	}
	var words []transcribe.Word
	switch {
	case len(v.Words) > 0:
		for _, w := range v.Words {
			if w.Start == nil || w.End == nil {
				return nil, fmt.Errorf("%w: word without start or end", ErrBadResponse)
			}
			seg, ok := segmentAt(v.Segments, (*w.Start+*w.End)/2)
			if ok && seg.isNoSpeech() {
				continue
			}
			conf := 1.0
			if ok {
				conf = seg.confidence()
			}
			if w.Probability != nil {
				conf = clamp01(*w.Probability)
			}
			words = appendWord(words, w.Word, *w.Start, *w.End, conf)
		}
	case hasSegmentWords(v.Segments):
		for _, s := range v.Segments {
			if s.isNoSpeech() {
				continue
			}
			ws, err := mergeTokens(s)
			if err != nil {
				return nil, err
			}
			words = append(words, ws...)
		}
	default:
		for _, s := range v.Segments {
			if s.isNoSpeech() || strings.TrimSpace(s.Text) == "" {
				continue
			}
			if s.Start == nil || s.End == nil {
				return nil, fmt.Errorf("%w: segment without start or end", ErrBadResponse)
			}
			words = append(words, spreadSegment(s)...)
		}
		if len(v.Segments) == 0 && v.Text != nil && strings.TrimSpace(*v.Text) != "" {
			return nil, fmt.Errorf("%w: text without words or segments (does the server support response_format=verbose_json?)", ErrBadResponse)
		}
	}
	return clampTimes(words, durMS), nil
}

func hasSegmentWords(segs []verboseSegment) bool {
	for _, s := range segs {
		if len(s.Words) > 0 {
			return true
		}
	}
	return false
}

// segmentAt finds the segment whose span holds t (seconds).
func segmentAt(segs []verboseSegment, t float64) (verboseSegment, bool) {
	for _, s := range segs {
		if s.Start != nil && s.End != nil && t >= *s.Start && t <= *s.End {
			return s, true
		}
	}
	return verboseSegment{}, false
}

// isSpecialToken matches whisper.cpp's special tokens ("[_BEG_]",
// "[_TT_150]"), which older servers include among a segment's words.
func isSpecialToken(s string) bool {
	return strings.HasPrefix(s, "[_") && strings.HasSuffix(s, "]")
}

// mergeTokens joins a segment's tokens into words. faster-whisper's
// entries are whole words (" Hello"), each starting with a space, so they
// stay as they are.
func mergeTokens(s verboseSegment) ([]transcribe.Word, error) {
	var out []transcribe.Word
	var text strings.Builder
	var start, end, probSum float64
	var nTok int
	flush := func() {
		if nTok > 0 {
			out = appendWord(out, text.String(), start, end, probSum/float64(nTok))
		}
		text.Reset()
		nTok, probSum = 0, 0
	}
	for _, tok := range s.Words {
		if isSpecialToken(strings.TrimSpace(tok.Word)) {
			continue
		}
		if tok.Start == nil || tok.End == nil {
			return nil, fmt.Errorf("%w: word without start or end", ErrBadResponse)
		}
		if strings.TrimSpace(tok.Word) == "" {
			continue
		}
		if startsWord(tok.Word) || nTok == 0 {
			flush()
			start = *tok.Start
		}
		text.WriteString(tok.Word)
		end = *tok.End
		p := s.confidence()
		if tok.Probability != nil {
			p = clamp01(*tok.Probability)
		}
		probSum += p
		nTok++
	}
	flush()
	return out, nil
}

func startsWord(tok string) bool {
	r, _ := utf8.DecodeRuneInString(tok)
	return r == ' ' || r == '\t' || r == '\n'
}

// spreadSegment splits a segment's text into words and shares its span
// out in proportion to word length.
func spreadSegment(s verboseSegment) []transcribe.Word {
	fields := strings.Fields(s.Text)
	var total int
	for _, f := range fields {
		total += utf8.RuneCountInString(f)
	}
	start, span := *s.Start, *s.End-*s.Start
	var out []transcribe.Word
	var done int
	for _, f := range fields {
		n := utf8.RuneCountInString(f)
		t0 := start + span*float64(done)/float64(total)
		done += n
		t1 := start + span*float64(done)/float64(total)
		out = appendWord(out, f, t0, t1, s.confidence())
	}
	return out
}

func appendWord(out []transcribe.Word, w string, start, end, conf float64) []transcribe.Word {
	w = strings.TrimSpace(w)
	if w == "" {
		return out
	}
	return append(out, transcribe.Word{
		StartMS:    secondsToMS(start),
		EndMS:      secondsToMS(end),
		Word:       w,
		Confidence: clamp01(conf),
	})
}

func secondsToMS(s float64) int64 {
	if math.IsNaN(s) || s < 0 {
		return 0
	}
	if s > 1e9 {
		return 1e12
	}
	return int64(math.Round(s * 1000))
}

// clampTimes keeps every word inside [0, durMS], ends not before starts
// and starts not before the previous word's start.
func clampTimes(words []transcribe.Word, durMS int64) []transcribe.Word {
	var prev int64
	for i := range words {
		w := &words[i]
		w.StartMS = min(max(w.StartMS, prev), durMS)
		w.EndMS = min(max(w.EndMS, w.StartMS), durMS)
		prev = w.StartMS
	}
	return words
}

func clamp01(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0:
		return 0
	case p > 1:
		return 1
	}
	return p
}

// errorMessage extracts a server's error message from {"error": "..."} or
// {"error": {"message": "...", "type": "...", "code": ...}}, cut short and
// stripped of control characters.
func errorMessage(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return sanitize(s)
	}
	var o struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &o) == nil {
		msg := o.Message
		if o.Type != "" {
			msg = o.Type + ": " + msg
		}
		return sanitize(msg)
	}
	return "unreadable error object"
}

// maxMessage bounds a server message quoted in an error.
const maxMessage = 200

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strings.TrimSpace(s)
}

// jsonErrorKind describes a decode error without quoting the input.
func jsonErrorKind(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty body"
	}
	return "decode error"
}
