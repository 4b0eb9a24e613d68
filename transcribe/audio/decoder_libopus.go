//go:build cgo && !nolibopus

package audio

/*
#cgo pkg-config: opus
#include <opus.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// libopusDecoder decodes with libopus at 16 kHz mono: SILK decodes natively
// at that rate and CELT band-limits before its inverse MDCT, so the output
// needs no resampling. It conceals lost audio (PLC) and recovers the last
// lost frame from the next packet's in-band FEC when the encoder sent it.
type libopusDecoder struct {
	st *C.OpusDecoder
}

func newLibopusDecoder() (decoder, error) {
	var cerr C.int
	st := C.opus_decoder_create(C.opus_int32(outRate), 1, &cerr)
	if cerr != C.OPUS_OK || st == nil {
		return nil, fmt.Errorf("audio: libopus decoder: %s", C.GoString(C.opus_strerror(cerr)))
	}
	return &libopusDecoder{st: st}, nil
}

func (d *libopusDecoder) decode(pkt []byte, out []int16) (int, error) {
	if len(pkt) == 0 {
		return 0, corruptf("empty opus packet")
	}
	n := C.opus_decode(d.st,
		(*C.uchar)(unsafe.Pointer(&pkt[0])), C.opus_int32(len(pkt)),
		(*C.opus_int16)(unsafe.Pointer(&out[0])), C.int(len(out)), 0)
	if n < 0 {
		return 0, corruptf("libopus: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

func (d *libopusDecoder) conceal(next []byte, out []int16) error {
	if len(out) == 0 {
		return nil
	}
	var data *C.uchar
	var fec C.int
	if len(next) > 0 {
		data, fec = (*C.uchar)(unsafe.Pointer(&next[0])), 1
	}
	// With decode_fec=1 libopus runs PLC over all but the last frame of
	// the gap and recovers that frame from next's LBRR data when present
	// (PLC again when not).
	n := C.opus_decode(d.st, data, C.opus_int32(len(next)),
		(*C.opus_int16)(unsafe.Pointer(&out[0])), C.int(len(out)), fec)
	if n < 0 {
		// FEC refuses some packet shapes (for example a CELT-only next
		// packet shorter than the gap); plain PLC always works.
		n = C.opus_decode(d.st, nil, 0, (*C.opus_int16)(unsafe.Pointer(&out[0])), C.int(len(out)), 0)
		if n < 0 {
			return corruptf("libopus concealment: %s", C.GoString(C.opus_strerror(n)))
		}
	}
	clear(out[n:])
	return nil
}

func (d *libopusDecoder) close() {
	if d.st != nil {
		C.opus_decoder_destroy(d.st)
		d.st = nil
	}
}
