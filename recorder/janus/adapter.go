package janus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/storage/meta"
)

// Recorder is what the adapter needs from the recorder
// (*recorder.Recorder).
type Recorder interface {
	// Decide is the policy decision a new session of spec would get.
	Decide(spec recorder.SessionSpec) policy.Decision
	// Hold opens (creating) a session and keeps it from ending by idle
	// timeout until released.
	Hold(ctx context.Context, spec recorder.SessionSpec) (*recorder.Hold, error)
}

var _ Recorder = (*recorder.Recorder)(nil)

// Options configure an Adapter.
type Options struct {
	// Config is the janus section: url, rooms or all_rooms, tenant,
	// secret.
	Config   config.Janus
	Recorder Recorder
	Logger   *slog.Logger
	// HTTP sends the API requests (default: 10 s timeout).
	HTTP *http.Client
	// RescanInterval is how often the room list is read again (all_rooms)
	// and rooms that are missing or not joined are retried (default 10 s).
	RescanInterval time.Duration
	// GracePeriod is how long Janus may be unreachable, and a publisher
	// fail to be subscribed, before the sessions of rooms whose policy
	// requires recording fail closed (default 10 s, as
	// recording.media_grace_period).
	GracePeriod time.Duration
	// Display is the name the recorder joins rooms with (default
	// "Custodian recorder").
	Display string
}

// End reasons of recordings made through Janus (completeness report
// end_reason).
const (
	EndPublisherLeft = "publisher_left"
	EndRoomDestroyed = "room_destroyed"
	EndJanusLost     = "janus_session_lost"
	EndAdapterStop   = "adapter_stopped"
	EndJanusHangup   = "janus_hangup"
)

// Janus and VideoRoom error codes the adapter acts on.
const (
	errNoSuchRoom = 426
)

// Adapter records the publishers of Janus VideoRoom rooms. Run it.
type Adapter struct {
	opts   Options
	log    *slog.Logger
	client *Client
	rec    Recorder
	fixed  []ID // configured rooms (not all_rooms)

	attaches atomic.Int64
	session  atomic.Uint64 // the Janus session id while attached

	mu          sync.Mutex
	rooms       map[string]*room
	connected   bool
	lastErr     string
	outageSince time.Time
	outageFail  bool
}

// room is a governed room; it outlives Janus sessions (its hold keeps
// the session janus-{room} open across a Janus restart).
type room struct {
	id          ID
	description string
	hold        *recorder.Hold
	watching    bool
	skipLogged  bool
	missing     bool
	subs        atomic.Int32
}

// New checks the options and returns an adapter.
func New(opts Options) (*Adapter, error) {
	c := opts.Config
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, errors.New("janus: url must be the http(s) URL of the Janus HTTP API, e.g. http://127.0.0.1:8088/janus")
	case !c.AllRooms && len(c.Rooms) == 0:
		return nil, errors.New("janus: set rooms or all_rooms")
	case c.Tenant == "" || !meta.ValidID(c.Tenant):
		return nil, errors.New("janus: tenant must be a tenant id")
	case opts.Recorder == nil:
		return nil, errors.New("janus: a recorder is required")
	}
	for _, r := range c.Rooms {
		if !meta.ValidID("janus-" + r) {
			return nil, fmt.Errorf("janus: room %q: ids are letters, digits, '-', '_', '.', ':' or '@'", r)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RescanInterval <= 0 {
		opts.RescanInterval = 10 * time.Second
	}
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = 10 * time.Second
	}
	if opts.Display == "" {
		opts.Display = "Custodian recorder"
	}
	a := &Adapter{
		opts:   opts,
		log:    opts.Logger.With("component", "janus", "janus_url", (&Client{URL: c.URL}).redacted()),
		client: &Client{URL: c.URL, Secret: c.Secret, HTTP: opts.HTTP},
		rec:    opts.Recorder,
		rooms:  map[string]*room{},
	}
	for _, r := range c.Rooms {
		a.fixed = append(a.fixed, ParseID(r))
	}
	return a, nil
}

// Status is the adapter's state, for tests, metrics and operators.
type Status struct {
	// Connected: a Janus session is attached.
	Connected bool
	// Error is the last error talking to Janus (empty while connected).
	Error string
	// Attaches counts the Janus sessions created (1 + re-attaches).
	Attaches int64
	// SessionID is the Janus session while connected.
	SessionID uint64
	// Rooms are the rooms joined now, with their live subscriptions.
	Rooms map[string]int
}

// Status returns the adapter's state.
func (a *Adapter) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{Connected: a.connected, Error: a.lastErr, Attaches: a.attaches.Load(), SessionID: a.session.Load(), Rooms: map[string]int{}}
	for id, r := range a.rooms {
		if r.watching {
			st.Rooms[id] = int(r.subs.Load())
		}
	}
	return st
}

// Run attaches to Janus and records the governed rooms until ctx ends;
// when Janus restarts or the Janus session is lost it attaches again
// (backoff up to 2 s). At return every recording it made has ended and
// every session hold is released.
func (a *Adapter) Run(ctx context.Context) error {
	defer a.releaseAll()
	backoff := 250 * time.Millisecond
	for {
		started := time.Now()
		err := a.runSession(ctx)
		if ctx.Err() != nil {
			return nil
		}
		a.mu.Lock()
		a.connected = false
		a.lastErr = err.Error()
		first := a.outageSince.IsZero()
		if first {
			a.outageSince = time.Now()
		}
		since := a.outageSince
		a.mu.Unlock()
		if first {
			a.log.Error("janus unavailable; attaching again", "err", err)
		} else {
			a.log.Debug("janus still unavailable", "err", err, "for", time.Since(since).Round(time.Second).String())
		}
		if time.Since(since) >= a.opts.GracePeriod {
			a.failRooms(ctx, err)
		}
		if time.Since(started) > 10*time.Second {
			backoff = 250 * time.Millisecond
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if until := time.Until(since.Add(a.opts.GracePeriod)); until > 0 && until < wait {
			wait = until
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// failRooms fails closed, once per outage, the sessions of the governed
// rooms whose policy requires recording (Janus is unreachable beyond the
// grace period).
func (a *Adapter) failRooms(ctx context.Context, cause error) {
	a.mu.Lock()
	if a.outageFail {
		a.mu.Unlock()
		return
	}
	a.outageFail = true
	ids := slices.Clone(a.fixed)
	for _, r := range a.rooms {
		if !slices.Contains(ids, r.id) {
			ids = append(ids, r.id)
		}
	}
	a.mu.Unlock()
	for _, id := range ids {
		r := a.room(id, "")
		if a.rec.Decide(a.spec(r, a.sessionID(id, 1))).Record != policy.RecordRequired {
			continue
		}
		if err := a.ensureHold(ctx, r); err != nil {
			a.log.Error("janus: open room session to fail it", "room", id.String(), "err", err)
			continue
		}
		if r.hold.FailClosed(ctx, "") {
			a.log.Error("janus unreachable beyond the grace period: the room's session fails closed", "room", id.String(),
				"session_id", r.hold.SessionID(), "err", cause)
		}
	}
}

func (a *Adapter) releaseAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.rooms {
		if r.hold != nil {
			r.hold.Release()
			r.hold = nil
		}
	}
}

// room returns the room's state, creating it.
func (a *Adapter) room(id ID, description string) *room {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rooms[id.String()]
	if r == nil {
		r = &room{id: id}
		a.rooms[id.String()] = r
	}
	if description != "" {
		r.description = description
	}
	return r
}

// sessionID is the session of a room: janus-{room}, or janus-{room}-{n}
// once earlier ones have ended.
func (a *Adapter) sessionID(id ID, n int) string {
	if n <= 1 {
		return "janus-" + id.String()
	}
	return fmt.Sprintf("janus-%s-%d", id, n)
}

// spec is the session of a room: the configured tenant, and department and
// labels from the room's description, plus source=janus and janus_room.
func (a *Adapter) spec(r *room, sessionID string) recorder.SessionSpec {
	m := ParseDescription(r.description) // at most maxLabels, leaving room for two
	labels := m.Labels
	labels["source"] = "janus"
	if v := r.id.String(); len(v) <= maxLabelValueLen && !strings.Contains(v, ",") {
		labels["janus_room"] = v
	}
	return recorder.SessionSpec{Tenant: a.opts.Config.Tenant, ID: sessionID, Department: m.Department, Labels: labels}
}

// ensureHold holds the room's session open: janus-{room}, or the next
// janus-{room}-{n} when it has ended (POST /v1/sessions/{id}/end).
func (a *Adapter) ensureHold(ctx context.Context, r *room) error {
	a.mu.Lock()
	h := r.hold
	a.mu.Unlock()
	if h != nil && !h.Ended() {
		return nil
	}
	if h != nil {
		h.Release()
	}
	for n := 1; n <= 1000; n++ {
		h, err := a.rec.Hold(ctx, a.spec(r, a.sessionID(r.id, n)))
		if errors.Is(err, recorder.ErrSessionEnded) {
			continue
		}
		if err != nil {
			return err
		}
		a.mu.Lock()
		r.hold = h
		a.mu.Unlock()
		return nil
	}
	return errors.New("janus: no free session id for the room")
}

// runSession creates a Janus session and governs the rooms on it until the
// session is lost, Janus is unreachable, or ctx ends.
func (a *Adapter) runSession(ctx context.Context) error {
	sess, err := a.client.Create(ctx)
	if err != nil {
		return err
	}
	a.attaches.Add(1)
	a.session.Store(sess.ID)
	defer a.session.Store(0)
	keep := 25 * time.Second
	if info, err := a.client.Info(ctx); err == nil && info.SessionTimeout > 0 {
		keep = min(keep, time.Duration(info.SessionTimeout)*time.Second/3)
	}
	keep = max(keep, 500*time.Millisecond)
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { // events
		for sctx.Err() == nil {
			ms, err := sess.Poll(sctx, 10)
			if err != nil {
				if sctx.Err() == nil {
					cancel(fmt.Errorf("janus: event poll: %w", err))
				}
				return
			}
			for _, m := range ms {
				if !sess.Dispatch(m) {
					a.log.Warn("janus event dropped (handle unknown or busy)", "janus", m.Janus, "sender", m.Sender)
				}
			}
		}
	})
	wg.Go(func() { // keepalives
		tk := time.NewTicker(keep)
		defer tk.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tk.C:
			}
			kctx, kcancel := context.WithTimeout(sctx, 5*time.Second)
			err := sess.Keepalive(kctx)
			kcancel()
			if err != nil && sctx.Err() == nil {
				cancel(fmt.Errorf("janus: keepalive: %w", err))
				return
			}
		}
	})
	ctl, err := sess.Attach(sctx, Plugin)
	if err == nil {
		a.mu.Lock()
		a.connected, a.lastErr = true, ""
		if !a.outageSince.IsZero() {
			a.log.Info("janus reachable again; attached", "session", sess.ID, "outage", time.Since(a.outageSince).Round(time.Millisecond).String())
		} else {
			a.log.Info("attached to janus", "session", sess.ID, "keepalive", keep.String())
		}
		a.outageSince, a.outageFail = time.Time{}, false
		a.mu.Unlock()
		tk := time.NewTicker(a.opts.RescanInterval)
		for sctx.Err() == nil {
			a.scan(sctx, sess, ctl, &wg)
			select {
			case <-sctx.Done():
			case <-tk.C:
			}
		}
		tk.Stop()
	} else {
		cancel(err)
	}
	cause := context.Cause(sctx)
	wg.Wait()
	if !errors.Is(cause, ErrNoSession) && !errors.Is(cause, ErrUnreachable) {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = sess.Destroy(dctx) // best effort: free Janus's resources now
		dcancel()
	}
	if cause == nil {
		cause = errors.New("janus: session ended")
	}
	return cause
}

// scan finds the rooms to govern and starts a watcher for each that is not
// watched yet.
func (a *Adapter) scan(ctx context.Context, sess *Session, ctl *Handle, wg *sync.WaitGroup) {
	listed := map[string]RoomInfo{}
	data, err := ctl.Request(ctx, map[string]any{"request": "list"})
	if err == nil {
		ev, perr := ParseEvent(data)
		if perr == nil {
			for _, ri := range ev.List {
				listed[ri.Room.String()] = ri
			}
		}
	} else if ctx.Err() == nil {
		a.log.Warn("janus: list rooms", "err", err)
	}
	var ids []ID
	if a.opts.Config.AllRooms {
		if err != nil {
			return
		}
		for _, ri := range listed {
			ids = append(ids, ri.Room)
		}
	} else {
		ids = a.fixed
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		r := a.room(id, listed[id.String()].Description)
		a.mu.Lock()
		busy := r.watching
		a.mu.Unlock()
		if busy {
			continue
		}
		if _, ok := listed[id.String()]; !ok {
			// Not public, or not there: ask.
			data, err := ctl.Request(ctx, map[string]any{"request": "exists", "room": id})
			if err != nil {
				a.log.Warn("janus: room exists?", "room", id.String(), "err", err)
				continue
			}
			if ev, _ := ParseEvent(data); !ev.Exists {
				a.roomMissing(ctx, r)
				continue
			}
		}
		if a.rec.Decide(a.spec(r, a.sessionID(id, 1))).Record == policy.RecordOff {
			if !r.skipLogged {
				r.skipLogged = true
				a.log.Info("janus room not joined: its policy is record: off", "room", id.String())
			}
			continue
		}
		if err := a.ensureHold(ctx, r); err != nil {
			a.log.Error("janus: open the room's session", "room", id.String(), "err", err)
			continue
		}
		a.mu.Lock()
		r.watching, r.missing = true, false
		a.mu.Unlock()
		wg.Go(func() {
			defer func() {
				a.mu.Lock()
				r.watching = false
				a.mu.Unlock()
			}()
			if err := a.watchRoom(ctx, sess, r); err != nil && ctx.Err() == nil {
				a.log.Warn("janus: room watch ended", "room", id.String(), "err", err)
			}
		})
	}
}

// roomMissing reports a governed room that does not exist (once until it
// appears) and fails its session closed when the policy requires
// recording.
func (a *Adapter) roomMissing(ctx context.Context, r *room) {
	a.mu.Lock()
	first := !r.missing
	r.missing = true
	a.mu.Unlock()
	if !first {
		return
	}
	a.log.Error("janus: governed room does not exist", "room", r.id.String())
	if a.rec.Decide(a.spec(r, a.sessionID(r.id, 1))).Record != policy.RecordRequired {
		return
	}
	if err := a.ensureHold(ctx, r); err != nil {
		a.log.Error("janus: open the room's session", "room", r.id.String(), "err", err)
		return
	}
	r.hold.FailClosed(ctx, "")
}

// watchRoom joins the room as a participant that does not publish and
// subscribes to every publisher until the room is destroyed or ctx ends.
func (a *Adapter) watchRoom(ctx context.Context, sess *Session, r *room) error {
	h, err := sess.Attach(ctx, Plugin)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = h.Detach(dctx)
		cancel()
	}()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	data, _, err := h.Call(cctx, map[string]any{"request": "join", "ptype": "publisher", "room": r.id, "display": a.opts.Display}, nil)
	ccancel()
	if pe, ok := errors.AsType[*PluginError](err); ok && pe.Code == errNoSuchRoom {
		a.roomMissing(ctx, r)
		return nil
	}
	if err != nil {
		return fmt.Errorf("join room %s: %w", r.id, err)
	}
	ev, err := ParseEvent(data)
	if err != nil {
		return err
	}
	if ev.VideoRoom != "joined" {
		return fmt.Errorf("join room %s: answered %q", r.id, ev.VideoRoom)
	}
	a.log.Info("janus room joined", "room", r.id.String(), "session_id", r.hold.SessionID(), "publishers", len(ev.Publishers))
	subs := map[string]*sub{}
	done := make(chan string, 16)
	add := func(ps []Publisher) {
		for _, p := range ps {
			if p.ID == ev.ID || subs[p.ID.String()] != nil {
				continue
			}
			s := &sub{a: a, r: r, sess: sess, pub: p, privateID: ev.PrivateID, stop: make(chan string, 1), done: make(chan struct{})}
			subs[p.ID.String()] = s
			r.subs.Add(1)
			go func() {
				defer r.subs.Add(-1)
				s.run(ctx)
				select {
				case done <- p.ID.String():
				case <-ctx.Done():
				}
			}()
		}
	}
	stopAll := func(reason string) {
		for _, s := range subs {
			s.end(reason)
		}
		for _, s := range subs {
			<-s.done
		}
	}
	add(ev.Publishers)
	for {
		select {
		case <-ctx.Done():
			reason := EndJanusLost
			if context.Cause(ctx) == nil || errors.Is(context.Cause(ctx), context.Canceled) {
				reason = EndAdapterStop
			}
			stopAll(reason)
			return nil
		case id := <-done:
			delete(subs, id)
		case m := <-h.Events:
			if m.Janus == "detached" || m.Janus == "hangup" {
				stopAll(EndJanusLost)
				return fmt.Errorf("room %s: the watching handle was %s", r.id, m.Janus)
			}
			if m.PluginData == nil {
				continue
			}
			ev, err := ParseEvent(m.PluginData.Data)
			if err != nil {
				a.log.Warn("janus: bad videoroom event", "room", r.id.String(), "err", err)
				continue
			}
			if ev.VideoRoom == "destroyed" {
				a.log.Info("janus room destroyed", "room", r.id.String())
				stopAll(EndRoomDestroyed)
				a.mu.Lock()
				hold := r.hold
				r.hold = nil
				a.mu.Unlock()
				if hold != nil {
					hold.Release()
				}
				return nil
			}
			add(ev.Publishers)
			if id, ok := ev.Gone(); ok {
				if s := subs[id.String()]; s != nil {
					s.end(EndPublisherLeft)
				}
			}
		}
	}
}

// sub records one publisher: a subscriber handle and a participant
// connection, made again (with backoff) when it fails while the publisher
// is still there.
type sub struct {
	a         *Adapter
	r         *room
	sess      *Session
	pub       Publisher
	privateID uint64
	stop      chan string // why to stop (buffered 1)
	done      chan struct{}
	once      sync.Once
}

func (s *sub) end(reason string) {
	s.once.Do(func() { s.stop <- reason })
}

// participantID is the publisher's participant id: its Janus id, or a
// digest of it when the id is not a valid participant id.
func participantID(p Publisher) string {
	if id := p.ID.String(); meta.ValidID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(p.ID.String()))
	return "feed-" + hex.EncodeToString(sum[:8])
}

// displayName is a Janus display name fit for a participant name.
func displayName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}

func (s *sub) run(ctx context.Context) {
	defer close(s.done)
	a := s.a
	pid := participantID(s.pub)
	log := a.log.With("room", s.r.id.String(), "participant_id", pid)
	backoff := 500 * time.Millisecond
	var failingSince time.Time
	for attempt := 1; ; attempt++ {
		conn, h, err := s.subscribe(ctx, pid)
		if err == nil {
			failingSince = time.Time{}
			if attempt > 1 {
				log.Info("janus subscription made again", "attempt", attempt)
			}
			reason, again := s.wait(ctx, conn, h, log)
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = h.Detach(dctx)
			cancel()
			if !again {
				log.Info("janus publisher recording ended", "reason", reason)
				return
			}
			log.Warn("janus subscription ended while the publisher is there; subscribing again", "reason", reason)
			backoff = 500 * time.Millisecond
		} else {
			var refused *recorder.RefusedError
			switch {
			case errors.As(err, &refused):
				log.Info("janus publisher not recorded", "err", err)
				select { // the policy does not change for this publisher
				case <-s.stop:
				case <-ctx.Done():
				}
				return
			case errors.Is(err, recorder.ErrSessionEnded), errors.Is(err, recorder.ErrClosing), ctx.Err() != nil:
				return
			}
			log.Warn("janus subscribe failed", "attempt", attempt, "err", err)
			if failingSince.IsZero() {
				failingSince = time.Now()
			} else if time.Since(failingSince) >= a.opts.GracePeriod && s.r.hold != nil && s.r.hold.FailClosed(ctx, pid) {
				log.Error("janus publisher could not be recorded beyond the grace period: the session fails closed")
			}
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// wait waits for the end of a subscription: the publisher left or the
// adapter stopped (again false), or the connection ended on its own or
// Janus hung it up (again true).
func (s *sub) wait(ctx context.Context, conn *recorder.Connection, h *Handle, log *slog.Logger) (string, bool) {
	for {
		select {
		case reason := <-s.stop:
			conn.End(context.WithoutCancel(ctx), reason)
			return reason, false
		case <-ctx.Done():
			reason := EndJanusLost
			if context.Cause(ctx) == nil || errors.Is(context.Cause(ctx), context.Canceled) {
				reason = EndAdapterStop
			}
			conn.End(context.WithoutCancel(ctx), reason)
			return reason, false
		case <-conn.Done():
			reason := conn.EndReason()
			// Shutdown, the session's end or a storage failure: the
			// recorder ended it; do not fight it.
			again := reason == "peer_closed"
			return reason, again
		case m := <-h.Events:
			switch m.Janus {
			case "hangup", "detached":
				log.Debug("janus hung up the subscription", "reason", m.Reason)
				conn.End(context.WithoutCancel(ctx), EndJanusHangup)
				return EndJanusHangup, true
			}
		}
	}
}

// subscribe attaches a subscriber handle for the publisher's first audio
// and first video stream, answers Janus's offer through the recorder and
// starts the media.
func (s *sub) subscribe(ctx context.Context, pid string) (*recorder.Connection, *Handle, error) {
	a := s.a
	var streams []map[string]any
	kinds := map[string]bool{}
	for _, st := range s.pub.Streams {
		if st.Disabled || (st.Type != "audio" && st.Type != "video") || kinds[st.Type] {
			continue
		}
		kinds[st.Type] = true
		streams = append(streams, map[string]any{"feed": s.pub.ID, "mid": st.MID})
	}
	if len(s.pub.Streams) == 0 {
		streams = []map[string]any{{"feed": s.pub.ID}}
	}
	if len(streams) == 0 {
		return nil, nil, errors.New("janus: the publisher has no audio or video stream")
	}
	h, err := s.sess.Attach(ctx, Plugin)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*recorder.Connection, *Handle, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = h.Detach(dctx)
		cancel()
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body := map[string]any{"request": "join", "ptype": "subscriber", "room": s.r.id, "streams": streams}
	if s.privateID != 0 {
		body["private_id"] = s.privateID
	}
	_, jsep, err := h.Call(cctx, body, nil)
	if err != nil {
		return fail(fmt.Errorf("janus: subscribe to %s: %w", s.pub.ID, err))
	}
	if jsep == nil || jsep.Type != "offer" {
		return fail(fmt.Errorf("janus: subscribe to %s: no offer", s.pub.ID))
	}
	hold := s.r.hold
	if hold == nil {
		return fail(recorder.ErrSessionEnded)
	}
	// Janus offers actpass and drops DTLS packets that arrive before its
	// ICE agent reports connected; pion answering as the DTLS client
	// often loses its first ClientHello to that and retransmits after a
	// second, so the first second of media is missed. Taking the offer as
	// setup:active makes the recorder the DTLS server: Janus starts the
	// handshake when it is ready.
	offer := strings.ReplaceAll(jsep.SDP, "a=setup:actpass", "a=setup:active")
	conn, answer, err := hold.Answer(cctx, recorder.Participant{
		ID: pid, Name: displayName(s.pub.Display), Attributes: map[string]string{"source": "janus"},
		Source: map[string]any{"kind": "janus", "room": s.r.id.String(), "feed": s.pub.ID.String(), "url": a.client.redacted()},
	}, []byte(offer))
	if err != nil {
		return fail(err)
	}
	if _, _, err := h.Call(cctx, map[string]any{"request": "start"}, &JSEP{Type: "answer", SDP: string(answer)}); err != nil {
		conn.End(context.WithoutCancel(ctx), EndJanusHangup)
		return fail(fmt.Errorf("janus: start %s: %w", s.pub.ID, err))
	}
	a.log.Info("janus publisher recording", "room", s.r.id.String(), "participant_id", pid, "name", displayName(s.pub.Display),
		"session_id", hold.SessionID())
	return conn, h, nil
}
