package search

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	bsearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
)

// Sort is the order of search results.
type Sort string

// Sort orders.
const (
	SortRelevance Sort = "relevance" // best match first (TF-IDF), the default
	SortTime      Sort = "time"      // newest recording first
	SortTimeAsc   Sort = "time_asc"  // oldest recording first
)

// Page sizes.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Snippet and moment bounds.
const (
	snippetContextWords = 8  // words shown before and after a match
	snippetMaxWords     = 40 // longest snippet
	momentGapWords      = 2  // matched words this close form one moment
	maxMoments          = 10 // moments listed per hit
)

// ErrCursor is returned for a cursor this index did not issue for the
// same query, filters and order.
var ErrCursor = errors.New("search: invalid cursor")

// Access is who is searching: the caller's visibility (api/auth Scope)
// and role. It becomes a filter inside the index query, so results are
// scoped before they are ranked and paginated.
type Access struct {
	Tenant string
	// AllDepartments, or only Departments (empty: nothing).
	AllDepartments bool
	Departments    []string
	// Role is admin, compliance or supervisor; Department is the caller's
	// own department (for a supervisor, checked against the policy's
	// access rule). Other roles find nothing.
	Role       string
	Department string
}

// Request is one search.
type Request struct {
	Access Access
	Query  *Query
	// Filters: exact session, participant and department; recording start
	// time in [From, To) (zero: unbounded).
	SessionID, ParticipantID, Department string
	From, To                             time.Time
	Sort                                 Sort
	// Limit is the page size (default DefaultLimit, at most MaxLimit).
	Limit int
	// Cursor is Result.NextCursor of the previous page.
	Cursor string
}

// Range is a highlighted part of a snippet, in Unicode code points from
// the snippet's start, end exclusive.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Moment is a stretch of matched words, times on the session clock.
type Moment struct {
	StartMS int64 `json:"start_ms"`
	EndMS   int64 `json:"end_ms"`
}

// Hit is one matching recording.
type Hit struct {
	RecordingID   string
	SessionID     string
	ParticipantID string
	Speaker       string
	Department    string
	RecordedAt    time.Time
	// StartOffsetMS is the recording's start on the session clock.
	StartOffsetMS int64
	Score         float64
	// StartMS and EndMS span the best-matching words (the moment with the
	// most distinct query terms, the earliest of equals), session clock.
	StartMS, EndMS int64
	// Moments lists the matching moments in time order (at most 10).
	Moments []Moment
	// Snippet is plain text around the best match; Highlights locate the
	// matched words in it. SnippetHTML is the same with every character
	// escaped and the matches in <mark>…</mark>.
	Snippet     string
	Highlights  []Range
	SnippetHTML string
}

// MediaOffsetMS is the hit's start within the recording's media (session
// time minus the recording's start on the session clock).
func (h Hit) MediaOffsetMS() int64 { return max(h.StartMS-h.StartOffsetMS, 0) }

// Result is one page of hits.
type Result struct {
	Hits []Hit
	// Total counts every matching recording the caller may see.
	Total uint64
	// NextCursor fetches the next page; empty on the last page.
	NextCursor string
}

// Search runs r in the caller's tenant index. Errors: *QueryError for a
// query with nothing searchable, ErrCursor, ErrClosed, or an index error.
func (x *Index) Search(ctx context.Context, r Request) (Result, error) {
	start := time.Now()
	res, err := x.search(ctx, r)
	x.m.searched(time.Since(start), err)
	return res, err
}

func (x *Index) search(ctx context.Context, r Request) (Result, error) {
	if r.Query == nil {
		return Result{}, &QueryError{Reason: "no query"}
	}
	switch {
	case r.Limit == 0:
		r.Limit = DefaultLimit
	case r.Limit < 0 || r.Limit > MaxLimit:
		return Result{}, fmt.Errorf("search: limit %d out of 1..%d", r.Limit, MaxLimit)
	}
	if r.Sort == "" {
		r.Sort = SortRelevance
	}
	if r.Sort != SortRelevance && r.Sort != SortTime && r.Sort != SortTimeAsc {
		return Result{}, fmt.Errorf("search: unknown sort %q", r.Sort)
	}
	user := x.compile(r.Query.root, true)
	if user == nil || !x.searchable(r.Query.root) {
		return Result{}, &QueryError{Reason: "no searchable word in the query (punctuation only?)"}
	}
	fp := fingerprint(r)
	var after []string
	if r.Cursor != "" {
		var err error
		if after, err = decodeCursor(r.Cursor, r.Sort, fp); err != nil {
			return Result{}, err
		}
	}
	filters, ok := scopeFilters(r.Access)
	if !ok {
		return Result{Hits: []Hit{}}, nil
	}
	filters = append(filters, requestFilters(r)...)
	t, err := x.tenant(ctx, r.Access.Tenant, false)
	if err != nil {
		return Result{}, err
	}
	if t == nil {
		return Result{Hits: []Hit{}}, nil
	}

	// Phase 1: rank within scope, no term locations (cheap for common
	// words), one extra hit to know whether there is a next page.
	q1 := bleve.NewBooleanQuery()
	q1.AddMust(user)
	if len(filters) > 0 {
		q1.AddFilter(bleve.NewConjunctionQuery(filters...))
	}
	req := bleve.NewSearchRequestOptions(q1, r.Limit+1, 0, false)
	req.SortByCustom(sortOrder(r.Sort))
	if after != nil {
		req.SetSearchAfter(after)
	}
	res1, err := t.bi.SearchInContext(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("search: query tenant %s: %w", r.Access.Tenant, err)
	}
	out := Result{Hits: []Hit{}, Total: res1.Total}
	page := res1.Hits
	if len(page) > r.Limit {
		page = page[:r.Limit]
		last := page[len(page)-1]
		out.NextCursor = encodeCursor(r.Sort, fp, cursorValues(r.Sort, last))
	}
	if len(page) == 0 {
		return out, nil
	}

	// Phase 2: locations and stored fields of this page only, still within
	// scope (a document changed in between is checked again).
	ids := make([]string, len(page))
	for i, h := range page {
		ids[i] = h.ID
	}
	// The id set is a conjunct (not a filter) so the searchers skip to
	// these documents instead of decoding every match's locations.
	q2 := bleve.NewBooleanQuery()
	q2.AddMust(bleve.NewDocIDQuery(ids), x.compile(r.Query.root, false))
	if len(filters) > 0 {
		q2.AddFilter(bleve.NewConjunctionQuery(filters...))
	}
	req2 := bleve.NewSearchRequestOptions(q2, len(ids), 0, false)
	req2.IncludeLocations = true
	req2.Fields = []string{fieldText, fieldWords, fieldSession, fieldParticipant, fieldDepartment,
		fieldSpeaker, fieldRecordedAt, fieldOffset}
	res2, err := t.bi.SearchInContext(ctx, req2)
	if err != nil {
		return Result{}, fmt.Errorf("search: load hits of tenant %s: %w", r.Access.Tenant, err)
	}
	byID := make(map[string]*bsearch.DocumentMatch, len(res2.Hits))
	for _, h := range res2.Hits {
		byID[h.ID] = h
	}
	for _, h1 := range page {
		h2 := byID[h1.ID]
		if h2 == nil {
			continue // deleted since phase 1
		}
		hit, err := buildHit(h2)
		if err != nil {
			x.log.Error("search hit skipped", "tenant", r.Access.Tenant, "recording_id", h1.ID, "err", err)
			continue
		}
		hit.Score = h1.Score
		out.Hits = append(out.Hits, hit)
	}
	return out, nil
}

// terms analyzes text like the transcripts.
func (x *Index) terms(text string) []string {
	var out []string
	for _, tok := range x.an.Analyze([]byte(text)) {
		if len(tok.Term) > 0 {
			out = append(out, string(tok.Term))
		}
	}
	return out
}

// pairTerms analyzes text into pairs of consecutive terms.
func (x *Index) pairTerms(text string) []string {
	var out []string
	for _, tok := range x.pairs.Analyze([]byte(text)) {
		out = append(out, string(tok.Term))
	}
	return out
}

// compile turns a parsed query into a bleve query; nil when nothing in it
// is searchable. With ranking, phrases use the pair field (same matches,
// cheaper); without, everything uses the text field, whose term locations
// give the matched words.
func (x *Index) compile(n *node, ranking bool) query.Query {
	switch n.kind {
	case nodeWord, nodePhrase:
		terms := x.terms(n.text)
		switch {
		case len(terms) == 0:
			return nil
		case len(terms) == 1:
			q := bleve.NewTermQuery(terms[0])
			q.SetField(fieldText)
			return q
		case ranking:
			pairs := x.pairTerms(n.text)
			if len(pairs) == 1 {
				q := bleve.NewTermQuery(pairs[0]) // a pair is the phrase
				q.SetField(fieldBigrams)
				return q
			}
			// consecutive pairs at consecutive positions: the words in order
			return bleve.NewPhraseQuery(pairs, fieldBigrams)
		default:
			return bleve.NewPhraseQuery(terms, fieldText)
		}
	case nodeOr:
		var qs []query.Query
		for _, k := range n.kids {
			if q := x.compile(k, ranking); q != nil {
				qs = append(qs, q)
			}
		}
		switch len(qs) {
		case 0:
			return nil
		case 1:
			return qs[0]
		}
		return bleve.NewDisjunctionQuery(qs...)
	case nodeNot:
		q := x.compile(n.kids[0], ranking)
		if q == nil {
			return nil
		}
		b := bleve.NewBooleanQuery()
		b.AddMustNot(q)
		return b
	case nodeAnd:
		var must, not []query.Query
		for _, k := range n.kids {
			if k.kind == nodeNot {
				if q := x.compile(k.kids[0], ranking); q != nil {
					not = append(not, q)
				}
				continue
			}
			if q := x.compile(k, ranking); q != nil {
				must = append(must, q)
			}
		}
		if len(not) == 0 {
			switch len(must) {
			case 0:
				return nil
			case 1:
				return must[0]
			}
			return bleve.NewConjunctionQuery(must...)
		}
		b := bleve.NewBooleanQuery()
		if len(must) > 0 {
			b.AddMust(must...)
		}
		b.AddMustNot(not...)
		return b
	}
	return nil
}

// searchable reports whether n finds something by itself (not only
// excludes), once words without searchable characters are dropped.
func (x *Index) searchable(n *node) bool {
	switch n.kind {
	case nodeWord, nodePhrase:
		return len(x.terms(n.text)) > 0
	case nodeNot:
		return false
	default:
		for _, k := range n.kids {
			if x.searchable(k) {
				return true
			}
		}
		return false
	}
}

func termFilter(field, value string) query.Query {
	q := bleve.NewTermQuery(value)
	q.SetField(field)
	return q
}

func anyTerm(field string, values ...string) query.Query {
	if len(values) == 1 {
		return termFilter(field, values[0])
	}
	qs := make([]query.Query, len(values))
	for i, v := range values {
		qs[i] = termFilter(field, v)
	}
	return bleve.NewDisjunctionQuery(qs...)
}

// scopeFilters returns the filters of a caller's scope; ok false when the
// caller may see nothing.
func scopeFilters(a Access) ([]query.Query, bool) {
	if a.Tenant == "" {
		return nil, false
	}
	var fs []query.Query
	if !a.AllDepartments {
		if len(a.Departments) == 0 {
			return nil, false
		}
		fs = append(fs, anyTerm(fieldDepartment, a.Departments...))
	}
	switch a.Role {
	case policy.RoleAdmin:
	case policy.RoleCompliance:
		fs = append(fs, termFilter(fieldACL, aclCompliance))
	case policy.RoleSupervisor:
		if a.Department == "" {
			return nil, false
		}
		fs = append(fs, anyTerm(fieldACL, aclSupervisorAll, aclSupervisorDep+a.Department))
	default:
		return nil, false
	}
	return fs, true
}

func requestFilters(r Request) []query.Query {
	var fs []query.Query
	if r.SessionID != "" {
		fs = append(fs, termFilter(fieldSession, r.SessionID))
	}
	if r.ParticipantID != "" {
		fs = append(fs, termFilter(fieldParticipant, r.ParticipantID))
	}
	if r.Department != "" {
		fs = append(fs, termFilter(fieldDepartment, r.Department))
	}
	if !r.From.IsZero() || !r.To.IsZero() {
		var lo, hi *float64
		if !r.From.IsZero() {
			v := float64(r.From.UnixMilli())
			lo = &v
		}
		if !r.To.IsZero() {
			v := float64(r.To.UnixMilli())
			hi = &v
		}
		yes, no := true, false
		q := bleve.NewNumericRangeInclusiveQuery(lo, hi, &yes, &no)
		q.SetField(fieldRecordedAt)
		fs = append(fs, q)
	}
	return fs
}

// sortOrder breaks ties by the recording id from doc values, not by
// bleve's _id: that would load (decrypt) every matching document's stored
// id while collecting, which dominated queries for common words.
func sortOrder(s Sort) bsearch.SortOrder {
	byID := &bsearch.SortField{Field: fieldRecording, Type: bsearch.SortFieldAsString}
	switch s {
	case SortTime:
		return bsearch.SortOrder{&bsearch.SortField{Field: fieldRecordedAt, Type: bsearch.SortFieldAsNumber, Desc: true}, byID}
	case SortTimeAsc:
		return bsearch.SortOrder{&bsearch.SortField{Field: fieldRecordedAt, Type: bsearch.SortFieldAsNumber}, byID}
	default:
		return bsearch.SortOrder{&bsearch.SortScore{Desc: true}, byID}
	}
}

func cursorValues(s Sort, h *bsearch.DocumentMatch) []string {
	if s == SortRelevance {
		return []string{strconv.FormatFloat(h.Score, 'g', -1, 64), h.ID}
	}
	v := ""
	if len(h.DecodedSort) > 0 {
		v = h.DecodedSort[0]
	}
	return []string{v, h.ID}
}

// The recording id is also the document id: the cursor's second value is
// both.

// fingerprint ties a cursor to the query, filters, order and caller.
func fingerprint(r Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%v\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d\x00%d\x00%s",
		r.Query.String(), r.Access.Tenant, r.Access.AllDepartments, strings.Join(r.Access.Departments, ","),
		r.Access.Role, r.Access.Department, r.SessionID, r.ParticipantID, r.Department,
		unixMilliOrZero(r.From), unixMilliOrZero(r.To), r.Sort)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func unixMilliOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

type cursorJSON struct {
	V int      `json:"v"`
	S Sort     `json:"s"`
	F string   `json:"f"`
	A []string `json:"a"`
}

func encodeCursor(s Sort, fp string, after []string) string {
	b, _ := json.Marshal(cursorJSON{V: 1, S: s, F: fp, A: after})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string, s Sort, fp string) ([]string, error) {
	if len(c) > 1024 {
		return nil, ErrCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrCursor
	}
	var cj cursorJSON
	if json.Unmarshal(b, &cj) != nil || cj.V != 1 || cj.S != s || cj.F != fp || len(cj.A) != 2 {
		return nil, ErrCursor
	}
	f, err := strconv.ParseFloat(cj.A[0], 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || !meta.ValidID(cj.A[1]) {
		return nil, ErrCursor
	}
	return cj.A, nil
}

// matchLoc is one matched term occurrence.
type matchLoc struct {
	word       int
	term       string
	start, end int // bytes in the text field
}

type span struct {
	first, last int
	terms       map[string]bool
}

func fieldString(h *bsearch.DocumentMatch, f string) string {
	s, _ := h.Fields[f].(string)
	return s
}

func fieldInt(h *bsearch.DocumentMatch, f string) int64 {
	v, _ := h.Fields[f].(float64)
	return int64(v)
}

// buildHit turns a phase-2 match into a Hit: moments from the term
// locations through the word table, and the snippet.
func buildHit(h *bsearch.DocumentMatch) (Hit, error) {
	text := fieldString(h, fieldText)
	words, err := decodeWords(fieldString(h, fieldWords), text)
	if err != nil {
		return Hit{}, err
	}
	hit := Hit{
		RecordingID: h.ID, SessionID: fieldString(h, fieldSession), ParticipantID: fieldString(h, fieldParticipant),
		Speaker: fieldString(h, fieldSpeaker), Department: fieldString(h, fieldDepartment),
		RecordedAt:    time.UnixMilli(fieldInt(h, fieldRecordedAt)).UTC(),
		StartOffsetMS: fieldInt(h, fieldOffset),
		Moments:       []Moment{}, Highlights: []Range{},
	}
	if len(words) == 0 {
		return hit, nil
	}
	var locs []matchLoc
	for term, ls := range h.Locations[fieldText] {
		for _, l := range ls {
			if int(l.End) > len(text) || l.Start > l.End {
				continue
			}
			locs = append(locs, matchLoc{word: wordAt(words, int(l.Start)), term: term, start: int(l.Start), end: int(l.End)})
		}
	}
	slices.SortFunc(locs, func(a, b matchLoc) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return strings.Compare(a.term, b.term)
	})
	var spans []span
	for _, l := range locs {
		if n := len(spans); n > 0 && l.word-spans[n-1].last <= momentGapWords {
			spans[n-1].last = max(spans[n-1].last, l.word)
			spans[n-1].terms[l.term] = true
			continue
		}
		spans = append(spans, span{first: l.word, last: l.word, terms: map[string]bool{l.term: true}})
	}
	best := span{first: 0, last: 0}
	if len(spans) > 0 {
		best = spans[0]
		for _, s := range spans[1:] {
			if len(s.terms) > len(best.terms) {
				best = s
			}
		}
		hit.StartMS, hit.EndMS = words[best.first].start, words[best.last].end
	} else {
		hit.StartMS, hit.EndMS = words[0].start, words[0].end
	}
	for i, s := range spans {
		if i == maxMoments {
			break
		}
		hit.Moments = append(hit.Moments, Moment{StartMS: words[s.first].start, EndMS: words[s.last].end})
	}
	hit.Snippet, hit.Highlights, hit.SnippetHTML = snippet(text, words, best, locs)
	return hit, nil
}

// snippet cuts the text around s and highlights the matches in it.
func snippet(text string, words []word, s span, locs []matchLoc) (string, []Range, string) {
	last := min(s.last, s.first+snippetMaxWords-1)
	a := max(s.first-snippetContextWords, 0)
	b := min(last+snippetContextWords, len(words)-1)
	from, to := words[a].off, words[b].off+words[b].length
	prefix, suffix := "", ""
	if a > 0 {
		prefix = "… "
	}
	if b < len(words)-1 {
		suffix = " …"
	}
	body := text[from:to]
	// byte ranges in body, merged when only spaces separate them
	var rs [][2]int
	for _, l := range locs {
		if l.start < from || l.end > to {
			continue
		}
		r := [2]int{l.start - from, l.end - from}
		if n := len(rs); n > 0 && r[0] <= rs[n-1][1] ||
			n > 0 && strings.TrimFunc(body[rs[n-1][1]:r[0]], unicode.IsSpace) == "" {
			rs[n-1][1] = max(rs[n-1][1], r[1])
			continue
		}
		rs = append(rs, r)
	}
	plain := prefix + body + suffix
	ranges := make([]Range, 0, len(rs))
	base := utf8.RuneCountInString(prefix)
	var h strings.Builder
	h.WriteString(html.EscapeString(prefix))
	pos := 0
	for _, r := range rs {
		ranges = append(ranges, Range{
			Start: base + utf8.RuneCountInString(body[:r[0]]),
			End:   base + utf8.RuneCountInString(body[:r[1]]),
		})
		h.WriteString(html.EscapeString(body[pos:r[0]]))
		h.WriteString("<mark>")
		h.WriteString(html.EscapeString(body[r[0]:r[1]]))
		h.WriteString("</mark>")
		pos = r[1]
	}
	h.WriteString(html.EscapeString(body[pos:]))
	h.WriteString(html.EscapeString(suffix))
	return plain, ranges, h.String()
}
