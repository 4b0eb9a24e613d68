package awskms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/custodian/custodian/storage"
)

// Interface guards.
var (
	_ storage.KeyWrapper = (*Provider)(nil)
	_ storage.Pinger     = (*Provider)(nil)
)

var (
	// ErrNoKey is returned (wrapped) by Wrap when neither the tenant nor
	// the default has a key id configured.
	ErrNoKey = errors.New("awskms: no KMS key configured for tenant")
	// ErrUnwrap is returned (wrapped) when KMS refuses to decrypt a wrapped
	// key: a different encryption context, another key's id, or a damaged
	// ciphertext (InvalidCiphertextException, IncorrectKeyException).
	ErrUnwrap = errors.New("awskms: cannot unwrap data key (wrong encryption context, key or damaged ciphertext)")
	// ErrKeyNotFound is returned (wrapped) for a key id, ARN or alias KMS
	// does not know (NotFoundException).
	ErrKeyNotFound = errors.New("awskms: KMS key not found")
	// ErrAccessDenied is returned (wrapped) when the credentials may not
	// use the key (AccessDeniedException, or an unrecognised client).
	ErrAccessDenied = errors.New("awskms: access to KMS key denied")
	// ErrKeyDisabled is returned (wrapped) for a disabled key or one pending
	// deletion (DisabledException, KMSInvalidStateException).
	ErrKeyDisabled = errors.New("awskms: KMS key disabled or not usable")
)

// Config mirrors config.AWSKMS.
type Config struct {
	KeyID        string            // key id, ARN or alias for tenants without their own
	TenantKeyIDs map[string]string // tenant -> key id, ARN or alias
	Region       string
	Endpoint     string // VPC endpoint or a test server; empty: AWS
}

// Option changes how New builds the client.
type Option func(*options)

type options struct {
	creds       aws.CredentialsProvider
	httpClient  *http.Client
	maxAttempts int
	timeout     time.Duration
}

// WithCredentials replaces the default credential chain (tests).
func WithCredentials(p aws.CredentialsProvider) Option {
	return func(o *options) { o.creds = p }
}

// WithHTTPClient sets the HTTP client the SDK uses.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = c }
}

// WithMaxAttempts sets how many times the SDK tries each call (default 3).
func WithMaxAttempts(n int) Option {
	return func(o *options) { o.maxAttempts = n }
}

// WithTimeout bounds each Wrap, Unwrap and Ping, retries included
// (default 10 s), so a hanging KMS endpoint cannot stall a recording start.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// Provider wraps data keys with AWS KMS. It is safe for concurrent use.
type Provider struct {
	client  *kms.Client
	keyID   string
	tenants map[string]string
	timeout time.Duration
}

// New validates cfg and builds a KMS client. It does not contact KMS; call
// Ping for that.
func New(ctx context.Context, cfg Config, opts ...Option) (*Provider, error) {
	if cfg.KeyID == "" && len(cfg.TenantKeyIDs) == 0 {
		return nil, errors.New("awskms: new: kms.aws.key_id is empty and no kms.aws.tenant_key_ids are set")
	}
	for t, id := range cfg.TenantKeyIDs {
		if t == "" || id == "" {
			return nil, fmt.Errorf("awskms: new: kms.aws.tenant_key_ids has an empty tenant or key id (%q: %q)", t, id)
		}
	}
	o := options{timeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	var load []func(*awsconfig.LoadOptions) error
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
		return nil, fmt.Errorf("awskms: new: load AWS config: %w", err)
	}
	client := kms.NewFromConfig(awsCfg, func(ko *kms.Options) {
		if cfg.Endpoint != "" {
			ko.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Provider{
		client:  client,
		keyID:   cfg.KeyID,
		tenants: maps.Clone(cfg.TenantKeyIDs),
		timeout: o.timeout,
	}, nil
}

// KeyFor returns the configured key id for tenant: its own, else the
// default.
func (p *Provider) KeyFor(tenant string) (string, error) {
	if id, ok := p.tenants[tenant]; ok {
		return id, nil
	}
	if p.keyID == "" {
		return "", fmt.Errorf("%w %q (set kms.aws.key_id or kms.aws.tenant_key_ids.%s)", ErrNoKey, tenant, tenant)
	}
	return p.keyID, nil
}

// Wrap encrypts dek with KMS Encrypt under the key configured for
// ec["tenant"], with ec as the encryption context. kekID is the ARN KMS
// reports for the key (an alias is resolved), which Unwrap passes back.
func (p *Provider) Wrap(ctx context.Context, dek []byte, ec map[string]string) ([]byte, string, error) {
	keyID, err := p.KeyFor(ec["tenant"])
	if err != nil {
		return nil, "", fmt.Errorf("awskms: wrap: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	out, err := p.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(keyID),
		Plaintext:         dek,
		EncryptionContext: ec,
	})
	if err != nil {
		return nil, "", fmt.Errorf("awskms: wrap with %s: %w", keyID, classify(err))
	}
	kekID := aws.ToString(out.KeyId)
	if kekID == "" {
		kekID = keyID
	}
	return out.CiphertextBlob, kekID, nil
}

// Unwrap decrypts with KMS Decrypt, naming kekID and the same encryption
// context; KMS refuses any other context (ErrUnwrap).
func (p *Provider) Unwrap(ctx context.Context, wrapped []byte, kekID string, ec map[string]string) ([]byte, error) {
	if kekID == "" {
		return nil, errors.New("awskms: unwrap: empty key id")
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	out, err := p.client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		KeyId:             aws.String(kekID),
		EncryptionContext: ec,
	})
	if err != nil {
		return nil, fmt.Errorf("awskms: unwrap with %s: %w", kekID, classify(err))
	}
	return out.Plaintext, nil
}

// Ping calls DescribeKey on every configured key and fails unless each
// exists, is enabled and may be used by these credentials.
func (p *Provider) Ping(ctx context.Context) error {
	ids := slices.Sorted(maps.Values(p.tenants))
	if p.keyID != "" {
		ids = append([]string{p.keyID}, ids...)
	}
	ids = slices.Compact(ids)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	for _, id := range ids {
		out, err := p.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			return fmt.Errorf("awskms: ping key %s: %w", id, classify(err))
		}
		if md := out.KeyMetadata; md == nil || !md.Enabled {
			state := types.KeyState("unknown")
			if md != nil {
				state = md.KeyState
			}
			return fmt.Errorf("awskms: ping key %s: state %s: %w", id, state, ErrKeyDisabled)
		}
	}
	return nil
}

// classify adds this package's sentinel to KMS errors that have one,
// keeping the SDK error (with its request id) in the chain.
func classify(err error) error {
	var (
		invalid   *types.InvalidCiphertextException
		incorrect *types.IncorrectKeyException
		notFound  *types.NotFoundException
		disabled  *types.DisabledException
		state     *types.KMSInvalidStateException
	)
	switch {
	case errors.As(err, &invalid), errors.As(err, &incorrect):
		return fmt.Errorf("%w: %w", ErrUnwrap, err)
	case errors.As(err, &notFound):
		return fmt.Errorf("%w: %w", ErrKeyNotFound, err)
	case errors.As(err, &disabled), errors.As(err, &state):
		return fmt.Errorf("%w: %w", ErrKeyDisabled, err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException":
			return fmt.Errorf("%w: %w", ErrAccessDenied, err)
		}
	}
	return err
}

var retryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// IsRetryable reports whether a failed call may succeed later: connection
// failures, timeouts, throttling, KMSInternalException and 5xx. Refusals
// (wrong context, unknown or disabled key, access denied) are not.
func IsRetryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, ErrUnwrap),
		errors.Is(err, ErrKeyNotFound),
		errors.Is(err, ErrAccessDenied),
		errors.Is(err, ErrKeyDisabled),
		errors.Is(err, ErrNoKey),
		errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var internal *types.KMSInternalException
	var dep *types.DependencyTimeoutException
	var unavailable *types.KeyUnavailableException
	if errors.As(err, &internal) || errors.As(err, &dep) || errors.As(err, &unavailable) {
		return true
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}
