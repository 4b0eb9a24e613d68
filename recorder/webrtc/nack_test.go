package webrtc_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

// TestReceiveRoleSendsNoNACKs: a receive-role peer connection does not NACK
// a gap in a video stream that negotiated NACK by itself (the recorder's
// pipeline does, once per loss); its receiver reports still reach the
// publisher and count the loss.
func TestReceiveRoleSendsNoNACKs(t *testing.T) {
	recAPI, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer recAPI.Close()
	pubAPI, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}}, rtc.WithRole(rtc.RoleSend))
	if err != nil {
		t.Fatal(err)
	}
	defer pubAPI.Close()
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
	video, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: pion.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pub.AddTransceiverFromTrack(video, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	var nacks, lostReported atomic.Int64
	go func() {
		for {
			pkts, _, err := tx.Sender().ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.TransportLayerNack:
					nacks.Add(1)
				case *rtcp.ReceiverReport:
					for _, r := range p.Reports {
						lostReported.Store(int64(r.TotalLost))
					}
				}
			}
		}
	}()
	var received atomic.Int64
	rec.OnTrack(func(tr *pion.TrackRemote, r *pion.RTPReceiver) {
		go func() { _ = rtc.ReadRTCP(r, nil) }()
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			received.Add(1)
		}
	})
	connect(t, pub, rec)

	// 100 packets at 100 per second with sequence number 50 missing.
	for i := range 100 {
		if i == 50 {
			continue
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: uint16(1000 + i), Timestamp: uint32(i * 900)},
			Payload: []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}}
		if err := video.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Receiver reports go out every second: wait for one that counts the
	// loss, which also gives a NACK generator ample time to fire.
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if lostReported.Load() != 1 {
			return errors.New("no receiver report with the loss yet")
		}
		return nil
	})
	if received.Load() != 99 {
		t.Errorf("received %d packets, want 99", received.Load())
	}
	if n := nacks.Load(); n != 0 {
		t.Errorf("the receive role sent %d NACKs by itself, want 0 (the pipeline NACKs)", n)
	}
}
