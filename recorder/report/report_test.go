package report

import (
	"encoding/json"
	"testing"
	"time"
)

// TestJSONKeys pins the snake_case keys other systems read.
func TestJSONKeys(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	r := &Report{
		ContentType: "audio/ogg", StartedAt: &now, PacketsExpected: 10, PacketsLost: 1,
		LostRanges:   []Range{{Kind: KindLost, Track: "audio", StartMS: 5, EndMS: 25, Packets: 1}},
		PausedRanges: []Range{{Kind: KindPaused, StartMS: 100, EndMS: 200}},
		Tracks:       []Track{{Kind: "audio", Codec: "opus", PacketsExpected: 10}},
	}
	m := r.Map()
	for _, k := range []string{"content_type", "codecs", "started_at", "ended_at", "start_offset_ms", "duration_ms", "parts", "bytes",
		"packets_expected", "packets_received", "packets_lost", "packets_late", "packets_duplicate", "packets_dropped_invalid",
		"packets_gated", "keyframe_requests", "nacks_sent", "ssrc_changes", "lost_ranges", "paused_ranges", "tracks"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	lr := m["lost_ranges"].([]any)[0].(map[string]any)
	for _, k := range []string{"kind", "track", "start_ms", "end_ms", "session_start_ms", "session_end_ms", "packets"} {
		if _, ok := lr[k]; !ok {
			t.Errorf("lost range key %q missing", k)
		}
	}
	var back Report
	b, _ := json.Marshal(r)
	if err := json.Unmarshal(b, &back); err != nil || back.PacketsLost != 1 || back.PausedRanges[0].EndMS != 200 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}
