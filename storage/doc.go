// Package storage is Custodian's encrypted object store.
//
// In the data flow it sits after the muxers: the recorder hands each
// container chunk (a "part", at least every recording.part_seconds) to a
// Writer, which seals it under the recording's data key with the envelope
// format (storage/envelope, built on filippo.io/age), makes it durable in the
// local spool (storage/spool, fsync) and queues it for upload to the blob
// back end (storage/disk or storage/s3). Closing a Writer seals the manifest:
// the ordered part hashes and sizes and the complete flag. Readers verify
// the manifest, every part's hash and every part's binding to tenant,
// recording and part number, and never return unauthenticated plaintext.
//
// Each recording has a random data key, wrapped by the tenant's
// key-encryption key (storage/keyring or storage/awskms) and kept in the
// database (meta.DataKey), never in the objects. Rotation re-wraps data keys
// only; shredding destroys the data key, then deletes the objects.
//
// The API the rest of Custodian calls is Store (New): NewWriter, then
// Writer.WritePart / RewritePart / Close for recording; Open and the
// Reader (Stream, ReadRange, ReadSeeker, Verify) for playback, export and
// verification; Recover after a crash; Shred, Rewrap, SetLegalHold for
// governance; PutObject / GetObject / DeleteObject for transcripts;
// NamedKey for tenant-wide keys; Ping and Stats for readiness and metrics.
// docs/storage.md describes the format and operations.
package storage
