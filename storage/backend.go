package storage

import (
	"context"
	"errors"
	"time"
)

// Blob is an object store back end: storage/disk (DATA/objects) or
// storage/s3. Objects are opaque sealed bytes; keys are slash-separated
// paths built by this package from validated ids.
type Blob interface {
	// Put stores data under key, replacing any object there. When Put
	// returns nil the object is durable (fsynced file, or acknowledged by S3).
	Put(ctx context.Context, key string, data []byte, opts PutOptions) error
	// Get returns the whole object, or an error satisfying IsNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange returns n bytes starting at off (fewer only at the end of
	// the object). off beyond the end is an error.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	// Size returns the object's length, or an error satisfying IsNotFound.
	Size(ctx context.Context, key string) (int64, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// PutOptions carry retention for back ends that enforce it (S3 Object Lock).
type PutOptions struct {
	// RetainUntil is the Object Lock retain-until date; zero: none.
	RetainUntil time.Time
	// LegalHold sets the Object Lock legal hold on the new object.
	LegalHold bool
}

// LegalHolder is implemented by back ends that can set and clear an
// object's legal hold after it was written (S3 Object Lock).
type LegalHolder interface {
	SetLegalHold(ctx context.Context, key string, on bool) error
}

// Pinger is implemented by back ends and key providers that can tell
// whether they answer (readiness, fail-closed admission).
type Pinger interface {
	Ping(ctx context.Context) error
}

// KeyWrapper wraps data keys with a key-encryption key (KEK): the local
// keyring (storage/keyring) or AWS KMS (storage/awskms). ec is the
// encryption context, always containing "tenant" and, for recording keys,
// "recording_id"; Unwrap must fail unless ec equals the one given to Wrap.
type KeyWrapper interface {
	// Wrap encrypts dek under the tenant's primary KEK and returns the
	// wrapped key and the id of the KEK used.
	Wrap(ctx context.Context, dek []byte, ec map[string]string) (wrapped []byte, kekID string, err error)
	// Unwrap decrypts a key wrapped by Wrap with KEK kekID.
	Unwrap(ctx context.Context, wrapped []byte, kekID string, ec map[string]string) ([]byte, error)
}

// Rotator is implemented by key providers that can make a new KEK primary
// (the local keyring). After Rotate, Wrap uses the new KEK and Unwrap still
// accepts every older one.
type Rotator interface {
	Rotate(ctx context.Context) (newKEKID string, err error)
}

// ErrNotFound is returned (wrapped) by back ends for a missing object.
var ErrNotFound = errors.New("storage: object not found")

// IsNotFound reports whether err means a missing object.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
