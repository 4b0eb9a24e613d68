package awstranscribe

import (
	"encoding/binary"
	"fmt"
	"io"
	"iter"

	"github.com/custodian/custodian/transcribe"
)

// wavHeaderBytes is the size of the canonical RIFF/WAVE header.
const wavHeaderBytes = 44

// maxWAVSamples keeps the data chunk under 4 GiB (about 37 hours).
const maxWAVSamples = (1<<32 - 1 - wavHeaderBytes) / 2

// wavHeader is the header of a 16 kHz mono 16-bit PCM WAV file holding n
// samples.
func wavHeader(n int64) []byte {
	dataBytes := uint32(2 * n)
	b := make([]byte, wavHeaderBytes)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], 36+dataBytes)
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], transcribe.SampleRate)
	binary.LittleEndian.PutUint32(b[28:], transcribe.SampleRate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], dataBytes)
	return b
}

// writeWAV writes a WAV file of exactly total samples to w: each chunk at
// its OffsetMS, silence in the gaps and after the last chunk. Samples that
// overlap earlier ones or fall after total are dropped.
func writeWAV(w io.Writer, total int64, chunks iter.Seq2[transcribe.Audio, error]) error {
	if total > maxWAVSamples {
		return fmt.Errorf("%d samples do not fit in a WAV file", total)
	}
	if _, err := w.Write(wavHeader(total)); err != nil {
		return err
	}
	var written int64
	buf := make([]byte, 0, 64<<10)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	put := func(s int16) error {
		buf = binary.LittleEndian.AppendUint16(buf, uint16(s))
		written++
		if len(buf) == cap(buf) {
			return flush()
		}
		return nil
	}
	silenceTo := func(n int64) error {
		for written < min(n, total) {
			if err := put(0); err != nil {
				return err
			}
		}
		return nil
	}
	for a, err := range chunks {
		if err != nil {
			return err
		}
		start := a.OffsetMS * transcribe.SampleRate / 1000
		if err := silenceTo(start); err != nil {
			return err
		}
		skip := max(written-start, 0)
		for _, s := range a.Samples[min(skip, int64(len(a.Samples))):] {
			if written >= total {
				break
			}
			if err := put(s); err != nil {
				return err
			}
		}
	}
	if err := silenceTo(total); err != nil {
		return err
	}
	return flush()
}
