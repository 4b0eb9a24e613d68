package job

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
)

// TestEngines: the default engine is built at once, another configured
// engine on first use and then kept, and an engine without configuration
// is refused with an error the job runner retries (another worker may
// have it) and then fails as engine_unavailable.
func TestEngines(t *testing.T) {
	ctx := context.Background()
	fake := newWhisperServer(t, answerWords("hello"))
	cfg := config.Default().Transcription
	cfg.Engine = "openai"
	cfg.OpenAI.URL = fake.srv.URL
	cfg.OpenAI.Language = "en"
	ens, err := NewEngines(ctx, cfg, 1, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	if ens.Default() != "openai" {
		t.Errorf("default %q", ens.Default())
	}
	def, err := ens.Engine(ctx, "")
	if err != nil || def.Name() != "openai" || def.Language != "en" {
		t.Fatalf("default engine: %v %q, %v", def.Engine, def.Language, err)
	}
	again, err := ens.Engine(ctx, "openai")
	if err != nil || again.Engine != def.Engine {
		t.Errorf("openai by name: %v, %v; want the default's instance", again.Engine, err)
	}
	for _, name := range []string{"aws", "none", "whisper"} {
		_, err := ens.Engine(ctx, name)
		if !errors.Is(err, ErrEngineNotConfigured) || !errors.Is(err, transcribe.ErrEngineUnavailable) || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("engine %s: %v, want not configured naming it", name, err)
		}
		if reason, retry := Classify(err); reason != ReasonEngineUnavailable || !retry {
			t.Errorf("engine %s: classified %s retry=%v", name, reason, retry)
		}
	}
	// The offline engine needs no settings: built on first use (or, in
	// a CGO_ENABLED=0 build, refused as unavailable and not kept).
	off, err := ens.Engine(ctx, "offline")
	switch {
	case err == nil && off.Name() == "offline" && off.Language == "en-US":
		if got := ens.Names(); strings.Join(got, ",") != "offline,openai" {
			t.Errorf("built %v", got)
		}
	case errors.Is(err, transcribe.ErrEngineUnavailable):
		if got := ens.Names(); strings.Join(got, ",") != "openai" {
			t.Errorf("built %v after a failed build", got)
		}
	default:
		t.Errorf("offline on first use: %v %q, %v", off.Engine, off.Language, err)
	}
	if err := ens.Close(); err != nil || len(ens.Names()) != 0 {
		t.Errorf("close: %v, %v left", err, ens.Names())
	}

	// A worker built with one engine serves only that one.
	s := single{Engine{Engine: openaiEngine(t, fake.srv.URL)}}
	if e, err := s.Engine(ctx, "openai"); err != nil || e.Name() != "openai" || s.Default() != "openai" {
		t.Errorf("single: %v, %v", e.Engine, err)
	}
	if _, err := s.Engine(ctx, "offline"); !errors.Is(err, ErrEngineNotConfigured) {
		t.Errorf("single, other engine: %v", err)
	}
}

// TestJobsUseThePolicysEngine: three recordings under three policies on
// one worker whose default is the offline engine and which also has an
// OpenAI-compatible server configured (a protocol fake on loopback). The
// recording whose policy names no engine is transcribed offline, the one
// whose policy says openai by the server (its words, its name on the
// transcript, the row and the event), and the one whose policy says aws,
// which this worker has no configuration for, fails after its attempts
// with reason engine_unavailable and a message naming the engine.
func TestJobsUseThePolicysEngine(t *testing.T) {
	offlineEngine(t) // skips where the offline engine cannot run
	e := newEnv(t, envOptions{})
	e.relay(t)
	fake := newWhisperServer(t, answerWords("policy", "chose", "whisper"))
	cfg := config.Default().Transcription
	cfg.OpenAI.URL = fake.srv.URL
	cfg.OpenAI.Language = "en"
	ens, err := NewEngines(context.Background(), cfg, 1, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ens.Close() })
	q := e.queue(t, testQueueConfig(30*time.Second, 2))
	w := NewWorker(q, &Transcriber{DB: e.db, Store: e.store, Log: testLog()}, WorkerConfig{
		Workers: 1, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		PollWait: 500 * time.Millisecond, Log: testLog(), Engines: ens,
	})
	startWorker(t, w)

	recs := map[string]meta.Recording{}
	for _, engine := range []string{"", "openai", "aws"} {
		rec := e.record(t, recSpec{file: testdata("call01.ogg"), name: "Alex Agent", engine: engine})
		if _, err := q.Enqueue(context.Background(), rec, SourceCompleted, time.Now()); err != nil {
			t.Fatal(err)
		}
		recs[engine] = rec
	}

	def := e.waitStatus(t, recs[""].ID, meta.TranscriptCompleted, 2*time.Minute)
	tr, _ := e.storedTranscript(t, recs[""].ID, ObjectTranscript)
	if def.Engine != "offline" || tr.Engine != "offline" || tr.Language != "en-US" || len(words(tr)) == 0 {
		t.Errorf("no policy engine: row engine %q, transcript %q/%q with %d words; want the offline default with words",
			def.Engine, tr.Engine, tr.Language, len(words(tr)))
	}

	oa := e.waitStatus(t, recs["openai"].ID, meta.TranscriptCompleted, 2*time.Minute)
	tr, _ = e.storedTranscript(t, recs["openai"].ID, ObjectTranscript)
	got := wordsText(tr)
	if oa.Engine != "openai" || oa.Language != "en" || tr.Engine != "openai" || tr.Language != "en" || !strings.HasPrefix(got, "policy chose whisper") {
		t.Errorf("policy openai: row %q/%q, transcript %q/%q words %q; want the server's words", oa.Engine, oa.Language, tr.Engine, tr.Language, got)
	}
	if len(fake.Times()) == 0 {
		t.Error("the OpenAI-compatible server got no request")
	}
	var completed []events.TranscriptData
	for _, id := range []string{recs[""].ID, recs["openai"].ID} {
		completed = append(completed, e.outbox(t, events.TranscriptCompleted, id)...)
	}
	if len(completed) != 2 || completed[0].Engine != "offline" || completed[1].Engine != "openai" {
		t.Errorf("transcript.completed events: %+v", completed)
	}

	failed := e.waitStatus(t, recs["aws"].ID, meta.TranscriptFailed, 2*time.Minute)
	if failed.Engine != "aws" || failed.Attempts != 2 || !strings.Contains(failed.FailureReason, `"aws"`) ||
		!strings.Contains(failed.FailureReason, "not configured") {
		t.Errorf("policy aws without configuration: engine %q, %d attempts, reason %q", failed.Engine, failed.Attempts, failed.FailureReason)
	}
	ev := e.outbox(t, events.TranscriptFailed, recs["aws"].ID)
	if len(ev) != 1 || ev[0].Reason != ReasonEngineUnavailable || ev[0].Engine != "aws" {
		t.Errorf("transcript.failed events: %+v", ev)
	}
}

func wordsText(tr transcribe.Transcript) string {
	var b []string
	for _, w := range words(tr) {
		b = append(b, w.Word)
	}
	return strings.Join(b, " ")
}
