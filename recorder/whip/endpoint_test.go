package whip_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/nack"
	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/internal/netns"
	"github.com/custodian/custodian/internal/testpoll"
	rtc "github.com/custodian/custodian/recorder/webrtc"
)

func TestMain(m *testing.M) { os.Exit(netns.RunLoopbackOnly(m)) }

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until

// received is what the test endpoint saw of one RTP stream (one SSRC).
type received struct {
	Kind     string
	SSRC     uint32
	Seqs     []uint16
	TSs      []uint32
	Markers  []bool
	Arrivals []time.Time
}

// endpoint is a minimal WHIP endpoint: a pion receiver built with the
// recorder's NewAPI behind an httptest server on 127.0.0.1. It has no
// recorder pipeline, so it NACKs losses with pion's NACK generator.
type endpoint struct {
	t     *testing.T
	api   *rtc.API
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	posts    []*http.Request
	deletes  []string
	pcs      map[string]*pion.PeerConnection
	streams  []*received
	tracks   int
	nextID   int
	override func(w http.ResponseWriter, r *http.Request) bool
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		t.Fatal(err)
	}
	api, err := rtc.NewAPI(config.WebRTC{IncludeLoopback: true, IPs: []string{"127.0.0.1"}}, rtc.WithInterceptor(gen))
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{t: t, api: api, token: "secret-token", pcs: map[string]*pion.PeerConnection{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /whip/{session}/{participant}", e.post)
	mux.HandleFunc("DELETE /whip/{session}/{participant}/{resource}", e.delete)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		e.mu.Lock()
		for _, pc := range e.pcs {
			_ = pc.Close()
		}
		e.mu.Unlock()
		_ = api.Close()
	})
	return e
}

func (e *endpoint) url(session, participant string) string {
	return e.srv.URL + "/whip/" + session + "/" + participant
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"detail":%q}`, title, status, detail)
}

func (e *endpoint) post(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.posts = append(e.posts, r)
	override := e.override
	e.mu.Unlock()
	if override != nil && override(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+e.token {
		problem(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
		return
	}
	if r.Header.Get("Content-Type") != "application/sdp" {
		problem(w, http.StatusUnsupportedMediaType, "not SDP", r.Header.Get("Content-Type"))
		return
	}
	raw, err := rtc.ReadOffer(r.Body)
	if err == nil {
		_, err = rtc.ValidateOffer(raw)
	}
	if oe, ok := errors.AsType[*rtc.OfferError](err); ok {
		problem(w, oe.HTTPStatus(), oe.Code(), oe.Error())
		return
	} else if err != nil {
		problem(w, http.StatusBadRequest, "read", err.Error())
		return
	}
	pc, err := e.api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		problem(w, http.StatusInternalServerError, "pc", err.Error())
		return
	}
	pc.OnTrack(func(tr *pion.TrackRemote, rcv *pion.RTPReceiver) {
		go func() { _ = rtc.ReadRTCP(rcv, nil) }()
		st := &received{Kind: tr.Kind().String(), SSRC: uint32(tr.SSRC())}
		e.mu.Lock()
		e.streams = append(e.streams, st)
		e.tracks++
		e.mu.Unlock()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			e.mu.Lock()
			st.Seqs = append(st.Seqs, pkt.SequenceNumber)
			st.TSs = append(st.TSs, pkt.Timestamp)
			st.Markers = append(st.Markers, pkt.Marker)
			st.Arrivals = append(st.Arrivals, time.Now())
			e.mu.Unlock()
		}
	})
	answer, err := rtc.Answer(r.Context(), pc, string(raw))
	if err != nil {
		_ = pc.Close()
		problem(w, http.StatusBadRequest, "answer", err.Error())
		return
	}
	e.mu.Lock()
	e.nextID++
	id := fmt.Sprintf("r%d", e.nextID)
	e.pcs[id] = pc
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", "/whip/"+r.PathValue("session")+"/"+r.PathValue("participant")+"/"+id)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}

func (e *endpoint) delete(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+e.token {
		problem(w, http.StatusUnauthorized, "unauthorized", "")
		return
	}
	id := r.PathValue("resource")
	e.mu.Lock()
	pc := e.pcs[id]
	delete(e.pcs, id)
	e.deletes = append(e.deletes, r.URL.Path)
	e.mu.Unlock()
	if pc == nil {
		http.NotFound(w, r)
		return
	}
	_ = pc.Close()
	w.WriteHeader(http.StatusOK)
}

// snapshot returns copies of the received streams.
func (e *endpoint) snapshot() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []received
	for _, s := range e.streams {
		c := *s
		c.Seqs = append([]uint16(nil), s.Seqs...)
		c.TSs = append([]uint32(nil), s.TSs...)
		c.Markers = append([]bool(nil), s.Markers...)
		c.Arrivals = append([]time.Time(nil), s.Arrivals...)
		out = append(out, c)
	}
	return out
}

func (e *endpoint) kind(kind string) []received {
	var out []received
	for _, s := range e.snapshot() {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// unwrapSeqs extends 16-bit sequence numbers to int64 in arrival order.
func unwrapSeqs(seqs []uint16) []int64 {
	out := make([]int64, len(seqs))
	var last int64
	for i, s := range seqs {
		if i == 0 {
			last = int64(s)
		} else {
			d := int64(int16(s - uint16(last)))
			last += d
		}
		out[i] = last
	}
	return out
}

// missing counts the sequence numbers between the first and the highest
// received that never arrived, and how often a packet arrived after a higher
// one (reordering).
func missing(seqs []uint16) (lost, outOfOrder int) {
	u := unwrapSeqs(seqs)
	if len(u) == 0 {
		return 0, 0
	}
	seen := map[int64]bool{}
	lo, hi := u[0], u[0]
	for i, s := range u {
		if i > 0 && s < hi {
			outOfOrder++
		}
		seen[s] = true
		lo, hi = min(lo, s), max(hi, s)
	}
	return int(hi-lo+1) - len(seen), outOfOrder
}

func query(t *testing.T, r *http.Request) url.Values {
	t.Helper()
	return r.URL.Query()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
