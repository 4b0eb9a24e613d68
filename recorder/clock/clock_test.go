package clock

import (
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func TestUnwrap(t *testing.T) {
	var u Unwrapper
	in := []uint32{4294967000, 4294967295, 100, 4294967200, 5000, 2000000000, 4000000000, 10}
	want := []int64{4294967000, 4294967295, 4294967396, 4294967200, 4294972296, 4294967296 + 2000000000, 4294967296 + 4000000000, 2*4294967296 + 10}
	for i, ts := range in {
		if got := u.Unwrap(ts); got != want[i] {
			t.Fatalf("%d: Unwrap(%d) = %d, want %d", i, ts, got, want[i])
		}
	}
}

func TestMapArrivalAcrossWrap(t *testing.T) {
	m := NewMapper(48000, nil, Config{})
	ts := uint32(4294967295 - 960*10)
	var first int64
	for i := range 100 {
		arrival := 1000*ms + int64(i)*20*ms + int64(i%3)*7*ms // jitter 0..14 ms
		got, r := m.Map(ts, arrival)
		if r != OK {
			t.Fatalf("packet %d: %v", i, r)
		}
		if i == 0 {
			first = got
		}
		if want := first + int64(i)*20*ms; got != want {
			t.Fatalf("packet %d mapped to %d, want %d (exact RTP spacing)", i, got, want)
		}
		ts += 960
	}
}

func TestMapLearnsLowerDelay(t *testing.T) {
	m := NewMapper(48000, nil, Config{})
	m.Map(0, 1050*ms)             // first packet delayed by 50 ms
	got, _ := m.Map(960, 1020*ms) // next one on time
	if got != 1020*ms {
		t.Fatalf("got %d, want %d", got, 1020*ms)
	}
}

func TestMapRejectsAndReanchors(t *testing.T) {
	m := NewMapper(48000, nil, Config{MaxSkew: 3 * time.Second, ReanchorAfter: 3})
	m.Map(0, 0)
	if _, r := m.Map(48000*3600, 20*ms); r != Rejected {
		t.Fatalf("an hour's jump: %v", r)
	}
	if got, r := m.Map(960*2, 40*ms); r != OK || got != 40*ms {
		t.Fatalf("back on track: %v %d", r, got)
	}
	// A persistent reset of the timestamps.
	base := uint32(123456789)
	var r Result
	var got int64
	for i := range 3 {
		got, r = m.Map(base+uint32(i)*960, 60*ms+int64(i)*20*ms)
	}
	if r != Reanchored || got != 100*ms {
		t.Fatalf("third frame after reset: %v at %d", r, got)
	}
	if got, r := m.Map(base+3*960, 120*ms); r != OK || got != 120*ms {
		t.Fatalf("after re-anchor: %v %d", r, got)
	}
}

// TestSenderReportsSync: audio and video of one sender with sender
// reports map to the same session time for the same capture instant,
// although video packets meet more delay.
func TestSenderReportsSync(t *testing.T) {
	s := &Sender{}
	a := NewMapper(48000, s, Config{})
	v := NewMapper(90000, s, Config{})
	ntp0 := uint64(3900000000) << 32
	a.SenderReport(ntp0, 1000)
	v.SenderReport(ntp0, 5000)
	// Capture instant k*100ms; audio arrives after 20 ms, video 45 ms.
	for k := int64(0); k < 20; k++ {
		ga, _ := a.Map(uint32(1000+k*4800), 20*ms+k*100*ms)
		gv, _ := v.Map(uint32(5000+k*9000), 45*ms+k*100*ms)
		if k > 0 && ga != gv {
			t.Fatalf("instant %d: audio %d video %d", k, ga, gv)
		}
	}
}

func TestNTPToNs(t *testing.T) {
	if got := NTPToNs(5<<32 | 1<<31); got != 5500*ms {
		t.Fatalf("got %d", got)
	}
}
