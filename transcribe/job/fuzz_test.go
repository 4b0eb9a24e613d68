package job

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
)

// FuzzParseJob: any message is a valid job or ErrBadJob, and a parsed
// job survives a round trip.
func FuzzParseJob(f *testing.F) {
	good, _ := json.Marshal(Job{Tenant: "default", RecordingID: meta.NewID("rec"), Source: SourceCompleted, EnqueuedAt: time.Unix(1, 0).UTC()})
	for _, s := range [][]byte{good, []byte(`{}`), []byte(`{"tenant":"../x","recording_id":"a"}`), []byte(`[`), nil,
		[]byte(`{"tenant":"t","recording_id":"r","event_time":"not a time"}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := parseJob(b)
		if err != nil {
			if !errors.Is(err, ErrBadJob) {
				t.Fatalf("error %v is not ErrBadJob", err)
			}
			return
		}
		if !meta.ValidID(j.Tenant) || !meta.ValidID(j.RecordingID) {
			t.Fatalf("accepted invalid ids %q %q", j.Tenant, j.RecordingID)
		}
		again, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := parseJob(again)
		if err != nil || j2.Tenant != j.Tenant || j2.RecordingID != j.RecordingID || !j2.EnqueuedAt.Equal(j.EnqueuedAt) {
			t.Fatalf("round trip: %+v → %+v, %v", j, j2, err)
		}
	})
}

// FuzzSegments: whatever times an engine returns, segments are in order,
// hold their words inside their bounds, lose no non-blank word and carry
// the session offset.
func FuzzSegments(f *testing.F) {
	f.Add([]byte{0, 10, 0, 20, 1, 0, 2, 0}, int64(500))
	f.Add([]byte{255, 255, 0, 0, 7, 7, 3, 200}, int64(0))
	f.Fuzz(func(t *testing.T, raw []byte, offset int64) {
		offset = offset % (24 * 3600 * 1000)
		if offset < 0 {
			offset = -offset
		}
		var ws []transcribe.Word
		var spans []span
		pos := int64(0)
		for i := 0; i+4 <= len(raw) && len(ws) < 500; i += 4 {
			d := int64(binary.BigEndian.Uint16(raw[i:])) - 2000
			l := int64(raw[i+2]) * 10
			pos += max(d, 0)
			w := transcribe.Word{StartMS: pos, EndMS: pos + l - int64(raw[i+3]%3)*10, Word: []string{"a", "b", " ", "c d"}[raw[i+3]%4]}
			ws = append(ws, w)
			if raw[i+3]%5 == 0 {
				spans = append(spans, span{pos - 10, pos + 3000})
			}
		}
		segs := segments(ws, spans, offset)
		n := 0
		for _, w := range ws {
			if w.Word != " " {
				n++
			}
		}
		got := 0
		for i, s := range segs {
			if len(s.Words) == 0 || s.Text == "" {
				t.Fatalf("empty segment %d", i)
			}
			if i > 0 && s.StartMS < segs[i-1].StartMS {
				t.Fatalf("segment %d starts before %d", i, i-1)
			}
			for _, w := range s.Words {
				if w.StartMS < s.StartMS || w.EndMS > s.EndMS || w.EndMS < w.StartMS || w.StartMS < offset {
					t.Fatalf("word [%d, %d] outside segment [%d, %d] (offset %d)", w.StartMS, w.EndMS, s.StartMS, s.EndMS, offset)
				}
			}
			got += len(s.Words)
		}
		if got != n {
			t.Fatalf("%d words in segments, %d non-blank words in", got, n)
		}
	})
}
