package job

import (
	"context"
	"errors"
	"testing"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/sphinx"
)

// TestNewEngine: the engine transcription.engine selects, and clear
// errors for one that is off, unknown or cannot run here.
func TestNewEngine(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default().Transcription

	none := cfg
	none.Engine = EngineNone
	if _, err := NewEngine(ctx, none, 1, nil); !errors.Is(err, ErrDisabled) {
		t.Errorf("engine none: %v, want ErrDisabled", err)
	}
	bad := cfg
	bad.Engine = "whisper"
	if _, err := NewEngine(ctx, bad, 1, nil); err == nil {
		t.Error("unknown engine accepted")
	}
	oa := cfg
	oa.Engine = "openai"
	oa.OpenAI.URL = unreachableURL(t) // zero-length audio is never sent
	oa.OpenAI.Language = "de"
	if e, err := NewEngine(ctx, oa, 1, nil); err != nil || e.Name() != "openai" || e.Language != "de" {
		t.Errorf("openai: %v, %v", e, err)
	}
	noModel := cfg
	noModel.Offline.ModelDir = t.TempDir()
	if _, err := NewEngine(ctx, noModel, 1, nil); !errors.Is(err, transcribe.ErrEngineUnavailable) {
		t.Errorf("offline without a model: %v, want ErrEngineUnavailable", err)
	}
	e, err := NewEngine(ctx, cfg, 1, nil)
	if _, probe := (&sphinx.Engine{}).Transcribe(ctx, transcribe.Audio{}); probe != nil {
		// CGO_ENABLED=0: the stand-in must be refused with the reason.
		if !errors.Is(err, transcribe.ErrEngineUnavailable) {
			t.Errorf("offline without cgo: %v, want ErrEngineUnavailable", err)
		}
		return
	}
	if err != nil {
		t.Skipf("offline engine: %v", err)
	}
	defer e.Close()
	if e.Name() != "offline" || e.Language != "en-US" {
		t.Errorf("offline engine %s language %q", e.Name(), e.Language)
	}
}
