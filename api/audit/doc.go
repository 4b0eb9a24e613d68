// Package audit keeps Custodian's tamper-evident audit log.
//
// It sits beside every data flow that a person can trigger: the API calls
// Append (or AppendTx, inside the transaction of the change it records)
// for every read of media or a transcript, every search, export, legal
// hold, policy or token change and deletion. Entries form one hash chain
// in the metadata database (meta.AuditEntry): each entry's hash covers a
// canonical, versioned encoding of all its fields and the previous
// entry's hash, and sequence numbers have no gaps, so Verify finds any
// changed, removed or reordered entry. Signed checkpoints
// (meta.AuditCheckpoint, Ed25519) written periodically by a Checkpointer
// let an operator keep the head hash outside the database; List serves
// GET /v1/audit.
package audit
