package wer

import (
	"strconv"
	"strings"
	"unicode"
)

// abbreviations are expanded to the words PocketSphinx (and LibriVox
// references) use.
var abbreviations = map[string]string{
	"mr":  "mister",
	"mrs": "missus",
	"dr":  "doctor",
}

// Normalize splits text into comparable words: lower case; hyphens, dashes
// and slashes separate words; punctuation is dropped except apostrophes
// inside a word ("don't"); PocketSphinx fillers (<s>, </s>, <sil>, [NOISE])
// and alternate-pronunciation suffixes ("read(2)") are removed; "mr",
// "mrs" and "dr" are expanded; numbers become words the way PocketSphinx
// writes them: up to four digits (or digits grouped with commas) as a
// cardinal ("1999" → "one thousand nine hundred ninety nine"); longer runs,
// runs with a leading zero and two or more adjacent groups ("4111 1111",
// "555-1234") digit by digit ("four one one one one one one one"),
// "3.5" → "three point five",
// "21st" → "twenty first", "$5" → "five dollars", "7%" → "seven percent".
func Normalize(text string) []string {
	text = strings.Map(func(r rune) rune {
		switch r {
		case '\u2019', '\u2018', '`':
			return '\''
		}
		return unicode.ToLower(r)
	}, text)
	// Split into raw tokens: fields, then hyphens, dashes and slashes,
	// keeping PocketSphinx markers such as </s> whole.
	var raw []string
	for _, f := range strings.Fields(text) {
		if isMarker(f) {
			continue
		}
		raw = append(raw, strings.FieldsFunc(f, func(r rune) bool {
			switch r {
			case '-', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '/', '_':
				return true
			}
			return false
		})...)
	}
	var out []string
	for i := 0; i < len(raw); i++ {
		// Two or more adjacent digit groups ("4111 1111 1111 1111",
		// "555-1234") are read digit by digit, as card and phone numbers
		// are spoken.
		// Punctuation ends a group ("13, 20, 21" is a list).
		j := i
		for j < len(raw) {
			if allDigits(raw[j]) {
				j++
				continue
			}
			if allDigits(strings.TrimRight(raw[j], ".,;:!?")) {
				j++
			}
			break
		}
		if j-i >= 2 {
			for _, g := range raw[i:j] {
				out = append(out, digitWords(strings.TrimRight(g, ".,;:!?"))...)
			}
			i = j - 1
			continue
		}
		out = appendToken(out, raw[i])
	}
	return out
}

// isMarker reports PocketSphinx fillers and sentence markers: <s>, </s>,
// <sil>, [NOISE], ++BREATH++.
func isMarker(tok string) bool {
	return strings.HasPrefix(tok, "<") && strings.HasSuffix(tok, ">") ||
		strings.HasPrefix(tok, "[") && strings.HasSuffix(tok, "]") ||
		len(tok) > 4 && strings.HasPrefix(tok, "++") && strings.HasSuffix(tok, "++")
}

func appendToken(out []string, tok string) []string {
	if i := strings.IndexByte(tok, '('); i > 0 && strings.HasSuffix(tok, ")") {
		if _, err := strconv.Atoi(tok[i+1 : len(tok)-1]); err == nil {
			tok = tok[:i]
		}
	}
	tok = strings.TrimFunc(tok, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '$' && r != '%'
	})
	dollar := strings.HasPrefix(tok, "$")
	percent := strings.HasSuffix(tok, "%")
	tok = strings.Trim(tok, "$%")
	if tok == "" {
		return out
	}
	if hasDigit(tok) {
		if words, ok := numberWords(tok); ok {
			out = append(out, words...)
			if dollar {
				if tok == "1" {
					out = append(out, "dollar")
				} else {
					out = append(out, "dollars")
				}
			}
			if percent {
				out = append(out, "percent")
			}
			return out
		}
	}
	// Keep letters, digits and inner apostrophes.
	tok = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' {
			return r
		}
		return -1
	}, tok)
	tok = strings.Trim(tok, "'")
	if tok == "" {
		return out
	}
	if full, ok := abbreviations[tok]; ok {
		tok = full
	}
	out = append(out, tok)
	if dollar {
		out = append(out, "dollars")
	}
	if percent {
		out = append(out, "percent")
	}
	return out
}

func hasDigit(s string) bool {
	return strings.IndexFunc(s, unicode.IsDigit) >= 0
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// numberWords spells a numeric token; ok is false for tokens that are not
// numbers ("mp3").
func numberWords(tok string) ([]string, bool) {
	switch {
	case allDigits(tok):
		if len(tok) > 4 || len(tok) > 1 && tok[0] == '0' {
			return digitWords(tok), true
		}
		n, _ := strconv.Atoi(tok)
		return cardinal(n), true
	case isGrouped(tok):
		n, err := strconv.Atoi(strings.ReplaceAll(tok, ",", ""))
		if err != nil || n >= 1e12 {
			return digitWords(strings.ReplaceAll(tok, ",", "")), true
		}
		return cardinal(n), true
	}
	if i := strings.IndexByte(tok, '.'); i > 0 && allDigits(tok[:i]) && allDigits(tok[i+1:]) {
		intPart, ok := numberWords(tok[:i])
		if !ok {
			return nil, false
		}
		return append(append(intPart, "point"), digitWords(tok[i+1:])...), true
	}
	if len(tok) > 2 {
		num, suf := tok[:len(tok)-2], tok[len(tok)-2:]
		if allDigits(num) && (suf == "st" || suf == "nd" || suf == "rd" || suf == "th") && len(num) <= 4 {
			n, _ := strconv.Atoi(num)
			w := cardinal(n)
			w[len(w)-1] = ordinal(w[len(w)-1])
			return w, true
		}
	}
	return nil, false
}

// isGrouped reports digits in groups of three separated by commas:
// "1,000", "12,345,678".
func isGrouped(s string) bool {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts[0]) == 0 || len(parts[0]) > 3 || !allDigits(parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) != 3 || !allDigits(p) {
			return false
		}
	}
	return true
}

var ones = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
	"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"}

var tens = []string{"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}

func digitWords(s string) []string {
	out := make([]string, 0, len(s))
	for _, r := range s {
		out = append(out, ones[r-'0'])
	}
	return out
}

// cardinal spells 0 <= n < 10^12 ("one thousand two hundred thirty four").
func cardinal(n int) []string {
	if n == 0 {
		return []string{"zero"}
	}
	var out []string
	for _, scale := range []struct {
		v    int
		name string
	}{{1e9, "billion"}, {1e6, "million"}, {1e3, "thousand"}} {
		if n >= scale.v {
			out = append(out, below1000(n/scale.v)...)
			out = append(out, scale.name)
			n %= scale.v
		}
	}
	if n > 0 {
		out = append(out, below1000(n)...)
	}
	return out
}

func below1000(n int) []string {
	var out []string
	if n >= 100 {
		out = append(out, ones[n/100], "hundred")
		n %= 100
	}
	switch {
	case n >= 20:
		out = append(out, tens[n/10])
		if n%10 != 0 {
			out = append(out, ones[n%10])
		}
	case n > 0:
		out = append(out, ones[n])
	}
	return out
}

var irregularOrdinals = map[string]string{
	"one": "first", "two": "second", "three": "third", "five": "fifth",
	"eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}

func ordinal(w string) string {
	if o, ok := irregularOrdinals[w]; ok {
		return o
	}
	if strings.HasSuffix(w, "y") {
		return strings.TrimSuffix(w, "y") + "ieth"
	}
	return w + "th"
}
