package whip_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/whip"
)

// TestPool: publishers of one pool share an API and two pacers; each
// sends its own paced stream (20 ms audio, 30 fps video), impairments and
// counters stay per publisher, and the receiver gets every packet.
func TestPool(t *testing.T) {
	a, v := media(t)
	e := newEndpoint(t)
	pool, err := whip.NewPool(whip.PoolOptions{Pacers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	const n = 5
	const dur = 2 * time.Second
	pubs := make([]*whip.Publisher, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := whip.Options{URL: e.url("s1", fmt.Sprintf("p%d", i)), Token: e.token, Audio: a, Duration: dur}
			if i == 0 {
				o.Video = v
				o.Impairment.DropPackets = map[string][]int{"video": {10}}
			}
			p, err := pool.Publish(ctx, o)
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			pubs[i] = p
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, p := range pubs {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if r := pubs[0].Stats().Video.Retransmitted; r != 1 {
			return fmt.Errorf("retransmitted %d", r)
		}
		return nil
	})
	for i, p := range pubs {
		st := p.Stats()
		if st.Audio.Packets != uint64(dur/(20*time.Millisecond)) {
			t.Errorf("publisher %d sent %d audio packets in %v, want %d", i, st.Audio.Packets, dur, dur/(20*time.Millisecond))
		}
		if i > 0 && (st.Video.Packets != 0 || st.Video.Dropped != 0 || st.Audio.Dropped != 0) {
			t.Errorf("publisher %d: %+v", i, st)
		}
		if st.SetupLatency <= 0 {
			t.Errorf("publisher %d: no setup latency", i)
		}
	}
	if st := pubs[0].Stats().Video; st.Frames != uint64(dur*30/time.Second) || st.Dropped != 1 {
		t.Errorf("video: %d frames, %d dropped; want %d, 1", st.Frames, st.Dropped, dur*30/time.Second)
	}
	var streams []received
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error { // the last packets may still be on their way
		streams = e.snapshot()
		for _, s := range streams {
			if s.Kind == "audio" && len(s.Seqs) < 100 {
				return fmt.Errorf("%d audio packets received", len(s.Seqs))
			}
		}
		return nil
	})
	for _, p := range pubs {
		if err := p.Close(ctx); err != nil {
			t.Error(err)
		}
	}
	if len(streams) != n+1 {
		t.Fatalf("%d streams at the receiver, want %d", len(streams), n+1)
	}
	for _, s := range streams {
		if lost, _ := missing(s.Seqs); lost != 0 {
			t.Errorf("%s stream: %d packets missing", s.Kind, lost)
		}
		if s.Kind != "audio" {
			continue
		}
		// Real-time pacing: 100 packets spread over about 2 s.
		span := s.Arrivals[len(s.Arrivals)-1].Sub(s.Arrivals[0])
		if len(s.Seqs) != 100 || span < 1900*time.Millisecond || span > 2200*time.Millisecond {
			t.Errorf("audio: %d packets over %v, want 100 over about 1.98 s", len(s.Seqs), span)
		}
	}
	if _, err := pool.Publish(ctx, whip.Options{URL: e.url("s1", "x"), Audio: a,
		Impairment: whip.Impairment{NoRetransmit: true}}); !errors.Is(err, whip.ErrPoolNoRetransmit) {
		t.Errorf("NoRetransmit in a pool: %v", err)
	}
}
