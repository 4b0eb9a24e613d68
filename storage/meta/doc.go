// Package meta holds Custodian's metadata: gorm models, versioned
// migrations and the connection to SQLite (embedded default, pure Go) or
// PostgreSQL (database.dsn).
//
// In the data flow it is the "database row" step: the recorder writes
// session, participant, recording and part rows; storage writes wrapped data
// keys; api/events writes outbox rows in the same transaction as the state
// change they announce; transcription, governance and the API read and
// update the rest. No row ever holds plaintext media, transcript text or an
// unwrapped key.
package meta
