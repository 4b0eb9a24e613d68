// Package awskms is the production key-encryption-key provider: data keys
// are wrapped and unwrapped by AWS KMS (Encrypt and Decrypt under a
// symmetric KMS key), through github.com/aws/aws-sdk-go-v2/service/kms.
//
// In the data flow it takes the keyring's place (storage/keyring): when a
// recording starts, storage.Store draws a random data key and asks the
// Provider, as a storage.KeyWrapper, to wrap it under the tenant's KMS key
// (Config.TenantKeyIDs[tenant], else Config.KeyID) with the encryption
// context {tenant, recording_id}; the ciphertext blob and the key's ARN go
// into the database. Unwrap calls Decrypt with that key id and the same
// context; KMS refuses any other context. Key material never leaves KMS.
//
// Rotation: KMS rotates a key's material itself (automatic rotation keeps
// every older version for Decrypt). To move data keys to a different KMS
// key, change kms.aws.key_id (or the tenant's entry) and run `custodian
// keys rotate`: Rewrap unwraps each data key with the key that wrapped it
// and wraps it again under the configured one.
//
// Credentials come only from the AWS SDK's default chain. Tests run against
// kmsfake, a protocol-level fake (no real KMS runs here).
package awskms
