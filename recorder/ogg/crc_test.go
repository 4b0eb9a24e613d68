package ogg

import (
	"math/rand/v2"
	"testing"
)

// crcBytewise is the plain definition, one bit at a time.
func crcBytewise(crc uint32, p []byte) uint32 {
	for _, b := range p {
		crc ^= uint32(b) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04C11DB7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestCRC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 100 {
		p := make([]byte, n*7)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		seed := rng.Uint32()
		if got, want := crcUpdate(seed, p), crcBytewise(seed, p); got != want {
			t.Fatalf("len %d: %08x, want %08x", len(p), got, want)
		}
	}
}

func BenchmarkCRC(b *testing.B) {
	p := make([]byte, 8192)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		crcUpdate(0, p)
	}
}
