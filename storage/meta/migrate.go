package meta

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SchemaMigration records an applied migration.
type SchemaMigration struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

type migration struct {
	version int
	name    string
	up      func(tx *gorm.DB) error
}

// migrations run in order, each once, each in its own transaction. Never
// edit an applied migration: add a new one.
var migrations = []migration{
	{1, "initial schema", func(tx *gorm.DB) error {
		return tx.AutoMigrate(AllModels()...)
	}},
	{2, "per-recording and per-participant decisions, unredacted transcript hash", func(tx *gorm.DB) error {
		for _, c := range []struct {
			model any
			field string
		}{
			{&Recording{}, "Decision"}, {&Participant{}, "Decision"}, {&Transcript{}, "UnredactedSHA256"},
		} {
			if !tx.Migrator().HasColumn(c.model, c.field) {
				if err := tx.Migrator().AddColumn(c.model, c.field); err != nil {
					return err
				}
			}
		}
		return nil
	}},
	{3, "per-recording transcription engine", func(tx *gorm.DB) error {
		if tx.Migrator().HasColumn(&Recording{}, "TranscriptionEngine") {
			return nil
		}
		return tx.Migrator().AddColumn(&Recording{}, "TranscriptionEngine")
	}},
}

// Migrate applies every pending migration. On PostgreSQL an advisory lock
// keeps several instances starting at once from migrating twice.
func Migrate(ctx context.Context, db *gorm.DB) error {
	db = db.WithContext(ctx)
	if Dialect(db) == DialectPostgres {
		const lockID = 0x637573746f64 // "custod"
		conn, err := db.DB()
		if err != nil {
			return err
		}
		c, err := conn.Conn(ctx)
		if err != nil {
			return fmt.Errorf("meta: migrate: %w", err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
			return fmt.Errorf("meta: migrate lock: %w", err)
		}
		defer c.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID)
	}
	if err := db.AutoMigrate(&SchemaMigration{}); err != nil {
		return fmt.Errorf("meta: migrate: %w", err)
	}
	var applied []SchemaMigration
	if err := db.Find(&applied).Error; err != nil {
		return fmt.Errorf("meta: migrate: %w", err)
	}
	done := map[int]bool{}
	for _, m := range applied {
		done[m.Version] = true
	}
	for _, m := range migrations {
		if done[m.version] {
			continue
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := m.up(tx); err != nil {
				return err
			}
			return tx.Create(&SchemaMigration{Version: m.version, Name: m.name, AppliedAt: time.Now().UTC()}).Error
		})
		if err != nil {
			return fmt.Errorf("meta: migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func SchemaVersion(ctx context.Context, db *gorm.DB) (int, error) {
	var v int
	err := db.WithContext(ctx).Model(&SchemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&v).Error
	return v, err
}
