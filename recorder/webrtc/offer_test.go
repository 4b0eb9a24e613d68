package webrtc_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

func chromiumOffer(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("testdata/chromium-156-offer.sdp")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// pionOffer makes a publisher offer with the send-role API: one sendonly
// transceiver per kind given.
func pionOffer(tb testing.TB, kinds ...pion.RTPCodecType) string {
	tb.Helper()
	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true}, rtc.WithRole(rtc.RoleSend))
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	defer pc.Close()
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, pion.RTPTransceiverInit{Direction: pion.RTPTransceiverDirectionSendonly}); err != nil {
			tb.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	gathered := pion.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		tb.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// edit applies line edits to an SDP: drop lines with any of the prefixes in
// drop, and replace old with new.
func edit(sdp string, drop []string, replace ...string) string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n") {
		if slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(l, p) }) {
			continue
		}
		out = append(out, l)
	}
	s := strings.Join(out, "\r\n")
	for i := 0; i+1 < len(replace); i += 2 {
		s = strings.ReplaceAll(s, replace[i], replace[i+1])
	}
	return s
}

const audioOnlyPCMU = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 0 8 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n"

func TestValidateOffer(t *testing.T) {
	chromium := chromiumOffer(t)
	av := pionOffer(t, pion.RTPCodecTypeAudio, pion.RTPCodecTypeVideo)
	audio := pionOffer(t, pion.RTPCodecTypeAudio)
	big := chromium + strings.Repeat("a=x-pad:"+strings.Repeat("p", 100)+"\r\n", 700)

	tests := []struct {
		name      string
		sdp       string
		wantErr   error
		status    int
		kinds     []string
		supported []string // union over media sections
	}{
		{name: "chromium audio+video", sdp: chromium, kinds: []string{"audio", "video"},
			supported: []string{"audio/opus", "video/VP8", "video/H264", "video/AV1", "video/VP9"}},
		{name: "pion audio+video", sdp: av, kinds: []string{"audio", "video"}},
		{name: "pion audio", sdp: audio, kinds: []string{"audio"}, supported: []string{"audio/opus"}},
		{name: "chromium audio only by rejecting video", sdp: edit(chromium, nil, "m=video 37413", "m=video 0"), kinds: []string{"audio"}},
		{name: "chromium video recvonly", sdp: edit(chromium, nil, "a=sendonly\r\na=msid:0e6a3dc6-0e3a-408e-8438-d27c1c48af33 6679", "a=recvonly\r\na=msid:0e6a3dc6-0e3a-408e-8438-d27c1c48af33 6679"), kinds: []string{"audio"}},
		{name: "chromium VP8 only", sdp: edit(chromium, []string{"a=rtpmap:102", "a=rtpmap:104", "a=rtpmap:108", "a=rtpmap:114", "a=rtpmap:116", "a=rtpmap:39", "a=rtpmap:45", "a=rtpmap:98", "a=rtpmap:100", "a=rtpmap:118"},
			"m=video 37413 UDP/TLS/RTP/SAVPF 96 97 102 103 104 107 108 109 114 115 116 117 39 40 45 46 98 99 100 101 118 119 120", "m=video 37413 UDP/TLS/RTP/SAVPF 96 97"),
			kinds: []string{"audio", "video"}, supported: []string{"audio/opus", "video/VP8"}},

		{name: "empty", sdp: "", wantErr: rtc.ErrMalformedSDP, status: 400},
		{name: "garbage", sdp: "hello world", wantErr: rtc.ErrMalformedSDP, status: 400},
		{name: "json", sdp: `{"type":"offer"}`, wantErr: rtc.ErrMalformedSDP, status: 400},
		{name: "truncated", sdp: chromium[:200], wantErr: rtc.ErrMalformedSDP, status: 400},
		{name: "too large", sdp: big, wantErr: rtc.ErrOfferTooLarge, status: 413},
		{name: "session only", sdp: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", wantErr: rtc.ErrNoMedia, status: 400},
		{name: "data channel only", sdp: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 00:11\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n", wantErr: rtc.ErrNoMedia, status: 400},
		{name: "everything recvonly", sdp: strings.ReplaceAll(chromium, "a=sendonly", "a=recvonly"), wantErr: rtc.ErrNoMedia, status: 400},
		{name: "no fingerprint", sdp: edit(chromium, []string{"a=fingerprint"}), wantErr: rtc.ErrNoFingerprint, status: 400},
		{name: "plain RTP", sdp: strings.ReplaceAll(chromium, "UDP/TLS/RTP/SAVPF", "RTP/AVP"), wantErr: rtc.ErrPlainRTP, status: 400},
		{name: "no ice-ufrag", sdp: edit(chromium, []string{"a=ice-ufrag"}), wantErr: rtc.ErrNoICECredentials, status: 400},
		{name: "no ice-pwd", sdp: edit(chromium, []string{"a=ice-pwd"}), wantErr: rtc.ErrNoICECredentials, status: 400},
		{name: "only PCMU/PCMA/G722", sdp: audioOnlyPCMU, wantErr: rtc.ErrUnsupportedCodecs, status: 415},
		{name: "only H265 video", sdp: edit(audioOnlyPCMU, nil, "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 9", "m=video 9 UDP/TLS/RTP/SAVPF 49\r\na=rtpmap:49 H265/90000"), wantErr: rtc.ErrUnsupportedCodecs, status: 415},
		{name: "opus at the wrong clock rate", sdp: edit(audioOnlyPCMU, nil, "m=audio 9 UDP/TLS/RTP/SAVPF 0 8 9", "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/8000"), wantErr: rtc.ErrUnsupportedCodecs, status: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, err := rtc.ValidateOffer([]byte(tt.sdp))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				oe, ok := errors.AsType[*rtc.OfferError](err)
				if !ok {
					t.Fatalf("err %T is not *OfferError", err)
				}
				if oe.HTTPStatus() != tt.status {
					t.Errorf("HTTPStatus = %d, want %d", oe.HTTPStatus(), tt.status)
				}
				if !strings.HasPrefix(oe.Code(), "sdp_") || oe.Code() == "sdp_invalid" {
					t.Errorf("Code = %q", oe.Code())
				}
				if strings.Contains(err.Error(), "GsvtHJZvmTsuUyJcdqlORs8r") || strings.Contains(err.Error(), "Ty1+") {
					t.Errorf("error quotes ICE credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateOffer: %v", err)
			}
			if !slices.Equal(off.Kinds(), tt.kinds) {
				t.Errorf("Kinds = %v, want %v", off.Kinds(), tt.kinds)
			}
			if !off.HasICEUfrag {
				t.Error("HasICEUfrag = false")
			}
			var union []string
			for _, m := range off.Media {
				for _, c := range m.Supported {
					if !slices.Contains(union, c) {
						union = append(union, c)
					}
				}
			}
			if tt.supported != nil && !slices.Equal(union, tt.supported) {
				t.Errorf("supported = %v, want %v", union, tt.supported)
			}
		})
	}
}

func TestValidateOfferUnsupportedNamesCodecs(t *testing.T) {
	_, err := rtc.ValidateOffer([]byte(audioOnlyPCMU))
	for _, want := range []string{"audio/PCMU", "audio/PCMA", "audio/G722", "audio/opus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestValidateOfferChromiumSummary(t *testing.T) {
	off, err := rtc.ValidateOffer([]byte(chromiumOffer(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(off.Media) != 2 || off.Media[0].MID != "0" || off.Media[1].MID != "1" {
		t.Fatalf("media = %+v", off.Media)
	}
	a := off.Media[0]
	if a.Direction != "sendonly" || !slices.Contains(a.Codecs, "audio/red") || !slices.Contains(a.Codecs, "audio/PCMU") {
		t.Errorf("audio = %+v", a)
	}
	if off.Candidates != 4 {
		t.Errorf("Candidates = %d, want 4", off.Candidates)
	}
	if !off.HasVideo() {
		t.Error("HasVideo = false")
	}
}

// TestValidateOfferAgreesWithPion: every offer ValidateOffer accepts gets an
// answer from the receive-role API that accepts a codec for each kind it
// reported, and every offer it rejects for codecs gets none.
func TestValidateOfferAgreesWithPion(t *testing.T) {
	offers := map[string]string{
		"chromium":        chromiumOffer(t),
		"pion":            pionOffer(t, pion.RTPCodecTypeAudio, pion.RTPCodecTypeVideo),
		"chromium-noh264": edit(chromiumOffer(t), []string{"a=rtpmap:102", "a=rtpmap:104", "a=rtpmap:108"}),
	}
	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	for name, sdp := range offers {
		off, err := rtc.ValidateOffer([]byte(sdp))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pc, err := api.NewPeerConnection(pion.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: sdp}); err != nil {
			t.Fatalf("%s: SetRemoteDescription: %v", name, err)
		}
		ans, err := pc.CreateAnswer(nil)
		if err != nil {
			t.Fatalf("%s: CreateAnswer: %v", name, err)
		}
		parsed, err := ans.Unmarshal()
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range off.Kinds() {
			found := false
			for _, md := range parsed.MediaDescriptions {
				if md.MediaName.Media == kind && md.MediaName.Port.Value != 0 && len(md.MediaName.Formats) > 0 {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: pion's answer accepts no %s codec:\n%s", name, kind, ans.SDP)
			}
		}
		if strings.Contains(ans.SDP, "rtx/90000") || strings.Contains(ans.SDP, "red/48000") || strings.Contains(ans.SDP, "PCMU") {
			t.Errorf("%s: answer negotiates a codec we do not record:\n%s", name, ans.SDP)
		}
		_ = pc.Close()
	}
}

func TestReadOffer(t *testing.T) {
	b, err := rtc.ReadOffer(strings.NewReader(chromiumOffer(t)))
	if err != nil || len(b) != len(chromiumOffer(t)) {
		t.Fatalf("ReadOffer = %d bytes, %v", len(b), err)
	}
	exact := bytes.Repeat([]byte("x"), rtc.MaxOfferBytes)
	if b, err := rtc.ReadOffer(bytes.NewReader(exact)); err != nil || len(b) != rtc.MaxOfferBytes {
		t.Fatalf("64 KiB body: %d bytes, %v", len(b), err)
	}
	r := &countingReader{r: bytes.NewReader(make([]byte, 10<<20))}
	_, err = rtc.ReadOffer(r)
	oe, ok := errors.AsType[*rtc.OfferError](err)
	if !ok || !errors.Is(err, rtc.ErrOfferTooLarge) || oe.HTTPStatus() != http.StatusRequestEntityTooLarge {
		t.Fatalf("10 MiB body: %v", err)
	}
	if r.n > rtc.MaxOfferBytes+1+32<<10 {
		t.Fatalf("read %d bytes of an oversized body", r.n)
	}
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzSDP(f *testing.F) {
	f.Add([]byte(chromiumOffer(f)))
	f.Add([]byte(pionOffer(f, pion.RTPCodecTypeAudio, pion.RTPCodecTypeVideo)))
	f.Add([]byte(audioOnlyPCMU))
	f.Add([]byte("v=0\r\nm=audio 9 RTP/AVP 0\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		off, err := rtc.ValidateOffer(raw)
		if err != nil {
			if _, ok := errors.AsType[*rtc.OfferError](err); !ok {
				t.Fatalf("error %T is not *OfferError: %v", err, err)
			}
			if len(err.Error()) > 4096 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		if len(raw) > rtc.MaxOfferBytes {
			t.Fatal("accepted an oversized offer")
		}
		if len(off.Kinds()) == 0 {
			t.Fatal("accepted an offer with nothing to record")
		}
		for _, m := range off.Media {
			for _, c := range m.Supported {
				if !slices.ContainsFunc(rtc.SupportedCodecs(), func(s rtc.Codec) bool { return s.MimeType == c }) {
					t.Fatalf("unsupported codec %q reported as supported", c)
				}
			}
		}
	})
}

// TestPionRefusesNoFingerprint: the answering peer itself also
// refuses an offer without a DTLS fingerprint, so media is DTLS-SRTP even if
// a caller skipped ValidateOffer.
func TestPionRefusesNoFingerprint(t *testing.T) {
	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sdp := edit(chromiumOffer(t), []string{"a=fingerprint"})
	if err := pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: sdp}); err == nil {
		t.Fatal("pion accepted an offer without a DTLS fingerprint")
	}
}

func BenchmarkValidateOffer(b *testing.B) {
	raw := []byte(chromiumOffer(b))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rtc.ValidateOffer(raw); err != nil {
			b.Fatal(err)
		}
	}
}
