package audit_test

import (
	"context"
	"testing"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

func benchEntry() audit.Entry {
	return audit.Entry{Tenant: "default", Actor: "tok_0123456789", Role: "compliance", Action: audit.ActionMediaRead,
		Target: "recording:rec_06h0b8w5c1pm4fgcy3xa6d70w0", Source: "192.0.2.7",
		Details: map[string]any{"range": "bytes=0-1048575", "status": 206}}
}

func BenchmarkHash(b *testing.B) {
	db := metatest.SQLite(b)
	e, err := audit.Append(context.Background(), db, benchEntry())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		audit.Hash(e)
	}
}

func benchAppend(b *testing.B, db *gorm.DB) {
	ctx := context.Background()
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := audit.Append(ctx, db, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendSQLite(b *testing.B)   { benchAppend(b, metatest.SQLite(b)) }
func BenchmarkAppendPostgres(b *testing.B) { benchAppend(b, metatest.Postgres(b)) }

// BenchmarkVerify verifies a 5 000-entry chain per op and also reports
// ns per entry.
func BenchmarkVerify(b *testing.B) {
	db := metatest.SQLite(b)
	ctx := context.Background()
	const n = 5000
	e := benchEntry()
	if err := db.Transaction(func(tx *gorm.DB) error {
		for range n {
			if _, err := audit.AppendTx(tx, e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := audit.Verify(ctx, db)
		if err != nil || !r.OK || r.Entries != n {
			b.Fatalf("%+v %v", r, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}
