package report

import (
	"encoding/json"
	"time"
)

// Range kinds.
const (
	KindLost              = "lost"
	KindPaused            = "paused"
	KindExcludedNoConsent = "excluded_no_consent"
)

// Range is a span of time. StartMS/EndMS are milliseconds on the
// recording timeline (0 is the recording's first packet), clipped to the
// recording; SessionStartMS/SessionEndMS are milliseconds on the session
// clock. A span that ended before the recording began (media excluded
// until consent arrived) has StartMS == EndMS == 0.
type Range struct {
	Kind           string `json:"kind"`
	Track          string `json:"track,omitempty"` // audio | video, for lost spans
	StartMS        int64  `json:"start_ms"`
	EndMS          int64  `json:"end_ms"`
	SessionStartMS int64  `json:"session_start_ms"`
	SessionEndMS   int64  `json:"session_end_ms"`
	// Packets is the number of packets lost in a lost span.
	Packets uint64 `json:"packets,omitempty"`
}

// Track is the part of the report about one track.
type Track struct {
	Kind  string `json:"kind"`  // audio | video
	Codec string `json:"codec"` // opus, VP8, VP9, AV1, H264

	// PacketsExpected counts sequence numbers from each stream's first
	// to its highest; PacketsReceived the distinct packets that arrived
	// in time; PacketsLost the sequence numbers given up (expected =
	// received + lost); PacketsLate those that arrived after being given
	// up (also counted as lost); PacketsDuplicate extra copies;
	// PacketsDroppedInvalid packets rejected as malformed (bad padding,
	// zero-length payload, unparsable payload, unknown payload type,
	// absurd timestamp); PacketsGated packets that arrived while the
	// gate was closed and were never stored.
	PacketsExpected       uint64 `json:"packets_expected"`
	PacketsReceived       uint64 `json:"packets_received"`
	PacketsLost           uint64 `json:"packets_lost"`
	PacketsLate           uint64 `json:"packets_late"`
	PacketsDuplicate      uint64 `json:"packets_duplicate"`
	PacketsDroppedInvalid uint64 `json:"packets_dropped_invalid"`
	PacketsGated          uint64 `json:"packets_gated"`

	FramesWritten   uint64 `json:"frames_written"`
	FramesDiscarded uint64 `json:"frames_discarded"` // incomplete, undecodable (waiting for a keyframe) or overlapping
	// SilenceMS is the audio the recorder filled with silence (DTX, loss,
	// gated spans, padding to the end).
	SilenceMS int64 `json:"silence_ms,omitempty"`

	KeyframeRequests uint64 `json:"keyframe_requests"`
	NACKsSent        uint64 `json:"nacks_sent"`

	SSRCs            []uint32 `json:"ssrcs"`
	SSRCChanges      int      `json:"ssrc_changes"`
	SequenceRestarts uint64   `json:"sequence_restarts"`
	TimestampJumps   uint64   `json:"timestamp_jumps"`

	FirstPacketAt *time.Time `json:"first_packet_at,omitempty"`
	LastPacketAt  *time.Time `json:"last_packet_at,omitempty"`

	LostRanges          []Range `json:"lost_ranges"`
	LostRangesTruncated bool    `json:"lost_ranges_truncated,omitempty"`
}

// Report is a recording's completeness report. The packet counters are
// the sums over its tracks.
type Report struct {
	ContentType string   `json:"content_type"`
	Codecs      []string `json:"codecs"`

	// StartedAt is the wall-clock time of the recording's first packet
	// (its timeline's zero), StartOffsetMS the same on the session clock.
	StartedAt     *time.Time `json:"started_at,omitempty"`
	EndedAt       time.Time  `json:"ended_at"`
	StartOffsetMS int64      `json:"start_offset_ms"`
	DurationMS    int64      `json:"duration_ms"`
	// Empty is true when no media was recorded (nothing reached the sink).
	Empty bool  `json:"empty,omitempty"`
	Parts int   `json:"parts"`
	Bytes int64 `json:"bytes"`

	PacketsExpected       uint64 `json:"packets_expected"`
	PacketsReceived       uint64 `json:"packets_received"`
	PacketsLost           uint64 `json:"packets_lost"`
	PacketsLate           uint64 `json:"packets_late"`
	PacketsDuplicate      uint64 `json:"packets_duplicate"`
	PacketsDroppedInvalid uint64 `json:"packets_dropped_invalid"`
	PacketsGated          uint64 `json:"packets_gated"`
	KeyframeRequests      uint64 `json:"keyframe_requests"`
	NACKsSent             uint64 `json:"nacks_sent"`
	SSRCChanges           int    `json:"ssrc_changes"`

	FirstPacketAt *time.Time `json:"first_packet_at,omitempty"`
	LastPacketAt  *time.Time `json:"last_packet_at,omitempty"`

	// LostRanges are the lost spans of all tracks, by start.
	LostRanges []Range `json:"lost_ranges"`
	// PausedRanges are the gated spans: kind paused or excluded_no_consent.
	PausedRanges []Range `json:"paused_ranges"`

	Tracks []Track `json:"tracks"`

	// Failure is set when the recording failed (a sink error).
	Failure string `json:"failure,omitempty"`
}

// Map returns the report as a JSON object, for storage in
// meta.Recording.Completeness and in events.
func (r *Report) Map() map[string]any {
	b, err := json.Marshal(r)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}
