package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/disk"
	"github.com/custodian/custodian/storage/keyring"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"github.com/custodian/custodian/storage/spool"
)

// TestDiskAdoptsSpoolFiles: with the disk blob store on the spool's
// filesystem, spooled parts and the manifest become objects by rename;
// the recording reads back, its part rows are marked uploaded, and the
// spool is empty.
func TestDiskAdoptsSpoolFiles(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		data := t.TempDir()
		d, err := disk.New(filepath.Join(data, "objects"))
		if err != nil {
			t.Fatal(err)
		}
		kr, _, err := keyring.OpenOrCreate(filepath.Join(data, "keys", "keyring.json"), false)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := spool.Open(filepath.Join(data, "spool"), spool.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var uploads atomic.Int32
		st := storage.New(db, d, kr, sp, storage.Options{Provider: "local", Observer: func(o storage.Observation) {
			if o.Op == "upload" && o.Err == nil {
				uploads.Add(1)
			}
		}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		defer st.Close(ctx)
		rec := newID()
		want, m := writeRecording(t, st, "acme", rec, []int{100, 8000, 3}, true)
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, st, "acme", rec, storage.ReadOptions{}); !bytes.Equal(got, want) {
			t.Fatal("recording differs")
		}
		if ents, _ := os.ReadDir(filepath.Join(data, "spool")); len(ents) != 0 {
			t.Errorf("spool not empty: %v", ents)
		}
		// Each object is the sealed bytes the manifest describes.
		for _, p := range m.Parts {
			b, err := d.Get(ctx, storage.PartKey("acme", rec, p.N))
			if err != nil || int64(len(b)) != p.CipherSize {
				t.Errorf("part %d: %d bytes, %v; manifest says %d", p.N, len(b), err, p.CipherSize)
			}
		}
		var rows []meta.Part
		db.Where("recording_id = ?", rec).Order("n").Find(&rows)
		if len(rows) != 3 {
			t.Fatalf("%d part rows", len(rows))
		}
		for _, r := range rows {
			if !r.Uploaded {
				t.Errorf("part %d not marked uploaded", r.N)
			}
		}
		if n := uploads.Load(); n != 4 {
			t.Errorf("%d upload observations, want 4 (3 parts, the manifest)", n)
		}
	})
}
