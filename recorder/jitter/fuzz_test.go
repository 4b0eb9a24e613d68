package jitter

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzJitter pushes arbitrary sequence numbers and arrival steps: output
// must be strictly increasing and the counters must add up.
func FuzzJitter(f *testing.F) {
	f.Add([]byte{0, 1, 5, 0, 2, 5, 0, 4, 5, 0, 3, 5, 255, 255, 9, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		var last uint64
		first := true
		buf := New(Config{Latency: 50 * time.Millisecond, Size: 64}, func(p *Packet) {
			if !first && p.Ext <= last {
				t.Fatalf("out of order: %d after %d", p.Ext, last)
			}
			first, last = false, p.Ext
		})
		now := int64(0)
		for len(b) >= 3 {
			seq := binary.BigEndian.Uint16(b)
			now += int64(b[2]) * int64(time.Millisecond)
			buf.Push(&Packet{SequenceNumber: seq, Arrival: now, Payload: b[:1]})
			_ = buf.AppendNACKs(nil, now)
			b = b[3:]
		}
		buf.Flush()
		st := buf.Stats()
		if st.Expected != st.Received+st.Lost {
			t.Fatalf("expected %d != received %d + lost %d", st.Expected, st.Received, st.Lost)
		}
	})
}
