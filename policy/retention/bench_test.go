package retention

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
)

const benchHolds = 200

// BenchmarkHeld measures the lookup the recorder makes at every recording
// start, with 200 active holds in the tenant.
func BenchmarkHeld(b *testing.B) {
	db := metatest.SQLite(b)
	for i := range benchHolds {
		h, err := NewHold(HoldSpec{Tenant: "default", Name: "m", Reason: "r", SessionIDs: []string{fmt.Sprintf("s%d", i)},
			ParticipantIDs: []string{fmt.Sprintf("p%d", i)}}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Create(&h).Error; err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if held, err := Held(ctx, db, "default", "s-none", "p-none"); err != nil || held {
			b.Fatal(held, err)
		}
	}
}

// BenchmarkSweep measures deleting expired recordings (three parts each,
// disk store, SQLite): shred, delete objects, tombstone, event and audit
// entry. One op is one recording.
func BenchmarkSweep(b *testing.B) {
	db := metatest.SQLite(b)
	e := newEnv(b, db, nil)
	t0 := time.Now().UTC()
	clk := newClock(t0.Add(2 * day))
	w := e.worker("bench", clk)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		e.record(recOpts{session: "s", participant: "p", retainUntil: ptr(t0.Add(day))})
		b.StartTimer()
		res, err := w.Sweep(context.Background())
		if err != nil || res.Deleted != 1 {
			b.Fatal(res, err)
		}
	}
	var n int64
	db.Model(&meta.Recording{}).Where("status = ?", meta.StatusDeleted).Count(&n)
	if n == 0 {
		b.Fatal("nothing deleted")
	}
}
