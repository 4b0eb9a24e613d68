package render

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/custodian/custodian/transcribe"
)

func sample() transcribe.Transcript {
	return transcribe.Transcript{
		RecordingID: "rec_a", SessionID: "s1", ParticipantID: "agent-7", Speaker: "Alice",
		Engine: "offline", Language: "en-US",
		Segments: []transcribe.Segment{
			{StartMS: 1500, EndMS: 9400, Text: "my card number is [REDACTED:CARD_NUMBER]", Words: []transcribe.Word{
				{StartMS: 1500, EndMS: 1700, Word: "my", Confidence: 0.9},
				{StartMS: 2500, EndMS: 9400, Word: "[REDACTED:CARD_NUMBER]", Confidence: 0.7},
			}},
			{StartMS: 3_723_004, EndMS: 3_725_000, Text: "thanks"},
		},
		Redactions: []transcribe.Redaction{{StartMS: 2500, EndMS: 9400, Type: "CARD_NUMBER"}},
	}
}

func TestTimestamp(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{0, "00:00:00.000"},
		{1, "00:00:00.001"},
		{999, "00:00:00.999"},
		{1000, "00:00:01.000"},
		{61_001, "00:01:01.001"},
		{3_723_004, "01:02:03.004"},
		{360_000_000, "100:00:00.000"},
		{-5, "00:00:00.000"},
	}
	for _, tt := range tests {
		if got := Timestamp(tt.ms); got != tt.want {
			t.Errorf("Timestamp(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestVTT(t *testing.T) {
	tests := []struct {
		name   string
		segs   []transcribe.Segment
		offset int64
		want   string
	}{
		{
			name: "redaction stays visible",
			segs: Segments(sample()),
			want: "WEBVTT\n\n1\n00:00:01.500 --> 00:00:09.400\n<v Alice>my card number is [REDACTED:CARD_NUMBER]\n" +
				"\n2\n01:02:03.004 --> 01:02:05.000\n<v Alice>thanks\n",
		},
		{
			name:   "offset to media time, clamped at zero",
			segs:   []transcribe.Segment{{StartMS: 500, EndMS: 1500, Text: "early", Speaker: "Bob"}, {StartMS: 2500, EndMS: 3000, Text: "late", Speaker: "Bob"}},
			offset: 1000,
			want:   "WEBVTT\n\n1\n00:00:00.000 --> 00:00:00.500\n<v Bob>early\n\n2\n00:00:01.500 --> 00:00:02.000\n<v Bob>late\n",
		},
		{
			name: "markup and cue terminators escaped",
			segs: []transcribe.Segment{{StartMS: 0, EndMS: 10, Text: "a --> b <i>c</i> & d\n\nNOTE x", Speaker: "<v Eve>"}},
			want: "WEBVTT\n\n1\n00:00:00.000 --> 00:00:00.010\n<v &lt;v Eve&gt;>a --&gt; b &lt;i&gt;c&lt;/i&gt; &amp; d NOTE x\n",
		},
		{
			name: "empty segments skipped, zero length gets 1 ms, text from words",
			segs: []transcribe.Segment{
				{StartMS: 5, EndMS: 9, Text: "  "},
				{StartMS: 7, EndMS: 7, Words: []transcribe.Word{{Word: "hello"}, {Word: "there"}}, ParticipantID: "p2"},
			},
			want: "WEBVTT\n\n1\n00:00:00.007 --> 00:00:00.008\n<v p2>hello there\n",
		},
		{name: "nothing", want: "WEBVTT\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := VTT(&b, tt.segs, tt.offset); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got\n%q\nwant\n%q", b.String(), tt.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	var b bytes.Buffer
	if err := Text(&b, Segments(sample()), 0); err != nil {
		t.Fatal(err)
	}
	want := "[00:00:01.500] Alice: my card number is [REDACTED:CARD_NUMBER]\n[01:02:03.004] Alice: thanks\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	Text(&b, []transcribe.Segment{{StartMS: 2000, Text: "line\r\nbreak", ParticipantID: "p9"}}, 500)
	if want := "[00:00:01.500] p9: line break\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := sample()
	b, err := JSON(in)
	if err != nil {
		t.Fatal(err)
	}
	var out transcribe.Transcript
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.RecordingID != in.RecordingID || len(out.Segments) != 2 || out.Segments[0].Text != in.Segments[0].Text ||
		out.Redactions[0] != in.Redactions[0] || out.Segments[0].Words[1] != in.Segments[0].Words[1] {
		t.Errorf("round trip changed the transcript: %+v", out)
	}
	// Keys of SPEC section 10.
	for _, k := range []string{`"recording_id"`, `"session_id"`, `"participant_id"`, `"speaker"`, `"engine"`, `"language"`,
		`"segments"`, `"start_ms"`, `"end_ms"`, `"text"`, `"words"`, `"word"`, `"confidence"`, `"redactions"`, `"type"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
	empty, _ := JSON(transcribe.Transcript{RecordingID: "r"})
	if !bytes.Contains(empty, []byte(`"segments":[]`)) || !bytes.Contains(empty, []byte(`"redactions":[]`)) {
		t.Errorf("empty lists must be [] not null: %s", empty)
	}
}

func TestMerge(t *testing.T) {
	a := transcribe.Transcript{RecordingID: "rec_a", ParticipantID: "agent", Speaker: "Agent",
		Segments:   []transcribe.Segment{{StartMS: 0, EndMS: 900, Text: "hello"}, {StartMS: 4000, EndMS: 4500, Text: "goodbye"}},
		Redactions: []transcribe.Redaction{{StartMS: 4100, EndMS: 4200, Type: "EMAIL"}}}
	b := transcribe.Transcript{RecordingID: "rec_b", ParticipantID: "cust-1",
		Segments:   []transcribe.Segment{{StartMS: 1000, EndMS: 3000, Text: "my ssn is [REDACTED:SSN]"}, {StartMS: 4000, EndMS: 4200, Text: "bye"}},
		Redactions: []transcribe.Redaction{{StartMS: 2000, EndMS: 3000, Type: "SSN"}}}
	m1 := Merge("s1", []transcribe.Transcript{a, b})
	m2 := Merge("s1", []transcribe.Transcript{b, a})
	j1, _ := m1.JSON()
	j2, _ := m2.JSON()
	if !bytes.Equal(j1, j2) {
		t.Fatalf("merge depends on input order:\n%s\n%s", j1, j2)
	}
	var got []string
	for _, s := range m1.Segments {
		got = append(got, s.Speaker+":"+s.Text)
	}
	want := []string{"Agent:hello", "cust-1:my ssn is [REDACTED:SSN]", "cust-1:bye", "Agent:goodbye"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("merged order %q, want %q", got, want)
	}
	if m1.Segments[1].RecordingID != "rec_b" || m1.Segments[1].ParticipantID != "cust-1" {
		t.Errorf("segment not labelled with its recording and participant: %+v", m1.Segments[1])
	}
	if len(m1.Redactions) != 2 || m1.Redactions[0].Type != "SSN" || m1.Redactions[0].ParticipantID != "cust-1" {
		t.Errorf("redactions: %+v", m1.Redactions)
	}
	if len(m1.Sources) != 2 || m1.Sources[1].Speaker != "cust-1" {
		t.Errorf("sources: %+v", m1.Sources)
	}
	var v bytes.Buffer
	VTT(&v, m1.Segments, 0)
	if !strings.Contains(v.String(), "<v cust-1>my ssn is [REDACTED:SSN]") || !strings.Contains(v.String(), "<v Agent>hello") {
		t.Errorf("merged VTT lacks speaker labels:\n%s", v.String())
	}
	if e := Merge("s", nil); e.Segments == nil || e.Sources == nil || e.Redactions == nil {
		t.Errorf("empty merge has nil lists: %+v", e)
	}
}

func TestContentType(t *testing.T) {
	for f, want := range map[string]string{"json": "application/json", "vtt": "text/vtt; charset=utf-8", "txt": "text/plain; charset=utf-8", "srt": ""} {
		if got := ContentType(f); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", f, got, want)
		}
	}
}

// checkVTT asserts the structure a WebVTT parser relies on: the header,
// then cues of exactly an id line, a timing line and one text line.
func checkVTT(t *testing.T, out string, cues int) {
	t.Helper()
	if !strings.HasPrefix(out, "WEBVTT\n") {
		t.Fatalf("no header: %q", out)
	}
	body := strings.TrimPrefix(out, "WEBVTT\n")
	if cues == 0 {
		if body != "" {
			t.Fatalf("no cues expected: %q", out)
		}
		return
	}
	if !strings.HasPrefix(body, "\n") || !strings.HasSuffix(body, "\n") {
		t.Fatalf("cues not separated by blank lines: %q", out)
	}
	blocks := strings.Split(strings.TrimSuffix(body[1:], "\n"), "\n\n")
	if len(blocks) != cues {
		t.Fatalf("%d blocks for %d cues: %q", len(blocks), cues, out)
	}
	for i, b := range blocks {
		lines := strings.Split(b, "\n")
		if len(lines) != 3 {
			t.Fatalf("cue %d has %d lines: %q", i+1, len(lines), b)
		}
		if strings.Count(lines[1], "-->") != 1 || strings.Contains(lines[2], "-->") || strings.Contains(lines[0], "-->") {
			t.Fatalf("cue %d: bad timing or text: %q", i+1, b)
		}
	}
}

func FuzzVTT(f *testing.F) {
	f.Add("hello --> world", "Alice", int64(0), int64(100), int64(0))
	f.Add("<b>x</b>\n\nWEBVTT", "a>b", int64(-5), int64(-10), int64(3))
	f.Add("\u2028line", "", int64(1<<40), int64(1<<40), int64(-1))
	f.Fuzz(func(t *testing.T, text, speaker string, start, end, offset int64) {
		segs := []transcribe.Segment{{StartMS: start, EndMS: end, Text: text, Speaker: speaker}}
		var b bytes.Buffer
		if err := VTT(&b, segs, offset); err != nil {
			t.Fatal(err)
		}
		cues := 0
		if oneLine(text) != "" {
			cues = 1
		}
		checkVTT(t, b.String(), cues)
		b.Reset()
		Text(&b, segs, offset)
		if n := strings.Count(b.String(), "\n"); n != cues {
			t.Fatalf("text has %d lines, want %d: %q", n, cues, b.String())
		}
	})
}

func TestVTTStructureRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", " ", "\n", "-->", "<", ">", "&", "é", "\r", "\t", "[REDACTED:SSN]"}
	for range 500 {
		var segs []transcribe.Segment
		cues := 0
		for range rng.IntN(6) {
			var sb strings.Builder
			for range rng.IntN(8) {
				sb.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			s := transcribe.Segment{StartMS: rng.Int64N(1e7) - 1000, EndMS: rng.Int64N(1e7), Text: sb.String(), Speaker: alphabet[rng.IntN(len(alphabet))]}
			if oneLine(s.Text) != "" {
				cues++
			}
			segs = append(segs, s)
		}
		var b bytes.Buffer
		VTT(&b, segs, rng.Int64N(2000))
		checkVTT(t, b.String(), cues)
	}
}

func BenchmarkVTT(b *testing.B) {
	t := sample()
	for i := range 2000 {
		t.Segments = append(t.Segments, transcribe.Segment{StartMS: int64(i) * 3000, EndMS: int64(i)*3000 + 2500,
			Text: "we can certainly help you cancel the account today"})
	}
	segs := Segments(t)
	b.ReportAllocs()
	for b.Loop() {
		VTT(&bytes.Buffer{}, segs, 0)
	}
}
