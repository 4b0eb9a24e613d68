package api_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/storage/meta"
)

// verify calls GET /v1/audit/verify.
func verify(t *testing.T, g *gatewaytest.Gateway, token string) api.AuditVerifyResult {
	t.Helper()
	r := do(t, "GET", g.URL()+"/v1/audit/verify", token, nil)
	if r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	var res api.AuditVerifyResult
	r.json(t, &res)
	return res
}

func TestAuditThroughAPI(t *testing.T) {
	g := start(t)
	rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "sales", Session: "s1", Participant: "a", Data: []byte("media bytes")})
	seedTranscript(t, g, rec, sampleTranscript("A", 0, "hello"))
	auditor, auditorID := newToken(t, g, "default", auth.RoleAuditor, "", time.Hour)
	acme, _ := newToken(t, g, "acme", auth.RoleAdmin, "", time.Hour)

	do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID+"/media", g.AdminToken, nil, "Range: bytes=2-5")
	do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID+"/transcript?format=vtt", g.AdminToken, nil)
	do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID+"/media", acme, nil).problem(t, 404)
	do(t, "POST", g.URL()+"/v1/tokens", g.AdminToken, []byte(`{"role":"auditor","ttl":"1h"}`))
	do(t, "GET", g.URL()+"/v1/recordings", auditor, nil).problem(t, 403)

	r := do(t, "GET", g.URL()+"/v1/audit?limit=1000", auditor, nil)
	var l api.AuditList
	r.json(t, &l)
	byAction := map[string]api.AuditEntryJSON{}
	for _, e := range l.Entries {
		if e.Tenant != "default" {
			t.Fatalf("entry of tenant %q listed", e.Tenant)
		}
		if _, ok := byAction[e.Action+"/"+e.Outcome]; !ok {
			byAction[e.Action+"/"+e.Outcome] = e
		}
	}
	for _, k := range []string{"media.read/success", "transcript.read/success", "token.create/success", "request.deny/denied"} {
		if _, ok := byAction[k]; !ok {
			t.Errorf("no %s entry among %d", k, len(l.Entries))
		}
	}
	m := byAction["media.read/success"]
	if m.Target != "recording:"+rec.ID || m.Details["range"] != "bytes=2-5" || m.Source != "127.0.0.1" || m.Actor == "" || m.Role != "admin" || len(m.Hash) != 64 {
		t.Errorf("media.read entry %+v", m)
	}
	if d := byAction["request.deny/denied"]; d.Actor != "token:"+auditorID || d.Details["permission"] != "recordings:read" {
		t.Errorf("request.deny entry %+v", d)
	}
	// The other tenant's denied attempt is its own tenant's entry.
	var acmeDenied int64
	g.DB.Model(&meta.AuditEntry{}).Where("tenant_id = ? AND action = ? AND outcome = ?", "acme", "media.read", "denied").Count(&acmeDenied)
	if acmeDenied != 1 {
		t.Errorf("acme's denied media read: %d entries", acmeDenied)
	}

	// Filters and pagination.
	r = do(t, "GET", g.URL()+"/v1/audit?action=media.read&outcome=success", auditor, nil)
	r.json(t, &l)
	if len(l.Entries) != 1 || l.Entries[0].Action != "media.read" {
		t.Fatalf("filtered: %s", r.Body)
	}
	var all []int64
	cursor := ""
	for {
		q := "?limit=3"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page api.AuditList
		do(t, "GET", g.URL()+"/v1/audit"+q, auditor, nil).json(t, &page)
		for _, e := range page.Entries {
			all = append(all, e.Seq)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i] >= all[i-1] {
			t.Fatalf("pages not newest first without repeats: %v", all)
		}
	}
	for _, q := range []string{"outcome=maybe", "from=never", "cursor=xyz", "limit=5000", "tenant=acme"} {
		do(t, "GET", g.URL()+"/v1/audit?"+q, auditor, nil).problem(t, 400)
	}

	// Verify: intact, with the head hash.
	res := verify(t, g, auditor)
	seq, hash, _ := audit.Head(context.Background(), g.DB)
	if !res.OK || res.HeadHash == "" || res.HeadSeq < seq-1 || res.SigningKey == nil || res.SigningKey.KeyID == "" {
		t.Fatalf("verify: %+v (head %d %s)", res, seq, hash)
	}
	// Reading the log is itself audited.
	var reads int64
	g.DB.Model(&meta.AuditEntry{}).Where("action IN ?", []string{"audit.read", "audit.verify"}).Count(&reads)
	if reads < 3 {
		t.Fatalf("%d audit.read/verify entries", reads)
	}
}

func TestAuditTamperDetected(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, g *gatewaytest.Gateway, seq int64)
		reason audit.Reason
		offset int64 // first bad seq relative to the tampered one
	}{
		{"changed", func(t *testing.T, g *gatewaytest.Gateway, seq int64) {
			g.DB.Model(&meta.AuditEntry{}).Where("seq = ?", seq).Update("target", "recording:rec_other")
		}, audit.ReasonHashMismatch, 0},
		{"removed", func(t *testing.T, g *gatewaytest.Gateway, seq int64) {
			g.DB.Where("seq = ?", seq).Delete(&meta.AuditEntry{})
		}, audit.ReasonGap, 0},
		{"reordered", func(t *testing.T, g *gatewaytest.Gateway, seq int64) {
			g.DB.Exec("UPDATE audit_entries SET seq = -1 WHERE seq = ?", seq)
			g.DB.Exec("UPDATE audit_entries SET seq = ? WHERE seq = ?", seq, seq+1)
			g.DB.Exec("UPDATE audit_entries SET seq = ? WHERE seq = -1", seq+1)
		}, audit.ReasonReordered, 0},
		{"actor rewritten", func(t *testing.T, g *gatewaytest.Gateway, seq int64) {
			g.DB.Model(&meta.AuditEntry{}).Where("seq = ?", seq).Update("actor", "token:tok_innocent")
		}, audit.ReasonHashMismatch, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := start(t)
			rec := seedRecording(t, g, recSpec{Tenant: "default", Dept: "d", Session: "s", Participant: "p", Data: []byte("abc")})
			for range 6 {
				do(t, "GET", g.URL()+"/v1/recordings/"+rec.ID+"/media", g.AdminToken, nil)
			}
			if res := verify(t, g, g.AdminToken); !res.OK {
				t.Fatalf("intact chain fails: %+v", res)
			}
			seq := int64(3)
			tt.tamper(t, g, seq)
			res := verify(t, g, g.AdminToken)
			if res.OK || res.FirstBadSeq != seq+tt.offset || res.Reason != tt.reason {
				t.Fatalf("after tampering: %+v", res.Result)
			}
			if res.HeadSeq != seq-1 {
				t.Fatalf("head of the intact prefix %d, want %d", res.HeadSeq, seq-1)
			}
		})
	}
}

func TestAuditCheckpointer(t *testing.T) {
	g := start(t, func(c *config.Config) { c.Audit.CheckpointInterval = 100 * time.Millisecond })
	do(t, "GET", g.URL()+"/v1/audit", g.AdminToken, nil)
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var cps []meta.AuditCheckpoint
		g.DB.Order("seq").Find(&cps)
		if len(cps) == 0 {
			return fmt.Errorf("no checkpoint yet")
		}
		return nil
	})
	res := verify(t, g, g.AdminToken)
	if !res.OK || res.Checkpoints < 1 || res.LastCheckpoint == nil || res.LastCheckpoint.KeyID != res.SigningKey.KeyID {
		t.Fatalf("verify with checkpoints: %+v", res)
	}
	// A checkpoint signed by another key is refused.
	g.DB.Model(&meta.AuditCheckpoint{}).Where("seq = ?", res.LastCheckpoint.Seq).Update("signature", "AAAA")
	res = verify(t, g, g.AdminToken)
	if res.OK || res.Reason != audit.ReasonCheckpointSignature {
		t.Fatalf("forged checkpoint: %+v", res.Result)
	}
}
