package redact

import (
	"cmp"
	"slices"
	"strings"

	"github.com/custodian/custodian/transcribe"
)

// Redaction types, as stored in transcribe.Redaction.Type.
const (
	CardNumber = "CARD_NUMBER"
	SSN        = "SSN"
	Email      = "EMAIL"
	Phone      = "PHONE"
)

// Placeholder returns the text that replaces a redacted span of the type.
func Placeholder(typ string) string { return "[REDACTED:" + typ + "]" }

// finding is a run of words [w0, w1) to replace.
type finding struct {
	w0, w1 int
	typ    string
}

// Apply redacts a word sequence in time order (one recording's words, or
// one segment's). Each run of words that forms a card number, SSN, e-mail
// address or phone number is replaced by a single word "[REDACTED:TYPE]"
// whose StartMS and EndMS are the first and last word's and whose
// confidence is the lowest of them; sentence punctuation after the last
// word is kept. spans lists the replaced runs in order. The input is not
// modified; out is a new slice.
func Apply(words []transcribe.Word) (out []transcribe.Word, spans []transcribe.Redaction) {
	raw := make([]string, len(words))
	for i, w := range words {
		raw[i] = w.Word
	}
	fs := detect(raw)
	out = make([]transcribe.Word, 0, len(words))
	next := 0
	for _, f := range fs {
		out = append(out, words[next:f.w0]...)
		w := redactedWord(words[f.w0:f.w1], f.typ)
		out = append(out, w)
		spans = append(spans, transcribe.Redaction{StartMS: w.StartMS, EndMS: w.EndMS, Type: f.typ})
		next = f.w1
	}
	out = append(out, words[next:]...)
	return out, spans
}

// Text redacts free text (a segment's text) with the same rules, splitting
// on white space; the result is re-joined with single spaces when anything
// was redacted and returned unchanged otherwise. types lists what was
// redacted, in order.
func Text(s string) (redacted string, types []string) {
	fields := strings.Fields(s)
	fs := detect(fields)
	if len(fs) == 0 {
		return s, nil
	}
	var b strings.Builder
	next := 0
	put := func(w string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	for _, f := range fs {
		for _, w := range fields[next:f.w0] {
			put(w)
		}
		put(Placeholder(f.typ) + trailingPunct(fields[f.w1-1]))
		types = append(types, f.typ)
		next = f.w1
	}
	for _, w := range fields[next:] {
		put(w)
	}
	return b.String(), types
}

// Transcript redacts a whole transcript in place: the words of all
// segments are examined as one sequence (so a number spoken across a
// segment boundary is still found), replaced runs are kept in the segment
// where they start, and t.Redactions gains the spans, sorted by time.
// A segment whose words were redacted gets its text rebuilt from its words
// (so the text cannot keep what the words lost); every segment's text is
// then redacted as text too, and a find there that the words did not
// explain is recorded with the segment's times.
func Transcript(t *transcribe.Transcript) {
	var all []transcribe.Word
	var seg []int // segment index of each word
	for i, s := range t.Segments {
		all = append(all, s.Words...)
		for range s.Words {
			seg = append(seg, i)
		}
	}
	raw := make([]string, len(all))
	for i, w := range all {
		raw[i] = w.Word
	}
	fs := detect(raw)
	touched := make([]bool, len(t.Segments))
	if len(fs) > 0 {
		words := make([][]transcribe.Word, len(t.Segments))
		next := 0
		for _, f := range fs {
			for i := next; i < f.w0; i++ {
				words[seg[i]] = append(words[seg[i]], all[i])
			}
			w := redactedWord(all[f.w0:f.w1], f.typ)
			words[seg[f.w0]] = append(words[seg[f.w0]], w)
			for i := f.w0; i < f.w1; i++ {
				touched[seg[i]] = true
			}
			t.Redactions = append(t.Redactions, transcribe.Redaction{StartMS: w.StartMS, EndMS: w.EndMS, Type: f.typ})
			next = f.w1
		}
		for i := next; i < len(all); i++ {
			words[seg[i]] = append(words[seg[i]], all[i])
		}
		for i := range t.Segments {
			t.Segments[i].Words = words[i]
		}
	}
	for i := range t.Segments {
		s := &t.Segments[i]
		if touched[i] {
			ws := make([]string, len(s.Words))
			for j, w := range s.Words {
				ws[j] = w.Word
			}
			s.Text = strings.Join(ws, " ")
		}
		txt, types := Text(s.Text)
		s.Text = txt
		for _, typ := range types {
			t.Redactions = append(t.Redactions, transcribe.Redaction{StartMS: s.StartMS, EndMS: s.EndMS, Type: typ})
		}
	}
	slices.SortStableFunc(t.Redactions, func(a, b transcribe.Redaction) int {
		return cmp.Or(cmp.Compare(a.StartMS, b.StartMS), cmp.Compare(a.EndMS, b.EndMS))
	})
}

func redactedWord(ws []transcribe.Word, typ string) transcribe.Word {
	first, last := ws[0], ws[len(ws)-1]
	conf := first.Confidence
	for _, w := range ws {
		conf = min(conf, w.Confidence)
	}
	return transcribe.Word{
		StartMS:    first.StartMS,
		EndMS:      max(last.EndMS, first.StartMS),
		Word:       Placeholder(typ) + trailingPunct(last.Word),
		Confidence: conf,
	}
}

// trailingPunct returns the sentence punctuation ending a word (".", ",",
// "?"...), which belongs to the sentence rather than the redacted value.
func trailingPunct(w string) string {
	i := len(w)
	for i > 0 && strings.IndexByte(".,;:!?", w[i-1]) >= 0 {
		i--
	}
	return w[i:]
}
