// Package retention enforces what the policy package decided about how
// long recorded content is kept: it deletes expired items and keeps held
// ones (SPEC section 8).
//
// In the data flow it sits at the very end of a recording's life: the
// recorder stores retain_until (policy.RetainUntil at recording start) on
// the recording row and, with S3 Object Lock, as the objects' retain-until
// date; the transcription worker copies it to the transcript row → legal
// holds (meta.LegalHold, created through /v1/legal-holds) keep the
// recordings and transcripts of named sessions and participants → the
// Worker, started by the gateway every retention.interval, finds expired,
// unheld recordings, claims each one atomically, shreds its data key
// (storage.Store.Shred: from then on nothing can decrypt it), deletes its
// objects, marks the row and its transcript deleted (a tombstone keeping
// ids, hashes and times) and writes the recording.deleted event and an
// audit entry in the same transaction.
//
// Several gateway instances may run the Worker against one database: the
// claim is a conditional UPDATE of the recording's status (complete,
// recovered or failed → deleting) together with a per-item lease
// (meta.Lease), and the tombstone is a conditional UPDATE too, so each
// item is deleted, announced and audited exactly once. An instance that
// dies mid-delete leaves the item in status deleting; once its lease
// expires another instance finishes the job (shredding is idempotent).
//
// Holds are checked inside the claim's transaction, and creating a hold
// touches the rows it covers (LockCovered), so a hold and a claim on the
// same recording are serialized on SQLite and PostgreSQL alike: either
// the hold commits first and the claim backs off, or the claim commits
// first and the hold reports the recording as already being deleted.
//
// Held and HoldForWrite are what the recorder calls when a recording
// starts, so recordings under a hold get the S3 Object Lock legal hold at
// write time.
package retention
