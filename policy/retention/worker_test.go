package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
)

const day = 24 * time.Hour

// TestSweep: expiry deletes exactly the expired, unheld items; held ones
// survive until released; a transcript kept longer keeps its recording;
// a deleted recording's key is destroyed and reads fail with
// storage.ErrKeyDestroyed.
func TestSweep(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, nil)
		t0 := time.Now().UTC()
		clk := newClock(t0)
		w := e.worker("instance-a", clk)
		in30 := ptr(t0.Add(30 * day))

		expired := e.record(recOpts{session: "s1", participant: "p1", retainUntil: in30, transcript: true})
		failed := e.record(recOpts{session: "s1", participant: "p2", retainUntil: in30, status: meta.StatusFailed})
		recovered := e.record(recOpts{session: "s1", participant: "p3", retainUntil: in30, status: meta.StatusRecovered})
		notYet := e.record(recOpts{session: "s1", participant: "p1", retainUntil: ptr(t0.Add(3650 * day))})
		heldBySession := e.record(recOpts{session: "s-held", participant: "p4", retainUntil: in30})
		heldByParticipant := e.record(recOpts{session: "s2", participant: "p-held", retainUntil: in30, transcript: true})
		stillRecording := e.record(recOpts{session: "s3", participant: "p5", retainUntil: in30, status: meta.StatusRecording})
		noRetention := e.record(recOpts{session: "s3", participant: "p6"})
		transcriptLater := e.record(recOpts{session: "s3", participant: "p7", retainUntil: in30, transcript: true, transcriptRetainUntil: ptr(t0.Add(60 * day))})
		otherTenant := e.record(recOpts{tenant: "other", session: "s-held", participant: "p-held", retainUntil: in30})

		hSession, lost := e.hold("default", []string{"s-held"}, nil)
		if len(lost) != 0 {
			t.Fatalf("hold reports lost recordings %v before any sweep", lost)
		}
		hParticipant, _ := e.hold("default", nil, []string{"p-held"})

		// Nothing has expired yet.
		if res := sweepOnce(t, w); res.Deleted != 0 {
			t.Fatalf("sweep before expiry deleted %d", res.Deleted)
		}

		clk.Set(t0.Add(31 * day))
		res := sweepOnce(t, w)
		wantDeleted := []meta.Recording{expired, failed, recovered, otherTenant}
		if res.Deleted != len(wantDeleted) || res.Held != 2 || res.Failed != 0 || res.Pending != 0 {
			t.Fatalf("sweep = %+v, want %d deleted, 2 held", res, len(wantDeleted))
		}
		for _, rec := range wantDeleted {
			checkDeleted(t, e, rec)
		}
		for _, rec := range []meta.Recording{notYet, heldBySession, heldByParticipant, stillRecording, noRetention, transcriptLater} {
			checkIntact(t, e, rec)
		}
		var tr meta.Transcript
		if err := db.Where("recording_id = ?", expired.ID).Take(&tr).Error; err != nil || tr.Status != meta.TranscriptDeleted {
			t.Fatalf("transcript of deleted recording: status %q, %v; want deleted", tr.Status, err)
		}
		if _, err := e.st.GetObject(context.Background(), "default", expired.ID, "transcript"); !errors.Is(err, storage.ErrKeyDestroyed) {
			t.Fatalf("reading the transcript of a shredded recording: %v, want ErrKeyDestroyed", err)
		}

		// Another sweep changes nothing.
		if res := sweepOnce(t, w); res.Deleted != 0 || res.Held != 2 {
			t.Fatalf("second sweep = %+v", res)
		}

		// Release the session hold: that recording goes; the participant
		// hold keeps its own.
		e.release(hSession)
		if res := sweepOnce(t, w); res.Deleted != 1 || res.Held != 1 {
			t.Fatalf("sweep after release = %+v, want 1 deleted, 1 held", res)
		}
		checkDeleted(t, e, heldBySession)
		checkIntact(t, e, heldByParticipant)

		// The transcript kept for 60 days keeps its recording until then.
		clk.Set(t0.Add(61 * day))
		if res := sweepOnce(t, w); res.Deleted != 1 {
			t.Fatalf("sweep at day 61 = %+v, want 1 deleted", res)
		}
		checkDeleted(t, e, transcriptLater)
		checkIntact(t, e, heldByParticipant)

		e.release(hParticipant)
		if res := sweepOnce(t, w); res.Deleted != 1 {
			t.Fatalf("sweep after the second release = %+v", res)
		}
		checkDeleted(t, e, heldByParticipant)
		checkIntact(t, e, notYet)
		checkIntact(t, e, noRetention)

		ev, au := e.deletedEvents(), e.auditEntries()
		for _, rec := range []meta.Recording{expired, failed, recovered, otherTenant, heldBySession, transcriptLater, heldByParticipant} {
			if ev[rec.ID] != 1 || au["recording:"+rec.ID] != 1 {
				t.Errorf("recording %s: %d events, %d audit entries; want 1 and 1", rec.ID, ev[rec.ID], au["recording:"+rec.ID])
			}
		}
		if len(ev) != 7 || len(au) != 7 {
			t.Errorf("%d deleted events, %d audit entries; want 7", len(ev), len(au))
		}
	})
}

// checkDeleted asserts the tombstone: status deleted, reason, times and
// hashes kept, key shredded, no object left, reads fail with
// storage.ErrKeyDestroyed.
func checkDeleted(t testing.TB, e *env, rec meta.Recording) {
	t.Helper()
	got := e.reload(rec.ID)
	if got.Status != meta.StatusDeleted || got.DeletedAt == nil || got.DeletedReason != ReasonRetention {
		t.Fatalf("recording %s: status %q deleted_at %v reason %q; want a retention tombstone", rec.ID, got.Status, got.DeletedAt, got.DeletedReason)
	}
	if got.ManifestSHA256 != rec.ManifestSHA256 || got.Parts != rec.Parts || !got.StartedAt.Equal(rec.StartedAt) ||
		got.SessionID != rec.SessionID || got.ParticipantID != rec.ParticipantID {
		t.Fatalf("tombstone of %s lost ids, hashes or times: %+v", rec.ID, got)
	}
	var dk meta.DataKey
	if err := e.db.Where("recording_id = ?", rec.ID).Take(&dk).Error; err != nil {
		t.Fatal(err)
	}
	if dk.ShreddedAt == nil || len(dk.Wrapped) != 0 {
		t.Fatalf("recording %s: data key not shredded", rec.ID)
	}
	if keys := e.objects(rec); len(keys) != 0 {
		t.Fatalf("recording %s: objects left after deletion: %v", rec.ID, keys)
	}
	if err := e.readErr(rec); !errors.Is(err, storage.ErrKeyDestroyed) {
		t.Fatalf("reading deleted recording %s: %v, want ErrKeyDestroyed", rec.ID, err)
	}
}

func checkIntact(t testing.TB, e *env, rec meta.Recording) {
	t.Helper()
	got := e.reload(rec.ID)
	if got.Status != rec.Status || got.DeletedAt != nil {
		t.Fatalf("recording %s: status %q deleted_at %v; want %q and kept", rec.ID, got.Status, got.DeletedAt, rec.Status)
	}
	if err := e.readErr(rec); err != nil {
		t.Fatalf("recording %s no longer readable: %v", rec.ID, err)
	}
}

// TestTwoWorkers: two enforcement workers (two instances) sweeping the
// same database at the same time delete each expired item exactly once:
// one tombstone, one event, one audit entry each.
func TestTwoWorkers(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, nil)
		t0 := time.Now().UTC()
		const n = 24
		var recs []meta.Recording
		for i := range n {
			recs = append(recs, e.record(recOpts{session: sessionName(i % 6), participant: fmt.Sprintf("p%d", i), retainUntil: ptr(t0.Add(day)), transcript: i%3 == 0}))
		}
		keep := e.record(recOpts{session: "keep", participant: "k", retainUntil: ptr(t0.Add(100 * day))})
		clk := newClock(t0.Add(2 * day))
		workers := []*Worker{
			e.worker("instance-a", clk, func(o *Options) { o.Batch = 5 }),
			e.worker("instance-b", clk, func(o *Options) { o.Batch = 7 }),
		}
		var (
			mu    sync.Mutex
			total Result
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for _, w := range workers {
			for range 2 { // two concurrent sweeps per instance, too
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res, err := w.Sweep(context.Background())
					if err != nil {
						t.Errorf("sweep: %v", err)
					}
					mu.Lock()
					total.Deleted += res.Deleted
					total.Failed += res.Failed
					mu.Unlock()
				}()
			}
		}
		close(start)
		wg.Wait()
		// Whatever a sweep skipped (claimed by the other) is done by now.
		for _, w := range workers {
			res := sweepOnce(t, w)
			total.Deleted += res.Deleted
		}
		if total.Deleted != n || total.Failed != 0 {
			t.Fatalf("workers deleted %d (failed %d), want %d", total.Deleted, total.Failed, n)
		}
		ev, au := e.deletedEvents(), e.auditEntries()
		for _, rec := range recs {
			checkDeleted(t, e, rec)
			if ev[rec.ID] != 1 || au["recording:"+rec.ID] != 1 {
				t.Errorf("recording %s: %d events, %d audit entries; want exactly 1 each", rec.ID, ev[rec.ID], au["recording:"+rec.ID])
			}
		}
		if len(ev) != n || len(au) != n {
			t.Errorf("%d events, %d audit entries; want %d", len(ev), len(au), n)
		}
		checkIntact(t, e, keep)
		var leases int64
		db.Model(&meta.Lease{}).Count(&leases)
		if leases != 0 {
			t.Errorf("%d item leases left", leases)
		}
	})
}

// TestAbandonedClaim: an instance that claimed an item and died (before
// or after shredding) leaves it to another instance once its lease
// expires; the item is announced once.
func TestAbandonedClaim(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		t0 := time.Now().UTC()
		clk := newClock(t0.Add(2 * day))
		beforeShred := e.record(recOpts{session: "s", participant: "a", retainUntil: ptr(t0.Add(day))})
		afterShred := e.record(recOpts{session: "s", participant: "b", retainUntil: ptr(t0.Add(day))})

		dead := e.worker("instance-dead", clk, func(o *Options) { o.LeaseTTL = 400 * time.Millisecond })
		cutoff := dbTime(clk.Now())
		for _, rec := range []meta.Recording{beforeShred, afterShred} {
			if err := dead.claim(ctx, &rec, cutoff, "instance-dead/1"); err != nil {
				t.Fatalf("claim %s: %v", rec.ID, err)
			}
		}
		if err := e.st.Shred(ctx, "default", afterShred.ID); err != nil {
			t.Fatal(err)
		}

		// While the dead instance's lease runs, nobody else touches them.
		live := e.worker("instance-live", clk)
		if res := sweepOnce(t, live); res.Deleted != 0 {
			t.Fatalf("sweep during the lease deleted %d", res.Deleted)
		}
		if got := e.reload(beforeShred.ID); got.Status != StatusDeleting {
			t.Fatalf("claimed item status %q, want %q", got.Status, StatusDeleting)
		}
		// A claimed item is past the point of no return: a hold created now
		// reports it lost.
		_, lost := e.hold("default", []string{"s"}, nil)
		slices.Sort(lost)
		want := []string{beforeShred.ID, afterShred.ID}
		slices.Sort(want)
		if !slices.Equal(lost, want) {
			t.Fatalf("hold reports lost %v, want %v", lost, want)
		}

		checkFor(t, 10*time.Second, 100*time.Millisecond, func() error {
			if res := sweepOnce(t, live); res.Deleted == 0 {
				return errors.New("abandoned claims not finished yet")
			}
			if got := e.reload(beforeShred.ID); got.Status != meta.StatusDeleted {
				return fmt.Errorf("status %q", got.Status)
			}
			return nil
		})
		sweepOnce(t, live)
		ev := e.deletedEvents()
		for _, rec := range want {
			checkDeleted(t, e, e.reload(rec))
			if ev[rec] != 1 {
				t.Errorf("recording %s: %d events, want 1", rec, ev[rec])
			}
		}
	})
}

// TestHoldRacesClaim runs hold creation against two sweeping workers:
// every recording the hold does not report lost must survive.
func TestHoldRacesClaim(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		e := newEnv(t, db, nil)
		t0 := time.Now().UTC()
		const n = 16
		var recs []meta.Recording
		for i := range n {
			recs = append(recs, e.record(recOpts{session: "race", participant: fmt.Sprintf("p%d", i), retainUntil: ptr(t0.Add(day))}))
		}
		clk := newClock(t0.Add(2 * day))
		a := e.worker("instance-a", clk, func(o *Options) { o.Batch = 1 })
		b := e.worker("instance-b", clk, func(o *Options) { o.Batch = 1 })
		var wg sync.WaitGroup
		var lost []string
		start := make(chan struct{})
		for _, w := range []*Worker{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				w.Sweep(context.Background())
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			time.Sleep(time.Duration(n/4) * 5 * time.Millisecond) // land in the middle of the sweeps
			_, lost = e.hold("default", []string{"race"}, nil)
		}()
		close(start)
		wg.Wait()
		sweepOnce(t, a)
		sweepOnce(t, b)
		for _, rec := range recs {
			got := e.reload(rec.ID)
			gone := got.Status == meta.StatusDeleted || got.Status == StatusDeleting
			if gone != slices.Contains(lost, rec.ID) {
				t.Errorf("recording %s: status %q, hold reported lost: %v", rec.ID, got.Status, slices.Contains(lost, rec.ID))
			}
		}
		t.Logf("%d of %d recordings deleted before the hold", len(lost), n)
	})
}

func TestNewWorkerOptions(t *testing.T) {
	db := metatest.SQLite(t)
	e := newEnv(t, db, nil)
	if _, err := New(db, e.st, Options{}); err == nil {
		t.Error("New without an owner succeeded")
	}
	if _, err := New(nil, e.st, Options{Owner: "x"}); err == nil {
		t.Error("New without a database succeeded")
	}
	w, err := New(db, e.st, Options{Owner: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(context.Background(), 0); err == nil {
		t.Error("Run with interval 0 succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx, time.Hour); err != nil {
		t.Errorf("Run with a cancelled context: %v", err)
	}
}
