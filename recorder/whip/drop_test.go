package whip_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/whip"
)

// TestDropPackets: the listed packets are dropped once, their
// retransmissions after the receiver's NACK go through, and the receiver
// ends up with every sequence number.
func TestDropPackets(t *testing.T) {
	_, v := media(t)
	e := newEndpoint(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: e.url("s1", "p1"), Token: e.token, Video: v, Duration: 2 * time.Second,
		Impairment: whip.Impairment{DropPackets: map[string][]int{"video": {20, 40}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var st whip.StreamStats
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		st = pub.Stats().Video
		if st.Retransmitted < 2 {
			return errors.New("waiting for the retransmissions")
		}
		return nil
	})
	if st.Dropped != 2 || st.Retransmitted != 2 || st.NACKedPackets < 2 {
		t.Errorf("dropped %d, retransmitted %d, NACKed %d; want 2, 2, >= 2", st.Dropped, st.Retransmitted, st.NACKedPackets)
	}
	got := e.kind("video")
	if len(got) != 1 {
		t.Fatalf("%d video streams", len(got))
	}
	if lost, _ := missing(got[0].Seqs); lost != 0 {
		t.Errorf("%d packets missing at the receiver", lost)
	}
	if _, err := whip.Publish(ctx, whip.Options{URL: e.url("s1", "p2"), Video: v,
		Impairment: whip.Impairment{DropPackets: map[string][]int{"screen": {1}}}}); !errors.Is(err, whip.ErrBadImpairment) {
		t.Errorf("unknown kind: %v, want ErrBadImpairment", err)
	}
}
