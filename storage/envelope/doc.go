// Package envelope is the sealed object format of Custodian's encrypted
// object store.
//
// In the data flow it sits between the muxers and the spool: the storage
// package's Writer hands it each container part (and the manifest, and
// transcripts) with the recording's 32-byte data key and a Binding
// {tenant, recording id, object name}; Seal returns an age file
// (age-encryption.org/v1, filippo.io/age) whose only recipient stanza is a
// custom "custodian.v1" stanza. The stanza wraps age's random file key under
// a key derived with HKDF-SHA256 from the data key, a random salt and the
// binding, so an object opens only as exactly the object it was sealed as.
// The payload is age's STREAM: ChaCha20-Poly1305 in 64 KiB chunks, with the
// last chunk marked, so truncation at or between chunk boundaries, reordered
// chunks and trailing data are detected. There is no home-made chunk format.
//
// Open authenticates the whole object before it returns any plaintext; on
// any failure it returns nil and an *Error that classifies the failure with
// the sentinels ErrAuthentication, ErrWrongBinding, ErrTruncated and
// ErrMalformed (use errors.Is).
package envelope
