package kmsfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/custodian/custodian/storage/awskms/kmsfake"
)

// call sends a raw KMS JSON 1.1 request, signed with sign (nil: unsigned),
// and returns the status and the error type of the answer.
func call(t *testing.T, s *kmsfake.Server, op string, body any, sign func(*http.Request, []byte)) (int, map[string]any) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	if sign != nil {
		sign(req, data)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func signer(s *kmsfake.Server, service, region string, creds bool) func(*http.Request, []byte) {
	return func(r *http.Request, body []byte) {
		sum := sha256.Sum256(body)
		c := s.Credentials()
		if !creds {
			c.SecretAccessKey = "wrong"
		}
		if err := v4.NewSigner().SignHTTP(context.Background(), c, r, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
			panic(err)
		}
	}
}

func TestSignatureChecks(t *testing.T) {
	s := kmsfake.New(t)
	id, _ := s.CreateKey()
	body := map[string]any{"KeyId": id}
	tests := []struct {
		name     string
		sign     func(*http.Request, []byte)
		wantType string
	}{
		{"unsigned", nil, "MissingAuthenticationTokenException"},
		{"wrong service", signer(s, "s3", s.Region, true), "InvalidSignatureException"},
		{"wrong region", signer(s, "kms", "us-east-1", true), "InvalidSignatureException"},
		{"wrong secret", signer(s, "kms", s.Region, false), "InvalidSignatureException"},
		{"body changed after signing", func(r *http.Request, body []byte) {
			signer(s, "kms", s.Region, true)(r, body)
			tampered := bytes.Replace(body, []byte(id), []byte("alias/other"), 1)
			r.Body = ioNopCloser(tampered)
			r.ContentLength = int64(len(tampered))
		}, "InvalidSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := call(t, s, "DescribeKey", body, tt.sign)
			if status != http.StatusBadRequest || out["__type"] != tt.wantType {
				t.Fatalf("status %d, body %v; want 400 %s", status, out, tt.wantType)
			}
		})
	}
	status, out := call(t, s, "DescribeKey", body, signer(s, "kms", s.Region, true))
	if status != http.StatusOK {
		t.Fatalf("correctly signed DescribeKey: %d %v", status, out)
	}
	md := out["KeyMetadata"].(map[string]any)
	if md["KeyId"] != id || md["Enabled"] != true {
		t.Fatalf("KeyMetadata = %v", md)
	}
}

func TestCiphertextBoundToKeyAndContext(t *testing.T) {
	s := kmsfake.New(t)
	a, _ := s.CreateKey()
	b, _ := s.CreateKey()
	sign := signer(s, "kms", s.Region, true)
	ec := map[string]string{"tenant": "t", "recording_id": "r"}
	status, out := call(t, s, "Encrypt", map[string]any{"KeyId": a, "Plaintext": []byte("data key"), "EncryptionContext": ec}, sign)
	if status != http.StatusOK {
		t.Fatalf("Encrypt: %d %v", status, out)
	}
	blob := out["CiphertextBlob"].(string) // base64, as on the wire
	tests := []struct {
		name     string
		req      map[string]any
		wantType string
	}{
		{"same key and context", map[string]any{"CiphertextBlob": blob, "KeyId": a, "EncryptionContext": ec}, ""},
		{"no key id", map[string]any{"CiphertextBlob": blob, "EncryptionContext": ec}, ""},
		{"other key", map[string]any{"CiphertextBlob": blob, "KeyId": b, "EncryptionContext": ec}, "IncorrectKeyException"},
		{"other context", map[string]any{"CiphertextBlob": blob, "KeyId": a, "EncryptionContext": map[string]string{"tenant": "t", "recording_id": "x"}}, "InvalidCiphertextException"},
		{"no context", map[string]any{"CiphertextBlob": blob, "KeyId": a}, "InvalidCiphertextException"},
		{"garbage", map[string]any{"CiphertextBlob": []byte("garbage"), "KeyId": a, "EncryptionContext": ec}, "InvalidCiphertextException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := call(t, s, "Decrypt", tt.req, sign)
			if tt.wantType == "" {
				if status != http.StatusOK || out["Plaintext"] != "ZGF0YSBrZXk=" {
					t.Fatalf("Decrypt: %d %v", status, out)
				}
				return
			}
			if status != http.StatusBadRequest || out["__type"] != tt.wantType {
				t.Fatalf("Decrypt: %d %v; want %s", status, out, tt.wantType)
			}
		})
	}
}
