package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
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

// ErrEngineNotConfigured is a job for an engine (named by the
// recording's policy) that this worker's configuration cannot build. It
// wraps transcribe.ErrEngineUnavailable: the job is retried, since
// another worker may have the engine, and fails with reason
// engine_unavailable when none does.
var ErrEngineNotConfigured = fmt.Errorf("%w: not configured on this worker", transcribe.ErrEngineUnavailable)

// EngineSource gives a worker the engine a job asks for.
type EngineSource interface {
	// Default is the name of the engine for recordings whose policy names
	// none.
	Default() string
	// Engine returns the engine called name ("" for the default).
	Engine(ctx context.Context, name string) (Engine, error)
}

// Engines is the EngineSource of a worker process: transcription.engine
// is the default, and every engine whose section is configured
// (config.Transcription.Configured) can be asked for by a policy. The
// default is built by NewEngines; the others on first use, then kept.
// Safe for concurrent use.
type Engines struct {
	cfg     config.Transcription
	workers int
	log     *slog.Logger

	mu    sync.Mutex
	slots map[string]*engineSlot
}

// engineSlot holds one engine once built. Its lock is held while the
// engine is built, so that a slow build (an engine's client set-up)
// delays only the jobs that wait for that engine.
type engineSlot struct {
	mu sync.Mutex
	en Engine
	ok bool
}

var _ EngineSource = (*Engines)(nil)

// NewEngines builds the default engine (transcription.engine) with
// decoders for workers concurrent jobs; its errors are NewEngine's.
func NewEngines(ctx context.Context, cfg config.Transcription, workers int, log *slog.Logger) (*Engines, error) {
	if cfg.Engine == "" {
		cfg.Engine = sphinx.Name
	}
	e := &Engines{cfg: cfg, workers: workers, log: log, slots: map[string]*engineSlot{}}
	if _, err := e.Engine(ctx, ""); err != nil {
		return nil, err
	}
	return e, nil
}

// Default implements EngineSource.
func (e *Engines) Default() string { return e.cfg.Engine }

// Engine implements EngineSource. An engine this configuration does not
// set up is an error wrapping ErrEngineNotConfigured; one that cannot be
// built is NewEngine's error (not kept: the next job tries again).
func (e *Engines) Engine(ctx context.Context, name string) (Engine, error) {
	if name == "" {
		name = e.cfg.Engine
	}
	if name == EngineNone || !e.cfg.Configured(name) {
		return Engine{}, fmt.Errorf("job: transcription engine %q: %w (configure transcription.%s)", name, ErrEngineNotConfigured, name)
	}
	e.mu.Lock()
	s := e.slots[name]
	if s == nil {
		s = &engineSlot{}
		e.slots[name] = s
	}
	e.mu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ok {
		return s.en, nil
	}
	cfg := e.cfg
	cfg.Engine = name
	en, err := NewEngine(ctx, cfg, e.workers, e.log)
	if err != nil {
		return Engine{}, err
	}
	s.en, s.ok = en, true
	if name != e.cfg.Engine && e.log != nil {
		e.log.Info("transcription engine started for a policy that names it", "engine", name)
	}
	return en, nil
}

// Names lists the engines built so far.
func (e *Engines) Names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for name, s := range e.slots {
		s.mu.Lock()
		if s.ok {
			names = append(names, name)
		}
		s.mu.Unlock()
	}
	slices.Sort(names)
	return names
}

// Close closes every engine built.
func (e *Engines) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for name, s := range e.slots {
		s.mu.Lock()
		if s.ok {
			errs = append(errs, s.en.Close())
		}
		s.mu.Unlock()
		delete(e.slots, name)
	}
	return errors.Join(errs...)
}

// single is the EngineSource of a worker built with one engine (a
// Transcriber's): it serves that engine under its own name and as the
// default; any other name is not configured.
type single struct{ e Engine }

func (s single) Default() string { return s.e.Name() }

func (s single) Engine(_ context.Context, name string) (Engine, error) {
	if name == "" || name == s.e.Name() {
		return s.e, nil
	}
	return Engine{}, fmt.Errorf("job: transcription engine %q: %w (this worker runs only %s)", name, ErrEngineNotConfigured, s.e.Name())
}

// AudioOptions returns the decoding options for cfg
// (transcription.chunk_seconds).
func AudioOptions(cfg config.Transcription, log *slog.Logger) audio.Options {
	return audio.Options{
		MaxChunk: time.Duration(cfg.ChunkSeconds * float64(time.Second)),
		Logger:   log,
	}
}
