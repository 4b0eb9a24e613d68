// Package storagetest is the conformance suite for blob back ends
// (storage.Blob): the same test body runs against storage/disk and against
// storage/s3 on a real versitygw process, so the embedded default and
// production behave alike for everything the store above relies on
// (durable Put, exact reads, ranged reads, not-found mapping, idempotent
// Delete, sorted prefix listing, concurrency, key validation).
package storagetest
