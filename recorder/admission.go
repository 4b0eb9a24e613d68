package recorder

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Load is the recorder's live load, as admission sees it.
type Load struct {
	// Sessions counts sessions with at least one participant connection,
	// plus new sessions admitted whose first connection is still being
	// set up.
	Sessions int
	// Connections counts participant connections.
	Connections int
}

// Admitter decides whether the recorder takes on a new session: load
// shedding, so that a saturated gateway refuses new calls instead of
// degrading the recordings already running. Participants joining a
// session that already has a connection are always admitted (refusing
// them would leave a running call half recorded).
type Admitter interface {
	// AdmitSession returns nil to admit a new session, or an
	// *OverloadError. It is called for every WHIP POST that would start
	// a session's first connection, one call at a time.
	AdmitSession(ctx context.Context, load Load) error
}

// OverloadError is an Admitter's refusal: the WHIP POST is answered 503
// with Retry-After and problem type "overloaded".
type OverloadError struct {
	// Reason is a token for metrics and logs ("max_sessions", "cpu",
	// "sched_delay").
	Reason string
	// Detail is said to the client (no secrets).
	Detail string
	// RetryAfter is the delay suggested to the client (at least 1 s).
	RetryAfter time.Duration
}

func (e *OverloadError) Error() string {
	return fmt.Sprintf("recorder: overloaded (%s): %s", e.Reason, e.Detail)
}

// admission is the Recorder's admission state.
type admission struct {
	mu       sync.Mutex
	admitter Admitter
	// pending counts admitted new sessions whose connection is not
	// attached yet, so that concurrent POSTs cannot all slip under a
	// limit.
	pending map[sessionKey]int
}

// SetAdmitter installs the admission policy (nil: admit everything).
func (r *Recorder) SetAdmitter(a Admitter) {
	r.admission.mu.Lock()
	defer r.admission.mu.Unlock()
	r.admission.admitter = a
}

// Load returns the live load (sessions with connections, connections),
// without the pending admissions.
func (r *Recorder) Load() Load {
	r.mu.Lock()
	defer r.mu.Unlock()
	var l Load
	for _, s := range r.sessions {
		s.mu.Lock()
		if n := len(s.conns); n > 0 {
			l.Sessions++
			l.Connections += n
		}
		s.mu.Unlock()
	}
	return l
}

// busy reports whether the session has a participant connection.
func (r *Recorder) busy(key sessionKey) bool {
	r.mu.Lock()
	s := r.sessions[key]
	r.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) > 0
}

// admitSession asks the Admitter about a POST for session id of tenant.
// A session that already has a connection is admitted without asking.
// Call release once the connection is attached or has failed.
func (r *Recorder) admitSession(ctx context.Context, tenant, id string) (release func(), err error) {
	a := &r.admission
	key := sessionKey{tenant, id}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.admitter == nil || r.busy(key) || a.pending[key] > 0 {
		return func() {}, nil
	}
	load := r.Load()
	for k := range a.pending {
		if !r.busy(k) {
			load.Sessions++
		}
	}
	if err := a.admitter.AdmitSession(ctx, load); err != nil {
		return func() {}, err
	}
	if a.pending == nil {
		a.pending = map[sessionKey]int{}
	}
	a.pending[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.pending[key]--; a.pending[key] <= 0 {
				delete(a.pending, key)
			}
		})
	}, nil
}
