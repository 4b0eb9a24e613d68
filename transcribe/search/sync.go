package search

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/custodian/custodian/storage/meta"
)

// SyncStats counts what a Sync did.
type SyncStats struct {
	Transcripts int // completed transcripts examined
	Indexed     int // recordings whose document was (re)written
	Unchanged   int // already indexed at the same version
	Skipped     int // completed rows with nothing to index (deleted, shredded, unverifiable)
	Removed     int // recordings removed from the index
	Words       int
	Duration    time.Duration
}

// syncPage is how many transcript rows Sync reads and indexes at once.
const syncPage = 200

// Progress is told how many of total transcripts are done.
type Progress func(done, total int)

// Sync makes the index hold exactly the completed transcripts of the
// database: each is (re)indexed from its stored object, and recordings the
// index holds without a completed transcript are removed. It is how a
// replica is bootstrapped and rebuilt; it is idempotent.
func Sync(ctx context.Context, x *Index, l *Loader, progress Progress) (SyncStats, error) {
	start := time.Now()
	var st SyncStats
	var total int64
	if err := l.db.WithContext(ctx).Model(&meta.Transcript{}).Where("status = ?", meta.TranscriptCompleted).
		Count(&total).Error; err != nil {
		return st, fmt.Errorf("search: sync: count transcripts: %w", err)
	}
	if progress != nil {
		progress(0, int(total))
	}
	keep := map[string]map[string]bool{} // tenant → recording ids indexed
	lastTenant, lastRec := "", ""
	for {
		var rows []meta.Transcript
		err := l.db.WithContext(ctx).Where("status = ?", meta.TranscriptCompleted).
			Where("tenant_id > ? OR (tenant_id = ? AND recording_id > ?)", lastTenant, lastTenant, lastRec).
			Order("tenant_id, recording_id").Limit(syncPage).Find(&rows).Error
		if err != nil {
			return st, fmt.Errorf("search: sync: read transcripts: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		lastTenant, lastRec = rows[len(rows)-1].TenantID, rows[len(rows)-1].RecordingID
		puts := map[string][]Document{}
		for _, tr := range rows {
			doc, ok, err := l.load(ctx, tr)
			if err != nil {
				return st, err
			}
			st.Transcripts++
			if !ok {
				st.Skipped++
				continue
			}
			if keep[tr.TenantID] == nil {
				keep[tr.TenantID] = map[string]bool{}
			}
			keep[tr.TenantID][tr.RecordingID] = true
			puts[tr.TenantID] = append(puts[tr.TenantID], doc)
		}
		for tenant, docs := range puts {
			n, err := x.apply(ctx, tenant, docs, nil)
			if err != nil {
				return st, err
			}
			st.Indexed += n
			st.Unchanged += len(docs) - n
			for _, d := range docs {
				st.Words += len(d.Words)
			}
		}
		if progress != nil {
			progress(st.Transcripts, int(max(total, int64(st.Transcripts))))
		}
	}
	tenants, err := x.Tenants()
	if err != nil {
		return st, err
	}
	for _, tenant := range tenants {
		ids, err := x.Recordings(ctx, tenant)
		if err != nil {
			return st, err
		}
		var del []string
		for _, id := range ids {
			if !keep[tenant][id] {
				del = append(del, id)
			}
		}
		for chunk := range slices.Chunk(del, 500) {
			if err := x.Apply(ctx, tenant, nil, chunk); err != nil {
				return st, err
			}
		}
		st.Removed += len(del)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// Rebuild builds a fresh replica in dir from the database and the object
// store, and replaces whatever dir held only when the build succeeded.
// It holds dir's lock throughout, so it fails with ErrLocked while a
// gateway serves from dir. consumer names the JetStream consumer that
// will feed the replica (events after the rebuild started are applied
// from it when the gateway starts).
func Rebuild(ctx context.Context, opts Options, l *Loader, consumer string, progress Progress) (SyncStats, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return SyncStats{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SyncStats{}, fmt.Errorf("search: rebuild: %w", err)
	}
	lock, err := lockDir(ctx, filepath.Join(dir, "lock"), opts.LockTimeout)
	if err != nil {
		return SyncStats{}, fmt.Errorf("search: rebuild %s: %w", dir, err)
	}
	defer lock.Close()
	tmp := dir + ".rebuild"
	if err := os.RemoveAll(tmp); err != nil {
		return SyncStats{}, fmt.Errorf("search: rebuild: %w", err)
	}
	o := opts
	o.Dir = tmp
	x, err := Open(ctx, o)
	if err != nil {
		return SyncStats{}, err
	}
	st, err := Sync(ctx, x, l, progress)
	if err == nil {
		err = x.writeState(replicaState{Consumer: consumer, SyncedAt: time.Now().UTC()})
	}
	err = errors.Join(err, x.Close())
	if err != nil {
		os.RemoveAll(tmp)
		return st, err
	}
	old := dir + ".old"
	if err := os.RemoveAll(old); err != nil {
		return st, fmt.Errorf("search: rebuild: %w", err)
	}
	if err := os.Rename(dir, old); err != nil {
		return st, fmt.Errorf("search: rebuild: move old replica: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return st, fmt.Errorf("search: rebuild: install new replica: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return st, err
	}
	// The old replica's files are encrypted under keys that leave with its
	// keys files.
	if err := os.RemoveAll(old); err != nil {
		return st, fmt.Errorf("search: rebuild: remove old replica: %w", err)
	}
	return st, nil
}
