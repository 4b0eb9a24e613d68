package janustest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder/janus"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/recorder/whep/wheptest"
	"github.com/custodian/custodian/recorder/whip"
)

// Publisher is a pion participant that publishes Opus and VP8 into a
// VideoRoom room through the Janus HTTP API (what janus.js does in a
// browser).
type Publisher struct {
	// ID is the publisher's id in the room (the recorder's participant id).
	ID janus.ID
	// ConnectedAt is when its peer connection connected.
	ConnectedAt time.Time

	api    *rtc.API
	pc     *pion.PeerConnection
	sess   *janus.Session
	handle *janus.Handle
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Publish joins room as display and publishes audio and/or video until
// Leave.
func Publish(ctx context.Context, url, secret, room, display string, audio, video *whip.Media) (*Publisher, error) {
	c := &janus.Client{URL: url, Secret: secret}
	sess, err := c.Create(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Publisher{sess: sess, cancel: cancel}
	p.wg.Go(func() { // events and keepalives
		tk := time.NewTicker(time.Second) // tests run Janus with short session timeouts
		defer tk.Stop()
		go func() {
			for rctx.Err() == nil {
				ms, err := sess.Poll(rctx, 10)
				if err != nil {
					return
				}
				for _, m := range ms {
					sess.Dispatch(m)
				}
			}
		}()
		for {
			select {
			case <-rctx.Done():
				return
			case <-tk.C:
				_ = sess.Keepalive(rctx)
			}
		}
	})
	fail := func(err error) (*Publisher, error) {
		p.close(context.WithoutCancel(ctx))
		return nil, err
	}
	if p.handle, err = sess.Attach(ctx, janus.Plugin); err != nil {
		return fail(err)
	}
	data, _, err := p.handle.Call(ctx, map[string]any{"request": "join", "ptype": "publisher", "room": janus.ParseID(room), "display": display}, nil)
	if err != nil {
		return fail(fmt.Errorf("join: %w", err))
	}
	ev, err := janus.ParseEvent(data)
	if err != nil || ev.VideoRoom != "joined" {
		return fail(fmt.Errorf("join: answered %q (%v)", ev.VideoRoom, err))
	}
	p.ID = ev.ID
	if p.api, err = rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{ICEAddress}}, rtc.WithRole(rtc.RoleSend)); err != nil {
		return fail(err)
	}
	if p.pc, err = p.api.NewPeerConnection(pion.Configuration{}); err != nil {
		return fail(err)
	}
	type stream struct {
		m     *whip.Media
		track *pion.TrackLocalStaticSample
	}
	var streams []stream
	for _, m := range []*whip.Media{audio, video} {
		if m == nil {
			continue
		}
		tr, err := pion.NewTrackLocalStaticSample(pion.RTPCodecCapability{MimeType: m.MimeType, ClockRate: m.ClockRate, Channels: m.Channels}, m.Kind, display)
		if err != nil {
			return fail(err)
		}
		sender, err := p.pc.AddTransceiverFromTrack(tr, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fail(err)
		}
		p.wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Sender().Read(buf); err != nil {
					return
				}
			}
		})
		streams = append(streams, stream{m, tr})
	}
	connected := make(chan struct{})
	var connOnce sync.Once
	p.pc.OnConnectionStateChange(func(st pion.PeerConnectionState) {
		if st == pion.PeerConnectionStateConnected {
			connOnce.Do(func() { close(connected) })
		}
	})
	offer, err := rtc.CreateOffer(ctx, p.pc)
	if err != nil {
		return fail(err)
	}
	_, jsep, err := p.handle.Call(ctx, map[string]any{"request": "publish", "display": display}, &janus.JSEP{Type: "offer", SDP: offer})
	if err != nil {
		return fail(fmt.Errorf("publish: %w", err))
	}
	if jsep == nil || jsep.Type != "answer" {
		return fail(errors.New("publish: no answer"))
	}
	if err := p.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: jsep.SDP}); err != nil {
		return fail(fmt.Errorf("publish: answer: %w", err))
	}
	select {
	case <-connected:
	case <-time.After(15 * time.Second):
		return fail(errors.New("publish: not connected within 15 s"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	p.ConnectedAt = time.Now()
	for _, st := range streams {
		p.wg.Go(func() { wheptest.Send(rctx, st.m, st.track) })
	}
	return p, nil
}

// Leave leaves the room (the other participants are told at once) and
// closes everything.
func (p *Publisher) Leave(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		_, _, err = p.handle.Call(ctx, map[string]any{"request": "leave"}, nil)
		p.shutdown(ctx)
	})
	return err
}

// close closes everything without leaving (best effort).
func (p *Publisher) close(ctx context.Context) {
	p.once.Do(func() { p.shutdown(ctx) })
}

func (p *Publisher) shutdown(ctx context.Context) {
	p.cancel()
	if p.pc != nil {
		_ = p.pc.Close()
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = p.sess.Destroy(dctx)
	cancel()
	p.wg.Wait()
	if p.api != nil {
		_ = p.api.Close()
	}
}
