package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/spool"
)

// ObjectInfo describes a sealed named object.
type ObjectInfo struct {
	Key          string // blob key, {tenant}/recordings/{recording_id}/{name}.age
	Name         string
	PlainSize    int64
	CipherSize   int64
	CipherSHA256 string // hex SHA-256 of the sealed object
}

func checkName(name string) error {
	if !meta.ValidID(name) || name == "manifest" || strings.HasPrefix(name, "part-") {
		return fmt.Errorf("%w: object name %q (reserved or invalid)", ErrInvalidID, name)
	}
	return nil
}

func objectBinding(tenant, recordingID, name string) envelope.Binding {
	return envelope.Binding{Tenant: tenant, RecordingID: recordingID, Object: name}
}

// PutObject seals plaintext under the recording's data key, bound to
// name (for example "transcript" or "transcript-unredacted"), and makes it
// durable in the spool; it reaches the blob store in the background,
// replacing any earlier object of that name. name must satisfy
// meta.ValidID and must not be "manifest" or start with "part-". opts
// carries S3 Object Lock retention for back ends that enforce it. Record
// the returned hash (meta.Transcript.CipherSHA256) to detect a rollback
// to an older version with GetObject's caller.
func (s *Store) PutObject(ctx context.Context, tenant, recordingID, name string, plaintext []byte, opts PutOptions) (ObjectInfo, error) {
	info, err := s.putObject(ctx, tenant, recordingID, name, plaintext, opts)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("storage: put object %s of recording %s: %w", name, recordingID, err)
	}
	return info, nil
}

func (s *Store) putObject(ctx context.Context, tenant, recordingID, name string, plaintext []byte, opts PutOptions) (ObjectInfo, error) {
	if err := checkIDs(tenant, recordingID); err != nil {
		return ObjectInfo{}, err
	}
	if err := checkName(name); err != nil {
		return ObjectInfo{}, err
	}
	key, err := s.dataKey(ctx, tenant, recordingID)
	if err != nil {
		return ObjectInfo{}, err
	}
	defer clear(key)
	sealed, err := envelope.Seal(key, objectBinding(tenant, recordingID, name), plaintext)
	if err != nil {
		return ObjectInfo{}, err
	}
	k := ObjectKey(tenant, recordingID, name)
	if err := s.spool.Put(ctx, k, sealed, spool.Retention{Until: opts.RetainUntil, LegalHold: opts.LegalHold}); err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: k, Name: name, PlainSize: int64(len(plaintext)), CipherSize: int64(len(sealed)), CipherSHA256: sha256Hex(sealed)}, nil
}

// GetObject returns the plaintext of a named object after authenticating
// it as exactly that object of that recording. Errors wrap ErrNotFound,
// ErrKeyDestroyed, or an envelope error (IsIntegrity).
func (s *Store) GetObject(ctx context.Context, tenant, recordingID, name string) ([]byte, error) {
	pt, err := s.getObject(ctx, tenant, recordingID, name)
	if err != nil {
		if IsIntegrity(err) {
			s.integrityFailures.Add(1)
		}
		return nil, fmt.Errorf("storage: get object %s of recording %s: %w", name, recordingID, err)
	}
	return pt, nil
}

func (s *Store) getObject(ctx context.Context, tenant, recordingID, name string) ([]byte, error) {
	if err := checkIDs(tenant, recordingID); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	key, err := s.dataKey(ctx, tenant, recordingID)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	sealed, err := s.fetch(ctx, ObjectKey(tenant, recordingID, name))
	if err != nil {
		return nil, err
	}
	return envelope.Open(key, objectBinding(tenant, recordingID, name), sealed)
}

// DeleteObject deletes a named object, spooled or uploaded. A missing
// object is not an error.
func (s *Store) DeleteObject(ctx context.Context, tenant, recordingID, name string) error {
	if err := checkIDs(tenant, recordingID); err != nil {
		return fmt.Errorf("storage: delete object: %w", err)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("storage: delete object: %w", err)
	}
	k := ObjectKey(tenant, recordingID, name)
	if _, err := s.spool.RemoveKey(ctx, k); err != nil {
		return fmt.Errorf("storage: delete object %s of recording %s: %w", name, recordingID, err)
	}
	if err := s.blob.Delete(ctx, k); err != nil {
		return fmt.Errorf("storage: delete object %s of recording %s: %w", name, recordingID, err)
	}
	return nil
}

// SetLegalHold sets or clears the S3 Object Lock legal hold on every
// object of a recording, when the blob store supports it (LegalHolder, and
// ObjectLock() true where the store reports it).
// Objects still in the spool are uploaded first (bounded by ctx), so the
// hold covers them. With a back end without legal holds (disk) it does
// nothing and returns nil: holds are then enforced by the database
// (meta.LegalHold) alone. For recordings started under a hold, set
// WriterOptions.LegalHold instead.
func (s *Store) SetLegalHold(ctx context.Context, tenant, recordingID string, on bool) error {
	lh, ok := s.blob.(LegalHolder)
	if !ok {
		return nil
	}
	if ol, ok := s.blob.(interface{ ObjectLock() bool }); ok && !ol.ObjectLock() {
		return nil // an S3 bucket without Object Lock
	}
	if err := checkIDs(tenant, recordingID); err != nil {
		return fmt.Errorf("storage: legal hold: %w", err)
	}
	prefix := RecordingPrefix(tenant, recordingID)
	if err := s.spool.FlushPrefix(ctx, prefix); err != nil {
		return fmt.Errorf("storage: legal hold on recording %s: objects still spooled: %w", recordingID, err)
	}
	keys, err := s.blob.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("storage: legal hold on recording %s: %w", recordingID, err)
	}
	var errs []error
	for _, k := range keys {
		if err := lh.SetLegalHold(ctx, k, on); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: legal hold on recording %s: %d of %d objects failed: %w", recordingID, len(errs), len(keys), err)
	}
	return nil
}
