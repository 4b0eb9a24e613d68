package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"filippo.io/age"
)

const (
	// KeySize is the length of a data key in bytes.
	KeySize = 32
	// ChunkSize is the plaintext size of one STREAM chunk (age's, fixed).
	ChunkSize = 64 << 10
	// StanzaType is the type of the recipient stanza that wraps the file key.
	StanzaType = "custodian.v1"
	// ManifestObject is the object name of a recording's manifest.
	ManifestObject = "manifest"

	tagSize         = 16 // poly1305
	maxBindingField = 1024
)

// Sentinel errors, matched with errors.Is on any error returned by Seal or
// Open (always an *Error).
var (
	// ErrAuthentication means the object failed authentication: it was
	// tampered with or corrupted, or it was sealed under another data key.
	ErrAuthentication = errors.New("authentication failed: object tampered, corrupted or sealed under another key")
	// ErrWrongBinding means the object is authentic in form but was sealed
	// as a different object (another part number, recording or tenant).
	ErrWrongBinding = errors.New("object was sealed as a different object")
	// ErrTruncated means the object ends early: inside the header, before
	// the nonce, or at a chunk boundary before the final chunk.
	ErrTruncated = errors.New("object is truncated")
	// ErrMalformed means the bytes are not a custodian envelope (bad age
	// header, missing or extra stanzas, bad stanza arguments), or the key
	// or binding passed to Seal/Open is invalid.
	ErrMalformed = errors.New("malformed envelope")
)

// Error is the error returned by Seal and Open.
type Error struct {
	Op     string // "seal" or "open"
	Object string // the binding, "tenant/recording/object"
	Err    error  // wraps one of the sentinels
}

func (e *Error) Error() string { return "envelope: " + e.Op + " " + e.Object + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Binding names the object a payload is sealed as. All three fields are
// mixed into the key that wraps the payload's file key.
type Binding struct {
	Tenant      string
	RecordingID string
	// Object is the object's name within the recording: PartObject(n),
	// ManifestObject, or a name like "transcript". Printable ASCII without
	// spaces.
	Object string
}

// PartObject returns the object name of part n: "part/000003".
func PartObject(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 6 {
		s = "000000"[len(s):] + s
	}
	return "part/" + s
}

// String returns "tenant/recording/object".
func (b Binding) String() string { return b.Tenant + "/" + b.RecordingID + "/" + b.Object }

func (b Binding) validate() error {
	for _, f := range []string{b.Tenant, b.RecordingID} {
		if f == "" || len(f) > maxBindingField || !utf8.ValidString(f) {
			return fmt.Errorf("%w: invalid binding %q", ErrMalformed, b.String())
		}
	}
	if b.Object == "" || len(b.Object) > maxBindingField {
		return fmt.Errorf("%w: invalid object name %q", ErrMalformed, b.Object)
	}
	for i := 0; i < len(b.Object); i++ {
		if c := b.Object[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: invalid object name %q", ErrMalformed, b.Object)
		}
	}
	return nil
}

func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w: data key is %d bytes, want %d", ErrMalformed, len(key), KeySize)
	}
	return nil
}

// SealedSize returns the exact length of Seal's output for a plaintext of
// plainSize bytes sealed as b.
func SealedSize(b Binding, plainSize int64) int64 {
	chunks := (plainSize + ChunkSize - 1) / ChunkSize
	if chunks == 0 {
		chunks = 1
	}
	return int64(headerSize(b)) + streamNonceSize + plainSize + chunks*tagSize
}

// Seal encrypts plaintext under the data key as the object named by b and
// returns the sealed object.
func Seal(key []byte, b Binding, plaintext []byte) ([]byte, error) {
	return AppendSeal(nil, key, b, plaintext)
}

// AppendSeal is Seal appending the sealed object to dst, so the caller can
// reuse buffers. On error it returns nil.
func AppendSeal(dst, key []byte, b Binding, plaintext []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, &Error{Op: "seal", Object: b.String(), Err: err}
	}
	if err := b.validate(); err != nil {
		return nil, &Error{Op: "seal", Object: b.String(), Err: err}
	}
	out := &appendWriter{b: slices.Grow(dst, int(SealedSize(b, int64(len(plaintext)))))}
	w, err := age.Encrypt(out, &recipient{key: key, b: b})
	if err == nil {
		_, err = w.Write(plaintext)
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return nil, &Error{Op: "seal", Object: b.String(), Err: err}
	}
	return out.b, nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// Open authenticates a sealed object as the object named by b under the
// data key and returns its plaintext. The whole object is authenticated
// before anything is returned: on failure Open returns nil and an *Error
// wrapping ErrAuthentication, ErrWrongBinding, ErrTruncated or ErrMalformed.
func Open(key []byte, b Binding, sealed []byte) ([]byte, error) {
	return AppendOpen(nil, key, b, sealed)
}

// AppendOpen is Open appending the plaintext to dst, so the caller can
// reuse buffers. On failure it returns nil, and whatever it wrote into
// dst's spare capacity is zeroed.
func AppendOpen(dst, key []byte, b Binding, sealed []byte) ([]byte, error) {
	fail := func(err error) ([]byte, error) { return nil, &Error{Op: "open", Object: b.String(), Err: err} }
	if err := checkKey(key); err != nil {
		return fail(err)
	}
	if err := b.validate(); err != nil {
		return fail(err)
	}
	id := &identity{key: key, b: b}
	r, size, err := age.DecryptReaderAt(bytes.NewReader(sealed), int64(len(sealed)), id)
	if err != nil {
		return fail(classify(key, b, sealed, id, err))
	}
	start := len(dst)
	dst = slices.Grow(dst, int(size))[:start+int(size)]
	out := dst[start:]
	n, err := r.ReadAt(out, 0)
	if int64(n) == size && (err == nil || err == io.EOF) {
		return dst, nil
	}
	clear(out)
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fail(classify(key, b, sealed, id, err))
}

const ageIntro = "age-encryption.org/v1\n"

// headerCut reports whether b looks like an age header cut short: it starts
// like one and has no complete MAC line.
func headerCut(b []byte) bool {
	if !bytes.HasPrefix(b, []byte(ageIntro)) && !bytes.HasPrefix([]byte(ageIntro), b) {
		return false
	}
	i := bytes.Index(b, []byte("\n--- "))
	return i < 0 || bytes.IndexByte(b[i+1:], '\n') < 0
}

// classify maps a failure of age's random-access decryption onto the
// sentinels. Errors returned by our identity are already classified. For
// failures after the file key was unwrapped, the object is decrypted again
// with age's sequential reader into io.Discard, which tells a stream that
// ends on a chunk boundary without its final chunk (truncation) from a
// chunk that fails authentication. Nothing from that pass is kept.
func classify(key []byte, b Binding, sealed []byte, id *identity, err error) error {
	var ours *bindingError
	if errors.As(err, &ours) {
		return ours.err
	}
	if !id.called {
		// The header did not parse: truncated if what is there is the start
		// of an age header without its final (MAC) line.
		if headerCut(sealed) {
			return fmt.Errorf("%w: %v", ErrTruncated, err)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !id.unwrapped {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	id2 := &identity{key: key, b: b}
	r, err2 := age.Decrypt(bytes.NewReader(sealed), id2)
	if err2 == nil {
		_, err2 = io.Copy(io.Discard, r)
	}
	switch {
	case errors.Is(err2, io.EOF) || errors.Is(err2, io.ErrUnexpectedEOF):
		// Missing nonce, or the stream ended on a chunk boundary without a
		// final chunk.
		return fmt.Errorf("%w: %v", ErrTruncated, err2)
	case err2 == nil:
		// Sequential decryption succeeded where random access failed: the
		// payload length is inconsistent (trailing data). Should not happen
		// for well-formed input.
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	default:
		// Header MAC or chunk authentication failure.
		return fmt.Errorf("%w: %v", ErrAuthentication, err2)
	}
}
