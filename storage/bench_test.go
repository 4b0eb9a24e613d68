package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/envelope"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/spool"
)

// audioPart is about 2 seconds of Opus at 32 kbit/s.
const audioPart = 8 << 10

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

func benchDBs(b *testing.B, fn func(b *testing.B, db *gorm.DB)) {
	b.Run("db=sqlite", func(b *testing.B) {
		db, err := meta.Open(context.Background(), meta.Options{SQLitePath: filepath.Join(b.TempDir(), "custodian.db")})
		if err != nil {
			b.Fatal(err)
		}
		defer meta.Close(db)
		fn(b, db)
	})
	if os.Getenv(metatest.PostgresEnv) != "" {
		b.Run("db=postgres", func(b *testing.B) { fn(b, metatest.Postgres(b)) })
	}
}

// BenchmarkWritePart measures Writer.WritePart for a 2-second audio part
// on local disk: seal, spool write + fsync + rename + directory fsync,
// part row insert. Uploads to the disk blob store run in the background
// on the same disk, as in production. Reports p50/p99/max latency.
func BenchmarkWritePart(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *gorm.DB) {
		e := newEnv(b, db, envOptions{})
		ctx := context.Background()
		w, err := e.st.NewWriter(ctx, "acme", newID(), storage.WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		p := partData("bench", 0, audioPart)
		lat := make([]time.Duration, 0, 1024)
		b.SetBytes(audioPart)
		b.ReportAllocs()
		for b.Loop() {
			t0 := time.Now()
			if _, err := w.WritePart(ctx, p); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportLatency(b, lat)
	})
}

// BenchmarkSealDurable is the part of WritePart that makes a part durable,
// without the database: seal, hash and spool Put (fsync, rename, dir fsync).
func BenchmarkSealDurable(b *testing.B) {
	sp, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	key := make([]byte, envelope.KeySize)
	p := partData("bench", 0, audioPart)
	bind := envelope.Binding{Tenant: "acme", RecordingID: "rec_bench", Object: envelope.PartObject(1)}
	ctx := context.Background()
	var buf []byte
	lat := make([]time.Duration, 0, 1024)
	b.SetBytes(audioPart)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		if buf, err = envelope.AppendSeal(buf[:0], key, bind, p); err != nil {
			b.Fatal(err)
		}
		if err := sp.Put(ctx, storage.PartKey("acme", "rec_bench", i), buf, spool.Retention{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		i++
	}
	reportLatency(b, lat)
}

// BenchmarkWritePartConcurrent models the gateway under load: 200
// recordings each write an 8 KiB part every second (twice the default
// part rate), 200 parts/s in all, and reports the per-part latency
// percentiles and the rate achieved ("parts/s").
func BenchmarkWritePartConcurrent(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *gorm.DB) {
		e := newEnv(b, db, envOptions{})
		ctx := context.Background()
		const writers = 200
		const interval = time.Second
		ws := make([]*storage.Writer, writers)
		for i := range ws {
			var err error
			if ws[i], err = e.st.NewWriter(ctx, "acme", newID(), storage.WriterOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		p := partData("bench", 0, audioPart)
		var mu sync.Mutex
		lat := make([]time.Duration, 0, b.N)
		per := (b.N + writers - 1) / writers
		b.SetBytes(audioPart)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for i, w := range ws {
			wg.Go(func() {
				// Spread the writers over the interval, like real calls.
				next := start.Add(interval * time.Duration(i) / writers)
				local := make([]time.Duration, 0, per)
				for range per {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
					t0 := time.Now()
					if _, err := w.WritePart(ctx, p); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "parts/s")
		reportLatency(b, lat)
	})
}

// BenchmarkOpenRead measures reading a 30-part (one minute) audio
// recording from the disk blob store: Open (manifest, listing, key
// unwrap) and Stream.
func BenchmarkOpenRead(b *testing.B) {
	db, err := meta.Open(context.Background(), meta.Options{SQLitePath: filepath.Join(b.TempDir(), "custodian.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer meta.Close(db)
	e := newEnv(b, db, envOptions{})
	rec := newID()
	sizes := make([]int, 30)
	for i := range sizes {
		sizes[i] = audioPart
	}
	writeRecording(b, e.st, "acme", rec, sizes, true)
	e.flush()
	ctx := context.Background()
	b.SetBytes(int64(30 * audioPart))
	b.ReportAllocs()
	for b.Loop() {
		r, err := e.st.Open(ctx, "acme", rec, storage.ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Stream(ctx, discard{}); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
