package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Role string `json:"role"`
		N    int    `json:"n"`
	}
	tests := []struct {
		name, ct, body string
		status         int
		field          string
	}{
		{"ok", "application/json", `{"role":"a","n":1}`, 0, ""},
		{"ok with charset", "application/json; charset=utf-8", `{"role":"a"}`, 0, ""},
		{"no content type", "", `{"role":"a"}`, 0, ""},
		{"problem+json type", "application/merge-patch+json", `{"role":"a"}`, 0, ""},
		{"wrong type", "text/plain", `{"role":"a"}`, 415, ""},
		{"bad type", "application/", `{}`, 415, ""},
		{"empty", "application/json", ``, 400, ""},
		{"spaces", "application/json", "  \n", 400, ""},
		{"truncated", "application/json", `{"role":`, 400, ""},
		{"syntax", "application/json", `{"role" "a"}`, 400, ""},
		{"unknown field", "application/json", `{"role":"a","admin":true}`, 400, "admin"},
		{"wrong type of field", "application/json", `{"n":"x"}`, 400, "n"},
		{"trailing data", "application/json", `{"role":"a"}{"role":"b"}`, 400, ""},
		{"trailing garbage", "application/json", `{"role":"a"} x`, 400, ""},
		{"array", "application/json", `[1]`, 400, "body"},
		{"null", "application/json", `null`, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if tt.ct != "" {
				r.Header.Set("Content-Type", tt.ct)
			}
			var b body
			err := DecodeJSON(r, &b)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var re *RequestError
			if !errors.As(err, &re) || !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a RequestError", err)
			}
			status := re.Status
			if status == 0 {
				status = 400
			}
			if status != tt.status || re.Field != tt.field {
				t.Fatalf("status %d field %q, want %d %q (%v)", status, re.Field, tt.status, tt.field, err)
			}
		})
	}
}

func TestDecodeJSONBodyLimit(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"role":"`+strings.Repeat("a", 100)+`"}`))
	r.Body = http.MaxBytesReader(w, r.Body, 50)
	var v struct{ Role string }
	err := DecodeJSON(r, &v)
	var re *RequestError
	if !errors.As(err, &re) || re.Status != 413 {
		t.Fatalf("oversized body: %v", err)
	}
}

func TestCursor(t *testing.T) {
	c := EncodeCursor("recordings", "rec_06h0")
	if pos, err := DecodeCursor("recordings", c); err != nil || pos != "rec_06h0" {
		t.Fatalf("round trip: %q %v", pos, err)
	}
	for _, bad := range []string{"", "!!!", c + "x", EncodeCursor("tokens", "rec_06h0"), EncodeCursor("recordings", "../x"),
		EncodeCursor("recordings", ""), strings.Repeat("A", 600), "YzE6cmVjb3JkaW5nczo"} {
		if _, err := DecodeCursor("recordings", bad); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add("recordings", EncodeCursor("recordings", "rec_1"))
	f.Add("tokens", "YzE6dG9rZW5zOnRva18x")
	f.Add("recordings", "%%%")
	f.Fuzz(func(t *testing.T, kind, c string) {
		pos, err := DecodeCursor(kind, c)
		if err != nil {
			return
		}
		if EncodeCursor(kind, pos) != strings.TrimRight(c, "=") && EncodeCursor(kind, pos) != c {
			// RawURLEncoding is canonical except for trailing bits; the
			// position must still be a valid id.
			if _, err := DecodeCursor(kind, EncodeCursor(kind, pos)); err != nil {
				t.Fatalf("re-encoded cursor of %q does not decode", pos)
			}
		}
		if strings.ContainsAny(pos, "/\\ \x00") || strings.HasPrefix(pos, ".") {
			t.Fatalf("cursor position %q could traverse or inject", pos)
		}
	})
}

func FuzzDecodeTokenRequest(f *testing.F) {
	f.Add([]byte(`{"role":"supervisor","department":"sales","ttl":"30d","name":"x"}`))
	f.Add([]byte(`{"role":"admin","tenant":"acme","ttl":"0"}`))
	f.Add([]byte(`{"role":1}`))
	p := auth.Principal{Tenant: "default", Role: auth.RoleAdmin, TokenID: "tok_1", Source: auth.SourceToken}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req TokenRequest
		if err := decodeJSONBytes(b, &req); err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("decode error %v is not a bad request", err)
			}
			return
		}
		spec, err := tokenSpec(p, req)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("spec error %v is not a bad request", err)
			}
			return
		}
		if !spec.Role.Valid() || spec.TTL < 0 || spec.Tenant == "" || (spec.Role == auth.RoleSupervisor && spec.Department == "") {
			t.Fatalf("invalid spec accepted: %+v", spec)
		}
	})
}

func FuzzDecodeExportRequest(f *testing.F) {
	f.Add([]byte(`{"session_ids":["s1"],"recipient":"age1gd3swnm03v23zpuas4dt5k22e6glmt4rtn4u77zf3pe95y3arqmq8dn6uk"}`))
	f.Add([]byte(`{"filters":{"department":"sales","from":"2026-01-01T00:00:00Z"},"recipient":"age1x"}`))
	f.Add([]byte(`{"session_ids":[],"filters":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ExportRequest
		if err := decodeJSONBytes(b, &req); err != nil {
			return
		}
		rcpt, err := req.validate()
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("validate error %v is not a bad request", err)
			}
			return
		}
		if rcpt == nil || (len(req.SessionIDs) == 0) == (req.Filters == nil) {
			t.Fatalf("invalid export request accepted: %+v", req)
		}
	})
}

func FuzzRecordingQuery(f *testing.F) {
	f.Add("session_id=s1&limit=10&from=2026-01-01T00:00:00Z")
	f.Add("status=complete&cursor=" + EncodeCursor("recordings", "rec_1"))
	f.Add("limit=-1&&&=")
	f.Add("department=%00")
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("GET", "/v1/recordings", nil)
		r.URL.RawQuery = q
		flt, err := parseRecordingFilter(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if flt.Limit < 1 || flt.Limit > MaxLimit || strings.ContainsRune(flt.Department, 0) {
			t.Fatalf("accepted %+v", flt)
		}
	})
}

func FuzzAuditQuery(f *testing.F) {
	f.Add("action=media.read&outcome=denied&limit=5")
	f.Add("cursor=abc&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")
	f.Add("actor=%ff")
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("GET", "/v1/audit", nil)
		r.URL.RawQuery = q
		flt, err := parseAuditFilter(r, "default")
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if flt.Tenant != "default" || flt.Limit < 1 {
			t.Fatalf("accepted %+v", flt)
		}
	})
}

// fakeParts is a recording in memory whose parts count fetches.
type fakeParts struct {
	data  []byte
	parts []storage.PartInfo
	mu    sync.Mutex
	reads map[int64]int // by part offset
	fail  int64         // offset of a part that fails, -1 none
}

func newFakeParts(sizes []int64) *fakeParts {
	f := &fakeParts{reads: map[int64]int{}, fail: -1}
	var off int64
	for i, s := range sizes {
		f.parts = append(f.parts, storage.PartInfo{N: i, PlainOffset: off, PlainSize: s})
		off += s
	}
	f.data = make([]byte, off)
	for i := range f.data {
		f.data[i] = byte(i*7 + i/251)
	}
	return f
}

func (f *fakeParts) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	f.reads[off]++
	f.mu.Unlock()
	if off == f.fail {
		return 0, errors.New("part failed verification")
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *fakeParts) manifest() storage.Manifest {
	return storage.Manifest{Parts: f.parts, PlainSize: int64(len(f.data))}
}

func TestMediaReader(t *testing.T) {
	sizes := []int64{100, 0, 250, 1, 4096, 0, 0, 333, 2000}
	for range 40 {
		sizes = append(sizes, 700)
	}
	f := newFakeParts(sizes)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		m := newMediaReader(context.Background(), f, f.manifest())
		from := rng.Int64N(int64(len(f.data)))
		n := rng.Int64N(int64(len(f.data))-from) + 1
		if _, err := m.Seek(from, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(io.MultiReader(m), buf); err != nil {
			t.Fatalf("read %d at %d: %v", n, from, err)
		}
		if !bytes.Equal(buf, f.data[from:from+n]) {
			t.Fatalf("range %d+%d differs", from, n)
		}
		m.Close()
	}
	// Size by seeking to the end, EOF there.
	m := newMediaReader(context.Background(), f, f.manifest())
	if end, _ := m.Seek(0, io.SeekEnd); end != int64(len(f.data)) {
		t.Fatalf("end %d", end)
	}
	if n, err := m.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read at end: %d %v", n, err)
	}
	if _, err := m.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("negative seek accepted")
	}
	m.Close()
}

func TestMediaReaderTouchesOnlyNeededParts(t *testing.T) {
	sizes := make([]int64, 1800)
	for i := range sizes {
		sizes[i] = 8000
	}
	f := newFakeParts(sizes)
	m := newMediaReader(context.Background(), f, f.manifest())
	defer m.Close()
	off := int64(1500) * 8000
	m.Seek(off+10, io.SeekStart)
	buf := make([]byte, 100)
	if _, err := io.ReadFull(m, buf); err != nil {
		t.Fatal(err)
	}
	m.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for o := range f.reads {
		if o < off || o > off+int64(mediaAheadParts)*8000 {
			t.Errorf("part at %d fetched for a read at %d", o, off)
		}
	}
	if f.reads[off] != 1 || len(f.reads) > mediaAheadParts+1 {
		t.Errorf("fetches %v", f.reads)
	}
}

func TestMediaReaderError(t *testing.T) {
	f := newFakeParts([]int64{10, 10, 10, 10})
	f.fail = 20
	m := newMediaReader(context.Background(), f, f.manifest())
	defer m.Close()
	got, err := io.ReadAll(m)
	if err == nil || !bytes.Equal(got, f.data[:20]) {
		t.Fatalf("got %d bytes, err %v: want the first 20 bytes then the error", len(got), err)
	}
}
