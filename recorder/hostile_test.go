package recorder_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
	"github.com/custodian/custodian/storage/meta"
)

// TestHostileRTP: a publisher that sends empty payloads and absurd
// timestamps among real Opus packets. The recording completes with the
// right length and the report counts the dropped packets.
func TestHostileRTP(t *testing.T) {
	g := startGateway(t, "")
	tok := token(t, g, auth.RoleIngest, "")
	audio, _ := media(t)
	ctx := context.Background()

	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}}, rtc.WithRole(rtc.RoleSend))
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	track, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: pion.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "hostile")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{})
	pc.OnConnectionStateChange(func(s pion.PeerConnectionState) {
		if s == pion.PeerConnectionStateConnected {
			close(connected)
		}
	})
	offer, err := rtc.CreateOffer(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	r := whipPost(t, g.URL(), "/whip/hostile-1/attacker", tok, "application/sdp", offer)
	if r.status != 201 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: r.body}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("not connected")
	}

	start := time.Now()
	const packets = 200
	var empty, absurd int
	seq, ts := uint16(100), uint32(5000)
	for i := range packets {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
		p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: audio.Frames[i%len(audio.Frames)].Data}
		switch {
		case i > 10 && i%10 == 3:
			p.Payload = nil
			empty++
		case i > 10 && i%10 == 7:
			p.Timestamp = ts + 48000*3600 // an hour ahead
			absurd++
		}
		if err := track.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
		seq++
		ts += 960
	}
	end := time.Now()
	req, _ := http.NewRequest("DELETE", g.URL()+r.header.Get("Location"), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	rec := waitRecording(t, g, "hostile-1", "attacker")
	if rec.Status != meta.StatusComplete {
		t.Fatalf("status %s %s", rec.Status, rec.FailureReason)
	}
	p := ffprobe(t, decrypt(t, g.Store, rec))
	if !within(p.Duration, end.Sub(start), 150*time.Millisecond) || strings.Join(p.Codecs, ",") != "opus" {
		t.Errorf("ffprobe %v %v, sent for %v", p.Duration, p.Codecs, end.Sub(start))
	}
	c := completeness(t, rec)
	t.Logf("sent %d empty and %d absurd packets of %d; report: received %v, dropped invalid %v, timestamp jumps %v",
		empty, absurd, packets, c["packets_received"], c["packets_dropped_invalid"], c["tracks"].([]any)[0].(map[string]any)["timestamp_jumps"])
	if got := int(num(c, "packets_dropped_invalid")); got < empty+absurd {
		t.Errorf("packets_dropped_invalid %d, want at least %d", got, empty+absurd)
	}
}
