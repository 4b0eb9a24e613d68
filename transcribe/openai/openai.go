package openai

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
)

// Name is the engine name written into transcripts.
const Name = "openai"

// APIKeyEnv holds the API key when transcription.openai.api_key_file is
// not set.
const APIKeyEnv = "CUSTODIAN_TRANSCRIPTION_OPENAI_API_KEY"

// Path is appended to the configured base URL (unless the URL already
// ends in /v1, in which case only the rest is).
const Path = "/v1/audio/transcriptions"

// minSamples: chunks shorter than 100 ms are not sent (OpenAI rejects
// audio under 0.1 s, and no word fits in it); they give no words.
const minSamples = transcribe.SampleRate / 10

// maxResponseBytes bounds the answer read from the server.
const maxResponseBytes = 16 << 20

// Engine sends chunks to an OpenAI-compatible transcription server. It is
// safe for concurrent use.
type Engine struct {
	endpoint    string
	model       string
	language    string
	apiKey      string
	timeout     time.Duration
	client      *http.Client
	maxAttempts int
	backoffBase time.Duration
	backoffMax  time.Duration
	log         *slog.Logger
}

var _ transcribe.Engine = (*Engine)(nil)

// Option configures New.
type Option func(*Engine)

// WithHTTPClient sets the HTTP client (proxies, TLS roots). Its Timeout
// should be zero: the per-request timeout is transcription.openai.timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(e *Engine) {
		if c != nil {
			e.client = c
		}
	}
}

// WithRetry sets how many attempts a chunk gets (at least 1; default 4)
// and the exponential backoff between them: base before the second
// attempt, doubling up to max (defaults 1 s and 30 s), with jitter. A
// server's Retry-After (seconds) is honoured up to max.
func WithRetry(attempts int, base, max time.Duration) Option {
	return func(e *Engine) {
		e.maxAttempts = attempts
		e.backoffBase = base
		e.backoffMax = max
	}
}

// WithLogger sets the logger for retries. It logs status codes and
// attempt numbers, never audio, text or the key. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(e *Engine) {
		if l != nil {
			e.log = l
		}
	}
}

// New returns an engine for cfg. The API key is read from
// cfg.APIKeyFile when set (an unreadable file is an error), otherwise from
// the environment variable CUSTODIAN_TRANSCRIPTION_OPENAI_API_KEY; with
// neither, requests carry no Authorization header (local servers).
func New(cfg config.OpenAI, opts ...Option) (*Engine, error) {
	endpoint, err := endpointURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	key := os.Getenv(APIKeyEnv)
	if cfg.APIKeyFile != "" {
		b, err := os.ReadFile(cfg.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("openai: transcription.openai.api_key_file: %w", err)
		}
		key = string(b)
	}
	key = strings.TrimSpace(key)
	if strings.ContainsAny(key, "\r\n") {
		return nil, errors.New("openai: API key contains a line break")
	}
	e := &Engine{
		endpoint:    endpoint,
		model:       cfg.Model,
		language:    cfg.Language,
		apiKey:      key,
		timeout:     cfg.Timeout,
		client:      &http.Client{},
		maxAttempts: 4,
		backoffBase: time.Second,
		backoffMax:  30 * time.Second,
		log:         slog.Default(),
	}
	if e.model == "" {
		e.model = config.Default().Transcription.OpenAI.Model
	}
	if e.timeout <= 0 {
		e.timeout = config.Default().Transcription.OpenAI.Timeout
	}
	for _, o := range opts {
		o(e)
	}
	e.maxAttempts = max(e.maxAttempts, 1)
	e.backoffBase = max(e.backoffBase, time.Millisecond)
	e.backoffMax = max(e.backoffMax, e.backoffBase)
	return e, nil
}

func endpointURL(base string) (string, error) {
	if base == "" {
		return "", errors.New("openai: transcription.openai.url is empty")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("openai: transcription.openai.url %q is not an http(s) URL", base)
	}
	if u.User != nil {
		return "", errors.New("openai: transcription.openai.url must not hold credentials (use api_key_file)")
	}
	p := strings.TrimSuffix(u.Path, "/")
	if strings.HasSuffix(p, "/v1") {
		p = strings.TrimSuffix(p, "/v1")
	}
	u.Path = p + Path
	return u.String(), nil
}

// Name returns "openai".
func (e *Engine) Name() string { return Name }

// Transcribe sends a as a WAV file and returns its words, times relative
// to the chunk start. Chunks under 100 ms are not sent and give no words.
func (e *Engine) Transcribe(ctx context.Context, a transcribe.Audio) ([]transcribe.Word, error) {
	if len(a.Samples) < minSamples {
		return nil, nil
	}
	durMS := int64(len(a.Samples)) * 1000 / transcribe.SampleRate
	body, contentType, err := e.requestBody(a.Samples)
	if err != nil {
		return nil, fmt.Errorf("openai: build request: %w", err)
	}
	for attempt := 1; ; attempt++ {
		words, retryAfter, err := e.attempt(ctx, body, contentType, durMS)
		if err == nil {
			return words, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("openai: transcribe %d ms chunk: %w", durMS, errors.Join(ctx.Err(), err))
		}
		if !IsRetryable(err) || attempt >= e.maxAttempts {
			return nil, fmt.Errorf("openai: transcribe %d ms chunk: attempt %d of %d: %w", durMS, attempt, e.maxAttempts, err)
		}
		wait := e.backoff(attempt)
		if retryAfter > 0 {
			wait = min(retryAfter, e.backoffMax)
		}
		e.log.Warn("openai: transcription request failed, retrying",
			"attempt", attempt, "max_attempts", e.maxAttempts, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("openai: transcribe %d ms chunk: waiting to retry: %w", durMS, ctx.Err())
		}
	}
}

// backoff is base·2^(attempt-1), capped, then jittered to [d/2, d].
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.backoffBase
	for i := 1; i < attempt && d < e.backoffMax; i++ {
		d *= 2
	}
	d = min(d, e.backoffMax)
	var b [8]byte
	_, _ = rand.Read(b[:])
	half := d / 2
	return half + time.Duration(binary.LittleEndian.Uint64(b[:])%uint64(half+1))
}

func (e *Engine) requestBody(samples []int16) ([]byte, string, error) {
	var buf bytes.Buffer
	buf.Grow(wavHeaderBytes + 2*len(samples) + 1024)
	mw := multipart.NewWriter(&buf)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="chunk.wav"`)
	h.Set("Content-Type", "audio/wav")
	fw, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := fw.Write(encodeWAV(samples)); err != nil {
		return nil, "", err
	}
	fields := [][2]string{
		{"model", e.model},
		{"response_format", "verbose_json"},
		{"timestamp_granularities[]", "word"},
		{"timestamp_granularities[]", "segment"},
		{"temperature", "0"},
	}
	if e.language != "" {
		fields = append(fields, [2]string{"language", e.language})
	}
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

// attempt makes one request under the per-request timeout.
func (e *Engine) attempt(ctx context.Context, body []byte, contentType string, durMS int64) ([]transcribe.Word, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, 0, &requestError{timeout: e.timeout, err: context.DeadlineExceeded}
		}
		return nil, 0, &requestError{err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, &requestError{timeout: e.timeout, err: context.DeadlineExceeded}
		}
		return nil, 0, &requestError{err: fmt.Errorf("read answer: %w", err)}
	}
	if len(raw) > maxResponseBytes {
		return nil, 0, fmt.Errorf("%w: answer over %d bytes", ErrBadResponse, maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		se := &StatusError{StatusCode: resp.StatusCode, Message: bodyMessage(raw)}
		return nil, retryAfter(resp.Header.Get("Retry-After")), se
	}
	words, err := parseVerbose(raw, durMS)
	return words, 0, err
}

// unwrapURLError drops *url.Error's wrapper, which quotes the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func bodyMessage(raw []byte) string {
	var v struct {
		Error  json.RawMessage `json:"error"`
		Detail any             `json:"detail"` // FastAPI (faster-whisper servers)
	}
	if json.Unmarshal(raw, &v) == nil {
		if len(v.Error) > 0 {
			return errorMessage(v.Error)
		}
		if s, ok := v.Detail.(string); ok {
			return sanitize(s)
		}
	}
	return ""
}

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// StatusError is an error answer from the server: an HTTP status other
// than 200, or (whisper.cpp) a 200 carrying {"error": "..."}.
type StatusError struct {
	StatusCode int
	// Message is the server's error message, shortened; empty when the
	// body held none.
	Message string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("openai: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether the status is worth retrying: 408, 429, 5xx.
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// requestError is a request that got no answer: a network error or the
// per-request timeout.
type requestError struct {
	timeout time.Duration // set when the per-request timeout expired
	err     error
}

func (e *requestError) Error() string {
	if e.timeout > 0 {
		return fmt.Sprintf("openai: no answer within %v", e.timeout)
	}
	return "openai: request failed: " + e.err.Error()
}

func (e *requestError) Unwrap() error { return e.err }

// IsRetryable reports whether err is worth another attempt later: no
// answer (network error or timeout), or a 408, 429 or 5xx answer. The job
// runner can use it to tell a server outage from a bad request.
func IsRetryable(err error) bool {
	var re *requestError
	if errors.As(err, &re) {
		return true
	}
	var se *StatusError
	return errors.As(err, &se) && se.Temporary()
}
