package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
)

// Shred destroys a recording: first its data key (the wrapped key is
// cleared and ShreddedAt set, so nothing can decrypt its objects from then
// on), then every object under the recording, spooled or uploaded, parts,
// manifest and named objects alike. On SQLite it also checkpoints the WAL
// so the cleared key's old bytes leave the log (secure_delete overwrites
// them in the database file). Afterwards Open, GetObject and Recover fail
// with ErrKeyDestroyed. Shredding a shredded recording deletes any objects
// left (to finish an interrupted Shred). Never call it while a Writer for
// the recording is open, and check legal holds first: the blob store
// refuses to delete objects under an S3 legal hold, but the key is gone.
func (s *Store) Shred(ctx context.Context, tenant, recordingID string) error {
	if err := s.shred(ctx, tenant, recordingID); err != nil {
		return fmt.Errorf("storage: shred recording %s: %w", recordingID, err)
	}
	return nil
}

func (s *Store) shred(ctx context.Context, tenant, recordingID string) error {
	if err := checkIDs(tenant, recordingID); err != nil {
		return err
	}
	var dk meta.DataKey
	err := s.db.WithContext(ctx).Where("recording_id = ? AND tenant_id = ?", recordingID, tenant).Take(&dk).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("no data key: %w", ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("load data key: %w", err)
	}
	if dk.ShreddedAt == nil {
		now := s.opts.Clock().UTC()
		err := s.db.WithContext(ctx).Model(&meta.DataKey{}).Where("recording_id = ?", recordingID).
			Updates(map[string]any{"wrapped": []byte{}, "shredded_at": now, "updated_at": now}).Error
		if err != nil {
			return fmt.Errorf("destroy data key: %w", err)
		}
		if meta.Dialect(s.db) == meta.DialectSQLite {
			if err := s.db.WithContext(ctx).Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error; err != nil {
				s.log.Warn("wal checkpoint after shredding failed", "recording_id", recordingID, "err", err)
			}
		}
	}
	prefix := RecordingPrefix(tenant, recordingID)
	if _, err := s.spool.Remove(ctx, prefix); err != nil {
		return err
	}
	keys, err := s.blob.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("key destroyed, objects not deleted: %w", err)
	}
	var errs []error
	for _, k := range keys {
		if err := s.blob.Delete(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("key destroyed, %d of %d objects not deleted: %w", len(errs), len(keys), err)
	}
	return nil
}

// primaryKEK is implemented by key providers that can tell their current
// primary KEK (the local keyring), so Rewrap can skip keys already under it.
type primaryKEK interface {
	PrimaryID() string
}

// Rewrap unwraps every live data key (meta.DataKey not shredded) and every
// named key (meta.NamedKey) and wraps it again under the key provider's
// current primary KEK, after the provider rotated (custodian keys rotate).
// Objects are untouched: their data keys do not change. A key shredded
// meanwhile stays shredded. Keys that fail are reported together at the
// end; the others are rewrapped. progress, if not nil, is called after
// each key. It returns the number of keys rewrapped.
func (s *Store) Rewrap(ctx context.Context, progress func(done, total int)) (int, error) {
	var nData, nNamed int64
	if err := s.db.WithContext(ctx).Model(&meta.DataKey{}).Where("shredded_at IS NULL").Count(&nData).Error; err != nil {
		return 0, fmt.Errorf("storage: rewrap: count data keys: %w", err)
	}
	if err := s.db.WithContext(ctx).Model(&meta.NamedKey{}).Count(&nNamed).Error; err != nil {
		return 0, fmt.Errorf("storage: rewrap: count named keys: %w", err)
	}
	total := int(nData + nNamed)
	primary := ""
	if p, ok := s.keys.(primaryKEK); ok {
		primary = p.PrimaryID()
	}
	done, rewrapped := 0, 0
	var errs []error
	step := func(changed bool, err error) {
		done++
		if changed {
			rewrapped++
		}
		if err != nil {
			errs = append(errs, err)
		}
		if progress != nil {
			progress(done, total)
		}
	}

	last := ""
	for {
		var rows []meta.DataKey
		err := s.db.WithContext(ctx).Where("shredded_at IS NULL AND recording_id > ?", last).
			Order("recording_id").Limit(200).Find(&rows).Error
		if err != nil {
			return rewrapped, fmt.Errorf("storage: rewrap: list data keys: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		for _, dk := range rows {
			last = dk.RecordingID
			if primary != "" && dk.KEKID == primary {
				step(false, nil)
				continue
			}
			ec := recordingContext(dk.TenantID, dk.RecordingID)
			wrapped, kekID, err := s.rewrapOne(ctx, dk.Wrapped, dk.KEKID, ec)
			if err == nil {
				err = s.db.WithContext(ctx).Model(&meta.DataKey{}).
					Where("recording_id = ? AND kek_id = ? AND shredded_at IS NULL", dk.RecordingID, dk.KEKID).
					Updates(map[string]any{"wrapped": wrapped, "kek_id": kekID, "updated_at": s.opts.Clock().UTC()}).Error
			}
			if err != nil {
				err = fmt.Errorf("data key of recording %s: %w", dk.RecordingID, err)
			}
			step(err == nil, err)
		}
		if err := ctx.Err(); err != nil {
			return rewrapped, fmt.Errorf("storage: rewrap: %w", err)
		}
	}

	var named []meta.NamedKey
	if err := s.db.WithContext(ctx).Order("tenant_id, purpose").Find(&named).Error; err != nil {
		return rewrapped, fmt.Errorf("storage: rewrap: list named keys: %w", err)
	}
	for _, nk := range named {
		if primary != "" && nk.KEKID == primary {
			step(false, nil)
			continue
		}
		ec := namedContext(nk.TenantID, nk.Purpose)
		wrapped, kekID, err := s.rewrapOne(ctx, nk.Wrapped, nk.KEKID, ec)
		if err == nil {
			err = s.db.WithContext(ctx).Model(&meta.NamedKey{}).
				Where("tenant_id = ? AND purpose = ? AND kek_id = ?", nk.TenantID, nk.Purpose, nk.KEKID).
				Updates(map[string]any{"wrapped": wrapped, "kek_id": kekID, "updated_at": s.opts.Clock().UTC()}).Error
		}
		if err != nil {
			err = fmt.Errorf("named key %s/%s: %w", nk.TenantID, nk.Purpose, err)
		}
		step(err == nil, err)
	}
	if err := errors.Join(errs...); err != nil {
		return rewrapped, fmt.Errorf("storage: rewrap: %d of %d keys failed: %w", len(errs), total, err)
	}
	return rewrapped, nil
}

func (s *Store) rewrapOne(ctx context.Context, wrapped []byte, kekID string, ec map[string]string) ([]byte, string, error) {
	dek, err := s.keys.Unwrap(ctx, wrapped, kekID, ec)
	if err != nil {
		return nil, "", fmt.Errorf("unwrap: %w", err)
	}
	defer clear(dek)
	w, id, err := s.keys.Wrap(ctx, dek, ec)
	if err != nil {
		return nil, "", fmt.Errorf("wrap: %w", err)
	}
	return w, id, nil
}

func namedContext(tenant, purpose string) map[string]string {
	return map[string]string{"tenant": tenant, "purpose": purpose}
}

// NamedKey returns the tenant's 32-byte data key for purpose (for example
// "search-index", "audit-signing", "nats-store"), creating it on first use.
// It is stored wrapped in meta.NamedKey under encryption context {"tenant",
// "purpose"}; concurrent first calls, also from several instances, agree
// on one key. The caller should clear the returned slice when done.
func (s *Store) NamedKey(ctx context.Context, tenant, purpose string) ([]byte, error) {
	if !meta.ValidID(tenant) || !meta.ValidID(purpose) {
		return nil, fmt.Errorf("storage: named key: %w: %q/%q", ErrInvalidID, tenant, purpose)
	}
	ec := namedContext(tenant, purpose)
	var nk meta.NamedKey
	err := s.db.WithContext(ctx).Where("tenant_id = ? AND purpose = ?", tenant, purpose).Take(&nk).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		key := newDataKey()
		wrapped, kekID, werr := s.keys.Wrap(ctx, key, ec)
		clear(key)
		if werr != nil {
			return nil, fmt.Errorf("storage: named key %s/%s: wrap: %w", tenant, purpose, werr)
		}
		now := time.Now().UTC()
		row := meta.NamedKey{TenantID: tenant, Purpose: purpose, Provider: s.opts.Provider, KEKID: kekID, Wrapped: wrapped, CreatedAt: now, UpdatedAt: now}
		if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
			return nil, fmt.Errorf("storage: named key %s/%s: store: %w", tenant, purpose, err)
		}
		// Read back: another caller may have won the race.
		err = s.db.WithContext(ctx).Where("tenant_id = ? AND purpose = ?", tenant, purpose).Take(&nk).Error
	}
	if err != nil {
		return nil, fmt.Errorf("storage: named key %s/%s: %w", tenant, purpose, err)
	}
	key, err := s.keys.Unwrap(ctx, nk.Wrapped, nk.KEKID, ec)
	if err != nil {
		return nil, fmt.Errorf("storage: named key %s/%s: unwrap: %w", tenant, purpose, err)
	}
	if len(key) != envelope.KeySize {
		clear(key)
		return nil, fmt.Errorf("storage: named key %s/%s: unwrapped to %d bytes", tenant, purpose, len(key))
	}
	return key, nil
}
