package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
)

// eachDB runs fn against a gateway on SQLite and, when configured, on
// PostgreSQL.
func eachDB(t *testing.T, fn func(t *testing.T, g *gatewaytest.Gateway)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, start(t)) })
	t.Run("postgres", func(t *testing.T) {
		dsn := metatest.PostgresDSN(t)
		if dsn == "" {
			t.Skip(metatest.PostgresEnv + " not set")
		}
		fn(t, start(t, func(c *config.Config) { c.Database.DSN = dsn }))
	})
}

func listIDs(t *testing.T, g *gatewaytest.Gateway, token, query string) ([]string, int) {
	t.Helper()
	var ids []string
	pages := 0
	cursor := ""
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		r := do(t, "GET", g.URL()+"/v1/recordings?"+q, token, nil)
		if r.Status != 200 {
			t.Fatalf("list %s: %d %s", q, r.Status, r.Body)
		}
		var l api.RecordingList
		r.json(t, &l)
		pages++
		for _, rec := range l.Recordings {
			ids = append(ids, rec.ID)
		}
		if l.NextCursor == "" {
			return ids, pages
		}
		cursor = l.NextCursor
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
	}
}

func TestListRecordings(t *testing.T) {
	eachDB(t, func(t *testing.T, g *gatewaytest.Gateway) {
		data := []byte("OggS not really but bytes")
		var sales, support, other []string
		for i := range 5 {
			r := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-sales-" + strconv.Itoa(i%2), Participant: "agent-" + strconv.Itoa(i), Data: data})
			sales = append(sales, r.ID)
		}
		for i := range 3 {
			r := seedRecording(t, g, recSpec{Tenant: "default", Dept: "support", Session: "s-support", Participant: "p" + strconv.Itoa(i), Data: data, Status: meta.StatusFailed})
			support = append(support, r.ID)
		}
		for range 2 {
			r := seedRecording(t, g, recSpec{Tenant: "acme", Dept: "sales", Session: "s-sales-0", Participant: "agent-0", Data: data})
			other = append(other, r.ID)
		}
		// A session whose policy lets only supervisors read it.
		restricted := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s-restricted", Participant: "x", Data: data,
			Decision: &policy.Decision{Rule: "r", Record: policy.RecordRequired, Access: policy.Access{Roles: []string{"supervisor"}}}})
		all := append(append(slices.Clone(sales), support...), restricted.ID)
		slices.Sort(all)
		slices.Reverse(all)

		admin := g.AdminToken
		comp, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
		sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)

		got, pages := listIDs(t, g, admin, "limit=3")
		if !slices.Equal(got, all) || pages != 3 {
			t.Fatalf("admin pages=%d got %v, want %v (newest first)", pages, got, all)
		}
		got, _ = listIDs(t, g, comp, "limit=2")
		want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == restricted.ID })
		if !slices.Equal(got, want) {
			t.Fatalf("compliance (policy access excludes it): got %v, want %v", got, want)
		}
		got, _ = listIDs(t, g, sup, "limit=1")
		wantSup := append(slices.Clone(sales), restricted.ID)
		slices.Sort(wantSup)
		slices.Reverse(wantSup)
		if !slices.Equal(got, wantSup) {
			t.Fatalf("supervisor of sales: got %v, want %v", got, wantSup)
		}
		for _, id := range got {
			if slices.Contains(other, id) || slices.Contains(support, id) {
				t.Fatalf("out of scope recording %s listed", id)
			}
		}
		// Filters.
		for _, tt := range []struct {
			q    string
			want int
		}{
			{"session_id=s-sales-0", 3}, {"session_id=s-support", 3}, {"participant_id=agent-3", 1},
			{"department=support", 3}, {"status=failed", 3}, {"status=complete&department=sales", 6},
			{"from=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), 9},
			{"to=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), 0},
			{"session_id=nope", 0},
		} {
			got, _ := listIDs(t, g, admin, tt.q+"&limit=2")
			if len(got) != tt.want {
				t.Errorf("filter %s: %d recordings, want %d", tt.q, len(got), tt.want)
			}
		}
		got, _ = listIDs(t, g, sup, "department=support")
		if len(got) != 0 {
			t.Errorf("supervisor filtering another department got %v", got)
		}
		// Bad input.
		for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=zzz", "cursor=" + api.EncodeCursor("tokens", "tok_1"),
			"status=weird", "from=yesterday", "session_id=../etc", "sesion_id=x", "limit=1&limit=2",
			"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"} {
			r := do(t, "GET", g.URL()+"/v1/recordings?"+q, admin, nil)
			r.problem(t, 400)
		}
	})
}

func TestGetRecording(t *testing.T) {
	g := start(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "agent", Data: bytes.Repeat([]byte("x"), 10000)})
	seedTranscript(t, g, rec, sampleTranscript("Agent", 100, "hello there"))
	now := time.Now().UTC()
	hold := meta.LegalHold{ID: meta.NewID("hold"), TenantID: "default", Name: "case", SessionIDs: meta.NewJSON([]string{"s1"}), CreatedAt: now}
	if err := g.DB.Create(&hold).Error; err != nil {
		t.Fatal(err)
	}
	r := do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID, g.AdminToken, nil)
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	var got api.RecordingJSON
	r.json(t, &got)
	if got.ID != rec.ID || got.Parts != 3 || got.Size != 10000 || got.ManifestSHA256 != rec.ManifestSHA256 ||
		got.Completeness["packets_lost"] != 2.0 || got.Transcript == nil || got.Transcript.Status != meta.TranscriptCompleted ||
		!got.Retention.LegalHold || got.Retention.LegalHolds[0] != hold.ID || got.Retention.RetainUntil == nil ||
		got.Links.Media != "/v1/recordings/"+rec.ID+"/media" {
		t.Fatalf("detail: %s", r.Body)
	}
	do(t, "GET", g.URL()+"/v1/recordings/rec_doesnotexist", g.AdminToken, nil).problem(t, 404)
	do(t, "GET", g.URL()+"/v1/recordings/..%2f..%2fetc", g.AdminToken, nil).problem(t, 400)
	do(t, "GET", g.URL()+"/v1/recordings/.hidden", g.AdminToken, nil).problem(t, 400)
}

// oggParts splits data into n-byte parts.
func longOgg(t testing.TB) []byte { return readTestdata(t, "calls-long.ogg") }

func TestMediaRange(t *testing.T) {
	g := start(t)
	data := longOgg(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "agent", Data: data, PartSize: 3001})
	if rec.Parts < 40 {
		t.Fatalf("want a many-part recording, got %d parts", rec.Parts)
	}
	u := g.URL() + "/v1/recordings/" + rec.ID + "/media"
	full := do(t, "GET", u, g.AdminToken, nil)
	if full.Status != 200 || !bytes.Equal(full.Body, data) {
		t.Fatalf("full GET: %d, %d bytes (want %d)", full.Status, len(full.Body), len(data))
	}
	h := full.Header
	if h.Get("Content-Type") != "audio/ogg" || h.Get("Accept-Ranges") != "bytes" || h.Get("Content-Length") != strconv.Itoa(len(data)) ||
		h.Get("ETag") != `"`+rec.ManifestSHA256+`"` || !strings.Contains(h.Get("Cache-Control"), "no-store") {
		t.Fatalf("headers %v", h)
	}
	// Random ranges equal the same ranges of the plaintext.
	rng := rand.New(rand.NewPCG(7, 9))
	size := int64(len(data))
	for i := range 120 {
		from := rng.Int64N(size)
		to := from + rng.Int64N(min(size-from, 40000))
		spec := fmt.Sprintf("bytes=%d-%d", from, to)
		switch i % 6 {
		case 4: // open-ended
			to, spec = size-1, fmt.Sprintf("bytes=%d-", from)
		case 5: // suffix
			n := rng.Int64N(size) + 1
			from, to, spec = size-n, size-1, fmt.Sprintf("bytes=-%d", n)
		}
		r := do(t, "GET", u, g.AdminToken, nil, "Range: "+spec)
		if r.Status != 206 || !bytes.Equal(r.Body, data[from:to+1]) {
			t.Fatalf("%s: status %d, %d bytes, equal=%v", spec, r.Status, len(r.Body), bytes.Equal(r.Body, data[from:to+1]))
		}
		if cr := r.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", from, to, size) {
			t.Fatalf("%s: Content-Range %q", spec, cr)
		}
	}
	// Unsatisfiable ranges.
	for _, spec := range []string{fmt.Sprintf("bytes=%d-", size), fmt.Sprintf("bytes=%d-%d", size+10, size+20)} {
		r := do(t, "GET", u, g.AdminToken, nil, "Range: "+spec)
		if r.Status != 416 || r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Fatalf("%s: %d %v", spec, r.Status, r.Header)
		}
	}
	// Multi-range.
	r := do(t, "GET", u, g.AdminToken, nil, "Range: bytes=0-9,100-109")
	if r.Status != 206 || !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(r.Body, data[100:110]) || !bytes.Contains(r.Body, data[0:10]) {
		t.Fatalf("multi-range: %d %v", r.Status, r.Header)
	}
	// Conditional requests.
	r = do(t, "GET", u, g.AdminToken, nil, "If-None-Match: "+h.Get("ETag"))
	if r.Status != 304 {
		t.Fatalf("If-None-Match: %d", r.Status)
	}
	r = do(t, "GET", u, g.AdminToken, nil, "Range: bytes=0-9", `If-Range: "other"`)
	if r.Status != 200 || len(r.Body) != len(data) {
		t.Fatalf("If-Range mismatch must send everything: %d", r.Status)
	}
	r = do(t, "HEAD", u, g.AdminToken, nil)
	if r.Status != 200 || len(r.Body) != 0 || r.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD: %d %v", r.Status, r.Header)
	}
	// Every read was audited before it was answered.
	var n int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND target = ?", "media.read", "recording:"+rec.ID).Count(&n)
	if n < 120 {
		t.Fatalf("%d media.read audit entries", n)
	}
}

func TestMediaFFprobe(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	g := start(t)
	data := longOgg(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "agent", Data: data, PartSize: 8000})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-headers", "Authorization: Bearer "+g.AdminToken+"\r\n",
		"-show_entries", "format=format_name,duration:stream=codec_name,sample_rate,channels", "-of", "json",
		g.URL()+"/v1/recordings/"+rec.ID+"/media").CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v\n%s", err, out)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Channels  int    `json:"channels"`
		} `json:"streams"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dur, _ := strconv.ParseFloat(res.Format.Duration, 64)
	if res.Format.FormatName != "ogg" || len(res.Streams) != 1 || res.Streams[0].CodecName != "opus" || dur < 30 || dur > 60 {
		t.Fatalf("ffprobe saw %s", out)
	}
	// Without the token ffprobe is refused.
	if out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", g.URL()+"/v1/recordings/"+rec.ID+"/media").CombinedOutput(); err == nil {
		t.Fatalf("ffprobe without a token succeeded: %s", out)
	}
}

func TestMediaStates(t *testing.T) {
	g := start(t)
	data := longOgg(t)[:20000]
	ctx := context.Background()
	// A recovered (incomplete) recording is playable.
	recovered := seedRecording(t, g, recSpec{Tenant: "default", Dept: "d", Session: "s1", Participant: "a", Data: data, Status: meta.StatusRecovered})
	r := do(t, "GET", g.URL()+"/v1/recordings/"+recovered.ID+"/media", g.AdminToken, nil)
	if r.Status != 200 || !bytes.Equal(r.Body, data) {
		t.Fatalf("recovered recording: %d", r.Status)
	}
	// Still being written: 409.
	live := seedRecording(t, g, recSpec{Tenant: "default", Dept: "d", Session: "s1", Participant: "b", Data: data})
	g.DB.Model(&meta.Recording{}).Where("id = ?", live.ID).Update("status", meta.StatusRecording)
	do(t, "GET", g.URL()+"/v1/recordings/"+live.ID+"/media", g.AdminToken, nil).problem(t, 409)
	// Shredded key: 410 key destroyed, both before and after the row is
	// tombstoned.
	shred := seedRecording(t, g, recSpec{Tenant: "default", Dept: "d", Session: "s1", Participant: "c", Data: data})
	// Played first, so its opened Reader (with the data key) is cached.
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+shred.ID+"/media", g.AdminToken, nil, "Range: bytes=0-99"); r.Status != 206 {
		t.Fatalf("before shredding: %d", r.Status)
	}
	if err := g.Store.Shred(ctx, "default", shred.ID); err != nil {
		t.Fatal(err)
	}
	p := do(t, "GET", g.URL()+"/v1/recordings/"+shred.ID+"/media", g.AdminToken, nil).problem(t, 410)
	if !strings.Contains(p.Detail, "key destroyed") {
		t.Fatalf("detail %q", p.Detail)
	}
	g.DB.Model(&meta.Recording{}).Where("id = ?", shred.ID).Update("status", meta.StatusDeleted)
	p = do(t, "GET", g.URL()+"/v1/recordings/"+shred.ID+"/media", g.AdminToken, nil).problem(t, 410)
	if !strings.Contains(p.Detail, "key destroyed") {
		t.Fatalf("detail %q", p.Detail)
	}
	// A tampered part fails the integrity check: the stream is cut, never
	// wrong bytes.
	bad := seedRecording(t, g, recSpec{Tenant: "default", Dept: "d", Session: "s1", Participant: "e", Data: data, PartSize: 5000})
	if err := g.Store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	key := storage.PartKey("default", bad.ID, 2)
	sealed, err := g.Blob.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)-5] ^= 1
	g.Blob.Put(ctx, key, sealed, storage.PutOptions{})
	req, _ := http.NewRequest("GET", g.URL()+"/v1/recordings/"+bad.ID+"/media", nil)
	req.Header.Set("Authorization", "Bearer "+g.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, rerr := buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if rerr == nil && buf.Len() == len(data) {
		t.Fatal("tampered recording streamed completely")
	}
	if !bytes.Equal(buf.Bytes(), data[:buf.Len()]) || buf.Len() > 10000 {
		t.Fatalf("tampered part's bytes were sent: %d bytes", buf.Len())
	}
}

// A participant-level policy decision (stored on the recording) governs
// who may read that participant's recording, even when the session's
// decision would allow more.
func TestParticipantDecisionGovernsAccess(t *testing.T) {
	g := start(t)
	data := []byte("OggS not really but bytes")
	open := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "mixed", Participant: "agent", Data: data})
	customer := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "mixed", Participant: "customer", Data: data,
		OwnDecision: &policy.Decision{Rule: "customers", Record: policy.RecordRequired, Access: policy.Access{Roles: []string{"compliance"}}}})
	sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)
	comp, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)

	got, _ := listIDs(t, g, sup, "session_id=mixed")
	if !slices.Equal(got, []string{open.ID}) {
		t.Fatalf("supervisor lists %v, want only %s", got, open.ID)
	}
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+customer.ID, sup, nil); r.Status != 404 {
		t.Fatalf("supervisor GET of the customer's recording = %d, want 404", r.Status)
	}
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+customer.ID+"/media", sup, nil); r.Status != 404 {
		t.Fatalf("supervisor media of the customer's recording = %d, want 404", r.Status)
	}
	got, _ = listIDs(t, g, comp, "session_id=mixed")
	if len(got) != 2 {
		t.Fatalf("compliance lists %v, want both", got)
	}
	if r := do(t, "GET", g.URL()+"/v1/recordings/"+customer.ID, comp, nil); r.Status != 200 {
		t.Fatalf("compliance GET = %d", r.Status)
	}
}
