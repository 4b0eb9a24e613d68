package audio

import (
	"fmt"

	"github.com/pion/opus"
)

// pionDecoder decodes with the pure-Go github.com/pion/opus at 16 kHz mono.
// It has no packet-loss concealment: lost audio becomes silence.
type pionDecoder struct {
	d   opus.Decoder
	buf []int16
}

func newPionDecoder() (decoder, error) {
	d, err := opus.NewDecoderWithOutput(outRate, 1)
	if err != nil {
		return nil, fmt.Errorf("audio: pion opus decoder: %w", err)
	}
	return &pionDecoder{d: d}, nil
}

func (d *pionDecoder) decode(pkt []byte, out []int16) (n int, err error) {
	defer func() {
		// A decoder bug on hostile input must not take the worker down.
		if r := recover(); r != nil {
			n, err = 0, corruptf("pion opus: panic decoding packet: %v", r)
		}
	}()
	n, err = d.d.DecodeToInt16(pkt, out)
	if err != nil {
		return 0, corruptf("pion opus: %w", err)
	}
	return n, nil
}

func (d *pionDecoder) conceal(_ []byte, out []int16) error {
	clear(out)
	return nil
}

func (d *pionDecoder) close() {}
