package export

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// Format identifies the bundle layout and manifest version.
const Format = "custodian-export-v1"

// Names of the manifest and its signature inside the zip.
const (
	ManifestPath  = "manifest.json"
	SignaturePath = "manifest.sig"
)

// SignatureDomain prefixes the manifest bytes in the signed message.
const SignatureDomain = "custodian-export-manifest-v1\n"

// maxManifestBytes bounds the manifest and signature read by Verify.
const maxManifestBytes = 64 << 20

// Manifest lists everything in a bundle.
type Manifest struct {
	Format    string         `json:"format"`
	ExportID  string         `json:"export_id"`
	Tenant    string         `json:"tenant"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by"`
	Request   map[string]any `json:"request,omitempty"`
	// KeyID and PublicKey (base64) name the key that signed the manifest.
	KeyID      string      `json:"key_id"`
	PublicKey  string      `json:"public_key"`
	Recordings []Recording `json:"recordings"`
	// Omitted lists what was selected but could not be included.
	Omitted []Omitted `json:"omitted"`
	Files   []File    `json:"files"`
}

// Recording is one recording in a bundle.
type Recording struct {
	RecordingID   string `json:"recording_id"`
	SessionID     string `json:"session_id"`
	ParticipantID string `json:"participant_id"`
	Status        string `json:"status"`
	ContentType   string `json:"content_type"`
	// Files are the bundle paths belonging to it.
	Files []string `json:"files"`
}

// Omitted is something selected for export that is not in the bundle.
type Omitted struct {
	RecordingID string `json:"recording_id"`
	What        string `json:"what"`   // recording | media | transcript
	Reason      string `json:"reason"` // e.g. "key destroyed"
}

// File is one file of the bundle with its hash.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Signature is the content of manifest.sig.
type Signature struct {
	Algorithm string `json:"algorithm"` // ed25519
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"` // base64
	Signature string `json:"signature"`  // base64, over SignatureDomain + manifest.json
}

// Writer writes a bundle's zip. It is not safe for concurrent use.
type Writer struct {
	zw     *zip.Writer
	m      Manifest
	paths  map[string]bool
	closed bool
}

// NewWriter starts a bundle zip on w with header fields from m (format,
// export id, tenant, creation, request); files and recordings are added
// with Add and AddRecording.
func NewWriter(w io.Writer, m Manifest) *Writer {
	m.Format = Format
	m.Files, m.Recordings, m.Omitted = nil, nil, nil
	return &Writer{zw: zip.NewWriter(w), m: m, paths: map[string]bool{}}
}

// ValidPath reports whether p is a bundle path this package writes and
// accepts: slash-separated segments of letters, digits, '-', '_', '.', ':'
// and '@', none empty or starting with '.', not the manifest or signature.
func ValidPath(p string) bool {
	if p == "" || len(p) > 512 || p == ManifestPath || p == SignaturePath {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
		for _, r := range seg {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			case r == '-', r == '_', r == '.', r == ':', r == '@':
			default:
				return false
			}
		}
	}
	return true
}

// Add writes one file: fill writes its content, which is hashed on the
// way. compress deflates it (transcripts, JSON); media is stored as is.
func (w *Writer) Add(path string, compress bool, fill func(io.Writer) error) error {
	if w.closed {
		return errors.New("export: add to a closed bundle")
	}
	if !ValidPath(path) || w.paths[path] {
		return fmt.Errorf("export: add %q: invalid or duplicate path", path)
	}
	w.paths[path] = true
	method := zip.Store
	if compress {
		method = zip.Deflate
	}
	fw, err := w.zw.CreateHeader(&zip.FileHeader{Name: path, Method: method, Modified: w.m.CreatedAt})
	if err != nil {
		return fmt.Errorf("export: add %s: %w", path, err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(fw, h)}
	if err := fill(cw); err != nil {
		return fmt.Errorf("export: add %s: %w", path, err)
	}
	w.m.Files = append(w.m.Files, File{Path: path, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// AddBytes adds a file with the given content.
func (w *Writer) AddBytes(path string, compress bool, b []byte) error {
	return w.Add(path, compress, func(dst io.Writer) error { _, err := dst.Write(b); return err })
}

// AddRecording lists a recording in the manifest.
func (w *Writer) AddRecording(r Recording) { w.m.Recordings = append(w.m.Recordings, r) }

// Omit lists something that could not be included.
func (w *Writer) Omit(o Omitted) { w.m.Omitted = append(w.m.Omitted, o) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Close writes the manifest and its signature with key (named keyID) and
// finishes the zip (it does not close the underlying writer). It returns
// the manifest as written.
func (w *Writer) Close(key ed25519.PrivateKey, keyID string) (Manifest, error) {
	if w.closed {
		return Manifest{}, errors.New("export: bundle already closed")
	}
	w.closed = true
	if len(key) != ed25519.PrivateKeySize {
		return Manifest{}, errors.New("export: signing key is not an Ed25519 private key")
	}
	m := w.m
	m.KeyID = keyID
	m.PublicKey = base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	if m.Recordings == nil {
		m.Recordings = []Recording{}
	}
	if m.Omitted == nil {
		m.Omitted = []Omitted{}
	}
	if m.Files == nil {
		m.Files = []File{}
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("export: encode manifest: %w", err)
	}
	mb = append(mb, '\n')
	sig := Signature{
		Algorithm: "ed25519", KeyID: keyID, PublicKey: m.PublicKey,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, signedMessage(mb))),
	}
	sb, err := encodeSignature(sig)
	if err != nil {
		return Manifest{}, fmt.Errorf("export: encode signature: %w", err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{ManifestPath, mb}, {SignaturePath, sb}} {
		fw, err := w.zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: m.CreatedAt})
		if err != nil {
			return Manifest{}, fmt.Errorf("export: write %s: %w", f.name, err)
		}
		if _, err := fw.Write(f.b); err != nil {
			return Manifest{}, fmt.Errorf("export: write %s: %w", f.name, err)
		}
	}
	if err := w.zw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("export: finish zip: %w", err)
	}
	return m, nil
}

func encodeSignature(sig Signature) ([]byte, error) {
	b, err := json.MarshalIndent(sig, "", "  ")
	return append(b, '\n'), err
}

func signedMessage(manifest []byte) []byte {
	return append([]byte(SignatureDomain), manifest...)
}

// ParseRecipient parses an age recipient for a bundle: a native X25519
// public key ("age1…") or a post-quantum hybrid one ("age1pq1…").
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "age1pq1") {
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, fmt.Errorf("export: recipient: %w", err)
		}
		return r, nil
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, fmt.Errorf("export: recipient: %w", err)
	}
	return r, nil
}

// ErrTampered is wrapped by every *VerifyError.
var ErrTampered = errors.New("export: bundle failed verification")

// Problem is one thing wrong with a bundle.
type Problem struct {
	Path   string // the file at fault, "" for the bundle as a whole
	Reason string
}

// VerifyError lists every problem Verify found.
type VerifyError struct {
	Problems []Problem
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "export: bundle failed verification (%d problems)", len(e.Problems))
	for i, p := range e.Problems {
		if i == 10 {
			fmt.Fprintf(&b, "; …")
			break
		}
		if p.Path != "" {
			fmt.Fprintf(&b, "; %s: %s", p.Path, p.Reason)
		} else {
			fmt.Fprintf(&b, "; %s", p.Reason)
		}
	}
	return b.String()
}

// Unwrap returns ErrTampered.
func (e *VerifyError) Unwrap() error { return ErrTampered }

// VerifyOptions adjust Verify.
type VerifyOptions struct {
	// PublicKey, if set, is the only key the manifest may be signed with
	// (the gateway's signing key, from GET /v1/exports/{id} or
	// /v1/audit/verify, obtained over a trusted channel). Without it the
	// signature is checked against the key named in the bundle, which
	// proves the bundle is unchanged since signing but not who signed it.
	PublicKey ed25519.PublicKey
}

// Result describes a verified bundle.
type Result struct {
	Manifest Manifest
	Files    int   // files checked (besides the manifest and signature)
	Bytes    int64 // their total size
}

// Open decrypts an encrypted bundle of size bytes for random access with
// the recipient's identities (age.ParseIdentities). The result is what
// zip.NewReader takes; it reads and authenticates chunks as they are
// used.
func Open(src io.ReaderAt, size int64, identities ...age.Identity) (io.ReaderAt, int64, error) {
	ra, n, err := age.DecryptReaderAt(src, size, identities...)
	if err != nil {
		return nil, 0, fmt.Errorf("export: decrypt bundle: %w", err)
	}
	return ra, n, nil
}

// Verify checks a decrypted bundle: the manifest's signature, then that
// every file listed is present exactly once with its size and SHA-256 and
// that no other file is present. It returns a *VerifyError listing every
// problem (errors.Is ErrTampered), or another error when the bundle
// cannot be read at all.
func Verify(zr *zip.Reader, opts VerifyOptions) (Result, error) {
	var probs []Problem
	bad := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	entries := map[string][]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = append(entries[f.Name], f)
	}
	read := func(name string) []byte {
		fs := entries[name]
		if len(fs) != 1 {
			bad(name, "present %d times, want once", len(fs))
			return nil
		}
		rc, err := fs[0].Open()
		if err != nil {
			bad(name, "unreadable: %v", err)
			return nil
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
		if err != nil || len(b) > maxManifestBytes {
			bad(name, "unreadable or too large: %v", err)
			return nil
		}
		return b
	}
	mb, sb := read(ManifestPath), read(SignaturePath)
	if mb == nil || sb == nil {
		return Result{}, &VerifyError{Problems: probs}
	}
	var m Manifest
	var sig Signature
	if err := strictJSON(sb, &sig); err != nil {
		bad(SignaturePath, "malformed: %v", err)
		return Result{}, &VerifyError{Problems: probs}
	}
	// The signature file is not covered by itself: accept only the exact
	// bytes Close writes, so no change to any file goes unnoticed.
	if canon, err := encodeSignature(sig); err != nil || !bytes.Equal(canon, sb) {
		bad(SignaturePath, "not in its canonical form: changed after signing")
		return Result{}, &VerifyError{Problems: probs}
	}
	pub, err := base64.StdEncoding.DecodeString(sig.PublicKey)
	sigBytes, err2 := base64.StdEncoding.DecodeString(sig.Signature)
	switch {
	case sig.Algorithm != "ed25519" || err != nil || len(pub) != ed25519.PublicKeySize || err2 != nil:
		bad(SignaturePath, "not an Ed25519 signature with a public key")
	case opts.PublicKey != nil && !opts.PublicKey.Equal(ed25519.PublicKey(pub)):
		bad(SignaturePath, "signed by key %s, not the trusted key", sig.KeyID)
	case !ed25519.Verify(ed25519.PublicKey(pub), signedMessage(mb), sigBytes):
		bad(ManifestPath, "signature does not verify: the manifest was changed")
	}
	if len(probs) > 0 {
		return Result{}, &VerifyError{Problems: probs}
	}
	// The manifest is authentic from here on.
	if err := strictJSON(mb, &m); err != nil {
		bad(ManifestPath, "malformed: %v", err)
		return Result{}, &VerifyError{Problems: probs}
	}
	if m.Format != Format {
		bad(ManifestPath, "format %q, want %q", m.Format, Format)
	}
	if m.PublicKey != sig.PublicKey || m.KeyID != sig.KeyID {
		bad(ManifestPath, "names key %s, signed by %s", m.KeyID, sig.KeyID)
	}
	res := Result{Manifest: m}
	listed := map[string]bool{}
	for _, f := range m.Files {
		if !ValidPath(f.Path) || listed[f.Path] {
			bad(f.Path, "invalid or duplicate path in the manifest")
			continue
		}
		listed[f.Path] = true
		fs := entries[f.Path]
		if len(fs) != 1 {
			bad(f.Path, "present %d times, want once", len(fs))
			continue
		}
		size, sum, err := hashEntry(fs[0], f.Size)
		switch {
		case err != nil:
			bad(f.Path, "unreadable: %v", err)
		case size != f.Size:
			bad(f.Path, "size %d, manifest says %d", size, f.Size)
		case sum != f.SHA256:
			bad(f.Path, "SHA-256 %s, manifest says %s", sum, f.SHA256)
		default:
			res.Files++
			res.Bytes += size
		}
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name != ManifestPath && name != SignaturePath && !listed[name] {
			bad(name, "not in the manifest")
		}
	}
	if len(probs) > 0 {
		return res, &VerifyError{Problems: probs}
	}
	return res, nil
}

// hashEntry reads a zip entry (at most want+1 bytes, so a zip bomb cannot
// exhaust memory or time) and returns its size and hex SHA-256. The zip
// reader also checks the entry's CRC-32.
func hashEntry(f *zip.File, want int64) (int64, string, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, want+1))
	if err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}
