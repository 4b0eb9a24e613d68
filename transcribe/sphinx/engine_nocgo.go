//go:build !cgo

package sphinx

import (
	"context"
	"errors"
	"fmt"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
)

// Engine stands in for the offline engine in a build without cgo: every
// Transcribe fails with transcribe.ErrEngineUnavailable.
type Engine struct{}

var _ transcribe.Engine = (*Engine)(nil)

// ErrClosed is returned by Transcribe after Close.
var ErrClosed = errors.New("sphinx: engine closed")

// errNoCgo explains why the engine cannot run.
var errNoCgo = fmt.Errorf("sphinx: the offline engine needs cgo and libpocketsphinx; this binary was built with CGO_ENABLED=0 (rebuild with cgo or set transcription.engine to openai or aws): %w",
	transcribe.ErrEngineUnavailable)

// New returns an engine that reports itself unavailable; it does not fail
// so that a cgo-free gateway starts and fails transcription jobs with a
// clear reason.
func New(cfg config.Offline, opts ...Option) (*Engine, error) {
	_ = buildOptions(opts)
	_ = withDefaults(cfg)
	return &Engine{}, nil
}

// Name returns "offline".
func (e *Engine) Name() string { return Name }

// Transcribe always fails with an error wrapping
// transcribe.ErrEngineUnavailable.
func (e *Engine) Transcribe(ctx context.Context, a transcribe.Audio) ([]transcribe.Word, error) {
	return nil, errNoCgo
}

// Close does nothing.
func (e *Engine) Close() error { return nil }
