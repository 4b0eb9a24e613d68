package redact

import (
	"strings"
	"testing"

	"github.com/custodian/custodian/transcribe"
)

// fuzzVocab is the vocabulary of the structured half of FuzzRedact: digit
// words and tokens, the words that join or break numbers, and context.
var fuzzVocab = []string{
	"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
	"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "4111", "1111", "5555", "4444", "378282",
	"4111-1111", "+1", "oh", "o", "double", "triple", "-", "dash", "uh", "um", "and", "card",
	"my", "is", "phone", "social", "number", "at", "dot", "com", "john", "forty", "eleven",
	"hundred", "plus", "account",
}

// oracleRuns is an independent reading of spoken and written digits:
// maximal sequences of adjacent digit words ("zero".."nine"), digit tokens
// (digits with inner dashes, optional leading "+") and "double"/"triple"
// + digit word. "oh"/"o", separators and fillers end a run; a digit word
// that is part of "forty one" or "eight hundred" is not a digit.
func oracleRuns(words []string) []string {
	dw := map[string]string{"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
		"five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "niner": "9",
		"nought": "0", "naught": "0"}
	any := map[string]string{"oh": "0", "o": "0"}
	tens := map[string]bool{"twenty": true, "thirty": true, "forty": true, "fourty": true,
		"fifty": true, "sixty": true, "seventy": true, "eighty": true, "ninety": true}
	var out []string
	cur := ""
	end := func() {
		if cur != "" {
			out = append(out, cur)
		}
		cur = ""
	}
	n := func(i int) string {
		if i < len(words) {
			return norm(words[i])
		}
		return ""
	}
	for i := 0; i < len(words); i++ {
		w := n(i)
		switch {
		case tens[w] && dw[n(i+1)] != "" && dw[n(i+1)] != "0":
			end()
			i++
		case dw[w] != "" && n(i+1) == "hundred":
			end()
			i++
		case (w == "double" || w == "triple") && (dw[n(i+1)] != "" || any[n(i+1)] != ""):
			d := dw[n(i+1)] + any[n(i+1)]
			cur += strings.Repeat(d, map[string]int{"double": 2, "triple": 3}[w])
			i++
		case dw[w] != "":
			cur += dw[w]
		case isDashedDigits(strings.TrimPrefix(w, "+")):
			cur += strings.ReplaceAll(strings.TrimPrefix(w, "+"), "-", "")
		default:
			end()
		}
	}
	end()
	return out
}

func isDashedDigits(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func FuzzRedact(f *testing.F) {
	f.Add("my card number is four one one one one one one one one one one one one one one one", []byte{13, 10, 0, 0, 1})
	f.Add("4111 1111 1111 1111 john.smith@example.com 555-123-4567 123-45-6789", []byte{20, 21, 21, 21})
	f.Add("double four one oh five at example dot com", []byte{4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add("", []byte{33, 14, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3})
	f.Fuzz(func(t *testing.T, text string, picks []byte) {
		// Free text: no panic, and the output is the input with runs of
		// words replaced by placeholders at their times.
		checkStructure(t, wordsOf(text))
		if s, _ := Text(text); strings.Count(s, "[REDACTED:") < strings.Count(text, "[REDACTED:") {
			t.Fatalf("Text lost a placeholder: %q -> %q", text, s)
		}
		// Structured: no Luhn-valid 13-19 digit run survives.
		if len(picks) > 200 {
			picks = picks[:200]
		}
		ws := make([]string, len(picks))
		for i, p := range picks {
			ws[i] = fuzzVocab[int(p)%len(fuzzVocab)]
		}
		in := wordsOf(strings.Join(ws, " "))
		out := checkStructure(t, in)
		outWords := make([]string, len(out))
		for i, w := range out {
			outWords[i] = w.Word
		}
		for _, d := range oracleRuns(outWords) {
			if cardLike(d) {
				t.Fatalf("card number %s survived:\n in: %q\nout: %q", d, strings.Join(ws, " "), strings.Join(outWords, " "))
			}
		}
	})
}

// checkStructure applies redaction and checks the output against the
// input: kept words are unchanged and in order, each placeholder stands
// for a run of input words whose times it carries, spans match
// placeholders and are in time order.
func checkStructure(t *testing.T, in []transcribe.Word) []transcribe.Word {
	t.Helper()
	out, spans := Apply(in)
	i, s := 0, 0
	var lastStart int64 = -1
	for _, w := range out {
		isPlaceholder := strings.HasPrefix(w.Word, "[REDACTED:") && s < len(spans) && strings.HasPrefix(w.Word, Placeholder(spans[s].Type))
		if isPlaceholder && (i >= len(in) || in[i].Word != w.Word) {
			sp := spans[s]
			if sp.StartMS != w.StartMS || sp.EndMS != w.EndMS || sp.StartMS < lastStart {
				t.Fatalf("span %+v does not match word %+v", sp, w)
			}
			lastStart = sp.StartMS
			// Skip the input words it replaced.
			for i < len(in) && in[i].StartMS < w.StartMS {
				i++
			}
			if i >= len(in) || in[i].StartMS != w.StartMS {
				t.Fatalf("placeholder %+v starts at no input word", w)
			}
			for i < len(in) && in[i].EndMS <= w.EndMS {
				i++
			}
			s++
			continue
		}
		if i >= len(in) || in[i] != w {
			t.Fatalf("output word %+v is not the next input word", w)
		}
		i++
	}
	if i != len(in) || s != len(spans) {
		t.Fatalf("consumed %d of %d input words and %d of %d spans", i, len(in), s, len(spans))
	}
	return out
}
