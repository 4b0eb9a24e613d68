package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/custodian/custodian/storage"
)

// Interface guards.
var (
	_ storage.Blob        = (*Store)(nil)
	_ storage.Pinger      = (*Store)(nil)
	_ storage.LegalHolder = (*Store)(nil)
)

// Object Lock modes accepted in Config.ObjectLock.
const (
	ObjectLockCompliance = "compliance"
	ObjectLockGovernance = "governance"
)

var (
	// ErrInvalidKey is returned (wrapped) for a key that is empty, absolute,
	// or has empty, "." or ".." segments, a backslash or a NUL byte. The
	// rules match storage/disk so that a key works on every back end.
	ErrInvalidKey = errors.New("s3: invalid object key")
	// ErrInvalidRange is returned (wrapped) by GetRange for a negative
	// offset or length, or an offset at or beyond the end of the object.
	ErrInvalidRange = errors.New("s3: invalid range")
	// ErrObjectLockDisabled is returned by SetLegalHold when the Store was
	// configured without Object Lock.
	ErrObjectLockDisabled = errors.New("s3: object lock is not configured (s3.object_lock)")
	// ErrBucketNotLocked is returned (wrapped) by Ping when Object Lock is
	// configured but the bucket was created without it.
	ErrBucketNotLocked = errors.New("s3: bucket does not have object lock enabled")
)

// Config selects the bucket. It mirrors config.S3; credentials are not part
// of it (see the package comment).
type Config struct {
	Bucket         string
	Endpoint       string // empty: AWS; an URL for S3-compatible servers
	Region         string
	Prefix         string // prepended to every key; "/" added if missing
	ForcePathStyle bool   // path-style addressing (most S3-compatible servers)
	ObjectLock     string // "" | "compliance" | "governance"
}

// Option changes how New builds the client.
type Option func(*options)

type options struct {
	creds       aws.CredentialsProvider
	httpClient  *http.Client
	maxAttempts int
}

// WithCredentials replaces the default credential chain (tests and
// embedders; the gateway itself never uses it).
func WithCredentials(p aws.CredentialsProvider) Option {
	return func(o *options) { o.creds = p }
}

// WithHTTPClient sets the HTTP client the SDK uses.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = c }
}

// WithMaxAttempts sets how many times the SDK tries each request (1: no
// SDK-level retries, leaving retries to the caller). Zero keeps the SDK's
// default (3).
func WithMaxAttempts(n int) Option {
	return func(o *options) { o.maxAttempts = n }
}

// Store is a bucket (and optional key prefix) holding sealed objects. It is
// safe for concurrent use.
type Store struct {
	client     *awss3.Client
	bucket     string
	prefix     string
	lockMode   types.ObjectLockMode // "" when Object Lock is off
	lockCheckd atomic.Bool          // bucket's Object Lock configuration verified
}

// New validates cfg and builds a client. It does not contact the server;
// call Ping for that.
func New(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: new: s3.bucket is empty")
	}
	var mode types.ObjectLockMode
	switch strings.ToLower(cfg.ObjectLock) {
	case "":
	case ObjectLockCompliance:
		mode = types.ObjectLockModeCompliance
	case ObjectLockGovernance:
		mode = types.ObjectLockModeGovernance
	default:
		return nil, fmt.Errorf("s3: new: s3.object_lock %q is not one of compliance, governance", cfg.ObjectLock)
	}
	prefix := cfg.Prefix
	if prefix != "" {
		prefix = strings.TrimSuffix(prefix, "/")
		if err := validKey(prefix); err != nil {
			return nil, fmt.Errorf("s3: new: s3.prefix: %w", err)
		}
		prefix += "/"
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	load := []func(*awsconfig.LoadOptions) error{}
	if cfg.Region != "" {
		load = append(load, awsconfig.WithRegion(cfg.Region))
	}
	if o.creds != nil {
		load = append(load, awsconfig.WithCredentialsProvider(o.creds))
	}
	if o.httpClient != nil {
		load = append(load, awsconfig.WithHTTPClient(o.httpClient))
	}
	if o.maxAttempts > 0 {
		load = append(load, awsconfig.WithRetryMaxAttempts(o.maxAttempts))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: new: load AWS config: %w", err)
	}
	client := awss3.NewFromConfig(awsCfg, func(so *awss3.Options) {
		if cfg.Endpoint != "" {
			so.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		so.UsePathStyle = cfg.ForcePathStyle
		// Objects are sealed and authenticated by the envelope; the SDK's
		// note about responses without a checksum is noise.
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	return &Store{client: client, bucket: cfg.Bucket, prefix: prefix, lockMode: mode}, nil
}

// Client returns the underlying SDK client (tests and tools).
func (s *Store) Client() *awss3.Client { return s.client }

// ObjectLock reports whether Puts carry Object Lock parameters.
func (s *Store) ObjectLock() bool { return s.lockMode != "" }

// validKey applies storage/disk's key rules so that keys are portable.
func validKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w %q: backslash or NUL", ErrInvalidKey, key)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("%w %q: absolute", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w %q: empty segment", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w %q: %q segment", ErrInvalidKey, key, seg)
		case strings.HasPrefix(seg, "."):
			return fmt.Errorf("%w %q: segment starts with \".\"", ErrInvalidKey, key)
		}
	}
	return nil
}

func (s *Store) fullKey(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put uploads data with one PutObject. With Object Lock configured it sets
// the lock mode and retain-until date (when opts.RetainUntil is non-zero)
// and the legal hold (when opts.LegalHold).
func (s *Store) Put(ctx context.Context, key string, data []byte, opts storage.PutOptions) error {
	k, err := s.fullKey(key)
	if err != nil {
		return fmt.Errorf("s3: put: %w", err)
	}
	in := &awss3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(k),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
	}
	if s.lockMode != "" {
		if !opts.RetainUntil.IsZero() {
			in.ObjectLockMode = s.lockMode
			in.ObjectLockRetainUntilDate = aws.Time(opts.RetainUntil.UTC())
		}
		if opts.LegalHold {
			in.ObjectLockLegalHoldStatus = types.ObjectLockLegalHoldStatusOn
		}
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("s3: put %s: %w", key, mapErr(err))
	}
	return nil
}

// Get returns the whole object.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.fullKey(key)
	if err != nil {
		return nil, fmt.Errorf("s3: get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return nil, fmt.Errorf("s3: get %s: %w", key, mapErr(err))
	}
	data, err := readBody(out.Body, out.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("s3: get %s: read body: %w", key, err)
	}
	return data, nil
}

// GetRange returns n bytes at off with a ranged GET (Range: bytes=off-end),
// fewer only at the end of the object. n == 0 returns an empty slice when
// the object exists and off is within [0, size].
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	k, err := s.fullKey(key)
	if err != nil {
		return nil, fmt.Errorf("s3: get range: %w", err)
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("s3: get range %s [%d,+%d): %w", key, off, n, ErrInvalidRange)
	}
	if n == 0 { // HTTP cannot express an empty range
		size, err := s.Size(ctx, key)
		if err != nil {
			return nil, err
		}
		if off > size {
			return nil, fmt.Errorf("s3: get range %s [%d,+0) of %d bytes: %w", key, off, size, ErrInvalidRange)
		}
		return []byte{}, nil
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(k),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		return nil, fmt.Errorf("s3: get range %s [%d,+%d): %w", key, off, n, mapErr(err))
	}
	data, err := readBody(out.Body, out.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("s3: get range %s: read body: %w", key, err)
	}
	if out.ContentRange == nil {
		// The server ignored Range and sent the whole object.
		if off >= int64(len(data)) {
			return nil, fmt.Errorf("s3: get range %s [%d,+%d) of %d bytes: %w", key, off, n, len(data), ErrInvalidRange)
		}
		data = data[off:min(off+n, int64(len(data)))]
	}
	if int64(len(data)) > n {
		return nil, fmt.Errorf("s3: get range %s: server sent %d bytes for %d", key, len(data), n)
	}
	return data, nil
}

func readBody(body io.ReadCloser, length *int64) ([]byte, error) {
	defer body.Close() // read side: nothing to lose
	var buf bytes.Buffer
	if length != nil && *length > 0 {
		buf.Grow(int(*length))
	}
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, err
	}
	if length != nil && int64(buf.Len()) != *length {
		return nil, fmt.Errorf("short body: %d of %d bytes", buf.Len(), *length)
	}
	return buf.Bytes(), nil
}

// Size returns the object's length (HeadObject).
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	k, err := s.fullKey(key)
	if err != nil {
		return 0, fmt.Errorf("s3: size: %w", err)
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return 0, fmt.Errorf("s3: size %s: %w", key, mapErr(err))
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Delete removes the object; a missing object is not an error. With Object
// Lock configured (the bucket is versioned) it deletes every version and
// delete marker of the key, so the data is really gone; a version still
// under retention or legal hold makes Delete fail.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.fullKey(key)
	if err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	if s.lockMode == "" {
		_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
		if err != nil && !errors.Is(mapErr(err), storage.ErrNotFound) {
			return fmt.Errorf("s3: delete %s: %w", key, mapErr(err))
		}
		return nil
	}
	versions, err := s.versions(ctx, k)
	if err != nil {
		return fmt.Errorf("s3: delete %s: list versions: %w", key, err)
	}
	var errs []error
	for _, v := range versions {
		_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{
			Bucket: aws.String(s.bucket), Key: aws.String(k), VersionId: aws.String(v),
		})
		if err != nil && !errors.Is(mapErr(err), storage.ErrNotFound) {
			errs = append(errs, fmt.Errorf("version %s: %w", v, mapErr(err)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("s3: delete %s: %w", key, errors.Join(errs...))
	}
	return nil
}

// versions lists the version ids (objects and delete markers) of exactly k.
func (s *Store) versions(ctx context.Context, k string) ([]string, error) {
	var ids []string
	p := awss3.NewListObjectVersionsPaginator(s.client, &awss3.ListObjectVersionsInput{
		Bucket: aws.String(s.bucket), Prefix: aws.String(k),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, mapErr(err)
		}
		for _, v := range page.Versions {
			if aws.ToString(v.Key) == k {
				ids = append(ids, aws.ToString(v.VersionId))
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == k {
				ids = append(ids, aws.ToString(m.VersionId))
			}
		}
	}
	return ids, nil
}

// List returns the keys starting with prefix (relative to Config.Prefix),
// sorted.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if strings.ContainsAny(prefix, "\\\x00") || strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("s3: list %q: %w", prefix, ErrInvalidKey)
	}
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if err := validKey(prefix[:i]); err != nil {
			return nil, fmt.Errorf("s3: list: %w", err)
		}
	}
	var keys []string
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: list %q: %w", prefix, mapErr(err))
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if validKey(k) == nil { // skip objects no Store could have written
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// SetLegalHold sets or clears the Object Lock legal hold on the current
// version of key (PutObjectLegalHold).
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if s.lockMode == "" {
		return fmt.Errorf("s3: set legal hold %s: %w", key, ErrObjectLockDisabled)
	}
	k, err := s.fullKey(key)
	if err != nil {
		return fmt.Errorf("s3: set legal hold: %w", err)
	}
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	_, err = s.client.PutObjectLegalHold(ctx, &awss3.PutObjectLegalHoldInput{
		Bucket:    aws.String(s.bucket),
		Key:       aws.String(k),
		LegalHold: &types.ObjectLockLegalHold{Status: status},
	})
	if err != nil {
		return fmt.Errorf("s3: set legal hold %s: %w", key, mapErr(err))
	}
	return nil
}

// Ping checks that the bucket answers (HeadBucket). With Object Lock
// configured it also checks, until that has succeeded once, that the bucket
// has Object Lock enabled (ErrBucketNotLocked otherwise).
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("s3: ping bucket %s: %w", s.bucket, err)
	}
	if s.lockMode == "" || s.lockCheckd.Load() {
		return nil
	}
	out, err := s.client.GetObjectLockConfiguration(ctx, &awss3.GetObjectLockConfigurationInput{Bucket: aws.String(s.bucket)})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError" {
		return fmt.Errorf("s3: ping bucket %s: %w (create the bucket with Object Lock, or unset s3.object_lock)", s.bucket, ErrBucketNotLocked)
	}
	if err != nil {
		return fmt.Errorf("s3: ping bucket %s: object lock configuration: %w", s.bucket, err)
	}
	if out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return fmt.Errorf("s3: ping bucket %s: %w", s.bucket, ErrBucketNotLocked)
	}
	s.lockCheckd.Store(true)
	return nil
}

// mapErr turns a missing key into storage.ErrNotFound and an unsatisfiable
// range into ErrInvalidRange. A missing bucket stays an error of its own:
// it is a configuration problem, not a missing object.
func mapErr(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return err
		case "NoSuchKey", "NotFound", "NoSuchVersion":
			return storage.ErrNotFound
		case "InvalidRange":
			return ErrInvalidRange
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return storage.ErrNotFound
		case http.StatusRequestedRangeNotSatisfiable:
			return ErrInvalidRange
		}
	}
	return err
}

// retryables classifies errors the way the SDK's own retryer does.
var retryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// IsRetryable reports whether a failed operation may succeed if tried
// again later: connection failures, timeouts, throttling and 5xx answers.
// Missing objects, invalid keys or ranges, denied access, a missing bucket
// and a cancelled context are not retryable.
func IsRetryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, storage.ErrNotFound),
		errors.Is(err, ErrInvalidKey),
		errors.Is(err, ErrInvalidRange),
		errors.Is(err, ErrObjectLockDisabled),
		errors.Is(err, context.Canceled):
		return false
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}
