package janus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors of the client.
var (
	// ErrUnreachable: Janus did not answer over HTTP.
	ErrUnreachable = errors.New("janus: unreachable")
	// ErrNoSession: Janus does not know the session (it timed out, or Janus
	// restarted). Attach again.
	ErrNoSession = errors.New("janus: no such session")
	// ErrBadResponse: an answer that is not the Janus API's JSON.
	ErrBadResponse = errors.New("janus: bad response")
)

// Janus API error codes the client classifies.
const (
	codeNoSession = 458
	codeNoHandle  = 459
)

// APIError is an error answer of the Janus core ({"janus": "error"}).
type APIError struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func (e *APIError) Error() string { return fmt.Sprintf("janus: error %d: %s", e.Code, e.Reason) }

// Is makes a 458 answer match ErrNoSession.
func (e *APIError) Is(target error) bool { return target == ErrNoSession && e.Code == codeNoSession }

// PluginError is an error a plugin reported in its data (VideoRoom's
// error_code and error).
type PluginError struct {
	Code   int
	Reason string
}

func (e *PluginError) Error() string {
	return fmt.Sprintf("janus: videoroom error %d: %s", e.Code, e.Reason)
}

// JSEP is an SDP offer or answer carried by a Janus message.
type JSEP struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// Message is a Janus API message: a response or an event.
type Message struct {
	Janus       string      `json:"janus"`
	Transaction string      `json:"transaction,omitempty"`
	SessionID   uint64      `json:"session_id,omitempty"`
	Sender      uint64      `json:"sender,omitempty"`
	Data        *idData     `json:"data,omitempty"`
	Error       *APIError   `json:"error,omitempty"`
	PluginData  *PluginData `json:"plugindata,omitempty"`
	JSEP        *JSEP       `json:"jsep,omitempty"`
	// Reason is the reason of a hangup.
	Reason string `json:"reason,omitempty"`
}

type idData struct {
	ID uint64 `json:"id"`
}

// PluginData is a plugin's part of a message.
type PluginData struct {
	Plugin string          `json:"plugin"`
	Data   json.RawMessage `json:"data"`
}

// Info is what GET /info says about the server.
type Info struct {
	Name           string `json:"name"`
	VersionString  string `json:"version_string"`
	SessionTimeout int    `json:"session-timeout"`
	APISecret      bool   `json:"api_secret"`
}

// Client talks to one Janus server's HTTP API. The zero value is not
// usable: set URL.
type Client struct {
	// URL is the API's base, e.g. http://127.0.0.1:8088/janus.
	URL string
	// Secret is the API secret (janus.jcfg api_secret), sent as apisecret.
	// Never logged.
	Secret string
	// HTTP sends requests (default: a client with a 10 s timeout; long
	// polls use the context only).
	HTTP *http.Client
}

var (
	defaultHTTP = &http.Client{Timeout: 10 * time.Second}
	pollHTTP    = &http.Client{}
)

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

func transaction() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// post sends body (with janus, transaction and apisecret added) to path
// under the base URL and decodes the answer.
func (c *Client) post(ctx context.Context, path string, body map[string]any) (Message, error) {
	if body["transaction"] == nil {
		body["transaction"] = transaction()
	}
	if c.Secret != "" {
		body["apisecret"] = c.Secret
	}
	b, err := json.Marshal(body)
	if err != nil {
		return Message{}, fmt.Errorf("janus: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return Message{}, fmt.Errorf("janus: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %s: %s", ErrUnreachable, c.redacted(), netReason(err))
	}
	defer resp.Body.Close()
	return decodeOne(resp)
}

// redacted is the base URL without user info or query.
func (c *Client) redacted() string {
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

func decodeOne(resp *http.Response) (Message, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Message{}, fmt.Errorf("%w: read: %s", ErrUnreachable, netReason(err))
	}
	if resp.StatusCode != http.StatusOK {
		return Message{}, fmt.Errorf("%w: HTTP %d", ErrBadResponse, resp.StatusCode)
	}
	m, err := ParseMessage(b)
	if err != nil {
		return Message{}, err
	}
	if m.Janus == "error" {
		if m.Error == nil {
			return m, fmt.Errorf("%w: error without a reason", ErrBadResponse)
		}
		return m, m.Error
	}
	return m, nil
}

// ParseMessage decodes one Janus message.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil || m.Janus == "" {
		return Message{}, fmt.Errorf("%w: not a Janus message", ErrBadResponse)
	}
	return m, nil
}

// ParseMessages decodes a long poll's answer: one message or an array.
func ParseMessages(b []byte) ([]Message, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var ms []Message
		if err := json.Unmarshal(b, &ms); err != nil {
			return nil, fmt.Errorf("%w: not a Janus event list", ErrBadResponse)
		}
		for _, m := range ms {
			if m.Janus == "" {
				return nil, fmt.Errorf("%w: event without a type", ErrBadResponse)
			}
		}
		return ms, nil
	}
	m, err := ParseMessage(b)
	if err != nil {
		return nil, err
	}
	return []Message{m}, nil
}

// Info reads GET {URL}/info.
func (c *Client) Info(ctx context.Context) (Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/info", nil)
	if err != nil {
		return Info{}, fmt.Errorf("janus: %w", err)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %s: %s", ErrUnreachable, c.redacted(), netReason(err))
	}
	defer resp.Body.Close()
	var info Info
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &info) != nil {
		return Info{}, fmt.Errorf("%w: GET /info: HTTP %d", ErrBadResponse, resp.StatusCode)
	}
	return info, nil
}

// Session is a Janus session.
type Session struct {
	c  *Client
	ID uint64

	mu      sync.Mutex
	waiters map[string]chan Message // by transaction
	handles map[uint64]*Handle
}

// Create creates a session.
func (c *Client) Create(ctx context.Context) (*Session, error) {
	m, err := c.post(ctx, "", map[string]any{"janus": "create"})
	if err != nil {
		return nil, err
	}
	if m.Janus != "success" || m.Data == nil || m.Data.ID == 0 {
		return nil, fmt.Errorf("%w: create answered %q", ErrBadResponse, m.Janus)
	}
	return &Session{c: c, ID: m.Data.ID, waiters: map[string]chan Message{}, handles: map[uint64]*Handle{}}, nil
}

func (s *Session) path() string { return "/" + strconv.FormatUint(s.ID, 10) }

// Keepalive keeps the session from timing out.
func (s *Session) Keepalive(ctx context.Context) error {
	_, err := s.c.post(ctx, s.path(), map[string]any{"janus": "keepalive"})
	return err
}

// Destroy ends the session (its handles detach).
func (s *Session) Destroy(ctx context.Context) error {
	_, err := s.c.post(ctx, s.path(), map[string]any{"janus": "destroy"})
	return err
}

// Attach attaches a plugin handle. Its events are delivered by Dispatch.
func (s *Session) Attach(ctx context.Context, plugin string) (*Handle, error) {
	m, err := s.c.post(ctx, s.path(), map[string]any{"janus": "attach", "plugin": plugin})
	if err != nil {
		return nil, err
	}
	if m.Janus != "success" || m.Data == nil || m.Data.ID == 0 {
		return nil, fmt.Errorf("%w: attach answered %q", ErrBadResponse, m.Janus)
	}
	h := &Handle{s: s, ID: m.Data.ID, Events: make(chan Message, 64)}
	s.mu.Lock()
	s.handles[h.ID] = h
	s.mu.Unlock()
	return h, nil
}

// Poll long-polls the session's events (Janus answers after at most 30 s,
// with a keepalive when there is nothing). It does not dispatch them.
func (s *Session) Poll(ctx context.Context, maxEvents int) ([]Message, error) {
	q := url.Values{"maxev": {strconv.Itoa(maxEvents)}, "rid": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	if s.c.Secret != "" {
		q.Set("apisecret", s.c.Secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.c.URL, "/")+s.path()+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("janus: %w", err)
	}
	hc := pollHTTP
	if s.c.HTTP != nil {
		hc = &http.Client{Transport: s.c.HTTP.Transport}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnreachable, s.c.redacted(), netReason(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read events: %s", ErrUnreachable, netReason(err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: poll: HTTP %d", ErrBadResponse, resp.StatusCode)
	}
	ms, err := ParseMessages(b)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Janus == "error" && m.Error != nil {
			return nil, m.Error
		}
	}
	return ms, nil
}

// Dispatch delivers an event to the request waiting for its transaction,
// else to its handle's Events. Events of unknown (detached) handles are
// dropped; it returns false only when the handle's channel is full, so
// the caller can log it.
func (s *Session) Dispatch(m Message) bool {
	s.mu.Lock()
	w := s.waiters[m.Transaction]
	h := s.handles[m.Sender]
	s.mu.Unlock()
	if w != nil && m.Janus != "ack" {
		select {
		case w <- m:
			return true
		default:
		}
	}
	if h == nil {
		return true
	}
	select {
	case h.Events <- m:
		return true
	default:
		return false
	}
}

// Handle is a plugin handle. Events that no request waits for (plugin
// notifications, webrtcup, hangup, detached) arrive on Events.
type Handle struct {
	s      *Session
	ID     uint64
	Events chan Message
}

// Session is the handle's session.
func (h *Handle) Session() *Session { return h.s }

func (h *Handle) path() string { return h.s.path() + "/" + strconv.FormatUint(h.ID, 10) }

// Request sends a synchronous plugin request (VideoRoom list, exists,
// listparticipants) and returns the plugin's data. A plugin error is a
// *PluginError.
func (h *Handle) Request(ctx context.Context, body map[string]any) (json.RawMessage, error) {
	m, err := h.s.c.post(ctx, h.path(), map[string]any{"janus": "message", "body": body})
	if err != nil {
		return nil, err
	}
	if m.Janus != "success" || m.PluginData == nil {
		return nil, fmt.Errorf("%w: %v answered %q", ErrBadResponse, body["request"], m.Janus)
	}
	return m.PluginData.Data, pluginError(m.PluginData.Data)
}

// Call sends an asynchronous plugin request (join, start, publish, leave)
// with an optional JSEP and waits for its event: the plugin's data, the
// event's JSEP (or nil), or an error (*PluginError for the plugin's).
// Waiting needs the session's events dispatched (a poll loop calling
// Dispatch).
func (h *Handle) Call(ctx context.Context, body map[string]any, jsep *JSEP) (json.RawMessage, *JSEP, error) {
	tx := transaction()
	w := make(chan Message, 1)
	h.s.mu.Lock()
	h.s.waiters[tx] = w
	h.s.mu.Unlock()
	defer func() {
		h.s.mu.Lock()
		delete(h.s.waiters, tx)
		h.s.mu.Unlock()
	}()
	req := map[string]any{"janus": "message", "body": body, "transaction": tx}
	if jsep != nil {
		req["jsep"] = jsep
	}
	m, err := h.s.c.post(ctx, h.path(), req)
	if err != nil {
		return nil, nil, err
	}
	switch m.Janus {
	case "ack":
	case "event", "success": // answered at once
		if m.PluginData == nil {
			return nil, nil, fmt.Errorf("%w: %v answered %q without data", ErrBadResponse, body["request"], m.Janus)
		}
		return m.PluginData.Data, m.JSEP, pluginError(m.PluginData.Data)
	default:
		return nil, nil, fmt.Errorf("%w: %v answered %q", ErrBadResponse, body["request"], m.Janus)
	}
	select {
	case ev := <-w:
		if ev.Janus == "error" && ev.Error != nil {
			return nil, nil, ev.Error
		}
		if ev.PluginData == nil {
			return nil, nil, fmt.Errorf("%w: %v: event %q without data", ErrBadResponse, body["request"], ev.Janus)
		}
		return ev.PluginData.Data, ev.JSEP, pluginError(ev.PluginData.Data)
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("janus: %v: no answer: %w", body["request"], ctx.Err())
	}
}

// Detach detaches the handle (best effort: Janus may already have
// forgotten it).
func (h *Handle) Detach(ctx context.Context) error {
	h.s.mu.Lock()
	delete(h.s.handles, h.ID)
	h.s.mu.Unlock()
	_, err := h.s.c.post(ctx, h.path(), map[string]any{"janus": "detach"})
	if ae, ok := errors.AsType[*APIError](err); ok && (ae.Code == codeNoHandle || ae.Code == codeNoSession) {
		return nil
	}
	return err
}

// pluginError returns the plugin's error_code/error as a *PluginError.
func pluginError(data json.RawMessage) error {
	var e struct {
		Code   int    `json:"error_code"`
		Reason string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Code != 0 {
		return &PluginError{Code: e.Code, Reason: e.Reason}
	}
	return nil
}

// netReason describes a transport error without the URL (it may carry the
// API secret in a long poll's query).
func netReason(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}
