package envelope

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// The custodian.v1 recipient stanza:
//
//	-> custodian.v1 SALT OBJECT TAG
//	BODY
//
// SALT is 16 random bytes (unpadded base64), fresh for every seal. OBJECT is
// the binding's object name in clear and TAG is the first 12 bytes of
// SHA-256("custodian.v1 binding" || 0 || tenant || recording) (unpadded
// base64); both serve only to report a wrong binding clearly and carry no
// security weight. BODY is ChaCha20-Poly1305 with an all-zero nonce of age's
// 16-byte file key under
//
//	HKDF-SHA256(ikm = data key, salt = SALT,
//	            info = "custodian.v1 file key" || 0 || enc(tenant) || enc(recording) || enc(object))
//
// where enc(s) is s preceded by its length as a big-endian uint16. The salt
// makes every wrapping key single-use, so the fixed nonce is never reused
// (as in age's own X25519 and scrypt stanzas). Because the wrapping key
// depends on the whole binding, the file key, and therefore the header MAC
// and the payload, can only be recovered by opening the object as exactly
// what it was sealed as.

const (
	fileKeySize     = 16 // age's file key
	saltSize        = 16
	bindingTagSize  = 12
	streamNonceSize = 16 // age's payload nonce
)

var b64 = base64.RawStdEncoding.Strict()

var (
	saltLen      = b64.EncodedLen(saltSize)
	tagLen       = b64.EncodedLen(bindingTagSize)
	wrappedLen   = b64.EncodedLen(fileKeySize + chacha20poly1305.Overhead)
	stanzaPrefix = "-> " + StanzaType + " "
)

// headerSize is the length of the age header (intro, our single stanza,
// MAC line) for binding b; Seal's output is this, the 16-byte nonce and the
// STREAM payload.
func headerSize(b Binding) int {
	const intro = len("age-encryption.org/v1\n")
	macLine := len("--- ") + b64.EncodedLen(sha256.Size) + 1
	// The body is shorter than one 64-column line, so it is one line.
	return intro + len(stanzaPrefix) + saltLen + 1 + len(b.Object) + 1 + tagLen + 1 + wrappedLen + 1 + macLine
}

func appendField(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func bindingTag(b Binding) string {
	m := make([]byte, 0, 64)
	m = append(m, "custodian.v1 binding\x00"...)
	m = appendField(m, b.Tenant)
	m = appendField(m, b.RecordingID)
	sum := sha256.Sum256(m)
	return b64.EncodeToString(sum[:bindingTagSize])
}

func wrapKey(key, salt []byte, b Binding) ([]byte, error) {
	info := make([]byte, 0, 64+len(b.Tenant)+len(b.RecordingID)+len(b.Object))
	info = append(info, "custodian.v1 file key\x00"...)
	info = appendField(info, b.Tenant)
	info = appendField(info, b.RecordingID)
	info = appendField(info, b.Object)
	return hkdf.Key(sha256.New, key, salt, string(info), chacha20poly1305.KeySize)
}

// recipient is the age.Recipient that seals for one binding.
type recipient struct {
	key []byte
	b   Binding
}

var _ age.Recipient = (*recipient)(nil)

func (r *recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	if len(fileKey) != fileKeySize {
		return nil, fmt.Errorf("unexpected file key size %d", len(fileKey))
	}
	salt := make([]byte, saltSize)
	rand.Read(salt)
	k, err := wrapKey(r.key, salt, r.b)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return nil, err
	}
	var nonce [chacha20poly1305.NonceSize]byte
	body := aead.Seal(nil, nonce[:], fileKey, nil)
	return []*age.Stanza{{
		Type: StanzaType,
		Args: []string{b64.EncodeToString(salt), r.b.Object, bindingTag(r.b)},
		Body: body,
	}}, nil
}

// bindingError carries an already classified error out of age.
type bindingError struct{ err error }

func (e *bindingError) Error() string { return e.err.Error() }
func (e *bindingError) Unwrap() error { return e.err }

// identity is the age.Identity that opens for one binding. It records how
// far it got, so that Open can classify age's errors without matching
// their text.
type identity struct {
	key       []byte
	b         Binding
	called    bool // the header parsed and Unwrap was called
	unwrapped bool // the file key was recovered
}

var _ age.Identity = (*identity)(nil)

// Unwrap accepts exactly one stanza, of type custodian.v1. Any other shape
// is malformed: Custodian never seals with other recipients.
func (id *identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	id.called = true
	fail := func(err error) ([]byte, error) { return nil, &bindingError{err} }
	if len(stanzas) != 1 {
		return fail(fmt.Errorf("%w: %d recipient stanzas, want 1", ErrMalformed, len(stanzas)))
	}
	s := stanzas[0]
	if s.Type != StanzaType {
		return fail(fmt.Errorf("%w: recipient stanza type %q, want %q", ErrMalformed, s.Type, StanzaType))
	}
	if len(s.Args) != 3 {
		return fail(fmt.Errorf("%w: %s stanza has %d arguments, want 3", ErrMalformed, StanzaType, len(s.Args)))
	}
	salt, err := b64.DecodeString(s.Args[0])
	if err != nil || len(salt) != saltSize {
		return fail(fmt.Errorf("%w: bad %s salt", ErrMalformed, StanzaType))
	}
	if s.Args[1] != id.b.Object {
		return fail(fmt.Errorf("%w: sealed as %q, opened as %q", ErrWrongBinding, s.Args[1], id.b.Object))
	}
	if s.Args[2] != bindingTag(id.b) {
		return fail(fmt.Errorf("%w: sealed for another tenant or recording", ErrWrongBinding))
	}
	if len(s.Body) != fileKeySize+chacha20poly1305.Overhead {
		return fail(fmt.Errorf("%w: %s stanza body is %d bytes", ErrMalformed, StanzaType, len(s.Body)))
	}
	k, err := wrapKey(id.key, salt, id.b)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	var nonce [chacha20poly1305.NonceSize]byte
	fileKey, err := aead.Open(nil, nonce[:], s.Body, nil)
	if err != nil {
		return fail(fmt.Errorf("%w: file key does not unwrap", ErrAuthentication))
	}
	id.unwrapped = true
	return fileKey, nil
}
