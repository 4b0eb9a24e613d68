package whip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

// Options configure Publish.
type Options struct {
	// URL is the WHIP endpoint, e.g. http://127.0.0.1:8080/whip/s1/p1.
	URL string
	// Token is sent as "Authorization: Bearer <Token>" (omitted if empty).
	Token string
	// Query parameters of the POST (omitted if empty): name, consent
	// (granted|denied|unknown), department, labels (sorted k=v,k=v).
	Name, Consent, Department string
	Labels                    map[string]string

	// Audio (Opus) and Video (VP8) to send, from OpenOpus and OpenIVF;
	// at least one. Both may be shared by many publishers.
	Audio, Video *Media
	// Duration is how long to send, looping the media; 0 sends until Close.
	Duration time.Duration

	Impairment Impairment
	// OmitSSRC removes a=ssrc and a=ssrc-group lines from the offer, as
	// some WHIP encoders do; the receiver then learns SSRCs from the media.
	OmitSSRC bool

	// WebRTC are the publisher's ICE settings; nil means
	// {IncludeLoopback: true}.
	WebRTC *config.WebRTC
	// ConnectTimeout bounds the time from POST to a connected peer
	// connection (default 15 s).
	ConnectTimeout time.Duration
	// HTTPClient sends the POST and DELETE (default: a client with a 15 s
	// timeout).
	HTTPClient *http.Client
	// Logger receives the publisher's and pion's (warnings and up) logs.
	Logger *slog.Logger
}

// ErrNoMedia is returned by Publish when Options has neither Audio nor Video.
var ErrNoMedia = errors.New("whip: nothing to publish: no audio or video")

// ErrNotConnected is returned by Publish when ICE or DTLS does not connect.
var ErrNotConnected = errors.New("whip: peer connection did not connect")

// ErrBadAnswer is returned by Publish for a 201 whose answer is unusable.
var ErrBadAnswer = errors.New("whip: bad answer")

// StreamStats counts one kind of media sent by a Publisher.
type StreamStats struct {
	// Frames and Packets are what the send loop wrote (before impairment).
	Frames, Packets, Bytes uint64
	// Dropped and Reordered are packets the impairment dropped or held back.
	Dropped, Reordered uint64
	// NACKs and PLIs (and FIRs) are RTCP feedback messages received.
	NACKs, PLIs uint64
	// NACKedPackets counts the sequence numbers listed in the NACKs
	// received; Retransmitted counts Impairment.DropPackets packets that
	// were sent again (after a NACK).
	NACKedPackets, Retransmitted uint64
	// SSRCs are the SSRCs used on the wire, in order.
	SSRCs []uint32
}

// Stats are a Publisher's counters.
type Stats struct {
	// SetupLatency is the time from the start of the POST to a connected
	// peer connection.
	SetupLatency time.Duration
	Audio, Video StreamStats
}

// Publisher is one WHIP publication. Close it.
type Publisher struct {
	opts     Options
	log      *slog.Logger
	client   *http.Client
	api      *rtc.API
	pc       *pion.PeerConnection
	location string
	impair   *impairFactory
	setup    time.Duration

	// pool is set for a publisher of a Pool: its API is shared and a
	// pacer of the pool sends its media.
	pool *Pool

	kindMu   *sync.Mutex
	ssrcKind map[uint32]string // local SSRC → "audio"/"video"

	cancel  context.CancelFunc
	wg      sync.WaitGroup // send loops and RTCP readers
	sending sync.WaitGroup // send loops only
	done    chan struct{}

	mu     sync.Mutex
	sent   map[string]*sendStats
	closed bool
}

type sendStats struct {
	frames, packets, bytes atomic.Uint64
	mu                     sync.Mutex
	ssrcs                  []uint32
}

// Location is the absolute URL of the WHIP resource (from the Location
// header), which Close DELETEs.
func (p *Publisher) Location() string { return p.location }

// PeerConnection is the publisher's pion peer connection (read-only use:
// state, stats).
func (p *Publisher) PeerConnection() *pion.PeerConnection { return p.pc }

// Done is closed when the send loops finish: Duration elapsed, or Close.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Stats returns the current counters.
func (p *Publisher) Stats() Stats {
	s := Stats{SetupLatency: p.setup}
	for kind, dst := range map[string]*StreamStats{"audio": &s.Audio, "video": &s.Video} {
		if ss := p.sent[kind]; ss != nil {
			dst.Frames, dst.Packets, dst.Bytes = ss.frames.Load(), ss.packets.Load(), ss.bytes.Load()
			ss.mu.Lock()
			dst.SSRCs = slices.Clone(ss.ssrcs)
			ss.mu.Unlock()
		}
		if ls := p.impair.stats[kind]; ls != nil {
			dst.Dropped, dst.Reordered = ls.dropped.Load(), ls.reordered.Load()
			dst.NACKs, dst.PLIs = ls.nacks.Load(), ls.plis.Load()
			dst.NACKedPackets, dst.Retransmitted = ls.nackedSeqs.Load(), ls.retransmitted.Load()
		}
	}
	return s
}

// Publish POSTs an offer to opts.URL, applies the answer, waits until the
// peer connection is connected and starts sending. ctx bounds the setup and,
// if it is cancelled later, stops sending (Close still has to be called).
// On error nothing is left running, and a resource the endpoint created is
// deleted.
func Publish(ctx context.Context, opts Options) (*Publisher, error) {
	p, u, err := newPublisher(opts)
	if err != nil {
		return nil, err
	}
	cfg := config.WebRTC{IncludeLoopback: true}
	if opts.WebRTC != nil {
		cfg = *opts.WebRTC
	}
	apiOpts := []rtc.Option{rtc.WithRole(rtc.RoleSend), rtc.WithInterceptor(p.impair), rtc.WithLogger(p.log, slog.LevelWarn)}
	if opts.Impairment.NoRetransmit {
		apiOpts = append(apiOpts, rtc.WithoutNACKResponder())
	}
	if p.api, err = rtc.NewAPI(cfg, apiOpts...); err != nil {
		return nil, err
	}
	if p.pc, err = p.api.NewPeerConnection(pion.Configuration{}); err != nil {
		_ = p.api.Close()
		return nil, fmt.Errorf("whip: new peer connection: %w", err)
	}
	return p.start(ctx, u)
}

// newPublisher checks opts and builds a Publisher without its API and
// peer connection.
func newPublisher(opts Options) (*Publisher, *url.URL, error) {
	if opts.Audio == nil && opts.Video == nil {
		return nil, nil, ErrNoMedia
	}
	if err := opts.Impairment.validate(); err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("whip: endpoint URL %q is not an http(s) URL", opts.URL)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 15 * time.Second
	}
	p := &Publisher{
		opts:   opts,
		log:    opts.Logger,
		client: opts.HTTPClient,
		done:   make(chan struct{}),
		sent:   map[string]*sendStats{"audio": {}, "video": {}},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 15 * time.Second}
	}
	var kindMu sync.Mutex
	p.ssrcKind = map[uint32]string{}
	p.kindMu = &kindMu
	p.impair = &impairFactory{
		im: opts.Impairment,
		kinds: func(ssrc uint32) string {
			kindMu.Lock()
			defer kindMu.Unlock()
			return p.ssrcKind[ssrc]
		},
		stats: map[string]*linkStats{"audio": {}, "video": {}},
	}
	return p, u, nil
}

// closeAPI closes the publisher's own API (a pool's API outlives it).
func (p *Publisher) closeAPI() error {
	if p.pool != nil {
		return nil
	}
	return p.api.Close()
}

// start adds the tracks to p.pc, publishes the offer, waits for the
// connection and starts sending. On error p.pc is closed (and p's own
// API).
func (p *Publisher) start(ctx context.Context, u *url.URL) (*Publisher, error) {
	opts := p.opts
	fail := func(err error) (*Publisher, error) {
		_ = p.pc.Close()
		_ = p.closeAPI()
		return nil, err
	}

	type stream struct {
		media  *Media
		track  *pion.TrackLocalStaticRTP
		sender *pion.RTPSender
	}
	var streams []stream
	for _, m := range []*Media{opts.Audio, opts.Video} {
		if m == nil {
			continue
		}
		track, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: m.MimeType, ClockRate: m.ClockRate, Channels: m.Channels}, m.Kind, "custodian-whip")
		if err != nil {
			return fail(fmt.Errorf("whip: new %s track: %w", m.Kind, err))
		}
		tx, err := p.pc.AddTransceiverFromTrack(track, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fail(fmt.Errorf("whip: add %s transceiver: %w", m.Kind, err))
		}
		for _, enc := range tx.Sender().GetParameters().Encodings {
			p.kindMu.Lock()
			p.ssrcKind[uint32(enc.SSRC)] = m.Kind
			p.kindMu.Unlock()
		}
		streams = append(streams, stream{m, track, tx.Sender()})
	}

	sdp, err := rtc.CreateOffer(ctx, p.pc)
	if err != nil {
		return fail(fmt.Errorf("whip: %w", err))
	}
	if opts.OmitSSRC {
		sdp = omitSSRC(sdp)
	}

	connected := make(chan struct{})
	var connOnce sync.Once
	failed := make(chan pion.PeerConnectionState, 1)
	p.pc.OnConnectionStateChange(func(s pion.PeerConnectionState) {
		switch s {
		case pion.PeerConnectionStateConnected:
			connOnce.Do(func() { close(connected) })
		case pion.PeerConnectionStateFailed, pion.PeerConnectionStateClosed:
			select {
			case failed <- s:
			default:
			}
		}
	})

	start := time.Now()
	answer, err := p.post(ctx, u, sdp)
	if err != nil {
		return fail(err)
	}
	cleanup := func(err error) (*Publisher, error) {
		_ = p.pc.Close()
		delErr := p.delete(context.WithoutCancel(ctx))
		_ = p.closeAPI()
		return nil, errors.Join(err, delErr)
	}
	if err := p.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: answer}); err != nil {
		return cleanup(fmt.Errorf("%w: %w", ErrBadAnswer, err))
	}
	timer := time.NewTimer(opts.ConnectTimeout)
	defer timer.Stop()
	select {
	case <-connected:
	case s := <-failed:
		return cleanup(fmt.Errorf("%w: state %s", ErrNotConnected, s))
	case <-timer.C:
		return cleanup(fmt.Errorf("%w within %v", ErrNotConnected, opts.ConnectTimeout))
	case <-ctx.Done():
		return cleanup(fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err()))
	}
	p.setup = time.Since(start)
	p.log.Debug("whip: connected", "location", p.location, "setup_ms", p.setup.Milliseconds())

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	go func() { // a cancelled setup context stops sending later too
		select {
		case <-ctx.Done():
			cancel()
		case <-runCtx.Done():
		}
	}()
	t0 := time.Now()
	for _, s := range streams {
		p.wg.Add(2)
		p.sending.Add(1)
		st := p.newStream(runCtx, t0, s.media, s.track, s.sender)
		if p.pool != nil {
			p.pool.add(st)
		} else {
			go p.sendLoop(st)
		}
		go func() {
			defer p.wg.Done()
			drainRTCP(s.sender)
		}()
	}
	go func() {
		p.sending.Wait()
		close(p.done)
	}()
	return p, nil
}

// post sends the offer and returns the answer; it sets p.location.
func (p *Publisher) post(ctx context.Context, u *url.URL, offer string) (string, error) {
	q := u.Query()
	for k, v := range map[string]string{"name": p.opts.Name, "consent": p.opts.Consent, "department": p.opts.Department} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(p.opts.Labels) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(p.opts.Labels)) {
			kv = append(kv, k+"="+p.opts.Labels[k])
		}
		q.Set("labels", strings.Join(kv, ","))
	}
	pu := *u
	pu.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pu.String(), strings.NewReader(offer))
	if err != nil {
		return "", fmt.Errorf("whip: publish: %w", err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Accept", "application/sdp, application/problem+json")
	if p.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opts.Token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("whip: publish: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", httpError("publish", resp, time.Now())
	}
	loc := resp.Header.Get("Location")
	if loc != "" {
		lu, err := u.Parse(loc)
		if err != nil {
			return "", fmt.Errorf("%w: Location %q: %v", ErrBadAnswer, loc, err)
		}
		p.location = lu.String()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, rtc.MaxOfferBytes+1))
	if err != nil {
		return "", fmt.Errorf("whip: publish: read answer: %w", err)
	}
	switch ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); {
	case loc == "":
		return "", fmt.Errorf("%w: 201 without a Location header", ErrBadAnswer)
	case ct != "application/sdp":
		return "", fmt.Errorf("%w: Content-Type %q, want application/sdp", ErrBadAnswer, ct)
	case len(body) > rtc.MaxOfferBytes || len(bytes.TrimSpace(body)) == 0:
		return "", fmt.Errorf("%w: answer of %d bytes", ErrBadAnswer, len(body))
	}
	return string(body), nil
}

// delete ends the WHIP resource. A 404 counts as done (already gone).
func (p *Publisher) delete(ctx context.Context) error {
	if p.location == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.location, nil)
	if err != nil {
		return fmt.Errorf("whip: delete: %w", err)
	}
	if p.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opts.Token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("whip: delete: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
		return httpError("delete", resp, time.Now())
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

// Wait blocks until sending finished (Duration elapsed) or ctx ends.
func (p *Publisher) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops sending, DELETEs the WHIP resource and closes the peer
// connection. It is safe to call more than once; later calls return nil.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.sending.Wait()
	delErr := p.delete(ctx)
	var pcErr error
	if err := p.pc.Close(); err != nil {
		pcErr = fmt.Errorf("whip: close peer connection: %w", err)
	}
	p.wg.Wait() // RTCP readers end when the peer connection closes
	return errors.Join(delErr, pcErr, p.closeAPI())
}

// drainRTCP reads a sender's RTCP until it closes: it drives the NACK
// responder and the impairment interceptor's feedback counters.
func drainRTCP(s *pion.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// initialSeqTS picks the first sequence number and timestamp: random, or,
// with wrapAfter, such that both wrap about wrapAfter into the stream.
func initialSeqTS(m *Media, wrapAfter time.Duration) (uint16, uint32) {
	if wrapAfter <= 0 {
		return uint16(rand.Uint32()), rand.Uint32()
	}
	var packets int
	var media time.Duration
	for i := 0; media < wrapAfter; i++ {
		f := m.Frames[i%len(m.Frames)]
		packets += f.Packets
		media += f.Duration
	}
	ticks := uint64(wrapAfter) * uint64(m.ClockRate) / uint64(time.Second)
	return uint16(-packets), uint32(-int64(ticks))
}

// omitSSRC removes a=ssrc and a=ssrc-group lines from an SDP.
func omitSSRC(sdp string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(sdp, "\r\n") {
		if strings.HasPrefix(line, "a=ssrc:") || strings.HasPrefix(line, "a=ssrc-group:") {
			continue
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return strings.TrimSuffix(b.String(), "\r\n") + "\r\n"
}
