package api_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/export"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
)

// waitExport polls an export until it is complete or failed.
func waitExport(t *testing.T, g *gatewaytest.Gateway, token, id string) api.ExportJSON {
	t.Helper()
	var e api.ExportJSON
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		r := do(t, "GET", g.URL()+"/v1/exports/"+id, token, nil)
		if r.Status != 200 {
			t.Fatalf("export status: %d %s", r.Status, r.Body)
		}
		r.json(t, &e)
		if e.Status == api.ExportComplete || e.Status == api.ExportFailed {
			return nil
		}
		return fmt.Errorf("export %s is %s (%.0f%%)", id, e.Status, e.Progress*100)
	})
	return e
}

// openBundle decrypts a bundle and returns its zip and plaintext.
func openBundle(t *testing.T, enc []byte, id age.Identity) (*zip.Reader, []byte) {
	t.Helper()
	ra, n, err := export.Open(bytes.NewReader(enc), int64(len(enc)), id)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(io.NewSectionReader(ra, 0, n))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(plain), int64(len(plain)))
	if err != nil {
		t.Fatal(err)
	}
	return zr, plain
}

func zipFile(t *testing.T, zr *zip.Reader, name string) []byte {
	t.Helper()
	rc, err := zr.Open(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

func TestExportRoundTrip(t *testing.T) {
	g := start(t)
	media := longOgg(t)
	a := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "case-1", Participant: "agent", Data: media, PartSize: 7000, StartOffsetMS: 1000})
	b := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "case-1", Participant: "cust", Data: media[:30000]})
	gone := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "case-1", Participant: "gone", Data: media[:5000]})
	seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "case-2", Participant: "agent", Data: media[:100]})
	seedTranscript(t, g, a, sampleTranscript("Agent", 1500, "this call is recorded"))
	g.Store.Shred(context.Background(), "default", gone.ID)
	g.DB.Model(&meta.Recording{}).Where("id = ?", gone.ID).Update("status", meta.StatusDeleted)

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	comp, _ := newToken(t, g, "default", auth.RoleCompliance, "", time.Hour)
	body := fmt.Sprintf(`{"session_ids":["case-1"],"recipient":%q,"name":"matter 42"}`, id.Recipient().String())
	r := do(t, "POST", g.URL()+"/v1/exports", comp, []byte(body))
	if r.Status != 202 || !strings.HasPrefix(r.Header.Get("Location"), "/v1/exports/exp_") {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var created api.ExportJSON
	r.json(t, &created)
	if created.Recordings != 3 || created.Name != "matter 42" || created.Recipient != id.Recipient().String() {
		t.Fatalf("created: %s", r.Body)
	}
	e := waitExport(t, g, comp, created.ID)
	if e.Status != api.ExportComplete || e.Progress != 1 || e.Size == 0 || len(e.SHA256) != 64 || e.Links.Download == "" || e.SigningKey == nil {
		t.Fatalf("finished export: %+v", e)
	}
	// Another tenant cannot see it; a supervisor may not.
	acme, _ := newToken(t, g, "acme", auth.RoleAdmin, "", time.Hour)
	do(t, "GET", g.URL()+"/v1/exports/"+e.ID, acme, nil).problem(t, 404)
	do(t, "GET", g.URL()+"/v1/exports/"+e.ID+"/download", acme, nil).problem(t, 404)
	sup, _ := newToken(t, g, "default", auth.RoleSupervisor, "sales", time.Hour)
	do(t, "GET", g.URL()+"/v1/exports/"+e.ID+"/download", sup, nil).problem(t, 403)

	dl := do(t, "GET", g.URL()+e.Links.Download, comp, nil)
	if dl.Status != 200 || int64(len(dl.Body)) != e.Size || dl.Header.Get("Content-Type") != "application/octet-stream" ||
		!strings.Contains(dl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d, %d bytes, %v", dl.Status, len(dl.Body), dl.Header)
	}
	// Ranges of the bundle too (resumable downloads).
	part := do(t, "GET", g.URL()+e.Links.Download, comp, nil, "Range: bytes=100-199")
	if part.Status != 206 || !bytes.Equal(part.Body, dl.Body[100:200]) {
		t.Fatalf("bundle range: %d", part.Status)
	}
	// The bundle at rest is ciphertext: no recording bytes in it.
	if bytes.Contains(dl.Body, media[1000:1100]) {
		t.Fatal("bundle holds plaintext media")
	}

	zr, plain := openBundle(t, dl.Body, id)
	pub, _ := base64.StdEncoding.DecodeString(e.SigningKey.PublicKey)
	res, err := export.Verify(zr, export.VerifyOptions{PublicKey: ed25519.PublicKey(pub)})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	m := res.Manifest
	if m.ExportID != e.ID || m.Tenant != "default" || len(m.Recordings) != 3 || m.KeyID != e.SigningKey.KeyID ||
		len(m.Omitted) != 1 || m.Omitted[0].RecordingID != gone.ID || m.Omitted[0].Reason != "key destroyed" {
		t.Fatalf("manifest: %+v", m)
	}
	if got := zipFile(t, zr, "recordings/"+a.ID+"/media.ogg"); !bytes.Equal(got, media) {
		t.Fatal("exported media differs from the recording")
	}
	if got := zipFile(t, zr, "recordings/"+b.ID+"/media.ogg"); !bytes.Equal(got, media[:30000]) {
		t.Fatal("exported media of b differs")
	}
	var tr transcribe.Transcript
	json.Unmarshal(zipFile(t, zr, "recordings/"+a.ID+"/transcript.json"), &tr)
	if tr.RecordingID != a.ID || tr.Segments[0].Text != "this call is recorded" {
		t.Fatalf("transcript.json: %+v", tr)
	}
	if vtt := string(zipFile(t, zr, "recordings/"+a.ID+"/transcript.vtt")); !strings.Contains(vtt, "00:00:00.500 --> ") {
		t.Fatalf("transcript.vtt: %q", vtt)
	}
	var comp2 map[string]any
	json.Unmarshal(zipFile(t, zr, "recordings/"+b.ID+"/completeness.json"), &comp2)
	if comp2["packets_lost"] != 2.0 {
		t.Fatalf("completeness.json: %v", comp2)
	}

	// Tampering with any file of the bundle fails verification.
	for _, f := range zr.File {
		tampered := rezip(t, plain, f.Name)
		zt, err := zip.NewReader(bytes.NewReader(tampered), int64(len(tampered)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := export.Verify(zt, export.VerifyOptions{}); err == nil {
			t.Fatalf("bundle with %s changed passed verification", f.Name)
		}
	}
	// The wrong identity cannot open it.
	other, _ := age.GenerateX25519Identity()
	if _, _, err := export.Open(bytes.NewReader(dl.Body), int64(len(dl.Body)), other); err == nil {
		t.Fatal("opened with another identity")
	}
	// The export is audited: creation and download.
	for _, action := range []string{"export.create", "export.download"} {
		var n int64
		g.DB.Model(&meta.AuditEntry{}).Where("action = ? AND target = ? AND outcome = ?", action, "export:"+e.ID, "success").Count(&n)
		if n == 0 {
			t.Errorf("no %s audit entry", action)
		}
	}
}

// rezip returns the zip with one byte of entry name changed.
func rezip(t *testing.T, plain []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(plain), int64(len(plain)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name == name && len(data) > 0 {
			data[len(data)/3] ^= 0x01
		}
		fw, _ := zw.Create(f.Name)
		fw.Write(data)
	}
	zw.Close()
	return out.Bytes()
}

func TestExportBadInput(t *testing.T) {
	g := start(t)
	seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "a", Data: []byte("x")})
	id, _ := age.GenerateX25519Identity()
	rcpt := id.Recipient().String()
	count := func() int64 {
		var n int64
		g.DB.Model(&meta.Export{}).Count(&n)
		return n
	}
	for _, tt := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"session_ids":["s1"],"recipient":"age1notakey"}`, 400, "recipient"},
		{`{"session_ids":["s1"],"recipient":"` + id.String() + `"}`, 400, "recipient"}, // a secret key, not a recipient
		{`{"session_ids":["s1"],"recipient":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}`, 400, "recipient"},
		{`{"session_ids":["s1"]}`, 400, "recipient"},
		{`{"recipient":"` + rcpt + `"}`, 400, "session_ids"},
		{`{"session_ids":["s1"],"filters":{},"recipient":"` + rcpt + `"}`, 400, "session_ids"},
		{`{"session_ids":["../x"],"recipient":"` + rcpt + `"}`, 400, "session_ids"},
		{`{"session_ids":["none"],"recipient":"` + rcpt + `"}`, 400, ""},
		{`{"filters":{"status":"odd"},"recipient":"` + rcpt + `"}`, 400, "filters.status"},
		{`{"filters":{"from":"yesterday"},"recipient":"` + rcpt + `"}`, 400, "filters.from"},
		{`{"session_ids":["s1"],"recipient":"` + rcpt + `","cc":"x"}`, 400, "cc"},
		{`{"session_ids":"s1","recipient":"` + rcpt + `"}`, 400, "session_ids"},
		{`{"session_ids":["s1"],`, 400, ""},
	} {
		p := do(t, "POST", g.URL()+"/v1/exports", g.AdminToken, []byte(tt.body)).problem(t, tt.status)
		if tt.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tt.field) {
			t.Errorf("%s: problem %+v, want field %s", tt.body, p, tt.field)
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("bad requests created %d exports", n)
	}
	// A filter export works; a failed export cannot be downloaded.
	r := do(t, "POST", g.URL()+"/v1/exports", g.AdminToken, []byte(`{"filters":{"department":"sales"},"recipient":"`+rcpt+`"}`))
	if r.Status != 202 {
		t.Fatalf("filters export: %d %s", r.Status, r.Body)
	}
	failed := meta.Export{ID: meta.NewID("exp"), TenantID: "default", Status: api.ExportFailed, Recipient: rcpt, CreatedAt: time.Now()}
	g.DB.Create(&failed)
	do(t, "GET", g.URL()+"/v1/exports/"+failed.ID+"/download", g.AdminToken, nil).problem(t, 409)
	do(t, "GET", g.URL()+"/v1/exports/exp_nothere", g.AdminToken, nil).problem(t, 404)
}
