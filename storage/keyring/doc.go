// Package keyring is the embedded-default key-encryption-key (KEK)
// provider: a local file DATA/keys/keyring.json (mode 0600 in a 0700
// directory) holding 32-byte KEKs, one primary and any number retired.
//
// In the data flow it sits beside the envelope: when a recording starts,
// storage.Store draws a random data key and asks the keyring (as a
// storage.KeyWrapper) to wrap it; the wrapped key goes into the database
// (meta.DataKey), never into objects. Reading unwraps it again. Wrapping is
// XChaCha20-Poly1305 under the primary KEK with the encryption context
// ({tenant, recording_id}) and the KEK id, canonically encoded, as
// associated data, so a wrapped key only opens for the same context.
// `custodian keys rotate` calls Rotate (a new primary; the old one is
// retired but still unwraps) and then re-wraps every data key.
//
// A missing, unreadable, group- or world-accessible, corrupt or empty
// keyring is an error with a clear message. OpenOrCreate makes a new
// keyring only on a first start with no data, never over existing data.
// The production alternative is storage/awskms.
package keyring
