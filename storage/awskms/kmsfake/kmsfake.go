// Package kmsfake is a protocol-level fake of AWS KMS for tests: no real
// KMS can run here, so this HTTP server on loopback speaks the KMS JSON 1.1
// protocol (POST /, Content-Type application/x-amz-json-1.1, X-Amz-Target
// TrentService.Encrypt, Decrypt and DescribeKey, base64 blobs, AWS error
// shapes) closely enough for the real aws-sdk-go-v2 KMS client.
//
// It is a fake, but not a mock: it really encrypts (AES-256-GCM under a
// random key per KMS key, with the canonical encryption context as
// associated data), so a ciphertext only decrypts under its own key and
// exactly the encryption context it was made with, as in KMS. It verifies
// every request's SigV4 signature (service "kms", the server's region, its
// access key and secret), and it can inject errors and delays.
package kmsfake

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Defaults of a new Server.
const (
	Region    = "eu-central-1"
	AccountID = "111122223333"
)

// Request records one call the fake answered (for assertions).
type Request struct {
	Op                string // Encrypt, Decrypt, DescribeKey
	KeyID             string // as sent ("" if absent)
	EncryptionContext map[string]string
	ErrorType         string // the error returned, "" on success
}

// Fault makes the next Count calls of Op (all ops if "") fail with an AWS
// error of Type and HTTP Status, after Delay. With Type "" only the delay
// applies.
type Fault struct {
	Op      string
	Type    string // e.g. KMSInternalException, AccessDeniedException
	Status  int    // default 400, 500 for KMSInternalException
	Message string
	Delay   time.Duration
	Count   int // 0: until cleared
}

type key struct {
	id, arn string
	created time.Time
	enabled bool
	deny    bool
	aead    cipher.AEAD
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	URL       string
	Region    string
	AccessKey string
	SecretKey string

	srv *httptest.Server

	mu       sync.Mutex
	keys     map[string]*key   // by id
	aliases  map[string]string // alias/name -> id
	faults   []*Fault
	requests []Request
}

// New starts a fake on 127.0.0.1 and closes it at cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		Region:    Region,
		AccessKey: "AKIAFAKE" + strings.ToUpper(randHex(6)),
		SecretKey: randHex(20),
		keys:      map[string]*key{},
		aliases:   map[string]string{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Credentials returns the access key and secret requests must be signed with.
func (s *Server) Credentials() aws.Credentials {
	return aws.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey, Source: "kmsfake"}
}

// CreateKey makes a new enabled symmetric key and returns its id and ARN.
func (s *Server) CreateKey() (id, arn string) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails
	block, err := aes.NewCipher(raw)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	u := randHex(16)
	id = u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
	arn = fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.Region, AccountID, id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = &key{id: id, arn: arn, created: time.Now(), enabled: true, aead: aead}
	return id, arn
}

// CreateAlias points alias ("alias/name") at key id.
func (s *Server) CreateAlias(alias, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aliases[alias] = id
}

// SetEnabled enables or disables a key (DisabledException when disabled).
func (s *Server) SetEnabled(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id].enabled = on
}

// Deny makes every use of key id fail with AccessDeniedException, as a key
// policy without the caller would.
func (s *Server) Deny(id string, deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id].deny = deny
}

// AddFault queues a fault.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Requests returns the calls answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// apiError is an AWS JSON 1.1 error.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func errf(typ, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeErr(w, errf("SerializationException", "read body: %v", err))
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	rec := Request{Op: op}
	resp, aerr := s.handle(r, body, op, &rec)
	if aerr != nil {
		rec.ErrorType = aerr.typ
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", randHex(8))
	_ = json.NewEncoder(w).Encode(resp) // client gone: nothing to do
}

func writeErr(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-RequestId", randHex(8))
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func (s *Server) handle(r *http.Request, body []byte, op string, rec *Request) (any, *apiError) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, errf("UnknownOperationException", "%s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		return nil, errf("SerializationException", "Content-Type %q, want application/x-amz-json-1.1", ct)
	}
	if aerr := s.verifySignature(r, body); aerr != nil {
		return nil, aerr
	}
	if aerr := s.fault(r.Context(), op); aerr != nil {
		return nil, aerr
	}
	switch op {
	case "Encrypt":
		return s.encrypt(body, rec)
	case "Decrypt":
		return s.decrypt(body, rec)
	case "DescribeKey":
		return s.describeKey(body, rec)
	}
	return nil, errf("UnknownOperationException", "operation %q is not supported by the fake", op)
}

// fault applies the first matching fault: its delay, then its error.
func (s *Server) fault(ctx context.Context, op string) *apiError {
	s.mu.Lock()
	var f *Fault
	for i, cand := range s.faults {
		if cand.Op == "" || cand.Op == op {
			f = cand
			if f.Count > 0 {
				f.Count--
				if f.Count == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
			}
			break
		}
	}
	var fc Fault
	if f != nil {
		fc = *f
	}
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	if fc.Delay > 0 {
		select {
		case <-time.After(fc.Delay):
		case <-ctx.Done():
		}
	}
	if fc.Type == "" {
		return nil
	}
	status := fc.Status
	if status == 0 {
		status = http.StatusBadRequest
		if fc.Type == "KMSInternalException" {
			status = http.StatusInternalServerError
		}
	}
	msg := fc.Message
	if msg == "" {
		msg = "injected by kmsfake"
	}
	return &apiError{status: status, typ: fc.Type, msg: msg}
}

// verifySignature re-signs the request with the server's secret and
// compares signatures, as AWS does.
func (s *Server) verifySignature(r *http.Request, body []byte) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errf("MissingAuthenticationTokenException", "Request is missing Authentication Token")
	}
	const alg = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, alg) {
		return errf("IncompleteSignatureException", "unsupported authorization scheme")
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimPrefix(auth, alg), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return errf("IncompleteSignatureException", "malformed credential scope")
	}
	if scope[3] != "kms" {
		return errf("InvalidSignatureException", "Credential should be scoped to correct service: 'kms'")
	}
	if scope[2] != s.Region {
		return errf("InvalidSignatureException", "Credential should be scoped to a valid region, not %q", scope[2])
	}
	if scope[0] != s.AccessKey {
		return errf("UnrecognizedClientException", "The security token included in the request is invalid")
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errf("IncompleteSignatureException", "missing or bad X-Amz-Date")
	}
	if d := time.Since(when); d > 15*time.Minute || d < -15*time.Minute {
		return errf("InvalidSignatureException", "Signature expired")
	}
	// Rebuild the request from the signed headers only and sign it again.
	clone, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return errf("IncompleteSignatureException", "%v", err)
	}
	clone.Host = r.Host
	for h := range strings.SplitSeq(fields["SignedHeaders"], ";") {
		if h != "host" {
			clone.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	err = v4.NewSigner().SignHTTP(context.Background(), s.Credentials(), clone, hex.EncodeToString(sum[:]), "kms", s.Region, when)
	if err != nil {
		return errf("InternalFailure", "sign: %v", err)
	}
	want := clone.Header.Get("Authorization")
	if subtle.ConstantTimeCompare([]byte(want), []byte(auth)) != 1 {
		return errf("InvalidSignatureException", "The request signature we calculated does not match the signature you provided")
	}
	return nil
}

// resolve finds a key by id, ARN, alias name or alias ARN and returns a
// copy of it.
func (s *Server) resolve(ref string) (*key, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		parts := strings.SplitN(ref, ":", 6)
		if len(parts) != 6 || parts[2] != "kms" {
			return nil, errf("InvalidArnException", "bad ARN %q", ref)
		}
		if parts[3] != s.Region || parts[4] != AccountID {
			return nil, errf("NotFoundException", "Key '%s' does not exist", ref)
		}
		id = parts[5]
		if !strings.HasPrefix(id, "alias/") {
			id = strings.TrimPrefix(id, "key/")
		}
	}
	if strings.HasPrefix(id, "alias/") {
		target, ok := s.aliases[id]
		if !ok {
			return nil, errf("NotFoundException", "Alias '%s' is not found.", ref)
		}
		id = target
	}
	k, ok := s.keys[id]
	if !ok {
		return nil, errf("NotFoundException", "Key '%s' does not exist", ref)
	}
	kc := *k // a snapshot: flags may change concurrently; the AEAD is shareable
	return &kc, nil
}

func usable(k *key) *apiError {
	if k.deny {
		return errf("AccessDeniedException", "User is not authorized to perform this operation on %s", k.arn)
	}
	if !k.enabled {
		return errf("DisabledException", "%s is disabled.", k.arn)
	}
	return nil
}

// canonical encodes an encryption context unambiguously (sorted keys,
// length-prefixed strings): the associated data of the fake's ciphertexts.
func canonical(ec map[string]string) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(ec)))
	for _, k := range slices.Sorted(maps.Keys(ec)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(ec[k])))
		b = append(b, ec[k]...)
	}
	return b
}

type encryptIn struct {
	KeyID               string            `json:"KeyId"`
	Plaintext           []byte            `json:"Plaintext"` // base64 in JSON
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
	DryRun              bool              `json:"DryRun"`
}

type encryptOut struct {
	CiphertextBlob      []byte `json:"CiphertextBlob"`
	KeyID               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

func decodeIn(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return errf("SerializationException", "%v", err)
	}
	return nil
}

// Ciphertext format of the fake: magic "KF1" || len(id) || id || nonce ||
// AES-GCM(plaintext, ad = id || canonical(ec)).
func (s *Server) encrypt(body []byte, rec *Request) (any, *apiError) {
	var in encryptIn
	if aerr := decodeIn(body, &in); aerr != nil {
		return nil, aerr
	}
	rec.KeyID, rec.EncryptionContext = in.KeyID, in.EncryptionContext
	if in.KeyID == "" {
		return nil, errf("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	if len(in.Plaintext) == 0 || len(in.Plaintext) > 4096 {
		return nil, errf("ValidationException", "Plaintext must be 1 to 4096 bytes")
	}
	if in.EncryptionAlgorithm != "" && in.EncryptionAlgorithm != "SYMMETRIC_DEFAULT" {
		return nil, errf("InvalidKeyUsageException", "algorithm %s is not valid for this key", in.EncryptionAlgorithm)
	}
	if in.DryRun {
		return nil, errf("UnsupportedOperationException", "DryRun is not supported by the fake")
	}
	k, aerr := s.resolve(in.KeyID)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := usable(k); aerr != nil {
		return nil, aerr
	}
	blob := append([]byte("KF1"), byte(len(k.id)))
	blob = append(blob, k.id...)
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	blob = append(blob, nonce...)
	blob = k.aead.Seal(blob, nonce, in.Plaintext, append([]byte(k.id), canonical(in.EncryptionContext)...))
	return encryptOut{CiphertextBlob: blob, KeyID: k.arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}, nil
}

type decryptIn struct {
	CiphertextBlob      []byte            `json:"CiphertextBlob"`
	KeyID               string            `json:"KeyId"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
	DryRun              bool              `json:"DryRun"`
}

type decryptOut struct {
	Plaintext           []byte `json:"Plaintext"`
	KeyID               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

func (s *Server) decrypt(body []byte, rec *Request) (any, *apiError) {
	var in decryptIn
	if aerr := decodeIn(body, &in); aerr != nil {
		return nil, aerr
	}
	rec.KeyID, rec.EncryptionContext = in.KeyID, in.EncryptionContext
	if in.DryRun {
		return nil, errf("UnsupportedOperationException", "DryRun is not supported by the fake")
	}
	blob := in.CiphertextBlob
	if len(blob) < 4 || string(blob[:3]) != "KF1" || len(blob) < 4+int(blob[3]) {
		return nil, errf("InvalidCiphertextException", "")
	}
	id := string(blob[4 : 4+int(blob[3])])
	rest := blob[4+int(blob[3]):]
	k, aerr := s.resolve(id)
	if aerr != nil {
		// The key the ciphertext names is gone: KMS reports the blob invalid.
		return nil, errf("InvalidCiphertextException", "")
	}
	if in.KeyID != "" {
		want, aerr := s.resolve(in.KeyID)
		if aerr != nil {
			return nil, aerr
		}
		if want.id != k.id {
			return nil, errf("IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
		}
	}
	if aerr := usable(k); aerr != nil {
		return nil, aerr
	}
	if len(rest) < k.aead.NonceSize() {
		return nil, errf("InvalidCiphertextException", "")
	}
	nonce, ct := rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():]
	pt, err := k.aead.Open(nil, nonce, ct, append([]byte(k.id), canonical(in.EncryptionContext)...))
	if err != nil {
		// What KMS answers for a different encryption context, too.
		return nil, errf("InvalidCiphertextException", "")
	}
	return decryptOut{Plaintext: pt, KeyID: k.arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}, nil
}

type keyMetadata struct {
	AWSAccountID         string   `json:"AWSAccountId"`
	Arn                  string   `json:"Arn"`
	KeyID                string   `json:"KeyId"`
	CreationDate         float64  `json:"CreationDate"`
	Enabled              bool     `json:"Enabled"`
	KeyState             string   `json:"KeyState"`
	KeyUsage             string   `json:"KeyUsage"`
	KeySpec              string   `json:"KeySpec"`
	KeyManager           string   `json:"KeyManager"`
	Origin               string   `json:"Origin"`
	EncryptionAlgorithms []string `json:"EncryptionAlgorithms"`
}

func (s *Server) describeKey(body []byte, rec *Request) (any, *apiError) {
	var in struct {
		KeyID string `json:"KeyId"`
	}
	if aerr := decodeIn(body, &in); aerr != nil {
		return nil, aerr
	}
	rec.KeyID = in.KeyID
	k, aerr := s.resolve(in.KeyID)
	if aerr != nil {
		return nil, aerr
	}
	if k.deny {
		return nil, usable(k)
	}
	enabled := k.enabled
	state := "Enabled"
	if !enabled {
		state = "Disabled"
	}
	return map[string]keyMetadata{"KeyMetadata": {
		AWSAccountID: AccountID, Arn: k.arn, KeyID: k.id,
		CreationDate: float64(k.created.Unix()), Enabled: enabled, KeyState: state,
		KeyUsage: "ENCRYPT_DECRYPT", KeySpec: "SYMMETRIC_DEFAULT", KeyManager: "CUSTOMER",
		Origin: "AWS_KMS", EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"},
	}}, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
