package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrLeaseLost is returned by RenewLease when the lease is no longer held
// by the caller (it expired and another instance took it, or it was
// released).
var ErrLeaseLost = errors.New("meta: lease lost")

// TryLease takes the named lease for owner until now+ttl when it is free,
// expired, or already held by owner (then it is extended). It reports
// whether owner holds the lease afterwards. Exactly one of several
// concurrent contenders wins a free lease, on SQLite and PostgreSQL alike:
// the take-over is one conditional UPDATE, the first take one INSERT that
// does nothing on conflict.
//
// Times are the callers' clocks (UTC): instances sharing a database must
// keep their clocks synchronised to well under ttl.
func TryLease(ctx context.Context, db *gorm.DB, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, fmt.Errorf("meta: lease %q: name, owner and a positive ttl are required", name)
	}
	now := leaseNow()
	until := now.Add(ttl)
	db = db.WithContext(ctx)
	res := db.Model(&Lease{}).
		Where("name = ? AND (owner = ? OR expires_at < ?)", name, owner, now).
		Updates(map[string]any{"owner": owner, "expires_at": until})
	if res.Error != nil {
		return false, fmt.Errorf("meta: lease %q: %w", name, res.Error)
	}
	if res.RowsAffected == 1 {
		return true, nil
	}
	res = db.Clauses(clause.OnConflict{DoNothing: true}).
		Create(&Lease{Name: name, Owner: owner, ExpiresAt: until})
	if res.Error != nil {
		return false, fmt.Errorf("meta: lease %q: %w", name, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RenewLease extends a lease owner holds to now+ttl. It returns
// ErrLeaseLost when owner no longer holds it.
func RenewLease(ctx context.Context, db *gorm.DB, name, owner string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("meta: renew lease %q: ttl must be positive", name)
	}
	res := db.WithContext(ctx).Model(&Lease{}).
		Where("name = ? AND owner = ?", name, owner).
		Update("expires_at", leaseNow().Add(ttl))
	if res.Error != nil {
		return fmt.Errorf("meta: renew lease %q: %w", name, res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("meta: renew lease %q: %w", name, ErrLeaseLost)
	}
	return nil
}

// ReleaseLease gives up a lease owner holds, so another instance can take
// it at once. Releasing a lease held by someone else does nothing.
func ReleaseLease(ctx context.Context, db *gorm.DB, name, owner string) error {
	err := db.WithContext(ctx).Where("name = ? AND owner = ?", name, owner).Delete(&Lease{}).Error
	if err != nil {
		return fmt.Errorf("meta: release lease %q: %w", name, err)
	}
	return nil
}

// leaseNow is the current time in the form stored in the database: UTC,
// microsecond precision (PostgreSQL's), so that string comparison on SQLite
// and timestamp comparison on PostgreSQL agree.
func leaseNow() time.Time {
	return time.Now().UTC().Truncate(time.Microsecond)
}
