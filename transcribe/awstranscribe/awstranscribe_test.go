package awstranscribe

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/transcribe"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/s3/s3test"
	ctranscribe "github.com/custodian/custodian/transcribe"
)

const testKMSKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// versity returns a versitygw server for this test (one per test: the
// s3test helper ties its lifetime to the test that starts it).
func versity(t *testing.T) *s3test.Server {
	t.Helper()
	return s3test.Start(t)
}

// sseRecorder records the SSE headers of object writes the engine sends.
type sseRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	puts []http.Header // PUT (PutObject, UploadPart) and POST ?uploads
}

func (r *sseRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut || (req.Method == http.MethodPost && req.URL.Query().Has("uploads")) {
		r.mu.Lock()
		h := req.Header.Clone()
		h.Set("X-Test-Query", req.URL.RawQuery)
		r.puts = append(r.puts, h)
		r.mu.Unlock()
	}
	return r.base.RoundTrip(req)
}

type harness struct {
	gw     *s3test.Server
	fake   *transcribeFake
	engine *Engine
	sse    *sseRecorder
	s3     *s3.Client
}

func fastRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.MaxBackoff = 5 * time.Millisecond
		o.RateLimiter = ratelimit.None
	})
}

func newHarness(t *testing.T, mod func(*config.AWSTranscribe), outcome func(j *fakeJob) fakeOutcome, opts ...Option) *harness {
	t.Helper()
	g := versity(t)
	h := &harness{gw: g, s3: g.NewStore(t, g.Config(s3test.Bucket)).Client()}
	h.fake = newTranscribeFake(t, h.s3, g.AccessKey, outcome)
	h.sse = &sseRecorder{base: http.DefaultTransport}
	cfg := config.AWSTranscribe{
		Region:        s3test.Region,
		Endpoint:      h.fake.URL(),
		StagingBucket: s3test.Bucket,
		StagingKMSKey: testKMSKey,
		Language:      "en-US",
		PollInterval:  10 * time.Millisecond,
		Timeout:       20 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	awsCfg := aws.Config{
		Region:      s3test.Region,
		Credentials: credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
		Retryer:     fastRetryer,
	}
	base := []Option{
		WithAWSConfig(awsCfg),
		WithS3Options(func(o *s3.Options) {
			o.BaseEndpoint = aws.String(g.Endpoint)
			o.UsePathStyle = true
			o.HTTPClient = &http.Client{Transport: h.sse}
			o.DisableLogOutputChecksumValidationSkipped = true
		}),
		WithLogger(slog.New(slog.DiscardHandler)),
	}
	e, err := New(context.Background(), cfg, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.engine = e
	return h
}

// checkClean asserts the job and every staged object are gone.
func (h *harness) checkClean(t *testing.T) {
	t.Helper()
	if jobs := h.fake.Jobs(); len(jobs) != 0 {
		t.Errorf("%d jobs not deleted", len(jobs))
	}
	out, err := h.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: aws.String(s3test.Bucket), Prefix: aws.String(DefaultPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		t.Errorf("staged object left behind: %s", aws.ToString(o.Key))
	}
	uploads, err := h.s3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s3test.Bucket)})
	if err == nil {
		for _, u := range uploads.Uploads {
			t.Errorf("multipart upload left behind: %s", aws.ToString(u.Key))
		}
	}
}

func tone(ms int) []int16 {
	s := make([]int16, ms*ctranscribe.SampleRate/1000)
	for i := range s {
		s[i] = int16(6000 * math.Sin(float64(i)*2*math.Pi*300/ctranscribe.SampleRate))
	}
	return s
}

var helloItems = []fakeItem{
	{Content: "Hello", Start: 0.04, End: 0.5, Confidence: 0.998},
	{Content: ",", Punct: true},
	{Content: "I'd", Start: 0.61, End: 0.83, Confidence: 0.92},
	{Content: "like", Start: 0.83, End: 1.02, Confidence: 0.87},
	{Content: "to", Start: 1.02, End: 1.1, Confidence: 1},
	{Content: "cancel", Start: 1.1, End: 1.66, Confidence: 0.5},
	{Content: ".", Punct: true},
}

func TestTranscribeChunk(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome {
		return fakeOutcome{PollsBeforeDone: 2, Items: helloItems}
	})
	a := ctranscribe.Audio{OffsetMS: 60000, Samples: tone(2000)}
	words, err := h.engine.Transcribe(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	want := []ctranscribe.Word{
		{StartMS: 40, EndMS: 500, Word: "Hello,", Confidence: 0.998},
		{StartMS: 610, EndMS: 830, Word: "I'd", Confidence: 0.92},
		{StartMS: 830, EndMS: 1020, Word: "like", Confidence: 0.87},
		{StartMS: 1020, EndMS: 1100, Word: "to", Confidence: 1},
		{StartMS: 1100, EndMS: 1660, Word: "cancel.", Confidence: 0.5},
	}
	if !slices.Equal(words, want) {
		t.Fatalf("words\n %+v\nwant\n %+v", words, want)
	}
	jobs := h.fake.Started()
	if len(jobs) != 1 {
		t.Fatalf("%d jobs started", len(jobs))
	}
	j := jobs[0]
	if !slices.Equal(j.Samples, a.Samples) || j.SampleRate != 16000 {
		t.Errorf("staged audio: %d samples at %d Hz, want the chunk's %d at 16000", len(j.Samples), j.SampleRate, len(a.Samples))
	}
	if str(j.Input, "LanguageCode") != "en-US" || str(j.Input, "OutputEncryptionKMSKeyId") != testKMSKey ||
		j.OutputBucket != s3test.Bucket || !strings.HasPrefix(j.MediaKey, DefaultPrefix) {
		t.Errorf("job input %+v", j.Input)
	}
	if got := h.fake.Calls("GetTranscriptionJob"); got != 3 {
		t.Errorf("%d polls, want 3 (2 in progress, then completed)", got)
	}
	// The audio was written with SSE-KMS under the configured key.
	h.sse.mu.Lock()
	for _, hd := range h.sse.puts {
		if hd.Get("X-Amz-Server-Side-Encryption") != "aws:kms" || hd.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != testKMSKey {
			t.Errorf("object write without SSE-KMS: %v", hd)
		}
	}
	if len(h.sse.puts) != 1 {
		t.Errorf("%d object writes, want 1 PutObject", len(h.sse.puts))
	}
	h.sse.mu.Unlock()
	if d := h.fake.Deleted(); len(d) != 1 || d[0] != j.Name {
		t.Errorf("deleted jobs %q, want [%s]", d, j.Name)
	}
	h.checkClean(t)
}

func TestIdentifyLanguageAndDefaultKey(t *testing.T) {
	h := newHarness(t, func(c *config.AWSTranscribe) { c.Language = ""; c.StagingKMSKey = "" },
		func(j *fakeJob) fakeOutcome { return fakeOutcome{Items: helloItems[:1]} })
	if _, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)}); err != nil {
		t.Fatal(err)
	}
	j := h.fake.Started()[0]
	if v, _ := j.Input["IdentifyLanguage"].(bool); !v || str(j.Input, "LanguageCode") != "" {
		t.Errorf("want IdentifyLanguage without LanguageCode, have %+v", j.Input)
	}
	if _, ok := j.Input["OutputEncryptionKMSKeyId"]; ok {
		t.Errorf("OutputEncryptionKMSKeyId sent without a configured key")
	}
	h.sse.mu.Lock()
	defer h.sse.mu.Unlock()
	for _, hd := range h.sse.puts {
		if hd.Get("X-Amz-Server-Side-Encryption") != "aws:kms" || hd.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != "" {
			t.Errorf("want SSE-KMS with the AWS managed key, have %v", hd)
		}
	}
}

func TestRecordingMultipart(t *testing.T) {
	// 200 s of audio (6.4 MB) in 5 MiB parts: two parts, never more than
	// one part in memory. Chunks leave gaps that must become silence.
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome {
		return fakeOutcome{PollsBeforeDone: 1, Items: []fakeItem{
			{Content: "first", Start: 1.0, End: 1.5, Confidence: 0.9},
			{Content: "last", Start: 198.0, End: 199.5, Confidence: 0.8},
		}}
	}, WithPartSize(minPartBytes))
	const durationMS = 200_000
	chunks := []ctranscribe.Audio{
		{OffsetMS: 1000, Samples: tone(30_000)},
		{OffsetMS: 60_000, Samples: tone(30_000)},
		{OffsetMS: 89_000, Samples: tone(10_000)},  // overlaps the previous by 1 s
		{OffsetMS: 195_000, Samples: tone(10_000)}, // runs past the end
	}
	seq := func(yield func(ctranscribe.Audio, error) bool) {
		for _, c := range chunks {
			if !yield(c, nil) {
				return
			}
		}
	}
	words, err := h.engine.TranscribeRecording(context.Background(), durationMS, seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(words) != 2 || words[1].StartMS != 198000 || words[1].EndMS != 199500 {
		t.Fatalf("words %+v", words)
	}
	j := h.fake.Started()[0]
	if len(j.Samples) != durationMS*16 {
		t.Fatalf("staged %d samples, want %d", len(j.Samples), durationMS*16)
	}
	// Build the expected signal independently and compare.
	want := make([]int16, durationMS*16)
	filled := 0
	for _, c := range chunks {
		start := int(c.OffsetMS) * 16
		for i, s := range c.Samples {
			if p := start + i; p >= filled && p < len(want) {
				want[p] = s
			}
		}
		filled = max(filled, min(start+len(c.Samples), len(want)))
	}
	if !slices.Equal(j.Samples, want) {
		for i := range want {
			if j.Samples[i] != want[i] {
				t.Fatalf("staged audio differs first at sample %d (%.3f s)", i, float64(i)/16000)
			}
		}
	}
	h.sse.mu.Lock()
	var parts, creates int
	for _, hd := range h.sse.puts {
		q := hd.Get("X-Test-Query")
		switch {
		case strings.Contains(q, "uploads"):
			creates++
			if hd.Get("X-Amz-Server-Side-Encryption") != "aws:kms" || hd.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != testKMSKey {
				t.Errorf("CreateMultipartUpload without SSE-KMS")
			}
		case strings.Contains(q, "partNumber"):
			parts++
		}
	}
	h.sse.mu.Unlock()
	if creates != 1 || parts != 2 {
		t.Errorf("%d multipart uploads with %d parts, want 1 with 2", creates, parts)
	}
	h.checkClean(t)
}

func TestChunkSourceErrorAbortsUpload(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{} }, WithPartSize(minPartBytes))
	boom := errors.New("opus: corrupt packet 4711")
	seq := func(yield func(ctranscribe.Audio, error) bool) {
		if !yield(ctranscribe.Audio{Samples: tone(200_000)}, nil) { // 6.4 MB: a part is uploaded
			return
		}
		yield(ctranscribe.Audio{}, boom)
	}
	_, err := h.engine.TranscribeRecording(context.Background(), 300_000, seq)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the source's error", err)
	}
	if n := h.fake.Calls("StartTranscriptionJob"); n != 0 {
		t.Fatalf("%d jobs started after a source error", n)
	}
	h.checkClean(t)
}

func TestJobFailed(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome {
		return fakeOutcome{PollsBeforeDone: 1, FailReason: "The media format provided does not match the detected media format."}
	})
	_, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)})
	var jf *JobFailedError
	if !errors.As(err, &jf) || !strings.Contains(jf.Reason, "does not match the detected media format") {
		t.Fatalf("err = %v, want JobFailedError with the reason", err)
	}
	if IsRetryable(err) {
		t.Errorf("failed job reported retryable")
	}
	h.checkClean(t)
}

func TestStagedMediaRejectedByService(t *testing.T) {
	// A sample rate mismatch is caught by the (fake) service reading the
	// staged object: proof that the fake really reads from S3.
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{} })
	h.engine.s3 = rateLying{h.engine.s3}
	_, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)})
	var jf *JobFailedError
	if !errors.As(err, &jf) || !strings.Contains(jf.Reason, "sample rate") {
		t.Fatalf("err = %v, want a failed job naming the sample rate", err)
	}
	h.checkClean(t)
}

// rateLying rewrites the staged WAV's header to claim 8 kHz.
type rateLying struct{ s3API }

func (r rateLying) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, _ := io.ReadAll(in.Body)
	b[24], b[25], b[28], b[29] = 0x40, 0x1f, 0x80, 0x3e // 8000 Hz, 16000 B/s
	cp := *in
	cp.Body = strings.NewReader(string(b))
	return r.s3API.PutObject(ctx, &cp, opts...)
}

func TestThrottling(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{Items: helloItems} })
	h.fake.throttleStart = 2 // the SDK's retryer absorbs these (3 attempts)
	h.fake.throttleGet = 5   // beyond the SDK's attempts: the engine polls on
	words, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(2000)})
	if err != nil || len(words) != 5 {
		t.Fatalf("words %d, err %v", len(words), err)
	}
	if n := h.fake.Calls("StartTranscriptionJob"); n != 3 {
		t.Errorf("%d StartTranscriptionJob calls, want 3", n)
	}
	if n := h.fake.Calls("GetTranscriptionJob"); n < 6 {
		t.Errorf("%d GetTranscriptionJob calls, want at least 6", n)
	}
	h.checkClean(t)
}

func TestThrottledBeyondRetries(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{} })
	h.fake.throttleStart = 100
	_, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)})
	if err == nil || !strings.Contains(err.Error(), "LimitExceededException") || !IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable LimitExceededException", err)
	}
	h.checkClean(t)
}

func TestPollTimeout(t *testing.T) {
	h := newHarness(t, func(c *config.AWSTranscribe) { c.Timeout = time.Second },
		func(j *fakeJob) fakeOutcome { return fakeOutcome{Never: true} })
	start := time.Now()
	_, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)})
	if !errors.Is(err, ErrTimeout) || !IsRetryable(err) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v", d)
	}
	if n := h.fake.Calls("GetTranscriptionJob"); n < 2 {
		t.Errorf("%d polls before the timeout", n)
	}
	h.checkClean(t)
}

func TestCallerCancel(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{Never: true} })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for h.fake.Calls("GetTranscriptionJob") < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := h.engine.Transcribe(ctx, ctranscribe.Audio{Samples: tone(1000)})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	h.checkClean(t) // cleanup ran although the caller's context was done
}

func TestUnusableOutput(t *testing.T) {
	secret := "the customer's card number"
	tests := []struct {
		name   string
		output string
	}{
		{"not json", "<Error>" + secret + "</Error>"},
		{"no results", `{"jobName":"x","status":"COMPLETED"}`},
		{"word without times", `{"results":{"items":[{"type":"pronunciation","alternatives":[{"confidence":"0.9","content":"` + secret + `"}]}]}}`},
		{"no alternatives", `{"results":{"items":[{"type":"pronunciation","start_time":"0.1","end_time":"0.2","alternatives":[]}]}}`},
		{"bad number", `{"results":{"items":[{"type":"pronunciation","start_time":"soon","end_time":"0.2","alternatives":[{"content":"x"}]}]}}`},
		{"unknown type", `{"results":{"items":[{"type":"emoji","alternatives":[{"content":"x"}]}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{Output: []byte(tt.output)} })
			_, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)})
			if !errors.Is(err, ErrBadOutput) {
				t.Fatalf("err = %v, want ErrBadOutput", err)
			}
			if strings.Contains(err.Error(), "card number") {
				t.Fatalf("error quotes the output: %v", err)
			}
			h.checkClean(t)
		})
	}
}

func TestMissingBucket(t *testing.T) {
	h := newHarness(t, func(c *config.AWSTranscribe) { c.StagingBucket = "no-such-bucket" },
		func(j *fakeJob) fakeOutcome { return fakeOutcome{} })
	_, err := h.engine.Transcribe(context.Background(), ctranscribe.Audio{Samples: tone(1000)})
	if err == nil || !strings.Contains(err.Error(), "stage audio in s3://no-such-bucket/") {
		t.Fatalf("err = %v, want a staging error naming the bucket", err)
	}
	if n := h.fake.Calls("StartTranscriptionJob"); n != 0 {
		t.Fatalf("job started without staged audio")
	}
}

func TestEmptyAndShortAudio(t *testing.T) {
	h := newHarness(t, nil, func(j *fakeJob) fakeOutcome { return fakeOutcome{} })
	for _, a := range []ctranscribe.Audio{{}, {Samples: make([]int16, 100)}} {
		words, err := h.engine.Transcribe(context.Background(), a)
		if err != nil || len(words) != 0 {
			t.Errorf("%d samples: %v %v", len(a.Samples), words, err)
		}
	}
	words, err := h.engine.TranscribeRecording(context.Background(), 0, func(func(ctranscribe.Audio, error) bool) {})
	if err != nil || len(words) != 0 {
		t.Errorf("empty recording: %v %v", words, err)
	}
	if n := h.fake.Calls("StartTranscriptionJob"); n != 0 {
		t.Fatalf("%d jobs for no audio", n)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(context.Background(), config.AWSTranscribe{}); err == nil || !strings.Contains(err.Error(), "staging_bucket") {
		t.Fatalf("err = %v", err)
	}
	e, err := New(context.Background(), config.AWSTranscribe{StagingBucket: "b", Region: "eu-west-1"},
		WithAWSConfig(aws.Config{Region: "us-east-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if e.Name() != "aws" || e.pollInterval != 5*time.Second || e.timeout != 30*time.Minute || e.partSize != 16<<20 {
		t.Fatalf("defaults: %+v", e)
	}
	if r := e.tc.(*transcribe.Client).Options().Region; r != "eu-west-1" {
		t.Errorf("region %q, want the configured eu-west-1", r)
	}
}

func TestParseOutputTable(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ctranscribe.Word
	}{
		{"empty items", `{"results":{"transcripts":[{"transcript":""}],"items":[]}}`, nil},
		{"numbers as JSON numbers", `{"results":{"items":[{"type":"pronunciation","start_time":0.5,"end_time":0.75,"alternatives":[{"confidence":0.5,"content":"hi"}]}]}}`,
			[]ctranscribe.Word{{StartMS: 500, EndMS: 750, Word: "hi", Confidence: 0.5}}},
		{"leading punctuation dropped", `{"results":{"items":[{"type":"punctuation","alternatives":[{"content":"¿"}]},{"type":"pronunciation","start_time":"0.1","end_time":"0.2","alternatives":[{"confidence":"1.0","content":"Qué"}]},{"type":"punctuation","alternatives":[{"content":"?"}]}]}}`,
			[]ctranscribe.Word{{StartMS: 100, EndMS: 200, Word: "Qué?", Confidence: 1}}},
		{"clamped", `{"results":{"items":[{"type":"pronunciation","start_time":"-1","end_time":"99","alternatives":[{"confidence":"1.5","content":"x"}]}]}}`,
			[]ctranscribe.Word{{StartMS: 0, EndMS: 2000, Word: "x", Confidence: 1}}},
		{"missing confidence", `{"results":{"items":[{"type":"pronunciation","start_time":"1","end_time":"1.5","alternatives":[{"content":"x"}]}]}}`,
			[]ctranscribe.Word{{StartMS: 1000, EndMS: 1500, Word: "x", Confidence: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOutput([]byte(tt.in), 2000)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseOutput(f *testing.F) {
	f.Add([]byte(`{"results":{"items":[{"type":"pronunciation","start_time":"0.04","end_time":"0.5","alternatives":[{"confidence":"0.99","content":"Hello"}]},{"type":"punctuation","alternatives":[{"content":","}]}]}}`), int64(1000))
	f.Add([]byte(`{"results":{"items":[{"type":"pronunciation","start_time":1e400,"end_time":"NaN","alternatives":[{"content":"x"}]}]}}`), int64(5))
	f.Fuzz(func(t *testing.T, b []byte, durMS int64) {
		if durMS < 0 || durMS > 1e8 {
			return
		}
		words, err := parseOutput(b, durMS)
		if err != nil {
			return
		}
		var prev int64
		for _, w := range words {
			if w.Word == "" || w.StartMS < prev || w.EndMS < w.StartMS || w.EndMS > durMS || !(w.Confidence >= 0 && w.Confidence <= 1) {
				t.Fatalf("bad word %+v (dur %d)", w, durMS)
			}
			prev = w.StartMS
		}
	})
}

func TestWriteWAVExactLength(t *testing.T) {
	var b strings.Builder
	err := writeWAV(&b, 10, func(yield func(ctranscribe.Audio, error) bool) {
		yield(ctranscribe.Audio{Samples: []int16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	s, rate, err := parseWAV([]byte(b.String()))
	if err != nil || rate != 16000 || !slices.Equal(s, []int16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("%v %d %v", s, rate, err)
	}
}

func BenchmarkWriteWAV(b *testing.B) {
	chunk := ctranscribe.Audio{Samples: tone(30_000)}
	b.SetBytes(int64(2 * len(chunk.Samples)))
	b.ReportAllocs()
	for b.Loop() {
		if err := writeWAV(io.Discard, int64(len(chunk.Samples)), func(yield func(ctranscribe.Audio, error) bool) { yield(chunk, nil) }); err != nil {
			b.Fatal(err)
		}
	}
}
