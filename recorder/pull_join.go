package recorder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/recorder/report"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

// Join mode: the recorder dials into media servers instead of waiting for
// WHIP publishers. This file is the API media-server adapters
// (recorder/janus) use: hold a session open, and record a participant from
// an offer the media server makes. WHEP pulls (pull.go) use the same
// admission.

// Errors of the join API.
var (
	// ErrSessionEnded: the session has ended; a new one needs a new id.
	ErrSessionEnded = errSessionEnded
	// ErrStorageUnavailable: the spool or the key provider is down, so
	// nothing would be recorded (fail closed).
	ErrStorageUnavailable = errors.New("recorder: recording storage or the key provider is unavailable")
	// ErrClosing: the recorder is shutting down.
	ErrClosing = errors.New("recorder: shutting down")
)

// RefusedError is returned when the policy decision for a participant is
// record: off.
type RefusedError struct {
	Rule   string
	Record policy.Record
}

func (e *RefusedError) Error() string {
	rule := e.Rule
	if rule == "" {
		rule = "(default)"
	}
	return fmt.Sprintf("recorder: policy rule %q sets record: %s for this participant", rule, e.Record)
}

// failSource is the recording_status failure reason when a pulled source
// (a WHEP endpoint, a media server) cannot be reached or lost its media
// beyond the grace period in a session that requires recording.
const failSource = "source_unavailable"

// End reasons of connections made in join mode.
const (
	endSourceDropped = "source_disconnected"
	endPullStopped   = "pull_stopped"
)

// SessionSpec names a session an adapter records into, and the metadata a
// session created by Hold gets.
type SessionSpec struct {
	Tenant     string
	ID         string
	Department string
	Labels     map[string]string
}

// Decide returns the policy decision a new session of spec would get,
// without creating anything (an adapter skips rooms whose policy is
// record: off).
func (r *Recorder) Decide(spec SessionSpec) policy.Decision {
	d, _ := r.decide(policy.Input{Tenant: spec.Tenant, Department: spec.Department, Labels: nonNil(spec.Labels)})
	return d
}

// Hold opens the session of spec, creating it (with its policy decision
// and session.started) when unknown, and keeps it from ending by idle
// timeout until Release. ErrSessionEnded when the session has ended.
func (r *Recorder) Hold(ctx context.Context, spec SessionSpec) (*Hold, error) {
	if r.isClosing() {
		return nil, ErrClosing
	}
	s, err := r.liveSession(ctx, spec.Tenant, spec.ID)
	if err == nil && s == nil {
		s, err = r.createSession(ctx, r.newSessionRow(spec.Tenant, spec.ID, spec.Department, spec.Labels, time.Now()))
		if errors.Is(err, errSessionExists) {
			s, err = r.liveSession(ctx, spec.Tenant, spec.ID)
			if err == nil && s == nil {
				err = errors.New("recorder: session vanished")
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.hold(); err != nil {
		return nil, err
	}
	return &Hold{r: r, s: s}, nil
}

// hold counts a holder; errSessionEnded once the session ended.
func (s *session) hold() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errSessionEnded
	}
	s.holds++
	return nil
}

// unhold releases a holder; the idle timeout counts from now.
func (s *session) unhold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holds--
	if s.holds == 0 && len(s.conns) == 0 {
		s.idleFrom = time.Now()
	}
}

// Hold is a session held open by an adapter. Its methods are safe for
// concurrent use.
type Hold struct {
	r    *Recorder
	s    *session
	once sync.Once
}

// SessionID is the held session's id.
func (h *Hold) SessionID() string { return h.s.key.id }

// Decision is the session's policy decision.
func (h *Hold) Decision() policy.Decision { return h.s.decision }

// Ended reports whether the session has ended (POST /v1/sessions/{id}/end):
// release the hold and stop recording into it.
func (h *Hold) Ended() bool { return h.s.isEnded() }

// Release lets the session end by idle timeout once it has no
// connection. Connections made through the hold are not ended.
func (h *Hold) Release() { h.once.Do(h.s.unhold) }

// FailClosed marks the session's recording_status failed (reason
// source_unavailable, sticky, with a session-level recording.failed
// event) when its policy requires recording, and reports whether it did.
// An adapter calls it when the media server cannot be reached or a
// participant cannot be recorded for longer than the media grace period.
func (h *Hold) FailClosed(ctx context.Context, participant string) bool {
	if h.s.decision.Record != policy.RecordRequired || h.s.isEnded() {
		return false
	}
	h.r.failSession(ctx, h.s, failSource, participant, true)
	return true
}

// Participant is a participant an adapter records.
type Participant struct {
	// ID is the participant id (meta.ValidID).
	ID string
	// Name is the display name (at most 256 printable characters).
	Name string
	// Attributes are matched by policy rules' match.participant.
	Attributes map[string]string
	// Source describes where the media comes from (e.g. {"kind": "janus",
	// "room": "1234", "feed": "42"}); it is stored in the completeness
	// report as "source".
	Source map[string]any
}

// Connection is a participant connection made in join mode: one
// PeerConnection, one recording.
type Connection struct {
	c *conn
}

// ID is the connection's resource id.
func (c *Connection) ID() string { return c.c.id }

// Done is closed when the connection has ended and its recording is
// finalized (peer closed or failed, recording failed, session ended,
// shutdown, or End).
func (c *Connection) Done() <-chan struct{} { return c.c.done }

// EndReason is why the connection ended (valid after Done).
func (c *Connection) EndReason() string {
	<-c.c.done
	return c.c.endReason
}

// End closes the connection and finalizes its recording; reason is
// recorded as the completeness report's end_reason (e.g.
// "publisher_left"). It returns when the recording is final.
func (c *Connection) End(ctx context.Context, reason string) { c.c.end(ctx, reason) }

// Answer records a participant of the held session from an SDP offer a
// media server made (a Janus subscriber offer): the same offer checks,
// policy decision, fail-closed admission, pipeline and events as a WHIP
// publisher. It returns the connection and the SDP answer (every
// candidate gathered) to send back to the media server. Errors:
// *RefusedError (record: off), ErrStorageUnavailable, ErrSessionEnded,
// ErrClosing, or an offer error.
func (h *Hold) Answer(ctx context.Context, p Participant, offer []byte) (*Connection, []byte, error) {
	r, s := h.r, h.s
	if r.isClosing() {
		return nil, nil, ErrClosing
	}
	if _, err := rtc.ValidateOffer(offer); err != nil {
		return nil, nil, err
	}
	chosen, err := chooseCodecs(offer)
	if err != nil {
		return nil, nil, err
	}
	d, err := r.admitSource(ctx, s, p)
	if err != nil {
		return nil, nil, err
	}
	pc, err := r.api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, nil, fmt.Errorf("recorder: new peer connection: %w", err)
	}
	c, answer, err := r.connectPC(ctx, s, p.ID, d, pc, "join", func(c *conn) ([]negotiated, error) {
		c.annotate = sourceAnnotation(p.Source, nil)
		return answerOffer(ctx, pc, offer, chosen)
	})
	if err != nil {
		return nil, nil, err
	}
	return &Connection{c: c}, []byte(answer), nil
}

// admitSource takes the participant's policy decision and checks that
// recording can run (the same admission as a WHIP POST), then stores the
// participant.
func (r *Recorder) admitSource(ctx context.Context, s *session, p Participant) (policy.Decision, error) {
	d, _ := r.decide(policy.Input{Tenant: s.key.tenant, Department: s.dept, Labels: s.labels, Participant: nonNil(p.Attributes)})
	if !d.Records() {
		return d, &RefusedError{Rule: d.Rule, Record: d.Record}
	}
	if err := r.storageHealthy(ctx); err != nil {
		if d.Record == policy.RecordRequired || s.decision.Record == policy.RecordRequired {
			r.failSession(ctx, s, failStorage, p.ID, true)
		}
		return d, fmt.Errorf("%w: %v", ErrStorageUnavailable, err)
	}
	if s.isEnded() {
		return d, errSessionEnded
	}
	if err := r.upsertParticipant(ctx, s, p.ID, whipQuery{name: p.Name, attributes: p.Attributes}); err != nil {
		return d, err
	}
	return d, nil
}

// gapInfo is a reconnect gap before a connection: from the previous
// connection's last packet to this connection's first (session clock).
type gapInfo struct {
	startMS           int64
	previousRecording string
	reason            string
}

// sourceAnnotation adds "source" (and, after a reconnect, "gap_before")
// to a connection's completeness report.
func sourceAnnotation(source map[string]any, gap *gapInfo) func(*report.Report) map[string]any {
	src := maps.Clone(source)
	return func(rep *report.Report) map[string]any {
		out := map[string]any{}
		if len(src) > 0 {
			out["source"] = src
		}
		if gap != nil {
			g := map[string]any{"kind": "disconnected", "reason": gap.reason, "session_start_ms": gap.startMS}
			if gap.previousRecording != "" {
				g["previous_recording_id"] = gap.previousRecording
			}
			if rep != nil && rep.StartedAt != nil {
				g["session_end_ms"] = rep.StartOffsetMS
				g["ms"] = max(rep.StartOffsetMS-gap.startMS, 0)
			}
			out["gap_before"] = g
		}
		return out
	}
}
