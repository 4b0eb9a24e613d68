package openai

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
)

const testKey = "sk-test-0123456789abcdef"

// speech returns n ms of a deterministic non-silent signal.
func speech(ms int) transcribe.Audio {
	s := make([]int16, ms*transcribe.SampleRate/1000)
	for i := range s {
		s[i] = int16(8000 * math.Sin(float64(i)*2*math.Pi*220/transcribe.SampleRate) * math.Sin(float64(i)/900))
	}
	return transcribe.Audio{OffsetMS: 5000, Samples: s}
}

func newEngine(t testing.TB, url string, mod func(*config.OpenAI), opts ...Option) *Engine {
	t.Helper()
	cfg := config.OpenAI{URL: url, Model: "whisper-1", Timeout: 2 * time.Second}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.APIKeyFile = keyFile
	if mod != nil {
		mod(&cfg)
	}
	opts = append([]Option{WithRetry(3, time.Millisecond, 5*time.Millisecond), WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	e, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var script = []scriptWord{
	{"Hello,", 0.32, 0.71, 0.91},
	{"I'd", 0.80, 1.02, 0.88},
	{"like", 1.02, 1.30, 0.97},
	{"to", 1.30, 1.41, 0.99},
	{"cancel.", 1.41, 2.05, 0.75},
}

func TestAnswerShapes(t *testing.T) {
	wantWords := []string{"Hello,", "I'd", "like", "to", "cancel."}
	tests := []struct {
		name     string
		answer   func(t testing.TB, r fakeRequest) []byte
		wantConf []float64
	}{
		{"openai", func(t testing.TB, r fakeRequest) []byte {
			return openAIAnswer(t, r, script, -0.2)
		}, []float64{math.Exp(-0.2), math.Exp(-0.2), math.Exp(-0.2), math.Exp(-0.2), math.Exp(-0.2)}},
		{"faster-whisper", func(t testing.TB, r fakeRequest) []byte {
			return fasterWhisperAnswer(t, r, script)
		}, []float64{0.91, 0.88, 0.97, 0.99, 0.75}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
				return fakeAnswer{Body: tt.answer(t, r)}
			})
			e := newEngine(t, f.URL(), nil)
			words, err := e.Transcribe(context.Background(), speech(2500))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, w := range words {
				got = append(got, w.Word)
				if i < len(script) {
					if w.StartMS != int64(math.Round(script[i].Start*1000)) || w.EndMS != int64(math.Round(script[i].End*1000)) {
						t.Errorf("word %d: [%d, %d] ms, want [%v, %v] s", i, w.StartMS, w.EndMS, script[i].Start, script[i].End)
					}
					if math.Abs(w.Confidence-tt.wantConf[i]) > 1e-9 {
						t.Errorf("word %d confidence %v, want %v", i, w.Confidence, tt.wantConf[i])
					}
				}
			}
			if !slices.Equal(got, wantWords) {
				t.Fatalf("words %q, want %q", got, wantWords)
			}
			if n := len(f.Requests()); n != 1 {
				t.Fatalf("%d requests", n)
			}
		})
	}
}

func TestWhisperCppTokensMerged(t *testing.T) {
	tokens := []scriptWord{
		{"[_BEG_]", 0, 0, 1},
		{" He", 0.10, 0.30, 0.9},
		{" was", 0.30, 0.52, 0.8},
		{" respect", 0.60, 0.90, 0.6},
		{"able", 0.90, 1.20, 0.4},
		{".", 1.20, 1.25, 1.0},
		{" ", 1.25, 1.25, 1.0},
	}
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Body: whisperCppAnswer(t, r, tokens)}
	})
	e := newEngine(t, f.URL(), nil)
	words, err := e.Transcribe(context.Background(), speech(1500))
	if err != nil {
		t.Fatal(err)
	}
	want := []transcribe.Word{
		{StartMS: 100, EndMS: 300, Word: "He", Confidence: 0.9},
		{StartMS: 300, EndMS: 520, Word: "was", Confidence: 0.8},
		{StartMS: 600, EndMS: 1250, Word: "respectable.", Confidence: (0.6 + 0.4 + 1.0) / 3},
	}
	if len(words) != len(want) {
		t.Fatalf("words %+v, want %+v", words, want)
	}
	for i := range want {
		if words[i].Word != want[i].Word || words[i].StartMS != want[i].StartMS || words[i].EndMS != want[i].EndMS ||
			math.Abs(words[i].Confidence-want[i].Confidence) > 1e-9 {
			t.Errorf("word %d = %+v, want %+v", i, words[i], want[i])
		}
	}
}

func TestRequestFormat(t *testing.T) {
	var got fakeRequest
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		got = r
		return fakeAnswer{Body: openAIAnswer(t, r, nil, 0)}
	})
	e := newEngine(t, f.URL()+"/v1/", func(c *config.OpenAI) { c.Language = "en"; c.Model = "large-v3" })
	a := speech(1234)
	words, err := e.Transcribe(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if len(words) != 0 {
		t.Fatalf("words %v from an empty answer", words)
	}
	if got.Model != "large-v3" || got.Language != "en" || got.ResponseFormat != "verbose_json" {
		t.Errorf("request fields %+v", got)
	}
	if !slices.Contains(got.Granularities, "word") {
		t.Errorf("granularities %q", got.Granularities)
	}
	if !slices.Equal(got.Samples, a.Samples) {
		t.Errorf("uploaded %d samples differ from the %d sent", len(got.Samples), len(a.Samples))
	}
}

func TestNoKeyNoLanguage(t *testing.T) {
	t.Setenv(APIKeyEnv, "")
	f := newWhisperFake(t, "", func(n int, r fakeRequest) fakeAnswer {
		if r.Language != "" {
			t.Errorf("language %q sent though not configured", r.Language)
		}
		return fakeAnswer{Body: openAIAnswer(t, r, script[:1], -0.1)}
	})
	e := newEngine(t, f.URL(), func(c *config.OpenAI) { c.APIKeyFile = "" })
	if _, err := e.Transcribe(context.Background(), speech(1000)); err != nil {
		t.Fatal(err)
	}
}

func TestKeyFromEnv(t *testing.T) {
	t.Setenv(APIKeyEnv, "  env-key-42 \n")
	f := newWhisperFake(t, "env-key-42", func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Body: openAIAnswer(t, r, script[:1], -0.1)}
	})
	e := newEngine(t, f.URL(), func(c *config.OpenAI) { c.APIKeyFile = "" })
	if _, err := e.Transcribe(context.Background(), speech(1000)); err != nil {
		t.Fatal(err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.OpenAI
		want string
	}{
		{"no url", config.OpenAI{}, "url is empty"},
		{"not http", config.OpenAI{URL: "ftp://x"}, "not an http(s) URL"},
		{"credentials in url", config.OpenAI{URL: "https://u:p@example.com"}, "must not hold credentials"},
		{"missing key file", config.OpenAI{URL: "http://127.0.0.1:1", APIKeyFile: "/nonexistent/key"}, "api_key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "u:p") {
				t.Fatalf("error leaks credentials: %v", err)
			}
		})
	}
}

func TestEndpointURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:8178", "http://127.0.0.1:8178/v1/audio/transcriptions"},
		{"http://127.0.0.1:8178/", "http://127.0.0.1:8178/v1/audio/transcriptions"},
		{"https://api.openai.com/v1", "https://api.openai.com/v1/audio/transcriptions"},
		{"https://gw.example.com/whisper/v1/", "https://gw.example.com/whisper/v1/audio/transcriptions"},
		{"https://gw.example.com/whisper", "https://gw.example.com/whisper/v1/audio/transcriptions"},
	}
	for _, tt := range tests {
		got, err := endpointURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("endpointURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestShortAndEmptyAudioNotSent(t *testing.T) {
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		t.Errorf("request for a %v s chunk", r.Seconds())
		return fakeAnswer{Status: 500}
	})
	e := newEngine(t, f.URL(), nil)
	for _, a := range []transcribe.Audio{{}, {Samples: make([]int16, 1599)}} {
		words, err := e.Transcribe(context.Background(), a)
		if err != nil || len(words) != 0 {
			t.Errorf("%d samples: words %v, err %v", len(a.Samples), words, err)
		}
	}
}

func TestSilenceHallucinationDropped(t *testing.T) {
	// Whisper's classic output on silence: one segment, high
	// no_speech_prob, low avg_logprob.
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Body: mustJSON(t, map[string]any{
			"task": "transcribe", "language": "english", "duration": r.Seconds(), "text": "Thank you.",
			"words": []any{
				map[string]any{"word": "Thank", "start": 0.0, "end": 0.4},
				map[string]any{"word": "you.", "start": 0.4, "end": 0.8},
			},
			"segments": []any{map[string]any{"id": 0, "start": 0.0, "end": 1.0, "text": " Thank you.",
				"avg_logprob": -1.4, "no_speech_prob": 0.93}},
		})}
	})
	e := newEngine(t, f.URL(), nil)
	words, err := e.Transcribe(context.Background(), transcribe.Audio{Samples: make([]int16, 16000)})
	if err != nil || len(words) != 0 {
		t.Fatalf("words %v, err %v; want none from silence", words, err)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  []fakeAnswer
		wantCalls int
		wantErr   bool
		retryable bool
	}{
		{"503 then ok", []fakeAnswer{{Status: 503}}, 2, false, false},
		{"429 with Retry-After then ok", []fakeAnswer{{Status: 429, RetryAfter: "0",
			Body: []byte(`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)}}, 2, false, false},
		{"500 502 then ok", []fakeAnswer{{Status: 500}, {Status: 502}}, 3, false, false},
		{"504 every time", []fakeAnswer{{Status: 504}, {Status: 504}, {Status: 504}, {Status: 504}}, 3, true, true},
		{"400 not retried", []fakeAnswer{{Status: 400, Body: []byte(`{"error":{"message":"Invalid file format.","type":"invalid_request_error"}}`)}}, 1, true, false},
		{"401 not retried", []fakeAnswer{{Status: 401, Body: []byte(`{"error":{"message":"Incorrect API key provided"}}`)}}, 1, true, false},
		{"413 not retried", []fakeAnswer{{Status: 413}}, 1, true, false},
		{"422 FastAPI detail", []fakeAnswer{{Status: 422, Body: []byte(`{"detail":"language xx is not supported"}`)}}, 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
				if n <= len(tt.failures) {
					return tt.failures[n-1]
				}
				return fakeAnswer{Body: openAIAnswer(t, r, script, -0.1)}
			})
			e := newEngine(t, f.URL(), nil)
			words, err := e.Transcribe(context.Background(), speech(2500))
			if got := len(f.Requests()); got != tt.wantCalls {
				t.Errorf("%d requests, want %d", got, tt.wantCalls)
			}
			if !tt.wantErr {
				if err != nil || len(words) != len(script) {
					t.Fatalf("words %d, err %v", len(words), err)
				}
				return
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.failures[0].Status {
				t.Fatalf("err = %v, want StatusError %d", err, tt.failures[0].Status)
			}
			if IsRetryable(err) != tt.retryable {
				t.Errorf("IsRetryable = %v, want %v", IsRetryable(err), tt.retryable)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("error contains the API key: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var first time.Time
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		if n == 1 {
			first = time.Now()
			return fakeAnswer{Status: 429, RetryAfter: "1"}
		}
		if d := time.Since(first); d < 900*time.Millisecond {
			t.Errorf("retried after %v despite Retry-After: 1", d)
		}
		return fakeAnswer{Body: openAIAnswer(t, r, script, -0.1)}
	})
	e := newEngine(t, f.URL(), nil, WithRetry(2, time.Millisecond, 2*time.Second))
	if _, err := e.Transcribe(context.Background(), speech(2500)); err != nil {
		t.Fatal(err)
	}
}

func TestTimeout(t *testing.T) {
	var calls atomic.Int32
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		calls.Add(1)
		if n < 3 {
			return fakeAnswer{Delay: 5 * time.Second, Body: openAIAnswer(t, r, script, -0.1)}
		}
		return fakeAnswer{Body: openAIAnswer(t, r, script, -0.1)}
	})
	// A timeout generous enough for a loaded machine to answer the third
	// request, far below the fake's delay for the first two.
	e := newEngine(t, f.URL(), func(c *config.OpenAI) { c.Timeout = time.Second })
	words, err := e.Transcribe(context.Background(), speech(2500))
	if err != nil || len(words) != len(script) {
		t.Fatalf("after two timeouts: words %d, err %v", len(words), err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d requests, want 3", calls.Load())
	}

	// Every attempt times out: a retryable error naming the timeout.
	g := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Delay: 5 * time.Second}
	})
	e = newEngine(t, g.URL(), func(c *config.OpenAI) { c.Timeout = 50 * time.Millisecond })
	_, err = e.Transcribe(context.Background(), speech(2500))
	if !errors.Is(err, context.DeadlineExceeded) || !IsRetryable(err) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("err = %v, want a retryable per-request timeout", err)
	}
	if n := len(g.Requests()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestCallerContext(t *testing.T) {
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Status: 503}
	})
	e := newEngine(t, f.URL(), nil, WithRetry(10, time.Hour, time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the first attempt reached the server: the engine is
		// then reading the 503 or waiting an hour to retry.
		for len(f.Requests()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := e.Transcribe(ctx, speech(2500))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want the caller's cancellation", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Transcribe kept waiting after the caller cancelled")
	}
	if n := len(f.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	e := newEngine(t, "http://"+addr, nil)
	_, err = e.Transcribe(context.Background(), speech(500))
	if err == nil || !IsRetryable(err) || !strings.Contains(err.Error(), "attempt 3 of 3") {
		t.Fatalf("err = %v, want a retryable error after 3 attempts", err)
	}
}

func TestUnusableAnswers(t *testing.T) {
	secret := "confidential words spoken"
	tests := []struct {
		name   string
		body   string
		status int
		want   error
	}{
		{"html page", "<html><body>" + secret + "</body></html>", 200, ErrBadResponse},
		{"empty body", "", 200, ErrBadResponse},
		{"truncated json", `{"text":"` + secret + `","words":[{"word":"a","start":0.1`, 200, ErrBadResponse},
		{"text only", `{"text":"` + secret + `"}`, 200, ErrBadResponse},
		{"wrong types", `{"text":"` + secret + `","words":[{"word":"a","start":"zero","end":1}]}`, 200, ErrBadResponse},
		{"word without times", `{"text":"x","words":[{"word":"` + secret + `"}]}`, 200, ErrBadResponse},
		{"empty object", `{}`, 200, ErrBadResponse},
		{"json array", `[1,2]`, 200, ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
				return fakeAnswer{Status: tt.status, Body: []byte(tt.body)}
			})
			e := newEngine(t, f.URL(), nil)
			_, err := e.Transcribe(context.Background(), speech(1000))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), "confidential") {
				t.Fatalf("error quotes the answer: %v", err)
			}
			if IsRetryable(err) || len(f.Requests()) != 1 {
				t.Fatalf("unusable answer retried (%d requests)", len(f.Requests()))
			}
		})
	}
}

func TestWhisperCppErrorWith200(t *testing.T) {
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Body: []byte(`{"error":"failed to read WAV file"}`)}
	})
	e := newEngine(t, f.URL(), nil)
	_, err := e.Transcribe(context.Background(), speech(1000))
	var se *StatusError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "failed to read WAV file") {
		t.Fatalf("err = %v, want StatusError carrying the server's message", err)
	}
}

func TestSegmentFallback(t *testing.T) {
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Body: mustJSON(t, map[string]any{
			"text": "Good morning. Bye", "duration": r.Seconds(),
			"segments": []any{
				map[string]any{"start": 1.0, "end": 2.0, "text": " Good morning.", "avg_logprob": -0.5},
				map[string]any{"start": 2.5, "end": 3.0, "text": " Bye"},
			},
		})}
	})
	e := newEngine(t, f.URL(), nil)
	words, err := e.Transcribe(context.Background(), speech(3500))
	if err != nil {
		t.Fatal(err)
	}
	want := []transcribe.Word{
		{StartMS: 1000, EndMS: 1333, Word: "Good", Confidence: math.Exp(-0.5)},
		{StartMS: 1333, EndMS: 2000, Word: "morning.", Confidence: math.Exp(-0.5)},
		{StartMS: 2500, EndMS: 3000, Word: "Bye", Confidence: 1},
	}
	if len(words) != len(want) {
		t.Fatalf("words %+v", words)
	}
	for i := range want {
		if words[i].Word != want[i].Word || words[i].StartMS != want[i].StartMS || words[i].EndMS != want[i].EndMS ||
			math.Abs(words[i].Confidence-want[i].Confidence) > 1e-9 {
			t.Errorf("word %d = %+v, want %+v", i, words[i], want[i])
		}
	}
}

func TestTimesClampedToChunk(t *testing.T) {
	f := newWhisperFake(t, testKey, func(n int, r fakeRequest) fakeAnswer {
		return fakeAnswer{Body: mustJSON(t, map[string]any{
			"text": "a b c", "words": []any{
				map[string]any{"word": "a", "start": -0.5, "end": 0.2, "probability": 1.7},
				map[string]any{"word": "b", "start": 0.1, "end": 0.05, "probability": -3},
				map[string]any{"word": "c", "start": 0.9, "end": 30.0},
			},
		})}
	})
	e := newEngine(t, f.URL(), nil)
	words, err := e.Transcribe(context.Background(), speech(1000))
	if err != nil {
		t.Fatal(err)
	}
	var prev int64
	for _, w := range words {
		if w.StartMS < prev || w.EndMS < w.StartMS || w.EndMS > 1000 || w.Confidence < 0 || w.Confidence > 1 {
			t.Errorf("word %+v out of bounds", w)
		}
		prev = w.StartMS
	}
}

// TestFakeRejectsBadWAV checks the protocol fake's own validation, so the
// tests above cannot pass against a fake that accepts anything.
func TestFakeRejectsBadWAV(t *testing.T) {
	good := encodeWAV([]int16{1, 2, 3})
	if _, err := parseStrictWAV(good); err != nil {
		t.Fatalf("canonical WAV rejected: %v", err)
	}
	mutate := func(off int, v uint32, size int) []byte {
		b := append([]byte(nil), good...)
		if size == 2 {
			binary.LittleEndian.PutUint16(b[off:], uint16(v))
		} else {
			binary.LittleEndian.PutUint32(b[off:], v)
		}
		return b
	}
	bad := map[string][]byte{
		"stereo":    mutate(22, 2, 2),
		"48 kHz":    mutate(24, 48000, 4),
		"8 bit":     mutate(34, 8, 2),
		"float":     mutate(20, 3, 2),
		"data size": mutate(40, 100, 4),
		"truncated": good[:43],
	}
	for name, b := range bad {
		if _, err := parseStrictWAV(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// And over HTTP: a client sending a 48 kHz file gets a 400.
	f := newWhisperFake(t, "", func(n int, r fakeRequest) fakeAnswer { return fakeAnswer{Body: []byte(`{}`)} })
	resp, err := http.Post(f.URL()+Path, "multipart/form-data; boundary=x",
		strings.NewReader("--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"+string(bad["48 kHz"])+"\r\n--x--\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("fake answered %d to a 48 kHz upload", resp.StatusCode)
	}
	f.mu.Lock()
	f.problems = nil // expected
	f.mu.Unlock()
}

func FuzzParseVerbose(f *testing.F) {
	f.Add([]byte(`{"text":"hi","words":[{"word":"hi","start":0.1,"end":0.3}],"segments":[{"start":0,"end":1,"text":"hi","avg_logprob":-0.2}]}`), int64(1000))
	f.Add([]byte(`{"text":"x","segments":[{"start":0,"end":1,"text":" a b","words":[{"word":" a","start":0,"end":0.5,"probability":0.5},{"word":"b","start":0.5,"end":1}]}]}`), int64(800))
	f.Add([]byte(`{"error":{"message":"bad","type":"x"}}`), int64(10))
	f.Add([]byte(`{"segments":[{"start":2,"end":1,"text":"backwards"}]}`), int64(3000))
	f.Fuzz(func(t *testing.T, body []byte, durMS int64) {
		if durMS < 0 || durMS > 1e7 {
			return
		}
		words, err := parseVerbose(body, durMS)
		if err != nil {
			return
		}
		var prev int64
		for _, w := range words {
			if w.Word == "" || w.Word != strings.TrimSpace(w.Word) {
				t.Fatalf("word %q", w.Word)
			}
			if w.StartMS < prev || w.EndMS < w.StartMS || w.EndMS > durMS || w.StartMS < 0 {
				t.Fatalf("word %+v outside [0, %d] or out of order", w, durMS)
			}
			if !(w.Confidence >= 0 && w.Confidence <= 1) {
				t.Fatalf("confidence %v", w.Confidence)
			}
			prev = w.StartMS
		}
	})
}

func BenchmarkRequestBody(b *testing.B) {
	e := &Engine{model: "whisper-1"}
	a := speech(30000)
	b.SetBytes(int64(2 * len(a.Samples)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.requestBody(a.Samples); err != nil {
			b.Fatal(err)
		}
	}
}
