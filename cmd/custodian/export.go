package main

import (
	"archive/zip"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"filippo.io/age"
	"github.com/custodian/custodian/api/export"
)

func init() {
	registerGroup("export", "`export verify BUNDLE --identity KEYFILE` decrypts an eDiscovery bundle and checks every hash and the signature", subcommand{"verify", cmdExportVerify})
}

func cmdExportVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export verify", stderr)
	identity := fs.String("identity", "", "age identity file (AGE-SECRET-KEY-1…), as made by age-keygen (required)")
	pubKey := fs.String("public-key", "", "the gateway's Ed25519 signing key (base64, from GET /v1/exports/{id}); when set, only a manifest signed by it passes")
	extract := fs.String("extract", "", "after a successful verification, write the bundle's files into this directory")
	var bundle string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		bundle, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if bundle == "" && fs.NArg() > 0 {
		bundle = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if bundle == "" || *identity == "" {
		return usageErr("usage: custodian export verify BUNDLE --identity KEYFILE")
	}
	var pinned ed25519.PublicKey
	if *pubKey != "" {
		b, err := base64.StdEncoding.DecodeString(*pubKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return usageErr("--public-key: not a base64 Ed25519 public key")
		}
		pinned = b
	}
	kf, err := os.Open(*identity)
	if err != nil {
		return err
	}
	ids, err := age.ParseIdentities(kf)
	kf.Close()
	if err != nil {
		return fmt.Errorf("identity %s: %w", *identity, err)
	}
	f, err := os.Open(bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ra, size, err := export.Open(f, fi.Size(), ids...)
	if err != nil {
		return fmt.Errorf("bundle %s FAILED: %w", bundle, err)
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return fmt.Errorf("bundle %s FAILED: not a readable zip after decryption: %w", bundle, err)
	}
	res, err := export.Verify(zr, export.VerifyOptions{PublicKey: pinned})
	var ve *export.VerifyError
	if errors.As(err, &ve) {
		fmt.Fprintf(stdout, "bundle %s FAILED verification:\n", bundle)
		for _, p := range ve.Problems {
			if p.Path != "" {
				fmt.Fprintf(stdout, "  %s: %s\n", p.Path, p.Reason)
			} else {
				fmt.Fprintf(stdout, "  %s\n", p.Reason)
			}
		}
		return fmt.Errorf("bundle %s: %d problems", bundle, len(ve.Problems))
	}
	if err != nil {
		return fmt.Errorf("bundle %s FAILED: %w", bundle, err)
	}
	m := res.Manifest
	signer := "signed by the key named in the bundle (pass --public-key to pin the gateway's key)"
	if pinned != nil {
		signer = "signed by the pinned gateway key"
	}
	fmt.Fprintf(stdout, "bundle %s OK: export %s of tenant %s, %d recordings, %d files, %d bytes, key %s, %s\n",
		bundle, m.ExportID, m.Tenant, len(m.Recordings), res.Files, res.Bytes, m.KeyID, signer)
	for _, o := range m.Omitted {
		fmt.Fprintf(stdout, "  omitted: %s of recording %s: %s\n", o.What, o.RecordingID, o.Reason)
	}
	if *extract != "" {
		if err := extractBundle(zr, m, *extract); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "extracted to %s\n", *extract)
	}
	return nil
}

// extractBundle writes the verified files (paths checked by
// export.ValidPath, so none escapes dir), the manifest and the signature.
func extractBundle(zr *zip.Reader, m export.Manifest, dir string) error {
	names := []string{export.ManifestPath, export.SignaturePath}
	for _, f := range m.Files {
		if !export.ValidPath(f.Path) {
			return fmt.Errorf("extract: invalid path %q", f.Path)
		}
		names = append(names, f.Path)
	}
	for _, name := range names {
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		rc, err := zr.Open(name)
		if err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			rc.Close()
			return err
		}
		_, err = io.Copy(out, rc)
		rc.Close()
		if err = errors.Join(err, out.Close()); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
	}
	return nil
}
