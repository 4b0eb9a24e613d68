package search

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/transcribe"
)

// corpus builds recordings from the shared speech samples: two calls,
// agent and customer side each, in two departments, plus two recordings
// that hold the words of "cancel my account" in other orders.
type corpus struct {
	specs map[string]docSpec
	trs   map[string]transcribe.Transcript
}

var corpusStart = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func newCorpus(t *testing.T) corpus {
	t.Helper()
	s := func(names ...string) string {
		var parts []string
		for _, n := range names {
			parts = append(parts, speechSample(t, n))
		}
		return strings.Join(parts, " ")
	}
	c := corpus{specs: map[string]docSpec{}, trs: map[string]transcribe.Transcript{}}
	add := func(ds docSpec) {
		if ds.tenant == "" {
			ds.tenant = "t1"
		}
		c.specs[ds.rec] = ds
		c.trs[ds.rec] = speak(ds.rec, ds.session, ds.participant, ds.speaker, ds.text, ds.offsetMS+500)
	}
	add(docSpec{rec: "rec-a1", session: "s1", participant: "agent-alex", speaker: "Alex", dept: "sales",
		at: corpusStart, offsetMS: 0, text: s("call01", "call03", "call05")})
	add(docSpec{rec: "rec-c1", session: "s1", participant: "cust-dana", speaker: "Dana", dept: "sales",
		at: corpusStart.Add(1500 * time.Millisecond), offsetMS: 1500, text: s("call02", "call04")})
	add(docSpec{rec: "rec-a2", session: "s2", participant: "agent-alex", speaker: "Alex", dept: "support",
		at: corpusStart.Add(2 * time.Hour), offsetMS: 0, text: s("call01", "call06")})
	add(docSpec{rec: "rec-c2", session: "s2", participant: "cust-kim", speaker: "Kim", dept: "support",
		at: corpusStart.Add(2*time.Hour + 3*time.Second), offsetMS: 3000,
		text: "Hello. My account, I want you to cancel it. " + s("call02")[:0] + "Please cancel the account today."})
	add(docSpec{rec: "rec-c3", session: "s3", participant: "cust-lee", speaker: "Lee", dept: "support",
		at: corpusStart.Add(26 * time.Hour), offsetMS: 0, text: "Account my cancel, said nobody. " + s("call06")})
	return c
}

func (c corpus) docs() []Document {
	var out []Document
	keys := mapsKeys(c.specs)
	slices.Sort(keys)
	for _, id := range keys {
		ds := c.specs[id]
		out = append(out, NewDocument(c.trs[id], ds.tenant, ds.dept, ds.at, ds.offsetMS, ds.access))
	}
	return out
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// wordTimes returns the start of the first and the end of the last word
// of the first occurrence of phrase (lower case, words) in a transcript.
func wordTimes(t *testing.T, tr transcribe.Transcript, phrase string) (int64, int64) {
	t.Helper()
	var words []transcribe.Word
	for _, s := range tr.Segments {
		words = append(words, s.Words...)
	}
	want := strings.Fields(strings.ToLower(phrase))
	for i := 0; i+len(want) <= len(words); i++ {
		ok := true
		for j, w := range want {
			if strings.ToLower(words[i+j].Word) != w {
				ok = false
				break
			}
		}
		if ok {
			return words[i].StartMS, words[i+len(want)-1].EndMS
		}
	}
	t.Fatalf("phrase %q not in transcript %s", phrase, tr.RecordingID)
	return 0, 0
}

func setupCorpus(t *testing.T) (*Index, corpus) {
	t.Helper()
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	c := newCorpus(t)
	mustApply(t, x, "t1", c.docs(), nil)
	return x, c
}

func TestSearchSpeechSamples(t *testing.T) {
	x, _ := setupCorpus(t)
	admin := adminOf("t1")
	tests := []struct {
		name  string
		req   Request
		q     string
		want  []string // sorted ids, any order
		first string   // when set, the top hit
	}{
		{name: "phrase keeps order", q: `"cancel my account"`, want: []string{"rec-c1"}},
		{name: "words anywhere", q: "cancel account", want: []string{"rec-c1", "rec-c2", "rec-c3"}},
		{name: "exclusion", q: "cancel account -interrupted", want: []string{"rec-c2", "rec-c3"}},
		{name: "phrase exclusion", q: `account -"cancel my account"`, want: []string{"rec-c2", "rec-c3"}},
		{name: "OR", q: "credit OR compliance", want: []string{"rec-a1", "rec-a2", "rec-c3"}},
		{name: "OR binds tighter than AND", q: "thank credit OR compliance", want: []string{"rec-a1", "rec-a2"}},
		{name: "grouping", q: "(credit thirtieth) OR nobody", want: []string{"rec-a1", "rec-c3"}},
		{name: "stemming", q: "cancelled", want: []string{"rec-c1", "rec-c2", "rec-c3"}},
		{name: "case", q: "JUNE", want: []string{"rec-a1"}},
		{name: "possessive and digits", q: `"four one one one"`, want: []string{"rec-c1"}},
		{name: "no match", q: "zanzibar", want: nil},
		{name: "filter session", q: "cancel", req: Request{SessionID: "s2"}, want: []string{"rec-c2"}},
		{name: "filter participant", q: "thank", req: Request{ParticipantID: "agent-alex", SessionID: "s1"}, want: []string{"rec-a1"}},
		{name: "filter department", q: "thank", req: Request{Department: "support"}, want: []string{"rec-a2"}},
		{name: "stemmed call", q: "calling", want: []string{"rec-a1", "rec-a2", "rec-c3"}},
		{name: "filter from", q: "cancel", req: Request{From: corpusStart.Add(time.Hour)}, want: []string{"rec-c2", "rec-c3"}},
		{name: "filter to", q: "cancel", req: Request{To: corpusStart.Add(time.Hour)}, want: []string{"rec-c1"}},
		{name: "filter range", q: "cancel", req: Request{From: corpusStart.Add(time.Hour), To: corpusStart.Add(24 * time.Hour)}, want: []string{"rec-c2"}},
		{name: "from is inclusive", q: "cancel", req: Request{From: corpusStart.Add(26 * time.Hour), To: corpusStart.Add(27 * time.Hour)}, want: []string{"rec-c3"}},
		{name: "to is exclusive", q: "cancel", req: Request{To: corpusStart.Add(1500 * time.Millisecond)}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			r.Access, r.Query = admin, mustQuery(t, tt.q)
			res := mustSearch(t, x, r)
			got := hitIDs(res)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("q=%q: hits %v, want %v", tt.q, got, tt.want)
			}
			if res.Total != uint64(len(tt.want)) {
				t.Fatalf("total %d, want %d", res.Total, len(tt.want))
			}
		})
	}
}

func TestSearchHitTimesSnippetAndFields(t *testing.T) {
	x, c := setupCorpus(t)
	res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, `"cancel my account"`)})
	if len(res.Hits) != 1 {
		t.Fatalf("hits %v", hitIDs(res))
	}
	h := res.Hits[0]
	tr := c.trs["rec-c1"]
	start, end := wordTimes(t, tr, "cancel my account")
	if h.StartMS != start || h.EndMS != end {
		t.Fatalf("moment %d–%d ms, want the words' %d–%d ms", h.StartMS, h.EndMS, start, end)
	}
	if h.MediaOffsetMS() != start-1500 {
		t.Fatalf("media offset %d, want %d (session time minus the recording's start offset)", h.MediaOffsetMS(), start-1500)
	}
	if h.SessionID != "s1" || h.ParticipantID != "cust-dana" || h.Speaker != "Dana" || h.Department != "sales" ||
		!h.RecordedAt.Equal(corpusStart.Add(1500*time.Millisecond)) || h.StartOffsetMS != 1500 {
		t.Fatalf("hit fields %+v", h)
	}
	if len(h.Highlights) != 1 {
		t.Fatalf("highlights %v in %q", h.Highlights, h.Snippet)
	}
	runes := []rune(h.Snippet)
	hl := h.Highlights[0]
	if got := string(runes[hl.Start:hl.End]); got != "cancel my account" {
		t.Fatalf("highlight %q in snippet %q", got, h.Snippet)
	}
	if !strings.Contains(h.SnippetHTML, "<mark>cancel my account</mark>") {
		t.Fatalf("snippet html %q", h.SnippetHTML)
	}
	if len(h.Moments) != 1 || h.Moments[0].StartMS != start || h.Moments[0].EndMS != end {
		t.Fatalf("moments %v", h.Moments)
	}

	// Several moments: "account" occurs twice in rec-c2.
	res = mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "account"), SessionID: "s2"})
	if len(res.Hits) != 1 || len(res.Hits[0].Moments) != 2 {
		t.Fatalf("want rec-c2 with two moments, got %+v", res.Hits)
	}
	m := res.Hits[0].Moments
	if !(m[0].StartMS < m[1].StartMS) || res.Hits[0].StartMS != m[0].StartMS {
		t.Fatalf("moments out of order or best moment not the first of equals: %+v", res.Hits[0])
	}

	// The best moment holds the most distinct query terms.
	res = mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "cancel account"), SessionID: "s2"})
	h = res.Hits[0]
	s2, e2 := wordTimes(t, c.trs["rec-c2"], "cancel the account")
	if h.StartMS != s2 || h.EndMS != e2 {
		t.Fatalf("best moment %d–%d, want %d–%d (cancel the account)", h.StartMS, h.EndMS, s2, e2)
	}
}

func TestSnippetEscapesHTML(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	d := docSpec{rec: "rec-x", session: "s", participant: "p", dept: "d", at: corpusStart,
		text: `the <script>alert(1)</script> & "quoted" refund is done`}.doc()
	mustApply(t, x, "t1", []Document{d}, nil)
	res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "refund")})
	if len(res.Hits) != 1 {
		t.Fatal("no hit")
	}
	h := res.Hits[0].SnippetHTML
	if strings.Contains(h, "<script>") || !strings.Contains(h, "&lt;script&gt;") || !strings.Contains(h, "<mark>refund</mark>") {
		t.Fatalf("snippet html not escaped: %q", h)
	}
}

// rankCorpus: recordings that say "refund" a different number of times
// in texts of the same length.
func rankDocs(tenant, dept string, at time.Time) []Document {
	filler := strings.Fields("we looked at the order and the delivery window for your parcel again today")
	var out []Document
	for i, n := range []int{1, 3, 2, 0} {
		words := slices.Clone(filler)
		for k := range n {
			words[2+k*3] = "refund"
		}
		id := fmt.Sprintf("rank-%d", i)
		out = append(out, docSpec{tenant: tenant, rec: id, session: "rs" + id, participant: "p", dept: dept,
			at: at.Add(time.Duration(i) * time.Minute), text: strings.Join(words, " ")}.doc())
	}
	return out
}

func TestRankingAndTimeSort(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	mustApply(t, x, "t1", rankDocs("t1", "sales", corpusStart), nil)
	q := mustQuery(t, "refund")
	res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: q})
	if got := hitIDs(res); !slices.Equal(got, []string{"rank-1", "rank-2", "rank-0"}) {
		t.Fatalf("relevance order %v, want more occurrences first", got)
	}
	if !(res.Hits[0].Score > res.Hits[1].Score && res.Hits[1].Score > res.Hits[2].Score) {
		t.Fatalf("scores not decreasing: %v %v %v", res.Hits[0].Score, res.Hits[1].Score, res.Hits[2].Score)
	}
	res = mustSearch(t, x, Request{Access: adminOf("t1"), Query: q, Sort: SortTime})
	if got := hitIDs(res); !slices.Equal(got, []string{"rank-2", "rank-1", "rank-0"}) {
		t.Fatalf("time order %v, want newest first", got)
	}
	res = mustSearch(t, x, Request{Access: adminOf("t1"), Query: q, Sort: SortTimeAsc})
	if got := hitIDs(res); !slices.Equal(got, []string{"rank-0", "rank-1", "rank-2"}) {
		t.Fatalf("time_asc order %v, want oldest first", got)
	}
}

func TestPagination(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	var docs []Document
	const n = 23
	for i := range n {
		// repeat the word i%5+1 times so scores tie in groups (cursor ties)
		text := strings.Repeat("thirtieth ", i%5+1) + "of june, contract " + fmt.Sprint(i)
		docs = append(docs, docSpec{rec: fmt.Sprintf("page-%02d", i), session: "s", participant: "p", dept: "d",
			at: corpusStart.Add(time.Duration(i%7) * time.Hour), text: text}.doc())
	}
	mustApply(t, x, "t1", docs, nil)
	for _, sort := range []Sort{SortRelevance, SortTime, SortTimeAsc} {
		t.Run(string(sort), func(t *testing.T) {
			q := mustQuery(t, "thirtieth june")
			var all []Hit
			cursor := ""
			for page := 0; ; page++ {
				res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: q, Sort: sort, Limit: 5, Cursor: cursor})
				if res.Total != n {
					t.Fatalf("total %d, want %d", res.Total, n)
				}
				all = append(all, res.Hits...)
				if res.NextCursor == "" {
					if len(res.Hits) == 0 && page > 0 {
						t.Fatalf("empty last page after a cursor")
					}
					break
				}
				if len(res.Hits) != 5 {
					t.Fatalf("page %d has %d hits with a next cursor", page, len(res.Hits))
				}
				cursor = res.NextCursor
			}
			ids := map[string]bool{}
			for _, h := range all {
				if ids[h.RecordingID] {
					t.Fatalf("%s on two pages", h.RecordingID)
				}
				ids[h.RecordingID] = true
			}
			if len(ids) != n {
				t.Fatalf("%d distinct hits over all pages, want %d", len(ids), n)
			}
			// the pages follow the order of one big page
			one := mustSearch(t, x, Request{Access: adminOf("t1"), Query: q, Sort: sort, Limit: MaxLimit})
			if !slices.Equal(hitIDs(Result{Hits: all}), hitIDs(one)) {
				t.Fatalf("paged order %v\n differs from one page %v", hitIDs(Result{Hits: all}), hitIDs(one))
			}
		})
	}
	// A cursor is bound to its query, order and filters.
	res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "june"), Limit: 2})
	for _, r := range []Request{
		{Access: adminOf("t1"), Query: mustQuery(t, "contract"), Limit: 2, Cursor: res.NextCursor},
		{Access: adminOf("t1"), Query: mustQuery(t, "june"), Limit: 2, Cursor: res.NextCursor, Sort: SortTime},
		{Access: adminOf("t1"), Query: mustQuery(t, "june"), Limit: 2, Cursor: res.NextCursor, SessionID: "s"},
		{Access: adminOf("t1"), Query: mustQuery(t, "june"), Limit: 2, Cursor: "bm90IGEgY3Vyc29y"},
	} {
		if _, err := x.Search(context.Background(), r); !errors.Is(err, ErrCursor) {
			t.Fatalf("cursor reused with %+v: err %v, want ErrCursor", r, err)
		}
	}
}

func TestReindexIsIdempotent(t *testing.T) {
	x := openTestIndex(t, t.TempDir(), testKeys(t))
	d := docSpec{rec: "rec-1", session: "s", participant: "p", dept: "d", at: corpusStart, text: speechSample(t, "call02")}.doc()
	d.Version = "v1"
	for range 3 {
		mustApply(t, x, "t1", []Document{d}, nil)
	}
	n, err := x.Count(context.Background(), "t1")
	if err != nil || n != 1 {
		t.Fatalf("count %d %v after indexing one recording three times", n, err)
	}
	res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "cancel")})
	if len(res.Hits) != 1 {
		t.Fatalf("hits %v", hitIDs(res))
	}
	// a new version replaces the old one
	d2 := docSpec{rec: "rec-1", session: "s", participant: "p", dept: "d", at: corpusStart, text: speechSample(t, "call05")}.doc()
	d2.Version = "v2"
	mustApply(t, x, "t1", []Document{d2}, nil)
	if res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "cancel")}); len(res.Hits) != 0 {
		t.Fatalf("old version still found: %v", hitIDs(res))
	}
	if res := mustSearch(t, x, Request{Access: adminOf("t1"), Query: mustQuery(t, "credit")}); len(res.Hits) != 1 {
		t.Fatalf("new version not found")
	}
}

func TestQueryWithoutSearchableWords(t *testing.T) {
	x, _ := setupCorpus(t)
	for _, q := range []string{"!!!", `"..." -cancel`, "- -"} {
		pq, err := ParseQuery(q)
		if err != nil {
			continue // rejected by the parser already
		}
		_, err = x.Search(context.Background(), Request{Access: adminOf("t1"), Query: pq})
		if !errors.Is(err, ErrQuery) {
			t.Fatalf("%q: err %v, want ErrQuery", q, err)
		}
	}
}

func TestUnknownTenantFindsNothing(t *testing.T) {
	x, _ := setupCorpus(t)
	res := mustSearch(t, x, Request{Access: adminOf("t2"), Query: mustQuery(t, "cancel")})
	if len(res.Hits) != 0 || res.Total != 0 {
		t.Fatalf("tenant t2 found %v", hitIDs(res))
	}
	if _, err := x.tenant(context.Background(), "t2", false); err != nil {
		t.Fatal(err)
	}
	if ts, _ := x.Tenants(); !slices.Equal(ts, []string{"t1"}) {
		t.Fatalf("a search created tenant indexes: %v", ts)
	}
}

func TestNewDocumentSpreadsSegmentsWithoutWordTimes(t *testing.T) {
	tr := transcribe.Transcript{RecordingID: "r", Segments: []transcribe.Segment{
		{StartMS: 1000, EndMS: 2000, Text: "one two three four"},
		{StartMS: 3000, EndMS: 3400, Words: []transcribe.Word{{StartMS: 3000, EndMS: 3400, Word: "five"}}},
	}}
	d := NewDocument(tr, "t", "d", corpusStart, 0, &policy.Access{})
	if len(d.Words) != 5 || d.Words[0].StartMS != 1000 || d.Words[1].StartMS != 1250 || d.Words[3].EndMS != 2000 || d.Words[4].Word != "five" {
		t.Fatalf("words %+v", d.Words)
	}
	f := d.fields()
	words, err := decodeWords(f[fieldWords].(string), f[fieldText].(string))
	if err != nil || len(words) != 5 {
		t.Fatalf("word table: %v %v", words, err)
	}
	for i, w := range words {
		if w.start != d.Words[i].StartMS || w.end != d.Words[i].EndMS ||
			f[fieldText].(string)[w.off:w.off+w.length] != d.Words[i].Word {
			t.Fatalf("word %d: %+v vs %+v", i, w, d.Words[i])
		}
	}
}
