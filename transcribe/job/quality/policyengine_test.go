package quality

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway/gatewaytest"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe/openai"
)

// TestPolicyEngineOverWHIP: the engine follows the policy from the WHIP
// POST to the transcript. The gateway's default engine is the offline
// one; it also has an OpenAI-compatible server configured (a protocol
// fake on loopback: no Whisper model can run here), and a rule for the
// session label queue=clinic says transcription_engine: openai. A call in
// the clinic queue is transcribed by the server (its words, engine
// "openai" on the recording's decision, the transcript row and the
// transcript), a call in another queue offline.
func TestPolicyEngineOverWHIP(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != openai.Path || r.FormValue("response_format") != "verbose_json" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		if f, _, err := r.FormFile("file"); err != nil {
			http.Error(w, "no file", http.StatusBadRequest)
			return
		} else {
			io.Copy(io.Discard, f)
		}
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"task":"transcribe","language":"english","duration":2,"text":"clinic words",`+
			`"words":[{"word":"clinic","start":0.1,"end":0.5},{"word":"words","start":0.6,"end":1.0}],"segments":[]}`)
	}))
	t.Cleanup(srv.Close)

	g := gatewaytest.Start(t, func(c *config.Config) {
		c.WebRTC.IncludeLoopback = true
		c.WebRTC.IPs = []string{"127.0.0.1"}
		c.Transcription.Workers = 1
		c.Transcription.OpenAI.URL = srv.URL
		c.Transcription.OpenAI.Language = "en"
		var doc yaml.Node
		policies := "- name: clinic\n  match: {labels: {queue: clinic}}\n  transcribe: true\n  transcription_engine: openai\n" +
			"- name: everything\n  transcribe: true\n"
		if err := yaml.Unmarshal([]byte(policies), &doc); err != nil {
			t.Fatal(err)
		}
		c.Policies = *doc.Content[0]
	})
	if g.Transcription() == nil || g.Transcription().Engines == nil {
		t.Skip("gateway has no transcription worker (offline engine unavailable)")
	}
	media, err := whip.OpenOpus("../../../testdata/call01.ogg")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(session, queue string) error {
		ctx := context.Background()
		p, err := whip.Publish(ctx, whip.Options{
			URL: g.URL() + "/whip/" + session + "/caller", Token: g.AdminToken, Name: "Caller",
			Labels: map[string]string{"queue": queue}, Audio: media, Duration: media.Length,
		})
		if err != nil {
			return fmt.Errorf("publish %s: %w", session, err)
		}
		wctx, cancel := context.WithTimeout(ctx, media.Length+30*time.Second)
		defer cancel()
		return errorsJoin(p.Wait(wctx), p.Close(ctx))
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = publish("clinic-call", "clinic") })
	wg.Go(func() { errs[1] = publish("billing-call", "billing") })
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	clinic, clinicTr := recordingOf(t, g, "clinic-call", "caller", 3*time.Minute)
	billing, billingTr := recordingOf(t, g, "billing-call", "caller", 3*time.Minute)
	if clinic.TranscriptionEngine != "openai" || clinic.Decision.V["transcription_engine"] != "openai" || clinic.PolicyName != "clinic" {
		t.Errorf("clinic recording: engine %q, decision %v, policy %q", clinic.TranscriptionEngine, clinic.Decision.V, clinic.PolicyName)
	}
	if billing.TranscriptionEngine != "" || billing.PolicyName != "everything" {
		t.Errorf("billing recording: engine %q, policy %q", billing.TranscriptionEngine, billing.PolicyName)
	}
	var words []string
	for _, w := range allWords(clinicTr) {
		words = append(words, w.Word)
	}
	if clinicTr.Engine != "openai" || clinicTr.Language != "en" || strings.Join(words, " ") != "clinic words" || requests.Load() == 0 {
		t.Errorf("clinic transcript: engine %q language %q words %q, %d requests to the server; want the server's words",
			clinicTr.Engine, clinicTr.Language, words, requests.Load())
	}
	if billingTr.Engine != "offline" || len(allWords(billingTr)) == 0 {
		t.Errorf("billing transcript: engine %q with %d words; want the offline default", billingTr.Engine, len(allWords(billingTr)))
	}
	for _, rec := range []meta.Recording{clinic, billing} {
		var row meta.Transcript
		if err := g.DB.Where("recording_id = ?", rec.ID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{clinic.ID: "openai", billing.ID: "offline"}[rec.ID]; row.Engine != want {
			t.Errorf("transcript row of %s: engine %q, want %q", rec.SessionID, row.Engine, want)
		}
	}
}
