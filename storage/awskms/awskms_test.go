package awskms_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/custodian/custodian/storage/awskms"
	"github.com/custodian/custodian/storage/awskms/kmsfake"
)

var ctx = context.Background()

func ec(tenant, rec string) map[string]string {
	return map[string]string{"tenant": tenant, "recording_id": rec}
}

func newProvider(t testing.TB, fake *kmsfake.Server, cfg awskms.Config, opts ...awskms.Option) *awskms.Provider {
	t.Helper()
	cfg.Region, cfg.Endpoint = fake.Region, fake.URL
	opts = append([]awskms.Option{
		awskms.WithCredentials(credentials.NewStaticCredentialsProvider(fake.AccessKey, fake.SecretKey, "")),
		awskms.WithMaxAttempts(1),
	}, opts...)
	p, err := awskms.New(ctx, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dek() []byte { return bytes.Repeat([]byte{0x42}, 32) }

// Tests run against kmsfake, a protocol-level fake of KMS: no real KMS
// can run here.

func TestRoundTripKMSProtocolFake(t *testing.T) {
	fake := kmsfake.New(t)
	id, arn := fake.CreateKey()
	p := newProvider(t, fake, awskms.Config{KeyID: id})
	c := ec("default", "rec1")
	w, kekID, err := p.Wrap(ctx, dek(), c)
	if err != nil {
		t.Fatal(err)
	}
	if kekID != arn {
		t.Errorf("kekID = %q, want the key ARN %q", kekID, arn)
	}
	if bytes.Contains(w, dek()) {
		t.Error("wrapped key contains the data key")
	}
	got, err := p.Unwrap(ctx, w, kekID, c)
	if err != nil || !bytes.Equal(got, dek()) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 || reqs[0].Op != "Encrypt" || reqs[1].Op != "Decrypt" {
		t.Fatalf("requests = %+v", reqs)
	}
	if reqs[0].KeyID != id || !maps.Equal(reqs[0].EncryptionContext, c) {
		t.Errorf("Encrypt sent KeyId %q context %v", reqs[0].KeyID, reqs[0].EncryptionContext)
	}
	if reqs[1].KeyID != arn || !maps.Equal(reqs[1].EncryptionContext, c) {
		t.Errorf("Decrypt sent KeyId %q context %v", reqs[1].KeyID, reqs[1].EncryptionContext)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestWrongContextRejectedKMSProtocolFake(t *testing.T) {
	fake := kmsfake.New(t)
	id, _ := fake.CreateKey()
	p := newProvider(t, fake, awskms.Config{KeyID: id})
	w, kekID, err := p.Wrap(ctx, dek(), ec("default", "rec1"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ec   map[string]string
	}{
		{"other recording", ec("default", "rec2")},
		{"other tenant", ec("acme", "rec1")},
		{"missing recording", map[string]string{"tenant": "default"}},
		{"extra pair", map[string]string{"tenant": "default", "recording_id": "rec1", "part": "0"}},
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Unwrap(ctx, w, kekID, tt.ec)
			if !errors.Is(err, awskms.ErrUnwrap) || got != nil {
				t.Fatalf("Unwrap with %v = %x, %v; want ErrUnwrap", tt.ec, got, err)
			}
			if awskms.IsRetryable(err) {
				t.Errorf("context mismatch classified retryable: %v", err)
			}
			if !strings.Contains(err.Error(), "InvalidCiphertextException") {
				t.Errorf("error %q does not carry the KMS error", err)
			}
		})
	}
	// A damaged ciphertext fails the same way.
	bad := bytes.Clone(w)
	bad[len(bad)-1] ^= 1
	if _, err := p.Unwrap(ctx, bad, kekID, ec("default", "rec1")); !errors.Is(err, awskms.ErrUnwrap) {
		t.Fatalf("damaged ciphertext: %v, want ErrUnwrap", err)
	}
}

func TestTenantKeysKMSProtocolFake(t *testing.T) {
	fake := kmsfake.New(t)
	defID, defARN := fake.CreateKey()
	acmeID, acmeARN := fake.CreateKey()
	fake.CreateAlias("alias/acme-recordings", acmeID)
	p := newProvider(t, fake, awskms.Config{
		KeyID:        defID,
		TenantKeyIDs: map[string]string{"acme": "alias/acme-recordings"},
	})
	wDef, kDef, err := p.Wrap(ctx, dek(), ec("default", "r1"))
	if err != nil || kDef != defARN {
		t.Fatalf("default tenant wrapped with %q, %v; want %q", kDef, err, defARN)
	}
	wAcme, kAcme, err := p.Wrap(ctx, dek(), ec("acme", "r1"))
	if err != nil || kAcme != acmeARN {
		t.Fatalf("acme wrapped with %q, %v; want its own key %q (alias resolved)", kAcme, err, acmeARN)
	}
	if reqs := fake.Requests(); reqs[1].KeyID != "alias/acme-recordings" {
		t.Errorf("Encrypt for acme named %q, want the alias", reqs[1].KeyID)
	}
	// Each unwraps with its own key only.
	if _, err := p.Unwrap(ctx, wAcme, kAcme, ec("acme", "r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Unwrap(ctx, wDef, kDef, ec("default", "r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Unwrap(ctx, wAcme, kDef, ec("acme", "r1")); !errors.Is(err, awskms.ErrUnwrap) {
		t.Fatalf("acme's key unwrapped with the default key id: %v, want ErrUnwrap", err)
	}
	// A tenant-only configuration refuses tenants without a key.
	only := newProvider(t, fake, awskms.Config{TenantKeyIDs: map[string]string{"acme": acmeID}})
	before := len(fake.Requests())
	if _, _, err := only.Wrap(ctx, dek(), ec("other", "r")); !errors.Is(err, awskms.ErrNoKey) {
		t.Fatalf("Wrap for a tenant without a key = %v, want ErrNoKey", err)
	}
	if len(fake.Requests()) != before {
		t.Error("Wrap without a key still called KMS")
	}
	if err := only.Ping(ctx); err != nil {
		t.Fatalf("Ping of tenant keys: %v", err)
	}
}

// Rotation to a new KMS key: what `custodian keys rotate` does after
// kms.aws.key_id changes (Rewrap = Unwrap with the old id + Wrap).
func TestRewrapToNewKeyKMSProtocolFake(t *testing.T) {
	fake := kmsfake.New(t)
	oldID, oldARN := fake.CreateKey()
	newID, newARN := fake.CreateKey()
	before := newProvider(t, fake, awskms.Config{KeyID: oldID})
	c := ec("default", "rec1")
	w, k, err := before.Wrap(ctx, dek(), c)
	if err != nil || k != oldARN {
		t.Fatal(err)
	}
	after := newProvider(t, fake, awskms.Config{KeyID: newID})
	d, err := after.Unwrap(ctx, w, k, c)
	if err != nil {
		t.Fatalf("unwrap under the old key after reconfiguring: %v", err)
	}
	w2, k2, err := after.Wrap(ctx, d, c)
	if err != nil || k2 != newARN {
		t.Fatalf("re-wrap used %q, %v; want the new key %q", k2, err, newARN)
	}
	if got, err := after.Unwrap(ctx, w2, k2, c); err != nil || !bytes.Equal(got, dek()) {
		t.Fatalf("unwrap after re-wrap: %v", err)
	}
}

func TestKeyErrorsKMSProtocolFake(t *testing.T) {
	fake := kmsfake.New(t)
	id, _ := fake.CreateKey()

	t.Run("unknown key", func(t *testing.T) {
		p := newProvider(t, fake, awskms.Config{KeyID: "11111111-2222-3333-4444-555555555555"})
		if _, _, err := p.Wrap(ctx, dek(), ec("t", "r")); !errors.Is(err, awskms.ErrKeyNotFound) || awskms.IsRetryable(err) {
			t.Fatalf("Wrap with an unknown key = %v, want ErrKeyNotFound, not retryable", err)
		}
		if err := p.Ping(ctx); !errors.Is(err, awskms.ErrKeyNotFound) {
			t.Fatalf("Ping with an unknown key = %v, want ErrKeyNotFound", err)
		}
	})
	t.Run("disabled key", func(t *testing.T) {
		did, _ := fake.CreateKey()
		p := newProvider(t, fake, awskms.Config{KeyID: did})
		w, k, err := p.Wrap(ctx, dek(), ec("t", "r"))
		if err != nil {
			t.Fatal(err)
		}
		fake.SetEnabled(did, false)
		if err := p.Ping(ctx); !errors.Is(err, awskms.ErrKeyDisabled) {
			t.Fatalf("Ping of a disabled key = %v, want ErrKeyDisabled", err)
		}
		if _, err := p.Unwrap(ctx, w, k, ec("t", "r")); !errors.Is(err, awskms.ErrKeyDisabled) {
			t.Fatalf("Unwrap with a disabled key = %v, want ErrKeyDisabled", err)
		}
		fake.SetEnabled(did, true)
		if _, err := p.Unwrap(ctx, w, k, ec("t", "r")); err != nil {
			t.Fatalf("Unwrap after re-enabling: %v", err)
		}
	})
	t.Run("access denied", func(t *testing.T) {
		aid, _ := fake.CreateKey()
		fake.Deny(aid, true)
		p := newProvider(t, fake, awskms.Config{KeyID: aid})
		_, _, err := p.Wrap(ctx, dek(), ec("t", "r"))
		if !errors.Is(err, awskms.ErrAccessDenied) || awskms.IsRetryable(err) {
			t.Fatalf("Wrap with a denied key = %v, want ErrAccessDenied, not retryable", err)
		}
		if err := p.Ping(ctx); !errors.Is(err, awskms.ErrAccessDenied) {
			t.Fatalf("Ping with a denied key = %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		p, err := awskms.New(ctx, awskms.Config{KeyID: id, Region: fake.Region, Endpoint: fake.URL},
			awskms.WithCredentials(credentials.NewStaticCredentialsProvider(fake.AccessKey, "not-the-secret", "")),
			awskms.WithMaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = p.Wrap(ctx, dek(), ec("t", "r"))
		if !errors.Is(err, awskms.ErrAccessDenied) || !strings.Contains(err.Error(), "InvalidSignatureException") {
			t.Fatalf("Wrap signed with a wrong secret = %v, want ErrAccessDenied (InvalidSignatureException)", err)
		}
	})
	t.Run("wrong region", func(t *testing.T) {
		p, err := awskms.New(ctx, awskms.Config{KeyID: id, Region: "us-west-2", Endpoint: fake.URL},
			awskms.WithCredentials(credentials.NewStaticCredentialsProvider(fake.AccessKey, fake.SecretKey, "")),
			awskms.WithMaxAttempts(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Wrap(ctx, dek(), ec("t", "r")); err == nil {
			t.Fatal("Wrap signed for another region succeeded")
		}
	})
}

func TestServerErrorsKMSProtocolFake(t *testing.T) {
	fake := kmsfake.New(t)
	id, _ := fake.CreateKey()

	t.Run("internal error surfaces, retryable", func(t *testing.T) {
		p := newProvider(t, fake, awskms.Config{KeyID: id})
		fake.AddFault(kmsfake.Fault{Op: "Encrypt", Type: "KMSInternalException", Count: 1})
		_, _, err := p.Wrap(ctx, dek(), ec("t", "r"))
		if err == nil || !strings.Contains(err.Error(), "KMSInternalException") || !awskms.IsRetryable(err) {
			t.Fatalf("Wrap during an internal error = %v; want a retryable error naming KMSInternalException", err)
		}
		if _, _, err := p.Wrap(ctx, dek(), ec("t", "r")); err != nil {
			t.Fatalf("Wrap after the fault cleared: %v", err)
		}
	})
	t.Run("SDK retries a transient error", func(t *testing.T) {
		p := newProvider(t, fake, awskms.Config{KeyID: id}, awskms.WithMaxAttempts(3))
		fake.AddFault(kmsfake.Fault{Op: "Encrypt", Type: "KMSInternalException", Count: 1})
		if _, _, err := p.Wrap(ctx, dek(), ec("t", "r")); err != nil {
			t.Fatalf("Wrap with one transient failure and 3 attempts: %v", err)
		}
	})
	t.Run("throttling", func(t *testing.T) {
		p := newProvider(t, fake, awskms.Config{KeyID: id})
		fake.AddFault(kmsfake.Fault{Op: "Decrypt", Type: "ThrottlingException", Count: 1})
		w, k, err := p.Wrap(ctx, dek(), ec("t", "r"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Unwrap(ctx, w, k, ec("t", "r")); err == nil || !awskms.IsRetryable(err) {
			t.Fatalf("throttled Unwrap = %v, want a retryable error", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		p := newProvider(t, fake, awskms.Config{KeyID: id}, awskms.WithTimeout(200*time.Millisecond))
		fake.AddFault(kmsfake.Fault{Op: "Encrypt", Delay: 5 * time.Second, Count: 1})
		_, _, err := p.Wrap(ctx, dek(), ec("t", "r"))
		if !errors.Is(err, context.DeadlineExceeded) || !awskms.IsRetryable(err) {
			t.Fatalf("Wrap against a hanging server = %v, want a retryable deadline error", err)
		}
	})
	t.Run("server down", func(t *testing.T) {
		down := kmsfake.New(t)
		did, _ := down.CreateKey()
		p := newProvider(t, down, awskms.Config{KeyID: did})
		down.Close()
		_, _, err := p.Wrap(ctx, dek(), ec("t", "r"))
		if err == nil || !awskms.IsRetryable(err) {
			t.Fatalf("Wrap with the server down = %v, want a retryable error", err)
		}
		if err := p.Ping(ctx); err == nil {
			t.Fatal("Ping with the server down succeeded")
		}
	})
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []awskms.Config{
		{},
		{TenantKeyIDs: map[string]string{"acme": ""}},
		{KeyID: "k", TenantKeyIDs: map[string]string{"": "k2"}},
	} {
		if _, err := awskms.New(ctx, cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func BenchmarkWrapUnwrapKMSProtocolFake(b *testing.B) {
	fake := kmsfake.New(b)
	id, _ := fake.CreateKey()
	p := newProvider(b, fake, awskms.Config{KeyID: id})
	c := ec("default", "rec1")
	b.ReportAllocs()
	for b.Loop() {
		w, k, err := p.Wrap(ctx, dek(), c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Unwrap(ctx, w, k, c); err != nil {
			b.Fatal(err)
		}
	}
}
