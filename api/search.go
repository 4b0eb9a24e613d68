package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe/search"
)

// SearchIndex is what GET /v1/search needs from the transcript index
// (search.Index implements it).
type SearchIndex interface {
	// Search runs a scoped query (the scope is a filter inside the index
	// query, so pages hold only what the caller may read).
	Search(ctx context.Context, r search.Request) (search.Result, error)
	// QueryDigest returns the keyed digest of a query text recorded in the
	// audit log instead of the text.
	QueryDigest(ctx context.Context, tenant, canonical string) (string, error)
}

// SearchOptions configure the search endpoint.
type SearchOptions struct {
	DB     *gorm.DB // audit log
	Index  SearchIndex
	Logger *slog.Logger
	Clock  func() time.Time
}

// SearchAPI serves GET /v1/search (SPEC section 10, docs/search.md).
type SearchAPI struct {
	srv  *Server
	opts SearchOptions
	log  *slog.Logger
}

// NewSearchAPI returns the search endpoint; Register adds it to srv.
func NewSearchAPI(srv *Server, opts SearchOptions) *SearchAPI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &SearchAPI{srv: srv, opts: opts, log: opts.Logger.With("component", "search_api")}
}

// Register adds GET /v1/search to the server.
func (s *SearchAPI) Register() {
	s.srv.Handle(Route{Method: "GET", Pattern: "/v1/search", Perm: auth.Search, Handler: s.search,
		Summary: "search transcripts: words, phrases, exclusions, OR, filters; scoped hits with times, snippet and media link"})
}

// SearchResponse is the answer of GET /v1/search.
type SearchResponse struct {
	Hits []SearchHit `json:"hits"`
	// Total counts every matching recording the caller may read.
	Total      uint64 `json:"total"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// SearchHit is one matching recording.
type SearchHit struct {
	RecordingID   string    `json:"recording_id"`
	SessionID     string    `json:"session_id"`
	ParticipantID string    `json:"participant_id"`
	Speaker       string    `json:"speaker"`
	Department    string    `json:"department,omitempty"`
	RecordedAt    time.Time `json:"recorded_at"`
	// StartMS and EndMS span the best-matching words on the session clock.
	StartMS int64 `json:"start_ms"`
	EndMS   int64 `json:"end_ms"`
	// MediaOffsetMS is StartMS within the recording's media; MediaURL is
	// the media endpoint with that time as a media fragment (#t=seconds).
	MediaOffsetMS int64  `json:"media_offset_ms"`
	MediaURL      string `json:"media_url"`
	TranscriptURL string `json:"transcript_url"`
	// Score is the relevance (sort=relevance only).
	Score float64 `json:"score,omitempty"`
	// Snippet is plain text; Highlights are [start, end) offsets in
	// Unicode code points of the matched words in it. SnippetHTML is the
	// same text HTML-escaped with the matches in <mark>…</mark>.
	Snippet     string          `json:"snippet"`
	Highlights  []search.Range  `json:"highlights"`
	SnippetHTML string          `json:"snippet_html"`
	Moments     []search.Moment `json:"moments"`
}

// searchParams are the query parameters of GET /v1/search.
var searchParams = []string{"q", "session_id", "participant_id", "department", "from", "to", "sort", "limit", "cursor"}

// searchRequestError is a bad parameter of a search.
type searchRequestError struct{ field, reason string }

func (e *searchRequestError) Error() string { return e.field + ": " + e.reason }

// parseSearchRequest reads the parameters (all but q and the caller).
func parseSearchRequest(r *http.Request) (q string, req search.Request, err error) {
	v, perr := url.ParseQuery(r.URL.RawQuery)
	if perr != nil {
		return "", req, &searchRequestError{"query", "malformed query string"}
	}
	for k, vals := range v {
		known := false
		for _, a := range searchParams {
			known = known || k == a
		}
		if !known {
			return "", req, &searchRequestError{k, "unknown query parameter (known: " + strings.Join(searchParams, ", ") + ")"}
		}
		if len(vals) > 1 {
			return "", req, &searchRequestError{k, "given more than once"}
		}
	}
	q = v.Get("q")
	if strings.TrimSpace(q) == "" {
		return "", req, &searchRequestError{"q", "required: words or \"phrases\" to search for"}
	}
	for _, k := range []string{"session_id", "participant_id"} {
		if s := v.Get(k); s != "" && !meta.ValidID(s) {
			return "", req, &searchRequestError{k, "not a valid id"}
		}
	}
	req.SessionID, req.ParticipantID = v.Get("session_id"), v.Get("participant_id")
	req.Department = v.Get("department")
	if len(req.Department) > 128 || strings.IndexFunc(req.Department, unicode.IsControl) >= 0 {
		return "", req, &searchRequestError{"department", "at most 128 printable bytes"}
	}
	for _, k := range []string{"from", "to"} {
		s := v.Get(k)
		if s == "" {
			continue
		}
		t, terr := time.Parse(time.RFC3339Nano, s)
		if terr != nil {
			return "", req, &searchRequestError{k, "not an RFC 3339 time such as 2026-01-31T09:00:00Z"}
		}
		if k == "from" {
			req.From = t.UTC()
		} else {
			req.To = t.UTC()
		}
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		return "", req, &searchRequestError{"to", "must be after from"}
	}
	switch s := search.Sort(v.Get("sort")); s {
	case "", search.SortRelevance, search.SortTime, search.SortTimeAsc:
		req.Sort = s
	default:
		return "", req, &searchRequestError{"sort", "must be relevance, time (newest first) or time_asc"}
	}
	if s := v.Get("limit"); s != "" {
		n, lerr := strconv.Atoi(s)
		if lerr != nil || n < 1 || n > search.MaxLimit {
			return "", req, &searchRequestError{"limit", fmt.Sprintf("must be a whole number from 1 to %d", search.MaxLimit)}
		}
		req.Limit = n
	}
	req.Cursor = v.Get("cursor")
	return q, req, nil
}

// mediaURL returns the media endpoint of a recording with a media
// fragment at offsetMS (seconds, as browsers' players expect).
func mediaURL(recordingID string, offsetMS int64) string {
	return "/v1/recordings/" + recordingID + "/media#t=" + strconv.FormatFloat(float64(offsetMS)/1000, 'f', -1, 64)
}

func (s *SearchAPI) search(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !Authorize(w, r, p, auth.Search, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	text, req, err := parseSearchRequest(r)
	if err != nil {
		var re *searchRequestError
		errors.As(err, &re)
		s.writeBadRequest(w, r, p, text, "invalid-request", re.field, re.reason)
		return
	}
	q, err := search.ParseQuery(text)
	if err != nil {
		var qe *search.QueryError
		errors.As(err, &qe)
		s.writeBadRequest(w, r, p, text, "invalid-query", "q", qe.Error())
		return
	}
	vis := auth.Scope(p)
	req.Access = search.Access{Tenant: vis.Tenant, AllDepartments: vis.AllDepartments, Departments: vis.Departments,
		Role: string(p.Role), Department: p.Department}
	req.Query = q
	ctx := r.Context()
	digest, err := s.opts.Index.QueryDigest(ctx, p.Tenant, q.String())
	if err != nil {
		s.log.Error("search query digest", "err", err)
		WriteProblem(w, r, http.StatusServiceUnavailable, "search-unavailable", "the search index is not available; try again")
		return
	}
	details := searchDetails(req, q)
	res, err := s.opts.Index.Search(ctx, req)
	if err != nil {
		var qe *search.QueryError
		switch {
		case errors.As(err, &qe):
			details["status"] = http.StatusBadRequest
			s.record(r, p, digest, audit.OutcomeError, details)
			writeSearchProblem(w, r, "invalid-query", "q", qe.Error())
		case errors.Is(err, search.ErrCursor):
			details["status"] = http.StatusBadRequest
			s.record(r, p, digest, audit.OutcomeError, details)
			writeSearchProblem(w, r, "invalid-request", "cursor", "invalid cursor: use next_cursor of the previous page with the same query and filters")
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		default:
			s.log.Error("search failed", "err", err)
			details["status"] = http.StatusServiceUnavailable
			s.record(r, p, digest, audit.OutcomeError, details)
			WriteProblem(w, r, http.StatusServiceUnavailable, "search-unavailable", "the search index is not available; try again")
		}
		return
	}
	details["hits"] = len(res.Hits)
	details["total"] = res.Total
	if err := s.record(r, p, digest, audit.OutcomeSuccess, details); err != nil {
		WriteProblem(w, r, http.StatusServiceUnavailable, "audit-unavailable", "the search could not be recorded in the audit log; try again")
		return
	}
	out := SearchResponse{Hits: make([]SearchHit, 0, len(res.Hits)), Total: res.Total, NextCursor: res.NextCursor}
	for _, h := range res.Hits {
		sh := SearchHit{
			RecordingID: h.RecordingID, SessionID: h.SessionID, ParticipantID: h.ParticipantID,
			Speaker: h.Speaker, Department: h.Department, RecordedAt: h.RecordedAt,
			StartMS: h.StartMS, EndMS: h.EndMS, MediaOffsetMS: h.MediaOffsetMS(),
			MediaURL:      mediaURL(h.RecordingID, h.MediaOffsetMS()),
			TranscriptURL: "/v1/recordings/" + h.RecordingID + "/transcript",
			Snippet:       h.Snippet, Highlights: h.Highlights, SnippetHTML: h.SnippetHTML, Moments: h.Moments,
		}
		if req.Sort == "" || req.Sort == search.SortRelevance {
			sh.Score = h.Score
		}
		out.Hits = append(out.Hits, sh)
	}
	w.Header().Set("Cache-Control", "private, no-store")
	WriteJSON(w, http.StatusOK, out)
}

// searchDetails are the audit details of a search: filters and paging,
// never the query text (its keyed digest is the entry's target).
func searchDetails(req search.Request, q *search.Query) map[string]any {
	d := map[string]any{"terms": q.Terms(), "page": req.Cursor != ""}
	f := map[string]any{}
	if req.SessionID != "" {
		f["session_id"] = req.SessionID
	}
	if req.ParticipantID != "" {
		f["participant_id"] = req.ParticipantID
	}
	if req.Department != "" {
		f["department"] = req.Department
	}
	if !req.From.IsZero() {
		f["from"] = req.From.Format(time.RFC3339Nano)
	}
	if !req.To.IsZero() {
		f["to"] = req.To.Format(time.RFC3339Nano)
	}
	if len(f) > 0 {
		d["filters"] = f
	}
	if req.Sort != "" {
		d["sort"] = string(req.Sort)
	}
	if req.Limit != 0 {
		d["limit"] = req.Limit
	}
	return d
}

// record appends the search's audit entry; target is the keyed digest of
// the query.
func (s *SearchAPI) record(r *http.Request, p auth.Principal, digest, outcome string, details map[string]any) error {
	_, err := audit.Append(r.Context(), s.opts.DB, audit.Entry{
		Tenant: p.Tenant, Actor: p.Actor(), Role: string(p.Role), Action: audit.ActionSearch,
		Target: "query:" + digest, Source: s.srv.SourceAddress(r), Outcome: outcome, Details: details,
		Time: s.opts.Clock(),
	})
	if err != nil {
		s.log.Error("audit append failed", "action", audit.ActionSearch, "err", err)
	}
	return err
}

// writeBadRequest records a rejected search (the digest of the raw text:
// it did not parse) and answers 400.
func (s *SearchAPI) writeBadRequest(w http.ResponseWriter, r *http.Request, p auth.Principal, text, kind, field, reason string) {
	details := map[string]any{"status": http.StatusBadRequest, "field": field}
	target := "none"
	if text != "" {
		if d, err := s.opts.Index.QueryDigest(r.Context(), p.Tenant, "raw\x00"+text); err == nil {
			target = d
		}
	}
	s.record(r, p, target, audit.OutcomeError, details)
	writeSearchProblem(w, r, kind, field, reason)
}

func writeSearchProblem(w http.ResponseWriter, r *http.Request, kind, field, reason string) {
	WriteProblemDoc(w, r, Problem{Type: ProblemTypeBase + kind, Status: http.StatusBadRequest,
		Detail: field + ": " + reason, Errors: []FieldError{{Field: field, Reason: reason}}})
}
