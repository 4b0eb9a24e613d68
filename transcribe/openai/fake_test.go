package openai

import (
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// whisperFake is a protocol fake of an OpenAI-compatible transcription
// server (POST /v1/audio/transcriptions), used because no Whisper model can
// run here. It checks each request against the documented format (method,
// path, bearer key, multipart fields, a 16 kHz mono 16-bit PCM WAV file)
// and answers with what the test scripts: a verbose_json body in the shape
// of OpenAI, faster-whisper or whisper.cpp, an error status, a delay, or
// garbage. It cannot recognize speech, so the words it answers are the
// test's; it checks that their times fit inside the uploaded audio.
type whisperFake struct {
	t   testing.TB
	srv *httptest.Server
	key string // expected bearer key; "" expects no Authorization header

	mu       sync.Mutex
	requests []fakeRequest
	problems []string
	// answer returns the reply to the n-th request (from 1).
	answer func(n int, r fakeRequest) fakeAnswer
}

// fakeRequest is what the fake read from one valid request.
type fakeRequest struct {
	Model          string
	Language       string
	ResponseFormat string
	Granularities  []string
	Filename       string
	Samples        []int16
}

// Seconds is the uploaded audio's duration.
func (r fakeRequest) Seconds() float64 { return float64(len(r.Samples)) / 16000 }

type fakeAnswer struct {
	Status     int
	Body       []byte
	Delay      time.Duration // before answering
	RetryAfter string
}

func newWhisperFake(t testing.TB, key string, answer func(n int, r fakeRequest) fakeAnswer) *whisperFake {
	t.Helper()
	f := &whisperFake{t: t, key: key, answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve)) // loopback only
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems {
			t.Errorf("whisperFake: invalid request: %s", p)
		}
	})
	return f
}

func (f *whisperFake) URL() string { return f.srv.URL }

func (f *whisperFake) Requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

func (f *whisperFake) reject(w http.ResponseWriter, status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.problems = append(f.problems, msg)
	f.mu.Unlock()
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": nil}})
}

func (f *whisperFake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/audio/transcriptions" {
		f.reject(w, http.StatusNotFound, "%s %s", r.Method, r.URL.Path)
		return
	}
	auth := r.Header.Get("Authorization")
	want := ""
	if f.key != "" {
		want = "Bearer " + f.key
	}
	if subtle.ConstantTimeCompare([]byte(auth), []byte(want)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
		f.mu.Lock()
		f.problems = append(f.problems, "wrong or missing Authorization header")
		f.mu.Unlock()
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		f.reject(w, http.StatusBadRequest, "content type %q", r.Header.Get("Content-Type"))
		return
	}
	var req fakeRequest
	mr := multipart.NewReader(r.Body, params["boundary"])
	seen := map[string]int{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.reject(w, http.StatusBadRequest, "multipart: %v", err)
			return
		}
		b, err := io.ReadAll(p)
		if err != nil {
			f.reject(w, http.StatusBadRequest, "multipart part: %v", err)
			return
		}
		name := p.FormName()
		seen[name]++
		switch name {
		case "file":
			req.Filename = p.FileName()
			if !strings.HasSuffix(req.Filename, ".wav") {
				f.reject(w, http.StatusBadRequest, "file name %q has no .wav extension", req.Filename)
				return
			}
			s, err := parseStrictWAV(b)
			if err != nil {
				f.reject(w, http.StatusBadRequest, "file: %v", err)
				return
			}
			req.Samples = s
		case "model":
			req.Model = string(b)
		case "language":
			req.Language = string(b)
		case "response_format":
			req.ResponseFormat = string(b)
		case "timestamp_granularities[]":
			req.Granularities = append(req.Granularities, string(b))
		case "temperature", "prompt":
		default:
			f.reject(w, http.StatusBadRequest, "unknown field %q", name)
			return
		}
	}
	for _, field := range []string{"file", "model", "response_format"} {
		if seen[field] != 1 {
			f.reject(w, http.StatusBadRequest, "field %q sent %d times", field, seen[field])
			return
		}
	}
	if req.ResponseFormat != "verbose_json" {
		f.reject(w, http.StatusBadRequest, "response_format %q", req.ResponseFormat)
		return
	}
	hasWord := false
	for _, g := range req.Granularities {
		hasWord = hasWord || g == "word"
		if g != "word" && g != "segment" {
			f.reject(w, http.StatusBadRequest, "timestamp_granularities[] %q", g)
			return
		}
	}
	if !hasWord {
		f.reject(w, http.StatusBadRequest, "no word timestamps requested")
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	n := len(f.requests)
	f.mu.Unlock()

	a := f.answer(n, req)
	if a.Delay > 0 {
		select {
		case <-time.After(a.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	if a.Status == 0 {
		a.Status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	w.Write(a.Body)
}

// parseStrictWAV accepts exactly the canonical 44-byte-header 16 kHz mono
// 16-bit PCM WAV, with consistent sizes.
func parseStrictWAV(b []byte) ([]int16, error) {
	if len(b) < 44 {
		return nil, errors.New("shorter than a WAV header")
	}
	le := binary.LittleEndian
	switch {
	case string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt ":
		return nil, errors.New("not RIFF/WAVE")
	case int(le.Uint32(b[4:8])) != len(b)-8:
		return nil, fmt.Errorf("RIFF size %d, file %d bytes", le.Uint32(b[4:8]), len(b))
	case le.Uint32(b[16:20]) != 16 || le.Uint16(b[20:22]) != 1:
		return nil, errors.New("not a PCM fmt chunk")
	case le.Uint16(b[22:24]) != 1:
		return nil, fmt.Errorf("%d channels", le.Uint16(b[22:24]))
	case le.Uint32(b[24:28]) != 16000:
		return nil, fmt.Errorf("sample rate %d", le.Uint32(b[24:28]))
	case le.Uint32(b[28:32]) != 32000 || le.Uint16(b[32:34]) != 2 || le.Uint16(b[34:36]) != 16:
		return nil, errors.New("byte rate, block align or bits per sample wrong for 16-bit mono")
	case string(b[36:40]) != "data" || int(le.Uint32(b[40:44])) != len(b)-44:
		return nil, errors.New("data chunk size does not match the file")
	}
	s := make([]int16, (len(b)-44)/2)
	for i := range s {
		s[i] = int16(le.Uint16(b[44+2*i:]))
	}
	return s, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scriptWord is a word the fake "recognizes", with times in seconds.
type scriptWord struct {
	Word       string
	Start, End float64
	Prob       float64
}

func checkScript(t testing.TB, r fakeRequest, words []scriptWord) {
	t.Helper()
	for _, w := range words {
		if w.End > r.Seconds()+0.02 {
			t.Errorf("whisperFake: script word %q ends at %.2f s, after the %.2f s upload", w.Word, w.End, r.Seconds())
		}
	}
}

func joinText(words []scriptWord) string {
	var parts []string
	for _, w := range words {
		parts = append(parts, w.Word)
	}
	return " " + strings.Join(parts, " ")
}

// openAIAnswer is OpenAI's verbose_json with timestamp_granularities
// word and segment: top-level words without probability, segments with
// avg_logprob and no_speech_prob.
func openAIAnswer(t testing.TB, r fakeRequest, words []scriptWord, avgLogprob float64) []byte {
	checkScript(t, r, words)
	ws := []map[string]any{}
	for _, w := range words {
		ws = append(ws, map[string]any{"word": w.Word, "start": w.Start, "end": w.End})
	}
	segs := []map[string]any{}
	if len(words) > 0 {
		segs = append(segs, map[string]any{
			"id": 0, "seek": 0, "start": words[0].Start, "end": words[len(words)-1].End,
			"text": joinText(words), "tokens": []int{50364, 400}, "temperature": 0.0,
			"avg_logprob": avgLogprob, "compression_ratio": 1.1, "no_speech_prob": 0.02,
		})
	}
	return mustJSON(t, map[string]any{
		"task": "transcribe", "language": "english", "duration": r.Seconds(),
		"text": strings.TrimSpace(joinText(words)), "words": ws, "segments": segs,
	})
}

// fasterWhisperAnswer is a faster-whisper server's verbose_json: words
// with a leading space and a probability, both top-level and per segment.
func fasterWhisperAnswer(t testing.TB, r fakeRequest, words []scriptWord) []byte {
	checkScript(t, r, words)
	ws := []map[string]any{}
	for _, w := range words {
		ws = append(ws, map[string]any{"start": w.Start, "end": w.End, "word": " " + w.Word, "probability": w.Prob})
	}
	segs := []map[string]any{}
	if len(words) > 0 {
		segs = append(segs, map[string]any{
			"id": 1, "seek": 0, "start": words[0].Start, "end": words[len(words)-1].End,
			"text": joinText(words), "tokens": []int{1, 2}, "temperature": 0.0, "avg_logprob": -0.3,
			"compression_ratio": 1.2, "no_speech_prob": 0.01, "words": ws,
		})
	}
	return mustJSON(t, map[string]any{
		"task": "transcribe", "language": "en", "duration": r.Seconds(),
		"text": strings.TrimSpace(joinText(words)), "segments": segs, "words": ws,
	})
}

// whisperCppAnswer is whisper.cpp server's verbose_json: no top-level
// words; each segment's "words" are tokens (" respect", "able", ".").
func whisperCppAnswer(t testing.TB, r fakeRequest, tokens []scriptWord) []byte {
	checkScript(t, r, tokens)
	ts := []map[string]any{}
	var text strings.Builder
	for _, w := range tokens {
		ts = append(ts, map[string]any{"word": w.Word, "start": w.Start, "end": w.End, "t_dtw": -1, "probability": w.Prob})
		text.WriteString(w.Word)
	}
	seg := map[string]any{
		"id": 0, "text": text.String(), "start": tokens[0].Start, "end": tokens[len(tokens)-1].End,
		"tokens": []int{1}, "words": ts, "temperature": 0.0, "avg_logprob": -0.25, "no_speech_prob": 0.01,
	}
	return mustJSON(t, map[string]any{
		"task": "transcribe", "language": "english", "duration": r.Seconds(),
		"text": text.String(), "segments": []any{seg},
	})
}
