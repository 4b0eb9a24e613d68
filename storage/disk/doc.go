// Package disk is the embedded-default blob back end: sealed objects as
// files under DATA/objects.
//
// In the data flow it sits at the very end of the write path: the spool
// hands it parts and manifests that are already encrypted (storage/envelope),
// and Put makes each one durable with a temp file, fsync, rename and a
// directory fsync, so a crash leaves either the old object or the new one,
// never a torn file. Keys are validated so that no key can name a path
// outside the directory. The production alternative is storage/s3; both pass
// the same conformance suite (storage/storagetest).
package disk
