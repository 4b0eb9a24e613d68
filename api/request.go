package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/custodian/custodian/storage/meta"
)

// Page sizes of list endpoints.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ErrBadRequest is wrapped by every *RequestError.
var ErrBadRequest = errors.New("api: bad request")

// RequestError is a client mistake in a request: answered 400 (or Status)
// with a problem naming the field.
type RequestError struct {
	Status int    // 0: 400
	Kind   string // problem type slug; "" : invalid-request
	Field  string // query parameter or JSON field, when one is at fault
	Reason string
}

func (e *RequestError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return e.Reason
}

// Unwrap returns ErrBadRequest.
func (e *RequestError) Unwrap() error { return ErrBadRequest }

func badField(field, format string, args ...any) *RequestError {
	return &RequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// writeRequestError answers err (a *RequestError, else 400).
func writeRequestError(w http.ResponseWriter, r *http.Request, err error) {
	var re *RequestError
	if !errors.As(err, &re) {
		re = &RequestError{Reason: err.Error()}
	}
	status, kind := re.Status, re.Kind
	if status == 0 {
		status = http.StatusBadRequest
	}
	if kind == "" {
		kind = "invalid-request"
	}
	p := Problem{Type: ProblemTypeBase + kind, Status: status, Detail: re.Error()}
	if re.Field != "" {
		p.Errors = []FieldError{{Field: re.Field, Reason: re.Reason}}
	}
	WriteProblemDoc(w, r, p)
}

// DecodeJSON strictly decodes a JSON request body into dst: the media type
// must be application/json (415 otherwise), the body one JSON value of at
// most the router's body limit (413), with no unknown fields and nothing
// after it (400). Errors are *RequestError.
func DecodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &RequestError{Status: http.StatusUnsupportedMediaType, Kind: "unsupported-media-type",
				Reason: "the body must be application/json"}
		}
	}
	if r.Body == nil {
		return &RequestError{Reason: "a JSON body is required"}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &RequestError{Status: http.StatusRequestEntityTooLarge, Kind: "body-too-large",
				Reason: fmt.Sprintf("the body exceeds %d bytes", mbe.Limit)}
		}
		return &RequestError{Reason: "reading the body failed"}
	}
	return decodeJSONBytes(body, dst)
}

func decodeJSONBytes(body []byte, dst any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &RequestError{Reason: "a JSON body is required"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &RequestError{Reason: "malformed JSON: data after the JSON value"}
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &RequestError{Reason: fmt.Sprintf("malformed JSON at byte %d", se.Offset)}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return badField(field, "must be %s", jsonKind(te.Type.Kind().String()))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &RequestError{Reason: "malformed JSON: unexpected end"}
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badField(strings.Trim(f, `"`), "unknown field")
	}
	return &RequestError{Reason: "malformed JSON"}
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	default:
		return "a number"
	}
}

// Query is a request's query string, checked strictly: every parameter
// must be one the endpoint knows and appear at most once.
type Query struct{ v url.Values }

// ParseQuery parses r's query string, allowing only the named parameters.
func ParseQuery(r *http.Request, allowed ...string) (Query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return Query{}, &RequestError{Reason: "malformed query string"}
	}
	for k, vals := range v {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			return Query{}, badField(k, "unknown query parameter (known: %s)", strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return Query{}, badField(k, "given more than once")
		}
	}
	return Query{v: v}, nil
}

// String returns parameter k ("" when absent).
func (q Query) String(k string) string { return q.v.Get(k) }

// ID returns parameter k, which must satisfy meta.ValidID when present.
func (q Query) ID(k string) (string, error) {
	s := q.v.Get(k)
	if s != "" && !meta.ValidID(s) {
		return "", badField(k, "not a valid id")
	}
	return s, nil
}

// Text returns parameter k, at most max printable characters.
func (q Query) Text(k string, max int) (string, error) {
	s := q.v.Get(k)
	if err := checkText(s, max); err != nil {
		return "", badField(k, "%s", err)
	}
	return s, nil
}

func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("at most %d bytes", max)
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
		return errors.New("control characters or invalid UTF-8")
	}
	return nil
}

// Time returns parameter k as an RFC 3339 time (zero when absent).
func (q Query) Time(k string) (time.Time, error) {
	s := q.v.Get(k)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badField(k, "not an RFC 3339 time such as 2026-01-31T09:00:00Z")
	}
	return t.UTC(), nil
}

// OneOf returns parameter k, which must be one of the values when present.
func (q Query) OneOf(k string, values ...string) (string, error) {
	s := q.v.Get(k)
	if s == "" {
		return "", nil
	}
	for _, v := range values {
		if s == v {
			return s, nil
		}
	}
	return "", badField(k, "must be one of %s", strings.Join(values, ", "))
}

// Limit returns the page size: parameter "limit" (1..max), else def.
func (q Query) Limit(def, max int) (int, error) {
	s := q.v.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, badField("limit", "must be a whole number from 1 to %d", max)
	}
	return n, nil
}

// Cursor returns the position encoded in parameter "cursor" by
// EncodeCursor with the same kind ("" when absent).
func (q Query) Cursor(kind string) (string, error) {
	s := q.v.Get("cursor")
	if s == "" {
		return "", nil
	}
	pos, err := DecodeCursor(kind, s)
	if err != nil {
		return "", badField("cursor", "invalid cursor: use next_cursor of the previous page unchanged")
	}
	return pos, nil
}

// cursorVersion starts every cursor, so the format can change.
const cursorVersion = "c1"

// ErrInvalidCursor is returned by DecodeCursor for a cursor this API did
// not issue (for this list).
var ErrInvalidCursor = errors.New("api: invalid cursor")

// EncodeCursor returns an opaque cursor for position pos (an id) of a list
// of kind ("recordings", "tokens").
func EncodeCursor(kind, pos string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + ":" + kind + ":" + pos))
}

// DecodeCursor returns the position of a cursor made by EncodeCursor for
// the same kind, or ErrInvalidCursor.
func DecodeCursor(kind, c string) (string, error) {
	if len(c) > 512 {
		return "", ErrInvalidCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", ErrInvalidCursor
	}
	pos, ok := strings.CutPrefix(string(b), cursorVersion+":"+kind+":")
	if !ok || !meta.ValidID(pos) {
		return "", ErrInvalidCursor
	}
	return pos, nil
}

// PathID returns path parameter name, which must satisfy meta.ValidID
// (so no id can traverse a path or inject a key).
func PathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if !meta.ValidID(id) {
		return "", &RequestError{Kind: "invalid-id", Field: name,
			Reason: "not a valid id: 1 to 128 letters, digits, '-', '_', '.', ':' or '@', not starting with '.'"}
	}
	return id, nil
}
