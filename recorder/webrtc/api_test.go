package webrtc_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/internal/testpoll"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

// gather returns the local candidates a receive-role peer gathers for cfg.
func gather(t *testing.T, cfg config.WebRTC) (*rtc.API, []pion.ICECandidate) {
	t.Helper()
	api, err := rtc.NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var (
		mu    sync.Mutex
		cands []pion.ICECandidate
	)
	pc.OnICECandidate(func(c *pion.ICECandidate) {
		if c != nil {
			mu.Lock()
			cands = append(cands, *c)
			mu.Unlock()
		}
	})
	if _, err := pc.AddTransceiverFromKind(pion.RTPCodecTypeAudio, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("gathering did not complete")
	}
	if sdp := pc.LocalDescription().SDP; strings.Contains(sdp, ".local") {
		t.Errorf("offer has an mDNS candidate:\n%s", sdp)
	}
	mu.Lock()
	defer mu.Unlock()
	return api, slices.Clone(cands)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

func TestNewAPIGathering(t *testing.T) {
	muxPort := freeUDPPort(t)
	tests := []struct {
		name  string
		cfg   config.WebRTC
		check func(t *testing.T, api *rtc.API, cands []pion.ICECandidate)
	}{
		{"loopback excluded by default", config.WebRTC{}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			if len(cands) != 0 {
				t.Errorf("candidates in a loopback-only namespace without include_loopback: %v", cands)
			}
		}},
		{"include_loopback", config.WebRTC{IncludeLoopback: true}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			wantAddrs(t, cands, "127.0.0.1") // pion gathers no IPv6 loopback candidate
		}},
		{"ips restricts to 127.0.0.1", config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			wantAddrs(t, cands, "127.0.0.1")
		}},
		{"interfaces lo", config.WebRTC{IncludeLoopback: true, Interfaces: []string{"lo"}}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			wantAddrs(t, cands, "127.0.0.1") // pion gathers no IPv6 loopback candidate
		}},
		{"interfaces eth0 excludes lo", config.WebRTC{IncludeLoopback: true, Interfaces: []string{"eth0"}}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			if len(cands) != 0 {
				t.Errorf("candidates on excluded interfaces: %v", cands)
			}
		}},
		{"port range", config.WebRTC{IncludeLoopback: true, UDPPortMin: 41000, UDPPortMax: 41009}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			wantAddrs(t, cands, "127.0.0.1") // pion gathers no IPv6 loopback candidate
			for _, c := range cands {
				if c.Port < 41000 || c.Port > 41009 {
					t.Errorf("candidate port %d outside 41000-41009", c.Port)
				}
			}
		}},
		{"nat 1:1", config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}, NAT1To1IPs: []string{"203.0.113.7"}}, func(t *testing.T, _ *rtc.API, cands []pion.ICECandidate) {
			wantAddrs(t, cands, "203.0.113.7")
			for _, c := range cands {
				if c.Typ != pion.ICECandidateTypeHost {
					t.Errorf("NAT 1:1 candidate of type %s, want host", c.Typ)
				}
			}
		}},
		{"udp mux", config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}, UDPMuxPort: muxPort}, func(t *testing.T, api *rtc.API, cands []pion.ICECandidate) {
			wantAddrs(t, cands, "127.0.0.1")
			for _, c := range cands {
				if int(c.Port) != muxPort {
					t.Errorf("candidate port %d, want the mux port %d", c.Port, muxPort)
				}
			}
			if len(api.MuxAddrs()) == 0 {
				t.Error("MuxAddrs is empty")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, cands := gather(t, tt.cfg)
			for _, c := range cands {
				if c.Protocol != pion.ICEProtocolUDP {
					t.Errorf("non-UDP candidate %v", c)
				}
			}
			tt.check(t, api, cands)
		})
	}
}

// wantAddrs checks that the candidates' addresses are exactly the set want.
func wantAddrs(t *testing.T, cands []pion.ICECandidate, want ...string) {
	t.Helper()
	var got []string
	for _, c := range cands {
		if !slices.Contains(got, c.Address) {
			got = append(got, c.Address)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("candidate addresses %v, want %v", got, want)
	}
}

func TestNewAPIMuxPortInUse(t *testing.T) {
	port := freeUDPPort(t)
	cfg := config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}, UDPMuxPort: port}
	api, err := rtc.NewAPI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rtc.NewAPI(cfg); err == nil {
		t.Fatal("second mux on the same port succeeded")
	}
	if err := api.Close(); err != nil {
		t.Fatal(err)
	}
	api2, err := rtc.NewAPI(cfg)
	if err != nil {
		t.Fatalf("mux port not released by Close: %v", err)
	}
	api2.Close()
}

func TestNewAPIBadNATIP(t *testing.T) {
	_, err := rtc.NewAPI(config.WebRTC{NAT1To1IPs: []string{"not-an-ip"}})
	if !errors.Is(err, rtc.ErrBadNATIP) {
		t.Fatalf("err = %v, want ErrBadNATIP", err)
	}
}

// connect negotiates pub → rec without trickle and waits for both to connect.
func connect(t *testing.T, pub, rec *pion.PeerConnection) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offer, err := rtc.CreateOffer(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rtc.ValidateOffer([]byte(offer)); err != nil {
		t.Fatalf("publisher offer: %v", err)
	}
	answer, err := rtc.Answer(ctx, rec, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s := pub.ConnectionState(); s != pion.PeerConnectionStateConnected {
			return errors.New("publisher " + s.String())
		}
		if s := rec.ConnectionState(); s != pion.PeerConnectionStateConnected {
			return errors.New("recorder " + s.String())
		}
		return nil
	})
}

// TestPionToPion connects a send-role publisher to a receive-role recorder
// over the single-port mux and checks media, sender reports reaching
// ReadRTCP, and PLIs from KeyframeRequester reaching the publisher.
func TestPionToPion(t *testing.T) {
	recAPI, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}, UDPMuxPort: freeUDPPort(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer recAPI.Close()
	pubAPI, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}}, rtc.WithRole(rtc.RoleSend))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recAPI.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	pub, err := pubAPI.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	audio, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: pion.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "a", "s")
	if err != nil {
		t.Fatal(err)
	}
	video, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: pion.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	var senders []*pion.RTPSender
	for _, tr := range []pion.TrackLocal{audio, video} {
		tx, err := pub.AddTransceiverFromTrack(tr, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, tx.Sender())
	}
	var plis atomic.Int32
	for _, s := range senders {
		go func() {
			for {
				pkts, _, err := s.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						plis.Add(1)
					}
				}
			}
		}()
	}

	var (
		audioPkts, videoPkts atomic.Int32
		srs                  = make(chan rtc.SenderReport, 16)
		rtcpDone             = make(chan error, 2)
		videoTrack           = make(chan *pion.TrackRemote, 1)
	)
	rec.OnTrack(func(tr *pion.TrackRemote, r *pion.RTPReceiver) {
		go func() {
			rtcpDone <- rtc.ReadRTCP(r, func(sr rtc.SenderReport) {
				select {
				case srs <- sr:
				default:
				}
			})
		}()
		if tr.Kind() == pion.RTPCodecTypeVideo {
			videoTrack <- tr
		}
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if tr.Kind() == pion.RTPCodecTypeAudio {
				audioPkts.Add(1)
			} else {
				videoPkts.Add(1)
			}
		}
	})
	connect(t, pub, rec)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i * 960)}, Payload: []byte{0xf8, 0xff, 0xfe}})
			// A VP8 keyframe-looking payload descriptor + 3 bytes.
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: uint16(i), Timestamp: uint32(i * 1800)}, Payload: []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}})
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if audioPkts.Load() < 25 || videoPkts.Load() < 25 {
			return errors.New("waiting for media")
		}
		return nil
	})
	start := time.Now()
	select {
	case sr := <-srs:
		if d := time.Since(sr.NTPTime); d < -time.Second || d > 5*time.Second {
			t.Errorf("sender report NTP time %v is %v from now", sr.NTPTime, d)
		}
		if sr.PacketCount == 0 || sr.SSRC == 0 {
			t.Errorf("sender report %+v", sr)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no sender report within %v", time.Since(start))
	}

	tr := <-videoTrack
	kr := rtc.NewKeyframeRequester(rec, uint32(tr.SSRC()), time.Hour)
	for range 3 {
		if _, err := kr.Request(); err != nil {
			t.Fatal(err)
		}
	}
	if kr.Sent() != 1 {
		t.Errorf("Sent = %d after 3 requests within the interval, want 1", kr.Sent())
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if plis.Load() == 0 {
			return errors.New("publisher saw no PLI")
		}
		return nil
	})
	if n := plis.Load(); n != 1 {
		t.Errorf("publisher saw %d PLIs, want 1", n)
	}

	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-rtcpDone:
			if err != nil {
				t.Errorf("ReadRTCP after close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ReadRTCP did not return after the peer connection closed")
		}
	}
}
