package recorder

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/policy"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/storage/meta"
)

// offerError is a problem with an offer found after recorder/webrtc's
// checks (too many sections, pion's own refusal).
type offerError struct {
	status int
	code   string
	detail string
}

func (e *offerError) Error() string { return "recorder: " + e.code + ": " + e.detail }

// whipQuery is the optional query of a WHIP POST.
type whipQuery struct {
	name       string
	consent    string
	department string
	labels     map[string]string
	// attributes are the participant's attributes for policy matching
	// (policy match.participant), e.g. attributes=role=agent.
	attributes map[string]string
	// decision is the participant's policy decision, stored on its row
	// when set (not a query parameter).
	decision *policy.Decision
}

const (
	maxNameLen  = 256
	maxPairs    = 32
	maxValueLen = 256
)

// parseWHIPQuery reads name, consent, department, labels and attributes.
func parseWHIPQuery(q url.Values) (whipQuery, error) {
	var w whipQuery
	for k := range q {
		switch k {
		case "name", "consent", "department", "labels", "attributes":
			if len(q[k]) > 1 {
				return w, fmt.Errorf("query parameter %q given more than once", k)
			}
		default:
			return w, fmt.Errorf("unknown query parameter %q (known: name, consent, department, labels, attributes)", k)
		}
	}
	w.name = q.Get("name")
	if len(w.name) > maxNameLen || strings.ContainsFunc(w.name, unicode.IsControl) {
		return w, fmt.Errorf("name: at most %d printable characters", maxNameLen)
	}
	switch w.consent = q.Get("consent"); w.consent {
	case "", policy.StateGranted, policy.StateDenied, policy.StateUnknown:
	default:
		return w, fmt.Errorf("consent %q: want granted, denied or unknown", w.consent)
	}
	if w.department = q.Get("department"); w.department != "" && !meta.ValidID(w.department) {
		return w, fmt.Errorf("department %q: 1 to 128 letters, digits, '-', '_', '.', ':' or '@'", w.department)
	}
	var err error
	if w.labels, err = parsePairs("labels", q.Get("labels")); err != nil {
		return w, err
	}
	if w.attributes, err = parsePairs("attributes", q.Get("attributes")); err != nil {
		return w, err
	}
	return w, nil
}

// parsePairs reads "k=v,k=v": keys are ids (meta.ValidID, at most 64
// characters), values printable without commas.
func parsePairs(field, s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: %q is not key=value", field, kv)
		case !meta.ValidID(k) || len(k) > 64:
			return nil, fmt.Errorf("%s: key %q: 1 to 64 letters, digits, '-', '_', '.', ':' or '@'", field, k)
		case len(v) > maxValueLen || strings.ContainsFunc(v, unicode.IsControl):
			return nil, fmt.Errorf("%s: value of %q: at most %d printable characters", field, k, maxValueLen)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: key %q given twice", field, k)
		}
		out[k] = v
	}
	if len(out) > maxPairs {
		return nil, fmt.Errorf("%s: at most %d pairs", field, maxPairs)
	}
	return out, nil
}

// chooseCodecs picks, for each media section that sends audio or video to
// the recorder, the first codec in offer order that the recorder supports
// (the answer then offers only that one, so the pipeline knows the codec
// before media flows). At most one audio and one video section may send:
// a recording holds one track of each.
func chooseCodecs(raw []byte) ([]negotiated, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(raw)); err != nil {
		return nil, &offerError{status: 400, code: "sdp_malformed", detail: "malformed SDP"}
	}
	sessDir := "sendrecv"
	for _, a := range sd.Attributes {
		if isDirection(a.Key) {
			sessDir = a.Key
		}
	}
	var out []negotiated
	seen := map[string]int{}
	for i, md := range sd.MediaDescriptions {
		if md == nil {
			continue
		}
		kind := md.MediaName.Media
		if (kind != "audio" && kind != "video") || md.MediaName.Port.Value == 0 {
			continue
		}
		dir := sessDir
		for _, a := range md.Attributes {
			if isDirection(a.Key) {
				dir = a.Key
			}
		}
		if dir != "sendrecv" && dir != "sendonly" {
			continue
		}
		mid, _ := md.Attribute("mid")
		cands := supportedIn(md, kind)
		if len(cands) == 0 {
			continue
		}
		seen[kind]++
		if seen[kind] > 1 {
			return nil, &offerError{status: 400, code: "sdp_too_many_tracks",
				detail: fmt.Sprintf("m-line %d: a second %s section; a participant connection records one audio and one video track (publish further tracks as another participant)", i, kind)}
		}
		if mid == "" {
			return nil, &offerError{status: 400, code: "sdp_no_mid", detail: fmt.Sprintf("m-line %d (%s) has no a=mid (BUNDLE is required)", i, kind)}
		}
		out = append(out, negotiated{kind: kind, mid: mid, params: cands[0], alternatives: cands[1:]})
	}
	return out, nil
}

func isDirection(k string) bool {
	return k == "sendrecv" || k == "sendonly" || k == "recvonly" || k == "inactive"
}

// supportedIn lists the section's codecs the recorder supports, in offer
// order, with the offer's payload types and parameters.
func supportedIn(md *sdp.MediaDescription, kind string) []pion.RTPCodecParameters {
	rtpmap, fmtp := map[string]string{}, map[string]string{}
	fb := map[string][]pion.RTCPFeedback{} // by payload type, "*" for all
	for _, a := range md.Attributes {
		pt, v, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		switch a.Key {
		case "rtpmap":
			rtpmap[pt] = strings.TrimSpace(v)
		case "fmtp":
			fmtp[pt] = strings.TrimSpace(v)
		case "rtcp-fb":
			// The offer's feedback: pion answers with its intersection
			// with the recorder's (NACK, PLI, FIR for video), so without
			// it the answer would negotiate no feedback at all.
			typ, param, _ := strings.Cut(strings.TrimSpace(v), " ")
			fb[pt] = append(fb[pt], pion.RTCPFeedback{Type: typ, Parameter: strings.TrimSpace(param)})
		}
	}
	var out []pion.RTPCodecParameters
	for _, ptStr := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if err != nil {
			continue
		}
		parts := strings.Split(rtpmap[ptStr], "/")
		if len(parts) < 2 {
			continue
		}
		clockRate, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			continue
		}
		var channels uint64
		if len(parts) > 2 {
			channels, _ = strconv.ParseUint(parts[2], 10, 16)
		}
		for _, c := range rtc.SupportedCodecs() {
			if c.Kind == kind && strings.EqualFold(c.MimeType, kind+"/"+parts[0]) && c.ClockRate == uint32(clockRate) {
				out = append(out, pion.RTPCodecParameters{
					RTPCodecCapability: pion.RTPCodecCapability{
						MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: uint16(channels), SDPFmtpLine: fmtp[ptStr],
						RTCPFeedback: append(slices.Clone(fb[ptStr]), fb["*"]...),
					},
					PayloadType: pion.PayloadType(pt),
				})
				break
			}
		}
	}
	return out
}

// problem writes a problem+json answer.
func problem(w http.ResponseWriter, r *http.Request, status int, kind, detail string) {
	api.WriteProblem(w, r, status, kind, detail)
}

// handleWHIPPost is POST /whip/{session}/{participant}: admission, then a
// participant connection; 201 with the answer.
func (r *Recorder) handleWHIPPost(srv *api.Server) api.Handler {
	return func(w http.ResponseWriter, req *http.Request, p auth.Principal) {
		ctx := req.Context()
		sid, pid := req.PathValue("session"), req.PathValue("participant")
		if !meta.ValidID(sid) || !meta.ValidID(pid) {
			problem(w, req, http.StatusBadRequest, "invalid-id", "session and participant ids are 1 to 128 letters, digits, '-', '_', '.', ':' or '@', not starting with '.'")
			return
		}
		if ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || ct != "application/sdp" {
			problem(w, req, http.StatusUnsupportedMediaType, "unsupported-media-type", "the body must be an SDP offer with Content-Type: application/sdp")
			return
		}
		q, err := parseWHIPQuery(req.URL.Query())
		if err != nil {
			problem(w, req, http.StatusBadRequest, "invalid-query", err.Error())
			return
		}
		raw, err := rtc.ReadOffer(req.Body)
		if err == nil {
			_, err = rtc.ValidateOffer(raw)
		}
		if oe, ok := errors.AsType[*rtc.OfferError](err); ok {
			problem(w, req, oe.HTTPStatus(), strings.ReplaceAll(oe.Code(), "_", "-"), oe.Error())
			return
		} else if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			problem(w, req, http.StatusRequestEntityTooLarge, "sdp-too-large", fmt.Sprintf("body over %d bytes", mbe.Limit))
			return
		} else if err != nil {
			problem(w, req, http.StatusBadRequest, "invalid-body", "could not read the offer")
			return
		}
		chosen, err := chooseCodecs(raw)
		if oe, ok := errors.AsType[*offerError](err); ok {
			problem(w, req, oe.status, strings.ReplaceAll(oe.code, "_", "-"), oe.detail)
			return
		}
		if r.isClosing() {
			w.Header().Set("Retry-After", "5")
			problem(w, req, http.StatusServiceUnavailable, "shutting-down", "the gateway is shutting down")
			return
		}
		// Load shedding: a saturated gateway refuses new sessions rather
		// than degrade the recordings already running.
		release, err := r.admitSession(ctx, p.Tenant, sid)
		if oe, ok := errors.AsType[*OverloadError](err); ok {
			r.metrics.admissionRejected.WithLabelValues(oe.Reason).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(max(int(oe.RetryAfter.Round(time.Second)/time.Second), 1)))
			problem(w, req, http.StatusServiceUnavailable, "overloaded", oe.Detail)
			return
		} else if err != nil {
			r.log.Error("whip: admission", "session_id", sid, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "admission failed")
			return
		}
		defer release()

		// Session: the token's tenant; a department-scoped token records
		// only in its department.
		dept := q.department
		if p.Department != "" && p.Role == auth.RoleIngest {
			if dept == "" {
				dept = p.Department
			} else if dept != p.Department {
				problem(w, req, http.StatusForbidden, "forbidden", "this token may only ingest into department "+p.Department)
				return
			}
		}
		s, created, err := r.sessionForWHIP(ctx, p, sid, dept, q.labels)
		switch {
		case errors.Is(err, errSessionEnded):
			problem(w, req, http.StatusConflict, "session-ended", "session "+sid+" has ended; use a new session id")
			return
		case err != nil:
			r.log.Error("whip: session", "session_id", sid, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not open the session")
			return
		}
		if !created && !api.Authorize(w, req, p, auth.Ingest, auth.Resource{Tenant: s.key.tenant, Department: s.dept}) {
			return
		}

		// Policy: the participant's decision governs its recording.
		d, _ := r.decide(policy.Input{Tenant: s.key.tenant, Department: s.dept, Labels: s.labels, Participant: nonNil(q.attributes)})
		if !d.Records() {
			rule := d.Rule
			if rule == "" {
				rule = "(default)"
			}
			problem(w, req, http.StatusForbidden, "recording-forbidden", fmt.Sprintf("policy rule %q sets record: %s for this participant", rule, d.Record))
			return
		}
		// Fail closed: no new media while storage or keys are down.
		if err := r.storageHealthy(ctx); err != nil {
			r.log.Warn("whip: refused while storage is unavailable", "session_id", sid, "err", err)
			if d.Record == policy.RecordRequired || s.decision.Record == policy.RecordRequired {
				r.failSession(ctx, s, failStorage, pid, true)
			}
			w.Header().Set("Retry-After", "5")
			problem(w, req, http.StatusServiceUnavailable, "storage-unavailable", "recording storage or the key provider is unavailable; media would not be recorded")
			return
		}

		src := srv.SourceAddress(req)
		q.decision = &d
		if err := r.upsertParticipant(ctx, s, pid, q); err != nil {
			r.log.Error("whip: participant", "session_id", sid, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not store the participant")
			return
		}
		if q.consent != "" {
			if err := r.recordConsent(ctx, s.key.tenant, sid, pid, q.consent, "whip", p, src); err != nil {
				r.log.Error("whip: consent", "session_id", sid, "err", err)
				problem(w, req, http.StatusInternalServerError, "internal", "could not record consent")
				return
			}
		}
		c, answer, err := r.connect(ctx, s, pid, d, raw, chosen)
		if oe, ok := errors.AsType[*offerError](err); ok {
			problem(w, req, oe.status, strings.ReplaceAll(oe.code, "_", "-"), oe.detail)
			return
		} else if errors.Is(err, errSessionEnded) {
			problem(w, req, http.StatusConflict, "session-ended", "session "+sid+" has ended")
			return
		} else if err != nil {
			r.log.Error("whip: connect", "session_id", sid, "participant_id", pid, "err", err)
			problem(w, req, http.StatusInternalServerError, "internal", "could not set up the connection")
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/sdp")
		h.Set("Location", "/whip/"+url.PathEscape(sid)+"/"+url.PathEscape(pid)+"/"+c.id)
		h.Set("ETag", `"`+c.id+`"`)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(answer))
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// sessionForWHIP returns the session, creating it (tenant of the token,
// department and labels of the query) when unknown.
func (r *Recorder) sessionForWHIP(ctx context.Context, p auth.Principal, id, dept string, labels map[string]string) (*session, bool, error) {
	s, err := r.liveSession(ctx, p.Tenant, id)
	if err != nil || s != nil {
		return s, false, err
	}
	row := r.newSessionRow(p.Tenant, id, dept, labels, time.Now())
	s, err = r.createSession(ctx, row)
	if errors.Is(err, errSessionExists) {
		s, err = r.liveSession(ctx, p.Tenant, id)
		if err == nil && s == nil {
			err = errors.New("recorder: session vanished")
		}
		return s, false, err
	}
	return s, err == nil, err
}

// upsertParticipant stores the participant (name, attributes, joined).
func (r *Recorder) upsertParticipant(ctx context.Context, s *session, pid string, q whipQuery) error {
	now := time.Now().UTC()
	row := meta.Participant{TenantID: s.key.tenant, SessionID: s.key.id, ID: pid, Name: q.name,
		Attributes: meta.NewJSON(q.attributes), Consent: policy.StateUnknown, JoinedAt: &now}
	cols := []string{"joined_at", "left_at", "updated_at"}
	if q.name != "" {
		cols = append(cols, "name")
	}
	if q.attributes != nil {
		cols = append(cols, "attributes")
	}
	if q.decision != nil {
		row.Decision = meta.NewJSON(decisionMap(*q.decision))
		cols = append(cols, "decision")
	}
	err := r.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "tenant_id"}, {Name: "session_id"}, {Name: "id"}},
		DoUpdates: clause.AssignmentColumns(cols),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("recorder: store participant %s: %w", pid, err)
	}
	return nil
}

// handleWHIPDelete is DELETE on a WHIP resource: ends that participant
// connection and finalizes its recording before answering.
func (r *Recorder) handleWHIPDelete(w http.ResponseWriter, req *http.Request, p auth.Principal) {
	sid, pid, rid := req.PathValue("session"), req.PathValue("participant"), req.PathValue("resource")
	r.mu.Lock()
	s := r.sessions[sessionKey{p.Tenant, sid}]
	r.mu.Unlock()
	var c *conn
	if s != nil {
		s.mu.Lock()
		c = s.conns[rid]
		s.mu.Unlock()
	}
	if c == nil || c.participant != pid {
		problem(w, req, http.StatusNotFound, "not-found", "no such WHIP resource")
		return
	}
	if !api.Authorize(w, req, p, auth.Ingest, auth.Resource{Tenant: s.key.tenant, Department: s.dept}) {
		return
	}
	c.end(req.Context(), endDelete)
	w.WriteHeader(http.StatusOK)
}

// handleWHIPPatch answers 405: candidates are all in the answer and the
// offer (no trickle ICE, no ICE restart; publish again instead).
func (r *Recorder) handleWHIPPatch(w http.ResponseWriter, req *http.Request, _ auth.Principal) {
	w.Header().Set("Allow", "DELETE")
	problem(w, req, http.StatusMethodNotAllowed, "method-not-allowed", "trickle ICE and ICE restarts are not supported: send every candidate in the offer, or publish again")
}

// recordConsent appends to the consent ledger: the participant's state, a
// ConsentRecord, a consent.recorded event and an audit entry in one
// transaction; then the live connections' gates follow.
func (r *Recorder) recordConsent(ctx context.Context, tenant, sid, pid, state, method string, p auth.Principal, source string) error {
	now := time.Now().UTC()
	err := r.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		part := meta.Participant{TenantID: tenant, SessionID: sid, ID: pid, Consent: state, ConsentMethod: method, ConsentAt: &now}
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "tenant_id"}, {Name: "session_id"}, {Name: "id"}},
			DoUpdates: clause.AssignmentColumns([]string{"consent", "consent_method", "consent_at", "updated_at"}),
		}).Create(&part).Error; err != nil {
			return err
		}
		rec := meta.ConsentRecord{TenantID: tenant, SessionID: sid, ParticipantID: pid, Granted: state == policy.StateGranted,
			State: state, Method: method, Actor: p.Actor(), At: now}
		if err := tx.Create(&rec).Error; err != nil {
			return err
		}
		if err := emitConsent(tx, tenant, sid, pid, state, method, now); err != nil {
			return err
		}
		return appendAudit(tx, p, source, actionConsent, "participant:"+sid+"/"+pid, map[string]any{
			"session_id": sid, "participant_id": pid, "state": state, "method": method})
	})
	if err != nil {
		return fmt.Errorf("recorder: record consent: %w", err)
	}
	r.mu.Lock()
	s := r.sessions[sessionKey{tenant, sid}]
	r.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.consent[pid] = state
	for _, c := range s.conns {
		if c.participant == pid {
			c.setGate(s.gateFor(c.decision, pid), now)
		}
	}
	s.mu.Unlock()
	r.refreshStatus(context.WithoutCancel(ctx), s)
	return nil
}
