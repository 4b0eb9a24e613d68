package audio

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchAudio decodes a test recording per iteration and reports CPU
// seconds per second of audio (the real-time factor of this stage).
func benchAudio(b *testing.B, name, decoder string, chunk bool) {
	data := readTestdata(b, name)
	audio := float64(len(decodeFile(b, name, decoder))) / outRate
	ct := contentTypeOf(name)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu0 := cpuTime(b)
	n := 0
	for b.Loop() {
		n++
		if chunk {
			for _, err := range Chunks(context.Background(), bytes.NewReader(data), ct, Options{Decoder: decoder}) {
				if err != nil {
					b.Fatal(err)
				}
			}
			continue
		}
		err := Decode(context.Background(), bytes.NewReader(data), ct, Options{Decoder: decoder}, func([]int16) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(cpu.Seconds()/(float64(n)*audio), "cpu-s/audio-s")
}

func BenchmarkDecode(b *testing.B) {
	for _, dec := range decoders() {
		for _, name := range []string{"conversation.ogg", "conversation.webm"} {
			b.Run(dec+"/"+name, func(b *testing.B) { benchAudio(b, name, dec, false) })
		}
	}
}

func BenchmarkChunks(b *testing.B) {
	for _, dec := range decoders() {
		b.Run(dec, func(b *testing.B) { benchAudio(b, "conversation.ogg", dec, true) })
	}
}
