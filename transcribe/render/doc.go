// Package render turns stored transcripts into what the API serves: the
// transcript JSON of SPEC section 10, WebVTT and plain text, for one
// recording or for a whole session with every participant merged in time
// order and labelled with its speaker.
//
// In the data flow it is the last step of a transcript read:
//
//	encrypted transcript object → storage.GetObject → JSON decode → [render] → HTTP response / export bundle
//
// The functions are pure (no I/O besides the writer they are given, no
// logging) and safe for concurrent use. Redacted spans are already words
// "[REDACTED:TYPE]" in the stored text and stay visible as such in every
// format.
package render
