package recorder_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/recorder/whep/wheptest"
)

// BenchmarkPullSetup: one WHEP pull from POST /v1/sessions/{id}/pull to
// its 201 (admission, pull row, PeerConnection, offer with gathered
// candidates, WHEP POST, answer, ICE and DTLS connected) and its DELETE
// (connection ended, recording finalized, WHEP resource deleted), against
// a real gateway and a pion WHEP server on loopback. Both sides run in
// this process, so the figure includes the server's share.
func BenchmarkPullSetup(b *testing.B) {
	g := startGateway(b, "", func(c *config.Config) { c.Log.Level = "error" })
	audio, _ := media(b)
	srv := wheptest.Start(b, wheptest.Options{Audio: audio})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		st, body := apiRaw(b, g, g.AdminToken, "POST", "/v1/sessions/bench/pull",
			map[string]any{"whep_url": srv.URL(), "participant_id": fmt.Sprintf("p%d", i)})
		if st != http.StatusCreated {
			b.Fatalf("POST: %d %s", st, body)
		}
		var pd recorder.PullDoc
		if err := json.Unmarshal(body, &pd); err != nil {
			b.Fatal(err)
		}
		if st, body := apiRaw(b, g, g.AdminToken, "DELETE", "/v1/sessions/bench/pull/"+pd.ID, nil); st != http.StatusOK {
			b.Fatalf("DELETE: %d %s", st, body)
		}
		i++
	}
}
