package recorder_test

import (
	"context"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/recorder/whip"
	"github.com/custodian/custodian/storage/meta"
)

// TestOneLossOneNACK: one video packet lost on the wire is NACKed exactly
// once (by the pipeline; the WebRTC layer sends none of its own) and
// retransmitted exactly once, and the recording loses nothing. Audio,
// which negotiates no NACK, is never NACKed.
func TestOneLossOneNACK(t *testing.T) {
	g := startGateway(t, "")
	tok := token(t, g, auth.RoleIngest, "")
	audio, video := media(t)
	ctx := context.Background()
	pub, err := whip.Publish(ctx, whip.Options{
		URL: g.URL() + "/whip/nack-1/p1", Token: tok, Audio: audio, Video: video, Duration: 4 * time.Second,
		Impairment: whip.Impairment{DropPackets: map[string][]int{"video": {90}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a NACK would come within the jitter buffer's 200 ms
	st := pub.Stats()
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Video.Dropped != 1 || st.Video.NACKedPackets != 1 || st.Video.Retransmitted != 1 {
		t.Errorf("video: dropped %d, NACKed %d times, retransmitted %d times; want 1, 1, 1",
			st.Video.Dropped, st.Video.NACKedPackets, st.Video.Retransmitted)
	}
	if st.Audio.NACKs != 0 {
		t.Errorf("audio got %d NACKs, want none", st.Audio.NACKs)
	}
	rec := waitRecording(t, g, "nack-1", "p1")
	if rec.Status != meta.StatusComplete {
		t.Fatalf("status %s", rec.Status)
	}
	c := completeness(t, rec)
	if num(c, "nacks_sent") != 1 || num(c, "packets_lost") != 0 || num(c, "packets_duplicate") != 0 {
		t.Errorf("report: nacks_sent %v packets_lost %v packets_duplicate %v; want 1, 0, 0", c["nacks_sent"], c["packets_lost"], c["packets_duplicate"])
	}
}
