// Package loadgen is Custodian's load generator (custodian loadgen): many
// concurrent WHIP publishers against one gateway, then a read-back of what
// the gateway recorded.
//
// Place in the data flow: it stands in for the callers at the very start,
// and checks the very end.
//
//	testdata/*.ogg, *.ivf → whip.Pool (one pion API, a few pacing
//	goroutines) → N sessions × P participants over WHIP → the gateway's
//	recorder → recordings → GET /v1/recordings → Result (table and JSON)
//
// Sessions start at a fixed rate (ramp-up), each participant sends for the
// same duration with real pacing (20 ms Opus packets, VP8 at its frame
// rate), then ends its WHIP resource (DELETE), which finalizes its
// recording. The Result compares what each publisher put on the wire with
// the recording's completeness report. It is frugal, because it shares the
// machine with the gateway it measures: one pion API for all publishers,
// media loaded once and shared, no allocation per packet, and a few
// sending goroutines instead of one per track.
package loadgen
