package awstranscribe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/transcribe"
	"github.com/aws/aws-sdk-go-v2/service/transcribe/types"
	"github.com/aws/smithy-go"

	"github.com/custodian/custodian/config"
	ctranscribe "github.com/custodian/custodian/transcribe"
)

// Name is the engine name written into transcripts.
const Name = "aws"

// DefaultPrefix is the key prefix of staged audio and job outputs in the
// staging bucket. A lifecycle rule expiring it after a day is a useful
// backstop (see docs/transcription.md).
const DefaultPrefix = "custodian-transcribe/"

// minSamples: chunks under 100 ms start no job and give no words.
const minSamples = ctranscribe.SampleRate / 10

// cleanupTimeout bounds the deletions after a job, which run even when the
// caller's context is done.
const cleanupTimeout = time.Minute

// maxOutputBytes bounds the transcript JSON read back (about 2 MB per
// hour of speech in practice).
const maxOutputBytes = 256 << 20

// RecordingTranscriber is implemented by engines for which one request per
// recording is far cheaper than one per chunk (Amazon Transcribe's batch
// jobs cost tens of seconds each). A job runner finds it by type assertion
// on its transcribe.Engine and, when present, hands over the whole
// recording's audio instead of calling Transcribe per chunk.
type RecordingTranscriber interface {
	// TranscribeRecording transcribes a recording of durationMS
	// milliseconds whose audio arrives as chunks in increasing OffsetMS
	// order (gaps are silence; audio past durationMS is dropped). Word
	// times are milliseconds from the recording start. chunks is read
	// once, as the audio is uploaded, so memory stays bounded; an error
	// it yields aborts the job.
	TranscribeRecording(ctx context.Context, durationMS int64, chunks iter.Seq2[ctranscribe.Audio, error]) ([]ctranscribe.Word, error)
}

// transcribeAPI is what the engine needs from Amazon Transcribe.
type transcribeAPI interface {
	StartTranscriptionJob(ctx context.Context, in *transcribe.StartTranscriptionJobInput, opts ...func(*transcribe.Options)) (*transcribe.StartTranscriptionJobOutput, error)
	GetTranscriptionJob(ctx context.Context, in *transcribe.GetTranscriptionJobInput, opts ...func(*transcribe.Options)) (*transcribe.GetTranscriptionJobOutput, error)
	DeleteTranscriptionJob(ctx context.Context, in *transcribe.DeleteTranscriptionJobInput, opts ...func(*transcribe.Options)) (*transcribe.DeleteTranscriptionJobOutput, error)
}

// s3API is what the engine needs from S3.
type s3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var (
	_ transcribeAPI = (*transcribe.Client)(nil)
	_ s3API         = (*s3.Client)(nil)
)

// Engine runs Amazon Transcribe batch jobs. It is safe for concurrent use;
// every call runs its own job.
type Engine struct {
	tc           transcribeAPI
	s3           s3API
	bucket       string
	kmsKey       string
	language     string
	prefix       string
	pollInterval time.Duration
	timeout      time.Duration
	partSize     int
	log          *slog.Logger
}

var (
	_ ctranscribe.Engine   = (*Engine)(nil)
	_ RecordingTranscriber = (*Engine)(nil)
)

// Option configures New.
type Option func(*options)

type options struct {
	awsCfg   *aws.Config
	s3Opts   []func(*s3.Options)
	tcOpts   []func(*transcribe.Options)
	prefix   string
	partSize int
	log      *slog.Logger
}

// WithAWSConfig replaces the default AWS configuration (the SDK's default
// credential chain and region resolution, with transcription.aws.region).
func WithAWSConfig(c aws.Config) Option { return func(o *options) { o.awsCfg = &c } }

// WithS3Options adjusts the S3 client of the staging bucket (an endpoint
// for S3-compatible storage or a VPC endpoint, path-style addressing).
func WithS3Options(fns ...func(*s3.Options)) Option {
	return func(o *options) { o.s3Opts = append(o.s3Opts, fns...) }
}

// WithTranscribeOptions adjusts the Amazon Transcribe client (retryer,
// HTTP client). transcription.aws.endpoint sets its endpoint.
func WithTranscribeOptions(fns ...func(*transcribe.Options)) Option {
	return func(o *options) { o.tcOpts = append(o.tcOpts, fns...) }
}

// WithPrefix sets the key prefix of staged objects (default DefaultPrefix).
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithPartSize sets the multipart upload part size, which is also the
// most audio held in memory per job (default 16 MiB, at least 5 MiB).
func WithPartSize(n int) Option { return func(o *options) { o.partSize = n } }

// WithLogger sets the logger for job lifecycle messages (job name, status,
// bucket and key; never audio or text). Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// New returns an engine for cfg. It loads the AWS configuration (unless
// WithAWSConfig is given) but makes no request.
func New(ctx context.Context, cfg config.AWSTranscribe, opts ...Option) (*Engine, error) {
	o := options{prefix: DefaultPrefix, partSize: 16 << 20, log: slog.Default()}
	for _, fn := range opts {
		fn(&o)
	}
	if cfg.StagingBucket == "" {
		return nil, errors.New("awstranscribe: transcription.aws.staging_bucket is empty")
	}
	var awsCfg aws.Config
	if o.awsCfg != nil {
		awsCfg = o.awsCfg.Copy()
		if cfg.Region != "" {
			awsCfg.Region = cfg.Region
		}
	} else {
		var load []func(*awsconfig.LoadOptions) error
		if cfg.Region != "" {
			load = append(load, awsconfig.WithRegion(cfg.Region))
		}
		var err error
		awsCfg, err = awsconfig.LoadDefaultConfig(ctx, load...)
		if err != nil {
			return nil, fmt.Errorf("awstranscribe: load AWS configuration: %w", err)
		}
	}
	tcOpts := o.tcOpts
	if cfg.Endpoint != "" {
		tcOpts = append([]func(*transcribe.Options){func(to *transcribe.Options) {
			to.BaseEndpoint = aws.String(cfg.Endpoint)
		}}, tcOpts...)
	}
	d := config.Default().Transcription.AWS
	e := &Engine{
		tc:           transcribe.NewFromConfig(awsCfg, tcOpts...),
		s3:           s3.NewFromConfig(awsCfg, o.s3Opts...),
		bucket:       cfg.StagingBucket,
		kmsKey:       cfg.StagingKMSKey,
		language:     cfg.Language,
		prefix:       o.prefix,
		pollInterval: cfg.PollInterval,
		timeout:      cfg.Timeout,
		partSize:     max(o.partSize, minPartBytes),
		log:          o.log,
	}
	if e.pollInterval <= 0 {
		e.pollInterval = d.PollInterval
	}
	if e.timeout <= 0 {
		e.timeout = d.Timeout
	}
	return e, nil
}

// Name returns "aws".
func (e *Engine) Name() string { return Name }

// Transcribe runs one job for one chunk. Prefer TranscribeRecording: each
// job has a large fixed overhead.
func (e *Engine) Transcribe(ctx context.Context, a ctranscribe.Audio) ([]ctranscribe.Word, error) {
	if len(a.Samples) < minSamples {
		return nil, nil
	}
	chunk := ctranscribe.Audio{Samples: a.Samples} // times relative to the chunk start
	return e.run(ctx, int64(len(a.Samples)), func(yield func(ctranscribe.Audio, error) bool) {
		yield(chunk, nil)
	})
}

// TranscribeRecording implements RecordingTranscriber.
func (e *Engine) TranscribeRecording(ctx context.Context, durationMS int64, chunks iter.Seq2[ctranscribe.Audio, error]) ([]ctranscribe.Word, error) {
	total := durationMS * ctranscribe.SampleRate / 1000
	if total < minSamples {
		return nil, nil
	}
	return e.run(ctx, total, chunks)
}

// JobFailedError is a job that ended FAILED; Reason is Amazon
// Transcribe's FailureReason.
type JobFailedError struct {
	Job    string
	Reason string
}

func (e *JobFailedError) Error() string {
	return fmt.Sprintf("awstranscribe: job %s failed: %s", e.Job, e.Reason)
}

// ErrTimeout is wrapped by the error of a job that did not finish within
// transcription.aws.timeout.
var ErrTimeout = errors.New("awstranscribe: job did not finish in time")

// IsRetryable reports whether a later attempt may succeed: throttling,
// server faults, network errors and timeouts, but not failed jobs,
// rejected requests or unusable output.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var jf *JobFailedError
	if errors.As(err, &jf) || errors.Is(err, ErrBadOutput) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrTimeout) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "LimitExceededException", "ThrottlingException", "SlowDown", "RequestTimeout":
			return true
		}
		return ae.ErrorFault() == smithy.FaultServer
	}
	return true // no answer: network error
}

func newJobName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "custodian-" + hex.EncodeToString(b[:])
}

// run stages the audio, runs the job and cleans up.
func (e *Engine) run(ctx context.Context, total int64, chunks iter.Seq2[ctranscribe.Audio, error]) (words []ctranscribe.Word, err error) {
	job := newJobName()
	mediaKey := e.prefix + job + ".wav"
	outputKey := e.prefix + job + ".json"
	log := e.log.With("job", job, "bucket", e.bucket)
	durMS := total * 1000 / ctranscribe.SampleRate

	jobCtx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()

	started := false
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer ccancel()
		e.cleanup(cctx, log, job, started, mediaKey, outputKey)
	}()

	up := &uploader{ctx: jobCtx, api: e.s3, bucket: e.bucket, key: mediaKey, kmsKey: e.kmsKey, partSize: e.partSize}
	if err := writeWAV(up, total, chunks); err != nil {
		abortCtx, ac := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer ac()
		if aerr := up.Abort(abortCtx); aerr != nil {
			log.Error("awstranscribe: abort multipart upload", "key", mediaKey, "error", aerr)
		}
		return nil, e.wrap(ctx, "stage audio in s3://"+e.bucket+"/"+mediaKey, err)
	}
	if err := up.Close(); err != nil {
		return nil, e.wrap(ctx, "stage audio in s3://"+e.bucket+"/"+mediaKey, err)
	}

	in := &transcribe.StartTranscriptionJobInput{
		TranscriptionJobName: aws.String(job),
		Media:                &types.Media{MediaFileUri: aws.String("s3://" + e.bucket + "/" + mediaKey)},
		MediaFormat:          types.MediaFormatWav,
		MediaSampleRateHertz: aws.Int32(ctranscribe.SampleRate),
		OutputBucketName:     aws.String(e.bucket),
		OutputKey:            aws.String(outputKey),
	}
	if e.kmsKey != "" {
		in.OutputEncryptionKMSKeyId = aws.String(e.kmsKey)
	}
	if e.language != "" {
		in.LanguageCode = types.LanguageCode(e.language)
	} else {
		in.IdentifyLanguage = aws.Bool(true)
	}
	if _, err := e.tc.StartTranscriptionJob(jobCtx, in); err != nil {
		return nil, e.wrap(ctx, "start job "+job, err)
	}
	started = true
	log.Debug("awstranscribe: job started", "audio_ms", durMS)

	if err := e.wait(jobCtx, ctx, log, job); err != nil {
		return nil, err
	}
	body, err := e.readOutput(jobCtx, outputKey)
	if err != nil {
		return nil, e.wrap(ctx, "read output s3://"+e.bucket+"/"+outputKey, err)
	}
	words, err = parseOutput(body, durMS)
	if err != nil {
		return nil, fmt.Errorf("awstranscribe: job %s: %w", job, err)
	}
	return words, nil
}

// wrap names the operation and, when the job's own deadline (not the
// caller's) ended it, reports ErrTimeout.
func (e *Engine) wrap(parent context.Context, op string, err error) error {
	if parent.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("awstranscribe: %s: not done after %v: %w", op, e.timeout, ErrTimeout)
	}
	return fmt.Errorf("awstranscribe: %s: %w", op, err)
}

// wait polls the job until it completes, fails or jobCtx ends.
func (e *Engine) wait(jobCtx, parent context.Context, log *slog.Logger, job string) error {
	t := time.NewTicker(e.pollInterval)
	defer t.Stop()
	for {
		select {
		case <-jobCtx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("awstranscribe: wait for job %s: %w", job, parent.Err())
			}
			return fmt.Errorf("awstranscribe: job %s not finished after %v: %w", job, e.timeout, ErrTimeout)
		case <-t.C:
		}
		out, err := e.tc.GetTranscriptionJob(jobCtx, &transcribe.GetTranscriptionJobInput{TranscriptionJobName: aws.String(job)})
		if err != nil {
			if jobCtx.Err() != nil {
				continue // reported by the select above
			}
			if !IsRetryable(err) {
				return fmt.Errorf("awstranscribe: poll job %s: %w", job, err)
			}
			log.Warn("awstranscribe: poll failed, polling on", "error", err)
			continue
		}
		if out.TranscriptionJob == nil {
			return fmt.Errorf("awstranscribe: poll job %s: %w: no job in the answer", job, ErrBadOutput)
		}
		switch st := out.TranscriptionJob.TranscriptionJobStatus; st {
		case types.TranscriptionJobStatusCompleted:
			return nil
		case types.TranscriptionJobStatusFailed:
			reason := aws.ToString(out.TranscriptionJob.FailureReason)
			if reason == "" {
				reason = "no reason given"
			}
			return &JobFailedError{Job: job, Reason: reason}
		case types.TranscriptionJobStatusQueued, types.TranscriptionJobStatusInProgress:
		default:
			return fmt.Errorf("awstranscribe: poll job %s: %w: status %q", job, ErrBadOutput, st)
		}
	}
}

func (e *Engine) readOutput(ctx context.Context, key string) ([]byte, error) {
	out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxOutputBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxOutputBytes {
		return nil, fmt.Errorf("%w: over %d bytes", ErrBadOutput, maxOutputBytes)
	}
	return b, nil
}

// cleanup deletes the job, the staged audio and the output. Failures are
// logged at error level with the bucket and key (audio may be left in the
// staging bucket until its lifecycle rule expires it); they do not fail
// the transcription, since a retry would not remove the leftover.
func (e *Engine) cleanup(ctx context.Context, log *slog.Logger, job string, started bool, keys ...string) {
	if started {
		_, err := e.tc.DeleteTranscriptionJob(ctx, &transcribe.DeleteTranscriptionJobInput{TranscriptionJobName: aws.String(job)})
		var ae smithy.APIError
		if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "NotFoundException") {
			log.Error("awstranscribe: delete job", "error", err)
		}
	}
	for _, k := range keys {
		if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(k)}); err != nil {
			log.Error("awstranscribe: delete staged object; remove it by hand or let the bucket's lifecycle rule expire it",
				"key", k, "error", err)
		}
	}
}
