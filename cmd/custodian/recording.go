package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

func init() {
	registerGroup("recording", "`recording get ID -o FILE` decrypts a recording; `recording verify ID` checks every part", subcommand{"get", cmdRecordingGet}, subcommand{"verify", cmdRecordingVerify})
}

// parseIDAndFlags accepts the recording id before or after the flags.
func parseIDAndFlags(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) (string, error) {
	var id string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if id == "" && len(fs.Args()) > 0 {
		id = fs.Args()[0]
	} else if len(fs.Args()) > 0 {
		return "", usageErr("unexpected arguments %q", fs.Args())
	}
	if id == "" {
		return "", usageErr("a recording id is required")
	}
	if !meta.ValidID(id) {
		return "", usageErr("%q is not a valid recording id", id)
	}
	return id, nil
}

// openRecording opens the local state and the recording id in it; done
// closes both.
func openRecording(ctx context.Context, sf stateFlags, id string, stderr io.Writer) (rec meta.Recording, r *storage.Reader, done func(), err error) {
	g, err := openLocal(ctx, sf, stderr)
	if err != nil {
		return rec, nil, nil, err
	}
	rec, r, err = findRecording(ctx, g, id)
	if err != nil {
		g.Close(context.WithoutCancel(ctx))
		return rec, nil, nil, err
	}
	return rec, r, func() {
		r.Close()
		g.Close(context.WithoutCancel(ctx))
	}, nil
}

func findRecording(ctx context.Context, g *gateway.Gateway, id string) (meta.Recording, *storage.Reader, error) {
	var rec meta.Recording
	if err := g.DB.WithContext(ctx).First(&rec, "id = ?", id).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return rec, nil, fmt.Errorf("recording %s not found", id)
		}
		return rec, nil, err
	}
	allow := rec.Status != meta.StatusComplete
	r, err := g.Store.Open(ctx, rec.TenantID, rec.ID, storage.ReadOptions{AllowIncomplete: allow})
	return rec, r, err
}

func cmdRecordingGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recording get", stderr)
	var sf stateFlags
	sf.register(fs)
	out := fs.String("o", "", "output file (- for standard output)")
	id, err := parseIDAndFlags(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usageErr("-o FILE is required")
	}
	rec, r, done, err := openRecording(ctx, sf, id, stderr)
	if err != nil {
		return err
	}
	defer done()
	if rec.Status != meta.StatusComplete {
		fmt.Fprintf(stderr, "warning: recording %s is %s (manifest not complete)\n", rec.ID, rec.Status)
	}
	var w io.Writer
	var f *os.File
	tmp := ""
	if *out == "-" {
		w = stdout
	} else {
		tmp = *out + ".partial"
		f, err = os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		w = f
	}
	bar := newProgress(stderr, filepath.Base(*out), r.Size(), "B")
	n, err := r.Stream(ctx, io.MultiWriter(w, bar))
	bar.Finish()
	if f != nil {
		err = errors.Join(err, f.Sync(), f.Close())
		if err == nil {
			err = os.Rename(tmp, *out)
		}
	}
	if err != nil {
		return err
	}
	if *out != "-" {
		fmt.Fprintf(stdout, "%s: %d bytes, %s, %d parts\n", *out, n, rec.ContentType, len(r.Manifest().Parts))
	}
	return nil
}

func cmdRecordingVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recording verify", stderr)
	var sf stateFlags
	sf.register(fs)
	id, err := parseIDAndFlags(fs, args)
	if err != nil {
		return err
	}
	rec, r, done, err := openRecording(ctx, sf, id, stderr)
	if err != nil {
		return err
	}
	defer done()
	m := r.Manifest()
	report, finish := itemProgress(stderr, "verify")
	err = r.Verify(ctx, report)
	finish()
	if err != nil {
		return fmt.Errorf("recording %s FAILED verification: %w", rec.ID, err)
	}
	fmt.Fprintf(stdout, "recording %s OK: %d parts, %d bytes, manifest %s, complete=%v\n", rec.ID, len(m.Parts), m.PlainSize, m.SHA256, m.Complete)
	return nil
}
