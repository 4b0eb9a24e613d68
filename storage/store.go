package storage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/spool"
)

// Errors of the Store. Envelope failures (envelope.ErrAuthentication,
// ErrWrongBinding, ErrTruncated, ErrMalformed) pass through wrapped; use
// IsIntegrity to classify any of them together with ErrIntegrity.
var (
	// ErrKeyDestroyed is returned (wrapped) for a recording whose data key
	// was shredded: its objects can never be read again.
	ErrKeyDestroyed = errors.New("key destroyed")
	// ErrIntegrity means what the store holds does not match the manifest:
	// a part missing, extra, of the wrong size or hash, or a manifest that
	// differs from the one recorded in the database.
	ErrIntegrity = errors.New("storage: integrity check failed")
	// ErrIncomplete is returned by Open for a recording whose manifest is
	// not marked complete (failed or recovered), unless
	// ReadOptions.AllowIncomplete is set.
	ErrIncomplete = errors.New("storage: recording is incomplete")
	// ErrExists is returned by NewWriter for a recording id that already
	// has a data key.
	ErrExists = errors.New("storage: recording already exists")
	// ErrInvalidID is returned (wrapped) for a tenant, recording id or
	// object name that meta.ValidID rejects or that is reserved.
	ErrInvalidID = errors.New("storage: invalid id or name")
	// ErrWriterClosed is returned by a Writer's methods after Close.
	ErrWriterClosed = errors.New("storage: writer closed")
)

// IsIntegrity reports whether err means stored data failed verification:
// ErrIntegrity or any envelope failure. It is false for ErrKeyDestroyed,
// ErrIncomplete and not-found errors.
func IsIntegrity(err error) bool {
	return errors.Is(err, ErrIntegrity) ||
		errors.Is(err, envelope.ErrAuthentication) || errors.Is(err, envelope.ErrWrongBinding) ||
		errors.Is(err, envelope.ErrTruncated) || errors.Is(err, envelope.ErrMalformed)
}

// Options configure a Store.
type Options struct {
	// Provider is recorded in meta.DataKey.Provider and meta.NamedKey:
	// "local" (storage/keyring) or "aws" (storage/awskms).
	Provider string
	// Logger receives warnings (upload failures, recovery decisions). It
	// never receives keys or plaintext.
	Logger *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// Observer, if set, is called after each timed operation, for metrics
	// (latency histograms). It must be fast and must not block.
	Observer func(Observation)
	// ReadAhead is the number of parts Reader.Stream and Verify fetch and
	// decrypt concurrently (default 4).
	ReadAhead int
}

// Observation is one timed operation reported to Options.Observer.
type Observation struct {
	// Op is "seal_part" (WritePart: seal, spool fsync, part row),
	// "open_part" (fetch, verify and decrypt one part) or "upload" (one
	// spooled object sent to the blob store).
	Op       string
	Duration time.Duration
	Bytes    int // plaintext bytes for seal_part/open_part, sealed bytes for upload
	Err      error
}

// Stats are counters since New, for metrics.
type Stats struct {
	PartsSealed       uint64 // parts written (WritePart and RewritePart)
	BytesSealed       uint64 // their plaintext bytes
	SealFailures      uint64 // WritePart/RewritePart calls that failed
	IntegrityFailures uint64 // reads rejected by verification
	Spool             spool.Stats
}

// Store is Custodian's encrypted object store: recordings as ordered,
// sealed parts plus a manifest, and other sealed objects (transcripts)
// under a recording's data key. It is safe for concurrent use.
//
// Object keys, under a tenant and recording (ids checked by meta.ValidID):
//
//	{tenant}/recordings/{recording_id}/part-000000.age   part 0, 1, 2, ...
//	{tenant}/recordings/{recording_id}/manifest.age      the manifest
//	{tenant}/recordings/{recording_id}/{name}.age        PutObject(name)
type Store struct {
	db    *gorm.DB
	blob  Blob
	keys  KeyWrapper
	spool *spool.Spool
	opts  Options
	log   *slog.Logger

	bufs sync.Pool // *[]byte seal buffers

	// rows batches part rows and their uploaded marks (partrows.go).
	rows *partRows

	partsSealed, bytesSealed, sealFailures, integrityFailures atomic.Uint64
}

// New returns a Store writing sealed objects through sp (made durable
// there, then uploaded to blob in the background) and keeping wrapped data
// keys and part rows in db. It starts sp's uploader; Close stops it.
func New(db *gorm.DB, blob Blob, keys KeyWrapper, sp *spool.Spool, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.ReadAhead <= 0 {
		opts.ReadAhead = 4
	}
	s := &Store{db: db, blob: blob, keys: keys, spool: sp, opts: opts, log: opts.Logger.With("component", "storage")}
	s.rows = newPartRows(db, s.log)
	if a, ok := blob.(FileAdopter); ok {
		sp.StartAdopting(s.upload, func(ctx context.Context, key, path string, r spool.Retention) (bool, error) {
			return s.adopt(ctx, a, key, path, r)
		})
	} else {
		sp.Start(s.upload)
	}
	return s
}

// FileAdopter is an optional capability of a Blob on the local
// filesystem (storage/disk): take a durable file that holds exactly an
// object's bytes as that object, by renaming it, instead of writing and
// fsyncing the bytes again. It reports false when it cannot (another
// filesystem); the spool then uploads the bytes with Put.
type FileAdopter interface {
	AdoptFile(ctx context.Context, key, path string, opts PutOptions) (bool, error)
}

// adopt is the spool's adopter: the blob store takes the spool file.
func (s *Store) adopt(ctx context.Context, a FileAdopter, key, path string, r spool.Retention) (bool, error) {
	start := time.Now()
	ok, err := a.AdoptFile(ctx, key, path, PutOptions{RetainUntil: r.Until, LegalHold: r.LegalHold})
	if !ok && err == nil {
		return false, nil
	}
	s.observe("upload", start, 0, err)
	if err != nil {
		return false, err
	}
	if _, rec, name, ok := splitKey(key); ok {
		if n, ok := parsePartName(name); ok {
			s.markUploaded(ctx, rec, n)
		}
	}
	return true, nil
}

// Close waits (bounded by ctx) for spooled objects to reach the blob
// store, then stops the uploader. Objects still spooled when ctx ends stay
// on disk and are uploaded after the next start; the error says how many.
func (s *Store) Close(ctx context.Context) error {
	err := s.spool.Flush(ctx)
	err = errors.Join(err, s.spool.Close())
	s.rows.close()
	return err
}

// Flush waits until every spooled object has been uploaded and the part
// rows are stored, or ctx ends.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.spool.Flush(ctx); err != nil {
		return err
	}
	return s.rows.flush(ctx)
}

// Stats returns counters and the upload backlog.
func (s *Store) Stats() Stats {
	return Stats{
		PartsSealed:       s.partsSealed.Load(),
		BytesSealed:       s.bytesSealed.Load(),
		SealFailures:      s.sealFailures.Load(),
		IntegrityFailures: s.integrityFailures.Load(),
		Spool:             s.spool.Stats(),
	}
}

// Ping reports whether the store can take new recordings: the key
// provider answers (when it implements Pinger) and the spool is writable
// with free space. The blob store being down does not fail Ping: the spool
// holds objects until it returns (see Stats().Spool for the backlog).
func (s *Store) Ping(ctx context.Context) error {
	if p, ok := s.keys.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("storage: key provider: %w", err)
		}
	}
	if err := s.spool.Ping(ctx); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// PingBlob reports whether the blob store answers (when it implements
// Pinger).
func (s *Store) PingBlob(ctx context.Context) error {
	if p, ok := s.blob.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("storage: blob store: %w", err)
		}
	}
	return nil
}

func (s *Store) observe(op string, start time.Time, n int, err error) {
	if s.opts.Observer != nil {
		s.opts.Observer(Observation{Op: op, Duration: time.Since(start), Bytes: n, Err: err})
	}
}

// RecordingPrefix returns the key prefix of a recording's objects,
// "{tenant}/recordings/{recording_id}/".
func RecordingPrefix(tenant, recordingID string) string {
	return tenant + "/recordings/" + recordingID + "/"
}

// PartKey returns the object key of part n.
func PartKey(tenant, recordingID string, n int) string {
	return RecordingPrefix(tenant, recordingID) + "part-" + pad6(n) + ".age"
}

// ManifestKey returns the object key of a recording's manifest.
func ManifestKey(tenant, recordingID string) string {
	return RecordingPrefix(tenant, recordingID) + "manifest.age"
}

// ObjectKey returns the object key of a named object (PutObject).
func ObjectKey(tenant, recordingID, name string) string {
	return RecordingPrefix(tenant, recordingID) + name + ".age"
}

func pad6(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 6 {
		s = "000000"[len(s):] + s
	}
	return s
}

// parsePartName returns n for "part-000003.age" (canonical form only).
func parsePartName(name string) (int, bool) {
	d, ok := strings.CutPrefix(name, "part-")
	if !ok {
		return 0, false
	}
	d, ok = strings.CutSuffix(d, ".age")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(d)
	if err != nil || n < 0 || pad6(n) != d {
		return 0, false
	}
	return n, true
}

// splitKey splits "{tenant}/recordings/{rec}/{name}".
func splitKey(key string) (tenant, rec, name string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[1] != "recordings" {
		return "", "", "", false
	}
	return parts[0], parts[2], parts[3], true
}

func checkIDs(tenant, recordingID string) error {
	if !meta.ValidID(tenant) {
		return fmt.Errorf("%w: tenant %q", ErrInvalidID, tenant)
	}
	if !meta.ValidID(recordingID) {
		return fmt.Errorf("%w: recording id %q", ErrInvalidID, recordingID)
	}
	return nil
}

func recordingContext(tenant, recordingID string) map[string]string {
	return map[string]string{"tenant": tenant, "recording_id": recordingID}
}

func partBinding(tenant, recordingID string, n int) envelope.Binding {
	return envelope.Binding{Tenant: tenant, RecordingID: recordingID, Object: envelope.PartObject(n)}
}

func manifestBinding(tenant, recordingID string) envelope.Binding {
	return envelope.Binding{Tenant: tenant, RecordingID: recordingID, Object: envelope.ManifestObject}
}

func newDataKey() []byte {
	k := make([]byte, envelope.KeySize)
	rand.Read(k)
	return k
}

// dataKey loads and unwraps a recording's data key. A recording of
// another tenant is reported as not found.
func (s *Store) dataKey(ctx context.Context, tenant, recordingID string) ([]byte, error) {
	var dk meta.DataKey
	err := s.db.WithContext(ctx).Where("recording_id = ?", recordingID).Take(&dk).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && dk.TenantID != tenant) {
		return nil, fmt.Errorf("recording %s of tenant %s has no data key: %w", recordingID, tenant, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load data key of recording %s: %w", recordingID, err)
	}
	if dk.ShreddedAt != nil || len(dk.Wrapped) == 0 {
		return nil, fmt.Errorf("recording %s: %w", recordingID, ErrKeyDestroyed)
	}
	key, err := s.keys.Unwrap(ctx, dk.Wrapped, dk.KEKID, recordingContext(tenant, recordingID))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of recording %s: %w", recordingID, err)
	}
	if len(key) != envelope.KeySize {
		clear(key)
		return nil, fmt.Errorf("data key of recording %s unwrapped to %d bytes", recordingID, len(key))
	}
	return key, nil
}

// fetch returns a sealed object: the newest spooled version if it is not
// uploaded yet, else the blob store's.
func (s *Store) fetch(ctx context.Context, key string) ([]byte, error) {
	data, err := s.spool.Get(key)
	if err == nil {
		return data, nil
	}
	if !errors.Is(err, spool.ErrNotFound) {
		return nil, err
	}
	return s.blob.Get(ctx, key)
}

// listKeys returns the object names (after the recording prefix) held in
// the spool or the blob store.
func (s *Store) listKeys(ctx context.Context, tenant, recordingID string) (map[string]bool, error) {
	prefix := RecordingPrefix(tenant, recordingID)
	names := map[string]bool{}
	keys, err := s.blob.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, k := range append(keys, s.spool.Keys(prefix)...) {
		if name, ok := strings.CutPrefix(k, prefix); ok && !strings.Contains(name, "/") {
			names[name] = true
		}
	}
	return names, nil
}

// upload is the spool's uploader: it puts one sealed object into the blob
// store and, for a part, marks its row uploaded (best effort: the row is
// informational, the object is what counts).
func (s *Store) upload(ctx context.Context, key string, data []byte, r spool.Retention) error {
	start := time.Now()
	err := s.blob.Put(ctx, key, data, PutOptions{RetainUntil: r.Until, LegalHold: r.LegalHold})
	s.observe("upload", start, len(data), err)
	if err != nil {
		return err
	}
	if _, rec, name, ok := splitKey(key); ok {
		if n, ok := parsePartName(name); ok {
			s.markUploaded(ctx, rec, n)
		}
	}
	return nil
}

// markUploaded records that part n reached the blob store (batched).
func (s *Store) markUploaded(_ context.Context, recordingID string, n int) {
	s.rows.markUploaded(recordingID, n)
}

func (s *Store) getBuf() *[]byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 16<<10)
	return &b
}

func (s *Store) putBuf(b *[]byte) {
	if cap(*b) <= 4<<20 {
		*b = (*b)[:0]
		s.bufs.Put(b)
	}
}
