package redact

import (
	"regexp"
	"strings"
)

// sym is one symbol of an e-mail address with the word it came from.
// Written tokens are split at ".", "@", "_", "+", "-"; spoken connectors
// ("dot", "at", "underscore", "dash", "plus") become the same symbols.
type sym struct {
	s string // an atom ("john", "j", "123") or a separator (".", "@", "_", "+", "-")
	w int    // word index
}

var spokenSep = map[string]string{
	"dot": ".", "period": ".", "point": ".",
	"at": "@", "@": "@",
	"underscore": "_", "dash": "-", "hyphen": "-", "minus": "-", "plus": "+",
}

// stopWords end the local part or cannot start a domain: the words around
// an address in speech ("my email is ...", "send it to ...").
var stopWords = map[string]bool{
	"is": true, "was": true, "it's": true, "its": true, "it": true, "my": true, "your": true,
	"his": true, "her": true, "our": true, "their": true, "email": true, "e-mail": true,
	"mail": true, "address": true, "me": true, "to": true, "the": true, "a": true, "an": true,
	"and": true, "or": true, "send": true, "write": true, "contact": true, "reach": true,
	"us": true, "him": true, "them": true, "use": true, "try": true, "please": true,
	"that": true, "this": true, "of": true, "for": true, "on": true, "in": true, "with": true,
	"by": true, "from": true, "as": true, "be": true, "are": true, "i": true, "you": true,
	"we": true, "they": true, "he": true, "she": true, "look": true, "go": true, "visit": true,
	"check": true, "see": true, "find": true, "online": true, "website": true, "site": true,
	"web": true, "page": true, "www": true, "home": true, "work": true, "here": true, "there": true,
	"so": true, "yes": true, "no": true, "okay": true, "ok": true, "um": true, "uh": true,
	"sign": true, "@": true, "at": true, "dot": true, "com": true, "thanks": true, "then": true,
}

// tlds are the top-level domains accepted at the end of a spoken address
// (a written address accepts any alphabetic TLD).
var tlds = map[string]bool{
	"com": true, "org": true, "net": true, "edu": true, "gov": true, "mil": true, "int": true,
	"io": true, "co": true, "us": true, "uk": true, "ca": true, "de": true, "fr": true,
	"info": true, "biz": true, "me": true, "ai": true, "app": true, "dev": true, "au": true,
	"in": true, "jp": true, "nl": true, "es": true, "it": true, "ch": true, "se": true,
	"no": true, "eu": true, "mx": true, "br": true, "ie": true, "nz": true, "tv": true,
	"email": true, "mail": true, "online": true, "tech": true, "cloud": true, "xyz": true,
}

var writtenEmail = regexp.MustCompile(`^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$`)

// emailSymbols flattens words into e-mail symbols.
func emailSymbols(words []string) []sym {
	var out []sym
	for w, raw := range words {
		n := norm(raw)
		if s, ok := spokenSep[n]; ok {
			out = append(out, sym{s, w})
			continue
		}
		if d, ok := digitWords[n]; ok && !isWeakDigit(n) {
			out = append(out, sym{string(d), w})
			continue
		}
		if n == "" {
			out = append(out, sym{" ", w}) // a break
			continue
		}
		start := 0
		for i := 0; i < len(n); i++ {
			if strings.IndexByte(".@_+-", n[i]) >= 0 {
				if i > start {
					out = append(out, sym{n[start:i], w})
				}
				out = append(out, sym{n[i : i+1], w})
				start = i + 1
			}
		}
		if start < len(n) {
			out = append(out, sym{n[start:], w})
		}
	}
	return out
}

func isSep(s string) bool { return len(s) == 1 && strings.IndexByte(".@_+- ", s[0]) >= 0 }

func isAtom(s string) bool {
	if s == "" || isSep(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '\'' || c == '%') {
			return false
		}
	}
	return true
}

// findEmails finds written addresses (one token) and spoken or split ones
// (local part, "at", domain with at least one "dot" and a known TLD).
func findEmails(words []string) []finding {
	var fs []finding
	for w, raw := range words {
		if writtenEmail.MatchString(norm(raw)) {
			fs = append(fs, finding{w0: w, w1: w + 1})
		}
	}
	takenW := make([]bool, len(words))
	for _, f := range fs {
		takenW[f.w0] = true
	}
	isTaken := func(w int) bool { return takenW[w] }
	syms := emailSymbols(words)
	for k, s := range syms {
		if s.s != "@" || isTaken(s.w) {
			continue
		}
		lo, ok := localStart(syms, k, isTaken)
		if !ok {
			continue
		}
		hi, ok := domainEnd(syms, k, isTaken)
		if !ok {
			continue
		}
		w0, w1 := syms[lo].w, syms[hi].w+1
		fs = append(fs, finding{w0: w0, w1: w1})
		for w := w0; w < w1; w++ {
			takenW[w] = true
		}
	}
	// Merge overlaps and sort.
	return mergeFindings(fs)
}

// localStart walks back from the "@" at k over the local part: atoms
// joined by separators, spelled letters and digits, and up to two more
// plain words (a spoken "john smith at ..."), stopping at stop words.
func localStart(syms []sym, k int, taken func(int) bool) (int, bool) {
	i := k - 1
	if i < 0 || !isAtom(syms[i].s) || stopWords[syms[i].s] || taken(syms[i].w) {
		return 0, false
	}
	lo := i
	extra := 0
	for i = lo - 1; i >= 0; i-- {
		s := syms[i]
		if taken(s.w) {
			break
		}
		switch {
		case s.s == "." || s.s == "_" || s.s == "-" || s.s == "+":
			// A separator joins only if an atom precedes it.
			if i-1 >= 0 && isAtom(syms[i-1].s) && !stopWords[syms[i-1].s] && !taken(syms[i-1].w) {
				lo = i - 1
				i--
				continue
			}
		case isAtom(s.s) && !stopWords[s.s]:
			spelled := len(s.s) == 1 || isDigits(s.s)
			if spelled && (len(syms[lo].s) == 1 || isDigits(syms[lo].s)) {
				lo = i
				continue
			}
			if extra < 2 && syms[lo].w != s.w {
				extra++
				lo = i
				continue
			}
		}
		break
	}
	return lo, true
}

// domainEnd walks forward from the "@" at k over atom ("." atom)+ and
// requires the last atom to be a TLD (any alphabetic one when the whole
// address was one written token).
func domainEnd(syms []sym, k int, taken func(int) bool) (int, bool) {
	i := k + 1
	if i >= len(syms) || !isAtom(syms[i].s) || stopWords[syms[i].s] || taken(syms[i].w) {
		return 0, false
	}
	// Spelled domains ("a c m e dot com"): merge single letters.
	for i+1 < len(syms) && len(syms[i].s) == 1 && len(syms[i+1].s) == 1 && isAtom(syms[i+1].s) {
		i++
	}
	end := -1
	for i+2 < len(syms) && (syms[i+1].s == "." || syms[i+1].s == "-") && isAtom(syms[i+2].s) && !taken(syms[i+2].w) {
		i += 2
		if syms[i-1].s == "." && tlds[syms[i].s] {
			end = i
		}
	}
	if end < 0 {
		return 0, false
	}
	return end, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func mergeFindings(fs []finding) []finding {
	if len(fs) < 2 {
		return fs
	}
	// insertion sort by start; lists are short
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].w0 < fs[j-1].w0; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	out := fs[:1]
	for _, f := range fs[1:] {
		last := &out[len(out)-1]
		if f.w0 < last.w1 {
			last.w1 = max(last.w1, f.w1)
			continue
		}
		out = append(out, f)
	}
	return out
}
