package retention

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/s3"
	"github.com/custodian/custodian/storage/s3/s3test"
)

// TestObjectLock runs retention against the real S3-compatible server
// (versitygw, Object Lock on its posix back end) with a bucket in
// compliance mode and objects written with retain-until equal to the
// recording's retention:
//   - the gateway's clock is ahead of the store's (skew): the key is
//     shredded and the deletion announced at once, the store refuses the
//     objects until their lock expires, and a later sweep removes them;
//   - a held recording's objects carry the Object Lock legal hold and
//     cannot be deleted; after release the hold is cleared and retention
//     deletes them;
//   - a legal hold that a release failed to clear is cleared by retention.
//
// versitygw v1.8.0 ignores an object's legal hold once the object's own
// retain-until date has passed (auth/object_lock.go, checkObject: "this
// also skips the legal-hold check below"); AWS S3 does not. So the
// deletion refused because of a legal hold alone is shown with objects
// written under a hold without a retention date ("stuck").
func TestObjectLock(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	cfg := srv.Config(s3test.LockedBucket)
	cfg.ObjectLock = s3.ObjectLockCompliance
	cfg.Prefix = "retention-" + strings.ToLower(meta.NewID("t"))
	blob := srv.NewStore(t, cfg)
	db := metatest.SQLite(t)
	e := newEnv(t, db, blob)

	// Object Lock dates have second precision.
	until := time.Now().Add(4 * time.Second).Truncate(time.Second).Add(time.Second)
	skewed := e.record(recOpts{session: "skewed", participant: "a", retainUntil: ptr(until), objectRetainUntil: until, transcript: true})
	held := e.record(recOpts{session: "held", participant: "b", retainUntil: ptr(until), objectRetainUntil: until, transcript: true})
	// Written under a hold (HoldForWrite said so), legal hold only.
	stuck := e.record(recOpts{session: "stuck", participant: "c", retainUntil: ptr(until), legalHold: true, transcript: true})

	// Every part, the manifest and the transcript carry retain-until.
	for _, rec := range []meta.Recording{skewed, held} {
		keys := e.objects(rec)
		if len(keys) != rec.Parts+2 {
			t.Fatalf("recording %s has objects %v, want %d parts, manifest and transcript", rec.ID, keys, rec.Parts)
		}
		for _, k := range keys {
			mode, ru := objectRetention(t, blob, cfg.Prefix, k)
			if mode != types.ObjectLockRetentionModeCompliance || !ru.Equal(until) {
				t.Fatalf("%s: retention %s until %v, want COMPLIANCE until %v", k, mode, ru, until)
			}
		}
	}

	hStuck, _ := e.hold("default", []string{"stuck"}, nil)
	hHeld, _ := e.hold("default", []string{"held"}, nil)
	if err := e.st.SetLegalHold(ctx, "default", held.ID, true); err != nil { // what POST /v1/legal-holds does
		t.Fatal(err)
	}
	checkLegalHold(t, e, blob, cfg.Prefix, held, types.ObjectLockLegalHoldStatusOn)
	checkLegalHold(t, e, blob, cfg.Prefix, stuck, types.ObjectLockLegalHoldStatusOn)
	// Held objects cannot be deleted, by Custodian or anyone else.
	for _, rec := range []meta.Recording{held, stuck} {
		for _, k := range e.objects(rec) {
			if err := blob.Delete(ctx, k); err == nil {
				t.Fatalf("deleting held object %s succeeded", k)
			}
		}
	}
	// The release of "stuck" could not clear its Object Lock hold.
	e.release(hStuck)

	// The gateway's clock says a day later; the store's says seconds.
	clk := newClock(until.Add(24 * time.Hour))
	w := e.worker("instance-a", clk)
	res := sweepOnce(t, w)
	if res.Deleted != 2 || res.Held != 1 || res.Pending != 1 {
		t.Fatalf("sweep under skew = %+v, want 2 deleted (1 with objects pending), 1 held", res)
	}
	checkDeleted(t, e, stuck) // its legal hold was cleared, then it went
	got := e.reload(skewed.ID)
	if got.Status != StatusDeleting || got.DeletedAt == nil {
		t.Fatalf("recording %s: status %q deleted_at %v; want deleting with deleted_at (objects pending)", skewed.ID, got.Status, got.DeletedAt)
	}
	if err := e.readErr(skewed); !errors.Is(err, storage.ErrKeyDestroyed) {
		t.Fatalf("read of %s: %v, want ErrKeyDestroyed", skewed.ID, err)
	}
	if len(e.objects(skewed)) == 0 {
		t.Fatalf("objects of %s gone before their lock expired", skewed.ID)
	}

	// Later sweeps remove the ciphertext once the store lets them.
	checkFor(t, 30*time.Second, 250*time.Millisecond, func() error {
		sweepOnce(t, w)
		if got := e.reload(skewed.ID); got.Status != meta.StatusDeleted {
			return fmt.Errorf("recording %s still %s", skewed.ID, got.Status)
		}
		return nil
	})
	checkDeleted(t, e, skewed)

	// The held recording's retention has passed on every clock; the hold
	// keeps it, with its Object Lock legal hold on.
	if !time.Now().After(until) {
		t.Fatal("test clock: retention not passed")
	}
	if res := sweepOnce(t, w); res.Held != 1 || res.Deleted != 0 {
		t.Fatalf("sweep with the hold = %+v", res)
	}
	checkIntact(t, e, held)
	checkLegalHold(t, e, blob, cfg.Prefix, held, types.ObjectLockLegalHoldStatusOn)

	// Release: clear the Object Lock hold (as DELETE /v1/legal-holds does),
	// then retention deletes it.
	e.release(hHeld)
	if err := e.st.SetLegalHold(ctx, "default", held.ID, false); err != nil {
		t.Fatal(err)
	}
	checkLegalHold(t, e, blob, cfg.Prefix, held, types.ObjectLockLegalHoldStatusOff)
	if res := sweepOnce(t, w); res.Deleted != 1 || res.Pending != 0 {
		t.Fatalf("sweep after release = %+v, want 1 deleted", res)
	}
	checkDeleted(t, e, held)

	ev := e.deletedEvents()
	for _, rec := range []meta.Recording{skewed, stuck, held} {
		if ev[rec.ID] != 1 {
			t.Errorf("recording %s: %d events, want 1", rec.ID, ev[rec.ID])
		}
	}
}

func checkLegalHold(t testing.TB, e *env, st *s3.Store, prefix string, rec meta.Recording, want types.ObjectLockLegalHoldStatus) {
	t.Helper()
	keys := e.objects(rec)
	if len(keys) == 0 {
		t.Fatalf("recording %s has no objects", rec.ID)
	}
	for _, k := range keys {
		if got := objectLegalHold(t, st, prefix, k); got != want {
			t.Fatalf("%s: legal hold %q, want %q", k, got, want)
		}
	}
}

func objectRetention(t testing.TB, st *s3.Store, prefix, key string) (types.ObjectLockRetentionMode, time.Time) {
	t.Helper()
	out, err := st.Client().GetObjectRetention(context.Background(), &awss3.GetObjectRetentionInput{
		Bucket: aws.String(s3test.LockedBucket), Key: aws.String(prefix + "/" + key),
	})
	if err != nil {
		t.Fatalf("GetObjectRetention(%s): %v", key, err)
	}
	return out.Retention.Mode, aws.ToTime(out.Retention.RetainUntilDate)
}

func objectLegalHold(t testing.TB, st *s3.Store, prefix, key string) types.ObjectLockLegalHoldStatus {
	t.Helper()
	out, err := st.Client().GetObjectLegalHold(context.Background(), &awss3.GetObjectLegalHoldInput{
		Bucket: aws.String(s3test.LockedBucket), Key: aws.String(prefix + "/" + key),
	})
	if err != nil {
		t.Fatalf("GetObjectLegalHold(%s): %v", key, err)
	}
	return out.LegalHold.Status
}
