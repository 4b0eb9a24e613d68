package job

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/openai"
)

// whisperServer is a protocol fake of an OpenAI-compatible
// POST /v1/audio/transcriptions server on loopback (no Whisper model can
// run here). It checks the request's method, path and multipart WAV file
// and answers what the test scripts: a verbose_json body, an error status,
// a body that does not parse, or no answer until the client goes away.
// transcribe/openai has the full protocol tests; this one exists to drive
// the job runner's failure paths.
type whisperServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	times    []time.Time // arrival of each valid request
	problems []string
	answer   func(n int, w http.ResponseWriter, r *http.Request)
	arrived  chan struct{} // one value per valid request (buffered)
}

func newWhisperServer(tb testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *whisperServer {
	tb.Helper()
	f := &whisperServer{answer: answer, arrived: make(chan struct{}, 100)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	tb.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems {
			tb.Errorf("whisperServer: invalid request: %s", p)
		}
	})
	return f
}

func (f *whisperServer) serve(w http.ResponseWriter, r *http.Request) {
	problem := ""
	switch {
	case r.Method != http.MethodPost || r.URL.Path != openai.Path:
		problem = r.Method + " " + r.URL.Path
	default:
		file, hdr, err := r.FormFile("file")
		if err != nil {
			problem = "no file field: " + err.Error()
			break
		}
		b, _ := io.ReadAll(file)
		if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" || hdr.Filename == "" {
			problem = "file is not a WAV"
		}
		if r.FormValue("response_format") != "verbose_json" {
			problem = "response_format " + r.FormValue("response_format")
		}
	}
	f.mu.Lock()
	if problem != "" {
		f.problems = append(f.problems, problem)
		f.mu.Unlock()
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	f.times = append(f.times, time.Now())
	n := len(f.times)
	f.mu.Unlock()
	select {
	case f.arrived <- struct{}{}:
	default:
	}
	f.answer(n, w, r)
}

func (f *whisperServer) Times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

// answerWords answers verbose_json with the given words at 0.5 s each.
func answerWords(ws ...string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"task":"transcribe","language":"english","duration":5,"text":"x","words":[`)
		for i, word := range ws {
			if i > 0 {
				io.WriteString(w, ",")
			}
			fmt.Fprintf(w, `{"word":%q,"start":%.2f,"end":%.2f,"probability":0.9}`, word, float64(i)*0.5, float64(i)*0.5+0.4)
		}
		io.WriteString(w, `],"segments":[]}`)
	}
}

// answerStatus answers with an HTTP error status.
func answerStatus(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"message":"overloaded"}}`, code)
	}
}

// answerGarbage answers 200 with a body that is not verbose_json.
func answerGarbage(_ int, w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"text": "hello", "segments": [{"start": "soon"`)
}

// answerNever holds the request until the client goes away.
func answerNever(_ int, w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

// openaiEngine returns the OpenAI-compatible engine for url, one request
// per chunk (the job runner does the retrying).
func openaiEngine(tb testing.TB, url string) transcribe.Engine {
	tb.Helper()
	e, err := openai.New(config.OpenAI{URL: url, Timeout: 20 * time.Second}, openai.WithRetry(1, 10*time.Millisecond, 10*time.Millisecond), openai.WithLogger(testLog()))
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// unreachableURL is a loopback URL where nothing listens.
func unreachableURL(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}
