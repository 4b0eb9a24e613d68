package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	pion "github.com/pion/webrtc/v4"
	"gorm.io/gorm"

	"github.com/custodian/custodian/policy"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/recorder/whep"
	"github.com/custodian/custodian/storage/meta"
)

// Pull statuses (meta.Pull.Status).
const (
	// PullConnecting: the first subscription is being set up.
	PullConnecting = "connecting"
	// PullActive: media is connected and recorded.
	PullActive = "active"
	// PullReconnecting: the source dropped; the gateway retries with
	// backoff. Error holds the last attempt's error.
	PullReconnecting = "reconnecting"
	// PullStopped: ended by DELETE, by the end of the session, or by a
	// gateway shutdown (Error says which).
	PullStopped = "stopped"
	// PullFailed: the first subscription failed (Error says why), or the
	// gateway instance that held the pull went away.
	PullFailed = "failed"
)

// Timing of pulls.
const (
	// pullConnectTimeout bounds one subscription: POST, answer, ICE and
	// DTLS connected.
	pullConnectTimeout = 15 * time.Second
	// pullBackoffMin and pullBackoffMax bound the wait between reconnect
	// attempts (doubling, with jitter).
	pullBackoffMin = 500 * time.Millisecond
	pullBackoffMax = 10 * time.Second
	// pullHeartbeat is how often live pull rows are touched; a row not
	// touched for pullStaleAfter belongs to an instance that went away.
	pullHeartbeat  = 30 * time.Second
	pullStaleAfter = 3 * pullHeartbeat
)

// errPullStopped ends a connection attempt when the pull is stopped.
var errPullStopped = errors.New("recorder: pull stopped")

// pullSet is the recorder's WHEP pulls on this instance.
type pullSet struct {
	r      *Recorder
	client *whep.Client

	mu     sync.Mutex
	byID   map[string]*pull
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
}

func (ps *pullSet) init(r *Recorder) {
	ps.r = r
	ps.client = &whep.Client{UserAgent: "custodian"}
	ps.byID = map[string]*pull{}
	ps.stop = make(chan struct{})
	ps.wg.Add(1)
	go ps.heartbeat()
}

// heartbeat touches the rows of live pulls and marks pulls of instances
// that went away (rows not touched for pullStaleAfter) as failed: a pull's
// token is held in memory only, so a pull does not survive its instance.
func (ps *pullSet) heartbeat() {
	defer ps.wg.Done()
	tk := time.NewTicker(pullHeartbeat)
	defer tk.Stop()
	for {
		ps.sweep()
		select {
		case <-ps.stop:
			return
		case <-ps.r.bg.Done():
			return
		case <-tk.C:
		}
	}
}

func (ps *pullSet) sweep() {
	r := ps.r
	ctx, cancel := context.WithTimeout(r.bg, 10*time.Second)
	defer cancel()
	ps.mu.Lock()
	ids := make([]string, 0, len(ps.byID))
	for id := range ps.byID {
		ids = append(ids, id)
	}
	ps.mu.Unlock()
	now := time.Now().UTC()
	if len(ids) > 0 {
		if err := r.db.WithContext(ctx).Model(&meta.Pull{}).Where("id IN ?", ids).Update("updated_at", now).Error; err != nil {
			r.log.Warn("pull heartbeat", "err", err)
		}
	}
	q := r.db.WithContext(ctx).Model(&meta.Pull{}).
		Where("status IN ? AND updated_at < ?", []string{PullConnecting, PullActive, PullReconnecting}, now.Add(-pullStaleAfter))
	if len(ids) > 0 {
		q = q.Where("id NOT IN ?", ids)
	}
	res := q.Updates(map[string]any{"status": PullFailed, "ended_at": now,
		"error": "the gateway instance that held this pull stopped; pulls do not survive a restart (create it again)"})
	if res.Error != nil {
		r.log.Warn("mark stale pulls", "err", res.Error)
	} else if res.RowsAffected > 0 {
		r.log.Warn("pulls of a stopped gateway instance marked failed", "pulls", res.RowsAffected)
	}
}

// stopAll stops every pull (gateway shutdown): their connections end and
// their rows say so.
func (ps *pullSet) stopAll(ctx context.Context) {
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return
	}
	ps.closed = true
	pulls := make([]*pull, 0, len(ps.byID))
	for _, p := range ps.byID {
		pulls = append(pulls, p)
	}
	close(ps.stop)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pulls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stopWith(ctx, "the gateway shut down; pulls do not survive a restart")
		}()
	}
	wg.Wait()
	ps.wg.Wait()
}

func (ps *pullSet) get(id string) *pull {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.byID[id]
}

// pull is one WHEP subscription kept alive: reconnected with backoff when
// the source drops, until stopped.
type pull struct {
	ps          *pullSet
	id          string
	s           *session
	participant string
	name        string
	attrs       map[string]string
	decision    policy.Decision
	endpoint    string // may carry credentials: never logged (whep.Redact)
	token       string // memory only, never logged or stored
	log         *slog.Logger
	created     time.Time

	stopc    chan struct{}
	stopOnce sync.Once
	stopMsg  string
	done     chan struct{}

	mu          sync.Mutex
	status      string
	lastErr     string
	conn        *conn
	res         *whep.Resource
	connections int
	failed      bool // the session was failed for this pull's outage
}

func (p *pull) stopped() bool {
	select {
	case <-p.stopc:
		return true
	default:
		return false
	}
}

// setStatus stores the pull's status and error (and ended_at for final
// statuses).
func (p *pull) setStatus(ctx context.Context, status, msg string) {
	p.mu.Lock()
	p.status, p.lastErr = status, msg
	p.mu.Unlock()
	upd := map[string]any{"status": status, "error": msg, "updated_at": time.Now().UTC()}
	if status == PullStopped || status == PullFailed {
		upd["ended_at"] = time.Now().UTC()
	}
	if err := p.ps.r.db.WithContext(context.WithoutCancel(ctx)).Model(&meta.Pull{}).Where("id = ?", p.id).Updates(upd).Error; err != nil {
		p.log.Warn("store pull status", "status", status, "err", err)
	}
}

// pullError is a failed subscription, classified for the API.
type pullError struct {
	status int    // HTTP status for the API
	code   string // problem type slug
	err    error
}

func (e *pullError) Error() string { return e.err.Error() }
func (e *pullError) Unwrap() error { return e.err }

// classify maps a subscription error to the API's answer.
func classify(err error) *pullError {
	if pe, ok := errors.AsType[*pullError](err); ok {
		return pe
	}
	switch {
	case errors.Is(err, whep.ErrUnreachable):
		return &pullError{502, "whep-unreachable", err}
	case errors.Is(err, whep.ErrNoMedia):
		return &pullError{502, "whep-no-media", err}
	case errors.Is(err, whep.ErrBadAnswer):
		return &pullError{502, "whep-bad-answer", err}
	case errors.Is(err, ErrStorageUnavailable):
		return &pullError{503, "storage-unavailable", err}
	case errors.Is(err, errSessionEnded):
		return &pullError{409, "session-ended", err}
	case errors.Is(err, ErrClosing), errors.Is(err, errPullStopped):
		return &pullError{503, "shutting-down", err}
	}
	if he, ok := errors.AsType[*whep.HTTPError](err); ok {
		return &pullError{502, "whep-refused", he}
	}
	if _, ok := errors.AsType[*offerError](err); ok {
		return &pullError{502, "whep-bad-answer", err}
	}
	if _, ok := errors.AsType[*RefusedError](err); ok {
		return &pullError{403, "recording-forbidden", err}
	}
	return &pullError{502, "whep-failed", err}
}

// connectOnce makes one subscription: a receive-only PeerConnection, its
// offer POSTed to the WHEP endpoint, the answer's codecs, the participant
// connection attached to the session, the answer applied, and ICE and
// DTLS connected. gap, when not nil, is the reconnect gap it follows.
func (p *pull) connectOnce(ctx context.Context, gap *gapInfo) (*conn, *whep.Resource, error) {
	r, s := p.ps.r, p.s
	if r.isClosing() {
		return nil, nil, ErrClosing
	}
	ctx, cancel := context.WithTimeout(ctx, pullConnectTimeout)
	defer cancel()
	go func() { // a stop cancels the attempt
		select {
		case <-p.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	d, err := r.admitSource(ctx, s, Participant{ID: p.participant, Name: p.name, Attributes: p.attrs})
	if err != nil {
		return nil, nil, err
	}
	p.decision = d
	pc, err := r.api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, nil, fmt.Errorf("recorder: new peer connection: %w", err)
	}
	for _, kind := range []pion.RTPCodecType{pion.RTPCodecTypeAudio, pion.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			return nil, nil, fmt.Errorf("recorder: add %s transceiver: %w", kind, err)
		}
	}
	p.mu.Lock()
	n := p.connections + 1
	p.mu.Unlock()
	var res *whep.Resource
	c, _, err := r.connectPC(ctx, s, p.participant, d, pc, "pull", func(c *conn) ([]negotiated, error) {
		offer, err := rtc.CreateOffer(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("recorder: pull offer: %w", err)
		}
		res, err = p.ps.client.Subscribe(ctx, p.endpoint, p.token, offer)
		if err != nil {
			if p.stopped() {
				return nil, errPullStopped
			}
			return nil, err
		}
		final, err := chooseCodecs([]byte(res.Answer))
		if err == nil && len(final) == 0 {
			err = &pullError{502, "whep-unsupported-codecs",
				fmt.Errorf("%w: the answer's media uses no codec the recorder records (Opus; VP8, VP9, AV1, H.264)", whep.ErrBadAnswer)}
		}
		if err != nil {
			return nil, err
		}
		c.annotate = sourceAnnotation(map[string]any{"kind": "whep", "pull_id": p.id, "url": whep.Redact(p.endpoint), "connection": n}, gap)
		return final, nil
	})
	del := func() {
		if res != nil {
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer dcancel()
			if err := res.Delete(dctx); err != nil {
				p.log.Debug("delete WHEP resource", "err", err)
			}
		}
	}
	if err != nil {
		del()
		return nil, nil, err
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnICEConnectionStateChange(func(st pion.ICEConnectionState) {
		switch st {
		case pion.ICEConnectionStateConnected, pion.ICEConnectionStateCompleted:
			once.Do(func() { close(connected) })
		case pion.ICEConnectionStateDisconnected, pion.ICEConnectionStateFailed:
			// The source stopped answering (consent freshness): end the
			// recording at its last packet and let the pull reconnect.
			if ns := c.lastPacket.Load(); ns != 0 {
				c.endAt.CompareAndSwap(0, ns)
			}
			go c.end(r.bg, endSourceDropped)
		}
	})
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: res.Answer}); err != nil {
		c.end(ctx, endSourceDropped)
		del()
		return nil, nil, fmt.Errorf("%w: %s", whep.ErrBadAnswer, rtc.ScrubICECredentials(err.Error()))
	}
	select {
	case <-connected:
	case <-c.done:
		del()
		return nil, nil, fmt.Errorf("recorder: pull: the connection to %s closed while connecting", whep.Redact(p.endpoint))
	case <-ctx.Done():
		c.end(context.WithoutCancel(ctx), endSourceDropped)
		del()
		if p.stopped() {
			return nil, nil, errPullStopped
		}
		return nil, nil, &pullError{504, "whep-not-connected",
			fmt.Errorf("recorder: pull: ICE/DTLS to %s did not connect within %v", whep.Redact(p.endpoint), pullConnectTimeout)}
	}
	p.mu.Lock()
	p.connections = n
	p.conn, p.res = c, res
	p.mu.Unlock()
	c.log.Info("pull connected", "pull_id", p.id, "connection", n, "codecs", c.codecs)
	return c, res, nil
}

// run keeps the pull alive from its first connection until it is stopped
// or its session ends: a dropped source is reconnected with backoff, and
// each new media connection is a new recording whose completeness report
// names the gap before it.
func (p *pull) run(c *conn) {
	r := p.ps.r
	defer p.ps.wg.Done()
	defer close(p.done)
	defer func() {
		p.ps.mu.Lock()
		delete(p.ps.byID, p.id)
		p.ps.mu.Unlock()
		p.s.unhold()
	}()
	ctx := r.bg
	for {
		select {
		case <-c.done:
		case <-p.stopc:
			// stopWith stores the status; the connection may have been
			// made after it looked.
			c.end(ctx, endPullStopped)
			return
		}
		reason := c.endReason
		p.mu.Lock()
		res := p.res
		p.conn, p.res = nil, nil
		p.mu.Unlock()
		go func() { // the source's resource is gone or useless
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = res.Delete(dctx)
		}()
		switch {
		case p.stopped():
			return
		case reason == endShutdown || r.isClosing():
			p.finish(ctx, PullStopped, "the gateway shut down; pulls do not survive a restart")
			return
		case p.s.isEnded():
			p.finish(ctx, PullStopped, "the session ended")
			return
		}
		lostAt := time.Now()
		if ns := c.lastPacket.Load(); ns != 0 {
			lostAt = time.Unix(0, ns)
		}
		gap := &gapInfo{startMS: p.s.clock.Since(lostAt) / 1e6, reason: reason}
		c.sink.mu.Lock()
		gap.previousRecording = c.sink.row.ID
		c.sink.mu.Unlock()
		p.log.Warn("pull source dropped; reconnecting", "reason", reason)
		p.setStatus(ctx, PullReconnecting, "the source dropped the connection ("+reason+")")
		var ok bool
		if c, ok = p.reconnect(ctx, gap, lostAt); !ok {
			return
		}
	}
}

// reconnect retries with backoff until a connection is made (true), or the
// pull is stopped or its session ends (false). While the source is away
// longer than the media grace period, a session that requires recording
// fails closed.
func (p *pull) reconnect(ctx context.Context, gap *gapInfo, lostAt time.Time) (*conn, bool) {
	r := p.ps.r
	backoff := pullBackoffMin
	grace := r.opts.Recording.MediaGracePeriod
	for attempt := 1; ; attempt++ {
		wait := backoff/2 + rand.N(backoff/2+1)
		if attempt == 1 {
			wait = 0
		}
		if until := time.Until(lostAt.Add(grace)); until > 0 && until < wait {
			wait = until // wake up to fail closed on time
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-p.stopc:
				t.Stop()
				return nil, false
			case <-t.C:
			}
		}
		switch {
		case p.stopped():
			return nil, false
		case r.isClosing():
			p.finish(ctx, PullStopped, "the gateway shut down; pulls do not survive a restart")
			return nil, false
		case p.s.isEnded():
			p.finish(ctx, PullStopped, "the session ended")
			return nil, false
		}
		c, _, err := p.connectOnce(ctx, gap)
		if err == nil && p.stopped() {
			c.end(ctx, endPullStopped)
			return nil, false
		}
		if err == nil {
			p.setStatus(ctx, PullActive, "")
			p.log.Info("pull reconnected", "attempts", attempt, "gap_ms", time.Since(lostAt).Milliseconds())
			return c, true
		}
		if p.stopped() {
			return nil, false
		}
		if errors.Is(err, errSessionEnded) {
			p.finish(ctx, PullStopped, "the session ended")
			return nil, false
		}
		msg := classify(err).Error()
		p.log.Warn("pull reconnect failed", "attempt", attempt, "err", msg)
		p.setStatus(ctx, PullReconnecting, msg)
		if time.Since(lostAt) >= grace {
			p.failClosed(ctx)
		}
		backoff = min(backoff*2, pullBackoffMax)
	}
}

// failClosed fails the session (once per pull) when its policy requires
// recording.
func (p *pull) failClosed(ctx context.Context) {
	p.mu.Lock()
	already := p.failed
	p.failed = true
	p.mu.Unlock()
	if already || p.s.isEnded() {
		return
	}
	if p.decision.Record == policy.RecordRequired || p.s.decision.Record == policy.RecordRequired {
		p.log.Warn("pull source unavailable beyond the media grace period; failing the session closed")
		p.ps.r.failSession(ctx, p.s, failSource, p.participant, true)
	}
}

// finish stores a final status.
func (p *pull) finish(ctx context.Context, status, msg string) {
	p.setStatus(ctx, status, msg)
	p.log.Info("pull ended", "status", status, "reason", msg)
}

// stopWith stops the pull: no more reconnects, the live connection ends
// (its recording finalized), the WHEP resource is deleted, and the row
// says PullStopped with msg. It returns when the pull's loop has exited.
func (p *pull) stopWith(ctx context.Context, msg string) {
	first := false
	p.stopOnce.Do(func() {
		first = true
		p.stopMsg = msg
		close(p.stopc)
	})
	p.mu.Lock()
	c, res := p.conn, p.res
	p.mu.Unlock()
	if c != nil {
		c.end(ctx, endPullStopped)
	}
	if res != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := res.Delete(dctx); err != nil {
			p.log.Debug("delete WHEP resource", "err", err)
		}
		cancel()
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	if first {
		p.finish(ctx, PullStopped, msg)
	}
}

// startPull creates a pull: its row, its first connection (synchronously,
// so the caller learns whether the source works), then the loop that keeps
// it alive. On error the row says PullFailed with the reason, and a
// session whose policy requires recording fails closed.
func (r *Recorder) startPull(ctx context.Context, s *session, participant, name, endpoint, token string, attrs map[string]string) (*pull, error) {
	ps := &r.pulls
	p := &pull{
		ps: ps, id: meta.NewID("pull"), s: s, participant: participant, name: name, attrs: attrs,
		endpoint: endpoint, token: token, created: time.Now(),
		stopc: make(chan struct{}), done: make(chan struct{}), status: PullConnecting,
	}
	p.log = r.log.With("session_id", s.key.id, "participant_id", participant, "pull_id", p.id, "whep_url", whep.Redact(endpoint))
	ps.mu.Lock()
	switch {
	case ps.closed:
		ps.mu.Unlock()
		return nil, ErrClosing
	case ps.activeLocked(s.key, participant):
		ps.mu.Unlock()
		return nil, errPullExists
	}
	if err := s.hold(); err != nil {
		ps.mu.Unlock()
		return nil, err
	}
	ps.byID[p.id] = p
	ps.wg.Add(1)
	ps.mu.Unlock()
	release := func() {
		ps.mu.Lock()
		delete(ps.byID, p.id)
		ps.mu.Unlock()
		s.unhold()
		ps.wg.Done()
	}
	now := time.Now().UTC()
	row := meta.Pull{ID: p.id, TenantID: s.key.tenant, SessionID: s.key.id, ParticipantID: participant, Name: name,
		URL: whep.Redact(endpoint), Status: PullConnecting, CreatedAt: now, UpdatedAt: now}
	if err := r.db.WithContext(ctx).Create(&row).Error; err != nil {
		release()
		return nil, fmt.Errorf("recorder: store pull: %w", err)
	}
	p.log.Info("pull starting")
	c, _, err := p.connectOnce(ctx, nil)
	if err != nil {
		release()
		pe := classify(err)
		p.setStatus(ctx, PullFailed, pe.Error())
		p.log.Warn("pull failed", "err", pe.Error())
		if pe.status != 403 && pe.status != 409 && !errors.Is(err, ErrStorageUnavailable) && !errors.Is(err, ErrClosing) {
			p.failClosed(ctx) // storage outages fail the session in admission
		}
		return p, pe
	}
	p.setStatus(ctx, PullActive, "")
	go p.run(c)
	return p, nil
}

// errPullExists: the participant already has a live pull in the session.
var errPullExists = errors.New("recorder: the participant already has an active pull in this session")

func (ps *pullSet) activeLocked(key sessionKey, participant string) bool {
	for _, p := range ps.byID {
		if p.s.key == key && p.participant == participant {
			return true
		}
	}
	return false
}

// isPullStatusLive reports whether a stored status is a live one.
func isPullStatusLive(status string) bool {
	return status == PullConnecting || status == PullActive || status == PullReconnecting
}

// PullDoc is a pull as the API shows it (GET /v1/sessions/{id} "pulls",
// POST and DELETE of /v1/sessions/{id}/pull).
type PullDoc struct {
	ID            string `json:"id"`
	SessionID     string `json:"session_id"`
	ParticipantID string `json:"participant_id"`
	Name          string `json:"name,omitempty"`
	// URL is the WHEP endpoint without user info, query or fragment.
	URL    string `json:"url"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Connections is how many media connections the pull has made on this
	// gateway instance (1 + reconnects); 0 when it is not held here.
	Connections int        `json:"connections"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
}

func (r *Recorder) pullDoc(row meta.Pull) PullDoc {
	d := PullDoc{ID: row.ID, SessionID: row.SessionID, ParticipantID: row.ParticipantID, Name: row.Name, URL: row.URL,
		Status: row.Status, Error: row.Error, CreatedAt: row.CreatedAt.UTC(), UpdatedAt: row.UpdatedAt.UTC(), EndedAt: row.EndedAt}
	if p := r.pulls.get(row.ID); p != nil {
		p.mu.Lock()
		d.Connections = p.connections
		d.Status, d.Error = p.status, p.lastErr
		p.mu.Unlock()
	}
	return d
}

// pullDocs lists a session's pulls, oldest first.
func (r *Recorder) pullDocs(ctx context.Context, tenant, sessionID string) ([]PullDoc, error) {
	var rows []meta.Pull
	if err := r.db.WithContext(ctx).Where("tenant_id = ? AND session_id = ?", tenant, sessionID).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("recorder: list pulls: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]PullDoc, 0, len(rows))
	for _, row := range rows {
		out = append(out, r.pullDoc(row))
	}
	return out, nil
}

// loadPull reads a pull row of a session.
func (r *Recorder) loadPull(ctx context.Context, tenant, sessionID, id string) (meta.Pull, error) {
	var row meta.Pull
	err := r.db.WithContext(ctx).Where("tenant_id = ? AND session_id = ? AND id = ?", tenant, sessionID, id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, err
	}
	if err != nil {
		return row, fmt.Errorf("recorder: load pull %s: %w", id, err)
	}
	return row, nil
}
