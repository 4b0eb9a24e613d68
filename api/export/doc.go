// Package export is the eDiscovery bundle format: a zip of decrypted
// recordings, transcripts and completeness reports with a manifest of
// SHA-256 hashes signed by the gateway's Ed25519 key, encrypted as a whole
// to the recipient's age key (filippo.io/age).
//
// In the data flow it is the exit for counsel: an export job (api) opens
// each selected recording (storage.Reader) and transcript, streams them
// through a Writer into zip → age → the bundle object, so plaintext exists
// only in memory on the gateway. The recipient runs
// `custodian export verify BUNDLE --identity KEYFILE`, which decrypts the
// bundle with Open and checks every file and the signature with Verify.
//
// Layout of the zip:
//
//	manifest.json                                 Manifest: ids, files with size and SHA-256, signing key
//	manifest.sig                                  Signature over "custodian-export-manifest-v1\n" + manifest.json
//	recordings/{recording_id}/recording.json      the recording's metadata
//	recordings/{recording_id}/media.{ogg,webm,mkv} the decrypted recording
//	recordings/{recording_id}/completeness.json   its completeness report
//	recordings/{recording_id}/transcript.json     its transcript (SPEC section 10), when there is one
//	recordings/{recording_id}/transcript.vtt      the same as WebVTT on the recording's timeline
package export
