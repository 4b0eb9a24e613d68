package storage

import (
	"context"
	"fmt"
	"slices"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/spool"
)

// Recover finishes a recording whose writer never closed (a crash): it
// reads the part objects in the spool and the blob store from part 0 up,
// keeps the contiguous run that authenticates as parts 0, 1, 2, ... of
// this recording, and seals a manifest with complete=false over them. It
// makes the part rows match (rows may lag the spool by one part). Part
// objects after the first missing or unreadable part are left in place,
// listed in Manifest.Discarded and logged.
//
// If the recording already has a valid manifest (it was closed, or
// recovered before), Recover returns it unchanged. Run Recover on the
// instance whose spool holds the recording (meta.Recording.InstanceID) and
// never while a Writer for it is open. Store the result with
// Manifest.Apply and mark the recording "recovered".
func (s *Store) Recover(ctx context.Context, tenant, recordingID string) (Manifest, error) {
	return s.RecoverWith(ctx, tenant, recordingID, RecoverOptions{})
}

// RecoverOptions refine Recover.
type RecoverOptions struct {
	// Put carries the recording's retention (S3 Object Lock) for the
	// manifest and any rewritten part, like WriterOptions for a writer.
	Put PutOptions
	// RewriteHeader, if set and at least two parts were recovered, is
	// given the plaintext of part 0 and of the last recovered part and
	// returns a replacement for part 0 of the same length (a WebM header
	// stating the duration the writer never got to patch). An error
	// keeps the original part 0.
	RewriteHeader func(first, last []byte) ([]byte, error)
}

// RecoverWith is Recover with options.
func (s *Store) RecoverWith(ctx context.Context, tenant, recordingID string, opts RecoverOptions) (Manifest, error) {
	m, err := s.recover(ctx, tenant, recordingID, opts)
	if err != nil {
		return Manifest{}, fmt.Errorf("storage: recover recording %s: %w", recordingID, err)
	}
	return m, nil
}

func (s *Store) recover(ctx context.Context, tenant, recordingID string, opts RecoverOptions) (Manifest, error) {
	if err := checkIDs(tenant, recordingID); err != nil {
		return Manifest{}, err
	}
	key, err := s.dataKey(ctx, tenant, recordingID)
	if err != nil {
		return Manifest{}, err
	}
	defer clear(key)
	if sealed, err := s.fetch(ctx, ManifestKey(tenant, recordingID)); err == nil {
		m, err := openManifest(key, tenant, recordingID, sealed)
		if err != nil {
			// Never replace a manifest that exists: it is evidence.
			return Manifest{}, fmt.Errorf("existing manifest does not verify: %w", err)
		}
		return m, nil
	} else if !IsNotFound(err) {
		return Manifest{}, fmt.Errorf("fetch manifest: %w", err)
	}

	names, err := s.listKeys(ctx, tenant, recordingID)
	if err != nil {
		return Manifest{}, err
	}
	var found []int
	for name := range names {
		if n, ok := parsePartName(name); ok {
			found = append(found, n)
		}
	}
	slices.Sort(found)

	m := Manifest{Version: ManifestVersion, Tenant: tenant, RecordingID: recordingID, CreatedAt: s.opts.Clock().UTC()}
	log := s.log.With("tenant", tenant, "recording_id", recordingID)
	for n := 0; n < len(found) && found[n] == n; n++ {
		sealed, err := s.fetch(ctx, PartKey(tenant, recordingID, n))
		if err != nil {
			if !IsNotFound(err) {
				return Manifest{}, fmt.Errorf("fetch part %d: %w", n, err)
			}
			break
		}
		pt, err := envelope.Open(key, partBinding(tenant, recordingID, n), sealed)
		if err != nil {
			log.Warn("recovery stops at a part that does not authenticate", "part", n, "err", err)
			break
		}
		m.Parts = append(m.Parts, PartInfo{N: n, CipherSHA256: sha256Hex(sealed), CipherSize: int64(len(sealed)), PlainSize: int64(len(pt)), PlainOffset: m.PlainSize})
		m.PlainSize += int64(len(pt))
		m.CipherSize += int64(len(sealed))
		clear(pt)
	}
	for _, n := range found {
		if n >= len(m.Parts) {
			m.Discarded = append(m.Discarded, n)
		}
	}
	if len(m.Discarded) > 0 {
		log.Warn("recovered recording has part objects after a gap; they are left in place and listed as discarded", "parts", len(m.Parts), "discarded", m.Discarded)
	}
	ret := spool.Retention{Until: opts.Put.RetainUntil, LegalHold: opts.Put.LegalHold}
	if opts.RewriteHeader != nil && len(m.Parts) >= 2 {
		if err := s.rewriteRecoveredHeader(ctx, key, tenant, recordingID, &m, ret, opts.RewriteHeader); err != nil {
			log.Warn("recovered recording keeps its original header", "err", err)
		}
	}
	if err := s.upsertPartRows(ctx, recordingID, m.Parts); err != nil {
		return Manifest{}, fmt.Errorf("part rows: %w", err)
	}
	sealed, err := sealManifest(key, &m)
	if err != nil {
		return Manifest{}, fmt.Errorf("seal manifest: %w", err)
	}
	if err := s.spool.Put(ctx, ManifestKey(tenant, recordingID), sealed, ret); err != nil {
		return Manifest{}, err
	}
	log.Info("recording recovered", "parts", len(m.Parts), "bytes", m.PlainSize)
	return m, nil
}

// rewriteRecoveredHeader replaces part 0 of a recovered recording with
// the header fix's result, re-sealed as part 0, and updates m.
func (s *Store) rewriteRecoveredHeader(ctx context.Context, key []byte, tenant, recordingID string, m *Manifest, ret spool.Retention, fix func(first, last []byte) ([]byte, error)) error {
	open := func(n int) ([]byte, error) {
		sealed, err := s.fetch(ctx, PartKey(tenant, recordingID, n))
		if err != nil {
			return nil, err
		}
		return envelope.Open(key, partBinding(tenant, recordingID, n), sealed)
	}
	first, err := open(0)
	if err != nil {
		return fmt.Errorf("open part 0: %w", err)
	}
	defer clear(first)
	last, err := open(m.Parts[len(m.Parts)-1].N)
	if err != nil {
		return fmt.Errorf("open last part: %w", err)
	}
	defer clear(last)
	hdr, err := fix(first, last)
	if err != nil {
		return err
	}
	if len(hdr) != len(first) {
		return fmt.Errorf("new header is %d bytes, part 0 has %d", len(hdr), len(first))
	}
	sealed, err := envelope.Seal(key, partBinding(tenant, recordingID, 0), hdr)
	if err != nil {
		return fmt.Errorf("seal part 0: %w", err)
	}
	if err := s.spool.Put(ctx, PartKey(tenant, recordingID, 0), sealed, ret); err != nil {
		return err
	}
	old := m.Parts[0]
	m.Parts[0] = PartInfo{N: 0, CipherSHA256: sha256Hex(sealed), CipherSize: int64(len(sealed)), PlainSize: old.PlainSize, PlainOffset: 0}
	m.CipherSize += int64(len(sealed)) - old.CipherSize
	return nil
}
