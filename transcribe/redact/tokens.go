package redact

import (
	"strings"
)

// norm lower-cases a word and strips the punctuation around it.
func norm(w string) string {
	w = strings.ToLower(w)
	w = strings.TrimRight(w, ".,;:!?\"')]}>")
	w = strings.TrimLeft(w, "\"'([{<")
	return w
}

var digitWords = map[string]byte{
	"zero": '0', "oh": '0', "o": '0', "nought": '0', "naught": '0',
	"one": '1', "two": '2', "three": '3', "four": '4', "five": '5',
	"six": '6', "seven": '7', "eight": '8', "nine": '9', "niner": '9',
}

var teenWords = map[string]string{
	"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
	"fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}

var tensWords = map[string]byte{
	"twenty": '2', "thirty": '3', "forty": '4', "fourty": '4', "fifty": '5',
	"sixty": '6', "seventy": '7', "eighty": '8', "ninety": '9',
}

var fillerWords = map[string]bool{
	"uh": true, "um": true, "uhm": true, "umm": true, "er": true, "erm": true,
	"ah": true, "hmm": true, "mm": true, "<sil>": true, "[noise]": true,
}

var sepWords = map[string]bool{
	"-": true, "–": true, "—": true, "dash": true, "hyphen": true,
}

// isWeakDigit reports words that are digits only next to other digits
// ("oh" and "o" are also an exclamation and a letter).
func isWeakDigit(n string) bool { return n == "oh" || n == "o" }

// writtenDigits parses a written number token: digits with "-", ".", "(",
// ")" between them and an optional leading "+". It rejects amounts
// ("12.50", "1,250", "$5"), dates ("12/25") and ordinals ("1st"). groups
// are the lengths of the digit groups.
func writtenDigits(n string) (digits string, groups []int, plus bool, ok bool) {
	if n == "" {
		return "", nil, false, false
	}
	if n[0] == '+' {
		plus, n = true, n[1:]
	}
	var b strings.Builder
	cur := 0
	dots := 0
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
			cur++
		case c == '-' || c == '.' || c == '(' || c == ')':
			if c == '.' {
				dots++
			}
			if cur > 0 {
				groups = append(groups, cur)
				cur = 0
			}
		default:
			return "", nil, false, false
		}
	}
	if cur > 0 {
		groups = append(groups, cur)
	}
	if b.Len() == 0 {
		return "", nil, false, false
	}
	// A single dot followed by one or two digits is a decimal amount.
	if dots == 1 && len(groups) == 2 && groups[1] <= 2 && strings.Count(n, "-")+strings.Count(n, "(") == 0 {
		return "", nil, false, false
	}
	return b.String(), groups, plus, true
}

type itemKind uint8

const (
	kBreak    itemKind = iota
	kDigit             // digits any reading agrees on: "4", "four", "4111", "double four"
	kCompound          // "forty five", "eleven", "eight hundred"
	kFiller            // "uh", "um": may sit inside a spoken number
	kSep               // "-", "dash"
	kPlus              // "plus" before a phone number
)

// item is one token of the number grammar, covering words [w0, w1).
type item struct {
	w0, w1  int
	kind    itemKind
	digits  string
	written bool  // from a written token, not words
	groups  []int // digit groups of a written token
	plus    bool  // written with a leading "+"
	weak    bool  // "oh"/"o"
}

// items splits normalized words into number-grammar items; taken words
// are breaks.
func items(words []string, taken []bool) []item {
	var its []item
	// Consecutive breaks collapse into one item: only their position
	// between number items matters.
	addBreak := func(i int) {
		if k := len(its) - 1; k >= 0 && its[k].kind == kBreak {
			its[k].w1 = i + 1
			return
		}
		its = append(its, item{w0: i, w1: i + 1, kind: kBreak})
	}
	for i := 0; i < len(words); {
		if taken[i] {
			addBreak(i)
			i++
			continue
		}
		n := words[i]
		nextFree := func(k int) (string, bool) {
			if i+k < len(words) && !taken[i+k] {
				return words[i+k], true
			}
			return "", false
		}
		it := item{w0: i, w1: i + 1, kind: kBreak}
		if d, g, p, ok := writtenDigits(n); ok {
			it.kind, it.digits, it.groups, it.plus, it.written = kDigit, d, g, p, true
		} else if d, ok := digitWords[n]; ok {
			it.kind, it.digits, it.weak = kDigit, string(d), isWeakDigit(n)
			if nx, ok := nextFree(1); ok && nx == "hundred" && !it.weak {
				it.kind, it.digits, it.w1 = kCompound, string(d)+"00", i+2
			}
		} else if n == "double" || n == "triple" {
			if nx, ok := nextFree(1); ok {
				if d, ok := digitWords[nx]; ok {
					r := 2
					if n == "triple" {
						r = 3
					}
					it.kind, it.digits, it.w1 = kDigit, strings.Repeat(string(d), r), i+2
				}
			}
		} else if t, ok := teenWords[n]; ok {
			it.kind, it.digits = kCompound, t
		} else if t, ok := tensWords[n]; ok {
			it.kind, it.digits = kCompound, string(t)+"0"
			if nx, ok := nextFree(1); ok {
				if d, ok := digitWords[nx]; ok && d != '0' {
					it.digits, it.w1 = string(t)+string(d), i+2
				}
			}
		} else if tn, un, ok := strings.Cut(n, "-"); ok && tensWords[tn] != 0 && digitWords[un] > '0' && !isWeakDigit(un) {
			it.kind, it.digits = kCompound, string(tensWords[tn])+string(digitWords[un])
		} else if fillerWords[n] {
			it.kind = kFiller
		} else if sepWords[n] {
			it.kind = kSep
		} else if n == "plus" {
			it.kind = kPlus
		}
		if it.kind == kBreak {
			addBreak(i)
		} else {
			its = append(its, it)
		}
		i = it.w1
	}
	// "oh"/"o" are digits only beside another digit item.
	isNum := func(k int) bool {
		return k >= 0 && k < len(its) && (its[k].kind == kDigit || its[k].kind == kCompound)
	}
	for k := range its {
		if its[k].weak && !isNum(k-1) && !isNum(k+1) {
			its[k].kind = kBreak
		}
	}
	return its
}

// run is a maximal number: digit items joined by separators (and, for
// extended runs, fillers and compound number words).
type run struct {
	its    []item // digit and compound items only, in order
	plus   bool   // preceded by "plus" or written with "+"
	plusW  int    // word index of a spoken "plus", -1 if none
	digits string
}

func (r run) w0() int {
	if r.plusW >= 0 {
		return r.plusW
	}
	return r.its[0].w0
}
func (r run) w1() int { return r.its[len(r.its)-1].w1 }

// written reports whether every item is a written token.
func (r run) written() bool {
	for _, it := range r.its {
		if !it.written {
			return false
		}
	}
	return true
}

// groups concatenates the digit groups of a written run.
func (r run) groups() []int {
	var g []int
	for _, it := range r.its {
		g = append(g, it.groups...)
	}
	return g
}

func digitsOf(its []item) string {
	var b strings.Builder
	for _, it := range its {
		b.WriteString(it.digits)
	}
	return b.String()
}

// runMode says what joins digit items into one run.
type runMode uint8

const (
	strict   runMode = iota // adjacent digits only ("oh", "-" and fillers break)
	simple                  // also across separators and "oh"
	extended                // also compound words ("forty five") and fillers
)

// runs finds the maximal runs in items.
func runs(its []item, mode runMode) []run {
	var out []run
	var cur []item
	plusW, plus := -1, false
	flush := func() {
		if len(cur) > 0 {
			r := run{its: cur, plus: plus || cur[0].plus, plusW: plusW, digits: digitsOf(cur)}
			out = append(out, r)
		}
		cur, plusW, plus = nil, -1, false
	}
	isDigit := func(it item) bool {
		switch it.kind {
		case kDigit:
			return mode != strict || !it.weak
		case kCompound:
			return mode == extended
		}
		return false
	}
	for k, it := range its {
		switch {
		case isDigit(it):
			if len(cur) == 0 && k > 0 && its[k-1].kind == kPlus {
				plusW, plus = its[k-1].w0, true
			}
			cur = append(cur, it)
		case mode != strict && (it.kind == kSep || mode == extended && it.kind == kFiller):
			// Joins only between digits.
			if len(cur) > 0 && k+1 < len(its) && isDigit(its[k+1]) {
				continue
			}
			flush()
		default:
			flush()
		}
	}
	flush()
	return out
}
