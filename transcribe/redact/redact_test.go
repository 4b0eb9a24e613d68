package redact

import (
	"slices"
	"strings"
	"testing"

	"github.com/custodian/custodian/transcribe"
)

// wordsOf turns "a b c" into words 500 ms apart, each 400 ms long.
func wordsOf(s string) []transcribe.Word {
	var ws []transcribe.Word
	for i, f := range strings.Fields(s) {
		ws = append(ws, transcribe.Word{StartMS: int64(i) * 500, EndMS: int64(i)*500 + 400, Word: f, Confidence: 0.9})
	}
	return ws
}

func joinWords(ws []transcribe.Word) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.Word
	}
	return strings.Join(parts, " ")
}

func TestApply(t *testing.T) {
	const card4111 = "four one one one one one one one one one one one one one one one"
	tests := []struct {
		name  string
		in    string
		want  string
		types []string
	}{
		// Card numbers, spoken.
		{"visa spoken (call04)", "my card number is " + card4111, "my card number is [REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"visa spoken with oh", "card five four five four five four five four five four five four five four five four", "card [REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"mastercard spoken with zero and oh", "it is five five five five five five five five five five five five four four four four thanks", "it is [REDACTED:CARD_NUMBER] thanks", []string{CardNumber}},
		{"mastercard 5105 with zero and oh", "number five one oh five one zero five one oh five one zero five one zero zero", "number [REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"double and triple", "it's four one double one one one one one one one one triple one one one ok", "it's [REDACTED:CARD_NUMBER] ok", []string{CardNumber}},
		{"amex spoken 15 digits", "amex three seven eight two eight two two four six three one zero zero zero five", "amex [REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"spoken in pairs", "card forty one eleven eleven eleven eleven eleven eleven eleven please", "card [REDACTED:CARD_NUMBER] please", []string{CardNumber}},
		{"spoken with fillers", "four one one one uh one one one one um one one one one one one one one", "[REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"card then expiry", "card " + card4111 + " expiring twelve twenty six", "card [REDACTED:CARD_NUMBER] expiring twelve twenty six", []string{CardNumber}},
		{"card then code run together", "it's " + card4111 + " one two three", "it's [REDACTED:CARD_NUMBER] one two three", []string{CardNumber}},
		{"card at start", card4111 + " is my card", "[REDACTED:CARD_NUMBER] is my card", []string{CardNumber}},
		{"card at end", "the card is " + card4111, "the card is [REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"two cards", "first " + card4111 + " and second five five five five five five five five five five five five four four four four", "first [REDACTED:CARD_NUMBER] and second [REDACTED:CARD_NUMBER]", []string{CardNumber, CardNumber}},
		// Card numbers, written.
		{"visa written groups", "card 4111 1111 1111 1111 ok", "card [REDACTED:CARD_NUMBER] ok", []string{CardNumber}},
		{"visa written dashes", "Card: 4111-1111-1111-1111.", "Card: [REDACTED:CARD_NUMBER].", []string{CardNumber}},
		{"visa written one token", "use 4111111111111111, thanks", "use [REDACTED:CARD_NUMBER], thanks", []string{CardNumber}},
		{"mastercard written", "5555 5555 5555 4444", "[REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"mastercard 2-series", "2223003122003222", "[REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"amex written 4-6-5", "amex 3782 822463 10005", "amex [REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"visa 13 digits", "old card 4222222222222 expired", "old card [REDACTED:CARD_NUMBER] expired", []string{CardNumber}},
		{"19 digits", "card 6011 0009 9013 9424 009 ok", "card [REDACTED:CARD_NUMBER] ok", []string{CardNumber}},
		{"discover", "6011111111111117", "[REDACTED:CARD_NUMBER]", []string{CardNumber}},
		{"mixed written and spoken", "4111 1111 one one one one 1111", "[REDACTED:CARD_NUMBER]", []string{CardNumber}},
		// Luhn-invalid: must stay.
		{"luhn invalid written", "ref 4111 1111 1111 1112 ok", "ref 4111 1111 1111 1112 ok", nil},
		{"luhn invalid spoken", "four one one one one one one one one one one one one one one two", "four one one one one one one one one one one one one one one two", nil},
		{"luhn invalid 19", "1234567890123456789", "1234567890123456789", nil},
		{"12 digits luhn valid is not a card", "order 4111 1111 1117", "order 4111 1111 1117", nil},
		{"20 digits without card prefix", "tracking 9400 1000 0000 0000 0000", "tracking 9400 1000 0000 0000 0000", nil},
		// SSNs.
		{"ssn written", "SSN 123-45-6789.", "SSN [REDACTED:SSN].", []string{SSN}},
		{"ssn written no context", "it's 123-45-6789", "it's [REDACTED:SSN]", []string{SSN}},
		{"ssn written three tokens", "my social is 123 45 6789", "my social is [REDACTED:SSN]", []string{SSN}},
		{"ssn spoken with context", "my social security number is one two three four five six seven eight nine", "my social security number is [REDACTED:SSN]", []string{SSN}},
		{"ssn spoken grouped", "social is one two three forty five six seven eight nine ok", "social is [REDACTED:SSN] ok", []string{SSN}},
		{"nine digits without context stay", "the order is one two three four five six seven eight nine", "the order is one two three four five six seven eight nine", nil},
		{"invalid ssn shape stays", "code 000-12-3456", "code 000-12-3456", nil},
		// E-mails.
		{"email written", "mail john.smith@example.com please", "mail [REDACTED:EMAIL] please", []string{Email}},
		{"email written trailing period", "It's Jane_Doe+x@mail.example.co.uk.", "It's [REDACTED:EMAIL].", []string{Email}},
		{"email spoken", "my email is john dot smith at example dot com thanks", "my email is [REDACTED:EMAIL] thanks", []string{Email}},
		{"email spoken spelled", "email j o h n at gmail dot com", "email [REDACTED:EMAIL]", []string{Email}},
		{"email spoken two words and digits", "it's john smith one two three at yahoo dot co dot uk", "it's [REDACTED:EMAIL]", []string{Email}},
		{"email split tokens", "send to john.smith @ example.com now", "send to [REDACTED:EMAIL] now", []string{Email}},
		{"email underscore", "mary underscore jones at company dot org", "[REDACTED:EMAIL]", []string{Email}},
		{"at without domain stays", "see you at home tonight", "see you at home tonight", nil},
		{"at with non tld stays", "meet me at the station dot", "meet me at the station dot", nil},
		// Phones.
		{"phone us parens", "call (555) 123-4567 today", "call [REDACTED:PHONE] today", []string{Phone}},
		{"phone us dashes no context", "it's 555-123-4567", "it's [REDACTED:PHONE]", []string{Phone}},
		{"phone dots", "555.123.4567", "[REDACTED:PHONE]", []string{Phone}},
		{"phone with country code", "+1 555 123 4567", "[REDACTED:PHONE]", []string{Phone}},
		{"phone 1-800", "dial 1-800-555-0199", "dial [REDACTED:PHONE]", []string{Phone}},
		{"phone uk", "ring +44 20 7946 0958 later", "ring [REDACTED:PHONE] later", []string{Phone}},
		{"phone german one token", "+4930123456", "[REDACTED:PHONE]", []string{Phone}},
		{"phone spoken with context", "my phone number is five five five one two three four five six seven", "my phone number is [REDACTED:PHONE]", []string{Phone}},
		{"phone spoken eight hundred", "call one eight hundred five five five one two one two", "call [REDACTED:PHONE]", []string{Phone}},
		{"phone spoken plus", "plus four four two zero seven nine four six zero nine five eight", "[REDACTED:PHONE]", []string{Phone}},
		{"phone context after", "five five five one two three four five six seven is my cell", "[REDACTED:PHONE] is my cell", []string{Phone}},
		{"phone spoken seven digits", "reach me at five five five one two three four", "reach me at [REDACTED:PHONE]", []string{Phone}},
		{"ten digits without context stay", "account 5551234567", "account 5551234567", nil},
		{"account number is not a phone", "my account number is 5551234567", "my account number is 5551234567", nil},
		// Not PII.
		{"amount", "that will be $1,250.00 or 1250 dollars", "that will be $1,250.00 or 1250 dollars", nil},
		{"decimal", "rate 12.50 per hour", "rate 12.50 per hour", nil},
		{"date", "on 12/25/2024 at noon", "on 12/25/2024 at noon", nil},
		{"one or two", "one or two items", "one or two items", nil},
		{"spoken amount", "two thousand four hundred and fifty dollars", "two thousand four hundred and fifty dollars", nil},
		{"spoken date", "march fifth twenty twenty four", "march fifth twenty twenty four", nil},
		{"oh exclamation", "oh I see oh", "oh I see oh", nil},
		{"empty", "", "", nil},
		// Mixed.
		{"mixed sentence", "card 4111111111111111 email a.b@c.io phone 555-123-4567 ssn 123-45-6789", "card [REDACTED:CARD_NUMBER] email [REDACTED:EMAIL] phone [REDACTED:PHONE] ssn [REDACTED:SSN]", []string{CardNumber, Email, Phone, SSN}},
		{"mixed spoken", "email bob at example dot com and card " + card4111, "email [REDACTED:EMAIL] and card [REDACTED:CARD_NUMBER]", []string{Email, CardNumber}},
		{"idempotent on placeholder", "[REDACTED:CARD_NUMBER] and [REDACTED:EMAIL]", "[REDACTED:CARD_NUMBER] and [REDACTED:EMAIL]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := wordsOf(tt.in)
			orig := slices.Clone(in)
			out, spans := Apply(in)
			if got := joinWords(out); got != tt.want {
				t.Errorf("Apply(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			var types []string
			for _, s := range spans {
				types = append(types, s.Type)
			}
			if !slices.Equal(types, tt.types) {
				t.Errorf("types = %v, want %v", types, tt.types)
			}
			if !slices.Equal(in, orig) {
				t.Error("Apply modified its input")
			}
			// Text gives the same result on the same words.
			txt, ttypes := Text(tt.in)
			if txt != tt.want && !(tt.want == "" && txt == "") {
				t.Errorf("Text(%q) = %q, want %q", tt.in, txt, tt.want)
			}
			if !slices.Equal(ttypes, tt.types) {
				t.Errorf("Text types = %v, want %v", ttypes, tt.types)
			}
		})
	}
	if len(tests) < 40 {
		t.Fatalf("only %d cases", len(tests))
	}
}

// BenchmarkApply redacts a 10,000-word transcript (an hour of one speaker)
// with a card number, an e-mail and a phone number every 200 words.
func BenchmarkApply(b *testing.B) {
	filler := strings.Repeat("so we looked at the account and the balance was two hundred dollars ", 14)
	block := filler + " my card is four one one one one one one one one one one one one one one one email john dot smith at example dot com call 555-123-4567 "
	var text string
	for len(strings.Fields(text)) < 10000 {
		text += block
	}
	words := wordsOf(text)
	b.ReportAllocs()
	b.SetBytes(int64(len(words))) // "bytes" are words here: MB/s reads as million words/s
	for b.Loop() {
		Apply(words)
	}
}
