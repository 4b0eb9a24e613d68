//go:build !cgo

package sphinx_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/sphinx"
)

func TestUnavailableWithoutCgo(t *testing.T) {
	e, err := sphinx.New(config.Default().Transcription.Offline, sphinx.WithDecoders(4))
	if err != nil {
		t.Fatalf("New without cgo: %v (must succeed so a cgo-free gateway starts)", err)
	}
	var _ transcribe.Engine = e
	if e.Name() != "offline" {
		t.Errorf("Name() = %q", e.Name())
	}
	words, err := e.Transcribe(context.Background(), transcribe.Audio{Samples: make([]int16, 16000)})
	if !errors.Is(err, transcribe.ErrEngineUnavailable) {
		t.Fatalf("Transcribe err = %v, want ErrEngineUnavailable", err)
	}
	if len(words) != 0 {
		t.Fatalf("words %v", words)
	}
	if !strings.Contains(err.Error(), "cgo") {
		t.Fatalf("error %q does not say why (cgo)", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}
