package redact

import (
	"slices"
	"strings"
	"testing"

	"github.com/custodian/custodian/transcribe"
)

func TestApplySpanTimes(t *testing.T) {
	// "my card is" then sixteen digit words from 1500 ms, 500 ms apart.
	in := wordsOf("my card is four one one one one one one one one one one one one one one one thanks")
	out, spans := Apply(in)
	if len(spans) != 1 {
		t.Fatalf("spans = %v", spans)
	}
	want := transcribe.Redaction{StartMS: 1500, EndMS: 18*500 + 400, Type: CardNumber}
	if spans[0] != want {
		t.Errorf("span = %+v, want %+v", spans[0], want)
	}
	if len(out) != 5 {
		t.Fatalf("out has %d words: %q", len(out), joinWords(out))
	}
	r := out[3]
	if r.Word != "[REDACTED:CARD_NUMBER]" || r.StartMS != want.StartMS || r.EndMS != want.EndMS {
		t.Errorf("redacted word = %+v", r)
	}
	if out[4].Word != "thanks" || out[4].StartMS != 19*500 {
		t.Errorf("word after the span = %+v", out[4])
	}
}

func TestApplyWhisperStyleWords(t *testing.T) {
	// HTTP engines give digits and punctuation, one word per token.
	in := []transcribe.Word{
		{StartMS: 0, EndMS: 300, Word: "My", Confidence: 0.99},
		{StartMS: 300, EndMS: 600, Word: "card", Confidence: 0.98},
		{StartMS: 600, EndMS: 800, Word: "is", Confidence: 0.97},
		{StartMS: 800, EndMS: 1500, Word: "4111", Confidence: 0.8},
		{StartMS: 1500, EndMS: 2200, Word: "1111", Confidence: 0.7},
		{StartMS: 2200, EndMS: 2900, Word: "1111", Confidence: 0.9},
		{StartMS: 2900, EndMS: 3600, Word: "1111.", Confidence: 0.9},
		{StartMS: 3700, EndMS: 4000, Word: "Email:", Confidence: 0.9},
		{StartMS: 4000, EndMS: 5200, Word: "jane.doe@example.org,", Confidence: 0.6},
		{StartMS: 5200, EndMS: 5500, Word: "thanks!", Confidence: 0.9},
	}
	out, spans := Apply(in)
	want := "My card is [REDACTED:CARD_NUMBER]. Email: [REDACTED:EMAIL], thanks!"
	if got := joinWords(out); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	wantSpans := []transcribe.Redaction{{StartMS: 800, EndMS: 3600, Type: CardNumber}, {StartMS: 4000, EndMS: 5200, Type: Email}}
	if !slices.Equal(spans, wantSpans) {
		t.Errorf("spans = %+v, want %+v", spans, wantSpans)
	}
	if out[3].Confidence != 0.7 {
		t.Errorf("confidence = %v, want the lowest (0.7)", out[3].Confidence)
	}
}

func TestTranscriptAcrossSegments(t *testing.T) {
	// A card number read across a pause that split two segments, and an
	// e-mail in a segment without word times (text only).
	w1 := wordsOf("my card is four one one one one one one one")
	w2 := wordsOf("one one one one one one one one thank you")
	for i := range w2 {
		w2[i].StartMS += 10000
		w2[i].EndMS += 10000
	}
	tr := &transcribe.Transcript{Segments: []transcribe.Segment{
		{StartMS: 0, EndMS: 5000, Text: joinWords(w1), Words: w1},
		{StartMS: 10000, EndMS: 15000, Text: joinWords(w2), Words: w2},
		{StartMS: 20000, EndMS: 22000, Text: "write to bob@example.com please"},
	}}
	Transcript(tr)
	if got, want := tr.Segments[0].Text, "my card is [REDACTED:CARD_NUMBER]"; got != want {
		t.Errorf("segment 0 text = %q, want %q", got, want)
	}
	if got, want := tr.Segments[1].Text, "thank you"; got != want {
		t.Errorf("segment 1 text = %q, want %q", got, want)
	}
	if got, want := tr.Segments[2].Text, "write to [REDACTED:EMAIL] please"; got != want {
		t.Errorf("segment 2 text = %q, want %q", got, want)
	}
	want := []transcribe.Redaction{
		{StartMS: 1500, EndMS: 10000 + 7*500 + 400, Type: CardNumber},
		{StartMS: 20000, EndMS: 22000, Type: Email},
	}
	if !slices.Equal(tr.Redactions, want) {
		t.Errorf("redactions = %+v, want %+v", tr.Redactions, want)
	}
	for _, s := range tr.Segments {
		for _, w := range s.Words {
			if strings.Contains(w.Word, "one") {
				t.Errorf("a digit word survived: %+v", w)
			}
		}
	}
}

func TestCall04Reference(t *testing.T) {
	// The shared test clip's reference text, as an offline engine spells it.
	const ref = "My card number is four one one one one one one one one one one one one one one one."
	got, types := Text(ref)
	if want := "My card number is [REDACTED:CARD_NUMBER]."; got != want || !slices.Equal(types, []string{CardNumber}) {
		t.Errorf("Text = %q %v, want %q", got, types, want)
	}
}
