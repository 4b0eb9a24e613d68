package awstranscribe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// transcribeFake is a protocol fake of Amazon Transcribe's batch API (AWS
// JSON 1.1: POST / with X-Amz-Target Transcribe.StartTranscriptionJob,
// Transcribe.GetTranscriptionJob, Transcribe.DeleteTranscriptionJob), used
// because Amazon Transcribe cannot run here. Like the real service it
// reads the job's media from S3 (a real versitygw server), checks it is a
// WAV file of the declared sample rate, and on completion writes a
// transcript JSON in Amazon's documented output format to the output
// bucket and key. What the job "recognizes" is scripted by the test, as
// are failures, throttling and jobs that never finish.
type transcribeFake struct {
	t         testing.TB
	srv       *httptest.Server
	s3        *s3.Client // the fake's own access to the buckets
	accessKey string     // expected in the SigV4 credential scope

	mu       sync.Mutex
	jobs     map[string]*fakeJob
	started  []*fakeJob
	deleted  []string
	calls    map[string]int
	problems []string

	// Behaviour, set before use.
	outcome       func(j *fakeJob) fakeOutcome
	throttleStart int // answer this many StartTranscriptionJob calls with LimitExceededException
	throttleGet   int // and this many GetTranscriptionJob calls
}

// fakeJob is one started job as the fake saw it.
type fakeJob struct {
	Name         string
	Input        map[string]any
	MediaBucket  string
	MediaKey     string
	OutputBucket string
	OutputKey    string
	Samples      []int16 // the staged audio, decoded
	SampleRate   int
	polls        int
	status       string
	reason       string
}

// Seconds is the staged audio's duration.
func (j *fakeJob) Seconds() float64 { return float64(len(j.Samples)) / float64(j.SampleRate) }

// fakeOutcome scripts a job: after PollsBeforeDone GetTranscriptionJob
// calls it completes with Items (or Output verbatim), or fails with
// FailReason; Never keeps it IN_PROGRESS forever.
type fakeOutcome struct {
	PollsBeforeDone int
	Items           []fakeItem
	Output          []byte
	FailReason      string
	Never           bool
}

// fakeItem is a transcript item; Punct items have no times.
type fakeItem struct {
	Content    string
	Start, End float64
	Confidence float64
	Punct      bool
}

func newTranscribeFake(t testing.TB, s3c *s3.Client, accessKey string, outcome func(j *fakeJob) fakeOutcome) *transcribeFake {
	t.Helper()
	f := &transcribeFake{t: t, s3: s3c, accessKey: accessKey, jobs: map[string]*fakeJob{}, calls: map[string]int{}, outcome: outcome}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.problems {
			t.Errorf("transcribeFake: invalid request: %s", p)
		}
	})
	return f
}

func (f *transcribeFake) URL() string { return f.srv.URL }

func (f *transcribeFake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// Jobs returns snapshots of the jobs not yet deleted.
func (f *transcribeFake) Jobs() []fakeJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeJob
	for _, j := range f.jobs {
		out = append(out, *j)
	}
	return out
}

// Started returns snapshots of every job ever started.
func (f *transcribeFake) Started() []fakeJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeJob
	for _, j := range f.started {
		out = append(out, *j)
	}
	return out
}

func (f *transcribeFake) Deleted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...)
}

// awsError writes a JSON 1.1 error.
func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "Message": msg})
}

func (f *transcribeFake) problem(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.problems = append(f.problems, msg)
	f.mu.Unlock()
	awsError(w, 400, "BadRequestException", msg)
}

var (
	jobNameRE    = regexp.MustCompile(`^[0-9a-zA-Z._-]{1,200}$`)
	credentialRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([a-z0-9-]+)/transcribe/aws4_request, SignedHeaders=[^,]+, Signature=[0-9a-f]{64}$`)
)

func (f *transcribeFake) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		f.problem(w, "%s %s", r.Method, r.URL.Path)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		f.problem(w, "Content-Type %q", ct)
		return
	}
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || m[1] != f.accessKey || !strings.Contains(r.Header.Get("Authorization"), "x-amz-target") {
		f.problem(w, "request not signed with SigV4 for transcribe by %s (X-Amz-Target signed)", f.accessKey)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "Transcribe.")
	if !ok {
		f.problem(w, "X-Amz-Target %q", target)
		return
	}
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		f.problem(w, "%s: body is not JSON: %v", op, err)
		return
	}
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	f.mu.Unlock()
	switch op {
	case "StartTranscriptionJob":
		if n <= f.throttleStart {
			awsError(w, 400, "LimitExceededException", "You have exceeded your request rate. Try again later.")
			return
		}
		f.start(w, r.Context(), in)
	case "GetTranscriptionJob":
		if n <= f.throttleGet {
			awsError(w, 400, "LimitExceededException", "Rate exceeded")
			return
		}
		f.get(w, r.Context(), in)
	case "DeleteTranscriptionJob":
		name, _ := in["TranscriptionJobName"].(string)
		f.mu.Lock()
		_, ok := f.jobs[name]
		delete(f.jobs, name)
		if ok {
			f.deleted = append(f.deleted, name)
		}
		f.mu.Unlock()
		if !ok {
			awsError(w, 400, "NotFoundException", "The requested job couldn't be found.")
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write([]byte("{}"))
	default:
		f.problem(w, "unexpected operation %s", op)
	}
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func (f *transcribeFake) start(w http.ResponseWriter, ctx context.Context, in map[string]any) {
	name := str(in, "TranscriptionJobName")
	if !jobNameRE.MatchString(name) {
		f.problem(w, "TranscriptionJobName %q", name)
		return
	}
	media, _ := in["Media"].(map[string]any)
	uri := str(media, "MediaFileUri")
	bucket, key, ok := strings.Cut(strings.TrimPrefix(uri, "s3://"), "/")
	if !strings.HasPrefix(uri, "s3://") || !ok || key == "" {
		f.problem(w, "MediaFileUri %q", uri)
		return
	}
	if str(in, "MediaFormat") != "wav" {
		f.problem(w, "MediaFormat %q", str(in, "MediaFormat"))
		return
	}
	rate, _ := in["MediaSampleRateHertz"].(float64)
	if rate < 8000 || rate > 48000 {
		f.problem(w, "MediaSampleRateHertz %v", in["MediaSampleRateHertz"])
		return
	}
	lang := str(in, "LanguageCode")
	identify, _ := in["IdentifyLanguage"].(bool)
	if (lang == "") == !identify {
		f.problem(w, "exactly one of LanguageCode (%q) and IdentifyLanguage (%v) is required", lang, identify)
		return
	}
	outBucket, outKey := str(in, "OutputBucketName"), str(in, "OutputKey")
	if outBucket == "" || !strings.HasSuffix(outKey, ".json") {
		f.problem(w, "OutputBucketName %q, OutputKey %q", outBucket, outKey)
		return
	}
	f.mu.Lock()
	_, dup := f.jobs[name]
	f.mu.Unlock()
	if dup {
		awsError(w, 400, "ConflictException", "The requested job name already exists. Use a different job name.")
		return
	}
	// Like the service, read the media now; a missing object or a file
	// that is not the declared WAV fails the job, not the request.
	job := &fakeJob{Name: name, Input: in, MediaBucket: bucket, MediaKey: key, OutputBucket: outBucket, OutputKey: outKey, status: "IN_PROGRESS"}
	obj, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		job.status, job.reason = "FAILED", "The media file couldn't be read from "+uri
	} else {
		b, rerr := io.ReadAll(obj.Body)
		obj.Body.Close()
		samples, sr, werr := parseWAV(b)
		switch {
		case rerr != nil:
			job.status, job.reason = "FAILED", "The media file couldn't be read."
		case werr != nil:
			job.status, job.reason = "FAILED", "Invalid file format: "+werr.Error()
		case sr != int(rate):
			job.status, job.reason = "FAILED", fmt.Sprintf("The specified sample rate %d doesn't match the media's %d.", int(rate), sr)
		default:
			job.Samples, job.SampleRate = samples, sr
		}
	}
	f.mu.Lock()
	f.jobs[name] = job
	f.started = append(f.started, job)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{"TranscriptionJob": f.view(job)})
}

func (f *transcribeFake) view(j *fakeJob) map[string]any {
	v := map[string]any{
		"TranscriptionJobName":   j.Name,
		"TranscriptionJobStatus": j.status,
		"MediaFormat":            "wav",
		"Media":                  map[string]any{"MediaFileUri": "s3://" + j.MediaBucket + "/" + j.MediaKey},
		"CreationTime":           float64(time.Now().Unix()),
	}
	if lc := str(j.Input, "LanguageCode"); lc != "" {
		v["LanguageCode"] = lc
	}
	if j.status == "COMPLETED" {
		v["Transcript"] = map[string]any{"TranscriptFileUri": "https://s3.us-east-1.amazonaws.com/" + j.OutputBucket + "/" + j.OutputKey}
		v["CompletionTime"] = float64(time.Now().Unix())
	}
	if j.status == "FAILED" {
		v["FailureReason"] = j.reason
	}
	return v
}

func (f *transcribeFake) get(w http.ResponseWriter, ctx context.Context, in map[string]any) {
	name := str(in, "TranscriptionJobName")
	f.mu.Lock()
	j, ok := f.jobs[name]
	var snap fakeJob
	if ok {
		j.polls++
		snap = *j
	}
	f.mu.Unlock()
	if !ok {
		awsError(w, 400, "NotFoundException", "The requested job couldn't be found. Check the job name and try your request again.")
		return
	}
	status, reason := snap.status, snap.reason
	if status == "IN_PROGRESS" {
		oc := f.outcome(&snap)
		switch {
		case oc.Never || snap.polls <= oc.PollsBeforeDone:
		case oc.FailReason != "":
			status, reason = "FAILED", oc.FailReason
		default:
			body := oc.Output
			if body == nil {
				body = f.outputJSON(&snap, oc.Items)
			}
			_, err := f.s3.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(snap.OutputBucket), Key: aws.String(snap.OutputKey),
				Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
			})
			if err != nil {
				status, reason = "FAILED", "Amazon Transcribe couldn't write to the output bucket."
			} else {
				status = "COMPLETED"
			}
		}
	}
	f.mu.Lock()
	j.status, j.reason = status, reason
	snap = *j
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(map[string]any{"TranscriptionJob": f.view(&snap)})
}

// outputJSON is Amazon Transcribe's documented transcript file; times,
// confidences are decimal strings.
func (f *transcribeFake) outputJSON(j *fakeJob, items []fakeItem) []byte {
	var out []map[string]any
	var text strings.Builder
	for i, it := range items {
		if it.Punct {
			out = append(out, map[string]any{"id": i, "type": "punctuation",
				"alternatives": []any{map[string]any{"confidence": "0.0", "content": it.Content}}})
			text.WriteString(it.Content)
			continue
		}
		if it.End > j.Seconds()+0.001 {
			f.mu.Lock()
			f.problems = append(f.problems, fmt.Sprintf("scripted word ends at %.3f s, after the %.3f s media", it.End, j.Seconds()))
			f.mu.Unlock()
		}
		out = append(out, map[string]any{"id": i, "type": "pronunciation",
			"start_time": fmt.Sprintf("%.3f", it.Start), "end_time": fmt.Sprintf("%.3f", it.End),
			"alternatives": []any{map[string]any{"confidence": fmt.Sprintf("%.4f", it.Confidence), "content": it.Content}}})
		if text.Len() > 0 {
			text.WriteByte(' ')
		}
		text.WriteString(it.Content)
	}
	if out == nil {
		out = []map[string]any{}
	}
	b, _ := json.Marshal(map[string]any{
		"jobName": j.Name, "accountId": "111122223333", "status": "COMPLETED",
		"results": map[string]any{
			"language_code": "en-US",
			"transcripts":   []any{map[string]any{"transcript": text.String()}},
			"items":         out,
		},
	})
	return b
}

// parseWAV reads a canonical PCM WAV file with consistent sizes.
func parseWAV(b []byte) ([]int16, int, error) {
	le := binary.LittleEndian
	switch {
	case len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt ":
		return nil, 0, errors.New("not a RIFF/WAVE file")
	case int(le.Uint32(b[4:8])) != len(b)-8:
		return nil, 0, errors.New("RIFF size does not match the file")
	case le.Uint16(b[20:22]) != 1 || le.Uint16(b[22:24]) != 1 || le.Uint16(b[34:36]) != 16:
		return nil, 0, errors.New("not 16-bit mono PCM")
	case string(b[36:40]) != "data" || int(le.Uint32(b[40:44])) != len(b)-44:
		return nil, 0, errors.New("data chunk size does not match the file")
	}
	rate := int(le.Uint32(b[24:28]))
	if le.Uint32(b[28:32]) != uint32(2*rate) {
		return nil, 0, errors.New("byte rate inconsistent")
	}
	s := make([]int16, (len(b)-44)/2)
	for i := range s {
		s[i] = int16(le.Uint16(b[44+2*i:]))
	}
	return s, rate, nil
}
