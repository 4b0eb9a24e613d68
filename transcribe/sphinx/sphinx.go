package sphinx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
)

// Name is the engine name written into transcripts.
const Name = "offline"

// Option configures New.
type Option func(*options)

type options struct {
	decoders int
	log      *slog.Logger
}

// WithDecoders sets how many decoders the engine may hold at once, which is
// how many chunks it transcribes in parallel. Each costs about 107 MB and
// 0.5 CPU s to load; they are loaded on first use. Default 1; values below
// 1 mean 1.
func WithDecoders(n int) Option {
	return func(o *options) { o.decoders = max(n, 1) }
}

// WithLogger sets the logger for decoder lifecycle messages. It never logs
// audio or recognized text. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{decoders: 1, log: slog.Default()}
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// withDefaults fills empty paths from config.Default.
func withDefaults(cfg config.Offline) config.Offline {
	d := config.Default().Transcription.Offline
	if cfg.ModelDir == "" {
		cfg.ModelDir = d.ModelDir
	}
	if cfg.Dict == "" {
		cfg.Dict = d.Dict
	}
	if cfg.LM == "" {
		cfg.LM = d.LM
	}
	return cfg
}

// checkModel reports a missing or unrecognizable acoustic model,
// dictionary or language model as transcribe.ErrEngineUnavailable naming
// the path. It looks at file headers only: PocketSphinx ends the whole
// process (exit) on a model file it cannot parse, so a wrong path must be
// caught here, before the library sees it.
func checkModel(cfg config.Offline) error {
	files := []struct {
		key, path string
		ok        func(head []byte) bool
	}{
		{"transcription.offline.model_dir", filepath.Join(cfg.ModelDir, "mdef"), func(h []byte) bool {
			return bytes.HasPrefix(h, []byte("BMDF")) || bytes.HasPrefix(h, []byte("0.3"))
		}},
		{"transcription.offline.model_dir", filepath.Join(cfg.ModelDir, "feat.params"), func(h []byte) bool {
			return bytes.HasPrefix(bytes.TrimSpace(h), []byte("-"))
		}},
		{"transcription.offline.model_dir", filepath.Join(cfg.ModelDir, "means"), isS3},
		{"transcription.offline.model_dir", filepath.Join(cfg.ModelDir, "variances"), isS3},
		{"transcription.offline.model_dir", filepath.Join(cfg.ModelDir, "transition_matrices"), isS3},
		{"transcription.offline.dict", cfg.Dict, func(h []byte) bool {
			line, _, _ := bytes.Cut(h, []byte("\n"))
			return len(bytes.Fields(line)) >= 2
		}},
		{"transcription.offline.lm", cfg.LM, func(h []byte) bool {
			return bytes.HasPrefix(h, []byte("Trie Language Model")) || // sphinx binary trie (.lm.bin)
				bytes.HasPrefix(h, []byte("Darpa Trie LM")) || // old DMP
				bytes.Contains(h, []byte("\\data\\")) // ARPA text
		}},
	}
	for _, f := range files {
		head, err := readHead(f.path, 4096)
		if err != nil {
			return fmt.Errorf("sphinx: %s: %s is not readable (install Debian's pocketsphinx-en-us or set the path): %w",
				f.key, f.path, transcribe.ErrEngineUnavailable)
		}
		if !f.ok(head) {
			return fmt.Errorf("sphinx: %s: %s is not a PocketSphinx model file of the expected kind: %w",
				f.key, f.path, transcribe.ErrEngineUnavailable)
		}
	}
	return nil
}

// isS3 recognizes SphinxTrain's binary parameter files ("s3" header).
func isS3(h []byte) bool { return bytes.HasPrefix(h, []byte("s3\n")) }

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b[:m], nil
}

// cleanWord maps a PocketSphinx token to an output word: fillers (<s>,
// </s>, <sil>, [NOISE], [SPEECH], ++GARBAGE++) become "", alternate
// pronunciations ("read(2)") lose their suffix.
func cleanWord(w string) string {
	if w == "" || w[0] == '<' || w[0] == '[' || strings.HasPrefix(w, "++") {
		return ""
	}
	if i := strings.IndexByte(w, '('); i > 0 && strings.HasSuffix(w, ")") {
		w = w[:i]
	}
	return w
}

// clamp01 bounds a posterior probability: PocketSphinx's can slightly
// exceed 1 through rounding in its log arithmetic.
func clamp01(p float64) float64 {
	switch {
	case p != p || p < 0: // NaN or negative
		return 0
	case p > 1:
		return 1
	}
	return p
}
