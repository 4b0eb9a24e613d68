package storage_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/spool"
)

// processCPU is the process's user and system CPU time (system time
// includes the kernel's fsync and journal work).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPartLifecycle is the whole cost of one 2-second audio part
// with the embedded defaults, as the gateway pays it under load: seal,
// spool (write, fsync, rename, directory fsync), part row, upload to the
// disk blob store, uploaded mark, spool cleanup. Eight recordings write
// in turn (uploads overlap as in production); the uploads are waited for
// at the end. cpu-us/op is the process's CPU time (user + system) per
// part, which other load on the machine does not inflate the way it
// inflates wall time.
func BenchmarkPartLifecycle(b *testing.B) {
	benchDBs(b, func(b *testing.B, db *gorm.DB) {
		data := b.TempDir()
		d, err := disk.New(filepath.Join(data, "objects"))
		if err != nil {
			b.Fatal(err)
		}
		kr, _, err := keyring.OpenOrCreate(filepath.Join(data, "keys", "keyring.json"), false)
		if err != nil {
			b.Fatal(err)
		}
		sp, err := spool.Open(filepath.Join(data, "spool"), spool.Options{})
		if err != nil {
			b.Fatal(err)
		}
		st := storage.New(db, d, kr, sp, storage.Options{Provider: "local"})
		ctx := context.Background()
		defer st.Close(ctx)
		ws := make([]*storage.Writer, 8)
		for i := range ws {
			if ws[i], err = st.NewWriter(ctx, "acme", newID(), storage.WriterOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		part := make([]byte, audioPart)
		b.SetBytes(audioPart)
		b.ReportAllocs()
		cpu0 := processCPU()
		i := 0
		for b.Loop() {
			if _, err := ws[i%len(ws)].WritePart(ctx, part); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if err := st.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		for _, w := range ws {
			if _, err := w.Close(ctx, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}
