// Package search is Custodian's full-text index of transcripts: the last
// step of the transcription flow (finished recording → job → engine →
// redaction → encrypted transcript object → transcript.completed) and the
// engine behind GET /v1/search.
//
// Each gateway instance keeps its own replica (Index) under search.dir:
// one bleve index per tenant, one document per recording holding its
// words in spoken order with term vectors and a stored word table, so a
// hit reports the session-clock times of the matched words. A Replica
// follows transcript.completed and recording.deleted on CUSTODIAN_EVENTS
// through a durable JetStream consumer per instance and makes the index
// match the database and the object store (Loader); Sync and Rebuild
// build a replica from the stored transcripts.
//
// Nothing the index writes is plaintext: every file goes through bleve's
// file callbacks and is sealed chunk by chunk with XChaCha20-Poly1305
// under a random generation key, itself kept in a keys file sealed under a
// key derived from the tenant's "search-index" named key (wrapped by the
// keyring or KMS). Deleting a recording removes its document at once and
// schedules a purge (Compact) that rewrites every file of the tenant's
// index under a new generation key, leaving the deleted documents out,
// and destroys the old key.
//
// Queries use a small syntax of our own (ParseQuery: words, "phrases",
// -exclusions, OR, parentheses), compiled to bleve queries; the caller's
// scope (tenant, departments, and the policy's access rule indexed with
// each document) is a filter inside the index query, so results are
// scoped before they are ranked and paginated. docs/search.md is the
// operator's and integrator's guide.
package search
