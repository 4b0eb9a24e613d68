//go:build cgo

package sphinx

/*
#cgo pkg-config: pocketsphinx sphinxbase
#include <stdlib.h>
#include <pocketsphinx.h>
#include <sphinxbase/err.h>
#include <sphinxbase/cmd_ln.h>
#include <sphinxbase/logmath.h>

// custodian_quiet drops every PocketSphinx log line: its INFO output can
// include recognized text, which must never reach a log.
static void custodian_quiet(void *user_data, err_lvl_t lvl, const char *fmt, ...) {}

static ps_decoder_t *custodian_ps_new(char *hmm, char *dict, char *lm) {
	err_set_callback(custodian_quiet, NULL);
	// -remove_silence no: the front end's voice activity detector would
	// otherwise drop silent frames and shift every later word time.
	char *argv[] = {"-hmm", hmm, "-dict", dict, "-lm", lm, "-logfn", "/dev/null", "-remove_silence", "no"};
	cmd_ln_t *cfg = cmd_ln_parse_r(NULL, ps_args(), sizeof(argv) / sizeof(argv[0]), argv, TRUE);
	if (cfg == NULL) {
		return NULL;
	}
	ps_decoder_t *ps = ps_init(cfg);
	cmd_ln_free_r(cfg); // ps_init keeps its own reference
	return ps;
}

static int custodian_ps_frate(ps_decoder_t *ps) {
	return (int)cmd_ln_int_r(ps_get_config(ps), "-frate");
}

// custodian_ps_decode decodes samples as one whole utterance. Frame
// numbers of the result count from the start of samples.
static int custodian_ps_decode(ps_decoder_t *ps, const int16 *samples, size_t n) {
	if (ps_start_stream(ps) < 0) {
		return -1;
	}
	if (ps_start_utt(ps) < 0) {
		return -2;
	}
	if (ps_process_raw(ps, samples, n, FALSE, TRUE) < 0) {
		ps_end_utt(ps);
		return -3;
	}
	if (ps_end_utt(ps) < 0) {
		return -4;
	}
	return 0;
}

static double custodian_ps_prob(ps_decoder_t *ps, ps_seg_t *seg) {
	int32 ascr, lscr, lback;
	int32 p = ps_seg_prob(seg, &ascr, &lscr, &lback);
	return logmath_exp(ps_get_logmath(ps), p);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"unsafe"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
)

// Engine is the offline PocketSphinx engine. It is safe for concurrent use;
// at most the configured number of decoders run at once and further calls
// wait for one (or for their context).
type Engine struct {
	cfg   config.Offline
	log   *slog.Logger
	slots chan struct{} // one token per decoder that may exist

	mu     sync.Mutex
	idle   []*decoder
	closed bool
}

var _ transcribe.Engine = (*Engine)(nil)

// ErrClosed is returned by Transcribe after Close.
var ErrClosed = errors.New("sphinx: engine closed")

// New checks the model files of cfg (empty paths take config.Default's),
// loads one decoder to prove the model loads, and returns the engine. A
// missing or unloadable model is an error wrapping
// transcribe.ErrEngineUnavailable that names the path.
func New(cfg config.Offline, opts ...Option) (*Engine, error) {
	o := buildOptions(opts)
	cfg = withDefaults(cfg)
	if err := checkModel(cfg); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: o.log, slots: make(chan struct{}, o.decoders)}
	d, err := e.load()
	if err != nil {
		return nil, err
	}
	e.idle = append(e.idle, d)
	return e, nil
}

// Name returns "offline".
func (e *Engine) Name() string { return Name }

// Transcribe decodes a as one utterance. Word times are milliseconds from
// the chunk start. Empty audio and silence give no words and no error. The
// decode itself cannot be interrupted: ctx is honoured while waiting for a
// decoder and checked again when the decode ends.
func (e *Engine) Transcribe(ctx context.Context, a transcribe.Audio) ([]transcribe.Word, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sphinx: transcribe: %w", err)
	}
	if len(a.Samples) == 0 {
		return nil, nil
	}
	d, err := e.acquire(ctx)
	if err != nil {
		return nil, err
	}
	words, err := d.decode(dither(a.Samples))
	e.release(d)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sphinx: transcribe: %w", err)
	}
	return words, nil
}

// Close frees the idle decoders; decoders in use are freed when their
// Transcribe returns. Transcribe fails with ErrClosed afterwards.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for _, d := range e.idle {
		d.free()
	}
	e.idle = nil
	return nil
}

func (e *Engine) acquire(ctx context.Context) (*decoder, error) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("sphinx: wait for a decoder: %w", ctx.Err())
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.slots
		return nil, ErrClosed
	}
	if n := len(e.idle); n > 0 {
		d := e.idle[n-1]
		e.idle = e.idle[:n-1]
		e.mu.Unlock()
		return d, nil
	}
	e.mu.Unlock()
	d, err := e.load()
	if err != nil {
		<-e.slots
		return nil, err
	}
	return d, nil
}

func (e *Engine) release(d *decoder) {
	e.mu.Lock()
	if e.closed {
		d.free()
	} else {
		e.idle = append(e.idle, d)
	}
	e.mu.Unlock()
	<-e.slots
}

func (e *Engine) load() (*decoder, error) {
	hmm, dict, lm := C.CString(e.cfg.ModelDir), C.CString(e.cfg.Dict), C.CString(e.cfg.LM)
	defer C.free(unsafe.Pointer(hmm))
	defer C.free(unsafe.Pointer(dict))
	defer C.free(unsafe.Pointer(lm))
	ps := C.custodian_ps_new(hmm, dict, lm)
	if ps == nil {
		return nil, fmt.Errorf("sphinx: load model %s (dict %s, lm %s): %w",
			e.cfg.ModelDir, e.cfg.Dict, e.cfg.LM, transcribe.ErrEngineUnavailable)
	}
	e.log.Debug("sphinx: decoder loaded", "model_dir", e.cfg.ModelDir)
	return &decoder{ps: ps, frate: int64(C.custodian_ps_frate(ps))}, nil
}

// dither returns a copy of samples with ±1 LSB of deterministic noise
// added. Exact digital silence (runs of zero samples, as a WebRTC recording
// has while a participant is muted) gives log(0) filterbank energies that
// make PocketSphinx hallucinate words. Its own -dither option draws from
// one process-wide random generator shared by all decoders, which is
// neither safe for concurrent decoders nor repeatable, so the noise is
// added here from a fixed seed: the same chunk always gives the same words.
func dither(samples []int16) []int16 {
	out := make([]int16, len(samples))
	var x uint32 = 0x9E3779B9
	for i, s := range samples {
		x ^= x << 13 // xorshift32
		x ^= x >> 17
		x ^= x << 5
		v := int32(s) + int32(x%3) - 1
		out[i] = int16(min(max(v, math.MinInt16), math.MaxInt16))
	}
	return out
}

// decoder is one PocketSphinx decoder; used by one goroutine at a time.
type decoder struct {
	ps    *C.ps_decoder_t
	frate int64 // frames per second, 100 for the en-US model
}

func (d *decoder) free() {
	if d.ps != nil {
		C.ps_free(d.ps)
		d.ps = nil
	}
}

func (d *decoder) decode(samples []int16) ([]transcribe.Word, error) {
	rc := C.custodian_ps_decode(d.ps, (*C.int16)(unsafe.Pointer(&samples[0])), C.size_t(len(samples)))
	if rc < 0 {
		return nil, fmt.Errorf("sphinx: decode %d samples: step %d failed", len(samples), -int(rc))
	}
	durMS := int64(len(samples)) * 1000 / transcribe.SampleRate
	var words []transcribe.Word
	for seg := C.ps_seg_iter(d.ps); seg != nil; seg = C.ps_seg_next(seg) {
		w := cleanWord(C.GoString(C.ps_seg_word(seg)))
		if w == "" {
			continue
		}
		var sf, ef C.int
		C.ps_seg_frames(seg, &sf, &ef)
		start := int64(sf) * 1000 / d.frate
		end := (int64(ef) + 1) * 1000 / d.frate
		words = append(words, transcribe.Word{
			StartMS:    min(max(start, 0), durMS),
			EndMS:      min(max(end, start), durMS),
			Word:       w,
			Confidence: clamp01(float64(C.custodian_ps_prob(d.ps, seg))),
		})
	}
	return words, nil
}
