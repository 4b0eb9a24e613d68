package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/awstranscribe"
	"github.com/custodian/custodian/transcribe/openai"
	"github.com/custodian/custodian/transcribe/sphinx"
)

// EngineNone is transcription.engine's value that turns transcription off.
const EngineNone = "none"

// ErrDisabled is returned by NewEngine for transcription.engine none.
var ErrDisabled = errors.New("job: transcription is disabled (transcription.engine: none)")

// Engine is a configured engine and what the transcripts say about it.
type Engine struct {
	transcribe.Engine
	// Language written into transcripts: "en-US" for the offline model,
	// the configured language for the others (may be empty: detected).
	Language string
}

// Close releases the engine's resources (the offline engine's decoders).
func (e Engine) Close() error {
	if c, ok := e.Engine.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// NewEngine builds the engine transcription.engine selects, with decoders
// for workers concurrent jobs, and checks that it can run here: an engine
// that cannot (the offline engine in a CGO_ENABLED=0 build or without its
// model) is an error wrapping transcribe.ErrEngineUnavailable.
func NewEngine(ctx context.Context, cfg config.Transcription, workers int, log *slog.Logger) (Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var e Engine
	switch cfg.Engine {
	case EngineNone:
		return Engine{}, ErrDisabled
	case "", sphinx.Name:
		s, err := sphinx.New(cfg.Offline, sphinx.WithDecoders(workers), sphinx.WithLogger(log))
		if err != nil {
			return Engine{}, err
		}
		e = Engine{Engine: s, Language: "en-US"}
	case openai.Name:
		o, err := openai.New(cfg.OpenAI, openai.WithLogger(log))
		if err != nil {
			return Engine{}, err
		}
		e = Engine{Engine: o, Language: cfg.OpenAI.Language}
	case awstranscribe.Name:
		a, err := awstranscribe.New(ctx, cfg.AWS, awstranscribe.WithLogger(log))
		if err != nil {
			return Engine{}, err
		}
		e = Engine{Engine: a, Language: cfg.AWS.Language}
	default:
		return Engine{}, fmt.Errorf("job: unknown transcription.engine %q", cfg.Engine)
	}
	// Zero-length audio costs nothing with any engine and shows whether
	// it can run at all (the offline stand-in without cgo cannot).
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.Transcribe(pctx, transcribe.Audio{}); err != nil {
		e.Close()
		return Engine{}, fmt.Errorf("job: engine %s: %w", e.Name(), err)
	}
	return e, nil
}

// AudioOptions returns the decoding options for cfg
// (transcription.chunk_seconds).
func AudioOptions(cfg config.Transcription, log *slog.Logger) audio.Options {
	return audio.Options{
		MaxChunk: time.Duration(cfg.ChunkSeconds * float64(time.Second)),
		Logger:   log,
	}
}
