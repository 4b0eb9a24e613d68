package storage

import (
	"context"
	"log/slog"
	"testing"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
)

// TestPartRowsBatch: rows are stored by flush, an upload mark before the
// row's insert is flushed lands in the insert, one after it is an update,
// a cancelled part leaves no row, and a failed batch is reported to the
// writers so that Close repairs their rows.
func TestPartRowsBatch(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		q := newPartRows(db, slog.New(slog.DiscardHandler))
		defer q.close()
		w := &Writer{rec: meta.NewID("rec")}
		row := func(n int) (meta.Part, bool) {
			var p meta.Part
			err := db.Where("recording_id = ? AND n = ?", w.rec, n).Take(&p).Error
			return p, err == nil
		}
		info := func(n int) PartInfo {
			return PartInfo{N: n, CipherSHA256: "ab", CipherSize: 100, PlainSize: 80, PlainOffset: int64(80 * n)}
		}

		op0 := q.reserve(w, 0)
		q.markUploaded(w.rec, 0) // the upload beat the row (spooled, not yet ready here)
		q.ready(op0, info(0))
		op1 := q.reserve(w, 1)
		q.ready(op1, info(1))
		op2 := q.reserve(w, 2)
		q.cancel(op2)          // never spooled
		op3 := q.reserve(w, 3) // not ready: not written by this flush
		if err := q.flush(ctx); err != nil {
			t.Fatal(err)
		}
		if p, ok := row(0); !ok || !p.Uploaded || p.PlainOffset != 0 || p.CipherSHA256 != "ab" {
			t.Errorf("part 0: %+v %v", p, ok)
		}
		if p, ok := row(1); !ok || p.Uploaded || p.PlainOffset != 80 {
			t.Errorf("part 1: %+v %v", p, ok)
		}
		if _, ok := row(2); ok {
			t.Error("a cancelled part has a row")
		}
		if _, ok := row(3); ok {
			t.Error("a part that is not spooled yet has a row")
		}
		q.markUploaded(w.rec, 1) // after its row was stored
		q.ready(op3, info(3))
		if err := q.flush(ctx); err != nil {
			t.Fatal(err)
		}
		if p, _ := row(1); !p.Uploaded {
			t.Error("part 1 not marked uploaded")
		}
		if _, ok := row(3); !ok {
			t.Error("part 3 not stored")
		}
		if w.rowsLost.Load() {
			t.Error("rows reported lost")
		}

		// A batch that fails tells its writers.
		bad := &Writer{rec: meta.NewID("rec")}
		q2 := newPartRows(db.Session(&gorm.Session{}).Table("no_such_table"), slog.New(slog.DiscardHandler))
		defer q2.close()
		q2.ready(q2.reserve(bad, 0), info(0))
		if err := q2.flush(ctx); err != nil {
			t.Fatal(err)
		}
		if !bad.rowsLost.Load() {
			t.Error("a failed batch was not reported to the writer")
		}
	})
}
