// Package spool is the durable local queue between sealing and the blob
// store.
//
// In the data flow it sits after the envelope and before the blob back end:
// the storage package's Writer seals a part, hands the sealed bytes to
// Put, and Put returns once the object is durable on local disk (temp file,
// fsync, rename, directory fsync). A background uploader then sends queued
// objects to the blob store, in order per group (per recording: parts, then
// the manifest), retrying with backoff while the store is unreachable, and
// deletes each spool file after its upload succeeded. On start the spool
// rescans its directory and resumes. Get serves objects that are spooled
// but not yet uploaded.
//
// The spool only ever holds sealed (encrypted) objects; it never sees
// plaintext. A full disk makes Put fail with an error satisfying
// errors.Is(err, ErrFull); objects already spooled stay intact.
package spool
