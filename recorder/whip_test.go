package recorder_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage/meta"
)

func chromiumOffer(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("testdata/chromium-offer.sdp")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

type whipResp struct {
	status  int
	header  http.Header
	body    string
	problem struct {
		Type, Title, Detail string
		Status              int
	}
}

func whipPost(tb testing.TB, base, path, tok, contentType, body string) whipResp {
	tb.Helper()
	req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return whipSend(tb, req)
}

func whipSend(tb testing.TB, req *http.Request) whipResp {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := whipResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(b, &out.problem); err != nil {
			tb.Fatalf("problem body %q: %v", b, err)
		}
	}
	return out
}

// TestWHIPBadInput: every malformed or unauthorized WHIP request gets the
// status and problem+json of SPEC section 4, and nothing is recorded.
func TestWHIPBadInput(t *testing.T) {
	g := startGateway(t, `
- name: no-recording-for-bots
  match: {participant: {role: bot}}
  record: off
- name: everything
  record: optional
`)
	ingest := token(t, g, auth.RoleIngest, "")
	salesIngest := token(t, g, auth.RoleIngest, "sales")
	auditor := token(t, g, auth.RoleAuditor, "")
	offer := chromiumOffer(t)
	audioOnly := offer[:strings.Index(offer, "m=video")]
	audioOnly = strings.Replace(audioOnly, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0", 1)
	dataOnly := strings.Replace(audioOnly, "m=audio 55697 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", 1)
	g722Only := strings.Replace(audioOnly, "m=audio 55697 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "m=audio 55697 UDP/TLS/RTP/SAVPF 9 0 8", 1)
	plainRTP := strings.Replace(audioOnly, "UDP/TLS/RTP/SAVPF", "RTP/AVP", 1)
	twoAudio := audioOnly + strings.Replace(audioOnly[strings.Index(audioOnly, "m=audio"):], "a=mid:0", "a=mid:1", 1)
	huge := audioOnly + strings.Repeat("a=x-padding:"+strings.Repeat("x", 100)+"\r\n", 700)

	tests := []struct {
		name        string
		path        string
		tok         string
		contentType string
		body        string
		status      int
		problem     string // problem type suffix
		detail      string // regexp the detail must match
	}{
		{"no token", "/whip/s1/p1", "", "application/sdp", offer, 401, "unauthorized", "bearer token"},
		{"wrong token", "/whip/s1/p1", "cus_nottherighttoken", "application/sdp", offer, 401, "unauthorized", "not valid"},
		{"wrong role", "/whip/s1/p1", auditor, "application/sdp", offer, 403, "forbidden", "auditor may not ingest"},
		{"other department", "/whip/s1/p1?department=support", salesIngest, "application/sdp", offer, 403, "forbidden", "department sales"},
		{"invalid session id", "/whip/bad$id/p1", ingest, "application/sdp", offer, 400, "invalid-id", "session and participant ids"},
		{"not sdp", "/whip/s1/p1", ingest, "application/json", `{"sdp":"x"}`, 415, "unsupported-media-type", "application/sdp"},
		{"malformed sdp", "/whip/s1/p1", ingest, "application/sdp", "hello, this is not SDP", 400, "sdp-malformed", "malformed SDP"},
		{"empty body", "/whip/s1/p1", ingest, "application/sdp", "", 400, "sdp-malformed", "empty"},
		{"no audio or video", "/whip/s1/p1", ingest, "application/sdp", dataOnly, 400, "sdp-no-media", "none sends audio or video"},
		{"only unsupported codecs", "/whip/s1/p1", ingest, "application/sdp", g722Only, 415, "sdp-unsupported-codecs", "G722.*supported: audio/opus"},
		{"plain RTP", "/whip/s1/p1", ingest, "application/sdp", plainRTP, 400, "sdp-plain-rtp", "RTP/AVP"},
		{"two audio sections", "/whip/s1/p1", ingest, "application/sdp", twoAudio, 400, "sdp-too-many-tracks", "second audio section"},
		{"over 64 KiB", "/whip/s1/p1", ingest, "application/sdp", huge, 413, "sdp-too-large", "64 KiB"},
		{"bad consent", "/whip/s1/p1?consent=maybe", ingest, "application/sdp", offer, 400, "invalid-query", "granted, denied or unknown"},
		{"bad labels", "/whip/s1/p1?labels=queue", ingest, "application/sdp", offer, 400, "invalid-query", "not key=value"},
		{"unknown parameter", "/whip/s1/p1?colour=red", ingest, "application/sdp", offer, 400, "invalid-query", "unknown query parameter"},
		{"policy forbids", "/whip/s2/robot?attributes=role=bot", ingest, "application/sdp", offer, 403, "recording-forbidden", `no-recording-for-bots.*record: off`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := whipPost(t, g.URL(), tc.path, tc.tok, tc.contentType, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q, want application/problem+json", ct)
			}
			if !strings.HasSuffix(r.problem.Type, "/"+tc.problem) || r.problem.Status != tc.status {
				t.Errorf("problem type %q status %d, want …/%s %d", r.problem.Type, r.problem.Status, tc.problem, tc.status)
			}
			if !regexp.MustCompile(tc.detail).MatchString(r.problem.Detail) {
				t.Errorf("detail %q does not match %q", r.problem.Detail, tc.detail)
			}
			if strings.Contains(r.body, "GsvtHJZvmTsuUyJcdqlORs8r") {
				t.Errorf("the answer quotes the ICE password")
			}
		})
	}
	var n int64
	g.DB.Model(&meta.Recording{}).Count(&n)
	if n != 0 {
		t.Errorf("%d recordings after bad input", n)
	}

	t.Run("answer and resource", func(t *testing.T) {
		r := whipPost(t, g.URL(), "/whip/s3/caller?name=Ann&labels=queue=billing", ingest, "application/sdp", offer)
		if r.status != 201 || r.header.Get("Content-Type") != "application/sdp" {
			t.Fatalf("status %d %q: %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		loc := r.header.Get("Location")
		if !regexp.MustCompile(`^/whip/s3/caller/whip_[0-9a-z]{26}$`).MatchString(loc) || r.header.Get("ETag") == "" {
			t.Fatalf("Location %q ETag %q", loc, r.header.Get("ETag"))
		}
		// One codec per kind: the offer's Opus (111) and its first VP8 (96).
		if !strings.Contains(r.body, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n") || !strings.Contains(r.body, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n") {
			t.Errorf("answer media lines: %q", regexp.MustCompile(`m=[^\r]*`).FindAllString(r.body, -1))
		}
		if !strings.Contains(r.body, "a=fingerprint:") || !strings.Contains(r.body, "a=candidate:") {
			t.Errorf("answer lacks a fingerprint or candidates")
		}
		patch, _ := http.NewRequest("PATCH", g.URL()+loc, strings.NewReader("a=candidate:1 1 udp 1 127.0.0.1 9 typ host"))
		patch.Header.Set("Authorization", "Bearer "+ingest)
		patch.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
		if pr := whipSend(t, patch); pr.status != 405 || pr.header.Get("Allow") != "DELETE" {
			t.Errorf("PATCH: %d Allow %q", pr.status, pr.header.Get("Allow"))
		}
		other, _ := http.NewRequest("DELETE", g.URL()+"/whip/s3/caller/whip_doesnotexist", nil)
		other.Header.Set("Authorization", "Bearer "+ingest)
		if dr := whipSend(t, other); dr.status != 404 {
			t.Errorf("DELETE of an unknown resource: %d", dr.status)
		}
		del, _ := http.NewRequest("DELETE", g.URL()+loc, nil)
		if dr := whipSend(t, del); dr.status != 401 {
			t.Errorf("DELETE without a token: %d", dr.status)
		}
		del.Header.Set("Authorization", "Bearer "+ingest)
		if dr := whipSend(t, del); dr.status != 200 {
			t.Errorf("DELETE: %d %s", dr.status, dr.body)
		}
		if dr := whipSend(t, del); dr.status != 404 {
			t.Errorf("second DELETE: %d", dr.status)
		}
		doc := getSession(t, g, g.AdminToken, "s3")
		if len(doc.Participants) != 1 || doc.Participants[0].Name != "Ann" || doc.Labels["queue"] != "billing" ||
			doc.Decision["rule"] != "everything" || doc.Decision["record"] != "optional" {
			t.Errorf("session %+v", doc)
		}
		if len(doc.Recordings) != 0 {
			t.Errorf("a connection that never sent media has recordings: %+v", doc.Recordings)
		}
		// An ended session takes no more participants.
		if st := apiDo(t, g, g.AdminToken, "POST", "/v1/sessions/s3/end", nil, nil); st != 200 {
			t.Fatalf("end: %d", st)
		}
		if r := whipPost(t, g.URL(), "/whip/s3/late", ingest, "application/sdp", offer); r.status != 409 {
			t.Errorf("POST to an ended session: %d", r.status)
		}
	})
}
