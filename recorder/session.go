package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/recorder/clock"
	"github.com/custodian/custodian/recorder/pipeline"
	"github.com/custodian/custodian/storage/meta"
)

type sessionKey struct{ tenant, id string }

// End reasons (events.SessionData.EndReason).
const (
	endAPI      = "api"
	endIdle     = "idle_timeout"
	endShutdown = "shutdown"
	endDelete   = "whip_delete"
	endPeer     = "peer_closed"
	endFailed   = "recording_failed"
)

// Failure reasons of a session's recording_status (fixed tokens, also the
// Reason of the session-level recording.failed event).
const (
	failStorage   = "storage_unavailable"
	failNoMedia   = "no_media"
	failRecording = "recording_failed"
)

var (
	errSessionEnded  = errors.New("recorder: session has ended")
	errSessionExists = errors.New("recorder: session already exists")
)

// session is a live session of this process: its clock, its decision,
// the connections of its participants and the gate state.
type session struct {
	key           sessionKey
	dept          string
	labels        map[string]string
	decision      policy.Decision
	policyVersion int
	clock         *clock.Session

	mu         sync.Mutex
	conns      map[string]*conn  // by WHIP resource id
	consent    map[string]string // participant id → granted | denied | unknown
	paused     bool
	failed     bool
	failReason string
	ended      bool
	// idleFrom is when the session last had no connection (creation or the
	// last participant leaving); zero while a connection is up.
	idleFrom time.Time
	// holds counts the pulls and media-server adapters that keep the
	// session open: it does not end by idle timeout while one holds it.
	holds int
	// status is the recording_status last written to the database.
	status   string
	statusMu sync.Mutex // orders status writes
}

func (s *session) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (s *session) connections() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	return out
}

// idleSince returns how long the session has had no connection (0 while
// one is up or after it ended).
func (s *session) idleSince(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || len(s.conns) > 0 || s.holds > 0 || s.idleFrom.IsZero() {
		return 0
	}
	return now.Sub(s.idleFrom)
}

// gateFor is the gate of a connection of participant: closed without the
// consent the policy requires, closed while paused, open otherwise. Call
// with s.mu held.
func (s *session) gateFor(d policy.Decision, participant string) pipeline.Gate {
	if !d.ShouldStore(s.consentOf(participant)) {
		return pipeline.GateNoConsent
	}
	if s.paused {
		return pipeline.GatePaused
	}
	return pipeline.GateOpen
}

func (s *session) consentOf(participant string) string {
	if st, ok := s.consent[participant]; ok {
		return st
	}
	return policy.StateUnknown
}

// liveStatus computes recording_status: failed once recording could not
// run; recording while a connection's media is being stored (also while
// paused: the recorder is running and the gap is kept); not_recording
// otherwise. Call with s.mu held.
func (s *session) liveStatus() string {
	if s.failed {
		return meta.LiveFailed
	}
	for _, c := range s.conns {
		if c.hasMedia() && c.decision.ShouldStore(s.consentOf(c.participant)) {
			return meta.LiveRecording
		}
	}
	return meta.LiveNotRecording
}

// decisionMap renders a decision for the JSON column.
func decisionMap(d policy.Decision) map[string]any {
	b, err := json.Marshal(d)
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func decisionFrom(m map[string]any) (policy.Decision, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return policy.Decision{}, err
	}
	var d policy.Decision
	if err := json.Unmarshal(b, &d); err != nil {
		return policy.Decision{}, err
	}
	return d, nil
}

// newSessionRow takes the session's policy decision and returns its row.
func (r *Recorder) newSessionRow(tenant, id, dept string, labels map[string]string, now time.Time) meta.Session {
	d, version := r.decide(policy.Input{Tenant: tenant, Department: dept, Labels: labels})
	return meta.Session{
		TenantID: tenant, ID: id, Department: dept, Labels: meta.NewJSON(labels),
		Status: meta.SessionActive, Decision: meta.NewJSON(decisionMap(d)), PolicyName: d.Rule,
		PolicyVersion: version, RecordingStatus: meta.LiveNotRecording, StartedAt: now,
	}
}

// createSession stores a new session and emits session.started in the same
// transaction. errSessionExists when the id is taken in the tenant.
func (r *Recorder) createSession(ctx context.Context, row meta.Session) (*session, error) {
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&meta.Session{}).Where("tenant_id = ? AND id = ?", row.TenantID, row.ID).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return errSessionExists
		}
		if err := tx.Create(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errSessionExists
			}
			return err
		}
		return events.Emit(tx, events.Event{Tenant: row.TenantID, Kind: events.SessionStarted, Subject: row.ID,
			Data: sessionData(row, "")})
	})
	if err != nil {
		if errors.Is(err, errSessionExists) {
			return nil, err
		}
		return nil, fmt.Errorf("recorder: create session %s: %w", row.ID, err)
	}
	s, err := r.liveFromRow(row)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.sessions[s.key]; ok {
		return old, nil
	}
	r.sessions[s.key] = s
	r.metrics.sessionsStarted.Inc()
	return s, nil
}

func sessionData(row meta.Session, reason string) events.SessionData {
	d := events.SessionData{SessionID: row.ID, Department: row.Department, Labels: row.Labels.V,
		Policy: row.PolicyName, StartedAt: row.StartedAt.UTC(), EndedAt: row.EndedAt, EndReason: reason}
	if rec, ok := row.Decision.V["record"].(string); ok {
		d.Record = rec
	}
	return d
}

// liveFromRow builds the live state of a session row. The clock's epoch
// is the row's StartedAt: for a session this process just created it came
// from time.Now() and keeps the monotonic reading; a loaded one is
// wall-clock time.
func (r *Recorder) liveFromRow(row meta.Session) (*session, error) {
	d, err := decisionFrom(row.Decision.V)
	if err != nil {
		return nil, fmt.Errorf("recorder: session %s: stored decision: %w", row.ID, err)
	}
	epoch := row.StartedAt
	s := &session{
		key:           sessionKey{row.TenantID, row.ID},
		dept:          row.Department,
		labels:        maps.Clone(row.Labels.V),
		decision:      d,
		policyVersion: row.PolicyVersion,
		clock:         clock.NewSession(epoch),
		conns:         map[string]*conn{},
		consent:       map[string]string{},
		paused:        row.Paused,
		failed:        row.RecordingStatus == meta.LiveFailed,
		failReason:    row.FailureReason,
		idleFrom:      time.Now(),
		status:        row.RecordingStatus,
	}
	return s, nil
}

// liveSession returns the live session for tenant and id, loading an
// active session row when this process does not hold it. It returns
// (nil, nil) when there is no such session, and errSessionEnded for an
// ended one.
func (r *Recorder) liveSession(ctx context.Context, tenant, id string) (*session, error) {
	r.mu.Lock()
	s, ok := r.sessions[sessionKey{tenant, id}]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	var row meta.Session
	err := r.db.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenant, id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recorder: load session %s: %w", id, err)
	}
	if row.Status == meta.SessionEnded {
		return nil, errSessionEnded
	}
	s, err = r.liveFromRow(row)
	if err != nil {
		return nil, err
	}
	if err := r.loadConsent(ctx, s); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.sessions[s.key]; ok {
		return old, nil
	}
	r.sessions[s.key] = s
	return s, nil
}

func (r *Recorder) loadConsent(ctx context.Context, s *session) error {
	var parts []meta.Participant
	if err := r.db.WithContext(ctx).Where("tenant_id = ? AND session_id = ?", s.key.tenant, s.key.id).Find(&parts).Error; err != nil {
		return fmt.Errorf("recorder: load participants of %s: %w", s.key.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range parts {
		if p.Consent != "" {
			s.consent[p.ID] = p.Consent
		}
	}
	return nil
}

// loadActiveSessions makes the active sessions of the database live, so
// they end by idle timeout unless participants return (after a restart).
func (r *Recorder) loadActiveSessions(ctx context.Context) error {
	var rows []meta.Session
	if err := r.db.WithContext(ctx).Where("status = ?", meta.SessionActive).Find(&rows).Error; err != nil {
		return fmt.Errorf("recorder: load active sessions: %w", err)
	}
	for _, row := range rows {
		s, err := r.liveFromRow(row)
		if err != nil {
			r.log.Warn("active session not loaded", "session_id", row.ID, "err", err)
			continue
		}
		if err := r.loadConsent(ctx, s); err != nil {
			return err
		}
		r.mu.Lock()
		r.sessions[s.key] = s
		r.mu.Unlock()
	}
	return nil
}

// refreshStatus writes the session's live recording_status when it
// changed.
func (r *Recorder) refreshStatus(ctx context.Context, s *session) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	s.mu.Lock()
	st := s.liveStatus()
	changed := st != s.status
	s.mu.Unlock()
	if !changed {
		return
	}
	err := r.db.WithContext(ctx).Model(&meta.Session{}).Where("tenant_id = ? AND id = ? AND recording_status <> ?", s.key.tenant, s.key.id, meta.LiveFailed).
		Update("recording_status", st).Error
	if err != nil {
		r.log.Warn("update recording status", "session_id", s.key.id, "err", err)
		return
	}
	s.mu.Lock()
	s.status = st
	s.mu.Unlock()
}

// failSession marks the session's recording as failed (sticky for the
// session) and, when event is set, emits a session-level recording.failed
// event (subject: the session id, no recording id) in the same transaction.
func (r *Recorder) failSession(ctx context.Context, s *session, reason, participant string, event bool) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	s.mu.Lock()
	if s.failed || s.ended {
		s.mu.Unlock()
		return
	}
	s.failed, s.failReason = true, reason
	s.mu.Unlock()
	now := time.Now().UTC()
	err := r.db.WithContext(context.WithoutCancel(ctx)).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&meta.Session{}).Where("tenant_id = ? AND id = ?", s.key.tenant, s.key.id).
			Updates(map[string]any{"recording_status": meta.LiveFailed, "failure_reason": reason}).Error; err != nil {
			return err
		}
		if !event {
			return nil
		}
		return events.Emit(tx, events.Event{Tenant: s.key.tenant, Kind: events.RecordingFailed, Subject: s.key.id,
			Data: events.RecordingData{SessionID: s.key.id, ParticipantID: participant, Department: s.dept,
				Status: meta.LiveFailed, StartedAt: now, Reason: reason}})
	})
	if err != nil {
		r.log.Error("mark session recording failed", "session_id", s.key.id, "reason", reason, "err", err)
		return
	}
	s.mu.Lock()
	s.status = meta.LiveFailed
	s.mu.Unlock()
	r.metrics.sessionFailures.WithLabelValues(reason).Inc()
	r.log.Warn("session recording failed", "session_id", s.key.id, "reason", reason, "record", string(s.decision.Record))
}

// endSession ends every connection of the session (recordings finalized),
// marks it ended and emits session.ended.
func (r *Recorder) endSession(ctx context.Context, s *session, reason string) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return errSessionEnded
	}
	s.ended = true
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.end(ctx, reason)
		}()
	}
	wg.Wait()
	now := time.Now().UTC()
	err := r.db.WithContext(context.WithoutCancel(ctx)).Transaction(func(tx *gorm.DB) error {
		var row meta.Session
		if err := tx.Where("tenant_id = ? AND id = ?", s.key.tenant, s.key.id).Take(&row).Error; err != nil {
			return err
		}
		if row.Status == meta.SessionEnded {
			return errSessionEnded
		}
		row.Status, row.EndedAt = meta.SessionEnded, &now
		if err := tx.Model(&row).Where("tenant_id = ? AND id = ?", row.TenantID, row.ID).
			Updates(map[string]any{"status": meta.SessionEnded, "ended_at": now}).Error; err != nil {
			return err
		}
		return events.Emit(tx, events.Event{Tenant: row.TenantID, Kind: events.SessionEnded, Subject: row.ID,
			Data: sessionData(row, reason)})
	})
	r.mu.Lock()
	delete(r.sessions, s.key)
	r.mu.Unlock()
	if err != nil {
		if errors.Is(err, errSessionEnded) {
			return err
		}
		return fmt.Errorf("recorder: end session %s: %w", s.key.id, err)
	}
	r.log.Info("session ended", "session_id", s.key.id, "reason", reason)
	return nil
}
