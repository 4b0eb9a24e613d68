package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/render"
	"gorm.io/gorm"
)

// TranscriptObject is the name of the sealed object holding a recording's
// (redacted, when the policy says so) transcript JSON.
const TranscriptObject = "transcript"

// UnredactedObject names the unredacted copy kept when a policy sets
// keep_unredacted (written by the transcription worker).
const UnredactedObject = "transcript-unredacted"

// Transcript read failures.
var (
	// ErrTranscriptIntegrity: the sealed transcript object is not the one
	// recorded in the database (its SHA-256 differs: replaced or rolled
	// back), or it does not decode.
	ErrTranscriptIntegrity = errors.New("api: transcript failed its integrity check")
)

// loadTranscript reads, checks and decodes the transcript of a recording
// whose row is tr (status completed).
func (v *V1) loadTranscript(ctx context.Context, tr meta.Transcript) (transcribe.Transcript, error) {
	return v.loadTranscriptObject(ctx, tr, TranscriptObject, tr.CipherSHA256)
}

// loadTranscriptObject reads the sealed transcript object name of tr's
// recording and checks it is the one recorded (wantSHA256).
func (v *V1) loadTranscriptObject(ctx context.Context, tr meta.Transcript, name, wantSHA256 string) (transcribe.Transcript, error) {
	// Decrypt first (a shredded key answers ErrKeyDestroyed), then check
	// that the sealed object is the one recorded before using it.
	pt, err := v.opts.Store.GetObject(ctx, tr.TenantID, tr.RecordingID, name)
	if err != nil {
		return transcribe.Transcript{}, err
	}
	defer clear(pt)
	if v.opts.Sealed != nil {
		sealed, err := v.opts.Sealed(ctx, storage.ObjectKey(tr.TenantID, tr.RecordingID, name))
		if err != nil {
			return transcribe.Transcript{}, fmt.Errorf("api: fetch transcript of %s: %w", tr.RecordingID, err)
		}
		sum := sha256.Sum256(sealed)
		got := hex.EncodeToString(sum[:])
		if wantSHA256 == "" || subtle.ConstantTimeCompare([]byte(got), []byte(wantSHA256)) != 1 {
			return transcribe.Transcript{}, fmt.Errorf("%w: recording %s: object SHA-256 %s, recorded %q",
				ErrTranscriptIntegrity, tr.RecordingID, got, wantSHA256)
		}
	}
	var t transcribe.Transcript
	if err := json.Unmarshal(pt, &t); err != nil {
		return transcribe.Transcript{}, fmt.Errorf("%w: recording %s: %v", ErrTranscriptIntegrity, tr.RecordingID, err)
	}
	if t.RecordingID != "" && t.RecordingID != tr.RecordingID {
		return transcribe.Transcript{}, fmt.Errorf("%w: object names recording %s", ErrTranscriptIntegrity, t.RecordingID)
	}
	if t.RecordingID == "" {
		t.RecordingID = tr.RecordingID
	}
	return t, nil
}

func transcriptFormat(r *http.Request) (string, error) {
	q, err := ParseQuery(r, "format")
	if err != nil {
		return "", err
	}
	f, err := q.OneOf("format", render.FormatJSON, render.FormatVTT, render.FormatText)
	if f == "" && err == nil {
		f = render.FormatJSON
	}
	return f, err
}

func (v *V1) getRecordingTranscript(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v.serveRecordingTranscript(w, r, p, false)
}

// getUnredactedTranscript serves the unredacted copy kept by a policy
// with keep_unredacted: a separate permission and a separate audit action.
func (v *V1) getUnredactedTranscript(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v.serveRecordingTranscript(w, r, p, true)
}

func (v *V1) serveRecordingTranscript(w http.ResponseWriter, r *http.Request, p auth.Principal, unredacted bool) {
	perm, action := auth.TranscriptsRead, audit.ActionTranscriptRead
	if unredacted {
		perm, action = auth.TranscriptsUnredacted, audit.ActionTranscriptReadUnredacted
	}
	format, err := transcriptFormat(r)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	rec, ok := v.loadRecording(w, r, p, perm, action)
	if !ok {
		return
	}
	target := "recording:" + rec.ID
	fail := func(status int, kind, detail string) {
		v.record(r, p, action, target, audit.OutcomeError, map[string]any{"status": status})
		WriteProblem(w, r, status, kind, detail)
	}
	ctx := r.Context()
	var rows []meta.Transcript
	if err := v.db.WithContext(ctx).Where("recording_id = ? AND tenant_id = ?", rec.ID, rec.TenantID).Limit(1).Find(&rows).Error; err != nil {
		v.internal(w, r, "load transcript row", err)
		return
	}
	if len(rows) == 0 {
		fail(http.StatusNotFound, "no-transcript", "the recording has no transcript")
		return
	}
	tr := rows[0]
	switch tr.Status {
	case meta.TranscriptCompleted:
	case meta.TranscriptDeleted:
		fail(http.StatusGone, "key-destroyed", "the transcript was deleted: key destroyed")
		return
	default:
		fail(http.StatusConflict, "transcript-not-ready", "the transcript is "+tr.Status)
		return
	}
	var t transcribe.Transcript
	if unredacted {
		if tr.UnredactedKey == "" {
			fail(http.StatusNotFound, "no-unredacted-transcript", "no unredacted copy was kept (the policy did not set keep_unredacted)")
			return
		}
		t, err = v.loadTranscriptObject(ctx, tr, UnredactedObject, tr.UnredactedSHA256)
	} else {
		t, err = v.loadTranscript(ctx, tr)
	}
	if !v.transcriptError(w, r, p, target, err) {
		return
	}
	if !v.recordOrFail(w, r, p, action, target, map[string]any{"format": format}) {
		return
	}
	var body bytes.Buffer
	switch format {
	case render.FormatJSON:
		b, err := render.JSON(t)
		if err != nil {
			v.internal(w, r, "render transcript", err)
			return
		}
		body.Write(b)
	case render.FormatVTT:
		// Cues on the recording's own timeline, so the file works as a
		// <track> of its media; the JSON keeps the session clock.
		err = render.VTT(&body, render.Segments(t), rec.StartOffsetMS)
	case render.FormatText:
		err = render.Text(&body, render.Segments(t), rec.StartOffsetMS)
	}
	if err != nil {
		v.internal(w, r, "render transcript", err)
		return
	}
	writeTranscript(w, format, body.Bytes())
}

func writeTranscript(w http.ResponseWriter, format string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", render.ContentType(format))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	clear(body)
}

// transcriptError answers a failed transcript load (and returns false), or
// returns true for err == nil.
func (v *V1) transcriptError(w http.ResponseWriter, r *http.Request, p auth.Principal, target string, err error) bool {
	if err == nil {
		return true
	}
	status, kind, detail := http.StatusInternalServerError, "internal", "internal error"
	switch {
	case errors.Is(err, storage.ErrKeyDestroyed):
		status, kind, detail = http.StatusGone, "key-destroyed", "the transcript's key was destroyed: key destroyed"
	case errors.Is(err, ErrTranscriptIntegrity), storage.IsIntegrity(err):
		v.log.Error("transcript failed verification", "target", target, "err", err)
		kind, detail = "integrity", "the stored transcript failed its integrity check"
	case storage.IsNotFound(err):
		v.log.Error("transcript object missing", "target", target, "err", err)
		kind, detail = "integrity", "the stored transcript is missing"
	default:
		v.log.Error("read transcript", "target", target, "err", err)
	}
	v.record(r, p, audit.ActionTranscriptRead, target, audit.OutcomeError, map[string]any{"status": status})
	WriteProblem(w, r, status, kind, detail)
	return false
}

func (v *V1) getSessionTranscript(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	format, err := transcriptFormat(r)
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	id, err := PathID(r, "id")
	if err != nil {
		writeRequestError(w, r, err)
		return
	}
	target := "session:" + id
	ctx := r.Context()
	// Sessions are keyed by tenant and id: another tenant's session of the
	// same id is simply not found.
	var s meta.Session
	err = v.db.WithContext(ctx).Where("tenant_id = ? AND id = ?", p.Tenant, id).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		v.notFound(w, r, p, audit.ActionTranscriptRead, target)
		return
	}
	if err != nil {
		v.internal(w, r, "load session", err)
		return
	}
	dec, err := decodeDecision(s.Decision.V)
	if err != nil {
		v.internal(w, r, "load session policy", fmt.Errorf("session %s: %w", s.ID, err))
		return
	}
	res := auth.Resource{Tenant: s.TenantID, Department: s.Department, Policy: dec}
	if !v.authorize(w, r, p, auth.TranscriptsRead, res, audit.ActionTranscriptRead, target) {
		return
	}
	var rows []meta.Transcript
	q := auth.Scope(p).Where(v.db.WithContext(ctx).Model(&meta.Transcript{}), "tenant_id", "department")
	if err := q.Where("session_id = ? AND status = ?", s.ID, meta.TranscriptCompleted).Order("recording_id").Find(&rows).Error; err != nil {
		v.internal(w, r, "list session transcripts", err)
		return
	}
	ts := make([]transcribe.Transcript, 0, len(rows))
	for _, tr := range rows {
		t, err := v.loadTranscript(ctx, tr)
		if errors.Is(err, storage.ErrKeyDestroyed) {
			continue // deleted since the row was read
		}
		if !v.transcriptError(w, r, p, target, err) {
			return
		}
		ts = append(ts, t)
	}
	if !v.recordOrFail(w, r, p, audit.ActionTranscriptRead, target, map[string]any{"format": format, "recordings": len(ts)}) {
		return
	}
	merged := render.Merge(s.ID, ts)
	var body bytes.Buffer
	switch format {
	case render.FormatJSON:
		b, err := merged.JSON()
		if err != nil {
			v.internal(w, r, "render session transcript", err)
			return
		}
		body.Write(b)
	case render.FormatVTT:
		err = render.VTT(&body, merged.Segments, 0)
	case render.FormatText:
		err = render.Text(&body, merged.Segments, 0)
	}
	if err != nil {
		v.internal(w, r, "render session transcript", err)
		return
	}
	writeTranscript(w, format, body.Bytes())
}
