package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/policy"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/storage"
)

// Storage is what the recorder needs from the encrypted object store.
// *storage.Store implements it.
type Storage interface {
	// NewWriter starts a recording's objects (draws and wraps its data key).
	NewWriter(ctx context.Context, tenant, recordingID string, opts storage.WriterOptions) (*storage.Writer, error)
	// RecoverWith seals what a crashed writer left behind.
	RecoverWith(ctx context.Context, tenant, recordingID string, opts storage.RecoverOptions) (storage.Manifest, error)
	// Open reads a recording back (crash recovery measures Ogg durations).
	Open(ctx context.Context, tenant, recordingID string, opts storage.ReadOptions) (*storage.Reader, error)
	// Ping reports whether new recordings can be written: key provider
	// and spool.
	Ping(ctx context.Context) error
}

var _ Storage = (*storage.Store)(nil)

// Options configure a Recorder.
type Options struct {
	DB    *gorm.DB
	Store Storage
	// Policies returns the policy set in force and its version (0: the
	// config file), read once per decision.
	Policies func() (*policy.Set, int)
	// Recording, Session and WebRTC are the config sections.
	Recording config.Recording
	Session   config.Session
	WebRTC    config.WebRTC
	// InstanceID marks this process's recordings for crash recovery.
	InstanceID string
	Logger     *slog.Logger
	// WebRTCOptions are extra options for the receive API (tests).
	WebRTCOptions []rtc.Option
	// WatchInterval is how often live sessions are checked (storage and key
	// provider health, participants' media, idle timeout; default 250 ms).
	WatchInterval time.Duration
}

// Recorder receives and records every participant connection of this
// process. It is safe for concurrent use.
type Recorder struct {
	opts Options
	db   *gorm.DB
	log  *slog.Logger
	api  *rtc.API

	// bg is the context of background work (connections' pipelines,
	// manifest retries); cancelled by Close after finalization.
	bg     context.Context
	stopBG context.CancelFunc
	retry  sync.WaitGroup

	mu       sync.Mutex
	sessions map[sessionKey]*session
	closing  bool

	// pulls are this process's WHEP pulls (pull.go).
	pulls pullSet
	// admission sheds new sessions under load (admission.go).
	admission admission

	health    atomic.Pointer[healthState]
	lastPing  time.Time
	metrics   *Metrics
	bufs      sync.Pool
	closeOnce sync.Once
}

type healthState struct {
	err error
	at  time.Time
}

// New builds a Recorder: the WebRTC API from opts.WebRTC, then crash
// recovery of every recording this instance left in recording or
// finalizing, then the active sessions of the database are loaded so that
// they end by idle timeout unless participants return. Call Close.
func New(ctx context.Context, opts Options) (*Recorder, error) {
	if opts.DB == nil || opts.Store == nil || opts.Policies == nil {
		return nil, errors.New("recorder: DB, Store and Policies are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Recording.PartSeconds <= 0 {
		opts.Recording.PartSeconds = 2
	}
	if opts.Recording.MediaGracePeriod <= 0 {
		opts.Recording.MediaGracePeriod = 10 * time.Second
	}
	if opts.Session.IdleTimeout <= 0 {
		opts.Session.IdleTimeout = 30 * time.Second
	}
	if opts.WatchInterval <= 0 {
		opts.WatchInterval = 250 * time.Millisecond
	}
	log := opts.Logger.With("component", "recorder")
	apiOpts := append([]rtc.Option{rtc.WithRole(rtc.RoleReceive), rtc.WithLogger(log, slog.LevelWarn)}, opts.WebRTCOptions...)
	api, err := rtc.NewAPI(opts.WebRTC, apiOpts...)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r := &Recorder{
		opts:     opts,
		db:       opts.DB,
		log:      log,
		api:      api,
		sessions: map[sessionKey]*session{},
		metrics:  newMetrics(),
	}
	r.bufs.New = func() any { b := make([]byte, readBufferSize); return &b }
	r.bg, r.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	r.metrics.sessions = r.countSessions
	r.pulls.init(r)
	if err := r.recoverCrashed(ctx); err != nil {
		r.stopBG()
		_ = api.Close()
		return nil, err
	}
	if err := r.loadActiveSessions(ctx); err != nil {
		r.stopBG()
		_ = api.Close()
		return nil, err
	}
	return r, nil
}

// readBufferSize holds any RTP packet pion delivers (its receive MTU is
// 1460 bytes).
const readBufferSize = 1500

// Metrics returns the recorder's Prometheus collectors' owner.
func (r *Recorder) Metrics() *Metrics { return r.metrics }

// Close finalizes every active recording as complete (SIGTERM), bounded
// by ctx, and releases the WebRTC API. Sessions stay active in the
// database: participants that reconnect after a restart continue them,
// and they end by idle timeout otherwise.
func (r *Recorder) Close(ctx context.Context) error {
	var err error
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		r.pulls.stopAll(ctx) // before the connections: no reconnect during shutdown
		r.mu.Lock()
		var conns []*conn
		for _, s := range r.sessions {
			s.mu.Lock()
			for _, c := range s.conns {
				conns = append(conns, c)
			}
			s.mu.Unlock()
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.end(ctx, endShutdown)
			}()
		}
		wg.Wait()
		// Manifest retries get until ctx ends.
		done := make(chan struct{})
		go func() { r.retry.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
		}
		r.stopBG()
		<-done
		err = r.api.Close()
	})
	return err
}

// isClosing reports whether Close has begun.
func (r *Recorder) isClosing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

func (r *Recorder) countSessions() (sessions, conns, tracks int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sessions {
		sessions++
		s.mu.Lock()
		for _, c := range s.conns {
			conns++
			tracks += int(c.activeTracks.Load())
		}
		s.mu.Unlock()
	}
	return sessions, conns, tracks
}

// decide takes a policy decision.
func (r *Recorder) decide(in policy.Input) (policy.Decision, int) {
	set, version := r.opts.Policies()
	return set.Decide(in), version
}

// Run watches live sessions until ctx ends: the storage and key provider
// of sessions that record (a required session fails closed within two
// seconds of an outage), participants' media (missing beyond
// recording.media_grace_period), and the idle timeout.
func (r *Recorder) Run(ctx context.Context) error {
	tk := time.NewTicker(r.opts.WatchInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tk.C:
			if r.isClosing() {
				return nil
			}
			r.watch(ctx, now)
		}
	}
}

// pingEvery is how often the store is pinged while a recording session is
// live: with the watch interval and the relay this keeps the fail-closed
// event within two seconds of an outage.
const pingEvery = 500 * time.Millisecond

func (r *Recorder) watch(ctx context.Context, now time.Time) {
	r.mu.Lock()
	live := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		live = append(live, s)
	}
	r.mu.Unlock()

	recording := false
	for _, s := range live {
		if s.decision.Records() && !s.isEnded() {
			recording = true
		}
	}
	var pingErr error
	if recording && now.Sub(r.lastPing) >= pingEvery {
		r.lastPing = now
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		pingErr = r.opts.Store.Ping(pctx)
		cancel()
		r.health.Store(&healthState{err: pingErr, at: now})
		if pingErr != nil {
			r.log.Warn("storage or key provider unavailable", "err", pingErr)
		}
	}
	grace := r.opts.Recording.MediaGracePeriod
	for _, s := range live {
		if pingErr != nil && s.decision.Records() {
			r.failSession(ctx, s, failStorage, "", true)
		}
		for _, c := range s.connections() {
			if c.decision.Record != policy.RecordRequired {
				continue
			}
			if last := c.lastMedia(); now.Sub(last) > grace && c.reportMissing() {
				r.log.Warn("participant media missing beyond the grace period", "session_id", s.key.id,
					"participant_id", c.participant, "grace", grace.String())
				r.failSession(ctx, s, failNoMedia, c.participant, true)
			}
		}
		if s.idleSince(now) > r.opts.Session.IdleTimeout {
			if err := r.endSession(ctx, s, endIdle); err != nil && !errors.Is(err, errSessionEnded) {
				r.log.Warn("end idle session", "session_id", s.key.id, "err", err)
			}
		}
	}
}

// storageHealthy pings the store for admission (fresh result when the
// watcher's is older than a second).
func (r *Recorder) storageHealthy(ctx context.Context) error {
	if h := r.health.Load(); h != nil && time.Since(h.at) < time.Second && h.err != nil {
		return h.err
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := r.opts.Store.Ping(pctx)
	r.health.Store(&healthState{err: err, at: time.Now()})
	return err
}
