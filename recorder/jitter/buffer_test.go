package jitter

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

type arrival struct {
	seq uint16
	at  time.Duration // arrival time
}

type harness struct {
	b   *Buffer
	out []uint16
	lb  []uint64
}

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	h := &harness{}
	h.b = New(cfg, func(p *Packet) {
		if want := fmt.Sprintf("p%d", p.SequenceNumber); string(p.Payload) != want {
			tb.Errorf("packet %d carries %q", p.SequenceNumber, p.Payload)
		}
		h.out = append(h.out, p.SequenceNumber)
		h.lb = append(h.lb, p.LostBefore)
	})
	return h
}

func (h *harness) push(seq uint16, at time.Duration) Result {
	return h.b.Push(&Packet{SequenceNumber: seq, Timestamp: uint32(seq) * 960, Arrival: int64(at), Payload: []byte(fmt.Sprintf("p%d", seq))})
}

func seqs(from uint16, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = from + uint16(i)
	}
	return out
}

func TestBuffer(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		in      []arrival
		tick    time.Duration // Tick at this time after the input, then Flush if flush
		flush   bool
		want    []uint16
		stats   Stats
		results map[int]Result // index in `in` → expected result
	}{
		{
			name:  "in order",
			in:    []arrival{{10, 0}, {11, 20 * ms}, {12, 40 * ms}},
			want:  []uint16{10, 11, 12},
			stats: Stats{Expected: 3, Received: 3},
		},
		{
			name:  "reordered within latency",
			in:    []arrival{{10, 0}, {12, 20 * ms}, {11, 30 * ms}, {13, 40 * ms}},
			want:  []uint16{10, 11, 12, 13},
			stats: Stats{Expected: 4, Received: 4},
		},
		{
			name:    "duplicates dropped",
			in:      []arrival{{10, 0}, {10, 1 * ms}, {12, 20 * ms}, {12, 21 * ms}, {11, 30 * ms}, {11, 31 * ms}},
			want:    []uint16{10, 11, 12},
			stats:   Stats{Expected: 3, Received: 3, Duplicate: 3},
			results: map[int]Result{1: Duplicate, 3: Duplicate, 5: Duplicate},
		},
		{
			name:  "loss given up after latency",
			in:    []arrival{{10, 0}, {12, 20 * ms}, {13, 40 * ms}, {14, 219 * ms}, {15, 221 * ms}},
			want:  []uint16{10, 12, 13, 14, 15},
			stats: Stats{Expected: 6, Received: 5, Lost: 1},
		},
		{
			name:    "late packet after give-up",
			in:      []arrival{{10, 0}, {12, 20 * ms}, {13, 240 * ms}, {11, 250 * ms}},
			want:    []uint16{10, 12, 13},
			stats:   Stats{Expected: 4, Received: 3, Lost: 1, Late: 1},
			results: map[int]Result{3: Late},
		},
		{
			name:  "wrap 65535 to 0 in order",
			in:    []arrival{{65534, 0}, {65535, 20 * ms}, {0, 40 * ms}, {1, 60 * ms}},
			want:  []uint16{65534, 65535, 0, 1},
			stats: Stats{Expected: 4, Received: 4},
		},
		{
			name:  "wrap reordered across 0",
			in:    []arrival{{65534, 0}, {0, 20 * ms}, {65535, 25 * ms}, {2, 60 * ms}, {1, 70 * ms}},
			want:  []uint16{65534, 65535, 0, 1, 2},
			stats: Stats{Expected: 5, Received: 5},
		},
		{
			name:  "loss across wrap",
			in:    []arrival{{65534, 0}, {1, 20 * ms}},
			tick:  300 * ms,
			want:  []uint16{65534, 1},
			stats: Stats{Expected: 4, Received: 2, Lost: 2},
		},
		{
			name:  "reordered at the very start",
			in:    []arrival{{12, 0}, {10, 5 * ms}, {11, 10 * ms}, {13, 20 * ms}},
			want:  []uint16{10, 11, 12, 13},
			stats: Stats{Expected: 4, Received: 4},
		},
		{
			name:  "stalled stream drains on tick",
			in:    []arrival{{10, 0}, {12, 20 * ms}},
			tick:  220 * ms,
			want:  []uint16{10, 12},
			stats: Stats{Expected: 3, Received: 2, Lost: 1},
		},
		{
			name:  "held until flush",
			in:    []arrival{{10, 0}, {12, 20 * ms}, {14, 30 * ms}},
			flush: true,
			want:  []uint16{10, 12, 14},
			stats: Stats{Expected: 5, Received: 3, Lost: 2},
		},
		{
			name:    "single hostile jump ignored",
			in:      []arrival{{10, 0}, {30000, 10 * ms}, {11, 20 * ms}, {12, 40 * ms}},
			want:    []uint16{10, 11, 12},
			stats:   Stats{Expected: 3, Received: 3},
			results: map[int]Result{1: Probation},
		},
		{
			name:    "confirmed jump restarts",
			in:      []arrival{{10, 0}, {11, 20 * ms}, {40000, 40 * ms}, {40001, 60 * ms}, {40002, 80 * ms}},
			want:    []uint16{10, 11, 40000, 40001, 40002},
			stats:   Stats{Expected: 5, Received: 5, Restarts: 1},
			results: map[int]Result{2: Probation},
		},
		{
			name: "overflow forces the window forward",
			in: append([]arrival{{0, 0}}, func() (a []arrival) {
				for i := 2; i < 40; i++ {
					a = append(a, arrival{uint16(i), time.Duration(i) * ms})
				}
				return a
			}()...),
			want:  append([]uint16{0}, seqs(2, 38)...),
			stats: Stats{Expected: 40, Received: 39, Lost: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{Latency: 200 * ms, Size: 32})
			for i, a := range tt.in {
				r := h.push(a.seq, a.at)
				want := Accepted
				if w, ok := tt.results[i]; ok {
					want = w
				}
				if r != want {
					t.Errorf("push %d (seq %d) = %d, want %d", i, a.seq, r, want)
				}
			}
			// Drain: tick one latency after the last arrival (or later).
			tick := tt.in[len(tt.in)-1].at + 200*ms
			h.b.Tick(int64(max(tick, tt.tick)))
			if tt.flush {
				h.b.Flush()
			}
			if !slices.Equal(h.out, tt.want) {
				t.Errorf("out = %v, want %v", h.out, tt.want)
			}
			st := h.b.Stats()
			st.NACKs = 0
			if st != tt.stats {
				t.Errorf("stats = %+v, want %+v", st, tt.stats)
			}
		})
	}
}

func TestLostBefore(t *testing.T) {
	ms := time.Millisecond
	h := newHarness(t, Config{Latency: 100 * ms})
	h.push(1, 0)
	h.b.Tick(int64(100 * ms)) // warm-up over
	h.push(4, 110*ms)
	h.push(5, 300*ms) // releases the gap 2,3
	if !slices.Equal(h.out, []uint16{1, 4, 5}) || !slices.Equal(h.lb, []uint64{0, 2, 0}) {
		t.Fatalf("out %v lostBefore %v", h.out, h.lb)
	}
}

func TestNACKs(t *testing.T) {
	ms := time.Millisecond
	h := newHarness(t, Config{Latency: 200 * ms, NACKDelay: 5 * ms, NACKInterval: 40 * ms, MaxNACKs: 2})
	h.push(100, 0)
	h.push(103, 10*ms)
	if got := h.b.AppendNACKs(nil, int64(12*ms)); len(got) != 0 {
		t.Fatalf("NACKs before NACKDelay: %v", got)
	}
	if got := h.b.AppendNACKs(nil, int64(15*ms)); !slices.Equal(got, []uint16{101, 102}) {
		t.Fatalf("first NACKs %v", got)
	}
	if got := h.b.AppendNACKs(nil, int64(20*ms)); len(got) != 0 {
		t.Fatalf("NACKs repeated too soon: %v", got)
	}
	h.push(101, 30*ms) // retransmission arrives
	if got := h.b.AppendNACKs(nil, int64(60*ms)); !slices.Equal(got, []uint16{102}) {
		t.Fatalf("second NACKs %v", got)
	}
	if got := h.b.AppendNACKs(nil, int64(200*ms)); len(got) != 0 {
		t.Fatalf("NACKs beyond MaxNACKs: %v", got)
	}
	if st := h.b.Stats(); st.NACKs != 3 {
		t.Fatalf("NACK count %d", st.NACKs)
	}
	// Across the wrap.
	h2 := newHarness(t, Config{})
	h2.push(65534, 0)
	h2.push(1, 0)
	if got := h2.b.AppendNACKs(nil, int64(20*ms)); !slices.Equal(got, []uint16{65535, 0}) {
		t.Fatalf("NACKs across wrap %v", got)
	}
}

// TestLongRunInvariant pushes many wraps of sequence numbers with loss,
// reordering and duplicates and checks the output is strictly ordered and
// Expected == Received + Lost.
func TestLongRunInvariant(t *testing.T) {
	ms := time.Millisecond
	var out []uint64
	b := New(Config{Latency: 60 * ms, Size: 64}, func(p *Packet) { out = append(out, p.Ext) })
	seq := uint16(65000)
	at := time.Duration(0)
	var pending []uint16
	for i := range 200000 {
		at += 20 * ms
		switch {
		case i%37 == 0: // lost
		case i%11 == 0: // delayed by one packet
			pending = append(pending, seq)
		default:
			b.Push(&Packet{SequenceNumber: seq, Arrival: int64(at), Payload: []byte{1}})
			if i%53 == 0 {
				b.Push(&Packet{SequenceNumber: seq, Arrival: int64(at), Payload: []byte{1}})
			}
			for _, s := range pending {
				b.Push(&Packet{SequenceNumber: s, Arrival: int64(at), Payload: []byte{1}})
			}
			pending = pending[:0]
		}
		seq++
	}
	b.Flush()
	for i := 1; i < len(out); i++ {
		if out[i] <= out[i-1] {
			t.Fatalf("out of order at %d: %d after %d", i, out[i], out[i-1])
		}
	}
	st := b.Stats()
	if st.Expected != st.Received+st.Lost {
		t.Fatalf("expected %d != received %d + lost %d", st.Expected, st.Received, st.Lost)
	}
	if st.Lost < 200000/37-2 || st.Lost > 200000/37+2 || st.Duplicate == 0 {
		t.Fatalf("stats %+v", st)
	}
}
