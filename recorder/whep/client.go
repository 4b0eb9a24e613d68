package whep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/pion/sdp/v3"
)

// MaxSDPBytes is the largest answer accepted.
const MaxSDPBytes = 64 << 10

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 16 << 10

// Errors of Subscribe. Each is wrapped with the redacted endpoint.
var (
	// ErrBadURL: the endpoint is not an absolute http(s) URL.
	ErrBadURL = errors.New("whep: endpoint is not an absolute http or https URL")
	// ErrUnreachable: no HTTP answer (connection refused, DNS, timeout).
	ErrUnreachable = errors.New("whep: endpoint unreachable")
	// ErrBadAnswer: a 201 that is not a usable answer (no Location, not
	// application/sdp, empty, too large, not SDP).
	ErrBadAnswer = errors.New("whep: bad answer")
	// ErrNoMedia: the answer sends no audio or video (every media section
	// rejected, inactive or receive-only).
	ErrNoMedia = errors.New("whep: answer has no media to receive")
)

// HTTPError is an answer of the endpoint other than the expected one.
type HTTPError struct {
	// Op is "subscribe" (the POST) or "delete".
	Op string
	// Endpoint is the redacted URL that answered.
	Endpoint string
	Status   int
	// Detail is the problem+json title and detail, or the start of a
	// plain body, with control characters removed (at most 256 bytes).
	Detail string
	// RetryAfter is the Retry-After delay (503, 429), or 0.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("whep: %s %s: HTTP %d %s", e.Op, e.Endpoint, e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Client subscribes to WHEP endpoints. The zero value is usable.
type Client struct {
	// HTTP sends the requests (default: a client with a 15 s timeout; Go's
	// client drops the Authorization header on a redirect to another
	// domain).
	HTTP *http.Client
	// UserAgent is sent when not empty.
	UserAgent string
}

// Resource is a subscription the endpoint created (its Location).
type Resource struct {
	// Location is the absolute URL of the WHEP resource.
	Location string
	// Answer is the SDP answer.
	Answer string
	// ETag is the resource's entity tag, if the endpoint sent one.
	ETag string

	client *Client
	token  string
}

var defaultHTTP = &http.Client{Timeout: 15 * time.Second}

func (c *Client) http() *http.Client {
	if c != nil && c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// ParseURL checks that s is an absolute http(s) URL with a host.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %q", ErrBadURL, Redact(s))
	}
	return u, nil
}

// Redact returns u without user info, query and fragment (which may carry
// credentials), for logs and errors. Unparseable input gives "(invalid URL)".
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// Subscribe POSTs offer to endpoint (Content-Type application/sdp,
// Authorization: Bearer token when token is not empty) and returns the
// resource on 201 Created with an answer that has media to receive.
// Errors wrap ErrBadURL, ErrUnreachable, ErrBadAnswer or ErrNoMedia, or are
// an *HTTPError; none contains the token.
func (c *Client) Subscribe(ctx context.Context, endpoint, token, offer string) (*Resource, error) {
	u, err := ParseURL(endpoint)
	if err != nil {
		return nil, err
	}
	red := Redact(endpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(offer))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadURL, red)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Accept", "application/sdp, application/problem+json")
	c.headers(req, token)
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnreachable, red, netReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, httpError("subscribe", red, resp)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%w: %s: 201 without a Location header", ErrBadAnswer, red)
	}
	lu, err := resp.Request.URL.Parse(loc)
	if err != nil || (lu.Scheme != "http" && lu.Scheme != "https") {
		return nil, fmt.Errorf("%w: %s: Location is not a URL", ErrBadAnswer, red)
	}
	res := &Resource{Location: lu.String(), ETag: resp.Header.Get("ETag"), client: c, token: token}
	fail := func(err error) (*Resource, error) {
		// The endpoint created a resource we will not use.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = res.Delete(dctx)
		return nil, err
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "application/sdp" {
		return fail(fmt.Errorf("%w: %s: Content-Type %q, want application/sdp", ErrBadAnswer, red, printable(ct, 64)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxSDPBytes+1))
	if err != nil {
		return fail(fmt.Errorf("%w: %s: read answer: %s", ErrUnreachable, red, netReason(err)))
	}
	if len(body) > MaxSDPBytes {
		return fail(fmt.Errorf("%w: %s: answer larger than %d bytes", ErrBadAnswer, red, MaxSDPBytes))
	}
	if err := CheckAnswer(body); err != nil {
		return fail(fmt.Errorf("%w (%s)", err, red))
	}
	res.Answer = string(body)
	return res, nil
}

// CheckAnswer checks that an SDP answer parses and sends audio or video:
// at least one audio or video section with a port, a DTLS-SRTP profile
// and direction sendonly or sendrecv. Errors wrap ErrBadAnswer or
// ErrNoMedia.
func CheckAnswer(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return fmt.Errorf("%w: empty answer", ErrBadAnswer)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(raw)); err != nil {
		return fmt.Errorf("%w: not SDP", ErrBadAnswer)
	}
	sessDir := "sendrecv"
	for _, a := range sd.Attributes {
		if isDirection(a.Key) {
			sessDir = a.Key
		}
	}
	sections := 0
	for _, md := range sd.MediaDescriptions {
		if md == nil || (md.MediaName.Media != "audio" && md.MediaName.Media != "video") {
			continue
		}
		sections++
		if md.MediaName.Port.Value == 0 {
			continue
		}
		dir := sessDir
		for _, a := range md.Attributes {
			if isDirection(a.Key) {
				dir = a.Key
			}
		}
		if dir != "sendonly" && dir != "sendrecv" {
			continue
		}
		secure := false
		for _, p := range md.MediaName.Protos {
			secure = secure || p == "SAVPF" || p == "SAVP"
		}
		if !secure {
			return fmt.Errorf("%w: %s section uses plain RTP", ErrBadAnswer, md.MediaName.Media)
		}
		return nil
	}
	return fmt.Errorf("%w: %d audio/video sections, none sends", ErrNoMedia, sections)
}

func isDirection(k string) bool {
	return k == "sendrecv" || k == "sendonly" || k == "recvonly" || k == "inactive"
}

// Delete ends the subscription. A 404 counts as done (the server already
// forgot it, e.g. after a restart).
func (r *Resource) Delete(ctx context.Context) error {
	if r == nil || r.Location == "" {
		return nil
	}
	red := Redact(r.Location)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.Location, nil)
	if err != nil {
		return fmt.Errorf("whep: delete %s: %w", red, err)
	}
	r.client.headers(req, r.token)
	resp, err := r.client.http().Do(req)
	if err != nil {
		return fmt.Errorf("%w: delete %s: %s", ErrUnreachable, red, netReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
		return httpError("delete", red, resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

func (c *Client) headers(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c != nil && c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
}

// netReason describes a transport error without the URL (a *url.Error
// quotes the whole URL, query included).
func netReason(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		if oe.Err != nil {
			return printable(oe.Op+": "+oe.Err.Error(), 200)
		}
	}
	return printable(err.Error(), 200)
}

// problem is an RFC 9457 body.
type problem struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func httpError(op, endpoint string, resp *http.Response) *HTTPError {
	e := &HTTPError{Op: op, Endpoint: endpoint, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "application/problem+json" || ct == "application/json" {
		var p problem
		if json.Unmarshal(body, &p) == nil && (p.Title != "" || p.Detail != "") {
			e.Detail = printable(strings.TrimPrefix(strings.Join([]string{p.Title, p.Detail}, ": "), ": "), 256)
			return e
		}
	}
	e.Detail = printable(strings.TrimSpace(string(body)), 256)
	return e
}

func retryAfter(v string) time.Duration {
	var s uint
	if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &s); err == nil && s < 3600 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// printable keeps at most n bytes of s with control characters replaced.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
