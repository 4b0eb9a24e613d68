package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder/whip"
)

// Options configure Run.
type Options struct {
	// URL is the gateway's base URL (http://127.0.0.1:8080): publishers
	// POST to URL/whip/{session}/{participant}, the read-back uses
	// URL/v1/recordings.
	URL string
	// Token is the bearer token: role ingest for publishing, admin (or
	// compliance) also for the read-back.
	Token string
	// Sessions is the number of sessions, Participants the publishers per
	// session (default 1).
	Sessions, Participants int
	// Duration is how long each publisher sends.
	Duration time.Duration
	// Ramp is how many sessions start per second (0: all at once).
	Ramp float64
	// Audio and Video are the media every publisher sends (at least one).
	Audio, Video *whip.Media
	// Impairment applies to every publisher (loss, jitter, reordering).
	Impairment whip.Impairment
	// SessionPrefix starts every session id (default "loadgen-" and the
	// start time); session i is PREFIX-000001, participants p1, p2, ...
	SessionPrefix string
	// Pacers is the number of sending goroutines (default 1).
	Pacers int
	// ConnectTimeout bounds each publisher's setup (default 15 s).
	ConnectTimeout time.Duration
	// Tail is how long a publisher stays connected after its last packet
	// before it ends its WHIP resource (default 250 ms), so that packets
	// still on their way are recorded, as when a caller hangs up.
	Tail time.Duration
	// ReadBack reads the recordings from the gateway's API at the end,
	// waiting up to ReadBackTimeout (default 60 s) for them to be final.
	ReadBack        bool
	ReadBackTimeout time.Duration
	// WebRTC are the publishers' ICE settings (nil: loopback included).
	WebRTC *config.WebRTC
	// GatewayPID, when set, is the gateway's process on this host: its
	// CPU and memory are sampled from /proc during the steady state (all
	// sessions connected, none finished, after Warmup; default 3 s), its
	// /metrics scraped, and the result gets a Gateway section.
	GatewayPID int
	Warmup     time.Duration
	// Logger receives progress and errors; nil discards them.
	Logger *slog.Logger
}

// Errors.
var (
	// ErrOptions is returned (wrapped) for options that make no sense.
	ErrOptions = errors.New("loadgen: invalid options")
)

// Limits on the options.
const (
	MaxSessions     = 10000
	MaxParticipants = 16
	MaxDuration     = 24 * time.Hour
)

// Validate checks the options and fills in defaults.
func (o *Options) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		return bad("a gateway URL is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return bad("URL %q is not an http(s) URL", o.URL)
	case u.RawQuery != "" || u.Fragment != "":
		return bad("URL %q: give the gateway's base URL, without query or fragment", o.URL)
	case o.Sessions < 1 || o.Sessions > MaxSessions:
		return bad("sessions %d not in [1, %d]", o.Sessions, MaxSessions)
	case o.Participants < 0 || o.Participants > MaxParticipants:
		return bad("participants %d not in [1, %d]", o.Participants, MaxParticipants)
	case o.Duration <= 0 || o.Duration > MaxDuration:
		return bad("duration %v not in (0, %v]", o.Duration, MaxDuration)
	case o.Ramp < 0 || o.Ramp > 10000:
		return bad("ramp %g sessions/s not in [0, 10000]", o.Ramp)
	case o.Audio == nil && o.Video == nil:
		return bad("no media: give audio, video or both")
	case o.Pacers < 0 || o.Pacers > 64:
		return bad("pacers %d not in [1, 64]", o.Pacers)
	case o.GatewayPID < 0:
		return bad("gateway pid %d", o.GatewayPID)
	case o.ConnectTimeout < 0 || o.ReadBackTimeout < 0 || o.Tail < 0 || o.Warmup < 0:
		return bad("negative timeout")
	case o.Impairment.NoRetransmit:
		return bad("publishers of the load generator always retransmit")
	}
	if o.Participants == 0 {
		o.Participants = 1
	}
	if o.Pacers == 0 {
		o.Pacers = 1
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Tail == 0 {
		o.Tail = 250 * time.Millisecond
	}
	if o.ReadBackTimeout == 0 {
		o.ReadBackTimeout = 60 * time.Second
	}
	if o.SessionPrefix == "" {
		o.SessionPrefix = "loadgen-" + time.Now().UTC().Format("20060102t150405")
	}
	o.URL = strings.TrimRight(o.URL, "/")
	return nil
}

// Run starts the publishers, waits until every one has sent for the
// duration and ended its WHIP resource, then (with ReadBack) reads the
// recordings back. Cancelling ctx stops publishing early; the result then
// covers what happened so far. The error is for setup problems only:
// publishers that fail are counted in the result.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := whip.NewPool(whip.PoolOptions{WebRTC: opts.WebRTC, Pacers: opts.Pacers, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	defer client.CloseIdleConnections()

	res := newResult(opts)
	pubs := make([]*pubRun, 0, opts.Sessions*opts.Participants)
	for s := range opts.Sessions {
		sid := fmt.Sprintf("%s-%06d", opts.SessionPrefix, s+1)
		for p := range opts.Participants {
			pubs = append(pubs, &pubRun{session: sid, participant: fmt.Sprintf("p%d", p+1)})
		}
	}

	log.Info("loadgen: starting", "sessions", opts.Sessions, "participants", opts.Participants,
		"duration", opts.Duration.String(), "ramp_per_s", opts.Ramp)
	var gw *GatewayStats
	var gwStart gwSnapshot
	if opts.GatewayPID > 0 {
		gw = &GatewayStats{PID: opts.GatewayPID}
		gwStart = gw.snapshot(ctx, client, opts.URL)
		gw.RSSIdleBytes = gwStart.rss
	}
	var wg, setups sync.WaitGroup
	start := time.Now()
	res.StartedAt = start.UTC()
launch:
	for s := range opts.Sessions {
		if opts.Ramp > 0 {
			at := start.Add(time.Duration(float64(s) / opts.Ramp * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					break launch
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		for p := range opts.Participants {
			pr := pubs[s*opts.Participants+p]
			pr.launched = true
			wg.Add(1)
			setups.Add(1)
			go func() {
				defer wg.Done()
				pr.run(ctx, pool, opts, client, log, setups.Done)
			}()
		}
	}
	measured := make(chan struct{})
	go func() {
		defer close(measured)
		setups.Wait()
		if gw != nil {
			measureWindow(ctx, gw, client, opts, pubs, log)
		}
	}()
	wg.Wait()
	<-measured
	if err := pool.Close(); err != nil {
		log.Warn("loadgen: close pool", "err", err)
	}
	res.PublishedUntil = time.Now().UTC()
	res.addPublishers(pubs)
	if opts.ReadBack {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ReadBackTimeout)
		readBack(rctx, client, opts, pubs, log)
		cancel()
	}
	res.addRecordings(pubs, opts.ReadBack)
	if gw != nil {
		gw.finish(context.WithoutCancel(ctx), client, opts.URL, gwStart)
		res.Gateway = gw
	}
	res.EndedAt = time.Now().UTC()
	return res, nil
}

// pubRun is one publisher's run.
type pubRun struct {
	session, participant string
	launched             bool

	connected   bool
	connectedAt time.Time
	err         error
	setup       time.Duration
	stats       whip.Stats
	sentFor     time.Duration // from connected to the DELETE (media and tail)
	rec         *Recording
	readBackOK  bool
}

func (pr *pubRun) run(ctx context.Context, pool *whip.Pool, opts Options, client *http.Client, log *slog.Logger, setupDone func()) {
	wo := whip.Options{
		URL:            opts.URL + "/whip/" + url.PathEscape(pr.session) + "/" + url.PathEscape(pr.participant),
		Token:          opts.Token,
		Name:           pr.participant,
		Audio:          opts.Audio,
		Video:          opts.Video,
		Duration:       opts.Duration,
		Impairment:     opts.Impairment,
		ConnectTimeout: opts.ConnectTimeout,
		HTTPClient:     client,
		Logger:         log,
	}
	p, err := pool.Publish(ctx, wo)
	if err != nil {
		pr.err = err
		setupDone()
		log.Debug("loadgen: publish failed", "session_id", pr.session, "participant_id", pr.participant, "err", err)
		return
	}
	pr.connected = true
	t0 := time.Now()
	pr.connectedAt = t0
	setupDone() // after the fields the measuring goroutine reads
	_ = p.Wait(ctx)
	select {
	case <-time.After(opts.Tail):
	case <-ctx.Done():
	}
	pr.sentFor = time.Since(t0)
	pr.stats = p.Stats()
	pr.setup = pr.stats.SetupLatency
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil {
		log.Warn("loadgen: end publisher", "session_id", pr.session, "participant_id", pr.participant, "err", err)
	}
}

// measureWindow measures the gateway's steady state: from Warmup after
// the last setup until shortly before the first publisher stops sending.
func measureWindow(ctx context.Context, gw *GatewayStats, client *http.Client, o Options, pubs []*pubRun, log *slog.Logger) {
	var firstEnd time.Time
	sessions := map[string]bool{}
	conns := 0
	for _, p := range pubs {
		if !p.connected {
			continue
		}
		conns++
		sessions[p.session] = true
		if end := p.connectedAt.Add(o.Duration); firstEnd.IsZero() || end.Before(firstEnd) {
			firstEnd = end
		}
	}
	from := time.Now().Add(o.Warmup)
	to := firstEnd.Add(-500 * time.Millisecond)
	if conns == 0 || to.Sub(from) < 2*time.Second {
		gw.Problems = append(gw.Problems, fmt.Sprintf("no steady window: the duration (%v) leaves less than 2 s between the last setup plus %v of warm-up and the first end; raise --duration", o.Duration, o.Warmup))
		return
	}
	wait := func(t time.Time) bool {
		select {
		case <-time.After(time.Until(t)):
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !wait(from) {
		return
	}
	a := gw.snapshot(ctx, client, o.URL)
	if !wait(to) {
		return
	}
	b := gw.snapshot(ctx, client, o.URL)
	gw.window(a, b, len(sessions), conns)
	log.Info("loadgen: gateway steady state", "seconds", gw.WindowSeconds, "cpu_cores", gw.CPUCores,
		"cpu_us_per_packet", gw.CPUMicrosPerPacket, "rss_mib", gw.RSSBytes>>20)
}

// failureReason classifies a publisher's error for the result.
func failureReason(err error) string {
	switch {
	case whip.StatusCode(err) != 0:
		return fmt.Sprintf("http_%d", whip.StatusCode(err))
	case errors.Is(err, whip.ErrNotConnected):
		return "not_connected"
	case errors.Is(err, whip.ErrBadAnswer):
		return "bad_answer"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "error"
}

// mediaName is the file name of m, for the result.
func mediaName(m *whip.Media) string {
	if m == nil {
		return ""
	}
	if m.Path != "" {
		return filepath.Base(m.Path)
	}
	return m.Kind
}

// percentile returns the p-th percentile (0..100) of sorted ds, nearest
// rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sortedDurations(ds []time.Duration) []time.Duration {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}
