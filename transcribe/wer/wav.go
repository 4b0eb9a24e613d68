package wer

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/custodian/custodian/transcribe"
)

// maxWAVBytes bounds the data chunk ReadWAV accepts (about 34 minutes of
// 16 kHz mono): test corpora, not recordings.
const maxWAVBytes = 64 << 20

// ReadWAVFile reads a 16 kHz mono 16-bit PCM WAV file.
func ReadWAVFile(path string) (transcribe.Audio, error) {
	f, err := os.Open(path)
	if err != nil {
		return transcribe.Audio{}, err
	}
	defer f.Close()
	a, err := ReadWAV(f)
	if err != nil {
		return transcribe.Audio{}, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ReadWAV reads a RIFF/WAVE stream holding 16 kHz mono signed 16-bit PCM
// (format tag 1, or WAVE_FORMAT_EXTENSIBLE with the PCM sub-format). Any
// other rate, width or channel count is an error wrapping ErrFormat: this
// package measures engines on audio exactly as they receive it, so it does
// not convert.
func ReadWAV(r io.Reader) (transcribe.Audio, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return transcribe.Audio{}, fmt.Errorf("%w: wav header: %v", ErrFormat, err)
	}
	if string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return transcribe.Audio{}, fmt.Errorf("%w: not a RIFF/WAVE file", ErrFormat)
	}
	var haveFmt bool
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return transcribe.Audio{}, fmt.Errorf("%w: no data chunk: %v", ErrFormat, err)
		}
		id, size := string(ch[0:4]), binary.LittleEndian.Uint32(ch[4:8])
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return transcribe.Audio{}, fmt.Errorf("%w: fmt chunk of %d bytes", ErrFormat, size)
			}
			b := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, b); err != nil {
				return transcribe.Audio{}, fmt.Errorf("%w: fmt chunk: %v", ErrFormat, err)
			}
			if err := checkFmt(b[:size]); err != nil {
				return transcribe.Audio{}, err
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return transcribe.Audio{}, fmt.Errorf("%w: data chunk before fmt chunk", ErrFormat)
			}
			if size > maxWAVBytes || size%2 != 0 {
				return transcribe.Audio{}, fmt.Errorf("%w: data chunk of %d bytes", ErrFormat, size)
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(r, b); err != nil {
				return transcribe.Audio{}, fmt.Errorf("%w: data chunk: %v", ErrFormat, err)
			}
			s := make([]int16, size/2)
			for i := range s {
				s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
			}
			return transcribe.Audio{Samples: s}, nil
		default:
			if _, err := io.CopyN(io.Discard, r, int64(size)+int64(size%2)); err != nil {
				return transcribe.Audio{}, fmt.Errorf("%w: chunk %q: %v", ErrFormat, id, err)
			}
		}
	}
}

func checkFmt(b []byte) error {
	tag := binary.LittleEndian.Uint16(b[0:2])
	channels := binary.LittleEndian.Uint16(b[2:4])
	rate := binary.LittleEndian.Uint32(b[4:8])
	bits := binary.LittleEndian.Uint16(b[14:16])
	if tag == 0xFFFE && len(b) >= 26 { // WAVE_FORMAT_EXTENSIBLE: sub-format GUID starts with the tag
		tag = binary.LittleEndian.Uint16(b[24:26])
	}
	if tag != 1 || bits != 16 {
		return fmt.Errorf("%w: want 16-bit PCM, have format %d with %d bits", ErrFormat, tag, bits)
	}
	if channels != 1 || rate != transcribe.SampleRate {
		return fmt.Errorf("%w: want mono %d Hz, have %d channels at %d Hz", ErrFormat, transcribe.SampleRate, channels, rate)
	}
	return nil
}
