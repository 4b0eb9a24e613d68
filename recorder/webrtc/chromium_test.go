package webrtc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

const chromiumPath = "/usr/bin/chromium"

// publishPage publishes the fake camera and microphone to /whip on the
// server that served it, as a WHIP client would, and reports errors to /log.
const publishPage = `<!doctype html><html><body><script>
(async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: {width: 640, height: 360}});
    const pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) pc.addTransceiver(t, {direction: 'sendonly', streams: [stream]});
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(r => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); }; setTimeout(r, 2000); });
    const resp = await fetch('/whip', {method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
    if (resp.status !== 201) throw new Error('POST /whip: ' + resp.status + ' ' + await resp.text());
    await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
    pc.onconnectionstatechange = () => fetch('/log', {method: 'POST', body: 'state ' + pc.connectionState});
  } catch (e) {
    await fetch('/log', {method: 'POST', body: 'error ' + e});
  }
})();
</script></body></html>`

// TestChromiumInterop: headless Chromium publishes its fake devices to a
// receive-role peer built by NewAPI. Checks that Chromium accepts the answer
// (DTLS-SRTP, ICE on loopback, codecs), that Opus and VP8 arrive, that
// Chromium's sender reports reach ReadRTCP, and that a PLI from
// KeyframeRequester makes Chromium's encoder send a keyframe.
func TestChromiumInterop(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("no %s", chromiumPath)
	}
	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()

	type stream struct {
		mime      string
		packets   int
		keyframes int // VP8 packets starting a keyframe
		srs       int
		kr        *rtc.KeyframeRequester
	}
	var (
		mu      sync.Mutex
		streams = map[string]*stream{}
		logs    []string
		pcs     []*pion.PeerConnection
		started time.Time // set (under mu) when chromium starts
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, pc := range pcs {
			_ = pc.Close()
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, publishPage)
	})
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		mu.Lock()
		logs = append(logs, string(b))
		mu.Unlock()
	})
	mux.HandleFunc("POST /whip", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		t.Logf("POST /whip %v after starting chromium", time.Since(started))
		mu.Unlock()
		raw, err := rtc.ReadOffer(r.Body)
		if err == nil {
			_, err = rtc.ValidateOffer(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		pc, err := api.NewPeerConnection(pion.Configuration{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		pcs = append(pcs, pc)
		mu.Unlock()
		pc.OnTrack(func(tr *pion.TrackRemote, rcv *pion.RTPReceiver) {
			s := &stream{mime: tr.Codec().MimeType}
			if tr.Kind() == pion.RTPCodecTypeVideo {
				s.kr = rtc.NewKeyframeRequester(pc, uint32(tr.SSRC()), 0)
			}
			mu.Lock()
			streams[tr.Kind().String()] = s
			mu.Unlock()
			go func() {
				_ = rtc.ReadRTCP(rcv, func(rtc.SenderReport) {
					mu.Lock()
					if s.srs == 0 {
						t.Logf("first %s sender report %v after starting chromium", tr.Kind(), time.Since(started))
					}
					s.srs++
					mu.Unlock()
				})
			}()
			for {
				pkt, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				mu.Lock()
				if s.packets == 0 {
					t.Logf("first %s packet %v after starting chromium", tr.Kind(), time.Since(started))
				}
				s.packets++
				// VP8 payload descriptor with S=1, PID=0, then the frame
				// tag's P bit 0: the first packet of a keyframe.
				if tr.Kind() == pion.RTPCodecTypeVideo && isVP8KeyframeStart(pkt.Payload) {
					s.keyframes++
				}
				mu.Unlock()
			}
		})
		answer, err := rtc.Answer(r.Context(), pc, string(raw))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/sdp")
		w.Header().Set("Location", "/whip/1")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Chromium's requests reach the handlers through the network, which
	// the race detector cannot see as synchronisation: write under mu.
	mu.Lock()
	started = time.Now()
	mu.Unlock()
	cmd := exec.CommandContext(ctx, chromiumPath, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--no-first-run",
		"--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
		"--allow-loopback-in-peer-connection", srv.URL+"/")
	// Its own process group, so that killing it ends every helper process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()

	snapshot := func() (map[string]stream, []string) {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]stream{}
		for k, v := range streams {
			out[k] = *v
		}
		return out, append([]string(nil), logs...)
	}
	checkFor(t, 90*time.Second, 100*time.Millisecond, func() error { // chromium starts slowly on a busy machine
		s, l := snapshot()
		for _, m := range l {
			if len(m) > 5 && m[:5] == "error" {
				t.Fatalf("page: %s", m)
			}
		}
		a, v := s["audio"], s["video"]
		if a.packets < 50 || v.packets < 30 || v.keyframes < 1 || a.srs+v.srs < 1 {
			return fmt.Errorf("audio %+v, video %+v, page log %v", a, v, l)
		}
		return nil
	})
	t.Logf("media flowing %v after starting chromium", time.Since(started))
	s, _ := snapshot()
	if s["audio"].mime != pion.MimeTypeOpus || s["video"].mime != pion.MimeTypeVP8 {
		t.Errorf("codecs %s and %s, want Opus and VP8", s["audio"].mime, s["video"].mime)
	}

	// A PLI makes the encoder send a new keyframe.
	before := s["video"].keyframes
	pliAt := time.Now()
	sent, err := s["video"].kr.Request()
	if err != nil || !sent {
		t.Fatalf("PLI: sent %v, %v", sent, err)
	}
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		s, _ := snapshot()
		if s["video"].keyframes <= before {
			return errors.New("no keyframe after PLI")
		}
		return nil
	})
	t.Logf("keyframe %v after the PLI", time.Since(pliAt))
}

// isVP8KeyframeStart reports whether a VP8 RTP payload starts a keyframe
// (RFC 7741: S bit set, partition 0, frame tag P bit clear).
func isVP8KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	s, pid, i := p[0]&0x10 != 0, p[0]&0x07, 1
	if p[0]&0x80 != 0 { // X: extension byte
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture ID
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX
			i++
		}
	}
	return s && pid == 0 && len(p) > i && p[i]&0x01 == 0
}
