package recorder_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/config"
)

// BenchmarkWHIPAnswer: one WHIP POST of a Chromium offer (admission,
// policy decision, participant row, PeerConnection, one codec per kind,
// ICE gathering, answer) and the DELETE of its resource, against a real
// gateway on loopback. The media never connects; this is the server-side
// cost of call setup and teardown.
func BenchmarkWHIPAnswer(b *testing.B) {
	g := startGateway(b, "", func(c *config.Config) { c.Log.Level = "error" })
	tok := token(b, g, auth.RoleIngest, "")
	offer := chromiumOffer(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := whipPost(b, g.URL(), fmt.Sprintf("/whip/bench/p%d", i), tok, "application/sdp", offer)
		if r.status != http.StatusCreated {
			b.Fatalf("POST: %d %s", r.status, r.body)
		}
		del, _ := http.NewRequest("DELETE", g.URL()+r.header.Get("Location"), nil)
		del.Header.Set("Authorization", "Bearer "+tok)
		if d := whipSend(b, del); d.status != http.StatusOK {
			b.Fatalf("DELETE: %d", d.status)
		}
		i++
	}
}
