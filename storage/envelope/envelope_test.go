package envelope_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/custodian/custodian/storage/envelope"
)

const C = envelope.ChunkSize

var update = flag.Bool("update", false, "rewrite testdata/v1.golden")

func newKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, envelope.KeySize)
	rand.Read(k)
	return k
}

func part(n int) envelope.Binding {
	return envelope.Binding{Tenant: "acme", RecordingID: "rec_01jz", Object: envelope.PartObject(n)}
}

// payload returns n bytes that are easy to spot in clear: a repeated
// canary, so a test can assert it is absent from sealed output.
func payload(n int) []byte {
	p := bytes.Repeat([]byte("CANARY-plaintext-0123456789;"), n/28+1)
	return p[:n]
}

func seal(tb testing.TB, key []byte, b envelope.Binding, pt []byte) []byte {
	tb.Helper()
	s, err := envelope.Seal(key, b, pt)
	if err != nil {
		tb.Fatalf("seal %s: %v", b, err)
	}
	return s
}

// mustReject asserts that Open fails with a typed error, returns no
// plaintext, and (when want is set) classifies the failure as want.
func mustReject(tb testing.TB, key []byte, b envelope.Binding, sealed []byte, want error) error {
	tb.Helper()
	pt, err := envelope.Open(key, b, sealed)
	if err == nil {
		tb.Fatalf("open %s: accepted (%d bytes of plaintext)", b, len(pt))
	}
	if pt != nil {
		tb.Fatalf("open %s: returned %d bytes of plaintext with error %v", b, len(pt), err)
	}
	var e *envelope.Error
	if !errors.As(err, &e) || e.Op != "open" || e.Object != b.String() {
		tb.Fatalf("open %s: error %v (%T) is not an *envelope.Error for this object", b, err, err)
	}
	known := false
	for _, s := range []error{envelope.ErrAuthentication, envelope.ErrWrongBinding, envelope.ErrTruncated, envelope.ErrMalformed} {
		known = known || errors.Is(err, s)
	}
	if !known {
		tb.Fatalf("open %s: error %v wraps no sentinel", b, err)
	}
	if want != nil && !errors.Is(err, want) {
		tb.Fatalf("open %s: error %v, want %v", b, err, want)
	}
	return err
}

func TestRoundTrip(t *testing.T) {
	key := newKey(t)
	for _, n := range []int{0, 1, 100, C - 1, C, C + 1, 2 * C, 2*C + 1, 3*C + 17} {
		b := part(n % 7)
		pt := payload(n)
		sealed := seal(t, key, b, pt)
		if got, want := int64(len(sealed)), envelope.SealedSize(b, int64(n)); got != want {
			t.Errorf("size %d: sealed %d bytes, SealedSize says %d", n, got, want)
		}
		if n >= 16 && bytes.Contains(sealed, pt[:16]) {
			t.Errorf("size %d: plaintext visible in sealed object", n)
		}
		if !bytes.HasPrefix(sealed, []byte("age-encryption.org/v1\n-> custodian.v1 ")) {
			t.Errorf("size %d: not an age file with a custodian.v1 stanza: %q", n, sealed[:40])
		}
		got, err := envelope.Open(key, b, sealed)
		if err != nil {
			t.Fatalf("size %d: open: %v", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("size %d: round trip mismatch", n)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	key := newKey(t)
	a, b := seal(t, key, part(0), payload(50)), seal(t, key, part(0), payload(50))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

// flipAt flips one bit at each position and asserts rejection.
func flipAt(t *testing.T, key []byte, b envelope.Binding, sealed []byte, positions []int, headerLen int) {
	t.Helper()
	for j, i := range positions {
		bit := byte(0x01) << (j % 8) // vary the bit flipped
		mut := bytes.Clone(sealed)
		mut[i] ^= bit
		err := mustReject(t, key, b, mut, nil)
		if i >= headerLen && !errors.Is(err, envelope.ErrAuthentication) {
			t.Fatalf("flip payload byte %d: %v, want ErrAuthentication", i, err)
		}
	}
}

func headerLen(b envelope.Binding) int {
	return int(envelope.SealedSize(b, 0)) - 16 - 16 // minus the nonce and the empty chunk's tag
}

func TestFlipEveryByte(t *testing.T) {
	key := newKey(t)
	b := part(3)
	for _, n := range []int{0, 1, 1000} {
		sealed := seal(t, key, b, payload(n))
		all := make([]int, len(sealed))
		for i := range all {
			all[i] = i
		}
		flipAt(t, key, b, sealed, all, headerLen(b))
	}
}

func TestFlipMultiChunk(t *testing.T) {
	key := newKey(t)
	b := part(4)
	sealed := seal(t, key, b, payload(2*C+100))
	h := headerLen(b)
	var pos []int
	for i := 0; i < h+16; i++ { // the whole header and the nonce
		pos = append(pos, i)
	}
	for i := h + 16; i < len(sealed); i += 4093 {
		pos = append(pos, i)
	}
	for k := 1; k <= 2; k++ { // around each chunk boundary
		edge := h + 16 + k*(C+16)
		for i := edge - 17; i <= edge+1; i++ {
			pos = append(pos, i)
		}
	}
	pos = append(pos, len(sealed)-1)
	flipAt(t, key, b, sealed, pos, h)
}

func TestTruncation(t *testing.T) {
	key := newKey(t)
	b := part(5)
	sealed := seal(t, key, b, payload(3*C))
	h := headerLen(b)
	payloadStart := h + 16
	tests := []struct {
		name string
		cut  int
		want error // nil: any typed rejection
	}{
		{"empty", 0, envelope.ErrTruncated},
		{"inside intro", 10, envelope.ErrTruncated},
		{"inside stanza", 40, envelope.ErrTruncated},
		{"before nonce", h, envelope.ErrTruncated},
		{"inside nonce", h + 8, envelope.ErrTruncated},
		{"no payload", payloadStart, envelope.ErrTruncated},
		{"after chunk 1", payloadStart + (C + 16), envelope.ErrTruncated},
		{"after chunk 2", payloadStart + 2*(C+16), envelope.ErrTruncated},
		{"inside chunk 1", payloadStart + 1000, nil},
		{"inside chunk 3", payloadStart + 2*(C+16) + 5000, nil},
		{"one byte of chunk 2", payloadStart + (C + 16) + 1, nil},
		{"tag of last chunk", len(sealed) - 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustReject(t, key, b, sealed[:tt.cut], tt.want)
		})
	}
}

func TestTrailingDataAndChunkSplicing(t *testing.T) {
	key := newKey(t)
	b := part(6)
	sealed := seal(t, key, b, payload(3*C))
	h := headerLen(b) + 16
	chunk := func(i int) []byte { return sealed[h+i*(C+16) : h+(i+1)*(C+16)] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		sealed []byte
	}{
		{"trailing byte", cat(sealed, []byte{0})},
		{"trailing chunk", cat(sealed, chunk(0))},
		{"chunks swapped", cat(sealed[:h], chunk(1), chunk(0), chunk(2))},
		{"chunk duplicated", cat(sealed[:h], chunk(0), chunk(0), chunk(1), chunk(2))},
		{"chunk dropped", cat(sealed[:h], chunk(0), chunk(2))},
		{"last chunk moved first", cat(sealed[:h], chunk(2), chunk(0), chunk(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustReject(t, key, b, tt.sealed, nil)
		})
	}
	// A chunk from another object sealed under the same key and binding.
	other := seal(t, key, b, payload(3*C))
	mustReject(t, key, b, cat(sealed[:h], chunk(0), other[h+(C+16):h+2*(C+16)], chunk(2)), envelope.ErrAuthentication)
}

func TestBinding(t *testing.T) {
	key := newKey(t)
	b := part(3)
	sealed := seal(t, key, b, payload(500))
	tests := []struct {
		name string
		key  []byte
		b    envelope.Binding
		want error
	}{
		{"other part number", key, part(4), envelope.ErrWrongBinding},
		{"other recording", key, envelope.Binding{Tenant: "acme", RecordingID: "rec_other", Object: b.Object}, envelope.ErrWrongBinding},
		{"other tenant", key, envelope.Binding{Tenant: "globex", RecordingID: b.RecordingID, Object: b.Object}, envelope.ErrWrongBinding},
		{"as manifest", key, envelope.Binding{Tenant: "acme", RecordingID: b.RecordingID, Object: envelope.ManifestObject}, envelope.ErrWrongBinding},
		{"other data key", newKey(t), b, envelope.ErrAuthentication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustReject(t, tt.key, tt.b, sealed, tt.want)
		})
	}
	// Rewriting the clear-text hints does not help: the wrapping key is
	// derived from the binding the reader expects.
	forged := bytes.Replace(sealed, []byte(" part/000003 "), []byte(" part/000004 "), 1)
	if bytes.Equal(forged, sealed) {
		t.Fatal("object name not found in header")
	}
	mustReject(t, key, part(4), forged, envelope.ErrAuthentication)
}

func TestMalformed(t *testing.T) {
	key := newKey(t)
	b := part(0)
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	plainAge := func(rs ...age.Recipient) []byte {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rs...)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("hello"))
		w.Close()
		return buf.Bytes()
	}
	random := make([]byte, 300)
	rand.Read(random)
	tests := []struct {
		name   string
		sealed []byte
		want   error
	}{
		{"random", random, envelope.ErrMalformed},
		{"text", []byte("OggS not an envelope\n"), envelope.ErrMalformed},
		{"x25519 age file", plainAge(x.Recipient()), envelope.ErrMalformed},
		{"extra stanza", plainAge(x.Recipient(), x.Recipient()), envelope.ErrMalformed},
		{"stanza args edited", bytes.Replace(seal(t, key, b, nil), []byte("-> custodian.v1 "), []byte("-> custodian.v1 x "), 1), envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustReject(t, key, b, tt.sealed, tt.want)
		})
	}
}

func TestBadArguments(t *testing.T) {
	key := newKey(t)
	bad := []struct {
		name string
		key  []byte
		b    envelope.Binding
	}{
		{"short key", key[:16], part(0)},
		{"no key", nil, part(0)},
		{"empty tenant", key, envelope.Binding{RecordingID: "r", Object: "manifest"}},
		{"empty recording", key, envelope.Binding{Tenant: "t", Object: "manifest"}},
		{"empty object", key, envelope.Binding{Tenant: "t", RecordingID: "r"}},
		{"space in object", key, envelope.Binding{Tenant: "t", RecordingID: "r", Object: "a b"}},
		{"newline in object", key, envelope.Binding{Tenant: "t", RecordingID: "r", Object: "a\nb"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := envelope.Seal(tt.key, tt.b, []byte("x")); !errors.Is(err, envelope.ErrMalformed) {
				t.Errorf("seal: %v, want ErrMalformed", err)
			}
			if _, err := envelope.Open(tt.key, tt.b, seal(t, key, part(0), []byte("x"))); !errors.Is(err, envelope.ErrMalformed) {
				t.Errorf("open: %v, want ErrMalformed", err)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	key := newKey(t)
	_, err := envelope.Open(key, part(4), seal(t, key, part(3), []byte("x")))
	want := `envelope: open acme/rec_01jz/part/000004: object was sealed as a different object: sealed as "part/000003", opened as "part/000004"`
	if err == nil || err.Error() != want {
		t.Fatalf("error text:\n got %v\nwant %s", err, want)
	}
}

func TestPartObject(t *testing.T) {
	for n, want := range map[int]string{0: "part/000000", 3: "part/000003", 999999: "part/999999", 1234567: "part/1234567"} {
		if got := envelope.PartObject(n); got != want {
			t.Errorf("PartObject(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestGolden opens an object sealed by an earlier build, so a change to the
// format cannot go unnoticed: stored recordings must stay readable.
// Regenerate (only for a deliberate new format) with -update.
func TestGolden(t *testing.T) {
	path := filepath.Join("testdata", "v1.golden")
	b := envelope.Binding{Tenant: "default", RecordingID: "rec_golden", Object: envelope.PartObject(1)}
	if *update {
		key := newKey(t)
		pt := payload(C + 10)
		sealed := seal(t, key, b, pt)
		out := "key " + hex.EncodeToString(key) + "\nplaintext " + hex.EncodeToString(pt) + "\nsealed " + hex.EncodeToString(sealed) + "\n"
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string][]byte{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, value, _ := strings.Cut(line, " ")
		if fields[name], err = hex.DecodeString(value); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got, err := envelope.Open(fields["key"], b, fields["sealed"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, fields["plaintext"]) {
		t.Fatal("golden object decrypts to different plaintext")
	}
	mustReject(t, fields["key"], envelope.Binding{Tenant: "default", RecordingID: "rec_golden", Object: envelope.PartObject(2)}, fields["sealed"], envelope.ErrWrongBinding)
}

func TestAppend(t *testing.T) {
	key := newKey(t)
	b := part(2)
	pt := payload(2*C + 5)
	prefix := []byte("prefix")
	sealed, err := envelope.AppendSeal(bytes.Clone(prefix), key, b, pt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sealed, prefix) {
		t.Fatal("AppendSeal lost the prefix")
	}
	sealed = sealed[len(prefix):]
	buf := make([]byte, 3, 3*C)
	copy(buf, "abc")
	got, err := envelope.AppendOpen(buf, key, b, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[0] {
		t.Error("AppendOpen reallocated although capacity sufficed")
	}
	if string(got[:3]) != "abc" || !bytes.Equal(got[3:], pt) {
		t.Fatal("AppendOpen round trip mismatch")
	}
	// A failed open leaves nothing of the plaintext in the spare capacity:
	// tamper with the middle chunk, after the first was decrypted into buf.
	clear(buf[:cap(buf)])
	bad := bytes.Clone(sealed)
	bad[len(bad)-21-C/2] ^= 1 // inside chunk 1 of 0..2
	if out, err := envelope.AppendOpen(buf[:3], key, b, bad); err == nil || out != nil {
		t.Fatalf("tampered object: out=%d bytes err=%v", len(out), err)
	}
	if bytes.Contains(buf[:cap(buf)], pt[:32]) {
		t.Fatal("plaintext of a failed open left in the caller's buffer")
	}
}
