package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custodian/custodian/storage/keyring"
)

var ctx = context.Background()

func ec(tenant, rec string) map[string]string {
	return map[string]string{"tenant": tenant, "recording_id": rec}
}

func keyPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "data", "keys", "keyring.json")
}

func mustCreate(t testing.TB) (*keyring.Keyring, string) {
	t.Helper()
	p := keyPath(t)
	kr, err := keyring.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	return kr, p
}

func dek(n byte) []byte { return bytes.Repeat([]byte{n}, 32) }

func TestCreateModesAndContents(t *testing.T) {
	kr, p := mustCreate(t)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring file mode %o, want 600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("keys directory mode %o, want 700", di.Mode().Perm())
	}
	keys := kr.Keys()
	if len(keys) != 1 || keys[0].Status != keyring.StatusPrimary || keys[0].ID != kr.PrimaryID() {
		t.Fatalf("new keyring keys = %+v", keys)
	}
	// The file holds exactly: version, and per key id, created, status, key.
	var raw map[string]any
	data, _ := os.ReadFile(p)
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 || raw["version"] == nil || raw["keys"] == nil {
		t.Errorf("unexpected top-level fields: %v", keysOf(raw))
	}
	k0 := raw["keys"].([]any)[0].(map[string]any)
	if len(k0) != 4 {
		t.Errorf("key entry has fields %v, want id, created, status, key", keysOf(k0))
	}
	b, err := base64.StdEncoding.DecodeString(k0["key"].(string))
	if err != nil || len(b) != 32 || bytes.Equal(b, make([]byte, 32)) {
		t.Errorf("key is not 32 random bytes")
	}
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCreateRefusesExisting(t *testing.T) {
	_, p := mustCreate(t)
	before, _ := os.ReadFile(p)
	if _, err := keyring.Create(p); !errors.Is(err, keyring.ErrExists) {
		t.Fatalf("Create over an existing keyring = %v, want ErrExists", err)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Fatal("Create changed an existing keyring")
	}
	leftovers(t, filepath.Dir(p))
}

// leftovers fails if temp files remain in dir.
func leftovers(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	kr, p := mustCreate(t)
	for _, n := range []int{1, 16, 32, 64} {
		d := make([]byte, n)
		rand.Read(d)
		w, id, err := kr.Wrap(ctx, d, ec("default", "rec1"))
		if err != nil {
			t.Fatal(err)
		}
		if id != kr.PrimaryID() {
			t.Errorf("Wrap used %s, primary is %s", id, kr.PrimaryID())
		}
		// A 1-byte key occurs in any ciphertext by chance; from 16 bytes
		// on, finding it in the wrapped form means it was not encrypted.
		if n >= 16 && bytes.Contains(w, d) {
			t.Errorf("wrapped key contains the data key in clear")
		}
		got, err := kr.Unwrap(ctx, w, id, ec("default", "rec1"))
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Unwrap = %x, %v", got, err)
		}
		// A fresh Open of the same file unwraps too.
		kr2, err := keyring.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := kr2.Unwrap(ctx, w, id, ec("default", "rec1")); err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Unwrap after reopen = %x, %v", got, err)
		}
	}
	w1, _, _ := kr.Wrap(ctx, dek(1), ec("t", "r"))
	w2, _, _ := kr.Wrap(ctx, dek(1), ec("t", "r"))
	if bytes.Equal(w1, w2) {
		t.Error("two wraps of one key are identical (nonce reuse?)")
	}
	for _, bad := range [][]byte{nil, make([]byte, 1025)} {
		if _, _, err := kr.Wrap(ctx, bad, ec("t", "r")); err == nil {
			t.Errorf("Wrap of a %d-byte key succeeded", len(bad))
		}
	}
}

func TestUnwrapContextMismatch(t *testing.T) {
	kr, _ := mustCreate(t)
	good := map[string]string{"tenant": "acme", "recording_id": "rec1"}
	w, id, err := kr.Wrap(ctx, dek(7), good)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ec   map[string]string
	}{
		{"other recording", map[string]string{"tenant": "acme", "recording_id": "rec2"}},
		{"other tenant", map[string]string{"tenant": "evil", "recording_id": "rec1"}},
		{"missing recording", map[string]string{"tenant": "acme"}},
		{"extra key", map[string]string{"tenant": "acme", "recording_id": "rec1", "part": "1"}},
		{"nil", nil},
		{"keys swapped", map[string]string{"recording_id": "acme", "tenant": "rec1"}},
		{"boundary moved", map[string]string{"tenant": "acmer", "ecording_id": "rec1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kr.Unwrap(ctx, w, id, tt.ec)
			if !errors.Is(err, keyring.ErrUnwrap) || got != nil {
				t.Fatalf("Unwrap with context %v = %x, %v; want ErrUnwrap", tt.ec, got, err)
			}
		})
	}
	// Map order does not matter: the encoding is canonical.
	same := map[string]string{}
	same["recording_id"] = "rec1"
	same["tenant"] = "acme"
	if _, err := kr.Unwrap(ctx, w, id, same); err != nil {
		t.Fatalf("Unwrap with an equal context: %v", err)
	}
}

func TestUnwrapTampered(t *testing.T) {
	kr, _ := mustCreate(t)
	c := ec("t", "r")
	w, id, err := kr.Wrap(ctx, dek(3), c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		bad := bytes.Clone(w)
		bad[i] ^= 0x01
		if got, err := kr.Unwrap(ctx, bad, id, c); !errors.Is(err, keyring.ErrUnwrap) || got != nil {
			t.Fatalf("flipped byte %d: Unwrap = %x, %v; want ErrUnwrap", i, got, err)
		}
	}
	for n := range len(w) {
		if _, err := kr.Unwrap(ctx, w[:n], id, c); !errors.Is(err, keyring.ErrUnwrap) {
			t.Fatalf("truncated to %d bytes: %v; want ErrUnwrap", n, err)
		}
	}
	if _, err := kr.Unwrap(ctx, w, "kek-0000000000000000", c); !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Fatalf("unknown KEK id: %v; want ErrUnknownKEK", err)
	}
}

func TestRotation(t *testing.T) {
	kr, p := mustCreate(t)
	c := ec("default", "rec-old")
	oldID := kr.PrimaryID()
	wOld, id, err := kr.Wrap(ctx, dek(1), c)
	if err != nil || id != oldID {
		t.Fatal(err)
	}
	newID, err := kr.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newID == oldID || kr.PrimaryID() != newID {
		t.Fatalf("after Rotate primary = %s (returned %s, old %s)", kr.PrimaryID(), newID, oldID)
	}
	status := map[string]string{}
	for _, k := range kr.Keys() {
		status[k.ID] = k.Status
	}
	if status[oldID] != keyring.StatusRetired || status[newID] != keyring.StatusPrimary || len(status) != 2 {
		t.Fatalf("statuses after Rotate = %v", status)
	}
	// Old wrapped key still opens with the retired KEK...
	if got, err := kr.Unwrap(ctx, wOld, oldID, c); err != nil || !bytes.Equal(got, dek(1)) {
		t.Fatalf("Unwrap under retired KEK = %x, %v", got, err)
	}
	// ...and Wrap now uses the new one (re-wrap as `keys rotate` does).
	wNew, id, err := kr.Wrap(ctx, dek(1), c)
	if err != nil || id != newID {
		t.Fatalf("Wrap after Rotate used %s, %v; want %s", id, err, newID)
	}
	// A wrapped key does not open under the other KEK's id.
	if _, err := kr.Unwrap(ctx, wNew, oldID, c); !errors.Is(err, keyring.ErrUnwrap) {
		t.Fatalf("new wrap under old id: %v; want ErrUnwrap", err)
	}
	// The rotation is on disk, mode kept, no temp files.
	kr2, err := keyring.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if kr2.PrimaryID() != newID {
		t.Fatalf("reopened primary %s, want %s", kr2.PrimaryID(), newID)
	}
	if got, err := kr2.Unwrap(ctx, wOld, oldID, c); err != nil || !bytes.Equal(got, dek(1)) {
		t.Fatalf("reopened Unwrap under retired KEK = %v", err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after rotate %o", fi.Mode().Perm())
	}
	leftovers(t, filepath.Dir(p))

	third, err := kr2.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr2.Unwrap(ctx, wOld, oldID, c); err != nil || !bytes.Equal(got, dek(1)) {
		t.Fatalf("Unwrap under twice-retired KEK: %v", err)
	}
	if n := len(kr2.Keys()); n != 3 || kr2.PrimaryID() != third {
		t.Fatalf("after second rotation: %d keys, primary %s", n, kr2.PrimaryID())
	}
}

// A running server keeps its Keyring open while `custodian keys rotate`
// rotates and re-wraps in another process: the server must unwrap keys
// wrapped under the new KEK and wrap new keys with it.
func TestRotationByAnotherProcess(t *testing.T) {
	server, p := mustCreate(t)
	cli, err := keyring.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	newID, err := cli.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, id, err := cli.Wrap(ctx, dek(9), ec("t", "r"))
	if err != nil || id != newID {
		t.Fatal(err)
	}
	if got, err := server.Unwrap(ctx, w, id, ec("t", "r")); err != nil || !bytes.Equal(got, dek(9)) {
		t.Fatalf("server Unwrap of a key wrapped after another process rotated: %v", err)
	}
	if _, id, err := server.Wrap(ctx, dek(1), ec("t", "r")); err != nil || id != newID {
		t.Fatalf("server Wrap after rotation used %s, %v; want %s", id, err, newID)
	}
}

func TestConcurrentRotations(t *testing.T) {
	a, p := mustCreate(t)
	b, err := keyring.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make(chan string, 6)
	for i := range 6 {
		kr := a
		if i%2 == 1 {
			kr = b
		}
		wg.Go(func() {
			id, err := kr.Rotate(ctx)
			if err != nil {
				t.Error(err)
			}
			ids <- id
		})
	}
	wg.Wait()
	close(ids)
	final, err := keyring.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range final.Keys() {
		got[k.ID] = k.Status
	}
	if len(got) != 7 {
		t.Fatalf("after 6 concurrent rotations the file holds %d keys, want 7 (a rotation was lost)", len(got))
	}
	for id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("rotated key %s missing from the file", id)
		}
	}
	leftovers(t, filepath.Dir(p))
}

func writeRaw(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

const validKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestOpenErrors(t *testing.T) {
	entry := func(id, status, key string) string {
		return fmt.Sprintf(`{"id":%q,"created":"2026-01-01T00:00:00Z","status":%q,"key":%q}`, id, status, key)
	}
	doc := func(entries ...string) []byte {
		return []byte(`{"version":1,"keys":[` + strings.Join(entries, ",") + `]}`)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", []byte("not json at all"), keyring.ErrCorrupt},
		{"empty file", nil, keyring.ErrCorrupt},
		{"truncated", doc(entry("a", "primary", validKey))[:30], keyring.ErrCorrupt},
		{"trailing data", append(doc(entry("a", "primary", validKey)), "{}"...), keyring.ErrCorrupt},
		{"unknown field", []byte(`{"version":1,"keys":[],"extra":1}`), keyring.ErrCorrupt},
		{"wrong version", []byte(`{"version":2,"keys":[` + entry("a", "primary", validKey) + `]}`), keyring.ErrCorrupt},
		{"bad base64", doc(entry("a", "primary", "!!!")), keyring.ErrCorrupt},
		{"short key", doc(entry("a", "primary", "AAEC")), keyring.ErrCorrupt},
		{"two primaries", doc(entry("a", "primary", validKey), entry("b", "primary", validKey)), keyring.ErrCorrupt},
		{"no primary", doc(entry("a", "retired", validKey)), keyring.ErrCorrupt},
		{"duplicate id", doc(entry("a", "primary", validKey), entry("a", "retired", validKey)), keyring.ErrCorrupt},
		{"bad status", doc(entry("a", "active", validKey)), keyring.ErrCorrupt},
		{"empty id", doc(entry("", "primary", validKey)), keyring.ErrCorrupt},
		{"no keys", doc(), keyring.ErrEmpty},
		{"null keys", []byte(`{"version":1,"keys":null}`), keyring.ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := keyPath(t)
			writeRaw(t, p, tt.data, 0o600)
			kr, err := keyring.Open(p)
			if !errors.Is(err, tt.want) || kr != nil {
				t.Fatalf("Open = %v, %v; want %v", kr, err, tt.want)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
			if strings.Contains(err.Error(), validKey) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		p := keyPath(t)
		_, err := keyring.Open(p)
		if !errors.Is(err, keyring.ErrMissing) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open of a missing file = %v, want ErrMissing and fs.ErrNotExist", err)
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("Open created a file")
		}
	})
	t.Run("valid", func(t *testing.T) {
		p := keyPath(t)
		writeRaw(t, p, doc(entry("a", "retired", validKey), entry("b", "primary", validKey)), 0o600)
		kr, err := keyring.Open(p)
		if err != nil || kr.PrimaryID() != "b" {
			t.Fatalf("Open of a valid hand-written file: %v", err)
		}
	})
}

func TestPermissions(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		t.Run(fmt.Sprintf("file %o", mode), func(t *testing.T) {
			_, p := mustCreate(t)
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			_, err := keyring.Open(p)
			if !errors.Is(err, keyring.ErrPermissions) {
				t.Fatalf("Open with mode %o = %v, want ErrPermissions", mode, err)
			}
			if !strings.Contains(err.Error(), "chmod 0600") {
				t.Errorf("error %q does not say how to fix it", err)
			}
			// OpenOrCreate must not replace it either.
			before, _ := os.ReadFile(p)
			if _, _, err := keyring.OpenOrCreate(p, false); !errors.Is(err, keyring.ErrPermissions) {
				t.Fatalf("OpenOrCreate = %v, want ErrPermissions", err)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Fatal("OpenOrCreate rewrote a keyring with bad permissions")
			}
		})
	}
	t.Run("directory 755", func(t *testing.T) {
		_, p := mustCreate(t)
		if err := os.Chmod(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.Open(p); !errors.Is(err, keyring.ErrPermissions) {
			t.Fatalf("Open in a 0755 directory = %v, want ErrPermissions", err)
		}
	})
	t.Run("0400 is fine", func(t *testing.T) {
		_, p := mustCreate(t)
		if err := os.Chmod(p, 0o400); err != nil {
			t.Fatal(err)
		}
		if _, err := keyring.Open(p); err != nil {
			t.Fatalf("Open of a 0400 file: %v", err)
		}
	})
}

func TestOpenOrCreate(t *testing.T) {
	t.Run("first start", func(t *testing.T) {
		p := keyPath(t)
		kr, created, err := keyring.OpenOrCreate(p, false)
		if err != nil || !created {
			t.Fatalf("OpenOrCreate on first start = %v, created %v", err, created)
		}
		again, created, err := keyring.OpenOrCreate(p, true)
		if err != nil || created || again.PrimaryID() != kr.PrimaryID() {
			t.Fatalf("second OpenOrCreate = %v, created %v; want the same keyring", err, created)
		}
	})
	t.Run("missing with existing data", func(t *testing.T) {
		p := keyPath(t)
		kr, created, err := keyring.OpenOrCreate(p, true)
		if !errors.Is(err, keyring.ErrDataWithoutKeyring) || kr != nil || created {
			t.Fatalf("OpenOrCreate with data and no keyring = %v, created %v; want ErrDataWithoutKeyring", err, created)
		}
		for _, want := range []string{p, "cannot be decrypted", "backup"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("a keyring was created over existing data")
		}
	})
	t.Run("corrupt is never replaced", func(t *testing.T) {
		for _, dataExists := range []bool{false, true} {
			p := keyPath(t)
			writeRaw(t, p, []byte(`{"version":1,"keys":[{"id":`), 0o600)
			_, created, err := keyring.OpenOrCreate(p, dataExists)
			if !errors.Is(err, keyring.ErrCorrupt) || created {
				t.Fatalf("OpenOrCreate(dataExists=%v) on a corrupt file = %v, created %v", dataExists, err, created)
			}
			if got, _ := os.ReadFile(p); string(got) != `{"version":1,"keys":[{"id":` {
				t.Fatal("corrupt keyring was overwritten")
			}
		}
	})
	t.Run("empty is never replaced", func(t *testing.T) {
		p := keyPath(t)
		writeRaw(t, p, []byte(`{"version":1,"keys":[]}`), 0o600)
		if _, _, err := keyring.OpenOrCreate(p, false); !errors.Is(err, keyring.ErrEmpty) {
			t.Fatalf("OpenOrCreate on an empty keyring = %v, want ErrEmpty", err)
		}
	})
}

func TestPing(t *testing.T) {
	kr, p := mustCreate(t)
	if err := kr.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kr.Ping(ctx); !errors.Is(err, keyring.ErrPermissions) {
		t.Fatalf("Ping with mode 644 = %v, want ErrPermissions", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	backup, _ := os.ReadFile(p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := kr.Ping(ctx); !errors.Is(err, keyring.ErrMissing) {
		t.Fatalf("Ping with the file removed = %v, want ErrMissing", err)
	}
	// Loaded keys keep working for wrap and unwrap meanwhile.
	w, id, err := kr.Wrap(ctx, dek(2), ec("t", "r"))
	if err != nil {
		t.Fatalf("Wrap with the file removed: %v", err)
	}
	writeRaw(t, p, backup, 0o600)
	if err := kr.Ping(ctx); err != nil {
		t.Fatalf("Ping after restore: %v", err)
	}
	if _, err := kr.Unwrap(ctx, w, id, ec("t", "r")); err != nil {
		t.Fatal(err)
	}
}

// Key material never appears in formatted values, errors or logs.
func TestNoKeyMaterialInOutput(t *testing.T) {
	kr, p := mustCreate(t)
	if _, err := kr.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	var f struct {
		Keys []struct{ Key string } `json:"keys"`
	}
	data, _ := os.ReadFile(p)
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	log.Info("keyring", "kr", kr, "keys", kr.Keys())
	out := fmt.Sprintf("%v %+v %#v %s %v", kr, kr, kr, kr, kr.Keys()) + logBuf.String()
	for _, k := range f.Keys {
		raw, _ := base64.StdEncoding.DecodeString(k.Key)
		for _, enc := range []string{k.Key, fmt.Sprintf("%x", raw), fmt.Sprintf("%v", raw), string(raw)} {
			if strings.Contains(out, enc) {
				t.Fatalf("key material appears in output: %s", out)
			}
		}
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"version":1,"keys":[{"id":"a","created":"2026-01-01T00:00:00Z","status":"primary","key":"` + validKey + `"}]}`))
	f.Add([]byte(`{"version":1,"keys":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "keys", "keyring.json")
		writeRaw(t, p, data, 0o600)
		kr, err := keyring.Open(p)
		if err != nil {
			if kr != nil {
				t.Fatal("non-nil keyring with an error")
			}
			return
		}
		// Whatever was accepted works.
		w, id, err := kr.Wrap(ctx, dek(1), ec("t", "r"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := kr.Unwrap(ctx, w, id, ec("t", "r")); err != nil || !bytes.Equal(got, dek(1)) {
			t.Fatalf("accepted keyring fails round trip: %v", err)
		}
	})
}

func FuzzUnwrap(f *testing.F) {
	kr, err := keyring.Create(filepath.Join(f.TempDir(), "keys", "keyring.json"))
	if err != nil {
		f.Fatal(err)
	}
	w, _, err := kr.Wrap(ctx, dek(5), ec("t", "r"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w, "t", "r")
	f.Fuzz(func(t *testing.T, wrapped []byte, tenant, rec string) {
		got, err := kr.Unwrap(ctx, wrapped, kr.PrimaryID(), ec(tenant, rec))
		if err == nil && !(bytes.Equal(wrapped, w) && tenant == "t" && rec == "r") {
			t.Fatalf("Unwrap accepted forged input: %x", got)
		}
		if err == nil && !bytes.Equal(got, dek(5)) {
			t.Fatal("wrong data key")
		}
	})
}

func BenchmarkWrap(b *testing.B) {
	kr, _ := mustCreate(b)
	d := dek(1)
	c := ec("default", "0192f0c4-rec")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := kr.Wrap(ctx, d, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap(b *testing.B) {
	kr, _ := mustCreate(b)
	c := ec("default", "0192f0c4-rec")
	w, id, err := kr.Wrap(ctx, dek(1), c)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Unwrap(ctx, w, id, c); err != nil {
			b.Fatal(err)
		}
	}
}
