package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/custodian/custodian/storage/envelope"
)

// fuzzKey is fixed so the fuzzer's corpus stays meaningful across runs.
var fuzzKey = bytes.Repeat([]byte{0x5a}, envelope.KeySize)

// fuzzObjects are the only plaintexts ever sealed under fuzzKey, each under
// its own binding: a successful Open must return exactly the one sealed as
// the binding asked for.
var fuzzObjects = []struct {
	b  envelope.Binding
	pt []byte
}{
	{part(0), nil},
	{part(1), []byte("x")},
	{part(2), payload(300)},
	{part(3), payload(2000)},
	{envelope.Binding{Tenant: "acme", RecordingID: "rec_01jz", Object: envelope.ManifestObject}, []byte(`{"complete":true}`)},
}

// FuzzDecryptPart feeds arbitrary bytes to Open: it must return an error
// wrapping a sentinel with no plaintext, or exactly the original plaintext,
// and never panic.
func FuzzDecryptPart(f *testing.F) {
	for i, o := range fuzzObjects {
		s, err := envelope.Seal(fuzzKey, o.b, o.pt)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), s)
		if len(s) > 200 {
			f.Add(uint8(i), s[:len(s)-1])
			f.Add(uint8(i), s[:200])
		}
	}
	f.Add(uint8(0), []byte("age-encryption.org/v1\n-> custodian.v1 AAAAAAAAAAAAAAAAAAAAAA part/000000 x\n\n--- AAAA\n"))
	f.Fuzz(func(t *testing.T, which uint8, sealed []byte) {
		o := fuzzObjects[int(which)%len(fuzzObjects)]
		pt, err := envelope.Open(fuzzKey, o.b, sealed)
		if err != nil {
			if pt != nil {
				t.Fatalf("error %v with %d bytes of plaintext", err, len(pt))
			}
			var e *envelope.Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			for _, s := range []error{envelope.ErrAuthentication, envelope.ErrWrongBinding, envelope.ErrTruncated, envelope.ErrMalformed} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if !bytes.Equal(pt, o.pt) {
			t.Fatalf("accepted forged object as %s: %q", o.b, pt)
		}
	})
}
