// Package policy takes Custodian's governance decisions: whether a
// participant's media is recorded, whether consent is needed before it is
// stored, whether it is transcribed and redacted, how long it is kept and
// who may read it (SPEC section 8).
//
// In the data flow it sits before everything that stores media: a session
// is admitted (POST /v1/sessions or the first WHIP POST) → Set.Decide with
// the session's tenant, department and labels and the participant's
// attributes → the Decision is stored with the session and recording rows →
// the recorder stores media only when Decision.ShouldStore says so → the
// recording's retain_until comes from RetainUntil → transcription follows
// Transcribe, RedactPII and KeepUnredacted → the API checks CanAccess
// (together with the role scopes of api/auth) before any read.
//
// Everything here is a pure function over plain structs: no I/O, no clock,
// no globals. The enforcement worker that deletes expired, unheld items
// lives in a subpackage and acts on the decisions taken here.
//
// A policy document is a list of rules; the first rule whose match fits
// wins. Parse and ParseNode reject a bad document whole with a *ParseError
// naming the line, column, rule, field and reason; nothing is partially
// applied. See docs/policy.md for the document form and the defaults.
package policy
