package redact

import (
	"slices"
	"strings"
)

// luhn reports whether a digit string passes the Luhn check.
func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return len(d) > 0 && sum%10 == 0
}

// cardLike reports a Luhn-valid 13 to 19 digit string.
func cardLike(d string) bool { return len(d) >= 13 && len(d) <= 19 && luhn(d) }

// plausibleIIN reports a card network prefix (Visa, Mastercard, Amex,
// Discover, JCB, Diners, UnionPay, Maestro). Used only when searching
// inside a longer digit string, where Luhn alone would match by chance.
func plausibleIIN(d string) bool {
	if len(d) < 4 {
		return false
	}
	switch d[0] {
	case '3', '4', '5', '6':
		return true
	case '2':
		p := d[:4]
		return p >= "2221" && p <= "2720"
	}
	return false
}

// detect finds PII in a word sequence: e-mail addresses first (they may
// contain digits), then card numbers, SSNs and phone numbers. Findings do
// not overlap and are returned in word order.
func detect(words []string) []finding {
	taken := make([]bool, len(words))
	var fs []finding
	take := func(w0, w1 int, typ string) {
		for i := w0; i < w1; i++ {
			taken[i] = true
		}
		fs = append(fs, finding{w0: w0, w1: w1, typ: typ})
	}
	for _, f := range findEmails(words) {
		take(f.w0, f.w1, Email)
	}
	nw := make([]string, len(words))
	for i, w := range words {
		nw[i] = norm(w)
	}
	findCards(nw, taken, take)
	findSSNs(nw, taken, take)
	findPhones(nw, taken, take)
	slices.SortFunc(fs, func(a, b finding) int { return a.w0 - b.w0 })
	return fs
}

// findCards redacts card numbers until nothing more is found: whole runs
// (strict, simple, then extended) of 13 to 19 Luhn-valid digits; runs with
// ambiguous "oh" at their ends tried without them; and, inside runs longer
// than 19 digits, the leftmost longest item-aligned Luhn-valid window with
// a card network prefix (a card read out with its expiry or code).
func findCards(words []string, // normalized
	taken []bool, take func(w0, w1 int, typ string)) {
	for changed := true; changed; {
		changed = false
		for _, mode := range []runMode{strict, simple, extended} {
			for _, r := range runs(items(words, taken), mode) {
				if cardsInRun(r, take) {
					changed = true
				}
			}
		}
	}
}

// cardsInRun takes every card in a run: after a find, the items left and
// right of it are runs of their own and are searched again.
func cardsInRun(r run, take func(w0, w1 int, typ string)) bool {
	found := false
	todo := [][]item{r.its}
	for len(todo) > 0 {
		its := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		i, j, ok := cardInItems(its)
		if !ok {
			continue
		}
		take(its[i].w0, its[j].w1, CardNumber)
		found = true
		if i > 0 {
			todo = append(todo, its[:i])
		}
		if j+1 < len(its) {
			todo = append(todo, its[j+1:])
		}
	}
	return found
}

// cardInItems finds a card in a run's digit items and returns its first
// and last item.
func cardInItems(its []item) (first, last int, ok bool) {
	// off[k] is where item k's digits start in digits.
	off := make([]int, len(its)+1)
	var b strings.Builder
	for k, it := range its {
		off[k] = b.Len()
		b.WriteString(it.digits)
	}
	off[len(its)] = b.Len()
	digits := b.String()
	win := func(i, j int) string { return digits[off[i]:off[j+1]] }
	n := len(its) - 1

	if cardLike(digits) {
		return 0, n, true
	}
	// Trim weak "oh"s at either end.
	i, j := 0, n
	for i <= j && its[i].weak {
		i++
	}
	for j >= i && its[j].weak {
		j--
	}
	if i <= j && (i > 0 || j < n) && cardLike(win(i, j)) {
		return i, j, true
	}
	switch {
	case len(digits) <= 16:
		return 0, 0, false
	case len(digits) <= 19:
		// A card with its 3 or 4 digit code or expiry read straight
		// after it: only a 16-digit (or Amex 15-digit) prefix with a
		// network prefix, so a wrong digit in a 13-19 digit number does
		// not turn a shorter piece of it into a "card".
		for j := 0; j <= n; j++ {
			d := win(0, j)
			if len(digits)-len(d) < 3 {
				break
			}
			amex := len(d) == 15 && (d[:2] == "34" || d[:2] == "37")
			if (len(d) == 16 || amex) && luhn(d) && plausibleIIN(d) {
				return 0, j, true
			}
		}
		return 0, 0, false
	}
	// Longer than any card: the leftmost, longest item-aligned window with
	// a network prefix.
	for i := 0; i <= n; i++ {
		best := -1
		for j := i; j <= n; j++ {
			d := win(i, j)
			if len(d) > 19 {
				break
			}
			if len(d) >= 13 && luhn(d) && plausibleIIN(d) {
				best = j
			}
		}
		if best >= 0 {
			return i, best, true
		}
	}
	return 0, 0, false
}

// contextBefore returns up to n (normalized) words before w0, taken or
// not: context words are never PII themselves.
func contextBefore(words []string, w0, n int) []string {
	return words[max(0, w0-n):w0]
}

func hasSSNContext(words []string, w0, w1 int) bool {
	ctx := slices.Concat(contextBefore(words, w0, 10), words[w1:min(len(words), w1+3)])
	joined := " " + strings.Join(ctx, " ") + " "
	for _, k := range []string{" social ", " ssn ", " s s n ", " s.s.n ", " socials "} {
		if strings.Contains(joined, k) {
			return true
		}
	}
	return false
}

// validSSN applies the SSA's structural rules: no area 000, 666 or 9xx,
// no group 00, no serial 0000.
func validSSN(d string) bool {
	return len(d) == 9 && d[:3] != "000" && d[:3] != "666" && d[0] != '9' && d[3:5] != "00" && d[5:] != "0000"
}

// findSSNs: written NNN-NN-NNNN (one token or three), and any 9-digit run
// with social-security context near it.
func findSSNs(words []string, taken []bool, take func(w0, w1 int, typ string)) {
	for _, mode := range []runMode{extended, simple} {
		for _, r := range runs(items(words, taken), mode) {
			if len(r.digits) != 9 || r.plus {
				continue
			}
			g := r.groups()
			formatted := r.written() && slices.Equal(g, []int{3, 2, 4}) && validSSN(r.digits)
			if slices.Contains(taken[r.w0():r.w1()], true) {
				continue
			}
			if formatted || hasSSNContext(words, r.w0(), r.w1()) {
				take(r.w0(), r.w1(), SSN)
			}
		}
	}
}

var notPhoneNumber = map[string]bool{
	"card": true, "account": true, "order": true, "reference": true, "confirmation": true,
	"tracking": true, "policy": true, "member": true, "case": true, "ticket": true,
	"routing": true, "security": true, "credit": true, "debit": true, "id": true,
	"serial": true, "invoice": true, "claim": true, "customer": true, "pin": true,
	"model": true, "part": true, "flight": true, "room": true, "license": true,
}

func hasPhoneContext(words []string, w0, w1 int) bool {
	// Up to ten words before and four after ("... is my cell").
	ctx := slices.Concat(contextBefore(words, w0, 10), words[w1:min(len(words), w1+4)])
	for i, w := range ctx {
		switch w {
		case "phone", "telephone", "cell", "cellphone", "mobile", "call", "calling", "reach",
			"fax", "text", "dial", "callback", "contact", "landline", "extension", "whatsapp":
			return true
		case "number", "numbers", "no", "#":
			if i == 0 || !notPhoneNumber[ctx[i-1]] {
				return true
			}
		}
	}
	return false
}

// nanpGroups reports the written North American layouts 3-3-4 and
// 1-3-3-4 ("(555) 123-4567", "555.123.4567", "1-800-555-0100").
func nanpGroups(g []int) bool {
	return slices.Equal(g, []int{3, 3, 4}) || slices.Equal(g, []int{1, 3, 3, 4})
}

// findPhones: "+" or "plus" and 8 to 15 digits; written NANP layouts; and
// 7 or 10 to 15 digit runs with phone context before them.
func findPhones(words []string, taken []bool, take func(w0, w1 int, typ string)) {
	for _, mode := range []runMode{extended, simple} {
		for _, r := range runs(items(words, taken), mode) {
			n := len(r.digits)
			switch {
			case r.plus && n >= 8 && n <= 15:
			case r.written() && nanpGroups(r.groups()):
			case (n == 7 || n >= 10 && n <= 15) && hasPhoneContext(words, r.w0(), r.w1()):
			default:
				continue
			}
			// A group of runs is taken in one pass; later runs of the
			// same pass see stale items, so re-check the words.
			if slices.Contains(taken[r.w0():r.w1()], true) {
				continue
			}
			take(r.w0(), r.w1(), Phone)
		}
	}
}
