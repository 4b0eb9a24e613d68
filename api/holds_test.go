package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/policy/retention"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/s3"
	"github.com/custodian/custodian/storage/s3/s3test"
)

func holdBody(name string, sessions, participants []string) []byte {
	b, _ := json.Marshal(api.HoldRequest{Name: name, Reason: "SEC inquiry", SessionIDs: sessions, ParticipantIDs: participants})
	return b
}

// expire sets a recording's retain_until in the past.
func expire(t testing.TB, g *gatewaytest.Gateway, ids ...string) {
	t.Helper()
	past := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	if err := g.DB.Model(&meta.Recording{}).Where("id IN ?", ids).Update("retain_until", past).Error; err != nil {
		t.Fatal(err)
	}
}

// sweeper is an enforcement worker on the gateway's database and store,
// with its own instance id (a second instance).
func sweeper(t testing.TB, g *gatewaytest.Gateway) *retention.Worker {
	t.Helper()
	w, err := retention.New(g.DB, g.Store, retention.Options{Owner: "test-sweeper"})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sweepNow(t testing.TB, w *retention.Worker) retention.Result {
	t.Helper()
	res, err := w.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func recStatus(t testing.TB, g *gatewaytest.Gateway, id string) string {
	t.Helper()
	var r meta.Recording
	if err := g.DB.Where("id = ?", id).Take(&r).Error; err != nil {
		t.Fatal(err)
	}
	return r.Status
}

func countRows(t testing.TB, g *gatewaytest.Gateway, model any, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := g.DB.Model(model).Where(where, args...).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLegalHolds(t *testing.T) {
	g := start(t)
	url := g.URL() + "/v1/legal-holds"
	compliance, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
	otherTenant, _ := newToken(t, g, "acme", auth.RoleCompliance, "", time.Hour)
	data := make([]byte, 10000)
	rand.Read(data)
	seed := func(tenant, session, participant string) meta.Recording {
		return seedRecording(t, g, recSpec{Tenant: tenant, Dept: "sales", Session: session, Participant: participant, Data: data})
	}
	rec1 := seed("default", "s1", "alice")
	rec2 := seed("default", "s2", "bob")
	rec3 := seed("default", "s3", "alice")
	recOther := seed("acme", "s1", "alice")

	// Create: compliance may; the hold names a session and a participant.
	r := do(t, "POST", url, compliance, holdBody("Matter 1", []string{"s1"}, []string{"alice"}))
	if r.Status != 201 {
		t.Fatalf("POST = %d %s", r.Status, r.Body)
	}
	var hold api.Hold
	r.json(t, &hold)
	if hold.Status != api.HoldActive || hold.Name != "Matter 1" || hold.Reason != "SEC inquiry" || hold.Recordings == nil ||
		hold.Recordings.Kept != 2 || hold.Recordings.Deleted != 0 || r.Header.Get("Location") != "/v1/legal-holds/"+hold.ID ||
		hold.ObjectLock != nil || !strings.HasPrefix(hold.CreatedBy, "token:") {
		t.Fatalf("created hold %+v, Location %q", hold, r.Header.Get("Location"))
	}
	// Admin may too.
	r = do(t, "POST", url, g.AdminToken, holdBody("Matter 2", []string{"s-future"}, nil))
	if r.Status != 201 {
		t.Fatalf("POST as admin = %d %s", r.Status, r.Body)
	}
	var future api.Hold
	r.json(t, &future)

	// Roles without hold permissions get 403 on every route.
	for _, role := range []auth.Role{auth.RoleSupervisor, auth.RoleAuditor, auth.RoleIngest} {
		tok, _ := newToken(t, g, "default", role, "sales", time.Hour)
		do(t, "POST", url, tok, holdBody("x", []string{"s1"}, nil)).problem(t, 403)
		do(t, "GET", url, tok, nil).problem(t, 403)
		do(t, "GET", url+"/"+hold.ID, tok, nil).problem(t, 403)
		do(t, "DELETE", url+"/"+hold.ID, tok, nil).problem(t, 403)
	}
	// Another tenant sees nothing of it.
	do(t, "GET", url+"/"+hold.ID, otherTenant, nil).problem(t, 404)
	do(t, "DELETE", url+"/"+hold.ID, otherTenant, nil).problem(t, 404)
	do(t, "GET", url+"/hold_doesnotexist", compliance, nil).problem(t, 404)
	var list api.HoldList
	r = do(t, "GET", url, otherTenant, nil)
	r.json(t, &list)
	if r.Status != 200 || len(list.Holds) != 0 {
		t.Fatalf("other tenant's list = %d %s", r.Status, r.Body)
	}

	// Bad requests change nothing.
	holdsBefore := countRows(t, g, &meta.LegalHold{}, "1 = 1")
	for _, tt := range []struct {
		body, field string
	}{
		{`{"reason": "x", "session_ids": ["s1"]}`, "name"},
		{`{"name": "x", "session_ids": ["s1"]}`, "reason"},
		{`{"name": "x", "reason": "r"}`, "session_ids"},
		{`{"name": "x", "reason": "r", "session_ids": ["../../etc"]}`, "session_ids"},
		{`{"name": "x", "reason": "r", "session_ids": ["s1"], "color": "red"}`, "color"},
		{`{"name": "x", "reason": "r", "session_ids": "s1"}`, "session_ids"},
	} {
		p := do(t, "POST", url, compliance, []byte(tt.body)).problem(t, 400)
		if len(p.Errors) != 1 || p.Errors[0].Field != tt.field {
			t.Errorf("POST %s: problem %+v, want field %s", tt.body, p, tt.field)
		}
	}
	do(t, "POST", url, compliance, []byte(`{"name":`)).problem(t, 400)
	if n := countRows(t, g, &meta.LegalHold{}, "1 = 1"); n != holdsBefore {
		t.Fatalf("bad requests created holds: %d, before %d", n, holdsBefore)
	}

	// GET one shows what it keeps.
	r = do(t, "GET", url+"/"+hold.ID, compliance, nil)
	var got api.Hold
	r.json(t, &got)
	if r.Status != 200 || got.ID != hold.ID || got.Recordings == nil || got.Recordings.Kept != 2 ||
		strings.Join(got.SessionIDs, ",") != "s1" || strings.Join(got.ParticipantIDs, ",") != "alice" {
		t.Fatalf("GET hold = %d %s", r.Status, r.Body)
	}

	// Expiry: the unheld recording goes, the held ones and the other
	// tenant's stay (the other tenant's is not expired).
	expire(t, g, rec1.ID, rec2.ID, rec3.ID)
	w := sweeper(t, g)
	if res := sweepNow(t, w); res.Deleted != 1 || res.Held != 2 {
		t.Fatalf("sweep = %+v, want 1 deleted, 2 held", res)
	}
	if recStatus(t, g, rec2.ID) != meta.StatusDeleted || recStatus(t, g, rec1.ID) != meta.StatusComplete ||
		recStatus(t, g, rec3.ID) != meta.StatusComplete || recStatus(t, g, recOther.ID) != meta.StatusComplete {
		t.Fatal("the sweep deleted the wrong recordings")
	}
	// Reading the shredded recording answers 410 (key destroyed).
	p := do(t, "GET", g.URL()+"/v1/recordings/"+rec2.ID+"/media", g.AdminToken, nil).problem(t, 410)
	if !strings.Contains(p.Detail, "key destroyed") {
		t.Errorf("410 detail %q", p.Detail)
	}
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+rec1.ID+"/media", g.AdminToken, nil); r.Status != 200 {
		t.Fatalf("held recording media = %d", r.Status)
	}

	// A recording that starts later in a held session is held too.
	if held, err := retention.Held(context.Background(), g.DB, "default", "s-future", "carol"); err != nil || !held {
		t.Fatalf("Held for a future recording = %v, %v", held, err)
	}
	recFuture := seed("default", "s-future", "carol")
	expire(t, g, recFuture.ID)
	if res := sweepNow(t, w); res.Deleted != 0 || res.Held != 3 {
		t.Fatalf("sweep = %+v, want 3 held", res)
	}

	// A hold placed on a deleted recording reports it as deleted.
	r = do(t, "POST", url, compliance, holdBody("Too late", []string{"s2"}, nil))
	var late api.Hold
	r.json(t, &late)
	if r.Status != 201 || late.Recordings.Kept != 0 || late.Recordings.Deleted != 1 || late.Recordings.DeletedIDs[0] != rec2.ID {
		t.Fatalf("hold on a deleted recording = %d %s", r.Status, r.Body)
	}

	// List: newest first, paged with the cursor, filtered by status.
	var all []api.Hold
	next := url + "?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := do(t, "GET", next, compliance, nil)
		var page api.HoldList
		r.json(t, &page)
		if r.Status != 200 || len(page.Holds) > 2 {
			t.Fatalf("list page = %d %s", r.Status, r.Body)
		}
		all = append(all, page.Holds...)
		next = ""
		if page.NextCursor != "" {
			next = url + "?limit=2&cursor=" + page.NextCursor
		}
	}
	if len(all) != 3 || all[0].ID != late.ID || all[2].ID != hold.ID {
		t.Fatalf("listed %d holds: %+v", len(all), all)
	}
	do(t, "GET", url+"?cursor=bogus", compliance, nil).problem(t, 400)
	do(t, "GET", url+"?status=maybe", compliance, nil).problem(t, 400)

	// Release: retention resumes.
	r = do(t, "DELETE", url+"/"+hold.ID, compliance, nil)
	var rel api.Hold
	r.json(t, &rel)
	if r.Status != 200 || rel.Status != api.HoldReleased || rel.ReleasedAt == nil || rel.ReleasedBy == "" {
		t.Fatalf("DELETE = %d %s", r.Status, r.Body)
	}
	r = do(t, "GET", url+"?status=active", compliance, nil)
	r.json(t, &list)
	if len(list.Holds) != 2 {
		t.Fatalf("active holds after release: %d", len(list.Holds))
	}
	// Releasing twice changes nothing.
	if r := do(t, "DELETE", url+"/"+hold.ID, compliance, nil); r.Status != 200 {
		t.Fatalf("second DELETE = %d", r.Status)
	}
	if res := sweepNow(t, w); res.Deleted != 2 || res.Held != 1 {
		t.Fatalf("sweep after release = %+v, want 2 deleted, 1 held", res)
	}
	if recStatus(t, g, rec1.ID) != meta.StatusDeleted || recStatus(t, g, rec3.ID) != meta.StatusDeleted ||
		recStatus(t, g, recFuture.ID) != meta.StatusComplete {
		t.Fatal("release did not let retention resume, or resumed too much")
	}

	// Events and audit entries: one per apply and per release.
	for _, tt := range []struct {
		kind, action string
		want         int64
	}{
		{events.LegalHoldApplied, "legalhold.apply", 3},
		{events.LegalHoldReleased, "legalhold.release", 1},
	} {
		if n := countRows(t, g, &meta.OutboxEvent{}, "kind = ?", tt.kind); n != tt.want {
			t.Errorf("%d %s events, want %d", n, tt.kind, tt.want)
		}
		if n := countRows(t, g, &meta.AuditEntry{}, "action = ? AND outcome = ?", tt.action, "success"); n != tt.want {
			t.Errorf("%d %s audit entries, want %d", n, tt.action, tt.want)
		}
	}
	var ev meta.OutboxEvent
	g.DB.Where("kind = ? AND subject = ?", events.LegalHoldReleased, hold.ID).Take(&ev)
	var hd events.LegalHoldData
	json.Unmarshal(ev.Data, &hd)
	if hd.HoldID != hold.ID || hd.Name != "Matter 1" || strings.Join(hd.SessionIDs, ",") != "s1" || strings.Contains(string(ev.Data), "SEC inquiry") {
		t.Fatalf("legalhold.released event data %s", ev.Data)
	}
	var entry meta.AuditEntry
	g.DB.Where("action = ? AND target = ?", "legalhold.apply", "legalhold:"+hold.ID).Take(&entry)
	if entry.Role != "compliance" || entry.Details.V["reason"] != "SEC inquiry" || entry.Source == "" {
		t.Fatalf("audit entry %+v", entry)
	}
	if n := countRows(t, g, &meta.OutboxEvent{}, "kind = ?", events.RecordingDeleted); n != 3 {
		t.Errorf("%d recording.deleted events, want 3", n)
	}
}

// TestLegalHoldsObjectLock: with s3.object_lock, placing a hold sets the
// Object Lock legal hold on every object of the held recordings, and
// releasing it clears it; against the real S3-compatible server.
func TestLegalHoldsObjectLock(t *testing.T) {
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	prefix := "holds-" + strings.ToLower(meta.NewID("t"))
	g := start(t, func(c *config.Config) {
		c.S3 = config.S3{Bucket: s3test.LockedBucket, Endpoint: srv.Endpoint, Region: s3test.Region,
			ForcePathStyle: true, Prefix: prefix, ObjectLock: s3.ObjectLockCompliance}
	})
	ctx := context.Background()
	compliance, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
	until := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)

	// A recording written with retain-until, as the recorder writes it.
	seedSession(t, g, "default", "sales", "s-lock", nil, "dana")
	id := meta.NewID("rec")
	wr, err := g.Store.NewWriter(ctx, "default", id, storage.WriterOptions{RetainUntil: until})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		part := make([]byte, 2000)
		rand.Read(part)
		if _, err := wr.WritePart(ctx, part); err != nil {
			t.Fatal(err)
		}
	}
	m, err := wr.Close(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ru := until.UTC()
	rec := meta.Recording{ID: id, TenantID: "default", SessionID: "s-lock", ParticipantID: "dana", Department: "sales",
		Status: meta.StatusComplete, ContentType: "audio/ogg", StartedAt: now, EndedAt: &now, RetainUntil: &ru}
	m.Apply(&rec)
	if err := g.DB.Create(&rec).Error; err != nil {
		t.Fatal(err)
	}
	if err := g.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	client := srv.NewStore(t, srv.Config(s3test.LockedBucket)).Client()
	keys, err := g.Blob.List(ctx, storage.RecordingPrefix("default", id))
	if err != nil || len(keys) != 4 {
		t.Fatalf("objects %v, %v", keys, err)
	}
	legalHold := func(key string) types.ObjectLockLegalHoldStatus {
		out, err := client.GetObjectLegalHold(ctx, &awss3.GetObjectLegalHoldInput{
			Bucket: aws.String(s3test.LockedBucket), Key: aws.String(prefix + "/" + key)})
		if err != nil {
			t.Fatalf("GetObjectLegalHold %s: %v", key, err)
		}
		return out.LegalHold.Status
	}
	for _, k := range keys {
		out, err := client.GetObjectRetention(ctx, &awss3.GetObjectRetentionInput{
			Bucket: aws.String(s3test.LockedBucket), Key: aws.String(prefix + "/" + k)})
		if err != nil || !aws.ToTime(out.Retention.RetainUntilDate).Equal(until) {
			t.Fatalf("%s retention %+v, %v; want until %v", k, out, err, until)
		}
	}

	r := do(t, "POST", g.URL()+"/v1/legal-holds", compliance, holdBody("Lock matter", []string{"s-lock"}, nil))
	var hold api.Hold
	r.json(t, &hold)
	if r.Status != 201 || hold.ObjectLock == nil || hold.ObjectLock.Recordings != 1 || hold.ObjectLock.Failed != 0 {
		t.Fatalf("POST = %d %s", r.Status, r.Body)
	}
	for _, k := range keys {
		if st := legalHold(k); st != types.ObjectLockLegalHoldStatusOn {
			t.Fatalf("%s legal hold %s after POST, want ON", k, st)
		}
		if err := g.Blob.Delete(ctx, k); err == nil {
			t.Fatalf("deleting held object %s succeeded", k)
		}
	}

	// Expired and held: kept.
	w := sweeper(t, g)
	checkFor(t, 10*time.Second, 200*time.Millisecond, func() error {
		if time.Now().Before(until) {
			return fmt.Errorf("waiting for retain-until")
		}
		return nil
	})
	if res := sweepNow(t, w); res.Held != 1 || res.Deleted != 0 {
		t.Fatalf("sweep with the hold = %+v", res)
	}

	r = do(t, "DELETE", g.URL()+"/v1/legal-holds/"+hold.ID, compliance, nil)
	var rel api.Hold
	r.json(t, &rel)
	if r.Status != 200 || rel.ObjectLock == nil || rel.ObjectLock.Recordings != 1 {
		t.Fatalf("DELETE = %d %s", r.Status, r.Body)
	}
	for _, k := range keys {
		if st := legalHold(k); st != types.ObjectLockLegalHoldStatusOff {
			t.Fatalf("%s legal hold %s after release, want OFF", k, st)
		}
	}
	// Released and expired: retention deletes it, objects and all.
	if res := sweepNow(t, w); res.Deleted != 1 || res.Pending != 0 {
		t.Fatalf("sweep after release = %+v", res)
	}
	if recStatus(t, g, id) != meta.StatusDeleted {
		t.Fatal("not deleted")
	}
	if left, err := g.Blob.List(ctx, storage.RecordingPrefix("default", id)); err != nil || len(left) != 0 {
		t.Fatalf("objects left: %v, %v", left, err)
	}
}

// TestRetentionAcrossInstances: two gateways of one deployment
// (PostgreSQL, NATS, S3) run their enforcement workers every 200 ms
// against the same expired recordings: each is deleted once, with one
// tombstone, one audit entry and one recording.deleted event, published
// to NATS once; the held and the unexpired recordings stay.
func TestRetentionAcrossInstances(t *testing.T) {
	if metatest.PostgresDSN(t) == "" {
		t.Skipf("%s not set", metatest.PostgresEnv)
	}
	srv := s3test.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	prefix := "multi-" + strings.ToLower(meta.NewID("t"))
	a, b := twoInstances(t, func(c *config.Config) {
		c.S3 = config.S3{Bucket: s3test.Bucket, Endpoint: srv.Endpoint, Region: s3test.Region, ForcePathStyle: true, Prefix: prefix}
		c.Retention.Interval = 200 * time.Millisecond
	})
	ctx := context.Background()
	data := make([]byte, 9000)
	rand.Read(data)
	seed := func(session, participant string) meta.Recording {
		return seedRecording(t, a, recSpec{Tenant: "default", Dept: "sales", Session: session, Participant: participant, Data: data})
	}
	const n = 16
	var expired []meta.Recording
	for i := range n {
		expired = append(expired, seed(fmt.Sprintf("m-%d", i%4), fmt.Sprintf("p%d", i)))
	}
	held := seed("m-held", "ph")
	keep := seed("m-keep", "pk")
	if err := a.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := do(t, "POST", b.URL()+"/v1/legal-holds", a.AdminToken, holdBody("keep", []string{"m-held"}, nil))
	if r.Status != 201 {
		t.Fatalf("POST hold on B = %d %s", r.Status, r.Body)
	}
	var ids []string
	for _, rec := range append(expired, held) {
		ids = append(ids, rec.ID)
	}
	// All expire at once (one UPDATE): both instances' workers race for them.
	expire(t, a, ids...)
	checkFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		if c := countRows(t, a, &meta.Recording{}, "status = ?", meta.StatusDeleted); c != n {
			return fmt.Errorf("%d of %d deleted", c, n)
		}
		return nil
	})
	time.Sleep(3 * 200 * time.Millisecond) // a few more sweeps on both: nothing more may happen
	byInstance := map[string]int{}
	for _, rec := range expired {
		if c := countRows(t, a, &meta.OutboxEvent{}, "kind = ? AND subject = ?", events.RecordingDeleted, rec.ID); c != 1 {
			t.Errorf("recording %s: %d recording.deleted events, want 1", rec.ID, c)
		}
		var entries []meta.AuditEntry
		a.DB.Where("action = ? AND target = ?", "retention.delete", "recording:"+rec.ID).Find(&entries)
		if len(entries) != 1 {
			t.Errorf("recording %s: %d audit entries, want 1", rec.ID, len(entries))
			continue
		}
		if entries[0].Actor != retention.Actor {
			t.Errorf("audit actor %q", entries[0].Actor)
		}
		inst, _ := entries[0].Details.V["instance"].(string)
		byInstance[inst]++
		if left, err := a.Blob.List(ctx, storage.RecordingPrefix("default", rec.ID)); err != nil || len(left) != 0 {
			t.Errorf("recording %s: objects left %v, %v", rec.ID, left, err)
		}
	}
	t.Logf("deletions by instance: %v (A %s, B %s)", byInstance, a.InstanceID, b.InstanceID)
	checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		if got := metricValue(t, a, "custodian_retention_deleted_total") + metricValue(t, b, "custodian_retention_deleted_total"); got != n {
			return fmt.Errorf("custodian_retention_deleted_total on A and B add up to %v, want %d", got, n)
		}
		return nil
	})
	for _, rec := range []meta.Recording{held, keep} {
		if st := recStatus(t, a, rec.ID); st != meta.StatusComplete {
			t.Fatalf("recording %s is %s, want kept", rec.ID, st)
		}
	}
	if r := do(t, "GET", b.URL()+"/v1/recordings/"+held.ID+"/media", a.AdminToken, nil); r.Status != 200 || len(r.Body) != len(data) {
		t.Fatalf("held recording media through B = %d, %d bytes: %.300s", r.Status, len(r.Body), r.Body)
	}
	// Published to NATS exactly once each (Nats-Msg-Id deduplicates too).
	subject := events.Subject("default", events.RecordingDeleted)
	checkFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		st, err := a.JS.Stream(ctx, events.StreamName)
		if err != nil {
			return err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return err
		}
		if got := info.State.Subjects[subject]; got != n {
			return fmt.Errorf("%d messages on %s, want %d", got, subject, n)
		}
		return nil
	})
}

// metricValue reads an unlabelled metric from a gateway's /metrics.
func metricValue(t testing.TB, g *gatewaytest.Gateway, name string) float64 {
	t.Helper()
	r := do(t, "GET", g.URL()+"/metrics", "", nil)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("metric %s not in /metrics", name)
	return 0
}
