package search

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseQueryCanonicalForms(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"cancel", "cancel"},
		{"  cancel   account ", "cancel account"},
		{`"cancel  my   account"`, `"cancel my account"`},
		{"refund OR credit", "refund OR credit"},
		{"cancel refund OR credit", "cancel refund OR credit"},
		{"-refund cancel", "-refund cancel"},
		{`cancel -"late fee"`, `cancel -"late fee"`},
		{"cancel -(refund OR credit)", "cancel -(refund OR credit)"},
		{"(a b) OR c", "(a b) OR c"},
		{"(a OR b) OR c", "(a OR b) OR c"},
		{"(a)", "a"},
		{"a AND b", "a b"},
		{"a or b", "a or b"}, // lower-case or is a word
		{"e-mail", "e-mail"},
		{"a -", "a -"}, // a lone dash is a word (without searchable characters)
		{"Cancelled", "Cancelled"},
		{`a"b c"`, `a "b c"`},
		{"x (-a) ", "x -a"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuery(tt.in)
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tt.in, err)
			}
			if got := q.String(); got != tt.want {
				t.Fatalf("ParseQuery(%q).String() = %q, want %q", tt.in, got, tt.want)
			}
			again, err := ParseQuery(q.String())
			if err != nil || again.String() != q.String() {
				t.Fatalf("canonical form %q does not parse back to itself: %v %q", q.String(), err, again)
			}
		})
	}
}

func TestParseQueryStructure(t *testing.T) {
	q := mustQuery(t, "cancel refund OR credit -fee")
	r := q.root
	if r.kind != nodeAnd || len(r.kids) != 3 || r.kids[1].kind != nodeOr || r.kids[2].kind != nodeNot {
		t.Fatalf("OR must bind tighter than the implicit AND: got %+v", r)
	}
	if q.Terms() != 4 {
		t.Fatalf("Terms() = %d, want 4", q.Terms())
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		in     string
		reason string
	}{
		{"", "nothing to search for"},
		{"   ", "nothing to search for"},
		{`"cancel my`, "unterminated quoted phrase"},
		{`""`, "empty quoted phrase"},
		{"OR refund", "OR needs"},
		{"refund OR", "OR needs"},
		{"refund OR OR credit", "OR needs"},
		{"AND refund", "AND needs"},
		{"refund AND", "AND needs"},
		{"-refund", "at least one word"},
		{"-a -b", "at least one word"},
		{"a OR -b", "exclusion cannot be an alternative"},
		{"-a OR b", "exclusion cannot be an alternative"},
		{"--a b", "exclusion of an exclusion"},
		{"(a", "unclosed ("},
		{"a)", "unmatched )"},
		{"()", "empty group"},
		{"a\x00b", "control character"},
		{"a\xffb", "not valid UTF-8"},
		{strings.Repeat("(", MaxQueryDepth+1) + "a" + strings.Repeat(")", MaxQueryDepth+1), "nested deeper"},
		{strings.Repeat("w ", MaxQueryTerms+1), "more than"},
		{strings.Repeat("a", MaxQueryBytes+1), "longer than"},
		{"(-a) OR b", "exclusion cannot be an alternative"},
		{"x ((-a) OR b)", "exclusion cannot be an alternative"},
		{"x -(-a)", "exclusion of an exclusion"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseQuery(tt.in)
			var qe *QueryError
			if !errors.As(err, &qe) || !errors.Is(err, ErrQuery) {
				t.Fatalf("ParseQuery(%q) = %v, want a *QueryError", tt.in, err)
			}
			if !strings.Contains(qe.Reason, tt.reason) {
				t.Fatalf("ParseQuery(%q) reason %q, want it to mention %q", tt.in, qe.Reason, tt.reason)
			}
			if qe.Offset < 0 || qe.Offset > len(tt.in) {
				t.Fatalf("offset %d outside the text", qe.Offset)
			}
		})
	}
}

// FuzzSearchQuery: no input panics; an accepted query's canonical form is
// accepted and canonical; limits hold.
func FuzzSearchQuery(f *testing.F) {
	for _, s := range []string{
		"cancel", `"cancel my account"`, "refund OR credit", "cancel -refund", "(a b) OR c", "a AND b",
		`-"late fee" x`, "((a))", "a -", "e-mail [REDACTED:CARD_NUMBER]", `a"b"c`, "-(a OR b) c", "OR", `"`, "(-a)",
		"ça coûte très cher", "a\tb\nc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %v is not a *QueryError", err)
			}
			return
		}
		c := q.String()
		if !utf8.ValidString(c) {
			t.Fatalf("canonical form of %q is not UTF-8", s)
		}
		q2, err := ParseQuery(c)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", c, s, err)
		}
		if q2.String() != c {
			t.Fatalf("canonical form not stable: %q → %q → %q", s, c, q2.String())
		}
		if q.Terms() > MaxQueryTerms || q.Terms() < 1 {
			t.Fatalf("%d terms", q.Terms())
		}
	})
}
