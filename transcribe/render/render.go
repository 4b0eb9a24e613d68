package render

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/custodian/custodian/transcribe"
)

// Formats served by the API (?format=).
const (
	FormatJSON = "json"
	FormatVTT  = "vtt"
	FormatText = "txt"
)

// ContentType returns the media type of a format, "" for an unknown one.
func ContentType(format string) string {
	switch format {
	case FormatJSON:
		return "application/json"
	case FormatVTT:
		return "text/vtt; charset=utf-8"
	case FormatText:
		return "text/plain; charset=utf-8"
	default:
		return ""
	}
}

// Normalize returns t with empty lists instead of nil ones (so JSON has
// "segments": [] rather than null) and every segment's text filled in from
// its words when the engine left it empty.
func Normalize(t transcribe.Transcript) transcribe.Transcript {
	t.Segments = slices.Clone(t.Segments)
	if t.Segments == nil {
		t.Segments = []transcribe.Segment{}
	}
	if t.Redactions == nil {
		t.Redactions = []transcribe.Redaction{}
	}
	for i := range t.Segments {
		s := &t.Segments[i]
		if s.Words == nil {
			s.Words = []transcribe.Word{}
		}
		if strings.TrimSpace(s.Text) == "" && len(s.Words) > 0 {
			s.Text = wordsText(s.Words)
		}
	}
	return t
}

func wordsText(ws []transcribe.Word) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.Word)
	}
	return b.String()
}

// JSON returns the transcript JSON of SPEC section 10 (times on the
// session clock), followed by a newline.
func JSON(t transcribe.Transcript) ([]byte, error) {
	b, err := json.Marshal(Normalize(t))
	if err != nil {
		return nil, fmt.Errorf("render: transcript json: %w", err)
	}
	return append(b, '\n'), nil
}

// Label returns the name a segment is shown under: its speaker, else its
// participant id, else "Speaker".
func Label(speaker, participantID string) string {
	switch {
	case strings.TrimSpace(speaker) != "":
		return speaker
	case participantID != "":
		return participantID
	default:
		return "Speaker"
	}
}

// Segments returns t's segments (normalized) each labelled with t's
// speaker, participant and recording, as Merge does.
func Segments(t transcribe.Transcript) []transcribe.Segment {
	t = Normalize(t)
	for i := range t.Segments {
		s := &t.Segments[i]
		if s.Speaker == "" {
			s.Speaker = Label(t.Speaker, t.ParticipantID)
		}
		if s.ParticipantID == "" {
			s.ParticipantID = t.ParticipantID
		}
		if s.RecordingID == "" {
			s.RecordingID = t.RecordingID
		}
	}
	return t.Segments
}

// Source is one recording whose transcript is part of a Merged session
// transcript.
type Source struct {
	RecordingID   string `json:"recording_id"`
	ParticipantID string `json:"participant_id"`
	Speaker       string `json:"speaker"`
	Engine        string `json:"engine"`
	Language      string `json:"language"`
}

// MergedRedaction is a redacted span of one participant.
type MergedRedaction struct {
	transcribe.Redaction
	ParticipantID string `json:"participant_id"`
	RecordingID   string `json:"recording_id"`
}

// Merged is a session's transcript: every participant's segments in time
// order on the session clock, each labelled with speaker, participant and
// recording.
type Merged struct {
	SessionID  string               `json:"session_id"`
	Sources    []Source             `json:"recordings"`
	Segments   []transcribe.Segment `json:"segments"`
	Redactions []MergedRedaction    `json:"redactions"`
}

// Merge merges the transcripts of one session's recordings. Segments are
// ordered by start time, then end time, then speaker and recording id, so
// the result does not depend on the order of ts. Sources are ordered by
// recording id.
func Merge(sessionID string, ts []transcribe.Transcript) Merged {
	m := Merged{SessionID: sessionID, Sources: []Source{}, Segments: []transcribe.Segment{}, Redactions: []MergedRedaction{}}
	for _, t := range ts {
		m.Sources = append(m.Sources, Source{
			RecordingID: t.RecordingID, ParticipantID: t.ParticipantID,
			Speaker: Label(t.Speaker, t.ParticipantID), Engine: t.Engine, Language: t.Language,
		})
		m.Segments = append(m.Segments, Segments(t)...)
		for _, r := range t.Redactions {
			m.Redactions = append(m.Redactions, MergedRedaction{Redaction: r, ParticipantID: t.ParticipantID, RecordingID: t.RecordingID})
		}
	}
	slices.SortStableFunc(m.Sources, func(a, b Source) int { return strings.Compare(a.RecordingID, b.RecordingID) })
	slices.SortStableFunc(m.Segments, func(a, b transcribe.Segment) int {
		return cmp.Or(cmp.Compare(a.StartMS, b.StartMS), cmp.Compare(a.EndMS, b.EndMS),
			strings.Compare(a.Speaker, b.Speaker), strings.Compare(a.RecordingID, b.RecordingID))
	})
	slices.SortStableFunc(m.Redactions, func(a, b MergedRedaction) int {
		return cmp.Or(cmp.Compare(a.StartMS, b.StartMS), cmp.Compare(a.EndMS, b.EndMS),
			strings.Compare(a.RecordingID, b.RecordingID))
	})
	return m
}

// JSON returns the merged transcript as JSON followed by a newline.
func (m Merged) JSON() ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("render: session transcript json: %w", err)
	}
	return append(b, '\n'), nil
}

// VTT writes segs as a WebVTT file, one cue per segment with a voice span
// naming its speaker (<v Speaker>). offsetMS is subtracted from every time
// (pass a recording's start on the session clock to line cues up with its
// media; 0 keeps the session clock); times before 0 become 0 and a cue
// that would not end after its start lasts 1 ms.
func VTT(w io.Writer, segs []transcribe.Segment, offsetMS int64) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("WEBVTT\n")
	n := 0
	for _, s := range segs {
		text := oneLine(segmentText(s))
		if text == "" {
			continue
		}
		n++
		start, end := shift(s.StartMS, offsetMS), shift(s.EndMS, offsetMS)
		if end <= start {
			end = start + 1
		}
		bw.WriteString("\n" + strconv.Itoa(n) + "\n")
		bw.WriteString(Timestamp(start) + " --> " + Timestamp(end) + "\n")
		bw.WriteString("<v " + voice(Label(s.Speaker, s.ParticipantID)) + ">" + vttEscape(text) + "\n")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render: vtt: %w", err)
	}
	return nil
}

// Text writes segs as plain text, one line per segment:
// "[hh:mm:ss.mmm] Speaker: text". offsetMS as for VTT.
func Text(w io.Writer, segs []transcribe.Segment, offsetMS int64) error {
	bw := bufio.NewWriter(w)
	for _, s := range segs {
		text := oneLine(segmentText(s))
		if text == "" {
			continue
		}
		bw.WriteString("[" + Timestamp(shift(s.StartMS, offsetMS)) + "] " + oneLine(Label(s.Speaker, s.ParticipantID)) + ": " + text + "\n")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("render: text: %w", err)
	}
	return nil
}

func segmentText(s transcribe.Segment) string {
	if strings.TrimSpace(s.Text) != "" {
		return s.Text
	}
	return wordsText(s.Words)
}

func shift(ms, offset int64) int64 {
	if ms -= offset; ms < 0 {
		return 0
	}
	return ms
}

// Timestamp formats ms as a WebVTT timestamp, hh:mm:ss.mmm (hours grow
// beyond two digits when needed; negative times are 0).
func Timestamp(ms int64) string {
	if ms < 0 {
		ms = 0
	}
	h := ms / 3_600_000
	m := ms / 60_000 % 60
	s := ms / 1000 % 60
	return fmt.Sprintf("%02d:%02d:%02d.%03d", h, m, s, ms%1000)
}

// oneLine collapses line breaks and other control characters into single
// spaces: a line break would end a cue (or a text line) early.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// vttEscape escapes what WebVTT cue text treats as markup, so "-->" and
// tags in spoken text cannot end or style a cue.
var vttEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func vttEscape(s string) string { return vttEscaper.Replace(s) }

// voice returns a speaker name for a <v> span: escaped, on one line, and
// not ending in '-', which with the closing '>' would make "-->".
func voice(name string) string {
	v := vttEscape(oneLine(name))
	if strings.HasSuffix(v, "-") {
		v += " "
	}
	return v
}
