package openai

import (
	"encoding/binary"

	"github.com/custodian/custodian/transcribe"
)

// wavHeaderBytes is the size of the canonical RIFF/WAVE header.
const wavHeaderBytes = 44

// encodeWAV returns samples as a 16 kHz mono 16-bit PCM WAV file, built in
// memory.
func encodeWAV(samples []int16) []byte {
	dataBytes := 2 * len(samples)
	b := make([]byte, wavHeaderBytes+dataBytes)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+dataBytes))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)                      // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], 1)                       // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)                       // mono
	binary.LittleEndian.PutUint32(b[24:], transcribe.SampleRate)   // sample rate
	binary.LittleEndian.PutUint32(b[28:], transcribe.SampleRate*2) // byte rate
	binary.LittleEndian.PutUint16(b[32:], 2)                       // block align
	binary.LittleEndian.PutUint16(b[34:], 16)                      // bits per sample
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(dataBytes))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[wavHeaderBytes+2*i:], uint16(s))
	}
	return b
}
