package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// cli runs a subcommand in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func httpDo(t *testing.T, method, url, token string, body []byte, headers ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// seedRec writes a real encrypted recording and its row.
func seedRec(t *testing.T, g *gatewaytest.Gateway, session string, data []byte, partSize int) meta.Recording {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	g.DB.Create(&meta.Session{TenantID: "default", ID: session, Department: "sales", Status: meta.SessionEnded, StartedAt: now, CreatedAt: now, UpdatedAt: now})
	id := meta.NewID("rec")
	w, err := g.Store.NewWriter(ctx, "default", id, storage.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += partSize {
		if _, err := w.WritePart(ctx, data[off:min(off+partSize, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Close(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	rec := meta.Recording{ID: id, TenantID: "default", SessionID: session, ParticipantID: "agent", Department: "sales",
		Status: meta.StatusComplete, ContentType: "audio/ogg", StartedAt: now, CreatedAt: now, UpdatedAt: now,
		Completeness: meta.NewJSON(map[string]any{"packets_lost": 0.0})}
	m.Apply(&rec)
	if err := g.DB.Create(&rec).Error; err != nil {
		t.Fatal(err)
	}
	return rec
}

func testOgg(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/calls-long.ogg")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokenCreate(t *testing.T) {
	dir := t.TempDir()
	// Without gateway state there is nothing to add a token to.
	if code, _, errOut := cli(t, "token", "create", "--role", "admin", "--data", dir); code != 1 || !strings.Contains(errOut, "custodian serve") {
		t.Fatalf("empty data directory: exit %d %q", code, errOut)
	}
	// Beside a running server on the same data directory.
	cfg := gatewaytest.Config(t)
	cfg.DataDir = dir
	g := gatewaytest.StartConfig(t, cfg)
	code, out, errOut := cli(t, "token", "create", "--role", "admin", "--data", dir, "--name", "ops", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, "cst_") || strings.Count(out, "\n") != 1 || strings.Contains(errOut, tok) {
		t.Fatalf("stdout %q (the token, once), stderr %q (never the token)", out, errOut)
	}
	code, out, _ = cli(t, "token", "create", "--role", "supervisor", "--department", "sales", "--tenant", "acme", "--data", dir)
	if code != 0 || !strings.HasPrefix(out, "cst_") {
		t.Fatalf("supervisor token: %d %q", code, out)
	}
	for _, args := range [][]string{
		{"token", "create", "--data", dir},
		{"token", "create", "--role", "king", "--data", dir},
		{"token", "create", "--role", "admin", "--ttl", "-1h", "--data", dir},
		{"token", "create", "--role", "admin", "extra", "--data", dir},
		{"token", "mint"},
	} {
		if code, _, _ := cli(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := cli(t, "token", "create", "--role", "supervisor", "--data", dir); code != 1 {
		t.Errorf("supervisor without department: exit %d", code)
	}
	if status, body := httpDo(t, "GET", g.URL()+"/v1/tokens", tok, nil); status != 200 || !bytes.Contains(body, []byte(`"name":"ops"`)) {
		t.Fatalf("CLI token against the server: %d %s", status, body)
	}
	var n int64
	g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND actor = ?", "token.create", "cli").Count(&n)
	if n != 2 {
		t.Fatalf("%d token.create audit entries by the CLI", n)
	}
}

func TestAuditVerifyCLI(t *testing.T) {
	g := gatewaytest.Start(t)
	for range 5 {
		httpDo(t, "GET", g.URL()+"/v1/audit", g.AdminToken, nil)
	}
	dir := g.Config.DataDir
	code, out, errOut := cli(t, "audit", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, "audit chain OK: ") {
		t.Fatalf("intact chain: exit %d %s %s", code, out, errOut)
	}
	g.DB.Model(&meta.AuditEntry{}).Where("seq = ?", 3).Update("source", "10.9.9.9")
	code, out, _ = cli(t, "audit", "verify", "--data", dir)
	if code != 1 || !strings.Contains(out, "BROKEN at seq 3: hash_mismatch") {
		t.Fatalf("tampered chain: exit %d %q", code, out)
	}
	code, out, _ = cli(t, "audit", "verify", "--data", dir, "--json")
	var res struct {
		OK          bool  `json:"ok"`
		FirstBadSeq int64 `json:"first_bad_seq"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.OK || res.FirstBadSeq != 3 {
		t.Fatalf("--json: exit %d %q", code, out)
	}
	if code, _, _ := cli(t, "audit", "verify", "--data", dir, "--head-seq", "3"); code != 2 {
		t.Fatalf("--head-seq without --head-hash: exit %d", code)
	}
}

// The media endpoint's ranges equal the same ranges of `custodian
// recording get` run beside the server.
func TestMediaRangesMatchRecordingGet(t *testing.T) {
	g := gatewaytest.Start(t)
	rec := seedRec(t, g, "s1", testOgg(t), 2500)
	out := filepath.Join(t.TempDir(), "rec.ogg")
	if code, _, errOut := cli(t, "recording", "get", rec.ID, "-o", out, "--data", g.Config.DataDir); code != 0 {
		t.Fatalf("recording get: %s", errOut)
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	u := g.URL() + "/v1/recordings/" + rec.ID + "/media"
	for range 50 {
		from := rng.IntN(len(file))
		to := from + rng.IntN(min(len(file)-from, 20000))
		status, body := httpDo(t, "GET", u, g.AdminToken, nil, fmt.Sprintf("Range: bytes=%d-%d", from, to))
		if status != 206 || !bytes.Equal(body, file[from:to+1]) {
			t.Fatalf("bytes=%d-%d: %d, differs from recording get", from, to, status)
		}
	}
}

func TestExportVerifyCLI(t *testing.T) {
	g := gatewaytest.Start(t)
	media := testOgg(t)
	rec := seedRec(t, g, "case-9", media, 9000)
	id, _ := age.GenerateX25519Identity()
	tmp := t.TempDir()
	keyFile := filepath.Join(tmp, "key.txt")
	os.WriteFile(keyFile, []byte("# created: test\n"+id.String()+"\n"), 0o600)

	status, body := httpDo(t, "POST", g.URL()+"/v1/exports", g.AdminToken, []byte(fmt.Sprintf(`{"session_ids":["case-9"],"recipient":%q}`, id.Recipient().String())))
	if status != 202 {
		t.Fatalf("create export: %d %s", status, body)
	}
	var e api.ExportJSON
	json.Unmarshal(body, &e)
	deadline := time.Now().Add(30 * time.Second)
	for e.Status != api.ExportComplete {
		if time.Now().After(deadline) || e.Status == api.ExportFailed {
			t.Fatalf("export: %+v", e)
		}
		time.Sleep(50 * time.Millisecond)
		_, body = httpDo(t, "GET", g.URL()+"/v1/exports/"+e.ID, g.AdminToken, nil)
		json.Unmarshal(body, &e)
	}
	_, bundle := httpDo(t, "GET", g.URL()+e.Links.Download, g.AdminToken, nil)
	bundleFile := filepath.Join(tmp, "bundle.zip.age")
	os.WriteFile(bundleFile, bundle, 0o600)

	extractDir := filepath.Join(tmp, "out")
	code, out, errOut := cli(t, "export", "verify", bundleFile, "--identity", keyFile, "--public-key", e.SigningKey.PublicKey, "--extract", extractDir)
	if code != 0 || !strings.Contains(out, "OK: export "+e.ID) || !strings.Contains(out, "pinned") {
		t.Fatalf("intact bundle: exit %d\n%s\n%s", code, out, errOut)
	}
	got, err := os.ReadFile(filepath.Join(extractDir, "recordings", rec.ID, "media.ogg"))
	if err != nil || !bytes.Equal(got, media) {
		t.Fatalf("extracted media differs: %v", err)
	}

	// Tamper with each file inside (re-encrypted to the same recipient).
	ra, n, err := age.DecryptReaderAt(bytes.NewReader(bundle), int64(len(bundle)), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(io.NewSectionReader(ra, 0, n))
	zr, _ := zip.NewReader(bytes.NewReader(plain), int64(len(plain)))
	for _, f := range zr.File {
		var zbuf bytes.Buffer
		zw := zip.NewWriter(&zbuf)
		for _, g := range zr.File {
			rc, _ := g.Open()
			data, _ := io.ReadAll(rc)
			rc.Close()
			if g.Name == f.Name {
				data = append(data, '\n')
			}
			w, _ := zw.Create(g.Name)
			w.Write(data)
		}
		zw.Close()
		var enc bytes.Buffer
		aw, _ := age.Encrypt(&enc, id.Recipient())
		aw.Write(zbuf.Bytes())
		aw.Close()
		bad := filepath.Join(tmp, "bad.zip.age")
		os.WriteFile(bad, enc.Bytes(), 0o600)
		code, out, _ := cli(t, "export", "verify", bad, "--identity", keyFile)
		if code != 1 || !strings.Contains(out, "FAILED verification") {
			t.Fatalf("bundle with %s changed: exit %d %q", f.Name, code, out)
		}
	}
	// A flipped ciphertext byte and a wrong identity fail too.
	flipped := bytes.Clone(bundle)
	flipped[len(flipped)/2] ^= 1
	os.WriteFile(filepath.Join(tmp, "flipped"), flipped, 0o600)
	if code, _, _ := cli(t, "export", "verify", filepath.Join(tmp, "flipped"), "--identity", keyFile); code != 1 {
		t.Fatalf("flipped ciphertext: exit %d", code)
	}
	other, _ := age.GenerateX25519Identity()
	os.WriteFile(filepath.Join(tmp, "other.txt"), []byte(other.String()+"\n"), 0o600)
	if code, _, _ := cli(t, "export", "verify", bundleFile, "--identity", filepath.Join(tmp, "other.txt")); code != 1 {
		t.Fatalf("wrong identity: exit %d", code)
	}
	if code, _, _ := cli(t, "export", "verify", bundleFile); code != 2 {
		t.Fatalf("no identity: exit %d", code)
	}
}
