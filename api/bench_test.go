package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/ogg"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
)

// hourOfOpus returns one hour of real Ogg/Opus, the packets of
// testdata/calls-long.ogg looped (20 ms frames, ~32 kbit/s), cut into 1800
// parts of 2 s as the recorder seals them (the headers in the first part).
func hourOfOpus(tb testing.TB) [][]byte {
	tb.Helper()
	or, err := ogg.NewOpusReader(bytes.NewReader(readTestdata(tb, "calls-long.ogg")))
	if err != nil {
		tb.Fatal(err)
	}
	var pkts [][]byte
	for {
		p, _, err := or.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		pkts = append(pkts, bytes.Clone(p))
	}
	w := ogg.NewWriter(0x0c057)
	w.WritePacket(ogg.OpusHead(1, 312, 48000), 0)
	head := w.Flush(nil, false)
	w.WritePacket(ogg.OpusTags("custodian"), 0)
	head = w.Flush(head, false)
	const parts, perPart = 1800, 100 // 100 x 20 ms = 2 s
	out := make([][]byte, 0, parts)
	var granule int64
	for i := range parts {
		var part []byte
		if i == 0 {
			part = head
		}
		for k := range perPart {
			p := pkts[(i*perPart+k)%len(pkts)]
			n, err := ogg.PacketSamples(p)
			if err != nil {
				tb.Fatal(err)
			}
			granule += int64(n)
			w.WritePacket(p, granule)
			part = w.AppendPages(part)
		}
		out = append(out, w.Flush(part, i == parts-1))
	}
	return out
}

// seedParts stores a recording made of the given parts and waits until
// every object reached the blob store.
func seedParts(tb testing.TB, g *gatewaytest.Gateway, parts [][]byte) meta.Recording {
	tb.Helper()
	ctx := context.Background()
	seedSession(tb, g, "default", "sales", "bench", nil, "agent")
	id := meta.NewID("rec")
	w, err := g.Store.NewWriter(ctx, "default", id, storage.WriterOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range parts {
		if _, err := w.WritePart(ctx, p); err != nil {
			tb.Fatal(err)
		}
	}
	m, err := w.Close(ctx, true)
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.Store.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	rec := meta.Recording{ID: id, TenantID: "default", SessionID: "bench", ParticipantID: "agent", Department: "sales",
		Status: meta.StatusComplete, ContentType: "audio/ogg", StartedAt: now, DurationMS: 3600_000, CreatedAt: now, UpdatedAt: now}
	m.Apply(&rec)
	if err := g.DB.Create(&rec).Error; err != nil {
		tb.Fatal(err)
	}
	return rec
}

type hourFixture struct {
	g     *gatewaytest.Gateway
	rec   meta.Recording
	plain []byte
	file  string
}

func newHourFixture(b *testing.B) hourFixture {
	b.Helper()
	parts := hourOfOpus(b)
	g := gatewaytest.Start(b)
	rec := seedParts(b, g, parts)
	plain := bytes.Join(parts, nil)
	file := filepath.Join(b.TempDir(), "hour.ogg")
	if err := os.WriteFile(file, plain, 0o600); err != nil {
		b.Fatal(err)
	}
	return hourFixture{g: g, rec: rec, plain: plain, file: file}
}

func getAll(b *testing.B, url, token string) int64 {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return n
}

func readFile(b *testing.B, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	n, err := io.Copy(io.Discard, f)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkMediaThroughput streams a 1-hour Opus recording (1800 parts)
// through GET /v1/recordings/{id}/media, and the same plaintext from a
// local file, read directly and served over HTTP by net/http's file
// server. MB/s of each, compare for the ratio.
func BenchmarkMediaThroughput(b *testing.B) {
	fx := newHourFixture(b)
	size := int64(len(fx.plain))
	fileSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, fx.file) }))
	defer fileSrv.Close()
	b.Run("endpoint", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if n := getAll(b, fx.g.URL()+"/v1/recordings/"+fx.rec.ID+"/media", fx.g.AdminToken); n != size {
				b.Fatalf("%d bytes, want %d", n, size)
			}
		}
	})
	// The store alone (no HTTP, no audit): the floor the endpoint sits on.
	b.Run("store-stream", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			rd, err := fx.g.Store.Open(context.Background(), "default", fx.rec.ID, storage.ReadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := rd.Stream(context.Background(), io.Discard); err != nil || n != size {
				b.Fatalf("%d %v", n, err)
			}
			rd.Close()
		}
	})
	b.Run("local-file-read", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			readFile(b, fx.file)
		}
	})
	b.Run("local-file-http", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			getAll(b, fileSrv.URL, "")
		}
	})
}

// BenchmarkMediaThroughputRatio alternates the endpoint and a local file
// read of the same plaintext and reports the throughput ratio
// (endpoint / file; the target is at least 0.5) besides both rates.
func BenchmarkMediaThroughputRatio(b *testing.B) {
	fx := newHourFixture(b)
	size := int64(len(fx.plain))
	fileSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, fx.file) }))
	defer fileSrv.Close()
	url := fx.g.URL() + "/v1/recordings/" + fx.rec.ID + "/media"
	var tEndpoint, tRead, tHTTP time.Duration
	b.SetBytes(size)
	for b.Loop() {
		t0 := time.Now()
		getAll(b, url, fx.g.AdminToken)
		t1 := time.Now()
		readFile(b, fx.file)
		t2 := time.Now()
		getAll(b, fileSrv.URL, "")
		t3 := time.Now()
		tEndpoint += t1.Sub(t0)
		tRead += t2.Sub(t1)
		tHTTP += t3.Sub(t2)
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(tEndpoint), "endpoint-MB/s")
	b.ReportMetric(mbps(tRead), "file-read-MB/s")
	b.ReportMetric(mbps(tHTTP), "file-http-MB/s")
	b.ReportMetric(tRead.Seconds()/tEndpoint.Seconds(), "ratio-vs-file-read")
	b.ReportMetric(tHTTP.Seconds()/tEndpoint.Seconds(), "ratio-vs-file-http")
}

// BenchmarkMediaRangeFirstByte measures the time from sending a Range
// request 50 minutes into a 1-hour recording to its first body byte
// (authentication, audit entry, manifest, one part fetched and decrypted).
func BenchmarkMediaRangeFirstByte(b *testing.B) {
	fx := newHourFixture(b)
	size := int64(len(fx.plain))
	off := size * 50 / 60
	url := fx.g.URL() + "/v1/recordings/" + fx.rec.ID + "/media"
	for _, mode := range []struct {
		name  string
		rng   string
		cache bool
	}{
		{"open-ended/cold", fmt.Sprintf("bytes=%d-", off), false},
		{"64KiB/cold", fmt.Sprintf("bytes=%d-%d", off, off+65535), false},
		{"64KiB/warm", fmt.Sprintf("bytes=%d-%d", off, off+65535), true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			api.SetReaderCache(mode.cache)
			defer api.SetReaderCache(true)
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+fx.g.AdminToken)
				req.Header.Set("Range", mode.rng)
				t0 := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var one [1]byte
				if _, err := io.ReadFull(resp.Body, one[:]); err != nil || resp.StatusCode != 206 {
					b.Fatalf("%d %v", resp.StatusCode, err)
				}
				lat = append(lat, time.Since(t0))
				if one[0] != fx.plain[off] {
					b.Fatal("wrong first byte")
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-first-byte-p50")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "ms-first-byte-p95")
		})
	}
}
