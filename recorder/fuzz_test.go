package recorder

import (
	"net/url"
	"os"
	"testing"
)

// FuzzWHIPQuery: the WHIP query parser never panics and what it accepts
// is within its limits.
func FuzzWHIPQuery(f *testing.F) {
	for _, s := range []string{
		"", "name=Ann&consent=granted", "labels=queue=billing,vip=1&attributes=role=agent",
		"department=sales", "labels=a=b,a=c", "labels==", "consent=maybe", "name=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		w, err := parseWHIPQuery(q)
		if err != nil {
			return
		}
		if len(w.name) > maxNameLen || len(w.labels) > maxPairs || len(w.attributes) > maxPairs {
			t.Fatalf("accepted out-of-limit query %q", raw)
		}
		for k, v := range w.labels {
			if k == "" || len(v) > maxValueLen {
				t.Fatalf("accepted label %q=%q", k, v)
			}
		}
	})
}

// FuzzChooseCodecs: codec selection over arbitrary SDP never panics and
// picks at most one section per kind, each with a mid and a codec.
func FuzzChooseCodecs(f *testing.F) {
	if b, err := os.ReadFile("testdata/chromium-offer.sdp"); err == nil {
		f.Add(string(b))
	}
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n")
	f.Fuzz(func(t *testing.T, sdp string) {
		out, err := chooseCodecs([]byte(sdp))
		if err != nil {
			return
		}
		kinds := map[string]bool{}
		for _, n := range out {
			if kinds[n.kind] || n.mid == "" || n.params.MimeType == "" {
				t.Fatalf("bad choice %+v", n)
			}
			kinds[n.kind] = true
		}
	})
}
