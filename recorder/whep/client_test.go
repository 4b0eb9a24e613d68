package whep_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/whep"
)

const answerSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"

// server is a protocol-level WHEP endpoint: handler decides the POST's
// answer; DELETEs are counted.
func server(t *testing.T, post http.HandlerFunc) (*httptest.Server, *atomic.Int32, *atomic.Value) {
	t.Helper()
	var deletes atomic.Int32
	var auth atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whep", func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		post(w, r)
	})
	mux.HandleFunc("DELETE /whep/res/{id}", func(w http.ResponseWriter, r *http.Request) {
		deletes.Add(1)
		if r.PathValue("id") == "gone" {
			http.NotFound(w, r)
			return
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &deletes, &auth
}

func answer(ct, loc, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		if loc != "" {
			w.Header().Set("Location", loc)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, body)
	}
}

func TestSubscribe(t *testing.T) {
	srv, deletes, auth := server(t, answer("application/sdp", "/whep/res/1", answerSDP))
	c := &whep.Client{}
	res, err := c.Subscribe(context.Background(), srv.URL+"/whep?tok=q", "tkn", "offer")
	if err != nil {
		t.Fatal(err)
	}
	if res.Location != srv.URL+"/whep/res/1" || res.Answer != answerSDP {
		t.Errorf("resource %+v", res)
	}
	if got := auth.Load(); got != "Bearer tkn" {
		t.Errorf("Authorization %q", got)
	}
	if err := res.Delete(context.Background()); err != nil || deletes.Load() != 1 {
		t.Errorf("delete: %v (%d)", err, deletes.Load())
	}
	// A resource the server already forgot: 404 counts as deleted.
	gone := *res
	gone.Location = srv.URL + "/whep/res/gone"
	if err := gone.Delete(context.Background()); err != nil {
		t.Errorf("delete of a forgotten resource: %v", err)
	}
}

func TestSubscribeErrors(t *testing.T) {
	noMedia := strings.Replace(answerSDP, "a=sendonly", "a=inactive", 1)
	rejected := strings.Replace(answerSDP, "m=audio 9", "m=audio 0", 1)
	plain := strings.Replace(answerSDP, "UDP/TLS/RTP/SAVPF", "RTP/AVP", 1)
	tests := []struct {
		name       string
		post       http.HandlerFunc
		url        string
		want       error
		status     int
		text       string
		wantDelete bool
	}{
		{"no location", answer("application/sdp", "", answerSDP), "", whep.ErrBadAnswer, 0, "Location", false},
		{"not sdp", answer("text/html", "/whep/res/2", "<html>"), "", whep.ErrBadAnswer, 0, "text/html", true},
		{"empty", answer("application/sdp", "/whep/res/3", ""), "", whep.ErrBadAnswer, 0, "empty", true},
		{"garbage", answer("application/sdp", "/whep/res/4", "hello"), "", whep.ErrBadAnswer, 0, "not SDP", true},
		{"inactive", answer("application/sdp", "/whep/res/5", noMedia), "", whep.ErrNoMedia, 0, "none sends", true},
		{"rejected", answer("application/sdp", "/whep/res/6", rejected), "", whep.ErrNoMedia, 0, "none sends", true},
		{"plain rtp", answer("application/sdp", "/whep/res/7", plain), "", whep.ErrBadAnswer, 0, "plain RTP", true},
		{"problem", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"title":"Busy","detail":"too many viewers\u0007"}`)
		}, "", nil, 503, "Busy: too many viewers", false},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "", nil, 404, "404 page not found", false},
		{"bad url", nil, "ftp://host/x?token=leak", whep.ErrBadURL, 0, "ftp://host/x", false},
		{"unreachable", nil, "http://127.0.0.1:1/whep?token=leak", whep.ErrUnreachable, 0, "connection refused", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			var deletes *atomic.Int32
			if tc.post != nil {
				var srv *httptest.Server
				srv, deletes, _ = server(t, tc.post)
				url = srv.URL + "/whep?token=leak"
			}
			_, err := (&whep.Client{}).Subscribe(context.Background(), url, "secret-token", "offer")
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if tc.status != 0 {
				he, ok := errors.AsType[*whep.HTTPError](err)
				if !ok || he.Status != tc.status {
					t.Fatalf("error %v, want HTTP %d", err, tc.status)
				}
				if tc.status == 503 && he.RetryAfter != 7*time.Second {
					t.Errorf("Retry-After %v", he.RetryAfter)
				}
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
			if strings.Contains(err.Error(), "secret-token") || strings.Contains(err.Error(), "leak") || strings.ContainsRune(err.Error(), '\a') {
				t.Errorf("error leaks a credential or a control character: %q", err)
			}
			if deletes != nil && (deletes.Load() == 1) != tc.wantDelete {
				t.Errorf("%d DELETEs of the unusable resource", deletes.Load())
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@host:8443/a/b?token=x#frag": "https://host:8443/a/b",
		"http://h/whep":  "http://h/whep",
		"::bad":          "(invalid URL)",
		"/relative/path": "(invalid URL)",
	} {
		if got := whep.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzCheckAnswer(f *testing.F) {
	f.Add([]byte(answerSDP))
	f.Add([]byte(strings.Replace(answerSDP, "a=sendonly", "a=inactive", 1)))
	f.Add([]byte("v=0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := whep.CheckAnswer(b)
		if err != nil && !errors.Is(err, whep.ErrBadAnswer) && !errors.Is(err, whep.ErrNoMedia) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
