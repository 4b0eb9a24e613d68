package whip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Problem is an RFC 9457 problem+json body.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title,omitempty"`
	Status   int    `json:"status,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// HTTPError is a WHIP endpoint's answer other than the expected one.
type HTTPError struct {
	// Op is "publish" (the POST) or "delete".
	Op     string
	Status int
	// Problem is the parsed problem+json body, or nil.
	Problem *Problem
	// Body is the start of a body that is not problem+json.
	Body string
	// RetryAfter is the Retry-After header's delay (on 503 or 429), or 0.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "whip: %s: HTTP %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Problem != nil {
		if e.Problem.Title != "" {
			b.WriteString(": " + e.Problem.Title)
		}
		if e.Problem.Detail != "" {
			b.WriteString(": " + e.Problem.Detail)
		}
	} else if e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

// RetryAfter returns the delay a WHIP endpoint asked for with Retry-After
// (typically with 503 when it sheds load), if err carries one.
func RetryAfter(err error) (time.Duration, bool) {
	if he, ok := errors.AsType[*HTTPError](err); ok && he.RetryAfter > 0 {
		return he.RetryAfter, true
	}
	return 0, false
}

// StatusCode returns the HTTP status of an *HTTPError in err's chain, or 0.
func StatusCode(err error) int {
	if he, ok := errors.AsType[*HTTPError](err); ok {
		return he.Status
	}
	return 0
}

const maxErrorBody = 64 << 10

// httpError reads an unexpected response into an *HTTPError.
func httpError(op string, resp *http.Response, now time.Time) *HTTPError {
	e := &HTTPError{Op: op, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "application/problem+json" || ct == "application/json" {
		var p Problem
		if json.Unmarshal(body, &p) == nil && (p.Title != "" || p.Detail != "" || p.Type != "") {
			e.Problem = &p
			return e
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	e.Body = s
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}
