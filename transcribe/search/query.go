package search

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The query syntax (docs/search.md):
//
//	cancel account          both words, anywhere in the same recording
//	"cancel my account"     the words in this order, next to each other
//	refund OR credit        either word (OR binds tighter than the
//	                        implicit AND: `cancel refund OR credit` is
//	                        cancel AND (refund OR credit))
//	-"late fee"  -refund    exclusion: recordings without it
//	(a b) OR c              grouping
//	a AND b                 same as `a b`
//
// OR and AND are operators only in capitals; `or` and `and` are words.
// Words and phrases are analyzed like the transcripts (lower case,
// English stemming), so `Cancelled` finds "cancel", "cancels",
// "canceling".

// Limits of a query.
const (
	MaxQueryBytes = 1024 // of the query text
	MaxQueryTerms = 32   // words and phrases
	MaxQueryDepth = 8    // nested parentheses
)

// ErrQuery is wrapped by every *QueryError.
var ErrQuery = errors.New("search: invalid query")

// QueryError describes why a query text was rejected; Offset is the byte
// offset in the text where the problem was found.
type QueryError struct {
	Offset int
	Reason string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("invalid query at byte %d: %s", e.Offset, e.Reason)
}

// Unwrap returns ErrQuery.
func (e *QueryError) Unwrap() error { return ErrQuery }

type nodeKind int

const (
	nodeWord nodeKind = iota + 1
	nodePhrase
	nodeAnd
	nodeOr
	nodeNot
)

// node is one element of a parsed query.
type node struct {
	kind nodeKind
	text string  // word or phrase (phrase whitespace collapsed to one space)
	kids []*node // and, or: two or more; not: one
}

// Query is a parsed search query.
type Query struct {
	root  *node
	terms int
}

// ParseQuery parses text in the syntax above. Errors are *QueryError.
func ParseQuery(text string) (*Query, error) {
	if len(text) > MaxQueryBytes {
		return nil, &QueryError{Offset: MaxQueryBytes, Reason: fmt.Sprintf("longer than %d bytes", MaxQueryBytes)}
	}
	if !utf8.ValidString(text) {
		return nil, &QueryError{Offset: invalidUTF8At(text), Reason: "not valid UTF-8"}
	}
	if i := strings.IndexFunc(text, func(r rune) bool { return unicode.IsControl(r) && !unicode.IsSpace(r) }); i >= 0 {
		return nil, &QueryError{Offset: i, Reason: "control character"}
	}
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, end: len(text)}
	if len(toks) == 0 {
		return nil, &QueryError{Offset: 0, Reason: "nothing to search for"}
	}
	root, err := p.and(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		t := p.toks[p.pos]
		return nil, &QueryError{Offset: t.off, Reason: "unmatched )"}
	}
	if p.terms > MaxQueryTerms {
		return nil, &QueryError{Offset: 0, Reason: fmt.Sprintf("more than %d words and phrases", MaxQueryTerms)}
	}
	if !hasPositive(root) {
		return nil, &QueryError{Offset: 0, Reason: "a query needs at least one word or phrase that is not excluded"}
	}
	return &Query{root: root, terms: p.terms}, nil
}

func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				return i
			}
		}
	}
	return 0
}

// String returns the canonical form of the query: parsing it again gives
// the same query. Its keyed hash is what the audit log records.
func (q *Query) String() string {
	var b strings.Builder
	writeNode(&b, q.root, 0)
	return b.String()
}

// Terms returns how many words and phrases the query has.
func (q *Query) Terms() int { return q.terms }

func writeNode(b *strings.Builder, n *node, parent nodeKind) {
	switch n.kind {
	case nodeWord:
		b.WriteString(n.text)
	case nodePhrase:
		b.WriteByte('"')
		b.WriteString(n.text)
		b.WriteByte('"')
	case nodeNot:
		b.WriteByte('-')
		writeNode(b, n.kids[0], nodeNot)
	case nodeAnd, nodeOr:
		sep := " "
		if n.kind == nodeOr {
			sep = " OR "
		}
		// An AND inside anything, or an OR under an exclusion, needs
		// parentheses; an OR inside an AND does not (it binds tighter).
		paren := parent == nodeNot || parent == nodeOr || (n.kind == nodeAnd && parent != 0)
		if paren {
			b.WriteByte('(')
		}
		for i, k := range n.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			writeNode(b, k, n.kind)
		}
		if paren {
			b.WriteByte(')')
		}
	}
}

func hasPositive(n *node) bool {
	switch n.kind {
	case nodeWord, nodePhrase:
		return true
	case nodeNot:
		return false
	case nodeOr:
		// every alternative must find something
		for _, k := range n.kids {
			if !hasPositive(k) {
				return false
			}
		}
		return true
	default:
		for _, k := range n.kids {
			if hasPositive(k) {
				return true
			}
		}
		return false
	}
}

type tokKind int

const (
	tokWord tokKind = iota + 1
	tokPhrase
	tokOr
	tokAnd
	tokNot
	tokOpen
	tokClose
)

type token struct {
	kind tokKind
	text string
	off  int
}

func isSep(r rune) bool { return unicode.IsSpace(r) }

// lex splits text into tokens.
func lex(text string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(text) {
		r, n := utf8.DecodeRuneInString(text[i:])
		switch {
		case isSep(r):
			i += n
		case r == '(':
			toks = append(toks, token{kind: tokOpen, off: i})
			i++
		case r == ')':
			toks = append(toks, token{kind: tokClose, off: i})
			i++
		case r == '"':
			end := strings.IndexByte(text[i+1:], '"')
			if end < 0 {
				return nil, &QueryError{Offset: i, Reason: "unterminated quoted phrase"}
			}
			words := strings.FieldsFunc(text[i+1:i+1+end], isSep)
			if len(words) == 0 {
				return nil, &QueryError{Offset: i, Reason: "empty quoted phrase"}
			}
			toks = append(toks, token{kind: tokPhrase, text: strings.Join(words, " "), off: i})
			i += end + 2
		case r == '-' && i+1 < len(text) && startsItem(text[i+1:]):
			toks = append(toks, token{kind: tokNot, off: i})
			i++
		default:
			j := i
			for j < len(text) {
				r, n := utf8.DecodeRuneInString(text[j:])
				if isSep(r) || r == '(' || r == ')' || r == '"' {
					break
				}
				j += n
			}
			w := text[i:j]
			switch w {
			case "OR":
				toks = append(toks, token{kind: tokOr, off: i})
			case "AND":
				toks = append(toks, token{kind: tokAnd, off: i})
			default:
				toks = append(toks, token{kind: tokWord, text: w, off: i})
			}
			i = j
		}
	}
	return toks, nil
}

// startsItem reports whether s (what follows a '-') starts something that
// can be excluded: a word, a phrase or a group.
func startsItem(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return !isSep(r) && r != ')'
}

type parser struct {
	toks  []token
	pos   int
	end   int
	terms int
}

func (p *parser) peek() (token, bool) {
	if p.pos >= len(p.toks) {
		return token{}, false
	}
	return p.toks[p.pos], true
}

func (p *parser) offset() int {
	if t, ok := p.peek(); ok {
		return t.off
	}
	return p.end
}

// and parses items up to the end or a closing parenthesis.
func (p *parser) and(depth int) (*node, error) {
	var kids []*node
	for {
		t, ok := p.peek()
		if !ok || t.kind == tokClose {
			break
		}
		if t.kind == tokAnd {
			if len(kids) == 0 {
				return nil, &QueryError{Offset: t.off, Reason: "AND needs a word or phrase on both sides"}
			}
			p.pos++
			if nt, ok := p.peek(); !ok || nt.kind == tokClose || nt.kind == tokAnd || nt.kind == tokOr {
				return nil, &QueryError{Offset: t.off, Reason: "AND needs a word or phrase on both sides"}
			}
			continue
		}
		n, err := p.item(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	switch len(kids) {
	case 0:
		return nil, &QueryError{Offset: p.offset(), Reason: "empty group"}
	case 1:
		return kids[0], nil
	}
	return &node{kind: nodeAnd, kids: kids}, nil
}

// item parses an exclusion or an OR chain.
func (p *parser) item(depth int) (*node, error) {
	t, _ := p.peek()
	if t.kind == tokNot {
		p.pos++
		nt, ok := p.peek()
		if ok && nt.kind == tokNot {
			return nil, &QueryError{Offset: nt.off, Reason: "an exclusion of an exclusion"}
		}
		a, err := p.atom(depth)
		if err != nil {
			return nil, err
		}
		if a.kind == nodeNot {
			return nil, &QueryError{Offset: t.off, Reason: "an exclusion of an exclusion"}
		}
		if nt, ok := p.peek(); ok && nt.kind == tokOr {
			return nil, &QueryError{Offset: nt.off, Reason: "an exclusion cannot be an alternative of OR; write -(a OR b) or (a OR b) -c"}
		}
		return &node{kind: nodeNot, kids: []*node{a}}, nil
	}
	a, err := p.atom(depth)
	if err != nil {
		return nil, err
	}
	kids := []*node{a}
	for {
		t, ok := p.peek()
		if !ok || t.kind != tokOr {
			break
		}
		p.pos++
		nt, ok := p.peek()
		if !ok || nt.kind == tokClose || nt.kind == tokOr || nt.kind == tokAnd {
			return nil, &QueryError{Offset: t.off, Reason: "OR needs a word or phrase on both sides"}
		}
		if nt.kind == tokNot {
			return nil, &QueryError{Offset: nt.off, Reason: "an exclusion cannot be an alternative of OR; write -(a OR b) or (a OR b) -c"}
		}
		b, err := p.atom(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, b)
	}
	if len(kids) == 1 {
		return a, nil
	}
	for _, k := range kids {
		if k.kind == nodeNot {
			return nil, &QueryError{Offset: t.off, Reason: "an exclusion cannot be an alternative of OR; write -(a OR b) or (a OR b) -c"}
		}
	}
	return &node{kind: nodeOr, kids: kids}, nil
}

// atom parses a word, a phrase or a parenthesized group.
func (p *parser) atom(depth int) (*node, error) {
	t, ok := p.peek()
	if !ok {
		return nil, &QueryError{Offset: p.end, Reason: "a word or phrase is missing at the end"}
	}
	switch t.kind {
	case tokWord:
		p.pos++
		p.terms++
		return &node{kind: nodeWord, text: t.text}, nil
	case tokPhrase:
		p.pos++
		p.terms++
		return &node{kind: nodePhrase, text: t.text}, nil
	case tokOpen:
		if depth >= MaxQueryDepth {
			return nil, &QueryError{Offset: t.off, Reason: fmt.Sprintf("parentheses nested deeper than %d", MaxQueryDepth)}
		}
		p.pos++
		n, err := p.and(depth + 1)
		if err != nil {
			return nil, err
		}
		c, ok := p.peek()
		if !ok || c.kind != tokClose {
			return nil, &QueryError{Offset: t.off, Reason: "unclosed ("}
		}
		p.pos++
		return n, nil
	case tokClose:
		return nil, &QueryError{Offset: t.off, Reason: "unmatched )"}
	case tokOr:
		return nil, &QueryError{Offset: t.off, Reason: "OR needs a word or phrase on both sides"}
	case tokAnd:
		return nil, &QueryError{Offset: t.off, Reason: "AND needs a word or phrase on both sides"}
	default:
		return nil, &QueryError{Offset: t.off, Reason: "an exclusion of an exclusion"}
	}
}
