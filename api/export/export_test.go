package export

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// build writes a bundle zip (unencrypted) with a few files.
func build(t testing.TB, key ed25519.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, Manifest{ExportID: "exp_1", Tenant: "default", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), CreatedBy: "token:tok_1"})
	media := bytes.Repeat([]byte("OggS-media-"), 5000)
	for _, f := range []struct {
		path     string
		compress bool
		data     []byte
	}{
		{"recordings/rec_a/recording.json", true, []byte(`{"id":"rec_a"}`)},
		{"recordings/rec_a/media.ogg", false, media},
		{"recordings/rec_a/completeness.json", true, []byte(`{"packets_lost":2}`)},
		{"recordings/rec_a/transcript.json", true, []byte(`{"segments":[]}`)},
		{"recordings/rec_a/transcript.vtt", true, []byte("WEBVTT\n")},
	} {
		if err := w.AddBytes(f.path, f.compress, f.data); err != nil {
			t.Fatal(err)
		}
	}
	w.AddRecording(Recording{RecordingID: "rec_a", SessionID: "s", ParticipantID: "p", Status: "complete", ContentType: "audio/ogg"})
	w.Omit(Omitted{RecordingID: "rec_b", What: "media", Reason: "key destroyed"})
	if _, err := w.Close(key, "ed25519:test"); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func verifyBytes(t testing.TB, b []byte, opts VerifyOptions) (Result, error) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return Result{}, err
	}
	return Verify(zr, opts)
}

// rewrite copies a zip, letting edit change (or drop, returning nil) each
// entry's content, and add appends entries.
func rewrite(t testing.TB, b []byte, edit func(name string, data []byte) []byte, add map[string][]byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if edit != nil {
			data = edit(f.Name, data)
		}
		if data == nil {
			continue
		}
		fw, _ := zw.Create(f.Name)
		fw.Write(data)
	}
	for name, data := range add {
		fw, _ := zw.Create(name)
		fw.Write(data)
	}
	zw.Close()
	return out.Bytes()
}

func TestRoundTripEncrypted(t *testing.T) {
	key := testKey(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	aw, err := age.Encrypt(&enc, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	aw.Write(build(t, key))
	aw.Close()
	ra, n, err := Open(bytes.NewReader(enc.Bytes()), int64(enc.Len()), id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(ra, n)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(zr, VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 5 || res.Manifest.ExportID != "exp_1" || len(res.Manifest.Recordings) != 1 || len(res.Manifest.Omitted) != 1 ||
		res.Manifest.Omitted[0].Reason != "key destroyed" || res.Bytes < 55000 {
		t.Fatalf("result %+v", res)
	}
	// Another identity cannot open it; a flipped ciphertext byte fails.
	other, _ := age.GenerateX25519Identity()
	if _, _, err := Open(bytes.NewReader(enc.Bytes()), int64(enc.Len()), other); err == nil {
		t.Fatal("opened with the wrong identity")
	}
	bad := bytes.Clone(enc.Bytes())
	bad[len(bad)-100] ^= 1
	if ra, n, err := Open(bytes.NewReader(bad), int64(len(bad)), id); err == nil {
		if zr, err := zip.NewReader(ra, n); err == nil {
			if _, err := Verify(zr, VerifyOptions{}); err == nil {
				t.Fatal("tampered ciphertext verified")
			}
		}
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	key := testKey(t)
	good := build(t, key)
	if _, err := verifyBytes(t, good, VerifyOptions{}); err != nil {
		t.Fatalf("intact bundle: %v", err)
	}
	zr, _ := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	for _, f := range zr.File {
		for _, how := range []string{"flip", "append", "drop"} {
			t.Run(f.Name+"/"+how, func(t *testing.T) {
				b := rewrite(t, good, func(name string, data []byte) []byte {
					if name != f.Name {
						return data
					}
					switch how {
					case "flip":
						data[len(data)/2] ^= 0x20
					case "append":
						data = append(data, ' ')
					case "drop":
						return nil
					}
					return data
				}, nil)
				_, err := verifyBytes(t, b, VerifyOptions{})
				var ve *VerifyError
				if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) {
					t.Fatalf("tampered bundle verified or wrong error: %v", err)
				}
				named := false
				for _, p := range ve.Problems {
					if p.Path == f.Name || (f.Name == SignaturePath || f.Name == ManifestPath) && (p.Path == ManifestPath || p.Path == SignaturePath) {
						named = true
					}
				}
				if !named {
					t.Fatalf("problems do not name %s: %v", f.Name, err)
				}
			})
		}
	}
	t.Run("extra file", func(t *testing.T) {
		b := rewrite(t, good, nil, map[string][]byte{"recordings/rec_a/extra.txt": []byte("planted")})
		_, err := verifyBytes(t, b, VerifyOptions{})
		if err == nil || !strings.Contains(err.Error(), "extra.txt: not in the manifest") {
			t.Fatalf("extra file: %v", err)
		}
	})
	t.Run("duplicate entry", func(t *testing.T) {
		b := rewrite(t, good, nil, map[string][]byte{"recordings/rec_a/media.ogg": []byte("second copy")})
		if _, err := verifyBytes(t, b, VerifyOptions{}); err == nil {
			t.Fatal("duplicate entry verified")
		}
	})
	t.Run("re-signed by another key", func(t *testing.T) {
		other := build(t, testKey(t))
		if _, err := verifyBytes(t, other, VerifyOptions{}); err != nil {
			t.Fatalf("self-consistent bundle: %v", err)
		}
		if _, err := verifyBytes(t, other, VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)}); err == nil {
			t.Fatal("bundle signed by another key passed with the trusted key pinned")
		}
	})
}

func TestWriterRejectsBadPaths(t *testing.T) {
	w := NewWriter(io.Discard, Manifest{})
	for _, p := range []string{"", "../x", "/abs", "a//b", "a/.hidden", "a\\b", ManifestPath, SignaturePath, "a/b c"} {
		if err := w.AddBytes(p, false, nil); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	if err := w.AddBytes("ok/file.json", true, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := w.AddBytes("ok/file.json", true, []byte("{}")); err == nil {
		t.Fatal("duplicate path accepted")
	}
}

func TestParseRecipient(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	h, _ := age.GenerateHybridIdentity()
	for _, s := range []string{id.Recipient().String(), "  " + id.Recipient().String() + "\n", h.Recipient().String()} {
		if _, err := ParseRecipient(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "age1", "AGE-SECRET-KEY-1XYZ", id.String(), "ssh-ed25519 AAAA", id.Recipient().String() + "x", "age1pq1garbage"} {
		if _, err := ParseRecipient(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzVerify(f *testing.F) {
	key := testKey(f)
	good := build(f, key)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		res, err := Verify(zr, VerifyOptions{PublicKey: key.Public().(ed25519.PublicKey)})
		if err == nil && !bytes.Equal(b, good) && res.Manifest.ExportID != "exp_1" {
			t.Fatalf("a bundle not signed by the key verified: %+v", res)
		}
	})
}

func FuzzParseRecipient(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	f.Add(id.Recipient().String())
	f.Add("age1pq1")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecipient(s)
		if err == nil && r == nil {
			t.Fatal("nil recipient without error")
		}
	})
}
