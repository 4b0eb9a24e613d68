// Package metatest opens real metadata databases for tests: SQLite always,
// and PostgreSQL when CUSTODIAN_TEST_POSTGRES_DSN is set (each test gets its
// own schema, dropped at cleanup).
package metatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// PostgresEnv names the variable holding a PostgreSQL DSN for tests.
const PostgresEnv = "CUSTODIAN_TEST_POSTGRES_DSN"

// SQLite opens a migrated SQLite database in a temporary directory.
func SQLite(tb testing.TB) *gorm.DB {
	tb.Helper()
	db, err := meta.Open(context.Background(), meta.Options{SQLitePath: filepath.Join(tb.TempDir(), "custodian.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { meta.Close(db) })
	return db
}

// PostgresDSN returns a DSN for a fresh schema on the test PostgreSQL
// server, or "" when CUSTODIAN_TEST_POSTGRES_DSN is not set. The schema is
// dropped at cleanup.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		return ""
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "t_" + hex.EncodeToString(rnd[:])
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		tb.Fatalf("postgres %s: %v", PostgresEnv, err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		tb.Fatalf("postgres create schema: %v", err)
	}
	tb.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		if d, err := admin.DB(); err == nil {
			d.Close()
		}
	})
	return withSearchPath(base, schema)
}

func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema
}

// Postgres opens a migrated PostgreSQL database in a fresh schema, or skips
// the test when CUSTODIAN_TEST_POSTGRES_DSN is not set.
func Postgres(tb testing.TB) *gorm.DB {
	tb.Helper()
	dsn := PostgresDSN(tb)
	if dsn == "" {
		tb.Skipf("%s not set", PostgresEnv)
	}
	db, err := meta.Open(context.Background(), meta.Options{DSN: dsn})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { meta.Close(db) })
	return db
}

// Each runs fn as a subtest against SQLite and, when configured, PostgreSQL.
func Each(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}
