package retention

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/spool"
)

// testClock is a controllable Clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is a real Store (local keyring, spool, a blob back end) on a real
// database.
type env struct {
	t    testing.TB
	db   *gorm.DB
	blob storage.Blob
	st   *storage.Store
}

// newEnv builds a Store on db with blob (nil: the disk store under a
// temporary directory).
func newEnv(t testing.TB, db *gorm.DB, blob storage.Blob) *env {
	t.Helper()
	dir := t.TempDir()
	if blob == nil {
		d, err := disk.New(filepath.Join(dir, "objects"))
		if err != nil {
			t.Fatal(err)
		}
		blob = d
	}
	kr, _, err := keyring.OpenOrCreate(filepath.Join(dir, "keys", "keyring.json"), false)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st := storage.New(db, blob, kr, sp, storage.Options{Provider: "local"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st.Close(ctx)
	})
	return &env{t: t, db: db, blob: blob, st: st}
}

func (e *env) worker(owner string, clk *testClock, mod ...func(*Options)) *Worker {
	e.t.Helper()
	o := Options{Owner: owner, Clock: clk.Now}
	for _, m := range mod {
		m(&o)
	}
	w, err := New(e.db, e.st, o)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// recOpts describe a recording to create.
type recOpts struct {
	tenant, session, participant string
	status                       string     // default complete
	retainUntil                  *time.Time // nil: none
	objectRetainUntil            time.Time  // WriterOptions.RetainUntil
	legalHold                    bool       // WriterOptions.LegalHold
	transcript                   bool
	transcriptRetainUntil        *time.Time // default: retainUntil
}

// record writes a real recording of three parts (NewWriter, WritePart,
// Close), uploads it, and stores its row with the manifest applied.
func (e *env) record(o recOpts) meta.Recording {
	e.t.Helper()
	ctx := context.Background()
	if o.tenant == "" {
		o.tenant = "default"
	}
	if o.status == "" {
		o.status = meta.StatusComplete
	}
	id := meta.NewID("rec")
	w, err := e.st.NewWriter(ctx, o.tenant, id, storage.WriterOptions{RetainUntil: o.objectRetainUntil, LegalHold: o.legalHold})
	if err != nil {
		e.t.Fatal(err)
	}
	for range 3 {
		part := make([]byte, 1000)
		rand.Read(part)
		if _, err := w.WritePart(ctx, part); err != nil {
			e.t.Fatal(err)
		}
	}
	m, err := w.Close(ctx, o.status == meta.StatusComplete)
	if err != nil {
		e.t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)
	end := start.Add(30 * time.Second)
	rec := meta.Recording{
		ID: id, TenantID: o.tenant, SessionID: o.session, ParticipantID: o.participant,
		Department: "sales", Status: o.status, ContentType: "audio/ogg", Codecs: meta.NewJSON([]string{"opus"}),
		StartedAt: start, EndedAt: &end, DurationMS: 30000, RetainUntil: o.retainUntil,
	}
	m.Apply(&rec)
	if err := e.db.Create(&rec).Error; err != nil {
		e.t.Fatal(err)
	}
	if o.transcript {
		info, err := e.st.PutObject(ctx, o.tenant, id, "transcript", []byte(`{"segments":[{"text":"secret words"}]}`),
			storage.PutOptions{RetainUntil: o.objectRetainUntil, LegalHold: o.legalHold})
		if err != nil {
			e.t.Fatal(err)
		}
		tru := o.transcriptRetainUntil
		if tru == nil {
			tru = o.retainUntil
		}
		tr := meta.Transcript{
			RecordingID: id, TenantID: o.tenant, SessionID: o.session, ParticipantID: o.participant,
			Department: "sales", Status: meta.TranscriptCompleted, Engine: "test", ObjectKey: info.Key,
			CipherSHA256: info.CipherSHA256, RetainUntil: tru,
		}
		if err := e.db.Create(&tr).Error; err != nil {
			e.t.Fatal(err)
		}
	}
	e.flush()
	return rec
}

func (e *env) flush() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.st.Flush(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) reload(id string) meta.Recording {
	e.t.Helper()
	var r meta.Recording
	if err := e.db.Where("id = ?", id).Take(&r).Error; err != nil {
		e.t.Fatal(err)
	}
	return r
}

// objects lists the recording's objects in the blob store.
func (e *env) objects(rec meta.Recording) []string {
	e.t.Helper()
	keys, err := e.blob.List(context.Background(), storage.RecordingPrefix(rec.TenantID, rec.ID))
	if err != nil {
		e.t.Fatal(err)
	}
	return keys
}

// readable reports whether the recording can be opened and verified.
func (e *env) readErr(rec meta.Recording) error {
	ctx := context.Background()
	r, err := e.st.Open(ctx, rec.TenantID, rec.ID, storage.ReadOptions{AllowIncomplete: true})
	if err != nil {
		return err
	}
	defer r.Close()
	return r.Verify(ctx, nil)
}

// hold inserts an active hold the way the API does (LockCovered in the
// same transaction) and returns it with the recordings reported lost.
func (e *env) hold(tenant string, sessions, participants []string) (meta.LegalHold, []string) {
	e.t.Helper()
	h, err := NewHold(HoldSpec{Tenant: tenant, Name: "matter", Reason: "test", SessionIDs: sessions, ParticipantIDs: participants, CreatedBy: "test"}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	var lost []string
	err = e.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&h).Error; err != nil {
			return err
		}
		recs, err := LockCovered(tx, &h, time.Now())
		for _, r := range recs {
			if Lost(&r) {
				lost = append(lost, r.ID)
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return h, lost
}

func (e *env) release(h meta.LegalHold) {
	e.t.Helper()
	now := time.Now().UTC()
	if err := e.db.Model(&meta.LegalHold{}).Where("id = ?", h.ID).
		Updates(map[string]any{"released_at": now, "released_by": "test"}).Error; err != nil {
		e.t.Fatal(err)
	}
}

// deletedEvents counts recording.deleted outbox rows per recording id.
func (e *env) deletedEvents() map[string]int {
	e.t.Helper()
	var rows []meta.OutboxEvent
	if err := e.db.Where("kind = ?", events.RecordingDeleted).Find(&rows).Error; err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Subject]++
	}
	return out
}

// auditEntries counts retention.delete audit entries per target.
func (e *env) auditEntries() map[string]int {
	e.t.Helper()
	var rows []meta.AuditEntry
	if err := e.db.Where("action = ?", "retention.delete").Find(&rows).Error; err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		if r.Actor != Actor {
			e.t.Errorf("audit entry %d actor %q, want %q", r.Seq, r.Actor, Actor)
		}
		out[r.Target]++
	}
	return out
}

func ptr(t time.Time) *time.Time { t = t.UTC().Truncate(time.Microsecond); return &t }

func sweepOnce(t testing.TB, w *Worker) Result {
	t.Helper()
	res, err := w.Sweep(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	return res
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

func sessionName(i int) string { return fmt.Sprintf("sess-%03d", i) }
