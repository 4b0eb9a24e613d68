package meta_test

import (
	"context"
	"testing"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

func TestMigrateIsIdempotentAndVersioned(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		if err := meta.Migrate(ctx, db); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		v, err := meta.SchemaVersion(ctx, db)
		if err != nil || v != 3 {
			t.Fatalf("schema version = %d, %v; want 3", v, err)
		}
	})
}

// TestMigrationAddsTranscriptionEngine: a database at version 2 (no
// recordings.transcription_engine) gets the column from migration 3, and
// its rows keep working.
func TestMigrationAddsTranscriptionEngine(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		m := db.Migrator()
		if err := m.DropColumn(&meta.Recording{}, "TranscriptionEngine"); err != nil {
			t.Fatal(err)
		}
		if err := db.Where("version = ?", 3).Delete(&meta.SchemaMigration{}).Error; err != nil {
			t.Fatal(err)
		}
		if err := meta.Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		if !m.HasColumn(&meta.Recording{}, "TranscriptionEngine") {
			t.Fatal("migration 3 did not add recordings.transcription_engine")
		}
		if v, err := meta.SchemaVersion(ctx, db); err != nil || v != 3 {
			t.Fatalf("schema version = %d, %v; want 3", v, err)
		}
	})
}

func TestRoundTripModels(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		now := time.Now().UTC().Truncate(time.Millisecond)
		s := meta.Session{TenantID: "default", ID: "call-1", Department: "sales", Status: meta.SessionActive,
			Labels: meta.NewJSON(map[string]string{"queue": "billing"}), StartedAt: now}
		if err := db.Create(&s).Error; err != nil {
			t.Fatal(err)
		}
		// the same session id in another tenant is another session
		if err := db.Create(&meta.Session{TenantID: "other", ID: "call-1", StartedAt: now}).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Create(&meta.Session{TenantID: "default", ID: "call-1", StartedAt: now}).Error; err == nil {
			t.Fatal("duplicate session in one tenant accepted")
		}
		var got meta.Session
		if err := db.First(&got, "tenant_id = ? AND id = ?", "default", "call-1").Error; err != nil {
			t.Fatal(err)
		}
		if got.Labels.V["queue"] != "billing" || !got.StartedAt.Equal(now) {
			t.Fatalf("round trip: %+v", got)
		}
		r := meta.Recording{ID: meta.NewID("rec"), TenantID: "default", SessionID: "call-1", Status: meta.StatusRecording,
			Codecs: meta.NewJSON([]string{"opus"}), Completeness: meta.NewJSON(map[string]any{"packets_lost": 3.0}), StartedAt: now}
		if err := db.Create(&r).Error; err != nil {
			t.Fatal(err)
		}
		var rr meta.Recording
		if err := db.First(&rr, "id = ?", r.ID).Error; err != nil {
			t.Fatal(err)
		}
		if rr.Codecs.V[0] != "opus" || rr.Completeness.V["packets_lost"] != 3.0 {
			t.Fatalf("json columns: %+v", rr)
		}
	})
}

func TestIDs(t *testing.T) {
	a, b := meta.NewID("rec"), meta.NewID("rec")
	if a == b || len(a) != 30 || !meta.ValidID(a) {
		t.Fatalf("ids %q %q", a, b)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b", "a b", string(make([]byte, 129))} {
		if meta.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}
