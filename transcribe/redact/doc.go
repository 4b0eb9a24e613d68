// Package redact removes personal data from transcripts before anything is
// stored or indexed (SPEC section 10, policy redact_pii).
//
// Where it sits in the data flow:
//
//	decode Opus → engine → [redact] → encrypted transcript object + index
//
// It finds payment card numbers (13 to 19 digits passing the Luhn check),
// US social security numbers, e-mail addresses and phone numbers, written
// ("4111-1111-1111-1111", "john.smith@example.com") or spoken as words the
// way offline engines emit them ("four one one one …", "john dot smith at
// example dot com"), and replaces each with one word "[REDACTED:TYPE]"
// spanning the original words' times. The functions are pure: no I/O, no
// logging, safe for concurrent use.
//
// See docs/redaction.md for what is and is not detected.
package redact
