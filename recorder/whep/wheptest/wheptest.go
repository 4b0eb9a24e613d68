// Package wheptest is a WHEP server for tests (draft-ietf-wish-whep on
// pion): it answers subscriptions with Opus and VP8 from recorder/whip
// media files, paced in real time, and can crash and restart on the same
// address to test a puller's reconnects.
//
// Place in the data flow: outside the gateway, as the media server the
// recorder pulls from (recorder.Recorder's pulls, recorder/whep).
package wheptest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	pion "github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/recorder/whip"
)

// Options configure a Server.
type Options struct {
	// Audio (Opus) and Video (VP8) are sent to every subscriber, looped.
	Audio, Video *whip.Media
	// Token, when set, is the bearer token a subscription must carry.
	Token string
	// Path is the endpoint's path (default /whep/stream).
	Path string
	// NoMedia answers without media (every section inactive): a bad
	// source.
	NoMedia bool
	Logger  *slog.Logger
}

// Server is a running WHEP server. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	api  *rtc.API
	addr string

	mu    sync.Mutex
	srv   *http.Server
	conns map[string]*subscriber
	next  int

	subscriptions atomic.Int32
	deletes       atomic.Int32

	udp  *blackholeConn
	dead atomic.Bool // Crash: every UDP packet is dropped, both ways
}

// blackholeConn drops every packet, in and out, while off is set.
type blackholeConn struct {
	net.PacketConn
	off *atomic.Bool
}

func (c *blackholeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.off.Load() {
			return n, addr, err
		}
	}
}

func (c *blackholeConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.off.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

type subscriber struct {
	pc     *pion.PeerConnection
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 (a free port) and serves until tb's cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Path == "" {
		opts.Path = "/whep/stream"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// All media goes through one UDP socket that Crash can black-hole, so
	// a crash is silent (no DTLS close, no ICE answers), as when a process
	// dies or its host vanishes.
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{opts: opts, conns: map[string]*subscriber{}}
	s.udp = &blackholeConn{PacketConn: udp, off: &s.dead}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: s.udp})
	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}}, rtc.WithRole(rtc.RoleSend),
		rtc.WithSettings(func(se *pion.SettingEngine) { se.SetICEUDPMux(mux) }))
	if err != nil {
		tb.Fatal(err)
	}
	s.api = api
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	tb.Cleanup(func() {
		s.Crash()
		_ = api.Close()
		_ = mux.Close()
	})
	return s
}

// URL is the WHEP endpoint.
func (s *Server) URL() string { return "http://" + s.addr + s.opts.Path }

// Subscriptions is the number of subscriptions answered with 201.
func (s *Server) Subscriptions() int { return int(s.subscriptions.Load()) }

// Deletes is the number of DELETEs of a known resource.
func (s *Server) Deletes() int { return int(s.deletes.Load()) }

// Subscribers is the number of live subscriptions.
func (s *Server) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+s.opts.Path, s.handlePost)
	mux.HandleFunc("DELETE "+s.opts.Path+"/{id}", s.handleDelete)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Crash stops the server at once, as if its process died: the listener
// closes and every peer connection goes silent (no DTLS close alert, no
// ICE answers, no signalling).
func (s *Server) Crash() {
	s.dead.Store(true)
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	conns := s.conns
	s.conns = map[string]*subscriber{}
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	for _, c := range conns {
		c.close()
	}
}

// Restart listens again on the same address after a Crash.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger for a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("wheptest: listen again on %s: %v", s.addr, err)
	}
	s.dead.Store(false)
	s.serve(ln)
}

func (c *subscriber) close() {
	c.cancel()
	_ = c.pc.Close()
	c.wg.Wait()
}

func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	if s.opts.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"title":"Unauthorized","detail":"bad or missing bearer token"}`)
			return
		}
	}
	if r.Header.Get("Content-Type") != "application/sdp" {
		http.Error(w, "want application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	offer, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "read offer", http.StatusBadRequest)
		return
	}
	answer, id, err := s.subscribe(r.Context(), string(offer))
	if err != nil {
		s.opts.Logger.Warn("wheptest: subscribe", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.subscriptions.Add(1)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", s.opts.Path+"/"+id)
	w.Header().Set("ETag", `"`+id+`"`)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c := s.conns[r.PathValue("id")]
	delete(s.conns, r.PathValue("id"))
	s.mu.Unlock()
	if c == nil {
		http.Error(w, "no such resource", http.StatusNotFound)
		return
	}
	s.deletes.Add(1)
	c.close()
	w.WriteHeader(http.StatusOK)
}

// subscribe answers an offer with the server's tracks and starts sending
// once connected.
func (s *Server) subscribe(ctx context.Context, offer string) (string, string, error) {
	pc, err := s.api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &subscriber{pc: pc, cancel: cancel}
	type stream struct {
		m     *whip.Media
		track *pion.TrackLocalStaticSample
	}
	var streams []stream
	if !s.opts.NoMedia {
		for _, m := range []*whip.Media{s.opts.Audio, s.opts.Video} {
			if m == nil {
				continue
			}
			tr, err := pion.NewTrackLocalStaticSample(pion.RTPCodecCapability{MimeType: m.MimeType, ClockRate: m.ClockRate, Channels: m.Channels}, m.Kind, "wheptest")
			if err != nil {
				c.close()
				return "", "", err
			}
			sender, err := pc.AddTrack(tr)
			if err != nil {
				c.close()
				return "", "", fmt.Errorf("add %s track: %w", m.Kind, err)
			}
			c.wg.Add(1)
			go func() { // drive the NACK responder
				defer c.wg.Done()
				buf := make([]byte, 1500)
				for {
					if _, _, err := sender.Read(buf); err != nil {
						return
					}
				}
			}()
			streams = append(streams, stream{m, tr})
		}
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(st pion.PeerConnectionState) {
		if st == pion.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
	defer gcancel()
	answer, err := rtc.Answer(gctx, pc, offer)
	if err != nil {
		c.close()
		return "", "", err
	}
	if s.opts.NoMedia {
		answer = inactive(answer)
	}
	for _, st := range streams {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			select {
			case <-connected:
			case <-ctx.Done():
				return
			}
			Send(ctx, st.m, st.track)
		}()
	}
	s.mu.Lock()
	s.next++
	id := fmt.Sprintf("sub%d", s.next)
	if s.srv == nil {
		s.mu.Unlock()
		c.close()
		return "", "", errors.New("server stopped")
	}
	s.conns[id] = c
	s.mu.Unlock()
	return answer, id, nil
}

// Send writes m's frames to track in a loop with real-time pacing until
// ctx ends or the track fails.
func Send(ctx context.Context, m *whip.Media, track *pion.TrackLocalStaticSample) {
	t0 := time.Now()
	var at time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		if d := time.Until(t0.Add(at)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		f := m.Frames[i%len(m.Frames)]
		if err := track.WriteSample(media.Sample{Data: f.Data, Duration: f.Duration}); err != nil {
			return
		}
		at += f.Duration
	}
}

// inactive turns every media direction of an SDP into a=inactive.
func inactive(sdp string) string {
	for _, d := range []string{"a=sendrecv", "a=sendonly", "a=recvonly"} {
		sdp = strings.ReplaceAll(sdp, d+"\r\n", "a=inactive\r\n")
	}
	return sdp
}
