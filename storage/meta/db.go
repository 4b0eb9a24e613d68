package meta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Options configure Open.
type Options struct {
	// DSN selects the database: empty or "sqlite:PATH" is SQLite (default
	// SQLitePath), a postgres:// URL or key=value DSN is PostgreSQL.
	DSN          string
	SQLitePath   string
	MaxOpenConns int
	Logger       *slog.Logger
	// RetryFor keeps retrying an unreachable database this long (0: once).
	RetryFor time.Duration
}

// Open connects, retrying while the database is unreachable, and runs the
// migrations. The returned *gorm.DB is safe for concurrent use.
func Open(ctx context.Context, o Options) (*gorm.DB, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialector, dialect, err := dialectorFor(o)
	if err != nil {
		return nil, err
	}
	gcfg := &gorm.Config{
		Logger:                                   logger.Discard,
		NowFunc:                                  func() time.Time { return time.Now().UTC() },
		DisableForeignKeyConstraintWhenMigrating: true,
		TranslateError:                           true,
	}
	deadline := time.Now().Add(o.RetryFor)
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		db, err := gorm.Open(dialector, gcfg)
		if err == nil {
			err = ping(ctx, db)
		}
		if err == nil {
			if dialect == DialectSQLite {
				// SQLite has one writer; a small pool avoids lock churn.
				sqlDB, _ := db.DB()
				sqlDB.SetMaxOpenConns(4)
			} else if o.MaxOpenConns > 0 {
				sqlDB, _ := db.DB()
				sqlDB.SetMaxOpenConns(o.MaxOpenConns)
			}
			if err := Migrate(ctx, db); err != nil {
				return nil, err
			}
			return db, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("meta: open %s database: %w", dialect, err)
		}
		log.Warn("database unreachable, retrying", "dialect", dialect, "attempt", attempt, "retry_in", backoff.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("meta: open %s database: %w", dialect, errors.Join(err, ctx.Err()))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func dialectorFor(o Options) (gorm.Dialector, string, error) {
	dsn := o.DSN
	if dsn == "" || strings.HasPrefix(dsn, "sqlite:") {
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			path = o.SQLitePath
		}
		if path == "" {
			return nil, "", errors.New("meta: no database path")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, "", fmt.Errorf("meta: create database directory: %w", err)
		}
		// WAL for concurrent readers, immediate transactions so writers
		// queue on the busy timeout instead of failing on lock upgrade,
		// secure_delete so shredded keys are overwritten in the file.
		q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
			"&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_txlock=immediate"
		return sqlite.Open(path + q), DialectSQLite, nil
	}
	return postgres.Open(dsn), DialectPostgres, nil
}

func ping(ctx context.Context, db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return sqlDB.PingContext(ctx)
}

// Ping reports whether the database answers (readiness).
func Ping(ctx context.Context, db *gorm.DB) error {
	if err := ping(ctx, db); err != nil {
		return fmt.Errorf("meta: ping: %w", err)
	}
	return nil
}

// Dialect returns DialectSQLite or DialectPostgres.
func Dialect(db *gorm.DB) string {
	if db.Dialector.Name() == "postgres" {
		return DialectPostgres
	}
	return DialectSQLite
}

// Close closes the underlying connections.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
