package spool_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/custodian/custodian/storage/spool"
)

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

// BenchmarkDurable compares Spool.Put of an 8 KiB sealed part with the
// floor the disk sets for the same guarantee: write a temp file, fsync,
// rename, fsync the directory, with plain os calls (impl=os). Compare with
// `benchstat -col /impl`.
func BenchmarkDurable(b *testing.B) {
	data := make([]byte, 8<<10+214)
	b.Run("impl=spool", func(b *testing.B) {
		s, err := spool.Open(b.TempDir(), spool.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		lat := make([]time.Duration, 0, 1024)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t0 := time.Now()
			if err := s.Put(context.Background(), fmt.Sprintf("t/recordings/r/part-%06d.age", i), data, spool.Retention{}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			i++
		}
		reportLatency(b, lat)
	})
	b.Run("impl=os", func(b *testing.B) {
		dir := b.TempDir()
		lat := make([]time.Duration, 0, 1024)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t0 := time.Now()
			tmp := filepath.Join(dir, fmt.Sprintf("tmp-%d", i))
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			f.Write(data)
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("%d.obj", i))); err != nil {
				b.Fatal(err)
			}
			d, _ := os.Open(dir)
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			d.Close()
			lat = append(lat, time.Since(t0))
			i++
		}
		reportLatency(b, lat)
	})
}
