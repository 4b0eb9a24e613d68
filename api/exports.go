package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/api/export"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe/render"
	"gorm.io/gorm"
)

// Export job states (meta.Export.Status).
const (
	ExportPending  = "pending"
	ExportRunning  = "running"
	ExportComplete = "complete"
	ExportFailed   = "failed"
)

// Limits of exports.
const (
	// MaxExportRecordings bounds the recordings of one export.
	MaxExportRecordings = 10000
	// maxExportSessions bounds session_ids in a request.
	maxExportSessions = 1000
	// ExportChunkSize is the size of the objects an encrypted bundle is
	// stored as ({tenant}/exports/{id}/bundle-NNNNNN.age; all but the last
	// exactly this size), so that it streams into the blob store with
	// bounded memory and any instance can serve it.
	ExportChunkSize = 8 << 20
	// exportLeaseTTL is how long a job's lease lasts without renewal; a
	// job whose instance died is taken over after it.
	exportLeaseTTL = time.Minute
	// exportPoll is how often idle workers look for jobs of other instances.
	exportPoll = 5 * time.Second
)

// ExportFilters select recordings like GET /v1/recordings.
type ExportFilters struct {
	SessionID     string `json:"session_id,omitempty"`
	ParticipantID string `json:"participant_id,omitempty"`
	Department    string `json:"department,omitempty"`
	Status        string `json:"status,omitempty"`
	From          string `json:"from,omitempty"` // RFC 3339
	To            string `json:"to,omitempty"`
}

// times parses From and To (zero when empty).
func (f ExportFilters) times() (from, to time.Time, err error) {
	if f.From != "" {
		if from, err = time.Parse(time.RFC3339Nano, f.From); err != nil {
			return from, to, badField("filters.from", "not an RFC 3339 time such as 2026-01-31T09:00:00Z")
		}
	}
	if f.To != "" {
		if to, err = time.Parse(time.RFC3339Nano, f.To); err != nil {
			return from, to, badField("filters.to", "not an RFC 3339 time such as 2026-01-31T09:00:00Z")
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, badField("filters.to", "must be after from")
	}
	return from.UTC(), to.UTC(), nil
}

// ExportRequest is the body of POST /v1/exports: session_ids or filters
// (not both), and the recipient's age public key.
type ExportRequest struct {
	SessionIDs []string       `json:"session_ids,omitempty"`
	Filters    *ExportFilters `json:"filters,omitempty"`
	Recipient  string         `json:"recipient"`
	Name       string         `json:"name,omitempty"`
}

// ExportJSON is an export job as the API shows it.
type ExportJSON struct {
	ID          string          `json:"id"`
	Tenant      string          `json:"tenant"`
	Name        string          `json:"name,omitempty"`
	Status      string          `json:"status"`
	Progress    float64         `json:"progress"`
	Recipient   string          `json:"recipient"`
	Recordings  int             `json:"recordings"`
	Size        int64           `json:"size,omitempty"`
	SHA256      string          `json:"sha256,omitempty"`
	Error       string          `json:"error,omitempty"`
	CreatedBy   string          `json:"created_by"`
	CreatedAt   time.Time       `json:"created_at"`
	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	SigningKey  *SigningKeyJSON `json:"signing_key,omitempty"`
	Links       ExportLinks     `json:"links"`
}

// ExportLinks are the URLs of an export.
type ExportLinks struct {
	Self     string `json:"self"`
	Download string `json:"download,omitempty"`
}

func encodeKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// exportRecordingIDs returns the recording ids resolved at creation.
func exportRecordingIDs(e meta.Export) []string {
	var raw []any
	switch v := e.Request.V["recording_ids"].(type) {
	case []any:
		raw = v
	case []string:
		for _, s := range v {
			raw = append(raw, s)
		}
	}
	ids := make([]string, 0, len(raw))
	for _, x := range raw {
		if s, ok := x.(string); ok && meta.ValidID(s) {
			ids = append(ids, s)
		}
	}
	return ids
}

func (v *V1) exportJSON(ctx context.Context, e meta.Export) ExportJSON {
	out := ExportJSON{
		ID: e.ID, Tenant: e.TenantID, Status: e.Status, Progress: e.Progress, Recipient: e.Recipient,
		Recordings: len(exportRecordingIDs(e)), Size: e.Size, SHA256: e.SHA256, Error: e.Error,
		CreatedBy: e.CreatedBy, CreatedAt: e.CreatedAt, CompletedAt: e.CompletedAt,
		Links: ExportLinks{Self: "/v1/exports/" + e.ID},
	}
	out.Name, _ = e.Request.V["name"].(string)
	if e.Status == ExportComplete {
		out.Links.Download = "/v1/exports/" + e.ID + "/download"
	}
	if v.opts.SigningKey != nil {
		if priv, keyID, err := v.opts.SigningKey(ctx); err == nil {
			out.SigningKey = &SigningKeyJSON{KeyID: keyID, PublicKey: encodeKey(priv.Public().(ed25519.PublicKey))}
			clear(priv)
		}
	}
	return out
}

// validate checks an export request and returns the recipient.
func (req ExportRequest) validate() (age.Recipient, error) {
	switch {
	case len(req.SessionIDs) > 0 && req.Filters != nil:
		return nil, badField("session_ids", "give session_ids or filters, not both")
	case len(req.SessionIDs) == 0 && req.Filters == nil:
		return nil, badField("session_ids", "give session_ids or filters")
	case len(req.SessionIDs) > maxExportSessions:
		return nil, badField("session_ids", "at most %d sessions", maxExportSessions)
	}
	for _, id := range req.SessionIDs {
		if !meta.ValidID(id) {
			return nil, badField("session_ids", "%q is not a valid id", id)
		}
	}
	if f := req.Filters; f != nil {
		if f.SessionID != "" && !meta.ValidID(f.SessionID) {
			return nil, badField("filters.session_id", "not a valid id")
		}
		if f.ParticipantID != "" && !meta.ValidID(f.ParticipantID) {
			return nil, badField("filters.participant_id", "not a valid id")
		}
		if err := checkText(f.Department, 128); err != nil {
			return nil, badField("filters.department", "%s", err)
		}
		if f.Status != "" && !containsString(recordingStatuses, f.Status) {
			return nil, badField("filters.status", "not a recording status")
		}
		if _, _, err := f.times(); err != nil {
			return nil, err
		}
	}
	if err := checkText(req.Name, 200); err != nil {
		return nil, badField("name", "%s", err)
	}
	if req.Recipient == "" {
		return nil, badField("recipient", "an age public key (age1…) is required")
	}
	rcpt, err := export.ParseRecipient(req.Recipient)
	if err != nil {
		return nil, &RequestError{Kind: "invalid-recipient", Field: "recipient",
			Reason: "not an age X25519 public key (age1…) or hybrid key (age1pq1…)"}
	}
	return rcpt, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// selectExport resolves the recordings of an export request that p may
// export, by the same scope as GET /v1/recordings.
func (v *V1) selectExport(ctx context.Context, p auth.Principal, req ExportRequest) ([]string, error) {
	var filters []recordingFilter
	if req.Filters != nil {
		f := recordingFilter{SessionID: req.Filters.SessionID, ParticipantID: req.Filters.ParticipantID,
			Department: req.Filters.Department, Status: req.Filters.Status}
		var err error
		if f.From, f.To, err = req.Filters.times(); err != nil {
			return nil, err
		}
		filters = append(filters, f)
	}
	for _, s := range req.SessionIDs {
		filters = append(filters, recordingFilter{SessionID: s})
	}
	seen := map[string]bool{}
	var ids []string
	for _, f := range filters {
		f.Limit = MaxLimit
		for {
			page, next, err := v.queryRecordings(ctx, p, auth.ExportsWrite, f)
			if err != nil {
				return nil, err
			}
			for _, r := range page {
				if !seen[r.ID] {
					seen[r.ID] = true
					ids = append(ids, r.ID)
				}
			}
			if len(ids) > MaxExportRecordings {
				return nil, badField("filters", "more than %d recordings match; narrow the selection", MaxExportRecordings)
			}
			if next == "" {
				break
			}
			if f.After, err = DecodeCursor("recordings", next); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

func (v *V1) createExport(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req ExportRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeRequestError(w, r, err)
		return
	}
	if _, err := req.validate(); err != nil {
		writeRequestError(w, r, err)
		return
	}
	if !Authorize(w, r, p, auth.ExportsWrite, auth.Resource{Tenant: p.Tenant, Collection: true}) {
		return
	}
	ctx := r.Context()
	ids, err := v.selectExport(ctx, p, req)
	var re *RequestError
	if errors.As(err, &re) {
		writeRequestError(w, r, err)
		return
	}
	if err != nil {
		v.internal(w, r, "select export", err)
		return
	}
	if len(ids) == 0 {
		writeRequestError(w, r, &RequestError{Kind: "empty-selection", Reason: "no recording you may read matches the selection"})
		return
	}
	request := map[string]any{"recording_ids": ids}
	if req.Name != "" {
		request["name"] = req.Name
	}
	if len(req.SessionIDs) > 0 {
		request["session_ids"] = req.SessionIDs
	}
	if req.Filters != nil {
		b, _ := json.Marshal(req.Filters)
		var fm map[string]any
		json.Unmarshal(b, &fm)
		request["filters"] = fm
	}
	e := meta.Export{
		ID: meta.NewID("exp"), TenantID: p.Tenant, Status: ExportPending, Recipient: req.Recipient,
		Request: meta.NewJSON(request), CreatedBy: p.Actor(), CreatedAt: v.now().UTC().Truncate(time.Microsecond),
	}
	err = v.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&e).Error; err != nil {
			return err
		}
		_, err := audit.AppendTx(tx, v.entry(r, p, audit.ActionExportCreate, "export:"+e.ID, audit.OutcomeSuccess,
			map[string]any{"recordings": len(ids), "recipient": req.Recipient}))
		return err
	})
	if err != nil {
		v.internal(w, r, "create export", err)
		return
	}
	v.WakeExports()
	w.Header().Set("Location", "/v1/exports/"+e.ID)
	WriteJSON(w, http.StatusAccepted, v.exportJSON(ctx, e))
}

// loadExport reads path parameter id and the export row and checks perm.
func (v *V1) loadExport(w http.ResponseWriter, r *http.Request, p auth.Principal, perm auth.Permission, action string) (meta.Export, bool) {
	id, err := PathID(r, "id")
	if err != nil {
		writeRequestError(w, r, err)
		return meta.Export{}, false
	}
	target := "export:" + id
	var e meta.Export
	err = v.db.WithContext(r.Context()).Where("id = ?", id).Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		v.notFound(w, r, p, action, target)
		return e, false
	}
	if err != nil {
		v.internal(w, r, "load export", err)
		return e, false
	}
	if !v.authorize(w, r, p, perm, auth.Resource{Tenant: e.TenantID}, action, target) {
		return e, false
	}
	return e, true
}

func (v *V1) getExport(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	e, ok := v.loadExport(w, r, p, auth.ExportsRead, actionExportRead)
	if !ok {
		return
	}
	WriteJSON(w, http.StatusOK, v.exportJSON(r.Context(), e))
}

func (v *V1) downloadExport(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	e, ok := v.loadExport(w, r, p, auth.ExportsRead, audit.ActionExportDownload)
	if !ok {
		return
	}
	target := "export:" + e.ID
	if e.Status != ExportComplete {
		v.record(r, p, audit.ActionExportDownload, target, audit.OutcomeError, map[string]any{"status": http.StatusConflict})
		WriteProblem(w, r, http.StatusConflict, "export-not-ready", "the export is "+e.Status)
		return
	}
	details := map[string]any{"size": e.Size}
	if rg := r.Header.Get("Range"); rg != "" {
		if len(rg) > maxRangeDetail {
			rg = rg[:maxRangeDetail] + "…"
		}
		details["range"] = rg
	}
	if !v.recordOrFail(w, r, p, audit.ActionExportDownload, target, details) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+e.SHA256+`"`)
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="`+e.ID+`.zip.age"`)
	cr := &chunkReaderAt{ctx: r.Context(), store: v.opts.Bundles, base: e.ObjectKey, size: e.Size}
	http.ServeContent(w, r, "", time.Time{}, io.NewSectionReader(cr, 0, e.Size))
}

// chunkKey returns the object key of chunk n of a bundle.
func chunkKey(base string, n int64) string {
	s := strconv.FormatInt(n, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return base + "bundle-" + s + ".age"
}

// exportPrefix is where an export's chunks live.
func exportPrefix(tenant, id string) string { return tenant + "/exports/" + id + "/" }

// chunkReaderAt reads a bundle stored as ExportChunkSize chunks, keeping
// the last window read so that sequential reads fetch each byte once.
type chunkReaderAt struct {
	ctx   context.Context
	store BundleStore
	base  string
	size  int64

	mu     sync.Mutex
	winOff int64
	win    []byte
}

// chunkWindow is how much of a chunk one fetch reads.
const chunkWindow = 1 << 20

func (c *chunkReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= c.size {
			return n, io.EOF
		}
		c.mu.Lock()
		if pos < c.winOff || pos >= c.winOff+int64(len(c.win)) {
			chunk := pos / ExportChunkSize
			inChunk := pos % ExportChunkSize
			want := min(int64(chunkWindow), ExportChunkSize-inChunk, c.size-pos)
			b, err := c.store.GetRange(c.ctx, chunkKey(c.base, chunk), inChunk, want)
			if err != nil {
				c.mu.Unlock()
				return n, fmt.Errorf("api: read export chunk %d: %w", chunk, err)
			}
			if len(b) == 0 {
				c.mu.Unlock()
				return n, fmt.Errorf("api: export chunk %d is shorter than expected", chunk)
			}
			c.winOff, c.win = pos, b
		}
		n += copy(p[n:], c.win[pos-c.winOff:])
		c.mu.Unlock()
	}
	return n, nil
}

// chunkWriter stores what is written as ExportChunkSize objects under
// base, hashing it (SHA-256) and counting its size.
type chunkWriter struct {
	ctx   context.Context
	store BundleStore
	base  string
	buf   []byte
	n     int64 // chunks written
	size  int64
	hash  hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newChunkWriter(ctx context.Context, store BundleStore, base string) *chunkWriter {
	return &chunkWriter{ctx: ctx, store: store, base: base, buf: make([]byte, 0, ExportChunkSize), hash: sha256.New()}
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), ExportChunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p, written = p[k:], written+k
		if len(c.buf) == ExportChunkSize {
			if err := c.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := c.store.Put(c.ctx, chunkKey(c.base, c.n), c.buf, storage.PutOptions{}); err != nil {
		return fmt.Errorf("api: store export chunk %d: %w", c.n, err)
	}
	c.hash.Write(c.buf)
	c.size += int64(len(c.buf))
	c.n++
	c.buf = c.buf[:0]
	return nil
}

// Close stores the last chunk.
func (c *chunkWriter) Close() error { return c.flush() }

// remove deletes the chunks written so far (a failed export).
func (c *chunkWriter) remove(ctx context.Context) {
	for i := range c.n + 1 {
		c.store.Delete(ctx, chunkKey(c.base, i))
	}
}

// WakeExports makes the export worker look for jobs now.
func (v *V1) WakeExports() {
	select {
	case v.exportWake <- struct{}{}:
	default:
	}
}

// RunExports builds export bundles until ctx ends: jobs created on this
// instance at once, others' (and those of an instance that died) within
// exportPoll. A job runs on one instance at a time, the holder of the
// lease "export:{id}".
func (v *V1) RunExports(ctx context.Context) error {
	if v.opts.Owner == "" {
		v.opts.Owner = meta.NewID("inst")
	}
	t := time.NewTicker(exportPoll)
	defer t.Stop()
	for {
		v.runExportsOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-v.exportWake:
		case <-t.C:
		}
	}
}

func (v *V1) runExportsOnce(ctx context.Context) {
	var jobs []meta.Export
	if err := v.db.WithContext(ctx).Where("status IN ?", []string{ExportPending, ExportRunning}).
		Order("id").Limit(20).Find(&jobs).Error; err != nil {
		if ctx.Err() == nil {
			v.log.Warn("export jobs", "err", err)
		}
		return
	}
	for _, e := range jobs {
		if ctx.Err() != nil {
			return
		}
		lease := "export:" + e.ID
		ok, err := meta.TryLease(ctx, v.db, lease, v.opts.Owner, exportLeaseTTL)
		if err != nil || !ok {
			continue
		}
		v.runExport(ctx, e, lease)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		meta.ReleaseLease(rctx, v.db, lease, v.opts.Owner)
		cancel()
	}
}

// runExport builds one bundle while renewing its lease; losing the lease
// (or ctx) stops it, and the job stays for the next holder.
func (v *V1) runExport(ctx context.Context, e meta.Export, lease string) {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(exportLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if err := meta.RenewLease(jctx, v.db, lease, v.opts.Owner, exportLeaseTTL); err != nil {
					v.log.Warn("export lease lost; stopping", "export_id", e.ID, "err", err)
					cancel()
					return
				}
			}
		}
	}()
	defer func() { cancel(); <-renewed }()
	log := v.log.With("export_id", e.ID)
	res := v.db.WithContext(jctx).Model(&meta.Export{}).Where("id = ? AND status IN ?", e.ID, []string{ExportPending, ExportRunning}).
		Updates(map[string]any{"status": ExportRunning, "progress": 0})
	if res.Error != nil || res.RowsAffected != 1 {
		return
	}
	base := exportPrefix(e.TenantID, e.ID)
	cw := newChunkWriter(jctx, v.opts.Bundles, base)
	err := v.buildBundle(jctx, e, cw)
	if jctx.Err() != nil && ctx.Err() != nil {
		return // shutting down: the job is taken up again
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer dcancel()
	if err != nil {
		cw.remove(dctx)
		log.Error("export failed", "err", err)
		msg := err.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		now := v.now().UTC()
		v.db.WithContext(dctx).Model(&meta.Export{}).Where("id = ?", e.ID).
			Updates(map[string]any{"status": ExportFailed, "error": msg, "completed_at": now})
		return
	}
	now := v.now().UTC()
	if err := v.db.WithContext(dctx).Model(&meta.Export{}).Where("id = ?", e.ID).Updates(map[string]any{
		"status": ExportComplete, "progress": 1, "object_key": base, "size": cw.size,
		"sha256": hex.EncodeToString(cw.hash.Sum(nil)), "completed_at": now, "error": "",
	}).Error; err != nil {
		log.Error("export: record completion", "err", err)
		return
	}
	log.Info("export complete", "size", cw.size)
}

// buildBundle streams the export's recordings through zip → age → cw.
func (v *V1) buildBundle(ctx context.Context, e meta.Export, cw *chunkWriter) error {
	rcpt, err := export.ParseRecipient(e.Recipient)
	if err != nil {
		return err
	}
	if v.opts.SigningKey == nil {
		return errors.New("api: export: no signing key")
	}
	key, keyID, err := v.opts.SigningKey(ctx)
	if err != nil {
		return err
	}
	defer clear(key)
	ids := exportRecordingIDs(e)
	var recs []meta.Recording
	for start := 0; start < len(ids); start += 500 {
		var batch []meta.Recording
		end := min(start+500, len(ids))
		if err := v.db.WithContext(ctx).Where("tenant_id = ? AND id IN ?", e.TenantID, ids[start:end]).Order("id").Find(&batch).Error; err != nil {
			return fmt.Errorf("api: export: load recordings: %w", err)
		}
		recs = append(recs, batch...)
	}
	var total int64
	for _, r := range recs {
		total += r.Size
	}
	prog := &progress{v: v, ctx: ctx, id: e.ID, total: max(total, 1)}
	aw, err := age.Encrypt(cw, rcpt)
	if err != nil {
		return fmt.Errorf("api: export: encrypt: %w", err)
	}
	request := map[string]any{}
	for k, val := range e.Request.V {
		if k != "recording_ids" {
			request[k] = val
		}
	}
	bw := export.NewWriter(aw, export.Manifest{
		ExportID: e.ID, Tenant: e.TenantID, CreatedAt: e.CreatedAt, CreatedBy: e.CreatedBy, Request: request,
	})
	found := map[string]bool{}
	for _, rec := range recs {
		found[rec.ID] = true
		if err := v.exportRecording(ctx, bw, rec, prog); err != nil {
			return err
		}
	}
	for _, id := range ids {
		if !found[id] {
			bw.Omit(export.Omitted{RecordingID: id, What: "recording", Reason: "no longer exists"})
		}
	}
	if _, err := bw.Close(key, keyID); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("api: export: finish encryption: %w", err)
	}
	return cw.Close()
}

// progress records an export's progress at most once a second.
type progress struct {
	v     *V1
	ctx   context.Context
	id    string
	total int64
	done  int64
	last  time.Time
}

func (p *progress) add(n int64) {
	p.done += n
	if time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	frac := min(float64(p.done)/float64(p.total), 0.99)
	p.v.db.WithContext(p.ctx).Model(&meta.Export{}).Where("id = ?", p.id).Update("progress", frac)
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(int64(n))
	return n, err
}

// exportRecording adds one recording's files to the bundle. What cannot
// be read (shredded, unfinished, failing verification) is listed as
// omitted with the reason; only a failure of the bundle itself is an error.
func (v *V1) exportRecording(ctx context.Context, bw *export.Writer, rec meta.Recording, prog *progress) error {
	dir := "recordings/" + rec.ID + "/"
	entry := export.Recording{RecordingID: rec.ID, SessionID: rec.SessionID, ParticipantID: rec.ParticipantID,
		Status: rec.Status, ContentType: rec.ContentType}
	add := func(name string, compress bool, fill func(io.Writer) error) error {
		if err := bw.Add(dir+name, compress, fill); err != nil {
			return err
		}
		entry.Files = append(entry.Files, dir+name)
		return nil
	}
	info := recordingJSON(rec)
	info.Completeness = rec.Completeness.V
	info.Links = Links{}
	mb, _ := json.MarshalIndent(info, "", "  ")
	if err := add("recording.json", true, writeBytes(append(mb, '\n'))); err != nil {
		return err
	}
	cb, _ := json.MarshalIndent(rec.Completeness.V, "", "  ")
	if err := add("completeness.json", true, writeBytes(append(cb, '\n'))); err != nil {
		return err
	}
	if err := v.exportMedia(ctx, bw, rec, dir, &entry, prog); err != nil {
		return err
	}
	var trs []meta.Transcript
	if err := v.db.WithContext(ctx).Where("recording_id = ? AND tenant_id = ? AND status = ?", rec.ID, rec.TenantID, meta.TranscriptCompleted).
		Limit(1).Find(&trs).Error; err != nil {
		return fmt.Errorf("api: export: transcript row of %s: %w", rec.ID, err)
	}
	if len(trs) == 1 {
		t, err := v.loadTranscript(ctx, trs[0])
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			bw.Omit(export.Omitted{RecordingID: rec.ID, What: "transcript", Reason: omitReason(err)})
		} else {
			tj, err := render.JSON(t)
			if err != nil {
				return err
			}
			if err := add("transcript.json", true, writeBytes(tj)); err != nil {
				return err
			}
			if err := add("transcript.vtt", true, func(w io.Writer) error {
				return render.VTT(w, render.Segments(t), rec.StartOffsetMS)
			}); err != nil {
				return err
			}
		}
	}
	bw.AddRecording(entry)
	return nil
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error { _, err := w.Write(b); return err }
}

func (v *V1) exportMedia(ctx context.Context, bw *export.Writer, rec meta.Recording, dir string, entry *export.Recording, prog *progress) error {
	switch rec.Status {
	case meta.StatusDeleted:
		bw.Omit(export.Omitted{RecordingID: rec.ID, What: "media", Reason: "key destroyed"})
		return nil
	case meta.StatusRecording, meta.StatusFinalizing:
		bw.Omit(export.Omitted{RecordingID: rec.ID, What: "media", Reason: "still being recorded"})
		return nil
	}
	rd, err := v.opts.Store.Open(ctx, rec.TenantID, rec.ID, storage.ReadOptions{AllowIncomplete: rec.Status != meta.StatusComplete})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		bw.Omit(export.Omitted{RecordingID: rec.ID, What: "media", Reason: omitReason(err)})
		return nil
	}
	defer rd.Close()
	name := "media" + extension(rec.ContentType)
	err = bw.Add(dir+name, false, func(w io.Writer) error {
		_, err := rd.Stream(ctx, progressWriter{w, prog})
		return err
	})
	if err != nil {
		// A part failing verification mid-stream leaves a partial zip
		// entry: the bundle cannot be finished consistently.
		return fmt.Errorf("api: export: recording %s: %w", rec.ID, err)
	}
	entry.Files = append(entry.Files, dir+name)
	return nil
}

func omitReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrKeyDestroyed):
		return "key destroyed"
	case errors.Is(err, storage.ErrIncomplete), storage.IsNotFound(err):
		return "not available"
	case storage.IsIntegrity(err), errors.Is(err, ErrTranscriptIntegrity):
		return "failed integrity check"
	default:
		return "unreadable"
	}
}
